"""The causal online-LP rules beside sign and proportional (Lemmas 15-18):
``python proofs/online_rules.py [--out-dir DIR] [--steps T]``.

Writes docs/theory/online_rules.json (its own config, seeds and package identity) and
docs/theory/online_rules.md (the table). Every rule runs on four streams:

- stationary: i.i.d. sigmoid batches (``make_workload("stationary")``);
- drifting: sigmoid batches whose expert offsets random-walk (``drift`` per batch);
- adversarial: the adaptive adversary (``strength``), which sees each bias used before it
  builds the next batch (so each rule gets its own stream, regenerated for the ledger);
- replay: the shipped FLAME-MoE trace, layer 2 (E = 64, k = 6, 2048 tokens: 8 batches of
  256, cycled). The trace records only the top 6 of the 64 router probabilities per token;
  the other 58 are completed by the package's lognormal tail (spread 1.3), so the prices and
  loads off the top 6 depend on that completion, not on the recording.

For each: R_P(T) (primal regret against the pooled hindsight optimum), R_D(T) (dual regret
against the pooled hindsight price), V(T) (cumulative tokens over capacity), the dynamic gap
G(T) = sum_t (OPT_t - reward_t) (each batch against its own optimum) with its per-batch
violation V_batch(T) = sum_t sum_i max(0, c_ti - L) (the comparator that matters under
drift, where the pooled hindsight price is stale), MaxVio_batch
(mean over batches), MaxVio_global(T), and the CPU time per step of the update (process
time spent in the rule's update -- ``advance``, or ``observe`` for a re-solving rule --
summed over the run and divided by T, in the reference loop; the machine was shared, so CPU
time, not wall time, single runs).

Constants (none tuned on these measurements):

- sign u = 1e-3: the published rule (arXiv 2408.15664 eq. 3);
- proportional u = 0.05 and u = c/sqrt(T), c = 1: the settings of measurements.json's
  online_lp section (Lemma 11 (e) / 15), kept for comparability;
- mirror descent (Lemma 16): prices start at 1 (the width of scores in [0, 1], so
  KL(q, 1) <= K = E for every price q in [0, 1]^E), and eta = sqrt(K / (V T)) on D, the
  minimiser of Lemma 16 (c)'s bound, with V = n^2 k (1 - k/E) (prices <= 1 times Lemma 5's
  bound on ||load - L||^2): u = eta L; also u = 1/sqrt(T), the proportional rule's c/sqrt(T);
- solve_scale: one exact solve at 4096, 32768 and 131072 tokens (E = 64, k = 6), what a
  re-solving step would cost at a training run's batch size;
- follow the leader, lag-1 and a window of W = round(sqrt(T)) steps (the geometric mean of
  lag-1's W = 1 and follow the leader's W = T; no window was tried against the outcome).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lfbtheory import fileio, simulate  # noqa: E402
from lfbtheory.analysis.regret import compute_comparators, regret_report  # noqa: E402
from lfbtheory.identity import code_identity  # noqa: E402
from lfbtheory.online import updates as U  # noqa: E402
from lfbtheory.workloads import make_workload, materialize  # noqa: E402

CONFIG = {
    "synthetic": {"n": 256, "E": 16, "k": 2},
    "replay": {"n": 256, "E": 64, "k": 6, "layer": 2},
    "steps": 2000,
    "seed": 0,
    "drift": 0.05,
    "strength": 2.0,
    "scale_tokens": [4096, 32768, 131072],
    "repeats": 2,
}


def rules_for(n: int, e: int, k: int, steps: int) -> dict:
    """The rules and their constants (module docstring), for one stream's n, E, k and T."""
    cap = n * k / e
    # Lemma 16 (c): K = KL radius, V = the variance bound; the same eta is Lemma 5 (b)'s
    # best fixed step sqrt(a_1)/(G sqrt(T)) with a_1 <= E (prices in [0, 1]^E) and
    # G^2 = n^2 k (1 - k/E)
    kl, var = float(e), n * n * k * (1 - k / e)
    eta = math.sqrt(kl / (var * steps))
    w = max(1, round(math.sqrt(steps)))
    return {
        "sign u=1e-3 (published)": U.sign(1e-3),
        "proportional u=0.05": U.proportional(0.05),
        "proportional u=1/sqrt(T)": U.proportional(1 / math.sqrt(steps)),
        f"proportional u=eta*L={eta * cap:.4g} (Lemma 5)": U.proportional(eta * cap),
        f"mirror descent u=eta*L={eta * cap:.4g} (Lemma 16)": U.mirror_descent(eta * cap),
        "mirror descent u=1/sqrt(T)": U.mirror_descent(1 / math.sqrt(steps)),
        "lag-1 exact price": U.lag1(),
        f"window W={w}": U.sliding_window(w),
        "follow the leader": U.follow_the_leader(),
    }, {"eta_lemma16": eta, "K": kl, "V": var, "window": w, "L": cap}


def _ledger(tr, batches, k, comp, cpu: float, upd: float) -> dict:
    rep = regret_report(tr, batches, k, comparators=comp)
    t = len(tr)
    i4 = int(np.searchsorted(rep.t, t // 4))
    return {
        "T": int(rep.t[-1]),
        "primal_regret": float(rep.primal_regret[-1]),
        "dual_regret": float(rep.dual_regret[-1]),
        "dual_regret_at_T/4": float(rep.dual_regret[i4]),
        "violation_tokens": float(rep.violation[-1]),
        "dynamic_gap": float(rep.dynamic_gap[-1]),
        "batch_violation_tokens": float(rep.batch_violation[-1])
        if rep.batch_violation is not None
        else None,
        "maxvio_batch_mean": float(np.mean(rep.maxvio_batch)),
        "maxvio_global_T": float(rep.maxvio_global[-1]),
        "growth_dual": rep.growth["dual_regret"].cls if "dual_regret" in rep.growth else "n/a",
        "cpu_ms_per_step_run": 1e3 * cpu / t,
        "cpu_ms_per_step_update": 1e3 * upd / t,
    }


def _timed(fn):
    t0 = time.process_time()
    out = fn()
    return out, time.process_time() - t0


def timed_rule(rule):
    """(the same rule as a subclass whose update -- ``advance`` or ``observe`` -- adds its
    process time to a counter, the counter): the update's own cost, without the routing.
    The subclass runs in the reference loop with the base class's arithmetic."""
    from lfbtheory.online.resolve import Resolve

    acc = [0.0]
    base = type(rule)
    meth = "observe" if isinstance(rule, Resolve) else "advance"
    inner = getattr(base, meth)

    def wrapped(self, *a, **kw):
        t0 = time.process_time()
        r = inner(self, *a, **kw)
        acc[0] += time.process_time() - t0
        return r

    cls = type("Timed" + base.__name__, (base,), {meth: wrapped, "__slots__": ()})
    return cls(*rule), acc


def run_stream(kind: str, cfg: dict, log) -> dict:
    steps, seed = cfg["steps"], cfg["seed"]
    shape = cfg["replay"] if kind == "replay" else cfg["synthetic"]
    n, e, k = shape["n"], shape["E"], shape["k"]
    rules, consts = rules_for(n, e, k, steps)
    out: dict = {"n": n, "E": e, "k": k, "constants": consts, "rules": {}}
    if kind == "adversarial":
        wl = make_workload("adversarial", n=n, n_experts=e, strength=cfg["strength"])
        for name, rule in rules.items():
            rule, acc = timed_rule(rule)
            tr, cpu = _timed(
                lambda r=rule: simulate(
                    wl.adaptive_batches(steps, seed), k, r, adaptive=True, _path="python"
                )
            )
            bs = np.asarray(list(wl.batches(steps, seed, biases=tr.bias)))
            out["rules"][name] = _ledger(tr, bs, k, compute_comparators(bs, k), cpu, acc[0])
            log(kind, name, out["rules"][name])
        return out
    if kind == "replay":
        wl = make_workload("replay", n=n, n_experts=e, layer=shape["layer"])
        epoch = np.asarray(list(materialize(wl, 8, seed)))
        batches = np.asarray([epoch[t % len(epoch)] for t in range(steps)])
        out["recorded"] = "top 6 of 64 probabilities per token; the other 58 completed"
        out["tokens_in_layer"] = int(epoch.shape[0] * epoch.shape[1])
    else:
        kw = {"drift": cfg["drift"]} if kind == "drifting" else {}
        wl = make_workload(kind, n=n, n_experts=e, **kw)
        batches = np.asarray(materialize(wl, steps, seed))
    out["workload"] = repr(wl)
    comp = compute_comparators(batches, k)
    for name, rule in rules.items():
        rule, acc = timed_rule(rule)
        tr, cpu = _timed(lambda r=rule: simulate(batches, k, r, _path="python"))
        out["rules"][name] = _ledger(tr, batches, k, comp, cpu, acc[0])
        log(kind, name, out["rules"][name])
    return out


def solve_scale(cfg: dict, log) -> dict:
    """CPU seconds of one exact solve (the lag-1 rule's step) at training-like token counts:
    softmax scores of gaussian logits, E = 64, k = 6, cold and warm-started from the previous
    batch's price (min of ``repeats``)."""
    from lfbtheory import softmax
    from lfbtheory.lp import solve_balanced

    e, k = 64, 6
    rng = np.random.default_rng(cfg["seed"])
    theta = rng.normal(size=e)
    out = {}
    for n in cfg["scale_tokens"]:
        a, b = (softmax(theta + rng.standard_normal((n, e))) for _ in range(2))
        prev = solve_balanced(a, k).bias
        runs = range(cfg["repeats"])
        cold = min(_timed(lambda b=b: solve_balanced(b, k))[1] for _ in runs)
        warm = min(_timed(lambda b=b, p=prev: solve_balanced(b, k, warm_start=p))[1] for _ in runs)
        out[str(n)] = {"cold_s": cold, "warm_s": warm}
        log(
            "scale",
            f"n={n}",
            {
                "primal_regret": 0,
                "dual_regret": 0,
                "violation_tokens": 0,
                "cpu_ms_per_step_update": 1e3 * warm,
            },
        )
    return out


COLS = [
    ("R_P", "primal_regret", "{:.0f}"),
    ("R_D", "dual_regret", "{:.1f}"),
    ("R_D(T/4)", "dual_regret_at_T/4", "{:.1f}"),
    ("V", "violation_tokens", "{:.0f}"),
    ("G_dyn", "dynamic_gap", "{:.0f}"),
    ("V_batch", "batch_violation_tokens", "{:.0f}"),
    ("MaxVio_batch", "maxvio_batch_mean", "{:.3f}"),
    ("MaxVio_global", "maxvio_global_T", "{:.4f}"),
    ("update ms/step", "cpu_ms_per_step_update", "{:.3f}"),
]


def table(result: dict) -> str:
    lines = [
        "| stream | rule | " + " | ".join(c for c, _, _ in COLS) + " |",
        "|---|---|" + "---|" * len(COLS),
    ]
    for kind, res in result["streams"].items():
        for name, row in res["rules"].items():
            cells = " | ".join(f.format(row[key]) for _, key, f in COLS)
            lines.append(f"| {kind} | {name} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "docs" / "theory"
    ap.add_argument("--out-dir", default=str(default))
    ap.add_argument("--steps", type=int, default=CONFIG["steps"])
    ap.add_argument("--streams", default="stationary,drifting,adversarial,replay")
    args = ap.parse_args(argv)
    if args.steps < 8:
        raise SystemExit(f"--steps must be >= 8, got {args.steps}")
    cfg = dict(CONFIG, steps=args.steps)
    identity = code_identity()  # of the code that runs (taken before it runs)

    def log(kind, name, row):
        print(
            f"{kind:12s} {name:40s} R_P={row['primal_regret']:10.1f} "
            f"R_D={row['dual_regret']:9.1f} V={row['violation_tokens']:8.0f} "
            f"upd={row['cpu_ms_per_step_update']:.3f}ms",
            flush=True,
        )

    streams = {}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.streams.split(","):
        streams[kind] = run_stream(kind, cfg, log)
        # each finished stream is kept (a long run interrupted later loses nothing)
        partial = {"config": cfg, "identity": identity, "streams": streams, "complete": False}
        fileio.write_json(out / "online_rules.partial.json", partial)
    result = {
        "config": cfg,
        "identity": identity,
        "streams": streams,
        "solve_scale_E64_k6": solve_scale(cfg, log),
        "complete": True,
    }
    fileio.write_json(out / "online_rules.json", result)
    md = (
        "# Causal online-LP rules on four streams\n\n"
        "Written by `python proofs/online_rules.py` (config, seeds and code identity in "
        "online_rules.json). R_P, R_D (against the pooled hindsight optimum), V (cumulative "
        "tokens over capacity), G_dyn (sum of per-batch optimum minus reward) and V_batch "
        "(sum of per-batch overloads) in score units / tokens; MaxVio_batch averaged over batches; "
        "update ms/step: CPU time of the rule's update per step (reference loop, numpy; "
        "shared machine). The replay stream is the FLAME trace's "
        "layer 2: top 6 of 64 probabilities recorded, the other 58 completed.\n\n"
        + table(result)
        + "\n\n"
        "One exact solve (the lag-1 step) at training-like token counts, E = 64, k = 6, "
        "CPU seconds (min of " + str(cfg["repeats"]) + "):\n\n| tokens | cold | warm-started |\n"
        "|---|---|---|\n"
        + "\n".join(
            f"| {n} | {v['cold_s']:.3f} | {v['warm_s']:.3f} |"
            for n, v in result["solve_scale_E64_k6"].items()
        )
        + "\n"
    )
    fileio.write_text(out / "online_rules.md", md)
    print(f"wrote {out / 'online_rules.json'} and {out / 'online_rules.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
