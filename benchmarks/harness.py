"""``lfb bench``: the four performance targets, measured side by side in one run.

1. exact solver: ``solve_balanced(method="auto")`` vs OR-tools min-cost flow on the full
   bipartite graph, cvxpy with its default solver, and the cvxpy + HiGHS oracle;
2. streams: per-batch exact optimum, warm-started from the previous batch's prices, vs one
   numpy ``argpartition`` routing pass of the same batch;
3. the pooled hindsight optimum (10^6 tokens x 64 experts, k = 6): time and peak memory;
4. routing kernel: :func:`lfbtheory._engine.route` vs numpy ``argpartition`` and the read
   bound (time of ``scores.sum()``);
5. (``--targets 5``) one regret point on the ``lfb regret`` defaults: the pre-refactor path
   (batch list, one ``dual_objective`` call per batch, run on the library at
   ``BASELINE_COMMIT``, extracted with ``git archive``) vs ``run_point``, a sweep point whose
   stream is shared by 4 step sizes, and ``simulate`` vs a bare numpy routing loop;
6. ``import lfbtheory`` in a fresh interpreter: the minimum and median over repeats of the
   import alone (timed inside the child) and of the whole child process, beside a bare
   interpreter start, and the heaviest imported modules (``python -X importtime``);
7. (``--targets 7``) streamed regret points at the DeepSeek-V3 size (n=4096, E=256, k=8):
   peak memory and the time of each part (``benchmarks/streamed_scale.py``).

Every method runs in a fresh child process (so peak memory is that method's own: the peak
resident set is reset through /proc/self/clear_refs before the timed calls and read from
VmHWM); times are medians over repeats after one untimed warm-up call (numba compilation).
Scores: N(0,1) + 0.5 N(0,1) per expert, float64 (float32 for the kernel).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_bench", "format_tables"]  # `lfb bench` (lfbtheory/cli/bench.py) calls _cli


# ----------------------------------------------------------------------------- instances


def scores_instance(
    n: int, n_experts: int, rng: np.random.Generator, dtype: type = np.float64
) -> np.ndarray:
    """s[t, i] = z[t, i] + 0.5 * u[i], z, u ~ N(0, 1) (the benchmark workload)."""
    s = rng.normal(size=(n, n_experts))
    s += 0.5 * rng.normal(size=n_experts)
    return s.astype(dtype, copy=False)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([4, *key]))


# ----------------------------------------------------------------------------- memory


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ----------------------------------------------------------------------------- methods


def _cvxpy_default(s: np.ndarray, k: int, cap: int) -> float:
    """The LP through cvxpy with cvxpy's own default solver (objective value only)."""
    import cvxpy as cp

    n, e = s.shape
    x = cp.Variable((n, e))
    prob = cp.Problem(
        cp.Maximize(cp.sum(cp.multiply(s, x))),
        [cp.sum(x, axis=1) == k, cp.sum(x, axis=0) == cap, x >= 0, x <= 1],
    )
    prob.solve()
    return float(prob.value)


def _method(name: str, s: np.ndarray, k: int) -> Any:  # noqa: C901 - a flat dispatch table
    from lfbtheory.lp.solve import solve_balanced

    n, e = s.shape
    cap = n * k // e
    if name == "lfb auto (ssp)":
        return lambda: solve_balanced(s, k, method="auto").objective
    if name == "OR-tools flow":
        from lfbtheory.lp.flow import flow_assignment

        return lambda: float(np.sum(s, where=flow_assignment(s, k, cap) == 1))
    if name == "cvxpy default":
        return lambda: _cvxpy_default(s, k, cap)
    if name == "cvxpy + HiGHS (oracle)":
        return lambda: solve_balanced(s, k, method="cvxpy").objective
    if name == "HiGHS direct":
        return lambda: solve_balanced(s, k, method="linprog").objective
    raise ValueError(f"unknown method {name!r}")


def _child_solver(spec: dict) -> dict:
    n, e, k, seed = spec["n"], spec["E"], spec["k"], spec["seed"]
    s = scores_instance(n, e, _rng(seed, n, e, k))
    if spec["method"] == "lfb auto (ssp)":  # compile outside the timed region
        from lfbtheory.lp.solve import solve_balanced

        solve_balanced(s[:e], 1, method="auto")
    fn = _method(spec["method"], s, k)
    base = _status_kib("VmRSS")
    exact_peak = _reset_peak()
    times, value = [], float("nan")
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    out = {
        "times": times,
        "objective": value,
        "peak_mib": (_status_kib("VmHWM") - base) / 1024,
        "peak_exact": exact_peak,
    }
    if spec["method"] == "lfb auto (ssp)" and spec.get("certify", True):
        import lfbtheory as lfb

        res = lfb.solve_balanced(s, k, method="auto")
        cert = lfb.certify(s, k, res.assignment, res.bias)
        out["certificate_ok"] = bool(cert.ok)
        out["duality_gap"] = float(cert.duality_gap)
        out["no_negative_cycle"] = lfb.optimal_prices(s, k, res.assignment) is not None
    return out


def _child_stream(spec: dict) -> dict:
    import lfbtheory as lfb

    n, e, k, batches = spec["n"], spec["E"], spec["k"], spec["batches"]
    rng = _rng(spec["seed"], n, e, k, batches)
    popularity = 0.5 * rng.normal(size=e)
    lfb.solve_balanced(rng.normal(size=(e, e)), 1, method="auto")  # compile
    cap = n * k // e
    prev = None
    t_solve, t_route = [], []
    cert_ok, checked, agree = True, 0, True
    for b in range(batches):
        s = rng.normal(size=(n, e)) + popularity
        p = np.zeros(e) if prev is None else prev
        t0 = time.perf_counter()
        idx = np.argpartition(s + p, e - k, axis=1)[:, e - k :]
        np.bincount(idx.ravel(), minlength=e)
        t1 = time.perf_counter()
        res = lfb.solve_balanced(s, k, method="auto", warm_start=prev)
        t2 = time.perf_counter()
        t_route.append(t1 - t0)
        t_solve.append(t2 - t1)
        prev = res.bias
        if b % spec["check_every"] == 0:
            cert_ok &= lfb.certify(s, k, res.assignment, res.bias).ok
            ref = lfb.solve_balanced(s, k, method="flow").objective
            agree &= abs(ref - res.objective) <= 1e-9 * abs(ref)
            checked += 1
        del s
    # cold solves of the last batch shape, for comparison
    cold = []
    for _ in range(5):
        s = rng.normal(size=(n, e)) + popularity
        t0 = time.perf_counter()
        lfb.solve_balanced(s, k, method="auto")
        cold.append(time.perf_counter() - t0)
    return {
        "solve_times": t_solve[1:],
        "route_times": t_route[1:],
        "cold_times": cold,
        "certificates_ok": bool(cert_ok),
        "objective_agrees_with_flow": bool(agree),
        "checked": checked,
        "capacity": cap,
    }


def _child_pooled(spec: dict) -> dict:
    import lfbtheory as lfb

    n, e, k = spec["n"], spec["E"], spec["k"]
    s = scores_instance(n, e, _rng(spec["seed"], n, e, k))
    lfb.solve_balanced(s[: 4 * e], 1, method="auto")  # compile
    base = _status_kib("VmRSS")
    exact_peak = _reset_peak()
    t0 = time.perf_counter()
    res = lfb.solve_balanced(s, k, method="auto")
    elapsed = time.perf_counter() - t0
    peak = (_status_kib("VmHWM") - base) / 1024
    total = _status_kib("VmHWM") / 1024
    cert = lfb.certify(s, k, res.assignment, res.bias)
    return {
        "times": [elapsed],
        "objective": res.objective,
        "peak_mib": peak,
        "peak_total_mib": total,
        "scores_mib": s.nbytes / 2**20,
        "peak_exact": exact_peak,
        "certificate_ok": bool(cert.ok),
        "duality_gap": float(cert.duality_gap),
        "no_negative_cycle": lfb.optimal_prices(s, k, res.assignment) is not None,
    }


def _median_time(fn: Any, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _child_kernel(spec: dict) -> dict:
    import lfbtheory as lfb
    from lfbtheory import _engine
    from lfbtheory.routing import selection_offsets

    n, e, k = spec["n"], spec["E"], spec["k"]
    rng = _rng(spec["seed"], n, e, k)
    s = scores_instance(n, e, rng, np.float32)
    b = 0.1 * rng.normal(size=e)
    shift = b - b.max()
    reps = spec["repeats"]

    def route_loads(scores: np.ndarray, k: int, bias: np.ndarray) -> Any:
        return _engine.route(scores, k, selection_offsets(bias, "additive"))

    def numpy_route() -> None:
        idx = np.argpartition(s + shift, e - k, axis=1)[:, e - k :]
        np.bincount(idx.ravel(), minlength=e)

    from lfbtheory.routing import selection_scores, topk_indices

    def numpy_exact() -> None:
        ex = topk_indices(selection_scores(s, b), k)
        np.bincount(ex.ravel(), minlength=e)

    out = {
        "numpy argpartition": _median_time(numpy_route, reps),
        "numpy exact (topk_indices)": _median_time(numpy_exact, max(3, reps // 5)),
        "compiled kernel": _median_time(lambda: route_loads(s, k, b), reps),
        "public lfb.route (with weights)": _median_time(lambda: lfb.route(s, k, b), reps),
        "read bound (scores.sum())": _median_time(lambda: s.sum(), reps),
    }
    experts, loads = route_loads(s, k, b)
    ref = topk_indices(selection_scores(s, b), k)
    r = lfb.route(s, k, b)
    identical_route = bool(np.array_equal(r.experts, ref) and np.array_equal(r.loads, loads))
    identical = bool(
        np.array_equal(experts, ref)
        and np.array_equal(loads, np.bincount(ref.ravel(), minlength=e))
    )
    ties = np.round(s * 4) / 4  # heavy ties
    bt = np.round(b, 1)
    ref_ties = topk_indices(selection_scores(ties, bt), k)
    identical_ties = bool(
        np.array_equal(route_loads(ties, k, bt)[0], ref_ties)
        and np.array_equal(lfb.route(ties, k, bt).experts, ref_ties)
    )
    return {
        "times": out,
        "identical": identical and identical_route,
        "identical_with_ties": identical_ties,
    }


def _timed(fn: Any, repeats: int = 1) -> tuple[Any, float, float]:
    """(result, wall s, CPU s) of fn(); with repeats > 1 the medians over that many calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return out, float(np.median(walls)), float(np.median(cpus))


def _child_regret_legacy(spec: dict) -> dict:
    """Target 5's reference: the pre-refactor path (a list of batches, comparators over
    np.concatenate'd prefixes, each run's dual D_s(p_s) by one dual_objective call per batch),
    run on whatever ``lfbtheory`` this process imports (the baseline tree, see
    :func:`_target_regret`)."""
    import dataclasses as dc

    import lfbtheory as lfb
    from lfbtheory.analysis.regret import compute_comparators, fixed_batch_cycle, regret_report
    from lfbtheory.experiments.regret import (
        PUBLISHED_RATE,
        RegretConfig,
        _workload,
        calibrate,
        run_point,
    )
    from lfbtheory.online.updates import make_rule

    config = RegretConfig(steps=spec["steps"])
    run_point(dc.replace(config, steps=20, num_checkpoints=5))  # compile outside the timing

    def legacy() -> list:
        wl = _workload(config)
        batches = list(wl.batches(config.steps, np.random.SeedSequence([config.seed, 0])))
        calib = calibrate(
            list(wl.batches(config.calibration_batches, np.random.SeedSequence([config.seed, 1]))),
            config.k,
        )
        comp = compute_comparators(batches, config.k, num_checkpoints=config.num_checkpoints)
        out = []
        for r in config.runs:
            rule = make_rule(r.rule, calib.schedule(r.schedule, config.steps))
            tr = lfb.simulate(batches, config.k, rule)
            dual = [
                lfb.dual_objective(b, k=config.k, bias=p)
                for b, p in zip(batches, tr.bias, strict=True)
            ]
            rep = regret_report(tr, batches, config.k, comparators=comp)
            if r.rule == "sign" and r.schedule == "published":
                fixed_batch_cycle(
                    batches[0], config.k, "sign", PUBLISHED_RATE, max_steps=config.cycle_steps
                )
            out.append((rep.summary()["dual_regret"], float(np.sum(dual))))
        return out

    old, wall, cpu = _timed(legacy, spec["repeats"])
    return {"legacy": [wall, cpu], "dual_regret": [a[0] for a in old], "library": lfb.__file__}


def _child_regret(spec: dict) -> dict:
    """Target 5's engine side in one process: ``run_point``, a sweep's amortised point, and
    simulate vs a bare numpy routing loop."""
    import dataclasses as dc

    import lfbtheory as lfb
    from lfbtheory.experiments.regret import RegretConfig, RunSpec, prepare_stream, run_point
    from lfbtheory.online.updates import make_rule
    from lfbtheory.workloads import materialize

    config = RegretConfig(steps=spec["steps"])
    run_point(dc.replace(config, steps=20, num_checkpoints=5))  # compile outside the timing
    (new, _), new_wall, new_cpu = _timed(lambda: run_point(config), spec["repeats"])
    # where run_point's time goes (CPU seconds of each part, run again one by one)
    from lfbtheory.analysis.regret import checkpoints
    from lfbtheory.experiments.regret import _materialise, _workload
    from lfbtheory.lp.solve import solve_prefixes, solve_stream

    arr, _, t_stream = _timed(lambda: _materialise(config, _workload(config)))
    grid = checkpoints(config.steps, config.num_checkpoints)
    ctx, _, t_prep = _timed(lambda: prepare_stream(config, arr))
    parts = {
        "draw the stream": t_stream,
        "calibration + comparators": t_prep,
        "  of which per-batch optima": _timed(lambda: solve_stream(arr, config.k, output="optima"))[
            2
        ],
        "  of which pooled prefix optima": _timed(
            lambda: list(solve_prefixes(arr, config.k, grid, output="optima"))
        )[2],
    }
    parts[f"{len(config.runs)} runs + reports"] = _timed(
        lambda: run_point(config, ctx, batches=arr)
    )[2]
    steps = spec["sweep_steps"]

    def sweep() -> None:
        ctx = prepare_stream(config)
        for u in steps:
            runs = tuple(
                RunSpec(
                    f"{r.rule} {r.schedule}",
                    r.rule,
                    r.schedule,
                    None if r.schedule == "published" else u,
                )
                for r in config.runs
            )
            run_point(dc.replace(config, runs=runs), ctx)

    _, sw_wall, sw_cpu = _timed(sweep)
    loops = []
    for e, k in ((16, 2), (64, 6)):
        wl = lfb.workloads.make_workload("stationary", n=256, n_experts=e)
        arr = materialize(wl, spec["loop_batches"], 0)
        rule = make_rule("sign", 1e-3)
        lfb.simulate(arr[:5], k, rule)

        def bare(arr: np.ndarray = arr, e: int = e, k: int = k) -> None:
            b = np.zeros(e)
            for s in arr:
                idx = np.argpartition(s + b, e - k, axis=1)[:, e - k :]
                c = np.bincount(idx.ravel(), minlength=e)
                b = b + 1e-3 * np.sign(c.mean() - c)

        sim = min(
            _timed(lambda arr=arr, k=k, rule=rule: lfb.simulate(arr, k, rule))[2] for _ in range(3)
        )
        ref = min(_timed(bare)[2] for _ in range(3))
        loops.append(
            {
                "E": e,
                "k": k,
                "simulate_batches_per_s": len(arr) / sim,
                "numpy_batches_per_s": len(arr) / ref,
                "ratio": sim / ref,
            }
        )
    return {
        "engine": [new_wall, new_cpu],
        "parts": parts,
        "dual_regret": [r.report.summary()["dual_regret"] for r in new],
        "sweep": [sw_wall, sw_cpu],
        "sweep_points": len(steps),
        "loops": loops,
        "library": lfb.__file__,
    }


# The library target 5 measures the pre-refactor path on: the tree of this commit (before the
# per-point engine work), extracted with ``git archive`` into a temporary folder, so that the
# reference does not speed up with the code it is compared against.
BASELINE_COMMIT = "537d24707f74b935f2b6fec167d1cd22bb3b1840"


def _baseline_tree(folder: str) -> str | None:
    """Extract ``lfbtheory`` at BASELINE_COMMIT into ``folder``; None without git or commit."""
    import io
    import tarfile

    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "archive", BASELINE_COMMIT, "lfbtheory"],
            capture_output=True,
            check=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder


_CHILDREN = {
    "solver": _child_solver,
    "stream": _child_stream,
    "pooled": _child_pooled,
    "kernel": _child_kernel,
    "regret": _child_regret,
    "regret_legacy": _child_regret_legacy,
}


def _run_child(kind: str, spec: dict, timeout: float, pythonpath: str | None = None) -> dict:
    env = None
    if pythonpath is not None:  # import lfbtheory from this folder first
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- targets


def _target_solver(quick: bool, repeats: int, seed: int, log: Any) -> dict:
    shapes = [(1024, 64, 4), (4096, 64, 6)] if quick else [(4096, 256, 8), (16384, 256, 8)]
    methods = ["lfb auto (ssp)", "OR-tools flow", "cvxpy default", "cvxpy + HiGHS (oracle)"]
    rows = []
    for n, e, k in shapes:
        results = {}
        for m in methods:
            slow = m.startswith("cvxpy")
            reps = 1 if slow else (repeats if m != "OR-tools flow" else max(1, repeats // 2))
            spec = {"method": m, "n": n, "E": e, "k": k, "seed": seed, "repeats": reps}
            log(f"  target 1: {m} at n={n}, E={e}, k={k} ...")
            results[m] = _run_child("solver", spec, timeout=3600)
        ref_obj = results["cvxpy + HiGHS (oracle)"].get("objective")
        ours = results["lfb auto (ssp)"]
        for m in methods:
            r = results[m]
            row = {"n": n, "E": e, "k": k, "method": m}
            if "error" in r:
                row["error"] = r["error"]
            else:
                row.update(
                    median_s=float(np.median(r["times"])),
                    repeats=len(r["times"]),
                    peak_mib=r["peak_mib"],
                    objective=r["objective"],
                )
                if ref_obj is not None:
                    row["rel_diff_to_oracle"] = abs(r["objective"] - ref_obj) / abs(ref_obj)
                if "times" in ours:
                    row["ratio_to_ours"] = row["median_s"] / float(np.median(ours["times"]))
                for key in ("certificate_ok", "duality_gap", "no_negative_cycle"):
                    if key in r:
                        row[key] = r[key]
            rows.append(row)
    return {
        "title": "Target 1 - exact solver (ratio = method time / lfb auto time; "
        "goal: OR-tools >= 5x, cvxpy default >= 300x)",
        "rows": rows,
    }


def _target_stream(quick: bool, seed: int, log: Any) -> dict:
    batches = 100 if quick else 1000
    spec = {
        "n": 4096,
        "E": 64,
        "k": 6,
        "seed": seed,
        "batches": batches,
        "check_every": 25 if quick else 100,
    }
    log(f"  target 2: stream of {batches} batches (4096, 64, 6) ...")
    r = _run_child("stream", spec, timeout=7200)
    if "error" in r:
        return {"title": "Target 2 - streams", "rows": [{"error": r["error"]}]}
    solve, route, cold = map(np.asarray, (r["solve_times"], r["route_times"], r["cold_times"]))
    rows = [
        {
            "method": "numpy argpartition routing pass",
            "mean_s": route.mean(),
            "median_s": float(np.median(route)),
            "ratio_to_routing": 1.0,
        },
        {
            "method": "exact optimum, warm-started (auto)",
            "mean_s": solve.mean(),
            "median_s": float(np.median(solve)),
            "ratio_to_routing": solve.mean() / route.mean(),
            "certificates_ok": r["certificates_ok"],
            "objective_agrees_with_flow": r["objective_agrees_with_flow"],
            "checked_batches": r["checked"],
        },
        {
            "method": "exact optimum, cold (auto), 5 batches",
            "mean_s": cold.mean(),
            "median_s": float(np.median(cold)),
            "ratio_to_routing": cold.mean() / route.mean(),
        },
    ]
    return {
        "title": f"Target 2 - stream of {batches} batches of (4096, 64, 6), means over "
        "batches 2..N (goal: warm exact <= 5x routing)",
        "rows": rows,
    }


def _target_pooled(quick: bool, seed: int, log: Any) -> dict:
    n = 100_000 if quick else 1_000_000
    log(f"  target 3: pooled optimum n={n}, E=64, k=6 ...")
    r = _run_child("pooled", {"n": n, "E": 64, "k": 6, "seed": seed}, timeout=3600)
    if "error" in r:
        return {"title": "Target 3 - pooled", "rows": [{"error": r["error"]}]}
    row = {
        "n": n,
        "E": 64,
        "k": 6,
        "method": "lfb auto (ssp)",
        "seconds": r["times"][0],
        "peak_mib_method": r["peak_mib"],
        "peak_mib_process": r["peak_total_mib"],
        "scores_mib": r["scores_mib"],
        "certificate_ok": r["certificate_ok"],
        "duality_gap": r["duality_gap"],
        "no_negative_cycle": r["no_negative_cycle"],
    }
    return {
        "title": "Target 3 - pooled hindsight optimum (goal: < 60 s, < 4 GiB peak)",
        "rows": [row],
    }


def _target_kernel(repeats: int, seed: int, log: Any) -> dict:
    log("  target 4: routing kernel n=4096, E=256, k=8 float32 ...")
    r = _run_child(
        "kernel",
        {"n": 4096, "E": 256, "k": 8, "seed": seed, "repeats": max(20, 10 * repeats)},
        timeout=600,
    )
    if "error" in r:
        return {"title": "Target 4 - routing kernel", "rows": [{"error": r["error"]}]}
    t = r["times"]
    ref = t["numpy argpartition"]
    bound = t["read bound (scores.sum())"]
    rows = [
        {"method": m, "median_s": v, "speedup_vs_argpartition": ref / v, "x_read_bound": v / bound}
        for m, v in t.items()
    ]
    for row in rows[2:4]:
        row.update(identical=r["identical"], identical_with_ties=r["identical_with_ties"])
    return {
        "title": "Target 4 - selection + loads, n=4096, E=256, k=8, float32 "
        "(goal: public route >= 5x argpartition; x_read_bound = time / "
        "scores.sum() time)",
        "rows": rows,
    }


def _target_regret(quick: bool, seed: int, log: Any) -> dict:
    import tempfile

    steps = 500 if quick else 2000
    spec = {
        "steps": steps,
        "sweep_steps": [1e-3, 3e-3, 1e-2, 3e-2],
        "seed": seed,
        "loop_batches": 1000 if quick else 4000,
        "repeats": 1 if quick else 3,  # one point: the median of 3 calls (each side)
    }
    title = "Target 5 - regret engine"
    with tempfile.TemporaryDirectory(prefix="lfb-baseline-") as tmp:
        tree = _baseline_tree(tmp)
        where = (
            f"library at {BASELINE_COMMIT[:10]}"
            if tree is not None
            else "current library (baseline commit not available)"
        )
        log(f"  target 5: pre-refactor path on the {where}, T={steps} ...")
        old = _run_child("regret_legacy", spec, timeout=3600, pythonpath=tree)
    log(f"  target 5: run_point, sweep point and simulate loop (T={steps}) ...")
    r = _run_child("regret", spec, timeout=3600)
    for part in (old, r):
        if "error" in part:
            return {"title": title, "rows": [{"error": part["error"]}]}
    old_w, old_c = old["legacy"]
    agree = max(abs(a - b) for a, b in zip(old["dual_regret"], r["dual_regret"], strict=True))
    rows = [
        {
            "path": f"pre-refactor (batch list, dual per batch), {where}",
            "wall_s": old_w,
            "cpu_s": old_c,
            "speedup_cpu": 1.0,
        },
        {
            "path": "run_point (materialised stream)",
            "wall_s": r["engine"][0],
            "cpu_s": r["engine"][1],
            "speedup_cpu": old_c / r["engine"][1],
            "max_abs_diff_dual_regret": agree,
        },
        {
            "path": f"sweep point ({r['sweep_points']} step sizes share a stream), per point",
            "wall_s": r["sweep"][0] / r["sweep_points"],
            "cpu_s": r["sweep"][1] / r["sweep_points"],
            "speedup_cpu": old_c * r["sweep_points"] / r["sweep"][1],
        },
    ]
    rows += [
        {"path": f"  run_point part: {name}", "cpu_s": cpu}
        for name, cpu in r.get("parts", {}).items()
    ]
    rows += [
        {
            "path": f"simulate vs bare numpy loop, n=256 E={x['E']} k={x['k']}",
            "simulate_b_per_s": x["simulate_batches_per_s"],
            "numpy_b_per_s": x["numpy_batches_per_s"],
            "ratio": x["ratio"],
        }
        for x in r["loops"]
    ]
    return {
        "title": f"Target 5 - regret point, defaults n=256 E=16 k=2 T={steps}, 5 runs "
        "(speedup = CPU time of the pre-refactor path / this path, medians of 3 calls; goal >= 8x; "
        "simulate within 2x of numpy at E >= 16); no files written",
        "rows": rows,
    }


_IMPORT_PROBE = (
    "import time; t0, c0 = time.perf_counter(), time.process_time(); import lfbtheory; "
    "t1, c1 = time.perf_counter(), time.process_time(); "
    "print(repr(t1 - t0)); print(repr(c1 - c0)); print(lfbtheory.__file__)"
)


def _fresh_process(args: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, CPU s of the child: user + system, the child process)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def _heaviest_imports(stderr: str, top: int) -> list[tuple[str, float]]:
    """(module, cumulative seconds) of the ``top`` largest top-level-or-nested imports."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if cumulative.isdigit():
            rows.append((name, int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:top]


def _target_import(repeats: int, log: Any) -> dict:
    # Each repeat is a new interpreter (nothing cached in sys.modules). Minima are the figures
    # least affected by other load on the machine, medians show the spread; CPU time (user +
    # system) is less sensitive to a loaded machine than wall time.
    n = max(5, repeats)
    log(f"  target 6: import lfbtheory in {n} fresh interpreters ...")
    samples: dict[str, list[tuple[float, float]]] = {"inner": [], "whole": [], "bare": []}
    where = ""
    for _ in range(n):
        samples["bare"].append(_fresh_process([sys.executable, "-c", "pass"])[:2])
        wall, cpu, out = _fresh_process([sys.executable, "-c", _IMPORT_PROBE])
        inner_wall, inner_cpu, where = out.stdout.split("\n")[:3]
        samples["inner"].append((float(inner_wall), float(inner_cpu)))
        samples["whole"].append((wall, cpu))
    traced = _fresh_process([sys.executable, "-X", "importtime", "-c", "import lfbtheory"])[2]
    labels = {
        "inner": "import lfbtheory (timed inside the child)",
        "whole": "python -c 'import lfbtheory' (whole process)",
        "bare": "python -c pass (interpreter start)",
    }
    rows = []
    for key, label in labels.items():
        wall_s, cpu_s = (np.asarray(v) for v in zip(*samples[key], strict=True))
        rows.append(
            {
                "measure": label,
                "min_wall_s": float(wall_s.min()),
                "median_wall_s": float(np.median(wall_s)),
                "min_cpu_s": float(cpu_s.min()),
                "repeats": n,
            }
        )
    rows += [
        {"measure": f"  -X importtime cumulative: {name}", "min_wall_s": secs, "repeats": 1}
        for name, secs in _heaviest_imports(traced.stderr, 6)
    ]
    return {
        "title": f"Target 6 - import time of {where} (goal: import < 0.8 s)",
        "rows": rows,
    }


def run_bench(
    *,
    quick: bool = False,
    targets: tuple[int, ...] = (1, 2, 3, 4),
    repeats: int = 5,
    seed: int = 0,
    log: Any = print,
) -> dict:
    """Run the selected targets; return a JSON-ready dict of tables."""
    tables = []
    for tgt in targets:
        if tgt == 1:
            tables.append(_target_solver(quick, repeats, seed, log))
        elif tgt == 2:
            tables.append(_target_stream(quick, seed, log))
        elif tgt == 3:
            tables.append(_target_pooled(quick, seed, log))
        elif tgt == 4:
            tables.append(_target_kernel(repeats, seed, log))
        elif tgt == 5:
            tables.append(_target_regret(quick, seed, log))
        elif tgt == 6:
            tables.append(_target_import(repeats, log))
        elif tgt == 7:  # streamed points at the DeepSeek-V3 size: benchmarks/streamed_scale.py
            sys.path.insert(0, str(Path(__file__).parent))
            from streamed_scale import run_target

            tables.append(run_target((100, 500) if quick else (500, 5000), log=log))
        else:
            raise ValueError(f"targets must be in 1..7, got {tgt}")
    return {
        "quick": quick,
        "repeats": repeats,
        "seed": seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "tables": tables,
    }


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def format_tables(result: dict) -> str:
    lines = []
    for table in result["tables"]:
        lines += ["", table["title"]]
        rows = table["rows"]
        cols: list[str] = []
        for r in rows:
            cols += [c for c in r if c not in cols]
        cells = [[_fmt(r.get(c, "")) for c in cols] for r in rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cli(args: argparse.Namespace) -> int:
    if getattr(args, "tune", False):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import tune  # benchmarks/tune.py, beside this file

        return int(tune.main(quick=args.quick, repeats=args.repeats, seed=args.seed, out=args.out))
    targets = tuple(int(t) for t in args.targets.split(","))
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    out = (
        Path(args.out)
        if args.out
        else Path("results/bench")
        / (f"bench-{'quick-' if args.quick else ''}{time.strftime('%Y%m%dT%H%M%S')}.json")
    )
    result = run_bench(
        quick=args.quick,
        targets=targets,
        repeats=args.repeats,
        seed=args.seed,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    print(format_tables(result))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    print(f"\nJSON written to {out}")
    return 0


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--child":
    # One measurement in a fresh process (see _run_child): prints its JSON result.
    print(json.dumps(_CHILDREN[sys.argv[2]](json.loads(sys.argv[3]))))
