"""Sweeps: a grid of regret experiments (``lfb sweep CONFIG.toml``), resumable, on any executor.

A sweep file (TOML) has a ``[sweep]`` table (horizon, seeds, checkpoints, where to run) and a
``[grid]`` table of lists; the grid is the product of workloads x n x n_experts x k x seeds x
schedules x step sizes, and each element is one *point*: one regret experiment
(:func:`lfbtheory.experiments.regret.run_point`) that runs every rule of ``grid.rules`` on one
stream. See docs/sweeps.md and examples/sweep.toml.

Seeds. A point's stream seed is a hash of the parameters that define its stream (workload and
its options, n, E, seed label) into a 128-bit integer, used as ``SeedSequence([seed, 0])``
(calibration ``[seed, 1]``): never the execution order. Every schedule, step size, k and rule
on the same (workload, n, E, seed) therefore sees the same batches (common random numbers), and
a point computed anywhere, in any order, is the same.

Cache. A point's result is stored under the hash of its full config and the package version
(``points/<hash>.json``, written atomically when the point finishes); the shared calibration
and exact comparators of a stream under the hash of the stream's config
(``streams/<hash>.npz``). An interrupted sweep resumes and skips what is done; changing the
config changes exactly the hashes of the points it affects. Timings are kept apart
(``points/<hash>.timings.json``).

Outputs (in the sweep folder): sweep.json (the resolved spec), results.csv (one row per point
and rule, the columns of :data:`TABLE_PARAMS` then the regret summary fields), and summary
plots regret_vs_step.png, growth_map.png, pareto.png.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import os
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lfbtheory.analysis.regret import Comparators
from lfbtheory.experiments.executors import Executor, make_executor
from lfbtheory.experiments.regret import (
    SCHEDULE_CHOICES,
    Calibration,
    RegretConfig,
    RunSpec,
    StreamContext,
    _lock,
    package_versions,
    prepare_stream,
    read_user_file,
    run_point,
    summary_rows,
)

__all__ = [
    "SweepSpec",
    "Point",
    "SweepResult",
    "load_sweep",
    "expand",
    "run_sweep",
    "stream_seed",
    "TABLE_PARAMS",
]

TABLE_PARAMS = (
    "point",
    "stream",
    "workload",
    "workload_options",
    "n",
    "n_experts",
    "k",
    "horizon",
    "seed",
    "stream_seed",
    "schedule",
    "step",
    "u0",
    "rule",
)
SWEEP_KEYS = {
    "name",
    "out",
    "horizon",
    "seeds",
    "num_checkpoints",
    "calibration_batches",
    "solver",
    "burn_in",
    "cycle_steps",
    "scheduler",
    "workers",
}
GRID_KEYS = {"workloads", "n", "n_experts", "k", "rules", "schedules", "step_sizes"}


def _digest(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def _version() -> str:
    return str(package_versions()["lfbtheory"])


@dataclass(frozen=True)
class SweepSpec:
    """A resolved sweep file: run settings and the grid (every list non-empty)."""

    workloads: tuple[tuple[str, dict[str, Any]], ...]
    rules: tuple[str, ...]
    schedules: tuple[str, ...]
    step_sizes: tuple[float | None, ...] = (None,)
    n: tuple[int, ...] = (256,)
    n_experts: tuple[int, ...] = (16,)
    k: tuple[int, ...] = (2,)
    seeds: tuple[int, ...] = (0,)
    horizon: int = 2000
    num_checkpoints: int = 40
    calibration_batches: int = 8
    solver: str = "auto"
    burn_in: int | None = None
    cycle_steps: int = 20000
    name: str = "sweep"
    out: str | None = None
    scheduler: str | None = None
    workers: int | None = None
    source: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "workloads": [{"name": w, **o} for w, o in self.workloads],
            "rules": list(self.rules),
            "schedules": list(self.schedules),
            "step_sizes": ["calibrated" if s is None else s for s in self.step_sizes],
            "n": list(self.n),
            "n_experts": list(self.n_experts),
            "k": list(self.k),
            "seeds": list(self.seeds),
            "horizon": self.horizon,
            "num_checkpoints": self.num_checkpoints,
            "calibration_batches": self.calibration_batches,
            "solver": self.solver,
            "burn_in": self.burn_in,
            "cycle_steps": self.cycle_steps,
            "name": self.name,
        }

    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        return Path("results") / f"sweep-{self.name}-{_digest(self.to_json(), 8)}"


def _list(table: dict[str, Any], key: str, default: Any, where: str) -> list[Any]:
    v = table.get(key, default)
    v = v if isinstance(v, list) else [v]
    if not v:
        raise ValueError(f"{where}.{key} must be a non-empty list")
    return v


def _ints(values: list[Any], name: str) -> tuple[int, ...]:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} entries must be non-negative integers, got {v!r}")
    return tuple(values)


def parse_sweep(doc: dict[str, Any], source: str = "") -> SweepSpec:
    """A :class:`SweepSpec` from a parsed sweep file; ValueError naming the bad key."""
    if not isinstance(doc, dict):
        raise ValueError("a sweep file must be a TOML document with [sweep] and [grid] tables")
    unknown = sorted(set(doc) - {"sweep", "grid"})
    if unknown:
        raise ValueError(f"unknown top-level table(s) {unknown}; allowed: [sweep], [grid]")
    run = doc.get("sweep", {})
    grid = doc.get("grid")
    if not isinstance(run, dict) or not isinstance(grid, dict):
        raise ValueError("the sweep file needs a [grid] table (and optionally [sweep])")
    for table, allowed, where in ((run, SWEEP_KEYS, "sweep"), (grid, GRID_KEYS, "grid")):
        bad = sorted(set(table) - allowed)
        if bad:
            raise ValueError(
                f"unknown key(s) {bad} in [{where}]; allowed: {', '.join(sorted(allowed))}"
            )
    workloads = []
    for w in _list(grid, "workloads", ["stationary"], "grid"):
        if isinstance(w, str):
            workloads.append((w, {}))
        elif isinstance(w, dict) and isinstance(w.get("name"), str):
            workloads.append((w["name"], {k: v for k, v in w.items() if k != "name"}))
        else:
            raise ValueError(f"grid.workloads entries must be names or {{name = ...}}, got {w!r}")
    steps: list[float | None] = []
    for s in _list(grid, "step_sizes", ["calibrated"], "grid"):
        if s == "calibrated":
            steps.append(None)
        elif (
            isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and (s > 0)
        ):
            steps.append(float(s))
        else:
            raise ValueError(
                f"grid.step_sizes entries must be numbers > 0 or 'calibrated', got {s!r}"
            )
    schedules = _list(grid, "schedules", ["constant"], "grid")
    for s in schedules:
        if s not in SCHEDULE_CHOICES:
            raise ValueError(
                f"grid.schedules entries must be one of {', '.join(SCHEDULE_CHOICES)}; got {s!r}"
            )
    rules = _list(grid, "rules", ["sign"], "grid")
    if len(set(rules)) != len(rules) or not all(isinstance(r, str) for r in rules):
        raise ValueError(f"grid.rules must be distinct rule names, got {rules!r}")
    horizon = run.get("horizon", 2000)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 10:
        raise ValueError(f"sweep.horizon must be an integer >= 10 (batches T), got {horizon!r}")
    scheduler = run.get("scheduler") or None
    if scheduler is not None and not isinstance(scheduler, str):
        raise ValueError(f"sweep.scheduler must be a string tcp://HOST:PORT, got {scheduler!r}")
    spec = SweepSpec(
        workloads=tuple(workloads),
        rules=tuple(rules),
        schedules=tuple(schedules),
        step_sizes=tuple(dict.fromkeys(steps)),
        n=_ints(_list(grid, "n", [256], "grid"), "grid.n"),
        n_experts=_ints(_list(grid, "n_experts", [16], "grid"), "grid.n_experts"),
        k=_ints(_list(grid, "k", [2], "grid"), "grid.k"),
        seeds=_ints(_list(run, "seeds", [0], "sweep"), "sweep.seeds"),
        horizon=horizon,
        num_checkpoints=run.get("num_checkpoints", 40),
        calibration_batches=run.get("calibration_batches", 8),
        solver=run.get("solver", "auto"),
        burn_in=run.get("burn_in"),
        cycle_steps=run.get("cycle_steps", 20000),
        name=str(run.get("name", "sweep")),
        out=run.get("out"),
        scheduler=scheduler,
        workers=run.get("workers"),
        source=source,
    )
    expand(spec)  # validates every point's config (RegretConfig's checks)
    from lfbtheory.workloads import make_workload

    for (wl, opts), n, e in itertools.product(spec.workloads, spec.n, spec.n_experts):
        make_workload(wl, n=n, n_experts=e, **opts)  # names and options (no I/O)
    return spec


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (TOML)."""
    p = Path(path)
    text = read_user_file(p, "sweep file", "a .toml file")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"sweep file {p} is not valid TOML: {exc}") from None
    return parse_sweep(doc, str(p))


def stream_seed(workload: str, options: dict[str, Any], n: int, n_experts: int, seed: int) -> int:
    """The 128-bit stream seed of (workload, options, n, E, seed label): a SHA-256 hash of the
    parameters that define the stream, independent of execution order and of k, schedule,
    step size and rule (which share the stream)."""
    key = {"workload": workload, "options": options, "n": n, "n_experts": n_experts, "seed": seed}
    return int(_digest(key, 32), 16)


class Point(NamedTuple):
    """One grid point: its cache key, the stream key, its parameters and RegretConfig."""

    key: str
    stream: str
    params: dict[str, Any]
    config: RegretConfig


def expand(spec: SweepSpec) -> list[Point]:
    """Every point of the grid, in a fixed order ("published" takes no step size: it appears
    once per setting, with step "calibrated" meaning its fixed 1e-3)."""
    version = _version()
    points = []
    seen = set()
    for (wl, opts), n, e, k, seed, schedule, step in itertools.product(
        spec.workloads,
        spec.n,
        spec.n_experts,
        spec.k,
        spec.seeds,
        spec.schedules,
        spec.step_sizes,
    ):
        if schedule == "published":
            step = None
        runs = tuple(RunSpec(rule, rule, schedule, step) for rule in spec.rules)
        config = RegretConfig(
            workload=wl,
            workload_options=dict(opts),
            n=n,
            n_experts=e,
            k=k,
            steps=spec.horizon,
            seed=stream_seed(wl, opts, n, e, seed),
            runs=runs,
            solver=spec.solver,
            burn_in=spec.burn_in,
            num_checkpoints=spec.num_checkpoints,
            calibration_batches=spec.calibration_batches,
            cycle_steps=spec.cycle_steps,
        )
        key = _digest({"config": config.to_json(), "version": version})
        if key in seen:
            continue
        seen.add(key)
        skey = _digest({"stream": config.stream_json(), "version": version})
        params = {
            "workload": wl,
            "workload_options": json.dumps(opts, sort_keys=True),
            "n": n,
            "n_experts": e,
            "k": k,
            "horizon": spec.horizon,
            "seed": seed,
            "stream_seed": str(config.seed),
            "schedule": schedule,
            "step": "calibrated" if step is None else step,
        }
        points.append(Point(key, skey, params, config))
    return points


# ------------------------------------------------------------------------------- tasks


def _context_arrays(ctx: StreamContext) -> dict[str, Any]:
    c = ctx.comparators
    out: dict[str, Any] = {
        "calibration": np.array(
            [ctx.calibration.D, ctx.calibration.G, ctx.calibration.mu, ctx.calibration.t0]
        ),
        "workload": np.array(json.dumps(ctx.workload)),
        "seconds": np.array(json.dumps(ctx.seconds)),
    }
    if c is not None:
        out.update(
            batch_optimum=c.batch_optimum,
            t=c.t,
            pooled_optimum=c.pooled_optimum,
            hindsight_bias=c.hindsight_bias,
            capacity=np.array(c.capacity),
        )
        if c.batch_prices is not None:
            out["batch_prices"] = c.batch_prices
    return out


def _context_from(arrays: Any) -> StreamContext:
    cal = Calibration(*(float(x) for x in arrays["calibration"]))
    comp = None
    if "batch_optimum" in arrays:
        comp = Comparators(
            np.asarray(arrays["batch_optimum"]),
            np.asarray(arrays["t"]),
            np.asarray(arrays["pooled_optimum"]),
            np.asarray(arrays["hindsight_bias"]),
            int(arrays["capacity"]),
            np.asarray(arrays["batch_prices"]) if "batch_prices" in arrays else None,
        )
    return StreamContext(
        cal, comp, json.loads(str(arrays["workload"])), json.loads(str(arrays["seconds"]))
    )


def stream_task(config_json: dict[str, Any]) -> dict[str, Any]:
    """Task: the calibration and exact comparators of a point's stream (arrays)."""
    return _context_arrays(prepare_stream(RegretConfig.from_json(config_json)))


def point_task(config_json: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Task: every rule of one point over its stream; rows (summary) and timings."""
    config = RegretConfig.from_json(config_json)
    t0 = time.perf_counter()
    results, _ = run_point(config, _context_from(context))
    rows = summary_rows(results)
    for row, r in zip(rows, results, strict=True):
        first = r.trajectory.step[~np.isnan(r.trajectory.step)]
        row["u0"] = float(first[0]) if first.size else float("nan")
    return {
        "rows": rows,
        "seconds": {
            "point": time.perf_counter() - t0,
            "runs": {r.spec.label: r.seconds for r in results},
        },
    }


# ------------------------------------------------------------------------------- storage


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_npz(path: Path, arrays: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read_point(path: Path, key: str) -> dict[str, Any] | None:
    """A finished point's record, or None if absent or unreadable (then it is recomputed)."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == key and "rows" in rec else None


def _read_stream(path: Path) -> dict[str, Any] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError):
        return None


# ------------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class SweepResult:
    """Where the sweep wrote its results, and what this call did."""

    out: Path
    table: Path
    points: int
    computed: int
    cached: int
    streams_computed: int
    failures: tuple[str, ...] = ()
    plots: tuple[Path, ...] = ()


class SweepError(RuntimeError):
    """Some points failed; the finished ones are stored and a rerun resumes."""


def run_sweep(
    spec: SweepSpec,
    *,
    executor: Executor | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    plots: bool = True,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Run every point of ``spec`` not already stored in the sweep folder, then write the
    table and plots. ``executor`` defaults to :func:`make_executor` of the spec's scheduler /
    workers. Raises :class:`SweepError` listing failed points after storing all others."""
    from tqdm.auto import tqdm

    root = Path(out) if out is not None else spec.out_dir()
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out {root} is an existing file; give a folder path")
    points = expand(spec)
    root.mkdir(parents=True, exist_ok=True)
    (root / "points").mkdir(exist_ok=True)
    (root / "streams").mkdir(exist_ok=True)
    own = executor is None
    with _lock(root):
        _atomic_write(
            root / "sweep.json",
            json.dumps(
                {
                    "spec": spec.to_json(),
                    "version": _version(),
                    "points": [{"key": p.key, "stream": p.stream, **p.params} for p in points],
                },
                indent=2,
            ),
        )
        todo = [p for p in points if _read_point(root / "points" / f"{p.key}.json", p.key) is None]
        by_stream: dict[str, list[Point]] = defaultdict(list)
        for p in todo:
            by_stream[p.stream].append(p)
        contexts = {s: _read_stream(root / "streams" / f"{s}.npz") for s in by_stream}
        need = [s for s, c in contexts.items() if c is None]
        log(
            f"sweep {spec.name}: {len(points)} points ({len(points) - len(todo)} done), "
            f"{len(by_stream)} streams to use ({len(need)} to compute) -> {root}"
        )
        failures: list[str] = []
        computed = 0
        if todo:
            ex = executor if executor is not None else make_executor(spec.scheduler, spec.workers)
            try:
                computed = _drive(ex, root, by_stream, contexts, need, failures, progress, tqdm)
            finally:
                if own:
                    ex.close()
        table = write_table(root, points)
        figs: tuple[Path, ...] = ()
        if plots and not failures:
            try:
                figs = write_plots(root, table)
            except ImportError as exc:  # pandas is not a core dependency
                log(f"summary plots skipped: they need pandas ({exc}); pip install pandas")
        timings = {}
        for p in points:
            tp = root / "points" / f"{p.key}.timings.json"
            if tp.exists():
                timings[p.key] = json.loads(tp.read_text())
        _atomic_write(root / "timings.json", json.dumps(timings, indent=2))
    result = SweepResult(
        root,
        table,
        len(points),
        computed,
        len(points) - len(todo),
        len(need),
        tuple(failures),
        tuple(figs),
    )
    if failures:
        raise SweepError(
            f"{len(failures)} task(s) failed ({failures[0]}{' ...' if len(failures) > 1 else ''}); "
            f"{len(points) - len(todo) + computed} of {len(points)} points are stored in {root}; "
            "rerun the same command to compute only the missing ones"
        )
    return result


def _drive(
    ex: Executor,
    root: Path,
    by_stream: dict[str, list[Point]],
    contexts: dict[str, Any],
    need: list[str],
    failures: list[str],
    progress: bool,
    tqdm: Any,
) -> int:
    total = len(need) + sum(len(v) for v in by_stream.values())
    meta: dict[Any, tuple[str, str]] = {}
    pending: set[Any] = set()
    points = {p.key: p for ps in by_stream.values() for p in ps}

    def submit_points(skey: str) -> None:
        for p in by_stream[skey]:
            f = ex.submit(point_task, p.config.to_json(), contexts[skey])
            meta[f] = ("point", p.key)
            pending.add(f)

    for skey in by_stream:
        if contexts[skey] is None:
            f = ex.submit(stream_task, by_stream[skey][0].config.to_json())
            meta[f] = ("stream", skey)
            pending.add(f)
        else:
            submit_points(skey)
    computed = 0
    with tqdm(
        total=total, desc="lfb sweep", unit="task", disable=not progress, mininterval=0.5
    ) as bar:
        while pending:
            done, pending = ex.wait_first(pending)
            for f in done:
                kind, key = meta.pop(f)
                try:
                    res = f.result()
                except Exception as exc:  # stored points stay; the rest fail loudly
                    what = key if kind == "stream" else json.dumps(points[key].params)
                    failures.append(f"{kind} {what}: {type(exc).__name__}: {exc}")
                    if kind == "stream":
                        failures.extend(
                            f"point {json.dumps(p.params)}: its stream failed"
                            for p in by_stream[key]
                        )
                    bar.update(1)
                    continue
                if kind == "stream":
                    _atomic_npz(root / "streams" / f"{key}.npz", res)
                    contexts[key] = res
                    submit_points(key)
                else:
                    p = points[key]
                    _atomic_write(
                        root / "points" / f"{key}.timings.json",
                        json.dumps(res["seconds"], indent=2),
                    )
                    _atomic_write(
                        root / "points" / f"{key}.json",
                        json.dumps(
                            {
                                "key": key,
                                "params": p.params,
                                "config": p.config.to_json(),
                                "version": _version(),
                                "rows": res["rows"],
                            },
                            indent=2,
                        ),
                    )
                    computed += 1
                bar.update(1)
    return computed


# ------------------------------------------------------------------------------- table, plots


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if k == "fixed_batch_cycle" and isinstance(v, dict):
            out.update({f"cycle_{kk}": vv for kk, vv in v.items()})
        elif k not in ("label",):
            out[k] = v
    return out


def write_table(root: Path, points: list[Point]) -> Path:
    """results.csv: one row per stored point and rule (TABLE_PARAMS, then summary fields)."""
    rows = []
    for p in points:
        rec = _read_point(root / "points" / f"{p.key}.json", p.key)
        if rec is None:
            continue
        for r in rec["rows"]:
            flat = _flat(r)
            rows.append(
                {
                    "point": p.key,
                    "stream": p.stream,
                    **p.params,
                    "u0": flat.pop("u0", float("nan")),
                    "rule": flat.pop("rule"),
                    **{k: v for k, v in flat.items() if k not in ("schedule", "step")},
                }
            )
    extra: list[str] = []
    for r in rows:
        extra.extend(k for k in r if k not in TABLE_PARAMS and k not in extra)
    path = root / "results.csv"
    tmp = path.with_name(f".results.csv.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*TABLE_PARAMS, *extra], restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path


def _yscale(values: Any) -> str:
    """log when every value is > 0, else symlog (regret can be negative)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return "log" if v.size and np.all(v > 0) else "symlog"


_GROWTH_ORDER = ("bounded", "decreasing", "logarithmic", "sqrt-like", "linear", "undetermined")


def write_plots(root: Path, table: Path) -> tuple[Path, ...]:
    """Summary plots from results.csv (matplotlib Figure API): final dual regret and
    MaxVio_global vs the first step size u0 per schedule and rule; the growth class map; the
    Pareto front of dual regret vs MaxVio_global."""
    import pandas as pd
    from matplotlib.figure import Figure

    df = pd.read_csv(table)
    if df.empty:
        return ()
    df["setting"] = (
        df["workload"]
        + " n="
        + df["n"].astype(str)
        + " E="
        + df["n_experts"].astype(str)
        + " k="
        + df["k"].astype(str)
    )
    settings = sorted(df["setting"].unique())
    out = []

    fig = Figure(figsize=(11, 3.6 * len(settings)))
    axes = fig.subplots(len(settings), 2, squeeze=False)
    for row, setting in zip(axes, settings, strict=True):
        sub = df[df["setting"] == setting]
        for (schedule, rule), g in sub.groupby(["schedule", "rule"]):
            agg = (
                g.groupby("u0")
                .agg(
                    dr=("dual_regret", "mean"),
                    dr_lo=("dual_regret", "min"),
                    dr_hi=("dual_regret", "max"),
                    mv=("maxvio_global_final", "mean"),
                )
                .reset_index()
            )
            label = f"{schedule} / {rule}"
            row[0].errorbar(
                agg["u0"],
                agg["dr"],
                yerr=[agg["dr"] - agg["dr_lo"], agg["dr_hi"] - agg["dr"]],
                marker="o",
                ms=3,
                capsize=2,
                label=label,
            )
            row[1].plot(agg["u0"], agg["mv"], marker="o", ms=3, label=label)
        row[0].set(
            xscale="log",
            yscale=_yscale(sub["dual_regret"]),
            xlabel="first step size u0",
            ylabel="final dual regret",
            title=f"{setting}: dual regret at T",
        )
        row[1].set(
            xscale="log",
            yscale="log",
            xlabel="first step size u0",
            ylabel="MaxVio_global at T",
            title=f"{setting}: MaxVio_global at T",
        )
        row[0].legend(fontsize=7)
    h = 3.6 * len(settings)
    fig.subplots_adjust(
        hspace=0.45, wspace=0.25, left=0.08, right=0.98, top=1 - 0.45 / h, bottom=0.5 / h
    )
    out.append(root / "regret_vs_step.png")
    fig.savefig(out[-1], dpi=110)

    from matplotlib.colors import ListedColormap

    classes = list(_GROWTH_ORDER)
    cmap = ListedColormap(["#4daf4a", "#a6d854", "#377eb8", "#ff7f00", "#e41a1c", "#bbbbbb"])
    fig = Figure(figsize=(11, 3.2 * len(settings)))
    axes = fig.subplots(len(settings), 1, squeeze=False)[:, 0]
    for ax, setting in zip(axes, settings, strict=True):
        sub = df[df["setting"] == setting]
        ylabels = sorted({(s, r) for s, r in zip(sub["schedule"], sub["rule"], strict=True)})
        xlabels = sorted(
            sub["step"].astype(str).unique(),
            key=lambda s: (s == "calibrated", float(s) if s != "calibrated" else 0),
        )
        grid = np.full((len(ylabels), len(xlabels)), np.nan)
        text = [["" for _ in xlabels] for _ in ylabels]
        for (s, r, st), g in sub.groupby(["schedule", "rule", sub["step"].astype(str)]):
            counts = Counter(g["dual_regret_growth"].fillna("undetermined"))
            cls, c = counts.most_common(1)[0]
            i, j = ylabels.index((s, r)), xlabels.index(st)
            grid[i, j] = classes.index(cls) if cls in classes else classes.index("undetermined")
            text[i][j] = f"{cls}\n{c}/{len(g)}"
        ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5, aspect="auto")
        for i in range(len(ylabels)):
            for j in range(len(xlabels)):
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(xlabels)), xlabels, fontsize=8)
        ax.set_yticks(range(len(ylabels)), [f"{s} / {r}" for s, r in ylabels], fontsize=8)
        ax.set(
            xlabel="step size setting (u0; calibrated: the documented constant, for "
            "published the fixed 1e-3)",
            title=f"{setting}: growth class of the dual regret (majority over seeds)",
        )
    h = 3.2 * len(settings)
    fig.subplots_adjust(hspace=0.5, left=0.22, right=0.98, top=1 - 0.4 / h, bottom=0.5 / h)
    out.append(root / "growth_map.png")
    fig.savefig(out[-1], dpi=110)

    fig = Figure(figsize=(7.5, 5.5))
    ax = fig.subplots()
    markers = "osD^vP*X"
    rules = sorted(df["rule"].unique())
    for schedule, g in df.groupby("schedule"):
        for m, rule in zip(markers, rules, strict=False):
            h = g[g["rule"] == rule]
            if len(h):
                ax.scatter(
                    h["maxvio_global_final"],
                    h["dual_regret"],
                    marker=m,
                    s=18,
                    label=f"{schedule} / {rule}",
                    alpha=0.8,
                )
    pts = df[["maxvio_global_final", "dual_regret"]].dropna().to_numpy()
    if len(pts):
        order = np.lexsort((pts[:, 1], pts[:, 0]))
        front, best = [], np.inf
        for i in order:
            if pts[i, 1] < best:
                front.append(pts[i])
                best = pts[i, 1]
        f = np.array(front)
        ax.step(f[:, 0], f[:, 1], "k-", where="post", lw=0.8, label="Pareto front")
    ax.set(
        xscale="log",
        yscale=_yscale(df["dual_regret"]),
        xlabel="MaxVio_global at T (violation)",
        ylabel="final dual regret",
        title="Regret vs violation, every point and rule",
    )
    ax.legend(fontsize=6, ncol=2)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.93, bottom=0.1)
    out.append(root / "pareto.png")
    fig.savefig(out[-1], dpi=110)
    return tuple(out)
