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
- counterexample: Lemma 12(e) at u = 2^-10 and the published 1e-3.

Every number is computed here from the package; nothing is copied. The grids are fixed in
CONFIG below and were not tuned to any outcome.
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

from lfbtheory import dual_objective, simulate  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "measurements.json"))
    args = ap.parse_args(argv)
    cfg = CONFIG
    total = (
        len(cfg["flame"]["layers"])
        * (len(cfg["flame"]["sign_u"]) + len(cfg["flame"]["proportional_u"]))
        + 6
        + len(cfg["drift"]["grid"])
        + 1
        + len(cfg["counterexample"]["u"])
    )
    with tqdm(total=total, desc="measurements") as bar:
        result = {
            "config": cfg,
            "counterexample": counterexample(cfg["counterexample"], bar),
            "balance": balance(cfg["balance"], bar),
            "drift": drift(cfg["drift"], bar),
            "flame": flame(cfg["flame"], bar),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
