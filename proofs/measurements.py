"""Measurements beside Lemmas 11-13: ``python proofs/measurements.py [--out PATH] [--small]``.

Writes one JSON file (default proofs/results/measurements.json) holding its own config and
seeds, with:

- flame: the shipped FLAME-MoE trace, one layer at a time (layers 2, 5, 9; n = 256, E = 64,
  k = 6, L = 24), the sign rule over a grid of u in [1e-5, 1e-3] and the proportional rule over
  a grid; MaxVio_global at T; for the sign rule at u = 1e-3 the per-expert over/under
  frequencies of the second half, the mean-load gap |mean c_i - L| and Lemma 12(d)'s bound
  |mean - median| + W_Delta, Pearson's second skewness; Lemma 11(b)'s MaxVio_global bound for
  each proportional run;
- balance: Lemma 11 (measured, bound) on the adaptive adversary and a drifting stream;
- drift: Lemma 13 on a drifting stream: path length, a grid of u with each run's bound (its own
  R and G), the bound-optimal u from the largest R and G on the grid, the grid u with the
  smallest bound and the grid u with the smallest measured dynamic regret;
- counterexample: Lemma 12(e) at u = 2^-10 and the published 1e-3;
- primal_drift: Lemma 11 (f) / Lemma 15 (c): the proportional rule with u = c/sqrt(T) on a
  stationary (i.i.d.) and a drifting stream, R_P(T)/sqrt(T) against the i.i.d. bound;
- median_e4: Lemma 12 (b)'s E = 4 stream: sign counts, over/under frequencies, median and mean;
- completion_gap: the FLAME replay's median 6th-7th score gap under each completion rule (only
  the top 6 of 64 scores are recorded, the gap comes from the completion);
- modulus: Lemma 14: the local modulus lambda_2 of the expected dual's tie Laplacian for
  sigmoid scores (by quadrature) and softmax scores (Monte Carlo, a kernel estimate of the tie
  densities) at the optimum and along a ray away from it;
- inverse_step: Lemma 14 (c)-(d): the dual regret of u_t = c/t for c mu below and above 1,
  its growth exponent, and the bound (c G^2/2)(1 + ln T) where c mu >= 1;
- online_lp: Lemmas 15 and 18: the sign and proportional rules (constant u, c/sqrt(t),
  c/sqrt(T)) on stationary, drifting and adaptive-adversarial streams -- R_P, R_D, violation,
  MaxVio_batch, MaxVio_global -- beside the i.i.d. bound; and both rules on the two streams of
  Lemma 18 (R_P + 3V >= T on one of them);
- resolving: Lemma 17's hypotheses, measured without the rules: the pooled prefix optima
  (follow-the-leader prices) against p* from the expected dual, t e_t, the one-batch error e_1
  (lag-1), and beta = n lambda_max(Lambda(p*)).

Every number is computed here from the package; nothing is copied. The grids are fixed in
CONFIG below and were not tuned to any outcome. Default output: docs/theory/measurements.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

import proof_11_balance as P11  # noqa: E402
import proof_12_sign_rule as P12  # noqa: E402
import sympy as sp  # noqa: E402

from lfbtheory import dual_objective, simulate, tie_margin  # noqa: E402
from lfbtheory import softmax as lfb_softmax  # noqa: E402
from lfbtheory.analysis import drift as DR  # noqa: E402
from lfbtheory.analysis.regret import regret_report  # noqa: E402
from lfbtheory.metrics import maxvio, maxvio_global  # noqa: E402
from lfbtheory.online import schedules as S  # noqa: E402
from lfbtheory.online import updates as U  # noqa: E402
from lfbtheory.workloads import make_workload, materialize  # noqa: E402

CONFIG = {
    "flame": {
        "layers": [2, 5, 9],
        "n": 256,
        "k": 6,
        "steps": 4000,
        "seed": 0,
        "sign_u": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
        "proportional_u": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
        "detail_u": 1e-3,
    },
    "balance": {
        "n": 64,
        "E": 8,
        "k": 2,
        "u": 0.05,
        "steps": 2000,
        "ledger_steps": 400,
        "isqrt_c": 0.2,
        "seed": 0,
        "drift": 0.05,
        "strength": 2.0,
    },
    "drift": {
        "n": 32,
        "E": 4,
        "k": 1,
        "steps": 400,
        "drift": 0.1,
        "seed": 1,
        "grid": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
    },
    "counterexample": {"u": [2.0**-10, 1e-3]},
    "primal_drift": {
        "n": 64,
        "E": 8,
        "k": 2,
        "c": 1.0,
        "drift": 0.05,
        "seed": 0,
        "horizons": [500, 2000, 8000],
    },
    "median_e4": {"u": 2.0**-6, "periods": 250},
    "completion_gap": {
        "layers": [2, 5, 9],
        "seed": 0,
        "rules": {
            "lognormal": {"tail": "lognormal"},
            "dirichlet": {"tail": "dirichlet"},
            "uniform": {"tail": "uniform"},
        },
    },
    "modulus": {
        "E": 8,
        "seed": 0,
        "radii": [0.0, 0.1, 0.25, 0.5, 1.0],
        "softmax_samples": 400000,
        "softmax_bandwidth": 0.002,
    },
    "inverse_step": {
        "n": 256,
        "E": 8,
        "k": 1,
        "steps": 8000,
        "seed": 0,
        "c_mu": [0.15, 0.37, 2.0, 4.0],
    },
    "online_lp": {
        "n": 64,
        "E": 8,
        "k": 2,
        "steps": 2000,
        "seed": 0,
        "u": 0.05,
        "c": 1.0,
        "drift": 0.05,
        "strength": 2.0,
        "two_stream_periods": 500,
    },
    "resolving": {
        "n": 64,
        "E": 8,
        "k": 1,
        "seed": 0,
        "prefixes": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
        "repeats": 8,
    },
}


def _band(x: np.ndarray, delta: int) -> tuple[float, float]:
    t, xs = len(x), np.sort(x)
    j_hi = (t + delta) // 2 + 1
    j_lo = t - j_hi + 1
    return (xs[j_lo - 1] if j_lo >= 1 else -np.inf, xs[j_hi - 1] if j_hi <= t else np.inf)


def flame(cfg: dict, bar: tqdm) -> dict:
    out = {}
    e = 64
    cap = cfg["n"] * cfg["k"] // e
    mv_bound = sp.lambdify((P11.w_, P11.u_, P11.E_, P11.k_, P11.T_), P11.maxvio_global_bound())
    for layer in cfg["layers"]:
        w = make_workload("replay", n=cfg["n"], n_experts=e, layer=layer)
        epoch = list(materialize(w, 8, cfg["seed"]))
        width = float(max(b.max() for b in epoch) - min(b.min() for b in epoch))
        batches = [epoch[t % len(epoch)] for t in range(cfg["steps"])]
        res = {"w": width, "sign": {}, "proportional": {}}
        for u in cfg["sign_u"]:
            tr = simulate(batches, cfg["k"], U.sign(u))
            res["sign"][str(u)] = {
                "maxvio_global_T": float(maxvio_global(tr.loads)[-1]),
                "maxvio_batch_mean_late": float(np.mean(maxvio(tr.loads[cfg["steps"] // 2 :]))),
            }
            if u == cfg["detail_u"]:
                res["sign_detail"] = _sign_detail(tr, cap, width, u, cfg["steps"] // 2)
            bar.update()
        for u in cfg["proportional_u"]:
            tr = simulate(batches, cfg["k"], U.proportional(u))
            res["proportional"][str(u)] = {
                "maxvio_global_T": float(maxvio_global(tr.loads)[-1]),
                "maxvio_batch_mean_late": float(np.mean(maxvio(tr.loads[cfg["steps"] // 2 :]))),
                "lemma11_maxvio_global_bound": float(mv_bound(width, u, e, cfg["k"], cfg["steps"])),
            }
            bar.update()
        res["sign_best_maxvio_global"] = min(v["maxvio_global_T"] for v in res["sign"].values())
        res["proportional_best_maxvio_global"] = min(
            v["maxvio_global_T"] for v in res["proportional"].values()
        )
        out[str(layer)] = res
    return out


def _sign_detail(tr, cap: int, width: float, u: float, start: int) -> dict:
    late = tr.loads[start:].astype(np.float64)
    over, under = (late > cap).mean(0), (late < cap).mean(0)
    gaps, bounds, skews = [], [], []
    for i in range(late.shape[1]):
        x = late[:, i]
        delta = int(abs(np.sum(x > cap) - np.sum(x < cap)))
        lo, hi = _band(x, delta)
        mean, med, sd = x.mean(), np.median(x), x.std()
        gaps.append(abs(mean - cap))
        bounds.append(abs(mean - med) + (hi - lo))
        skews.append(3 * (mean - med) / sd if sd > 0 else 0.0)
    net = np.cumsum(tr.loads < cap, 0) - np.cumsum(tr.loads > cap, 0)
    worst = int(np.argmax(gaps))
    return {
        "max_abs_P_over_minus_P_under": float(np.max(np.abs(over - under))),
        "max_mean_load_gap_tokens": float(max(gaps)),
        "max_mean_load_gap_frac_of_L": float(max(gaps) / cap),
        "bound_at_worst_expert": float(bounds[worst]),
        "skew_at_worst_expert": float(skews[worst]),
        "all_experts_within_lemma12d_bound": bool(
            np.all(np.array(gaps) <= np.array(bounds) + 1e-9)
        ),
        "median_balance_pairwise_max": int(np.max(net.max(1) - net.min(1))),
        "median_balance_bound_w_over_u_plus_2": float(width / u + 2),
    }


def balance(cfg: dict, bar: tqdm) -> dict:
    n, e, k, u = cfg["n"], cfg["E"], cfg["k"], cfg["u"]
    cap = n * k // e
    bal = sp.lambdify((P11.L_, P11.w_, P11.u_, P11.n_), P11.balance_bound())
    dec = sp.lambdify((P11.L_, P11.M_, P11.uT_), P11.balance_bound_decreasing())
    trade = sp.lambdify((P11.u_, P11.n_, P11.E_, P11.k_, P11.T_), P11.tradeoff_bound())
    out = {}
    for kind in ("adversarial", "drifting"):
        res = {}
        for label, rule, steps in (
            ("constant", U.proportional(u), cfg["steps"]),
            ("inverse_sqrt", U.proportional(S.inverse_sqrt(cfg["isqrt_c"])), cfg["steps"]),
            ("ledger", U.proportional(u), cfg["ledger_steps"]),
        ):
            if kind == "adversarial":
                wl = make_workload("adversarial", n=n, n_experts=e, strength=cfg["strength"])
                tr = simulate(wl.adaptive_batches(steps, cfg["seed"]), k, rule, adaptive=True)
                batches = list(wl.batches(steps, cfg["seed"], biases=tr.bias))
            else:
                wl = make_workload("drifting", n=n, n_experts=e, drift=cfg["drift"])
                batches = list(materialize(wl, steps, cfg["seed"]))
                tr = simulate(batches, k, rule)
            width = float(max(b.max() for b in batches) - min(b.min() for b in batches))
            dev = np.abs(np.cumsum(tr.loads - cap, axis=0)).max(axis=1)
            if label == "constant":
                res[label] = {
                    "max_abs_C_minus_TL": float(dev.max()),
                    "bound_Lw_over_u_plus_n": float(bal(cap, width, u, n)),
                    "maxvio_global_T": float(maxvio_global(tr.loads)[-1]),
                    "maxvio_global_T_bound": float((width / u + e / k) / steps),
                }
            elif label == "inverse_sqrt":
                big_m = float(np.max(np.abs(np.vstack([tr.bias, tr.state.bias]))))
                res[label] = {
                    "max_abs_C_minus_TL_at_T": float(dev[-1]),
                    "bound_2LM_over_uT": float(dec(cap, big_m, rule.step(steps - 1))),
                    "maxvio_global_T": float(maxvio_global(tr.loads)[-1]),
                }
            else:
                rep = regret_report(tr, batches, k)
                res[label] = {
                    "T": int(rep.t[-1]),
                    "primal_regret": float(rep.primal_regret[-1]),
                    "dual_regret": float(rep.dual_regret[-1]),
                    "R_P_plus_R_D": float(rep.primal_regret[-1] + rep.dual_regret[-1]),
                    "bound_u_n_(E-k)_T_over_2": float(trade(u, n, e, k, rep.t[-1])),
                    "violation_tokens": float(rep.violation[-1]),
                }
            bar.update()
        out[kind] = res
    return out


def drift(cfg: dict, bar: tqdm) -> dict:
    n, e, k, steps = cfg["n"], cfg["E"], cfg["k"], cfg["steps"]
    cap = n * k // e
    wl = make_workload("drifting", n=n, n_experts=e, drift=cfg["drift"])
    batches = list(materialize(wl, steps, cfg["seed"]))
    star = DR.per_batch_prices(batches, k)
    path = DR.price_path_length(star.prices)

    def run(u: float) -> tuple[float, float, float]:
        tr = simulate(batches, k, U.proportional(u))
        dual = np.array(
            [dual_objective(s, k=k, bias=p) for s, p in zip(batches, tr.bias, strict=True)]
        )
        p_all = np.vstack([tr.bias, tr.state.bias])
        q_all = np.vstack([star.prices, star.prices[-1]])
        radius = float(np.max(np.linalg.norm(p_all - q_all, axis=1)))
        grad = float(np.max(np.linalg.norm(tr.loads - cap, axis=1)))
        bar.update()
        return float(np.sum(dual - star.optimum)), radius, grad

    grid = {}
    for u in cfg["grid"]:
        m, r, g = run(u)
        grid[str(u)] = {
            "dynamic_regret": m,
            "R": r,
            "G": g,
            "bound": DR.dynamic_regret_bound(r, g, path, steps, u / cap),
        }
    r_bar = max(v["R"] for v in grid.values())
    g_bar = max(v["G"] for v in grid.values())
    u_star = cap * DR.bound_optimal_step(r_bar, g_bar, path, steps)
    m_star, r_star, g_star = run(u_star)
    best = min(grid, key=lambda key: grid[key]["dynamic_regret"])
    bound_argmin = min(grid, key=lambda key: grid[key]["bound"])
    return {
        "path_length": path,
        "T": steps,
        "grid": grid,
        "R_bar": r_bar,
        "G_bar": g_bar,
        "u_bound_optimal": u_star,
        "at_u_bound_optimal": {
            "dynamic_regret": m_star,
            "bound": DR.dynamic_regret_bound(r_star, g_star, path, steps, u_star / cap),
        },
        "u_bound_argmin_on_grid": float(bound_argmin),
        "u_best_on_grid": float(best),
        "best_on_grid_dynamic_regret": grid[best]["dynamic_regret"],
    }


def counterexample(cfg: dict, bar: tqdm) -> dict:
    out = {}
    for u in cfg["u"]:
        periods = 2 * int(round(1 / u))
        batches = P12.counterexample_batches(periods)
        res = {"T": 3 * periods}
        for name, rule in (("sign", U.sign(u)), ("proportional", U.proportional(u))):
            tr = simulate(batches, 1, rule)
            dual = sum(
                dual_objective(s, k=1, bias=p) for s, p in zip(batches, tr.bias, strict=True)
            )
            res[f"{name}_dual_regret"] = float(dual - 120.0 * periods)
            res[f"{name}_maxvio_global_T"] = float(maxvio_global(tr.loads)[-1])
        res["sign_lower_bound"] = float(
            P12.sign_regret_lower_bound().subs({P12.u_: u, P12.N_: periods})
        )
        res["proportional_exact_2uT"] = 2 * u * 3 * periods
        out[repr(u)] = res
        bar.update()
    return out


# ---------------------------------------------------------------- Lemma 11 (f), Lemma 15


def _ledger(tr, batches, k, comp=None) -> dict:
    rep = regret_report(tr, batches, k, comparators=comp)
    return {
        "T": int(rep.t[-1]),
        "primal_regret": float(rep.primal_regret[-1]),
        "dual_regret": float(rep.dual_regret[-1]),
        "violation_tokens": float(rep.violation[-1]),
        "maxvio_batch_mean": float(np.mean(rep.maxvio_batch)),
        "maxvio_global_T": float(rep.maxvio_global[-1]),
        "growth_dual": rep.growth["dual_regret"].cls if "dual_regret" in rep.growth else "n/a",
    }


def primal_drift(cfg: dict, bar: tqdm) -> dict:
    """R_P(T)/sqrt(T) with u = c/sqrt(T): bounded by c n (E - k)/2 in expectation under i.i.d.
    batches (Lemma 15 (c)); not bounded on a drifting stream (Lemma 11 (f))."""
    n, e, k, c = cfg["n"], cfg["E"], cfg["k"], cfg["c"]
    bound = c * n * (e - k) / 2
    out = {"iid_bound_on_R_P_over_sqrtT": bound}
    for kind in ("stationary", "drifting"):
        rows = []
        for steps in cfg["horizons"]:
            kw = {"drift": cfg["drift"]} if kind == "drifting" else {}
            batches = materialize(make_workload(kind, n=n, n_experts=e, **kw), steps, cfg["seed"])
            tr = simulate(batches, k, U.proportional(c / np.sqrt(steps)))
            row = _ledger(tr, batches, k)
            row["R_P_over_sqrtT"] = row["primal_regret"] / np.sqrt(steps)
            row["violation_over_sqrtT"] = row["violation_tokens"] / np.sqrt(steps)
            rows.append(row)
            bar.update()
        out[kind] = rows
    return out


def online_lp(cfg: dict, bar: tqdm) -> dict:
    """Every existing rule on stationary, drifting and adaptive-adversarial streams; and both
    rules on the two streams of Lemma 18."""
    n, e, k, steps = cfg["n"], cfg["E"], cfg["k"], cfg["steps"]
    rules = {
        "sign u=1e-3 (published)": lambda: U.sign(1e-3),
        f"proportional u={cfg['u']}": lambda: U.proportional(cfg["u"]),
        f"proportional {cfg['c']}/sqrt(t+1)": lambda: U.proportional(S.inverse_sqrt(cfg["c"])),
        f"proportional {cfg['c']}/sqrt(T)": lambda: U.proportional(cfg["c"] / np.sqrt(steps)),
    }
    out: dict = {"iid_bound_R_P_for_c_over_sqrtT": cfg["c"] * n * (e - k) * np.sqrt(steps) / 2}
    for kind in ("stationary", "drifting", "adversarial"):
        res = {}
        comp = None
        if kind != "adversarial":
            kw = {"drift": cfg["drift"]} if kind == "drifting" else {}
            batches = materialize(make_workload(kind, n=n, n_experts=e, **kw), steps, cfg["seed"])
            from lfbtheory.analysis.regret import compute_comparators

            comp = compute_comparators(batches, k)
        for name, make in rules.items():
            if kind == "adversarial":
                wl = make_workload("adversarial", n=n, n_experts=e, strength=cfg["strength"])
                tr = simulate(wl.adaptive_batches(steps, cfg["seed"]), k, make(), adaptive=True)
                bs = list(wl.batches(steps, cfg["seed"], biases=tr.bias))
                res[name] = _ledger(tr, bs, k)
            else:
                res[name] = _ledger(simulate(batches, k, make()), batches, k, comp)
            bar.update()
        out[kind] = res
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import proof_18_adversarial_lower_bound as P18

    s1, s2 = P18.streams(cfg["two_stream_periods"])
    t = 2 * cfg["two_stream_periods"]
    two = {"T": t}
    for name, make in rules.items():
        if "sqrt(T)" in name:
            make = lambda: U.proportional(cfg["c"] / np.sqrt(t))  # noqa: E731
        costs = []
        for stream in (s1, s2):
            rep = regret_report(simulate(stream, 1, make()), stream, 1)
            costs.append(float(rep.primal_regret[-1] + 3 * rep.violation[-1]))
        two[name] = {
            "R_P+3V stream 1": costs[0],
            "R_P+3V stream 2": costs[1],
            "max >= T": max(costs) >= t,
        }
        bar.update()
    out["two_streams_lemma18"] = two
    return out


# ---------------------------------------------------------------- the FLAME completion


def completion_gap(cfg: dict, bar: tqdm) -> dict:
    """The median 6th-7th score gap (tie margin at zero bias, k = 6) of the FLAME replay under
    each completion rule: the trace records only the top 6 of 64 scores per token, so this gap
    is a property of the completion, not of the recording."""
    out = {}
    for layer in cfg["layers"]:
        row = {}
        for name, kw in cfg["rules"].items():
            w = make_workload("replay", n=256, n_experts=64, layer=layer, **kw)
            b = np.concatenate(list(materialize(w, 8, cfg["seed"])))
            row[name] = float(np.median(tie_margin(b, 6)))
            bar.update()
        row["max/min"] = max(row.values()) / min(row.values())
        out[str(layer)] = row
    return out


# ---------------------------------------------------------------- Lemma 12 (b), E = 4


def median_e4(cfg: dict, bar: tqdm) -> dict:
    batches = P12.median_counterexample_batches(cfg["periods"])
    tr = simulate(batches, 1, U.sign(cfg["u"]))
    c = tr.loads.astype(np.float64)
    cap = 2.0
    bar.update()
    return {
        "T": len(batches),
        "N_i = U_i - O_i": ((c < cap).sum(0) - (c > cap).sum(0)).tolist(),
        "P(over)": (c > cap).mean(0).tolist(),
        "P(under)": (c < cap).mean(0).tolist(),
        "median load": np.median(c, axis=0).tolist(),
        "mean load": c.mean(0).tolist(),
        "L": cap,
        "bias spread at T (relative)": float(np.ptp(tr.state.bias)),
    }


# ---------------------------------------------------------------- Lemma 14, Lemma 17


def _sigmoid_law(y: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cdf and density of sigmoid(theta + N(0, 1)) at y."""
    from scipy import stats

    cdf, pdf = np.zeros_like(y), np.zeros_like(y)
    inside = (y > 0) & (y < 1)
    yi = y[inside]
    z = np.log(yi / (1 - yi)) - theta
    cdf[inside] = stats.norm.cdf(z)
    pdf[inside] = stats.norm.pdf(z) / (yi * (1 - yi))
    cdf[y >= 1] = 1.0
    return cdf, pdf


def sigmoid_tie_laplacian(theta: np.ndarray, p: np.ndarray, points: int = 200001):
    """(pi(p), Lambda(p)) for k = 1 and independent scores sigmoid(theta_i + N(0, 1)), by
    quadrature of pi_i = int f_i(x - p_i) prod_{j != i} F_j(x - p_j) dx and the tie
    densities w_ij = int f_i f_j prod_{l != i, j} F_l dx (Lemma 14 (a))."""
    e = len(theta)
    grid = np.linspace(p.min(), p.max() + 1.0, points)
    dx = grid[1] - grid[0]
    laws = [_sigmoid_law(grid - p[i], theta[i]) for i in range(e)]
    cdf = np.array([c for c, _ in laws])
    pdf = np.array([f for _, f in laws])
    logc = np.log(np.maximum(cdf, 1e-300))
    tot = logc.sum(0)
    pi = np.array([np.sum(pdf[i] * np.exp(tot - logc[i])) * dx for i in range(e)])
    w = np.zeros((e, e))
    for i in range(e):
        for j in range(i + 1, e):
            w[i, j] = w[j, i] = np.sum(pdf[i] * pdf[j] * np.exp(tot - logc[i] - logc[j])) * dx
    return pi, np.diag(w.sum(1)) - w


def sigmoid_optimum(theta: np.ndarray) -> np.ndarray:
    """p* with pi_i(p*) = 1/E (k = 1), p*_0 = 0, by root finding on the quadrature."""
    from scipy import optimize

    e = len(theta)
    sol = optimize.root(
        lambda q: sigmoid_tie_laplacian(theta, np.r_[0.0, q], 40001)[0][1:] - 1 / e,
        np.zeros(e - 1),
        tol=1e-12,
    )
    return np.r_[0.0, sol.x]


def softmax_tie_laplacian(theta, p, samples, bandwidth, seed):
    """Monte Carlo Lambda(p) for k = 1, scores softmax(theta + N(0, 1)): w_ij is estimated by
    #{tokens whose top two experts are i, j with margin < h} / (samples h)."""
    rng = np.random.default_rng(seed)
    s = lfb_softmax(theta + rng.standard_normal((samples, len(theta)))) + p
    order = np.argsort(-s, axis=1)[:, :2]
    top = np.take_along_axis(s, order, axis=1)
    close = (top[:, 0] - top[:, 1]) < bandwidth
    e = len(theta)
    w = np.zeros((e, e))
    np.add.at(w, (order[close, 0], order[close, 1]), 1.0)
    w = (w + w.T) / (samples * bandwidth)
    return np.diag(w.sum(1)) - w


def modulus(cfg: dict, bar: tqdm) -> dict:
    """Lemma 14 (b) measured: lambda_2 (per token) of the tie Laplacian at the optimum and at
    distance r along one direction of 1-perp (towards / away from the most popular expert)."""
    from lfbtheory import solve_balanced

    e = cfg["E"]
    theta = np.asarray(make_workload("stationary", n=256, n_experts=e).offsets(cfg["seed"]))
    pstar = sigmoid_optimum(theta)
    d = np.zeros(e)
    d[int(np.argmax(theta))] = 1.0
    d -= d.mean()
    d /= np.linalg.norm(d)
    # softmax scores have their own optimum: the exact price of a large pooled sample
    rng = np.random.default_rng(cfg["seed"])
    pool = lfb_softmax(theta + rng.standard_normal((cfg["softmax_samples"] // 4, e)))
    psoft = solve_balanced(pool, 1).bias
    psoft = psoft - psoft.mean()
    out = {
        "theta": theta.tolist(),
        "p_star_sigmoid": pstar.tolist(),
        "p_star_softmax": psoft.tolist(),
        "direction": d.tolist(),
        "sigmoid": {},
        "softmax": {},
    }
    for r in cfg["radii"]:
        for sign in (1, -1):
            lam = np.linalg.eigvalsh(sigmoid_tie_laplacian(theta, pstar + sign * r * d)[1])
            out["sigmoid"][f"{sign * r:+.2f}"] = {
                "lambda_2": float(lam[1]),
                "lambda_max": float(lam[-1]),
            }
            lap = softmax_tie_laplacian(
                theta,
                psoft + sign * r * d,
                cfg["softmax_samples"],
                cfg["softmax_bandwidth"],
                cfg["seed"] + 1,
            )
            lam_s = np.linalg.eigvalsh(lap)
            out["softmax"][f"{sign * r:+.2f}"] = {
                "lambda_2": float(lam_s[1]),
                "lambda_max": float(lam_s[-1]),
            }
            bar.update()
            if r == 0.0:
                break
    return out


def inverse_step(cfg: dict, mod: dict, bar: tqdm) -> dict:
    """Dual regret of u_t = c_u/t, c mu = c_u E lambda_2(p*)/k, at the checkpoints; its growth
    exponent between T/4 and T, and the bound (c G^2/2)(1 + ln T) of Lemma 14 (c) with
    c = c_u/L (the step on D), mu = n lambda_2 and G^2 the largest ||g_t||^2 of the run."""
    from lfbtheory.analysis.regret import compute_comparators

    n, e, k, steps = cfg["n"], cfg["E"], cfg["k"], cfg["steps"]
    lam2 = mod["sigmoid"]["+0.00"]["lambda_2"]
    batches = materialize(make_workload("stationary", n=n, n_experts=e), steps, cfg["seed"])
    comp = compute_comparators(batches, k, num_checkpoints=30)
    cap = n * k // e
    out = {"lambda_2_at_p_star": lam2, "runs": {}}
    for cm in cfg["c_mu"]:
        cu = cm * k / (e * lam2)
        tr = simulate(batches, k, U.proportional(S.inverse(cu)))
        rep = regret_report(tr, batches, k, comparators=comp)
        r, t = rep.dual_regret, rep.t
        i4 = int(np.searchsorted(t, steps // 4))
        expo = float(np.log(r[-1] / r[i4]) / np.log(t[-1] / t[i4])) if r[i4] > 0 else float("nan")
        g2 = float(np.max(np.sum((tr.loads - cap) ** 2, axis=1)))
        bound = (cu / cap) * g2 / 2 * (1 + np.log(steps)) if cm >= 1 else None
        out["runs"][f"c mu = {cm}"] = {
            "c_u": cu,
            "R_D(T)": float(r[-1]),
            "growth exponent T/4..T": expo,
            "predicted 1 - 2 c mu (quadratic model, c mu < 1/2)": (1 - 2 * cm)
            if cm < 0.5
            else None,
            "bound (c G^2/2)(1 + ln T)": bound,
            "class": rep.growth["dual_regret"].cls,
        }
        bar.update()
    return out


def resolving(cfg: dict, bar: tqdm) -> dict:
    """Follow-the-leader prices p_t = the pooled optimum of t batches, against p* of the
    expected dual: e_t = E||p_t - p*||^2 (mean over repeats), t e_t (~ C if the rate is 1/t);
    e_1 is the lag-1 rule's error; beta = n lambda_max(Lambda(p*)); k = 1, sigmoid scores."""
    n, e, k = cfg["n"], cfg["E"], cfg["k"]
    wl = make_workload("stationary", n=n, n_experts=e, offset_seed=cfg["seed"])
    theta = np.asarray(wl.offsets(cfg["seed"]))
    pstar = sigmoid_optimum(theta)
    pstar -= pstar.mean()
    lam = np.linalg.eigvalsh(sigmoid_tie_laplacian(theta, pstar + pstar.mean())[1])
    from lfbtheory import solve_balanced

    cap = n * k // e
    errs = {t: [] for t in cfg["prefixes"]}
    tmax = max(cfg["prefixes"])
    for rep in range(cfg["repeats"]):
        batches = materialize(wl, tmax, np.random.SeedSequence([cfg["seed"], rep + 1]))
        for t in cfg["prefixes"]:
            pool = np.concatenate(list(batches[:t]))
            p = solve_balanced(pool, k, capacity=t * cap).bias
            p = p - p.mean()
            errs[t].append(float(np.sum((p - pstar) ** 2)))
        bar.update()
    table = {
        str(t): {"e_t": float(np.mean(v)), "t e_t": float(t * np.mean(v))} for t, v in errs.items()
    }
    return {
        "p_star": pstar.tolist(),
        "beta = n lambda_max": float(n * lam[-1]),
        "mu = n lambda_2": float(n * lam[1]),
        "prefix_errors": table,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "docs" / "theory" / "measurements.json"
    ap.add_argument("--out", default=str(default))
    args = ap.parse_args(argv)
    cfg = CONFIG
    with tqdm(desc="measurements (steps)") as bar:
        result = {
            "config": cfg,
            "counterexample": counterexample(cfg["counterexample"], bar),
            "balance": balance(cfg["balance"], bar),
            "drift": drift(cfg["drift"], bar),
            "flame": flame(cfg["flame"], bar),
            "primal_drift": primal_drift(cfg["primal_drift"], bar),
            "median_e4": median_e4(cfg["median_e4"], bar),
            "completion_gap": completion_gap(cfg["completion_gap"], bar),
            "modulus": (mod := modulus(cfg["modulus"], bar)),
            "inverse_step": inverse_step(cfg["inverse_step"], mod, bar),
            "online_lp": online_lp(cfg["online_lp"], bar),
            "resolving": resolving(cfg["resolving"], bar),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
