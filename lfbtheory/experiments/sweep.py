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

Cache. A point's result is stored under the hash of its full config and the code identity
(the package version and a hash of every package file, :func:`lfbtheory.identity.code_identity`:
an edit to any module recomputes the points instead of reusing them), as
``points/<hash>.json``, written atomically when the point finishes; the shared calibration and
exact comparators of a stream under the hash of the stream's config (``streams/<hash>.npz``).
An interrupted sweep resumes and skips what is done; changing the config changes exactly the
hashes of the points it affects. Timings are kept apart
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
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lfbtheory import fileio, identity
from lfbtheory.analysis.regret import Comparators
from lfbtheory.experiments.calibrate import Calibration
from lfbtheory.experiments.config import SCHEDULE_CHOICES, RegretConfig, RunSpec
from lfbtheory.experiments.executors import Executor, make_executor
from lfbtheory.experiments.run import StreamContext, prepare_stream, run_point, warm_kernels
from lfbtheory.experiments.store import summary_rows
from lfbtheory.lp.model import METHODS

__all__ = [
    "SweepSpec",
    "Point",
    "SweepResult",
    "SweepError",
    "Estimate",
    "load_sweep",
    "parse_sweep",
    "estimate",
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
    "step_setting",
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
    "allow_large",
}
GRID_KEYS = {"workloads", "n", "n_experts", "k", "rules", "schedules", "step_sizes"}


def _digest(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:n]


def _version() -> str:
    """The code identity in every cache key and stored record: the package version and a
    hash of every package file (:func:`lfbtheory.identity.code_identity`), so an edited
    module recomputes what it could have changed instead of reusing it."""
    ident = identity.code_identity()
    return f"{ident['version']}+src.{ident['source'][:16]}"


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
    allow_large: bool = field(default=False, compare=False)
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


def _ints(values: list[Any], name: str, lo: int = 0) -> tuple[int, ...]:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} entries must be integers >= {lo}, got {v!r}")
    return tuple(values)


def _int_option(run: dict[str, Any], key: str, default: int | None, lo: int) -> int | None:
    v = run.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"sweep.{key} must be an integer >= {lo}, got {v!r}")
    return v


def _str_option(run: dict[str, Any], key: str, default: str | None) -> str | None:
    v = run.get(key, default)
    if v is not None and (not isinstance(v, str) or not v):
        raise ValueError(f"sweep.{key} must be a non-empty string, got {v!r}")
    return v


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def parse_sweep(doc: dict[str, Any], source: str = "", *, allow_large: bool = False) -> SweepSpec:
    """A :class:`SweepSpec` from a parsed sweep file: every option type-checked and the size
    checked against :func:`estimate` before anything runs; ValueError naming the bad key.
    ``allow_large`` (or ``allow_large = true`` in [sweep]) runs a sweep that
    :func:`check_size` would refuse."""
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
    workloads: list[tuple[str, dict[str, Any]]] = []
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
    if not all(isinstance(r, str) for r in rules) or len(set(rules)) != len(rules):
        raise ValueError(f"grid.rules must be distinct rule names, got {rules!r}")
    horizon = run.get("horizon", 2000)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 10:
        raise ValueError(f"sweep.horizon must be an integer >= 10 (batches T), got {horizon!r}")
    solver = run.get("solver", "auto")
    if solver not in METHODS:
        raise ValueError(f"sweep.solver must be one of {', '.join(METHODS)}; got {solver!r}")
    burn_in = _int_option(run, "burn_in", None, 0)
    if burn_in is not None and burn_in >= horizon:
        raise ValueError(f"sweep.burn_in must be in [0, horizon={horizon}), got {burn_in}")
    name = run.get("name", "sweep")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"sweep.name must be 1-64 letters, digits, '.', '_' or '-' (it names the results "
            f"folder), got {name!r}"
        )
    scheduler = _str_option(run, "scheduler", None)
    if scheduler is not None and "://" not in scheduler:
        raise ValueError(f"sweep.scheduler must look like tcp://HOST:PORT, got {scheduler!r}")
    large = run.get("allow_large", False)
    if not isinstance(large, bool):
        raise ValueError(f"sweep.allow_large must be true or false, got {large!r}")
    spec = SweepSpec(
        workloads=tuple(workloads),
        rules=tuple(rules),
        schedules=tuple(schedules),
        step_sizes=tuple(dict.fromkeys(steps)),
        n=_ints(_list(grid, "n", [256], "grid"), "grid.n", 1),
        n_experts=_ints(_list(grid, "n_experts", [16], "grid"), "grid.n_experts", 1),
        k=_ints(_list(grid, "k", [2], "grid"), "grid.k", 1),
        seeds=_ints(_list(run, "seeds", [0], "sweep"), "sweep.seeds"),
        horizon=horizon,
        num_checkpoints=_int_option(run, "num_checkpoints", 40, 1),  # type: ignore[arg-type]
        calibration_batches=_int_option(run, "calibration_batches", 8, 1),  # type: ignore[arg-type]
        solver=solver,
        burn_in=burn_in,
        cycle_steps=_int_option(run, "cycle_steps", 20000, 1),  # type: ignore[arg-type]
        name=name,
        out=_str_option(run, "out", None),
        scheduler=scheduler,
        workers=_int_option(run, "workers", None, 1),
        allow_large=large or allow_large,
        source=source,
    )
    check_size(spec)  # before expanding: a grid of 10^12 points must not hang here
    expand(spec)  # validates every point's config (RegretConfig's checks)
    from lfbtheory.workloads import make_workload

    for (wl, opts), n, e in itertools.product(spec.workloads, spec.n, spec.n_experts):
        make_workload(wl, n=n, n_experts=e, **opts)  # names and options (no I/O)
    return spec


def load_sweep(path: str | Path, *, allow_large: bool = False) -> SweepSpec:
    """Read and check a sweep file (TOML, at most 1 MiB; :func:`parse_sweep`)."""
    p = Path(path)
    doc = fileio.read_toml(p, what="sweep file")
    try:
        return parse_sweep(doc, str(p), allow_large=allow_large)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sweep file {p}: {exc}") from None


# ------------------------------------------------------------------------------- size

MAX_POINTS = 100_000
MAX_TASK_SECONDS = 24 * 3600.0
# Cost model (docs/sweeps.md): seconds per score entry T*n*E of a stream task (calibration
# and exact comparators) and of one rule in a point task, as benchmarks/sweep_cost.py
# measures them on one core, to one significant digit. They decide only what is refused as
# too long (MAX_TASK_SECONDS) and the estimate printed at the start.
STREAM_SECONDS_PER_ENTRY = 2e-7
RULE_SECONDS_PER_ENTRY = 3e-8


class Estimate(NamedTuple):
    """What a sweep will cost, before anything runs (the cost model of docs/sweeps.md).

    points, streams: grid points and distinct streams; task_bytes: memory of the largest task
    (a lower bound: its float64 stream T x n x E, materialised once, and the per-batch arrays
    of the comparators and of every rule);
    task_seconds: time of the largest task on one core; total_seconds: every task, one core.
    """

    points: int
    streams: int
    task_bytes: int
    task_seconds: float
    total_seconds: float


def estimate(spec: SweepSpec) -> Estimate:
    """The :class:`Estimate` of ``spec`` from its grid sizes alone (no point is expanded)."""
    t, r = spec.horizon, len(spec.rules)
    steps = len(spec.step_sizes)
    per_setting = sum(1 if s == "published" else steps for s in spec.schedules)
    settings = len(spec.workloads) * len(spec.k) * len(spec.seeds)
    points = streams = 0
    task_bytes, task_seconds, total = 0, 0.0, 0.0
    for n, e in itertools.product(spec.n, spec.n_experts):
        entries = t * n * e
        nbytes = 8 * (entries + t * e * (1 + 2 * r) + t * (4 + 4 * r))
        stream_s = STREAM_SECONDS_PER_ENTRY * entries
        point_s = RULE_SECONDS_PER_ENTRY * entries * r
        points += settings * per_setting
        streams += len(spec.workloads) * len(spec.seeds)
        task_bytes = max(task_bytes, nbytes)
        task_seconds = max(task_seconds, stream_s, point_s)
        total += len(spec.workloads) * len(spec.seeds) * stream_s
        total += settings * per_setting * point_s
    return Estimate(points, streams, task_bytes, task_seconds, total)


def _memory() -> int:
    """Physical memory of this machine (16 GiB if the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return 16 * 2**30


def _bytes(n: int) -> str:
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _human(seconds: float) -> str:
    for unit, scale in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def check_size(spec: SweepSpec) -> Estimate:
    """ValueError if ``spec`` is larger than this machine or a day per task can take
    (:func:`estimate`: more than MAX_POINTS points, a task needing more memory than this
    machine has, or more than MAX_TASK_SECONDS on one core), unless ``spec.allow_large``."""
    est = estimate(spec)
    if spec.allow_large:
        return est
    how = "set allow_large = true in [sweep] or pass --allow-large to run it anyway"
    if est.points > MAX_POINTS:
        raise ValueError(f"the grid has {est.points} points (more than {MAX_POINTS}); {how}")
    t, n, e = spec.horizon, max(spec.n), max(spec.n_experts)
    shape = f"horizon={t} x n={n} x E={e}"
    mem = _memory()
    if est.task_bytes > mem:
        raise ValueError(
            f"one task needs at least {_bytes(est.task_bytes)} of memory ({shape} float64 "
            f"scores, materialised once) and this machine has "
            f"{_bytes(mem)}; {how}"
        )
    if est.task_seconds > MAX_TASK_SECONDS:
        raise ValueError(
            f"one task would take about {_human(est.task_seconds)} on one core ({shape}; cost "
            f"model in docs/sweeps.md), more than {MAX_TASK_SECONDS / 3600:.0f} hours; {how}"
        )
    return est


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


def step_setting(schedule: str, step: float | None) -> str:
    """How a point's first step is set: "given" (the grid's number, in the ``step`` column),
    "calibrated" (the documented constant measured on calibration batches), or "published"
    (the fixed 1e-3 of the published rule). The step actually used is the ``u0`` column."""
    if schedule == "published":
        return "published"
    return "calibrated" if step is None else "given"


def expand(spec: SweepSpec) -> list[Point]:
    """Every point of the grid, in a fixed order ("published" takes no step size: it appears
    once per setting, with step_setting "published", its fixed 1e-3)."""
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
            "step_setting": step_setting(schedule, step),
            "step": step,  # None (an empty cell): no given step, see step_setting
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
        "workload": np.array(fileio.dumps_json(ctx.workload, indent=None)),
        "seconds": np.array(fileio.dumps_json(ctx.seconds, indent=None)),
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
        cal,
        comp,
        fileio.loads_json(str(arrays["workload"]), where="stream workload"),
        fileio.loads_json(str(arrays["seconds"]), where="stream seconds"),
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
# A cache hit must be the point it claims to be: a record is used only if its key, version
# and config are the point's and the digest of its rows matches (an edited or truncated file
# is recomputed, and the sweep says so); a stream file only if its key and the digest of its
# arrays match. Every file is written atomically (lfbtheory.fileio).


def _canonical(obj: Any) -> bytes:
    return json.dumps(fileio.to_json(obj), sort_keys=True, allow_nan=False).encode()


def _arrays_digest(arrays: dict[str, Any]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        if k in ("key", "sha256"):
            continue
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _store_point(root: Path, p: Point, res: dict[str, Any]) -> None:
    fileio.write_json(root / "points" / f"{p.key}.timings.json", res["seconds"])
    fileio.write_json(
        root / "points" / f"{p.key}.json",
        {
            "key": p.key,
            "params": p.params,
            "config": p.config.to_json(),
            "version": _version(),
            "rows": res["rows"],
            "rows_sha256": hashlib.sha256(_canonical(res["rows"])).hexdigest(),
        },
    )


def _read_point(
    path: Path, p: Point, version: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """A stored point's record, or (None, why it cannot be used); (None, None) if absent.
    ``version``: :func:`_version` (computed here if None)."""
    if not path.exists() and not path.is_symlink():
        return None, None
    try:
        rec = fileio.read_json(path, what="stored point")
    except fileio.FileFormatError as exc:
        return None, str(exc)
    why = None
    if not isinstance(rec, dict) or rec.get("key") != p.key:
        why = "not this point's record"
    elif rec.get("version") != (_version() if version is None else version):
        why = f"written by lfbtheory {rec.get('version')!r}"
    elif rec.get("config") != json.loads(_canonical(p.config.to_json())):
        why = "its config is not this point's"
    elif not isinstance(rec.get("rows"), list) or not all(
        isinstance(r, dict) and isinstance(r.get("rule"), str) for r in rec["rows"]
    ):
        why = "its rows are not a list of per-rule summaries"
    elif hashlib.sha256(_canonical(rec["rows"])).hexdigest() != rec.get("rows_sha256"):
        why = "its rows do not match their digest (edited or damaged)"
    return (None, f"stored point {path}: {why}") if why else (rec, None)


STREAM_FIELDS = {
    "key": fileio.NpzField("U", (0,)),
    "sha256": fileio.NpzField("U", (0,)),
    "calibration": fileio.NpzField("f", (1,)),
    "workload": fileio.NpzField("U", (0,)),
    "seconds": fileio.NpzField("U", (0,)),
    "batch_optimum": fileio.NpzField("f", (1,), False),
    "t": fileio.NpzField("iu", (1,), False),
    "pooled_optimum": fileio.NpzField("f", (1,), False),
    "hindsight_bias": fileio.NpzField("f", (1,), False),
    "capacity": fileio.NpzField("iu", (0,), False),
    "batch_prices": fileio.NpzField("f", (2,), False),
}


def _store_stream(path: Path, key: str, arrays: dict[str, Any]) -> dict[str, Any]:
    out = {**arrays, "key": np.array(key), "sha256": np.array(_arrays_digest(arrays))}
    fileio.write_npz(path, out)
    return out


def _read_stream(path: Path, key: str) -> tuple[dict[str, Any] | None, str | None]:
    if not path.exists() and not path.is_symlink():
        return None, None
    try:
        arrays = fileio.read_npz(path, STREAM_FIELDS, what="stored stream")
    except fileio.FileFormatError as exc:
        return None, str(exc)
    if str(arrays["key"]) != key or str(arrays["sha256"]) != _arrays_digest(arrays):
        return None, f"stored stream {path}: its key or digest does not match (edited or damaged)"
    if arrays["calibration"].shape != (4,):
        return None, f"stored stream {path}: calibration must hold D, G, mu, t0"
    return arrays, None


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
    on_stored: Callable[[int], None] | None = None,
) -> SweepResult:
    """Run every point of ``spec`` not already stored in the sweep folder, then write the
    table and plots. ``executor`` defaults to :func:`make_executor` of the spec's scheduler /
    workers (closed at the end; its workers killed if the sweep is interrupted). The size is
    checked first (:func:`check_size`). ``on_stored(m)`` is called after the m-th point of
    this call is stored (progress; fault injection in tests). Raises :class:`SweepError`
    listing failed points after storing all others."""
    from tqdm.auto import tqdm

    est = check_size(spec)
    root = Path(out) if out is not None else spec.out_dir()
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out {root} is an existing file; give a folder path")
    points = expand(spec)
    version = _version()
    root.mkdir(parents=True, exist_ok=True)
    (root / "points").mkdir(exist_ok=True)
    (root / "streams").mkdir(exist_ok=True)
    own = executor is None
    with fileio.folder_lock(root):
        fileio.write_json(
            root / "sweep.json",
            {
                "spec": spec.to_json(),
                "version": version,
                "points": [{"key": p.key, "stream": p.stream, **p.params} for p in points],
            },
        )
        todo, unusable = [], []
        for p in points:
            rec, why = _read_point(root / "points" / f"{p.key}.json", p, version)
            if rec is None:
                todo.append(p)
                unusable += [why] if why else []
        by_stream: dict[str, list[Point]] = defaultdict(list)
        for p in todo:
            by_stream[p.stream].append(p)
        contexts: dict[str, Any] = {}
        for skey in by_stream:
            contexts[skey], why = _read_stream(root / "streams" / f"{skey}.npz", skey)
            unusable += [why] if why else []
        need = [s for s, c in contexts.items() if c is None]
        log(
            f"sweep {spec.name}: {len(points)} points ({len(points) - len(todo)} done), "
            f"{len(by_stream)} streams to use ({len(need)} to compute) -> {root}"
            + (f"; about {_human(est.total_seconds)} on one core" if todo else "")
        )
        if unusable:
            log(f"{len(unusable)} stored file(s) cannot be used and are recomputed: {unusable[0]}")
        failures: list[str] = []
        computed = 0
        if todo:
            ex = executor if executor is not None else make_executor(spec.scheduler, spec.workers)
            if ex.name != "serial":
                # Compile once here before any worker needs a kernel: the workers then load
                # them from numba's on-disk cache instead of each compiling cold.
                log("preparing the kernels in this process before dispatching workers ...")
                warm_kernels(log)
            try:
                computed = _drive(
                    ex, root, by_stream, contexts, need, failures, progress, tqdm, on_stored
                )
            except BaseException:
                if own:
                    ex.close(cancel=True)
                raise
            if own:
                ex.close()
        table = write_table(root, points, version)
        figs: tuple[Path, ...] = ()
        if plots and not failures:
            try:
                figs = write_plots(root, table)
            except ImportError as exc:  # pandas is not a core dependency
                log(f"summary plots skipped: they need pandas ({exc}); pip install pandas")
        timings = {}
        for p in points:
            try:
                timings[p.key] = fileio.read_json(
                    root / "points" / f"{p.key}.timings.json", what="timings"
                )
            except fileio.FileFormatError:
                continue
        fileio.write_json(root / "timings.json", timings)
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
    on_stored: Callable[[int], None] | None,
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
                    contexts[key] = _store_stream(root / "streams" / f"{key}.npz", key, res)
                    submit_points(key)
                else:
                    _store_point(root, points[key], res)
                    computed += 1
                    if on_stored is not None:
                        on_stored(computed)
                bar.update(1)
    return computed


# ------------------------------------------------------------------------------- table, plots


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if k == "fixed_batch_cycle" and isinstance(v, dict):
            out.update({f"cycle_{kk}": vv for kk, vv in v.items()})
        elif k not in ("label", "schedule_used"):  # the table's u0 is the step used
            out[k] = v
    return out


def write_table(root: Path, points: list[Point], version: str | None = None) -> Path:
    """results.csv: one row per stored point and rule (TABLE_PARAMS, then summary fields)."""
    rows = []
    for p in points:
        rec, _ = _read_point(root / "points" / f"{p.key}.json", p, version)
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
    with fileio.atomic_open(path, "w") as f:
        w = csv.DictWriter(f, fieldnames=[*TABLE_PARAMS, *extra], restval="")
        w.writeheader()
        w.writerows(rows)
    return path


def _yscale(values: Any) -> str:
    """log when every value is > 0, else symlog (regret can be negative)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return "log" if v.size and np.all(v > 0) else "symlog"


def _save(fig: Any, path: Path) -> None:
    with fileio.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)


_GROWTH_ORDER = ("bounded", "decreasing", "logarithmic", "sqrt-like", "linear", "undetermined")


def step_column(step_setting: str, step: float) -> str:
    """The growth map's column of a point: its given step ``f"{u0:g}"``, "calibrated", or
    "published (1e-3)" (the published rule's fixed step has a column of its own, never
    "calibrated")."""
    if step_setting == "given":
        return f"{step:g}"
    if step_setting == "published":
        return "published (1e-3)"
    if step_setting == "calibrated":
        return "calibrated"
    raise ValueError(f"step_setting must be given, calibrated or published, got {step_setting!r}")


def _step_column_order(col: str) -> tuple[int, float]:
    """Given steps in increasing order, then "calibrated", then "published (1e-3)"."""
    rank = {"calibrated": 1, "published (1e-3)": 2}.get(col, 0)
    return rank, float(col) if rank == 0 else 0.0


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
    # a point's growth class is absent when its curve has fewer than 4 checkpoints after
    # the burn-in (analysis.regret.regret_report): then it is undetermined
    if "dual_regret_growth" in df:
        df["growth"] = df["dual_regret_growth"].fillna("undetermined")
    else:
        df["growth"] = "undetermined"
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
    _save(fig, out[-1])

    from matplotlib.colors import ListedColormap

    classes = list(_GROWTH_ORDER)
    cmap = ListedColormap(["#4daf4a", "#a6d854", "#377eb8", "#ff7f00", "#e41a1c", "#bbbbbb"])
    fig = Figure(figsize=(11, 3.2 * len(settings)))
    axes = fig.subplots(len(settings), 1, squeeze=False)[:, 0]
    for ax, setting in zip(axes, settings, strict=True):
        sub = df[df["setting"] == setting]
        ylabels = sorted({(s, r) for s, r in zip(sub["schedule"], sub["rule"], strict=True)})
        # one column per step setting: the given numbers in order, then "calibrated", then
        # "published (1e-3)" (never filed under "calibrated")
        setting_of = np.array(
            [step_column(a, v) for a, v in zip(sub["step_setting"], sub["step"], strict=True)]
        )
        xlabels = sorted(set(setting_of), key=_step_column_order)
        grid = np.full((len(ylabels), len(xlabels)), np.nan)
        text = [["" for _ in xlabels] for _ in ylabels]
        for (s, r, st), g in sub.groupby(["schedule", "rule", setting_of]):
            counts = Counter(g["growth"])
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
            xlabel="step size setting (a given u0; calibrated: the documented constant; "
            "published: the fixed 1e-3)",
            title=f"{setting}: growth class of the dual regret (majority over seeds)",
        )
    h = 3.2 * len(settings)
    fig.subplots_adjust(hspace=0.5, left=0.22, right=0.98, top=1 - 0.4 / h, bottom=0.5 / h)
    out.append(root / "growth_map.png")
    _save(fig, out[-1])

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
    _save(fig, out[-1])
    return tuple(out)
