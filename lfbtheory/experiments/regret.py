"""Regret experiments: a frozen config -> run -> result files (the benchopt pattern).

``run_regret(config)`` draws one seeded stream from a workload, materialises it once, runs
every bias-update rule of ``config.runs`` on it (:func:`run_point`), computes the exact
comparators once per stream (each batch's optimum warm-started along the stream and the pooled
hindsight optima, :mod:`lfbtheory.analysis.regret`; :func:`prepare_stream`, shared by every
rule and step size on the stream), and writes a results folder:

    config.json    the config, the calibrated constants, seeds, package versions
    summary.json   one entry per run: final regrets, violations, MaxVio, growth classes
                   (reproducible: identical runs give a bit-identical file)
    timings.json   wall-clock seconds per phase and run (kept out of summary.json)
    runs/<label>.npz, runs/<label>_curves.csv   trajectories and regret curves
    comparators.npz, regret.png, maxvio.png, bias.png

The folder is written under a temporary name next to the target and renamed into place only
when complete, so a folder with a summary.json is always a finished run; while a run is in
progress a lock file ``.<folder>.lock`` (holding its pid and host) makes a second run on the
same folder fail with a clear error instead of mixing results.

Step-size constants are not tuned by hand. The published sign rule keeps u = 1e-3 (arXiv
2408.15664 Sec. 3); the DeepSeek-V3 schedule keeps 1e-3 for the first 14.3/14.8 of the
horizon, then 0 (arXiv 2412.19437 Sec. 4.2). The proportional rule is online gradient
descent on f_t(p) = D_t(p) / L, whose gradient is -e with e = (c_bar - c)/c_bar
(lfbtheory.online.updates), and its constants come from the textbook rules (Hazan, Intro. to
OCO, Thm 3.1 and 3.3), measured on ``calibration_batches`` batches drawn from the same
workload (same per-expert popularity, ``offset_seed = seed``) with independent noise (seed
[seed, 1]; the stream uses [seed, 0]):

    D  = ||p*||_2, p* the (mean-zero) exact hindsight price of the calibration batches
         (distance from the initial bias 0 to the comparator);
    G  = root-mean-square of ||e_s(0)||_2 over the calibration batches (gradient norm at 0);
    mu = smallest eigenvalue on the mean-zero subspace of the symmetrised Jacobian of the
         expected relative load d(c/c_bar)/dp at p*, by central differences with
         h = 0.25 * rms(p*) on the pooled calibration tokens (strong convexity of E f_t).

    constant       u   = D / (G sqrt(T))            (optimal fixed step for horizon T)
    inverse_sqrt   u_t = (D / G) / sqrt(t + 1)
    inverse        u_t = 1 / (mu (t + t0)), t0 = max(1, G / (mu D)) so that u_0 <= D / G

A run may instead fix its first step u_0 (``RunSpec.step``, what a sweep varies): constant
u_t = u_0, inverse_sqrt u_t = u_0 / sqrt(t + 1), inverse u_t = u_0 / (t + 1), deepseek_v3
u_t = u_0 until 14.3/14.8 of the horizon, then 0. "published" is the fixed 1e-3 and takes no
step.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import math
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from lfbtheory.analysis.regret import (
    Comparators,
    LimitCycle,
    RegretReport,
    compute_comparators,
    fixed_batch_cycle,
    regret_report,
)
from lfbtheory.lp.solve import solve_balanced
from lfbtheory.online import schedules as sched
from lfbtheory.online.loop import Trajectory, simulate
from lfbtheory.online.updates import load_error, make_rule
from lfbtheory.routing import route
from lfbtheory.workloads import MATERIALIZE_LIMIT_BYTES, make_workload, materialize

__all__ = [
    "RunSpec",
    "RegretConfig",
    "Calibration",
    "StreamContext",
    "ResultsLockedError",
    "DEFAULT_RUNS",
    "calibrate",
    "prepare_stream",
    "run_point",
    "run_regret",
    "results_folder",
    "format_table",
    "package_versions",
]

PUBLISHED_RATE = 1e-3
DEEPSEEK_STOP_FRACTION = 14.3 / 14.8


@dataclass(frozen=True)
class RunSpec:
    """One run: a label, an update rule name, a step schedule, and optionally its first step.

    schedule: "published" (constant 1e-3), "deepseek_v3" (1e-3 then 0), or one of the
    calibrated proportional schedules "constant", "inverse_sqrt", "inverse". ``step`` (None:
    the documented constant) fixes the first step u_0 instead (module docstring).
    """

    label: str
    rule: str
    schedule: str
    step: float | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "rule": self.rule, "schedule": self.schedule}
        if self.step is not None:  # omitted when None: configs without steps keep their digest
            d["step"] = self.step
        return d


DEFAULT_RUNS: tuple[RunSpec, ...] = (
    RunSpec("sign u=1e-3 (published)", "sign", "published"),
    RunSpec("sign DeepSeek-V3 schedule", "sign", "deepseek_v3"),
    RunSpec("proportional constant", "proportional", "constant"),
    RunSpec("proportional c/sqrt(t)", "proportional", "inverse_sqrt"),
    RunSpec("proportional c/t", "proportional", "inverse"),
)
SCHEDULE_CHOICES = ("published", "deepseek_v3", "constant", "inverse_sqrt", "inverse")


@dataclass(frozen=True)
class RegretConfig:
    """Everything that determines a regret experiment (and its results folder's name)."""

    workload: str = "stationary"
    workload_options: dict[str, Any] = field(default_factory=dict)
    n: int = 256
    n_experts: int = 16
    k: int = 2
    steps: int = 2000
    seed: int = 0
    runs: tuple[RunSpec, ...] = DEFAULT_RUNS
    solver: str = "auto"
    burn_in: int | None = None
    num_checkpoints: int = 40
    calibration_batches: int = 8
    cycle_steps: int = 20000

    def __post_init__(self) -> None:
        for name in (
            "n",
            "n_experts",
            "k",
            "steps",
            "num_checkpoints",
            "calibration_batches",
            "cycle_steps",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.steps < 10:
            raise ValueError(
                f"steps must be >= 10 to separate burn-in from growth, got {self.steps}"
            )
        if self.k > self.n_experts:
            raise ValueError(f"k must be in [1, E={self.n_experts}], got {self.k}")
        if (self.n * self.k) % self.n_experts:
            raise ValueError(
                f"n*k must be divisible by E (capacity n*k/E): n={self.n}, k={self.k}, "
                f"E={self.n_experts}"
            )
        if not isinstance(self.workload_options, dict):
            raise TypeError(
                f"workload_options must be a dict, got {type(self.workload_options).__name__}"
            )
        if not self.runs:
            raise ValueError("runs must name at least one run")
        for r in self.runs:
            if not isinstance(r, RunSpec):
                raise TypeError(f"runs must hold RunSpec entries, got {type(r).__name__}")
            if r.schedule not in SCHEDULE_CHOICES:
                raise ValueError(
                    f"schedule must be one of {', '.join(SCHEDULE_CHOICES)}; got {r.schedule!r}"
                )
            if r.step is not None:
                if (
                    isinstance(r.step, bool)
                    or not isinstance(r.step, (int, float))
                    or not (math.isfinite(r.step) and r.step > 0)
                ):
                    raise ValueError(f"step must be a finite number > 0 or None, got {r.step!r}")
                if r.schedule == "published":
                    raise ValueError(
                        "step must be None for schedule 'published' (the fixed u = 1e-3); use "
                        "schedule 'constant' with a step"
                    )
            make_rule(r.rule, PUBLISHED_RATE)
        if len({r.label for r in self.runs}) != len(self.runs):
            raise ValueError("run labels must be unique")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["runs"] = [r.to_json() for r in self.runs]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RegretConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a JSON object, got a JSON {type(d).__name__}")
        d = dict(d)
        runs = d.get("runs", [r.to_json() for r in DEFAULT_RUNS])
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise ValueError("config 'runs' must be a list of objects {label, rule, schedule}")
        try:
            d["runs"] = tuple(RunSpec(**r) for r in runs)
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"config has an unknown or missing field: {exc}") from None

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:10]

    def stream_json(self) -> dict[str, Any]:
        """The fields that determine the stream, its calibration and its comparators (what
        every rule and step size run on the stream shares)."""
        d = self.to_json()
        for key in ("runs", "burn_in", "cycle_steps"):
            d.pop(key)
        return d


@dataclass(frozen=True)
class Calibration:
    """Measured constants of the documented step rules (module docstring)."""

    D: float
    G: float
    mu: float
    t0: float

    def schedule(self, name: str, steps: int, step: float | None = None) -> sched.Schedule:
        """The schedule ``name`` with its documented constant, or first step ``step``."""
        if name == "published":
            if step is not None:
                raise ValueError("step must be None for schedule 'published'")
            return sched.constant(PUBLISHED_RATE)
        if name == "deepseek_v3":
            return sched.deepseek_v3(
                PUBLISHED_RATE if step is None else step,
                stop_step=max(1, round(DEEPSEEK_STOP_FRACTION * steps)),
            )
        if name == "constant":
            return sched.constant(self.D / (self.G * math.sqrt(steps)) if step is None else step)
        if name == "inverse_sqrt":
            return sched.inverse_sqrt(self.D / self.G if step is None else step, 1.0)
        if name == "inverse":
            return (
                sched.inverse(1.0 / self.mu, self.t0) if step is None else sched.inverse(step, 1.0)
            )
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULE_CHOICES)}; got {name!r}")


def calibrate(batches: list[NDArray[np.float64]], k: int, solver: str = "auto") -> Calibration:
    """Measure D, G, mu on calibration batches (rules in the module docstring)."""
    pooled = np.concatenate(batches)
    e = pooled.shape[1]
    p_star = solve_balanced(pooled, k, method=solver).bias  # type: ignore[arg-type]
    p_star = p_star - p_star.mean()
    d = float(np.linalg.norm(p_star))
    g = float(
        np.sqrt(np.mean([np.sum(load_error(_loads(b, k, np.zeros(e))) ** 2) for b in batches]))
    )
    h = 0.25 * float(np.sqrt(np.mean(p_star**2))) or 1e-3
    jac = np.empty((e, e))
    for j in range(e):
        step = np.zeros(e)
        step[j] = h
        up = _loads(pooled, k, p_star + step)
        down = _loads(pooled, k, p_star - step)
        mean = pooled.shape[0] * k / e
        jac[:, j] = (up - down) / (2 * h * mean)
    sym = 0.5 * (jac + jac.T)
    basis = np.linalg.qr(np.eye(e) - 1.0 / e, mode="reduced")[0][:, : e - 1]
    mu = float(np.linalg.eigvalsh(basis.T @ sym @ basis).min())
    if not (mu > 0 and d > 0 and g > 0):
        raise ValueError(
            f"calibration failed (D={d:.3g}, G={g:.3g}, mu={mu:.3g}): the workload is already "
            "balanced at bias 0 or too discrete to estimate a curvature; use larger n"
        )
    return Calibration(d, g, mu, max(1.0, g / (mu * d)))


def _loads(scores: NDArray[np.float64], k: int, bias: NDArray[np.float64]) -> NDArray[np.float64]:
    ex = route(scores, k, bias, weights=False).experts
    return np.bincount(ex.ravel(), minlength=scores.shape[1]).astype(np.float64)


@dataclass(frozen=True)
class RunResult:
    spec: RunSpec
    trajectory: Trajectory
    report: RegretReport
    seconds: float
    cycle: LimitCycle | None = None


class StreamContext(NamedTuple):
    """What every run on one stream shares: the calibration, the exact comparators (None for
    an adaptive workload, whose stream depends on the rule), the workload's config."""

    calibration: Calibration
    comparators: Comparators | None
    workload: dict[str, Any] | None
    seconds: dict[str, float]


class _Recorder:
    """Wraps an adaptive generator and keeps every batch it yields (for the comparators)."""

    def __init__(self, gen: Any) -> None:
        self.gen, self.batches = gen, []

    def __iter__(self) -> Iterator[NDArray[np.float64]]:
        return self

    def __next__(self) -> NDArray[np.float64]:
        return self.send(None)

    def send(self, value: Any) -> NDArray[np.float64]:
        b = next(self.gen) if value is None else self.gen.send(value)
        self.batches.append(b)
        return b


def _workload(config: RegretConfig) -> Any:
    wl = make_workload(
        config.workload, n=config.n, n_experts=config.n_experts, **config.workload_options
    )
    if getattr(wl, "offset_seed", 0) is None:
        # Calibrate on the same popularity profile as the stream, with independent noise: the
        # per-expert offsets come from offset_seed = seed, the noise from [seed, 0] / [seed, 1].
        wl = dataclasses.replace(wl, offset_seed=config.seed)  # type: ignore[type-var]
    return wl


def _stream_seed(config: RegretConfig) -> np.random.SeedSequence:
    return np.random.SeedSequence([config.seed, 0])


def _materialise(config: RegretConfig, wl: Any) -> NDArray[np.float64] | list[NDArray[np.float64]]:
    """The whole stream: one (T, n, E) array when it fits MATERIALIZE_LIMIT_BYTES (identical
    to iterating ``wl.batches``), else the list of batches."""
    seed = _stream_seed(config)
    if config.steps * config.n * config.n_experts * 8 <= MATERIALIZE_LIMIT_BYTES:
        return materialize(wl, config.steps, seed)
    return list(wl.batches(config.steps, seed))


def _is_adaptive(wl: Any) -> bool:
    return bool(getattr(wl, "adaptive", False))


def _comparators(config: RegretConfig, batches: Any, progress: Any) -> Any:
    """The exact comparators of ``batches`` with the config's solver and checkpoint grid."""
    return compute_comparators(
        batches,
        config.k,
        solver=config.solver,
        num_checkpoints=config.num_checkpoints,
        progress=progress,
    )


def prepare_stream(
    config: RegretConfig,
    batches: Any = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> StreamContext:
    """Calibrate on ``config``'s calibration batches and compute the stream's comparators
    once (``batches``: the materialised stream, drawn here if None; skipped for an adaptive
    workload). Depends only on :meth:`RegretConfig.stream_json`."""
    wl = _workload(config)
    t0 = time.perf_counter()
    calib = calibrate(
        list(wl.batches(config.calibration_batches, np.random.SeedSequence([config.seed, 1]))),
        config.k,
        config.solver,
    )
    t1 = time.perf_counter()
    comp = None
    if not _is_adaptive(wl):
        if batches is None:
            batches = _materialise(config, wl)
        comp = _comparators(config, batches, progress)
    seconds = {"calibration": t1 - t0, "comparators": time.perf_counter() - t1}
    return StreamContext(calib, comp, wl.config() if hasattr(wl, "config") else None, seconds)


def run_point(
    config: RegretConfig,
    context: StreamContext | None = None,
    *,
    batches: Any = None,
    progress: Callable[[int], None] | None = None,
    comparator_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[RunResult], StreamContext]:
    """Run every rule of ``config.runs`` over ONE materialised stream and report each against
    the shared comparators (``context`` from :func:`prepare_stream`, computed if None).

    ``progress(i)`` is called with the simulated batches done so far (over all runs).
    """
    wl = _workload(config)
    adaptive = _is_adaptive(wl)
    if batches is None and not adaptive:
        batches = _materialise(config, wl)
    if context is None:
        context = prepare_stream(config, batches, progress=comparator_progress)
    rules = [
        make_rule(spec.rule, context.calibration.schedule(spec.schedule, config.steps, spec.step))
        for spec in config.runs
    ]
    shared = 0.0
    if not adaptive:
        # Every run in one pass over the stream; each run's ``seconds`` is an even share of
        # this simulation time plus its own report (and limit cycle) time.
        t0 = time.perf_counter()
        trajs = simulate(batches, config.k, rules, progress=progress)
        shared = (time.perf_counter() - t0) / len(rules)
    results = []
    for i, (spec, rule) in enumerate(zip(config.runs, rules, strict=True)):
        t0 = time.perf_counter()
        if adaptive:
            done = i * config.steps
            tick = None if progress is None else (lambda t, d=done: progress(d + t))
            rec = _Recorder(wl.adaptive_batches(config.steps, _stream_seed(config)))
            traj = simulate(rec, config.k, rule, adaptive=True, progress=tick)
            run_batches: Any = rec.batches
            comp = _comparators(config, run_batches, comparator_progress)
        else:
            run_batches = batches
            comp = context.comparators
            traj = trajs[i]
        rep = regret_report(traj, run_batches, config.k, comparators=comp, burn_in=config.burn_in)
        cycle = None
        if spec.rule in ("sign", "centered_sign") and spec.schedule == "published":
            # The lattice limit cycle of the constant-step sign rule on a fixed batch (batch 0).
            cycle = fixed_batch_cycle(
                run_batches[0], config.k, spec.rule, PUBLISHED_RATE, max_steps=config.cycle_steps
            )
        results.append(RunResult(spec, traj, rep, shared + time.perf_counter() - t0, cycle))
    return results, context


class ResultsLockedError(ValueError):
    """Another run holds the lock of the results folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """An exclusive lock file ``.<name>.lock`` next to ``out`` holding pid and host; a lock
    of a dead process on this host is taken over, a live one raises ResultsLockedError."""
    lock = out.parent / f".{out.name}.lock"
    host = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text())
                pid, where = int(held["pid"]), str(held["host"])
            except (OSError, ValueError, KeyError, TypeError):
                pid, where = -1, "?"
            if where == host and pid > 0 and not _pid_alive(pid):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise ResultsLockedError(
                f"{out} is being written by another run (pid {pid} on {where}; lock file "
                f"{lock}); wait for it, or delete the lock file if that run is gone"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "host": host}, f)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _looks_like_results(path: Path) -> bool:
    return path.is_dir() and (
        not any(path.iterdir())
        or (path / "summary.json").exists()
        or (path / "config.json").exists()
        or (path / "sweep.json").exists()
    )


def check_out_dir(out: Path) -> None:
    """ValueError unless ``out`` can become a results folder (absent, empty, or a previous
    results folder, which is replaced)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder path")
    if out.exists() and not _looks_like_results(out):
        raise ValueError(
            f"--out {out} is a non-empty folder that is not an lfb results folder; refusing to "
            "replace it"
        )


@contextlib.contextmanager
def results_folder(out: str | Path) -> Iterator[Path]:
    """Lock ``out``, yield a fresh temporary folder next to it, and on success rename it to
    ``out`` (replacing an earlier results folder); on failure remove it, ``out`` untouched."""
    out = Path(out)
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        check_out_dir(out)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)


def package_versions() -> dict[str, str | None]:
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for pkg in ("lfbtheory", "numpy", "scipy", "cvxpy", "numba"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return versions


def _kernels_uncompiled() -> bool:
    """True when numba's on-disk cache holds no compiled per-batch solver yet (the first run
    after install compiles the package's kernels). Reads numba's cache index path, a private
    attribute: anything unexpected (no numba, another numba layout) answers False."""
    try:
        from lfbtheory._engine.ssp import dense_stream

        index = Path(dense_stream._cache._cache_file._index_path)
    except Exception:  # noqa: BLE001 - a note for the user, never a failure
        return False
    return not index.exists()


def _compile_first(log: Callable[[str], None]) -> None:
    """On a cold numba cache, compile the kernels on a 20-batch point first, saying so (else
    the first progress step would take the whole compile time and the bar's ETA hours)."""
    if not _kernels_uncompiled():
        return
    log(
        "compiling the package's numba kernels (first run after install, ~35 s on 2 cores; "
        "cached on disk for later runs) ..."
    )
    start = time.perf_counter()
    run_point(RegretConfig(steps=20, num_checkpoints=5))
    log(f"compiled in {time.perf_counter() - start:.0f} s")


def run_regret(
    config: RegretConfig,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    plots: bool = True,
) -> tuple[list[RunResult], Path]:
    """Run the experiment of ``config`` and write its results folder (returned)."""
    from tqdm.auto import tqdm

    out = Path(out_dir) if out_dir is not None else Path("results") / f"regret-{config.digest()}"
    check_out_dir(out)
    if progress:
        _compile_first(lambda msg: print(msg, file=sys.stderr, flush=True))
    start = time.perf_counter()
    wl = _workload(config)
    adaptive = _is_adaptive(wl)
    n_runs = len(config.runs)
    ncp = len(np.unique(np.round(np.geomspace(1, config.steps, config.num_checkpoints))))
    comp_units = config.steps + ncp + 1
    total = n_runs * config.steps + comp_units * (n_runs if adaptive else 1)
    with (
        results_folder(out) as tmp,
        tqdm(
            total=total, desc="lfb regret", unit="step", disable=not progress, mininterval=0.5
        ) as bar,
    ):

        def comp_progress(done: int, _total: int, last: list[int] = [0]) -> None:  # noqa: B006
            if done < last[0]:
                last[0] = 0
            bar.update(done - last[0])
            last[0] = done

        base = [0]

        def sim_progress(t: int) -> None:
            bar.update(max(0, base[0] + t - bar.n))

        batches = None if adaptive else _materialise(config, wl)
        context = prepare_stream(config, batches, progress=comp_progress) if not adaptive else None
        base[0] = bar.n
        results, context = run_point(
            config,
            context,
            batches=batches,
            progress=sim_progress,
            comparator_progress=comp_progress,
        )
        t_plot = time.perf_counter()
        _write(tmp, out, config, context, results, plots)
        timings = {
            "total": time.perf_counter() - start,
            **context.seconds,
            "runs": {r.spec.label: r.seconds for r in results},
            "write_and_plots": time.perf_counter() - t_plot,
        }
        (tmp / "timings.json").write_text(json.dumps(timings, indent=2))
    return results, out


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()


def summary_rows(results: list[RunResult]) -> list[dict[str, Any]]:
    """summary.json's entries: one per run (no timings: those go to timings.json)."""
    rows = []
    for r in results:
        s: dict[str, Any] = {
            "label": r.spec.label,
            "rule": r.spec.rule,
            "schedule": r.spec.schedule,
            **({"step": r.spec.step} if r.spec.step is not None else {}),
            **r.report.summary(),
        }
        if r.cycle is not None:
            s["fixed_batch_cycle"] = dataclasses.asdict(r.cycle)
        rows.append(s)
    return rows


def _write(
    out: Path,
    final: Path,
    config: RegretConfig,
    context: StreamContext,
    results: list[RunResult],
    plots: bool = True,
) -> None:
    meta = {
        "config": config.to_json(),
        "digest": config.digest(),
        "calibration": dataclasses.asdict(context.calibration),
        "workload": context.workload,
        "seeds": {"stream": [config.seed, 0], "calibration": [config.seed, 1]},
        "versions": package_versions(),
        "python": platform.python_version(),
        "reproduce": f"lfb regret --config {final / 'config.json'}",
    }
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    (out / "runs").mkdir(exist_ok=True)
    for r in results:
        slug = _slug(r.spec.label)
        tr, rep = r.trajectory, r.report
        np.savez_compressed(
            out / "runs" / f"{slug}.npz",
            bias=tr.bias,
            loads=tr.loads,
            reward=tr.reward,
            step=tr.step,
            dual_value=rep.dual_value,
            maxvio_batch=rep.maxvio_batch,
            maxvio_global=rep.maxvio_global,
        )
        with open(out / "runs" / f"{slug}_curves.csv", "w", newline="") as f:
            w = csv.writer(f)
            cols = [
                "dual_regret",
                "dual_dynamic_regret",
                "primal_regret",
                "violation",
                "dynamic_gap",
                "batch_violation",
                "price_path",
            ]
            w.writerow(["t", *cols])
            curves = [getattr(rep, c) for c in cols]
            curves = [np.full(len(rep.t), np.nan) if c is None else c for c in curves]
            for i, t in enumerate(rep.t):
                w.writerow([int(t), *(float(c[i]) for c in curves)])
    (out / "summary.json").write_text(json.dumps(summary_rows(results), indent=2))
    comp = context.comparators
    if comp is not None:
        np.savez_compressed(
            out / "comparators.npz",
            batch_optimum=comp.batch_optimum,
            t=comp.t,
            pooled_optimum=comp.pooled_optimum,
            hindsight_bias=comp.hindsight_bias,
            **({} if comp.batch_prices is None else {"batch_prices": comp.batch_prices}),
        )
    if plots:
        _plot(out, results)


_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))
# Fixed margins of the two-panel figures: tight_layout measured every tick label of the log
# axes first, ~1 s of the ~2.9 s the plots of a replayed layer (E = 64) took.
_MARGINS = {"left": 0.06, "right": 0.99, "bottom": 0.12, "top": 0.92, "wspace": 0.2}


def _plot(out: Path, results: list[RunResult]) -> None:
    # The object-oriented API (no pyplot): no global backend switch, no open figures left behind.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    for i, r in enumerate(results):
        rep = r.report
        ls = _LINESTYLES[i % len(_LINESTYLES)]  # curves can coincide (sign vs DeepSeek-V3)
        ax1.loglog(rep.t, np.maximum(rep.dual_regret, 1e-12), linestyle=ls, label=r.spec.label)
        base = np.interp(rep.burn_in, rep.t, rep.dual_regret)
        late = rep.t > rep.burn_in
        ax2.loglog(
            rep.t[late],
            np.maximum(rep.dual_regret[late] - base, 1e-12),
            linestyle=ls,
            label=r.spec.label,
        )
    t = results[0].report.t.astype(float)
    t0 = results[0].report.burn_in
    ref = t[t > t0]
    scale = max(
        1e-12,
        float(
            np.median(
                [
                    max(
                        np.interp(ref[-1], r.report.t, r.report.dual_regret)
                        - np.interp(t0, r.report.t, r.report.dual_regret),
                        1e-12,
                    )
                    for r in results
                ]
            )
        ),
    )
    for f, name, style in (
        (lambda x: x - t0, "~ t", ":"),
        (lambda x: np.sqrt(x) - np.sqrt(t0), "~ sqrt t", "--"),
        (lambda x: np.log(x / t0), "~ log t", "-."),
    ):
        v = f(ref)
        ax2.loglog(ref, scale * v / v[-1], "k" + style, lw=0.8, label=f"reference {name}")
    ax1.set(xlabel="batches t", ylabel="dual regret R(t)", title="Dual regret (log-log)")
    ax2.set(xlabel="batches t", ylabel=f"R(t) - R({t0})", title=f"Growth after burn-in t0={t0}")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.subplots_adjust(**_MARGINS)
    fig.savefig(out / "regret.png", dpi=120)

    fig = Figure(figsize=(12, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for i, r in enumerate(results):
        ls = _LINESTYLES[i % len(_LINESTYLES)]
        steps = np.arange(1, len(r.report.maxvio_batch) + 1)
        w = max(1, len(steps) // 100)
        smooth = np.convolve(r.report.maxvio_batch, np.ones(w) / w, mode="valid")
        ax1.semilogx(steps[w - 1 :], smooth, linestyle=ls, label=r.spec.label)
        ax2.loglog(
            steps, np.maximum(r.report.maxvio_global, 1e-6), linestyle=ls, label=r.spec.label
        )
    ax1.set(xlabel="batches t", ylabel="MaxVio_batch (moving mean)", title="MaxVio per batch")
    ax2.set(xlabel="batches t", ylabel="MaxVio_global", title="MaxVio of cumulative loads")
    ax1.legend(fontsize=7)
    fig.subplots_adjust(**_MARGINS)
    fig.savefig(out / "maxvio.png", dpi=120)

    cols = min(3, len(results))
    rows = math.ceil(len(results) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, r in zip(axes.ravel(), results, strict=False):
        b = r.trajectory.bias
        ax.plot(
            b - b.mean(axis=1, keepdims=True) if r.trajectory.bias_mode == "additive" else b, lw=0.6
        )
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=r.spec.label, xlabel="batches t", ylabel="bias - mean(bias)")
        ax.title.set_fontsize(8)
    for ax in axes.ravel()[len(results) :]:
        ax.axis("off")
    h = 3.2 * rows  # figure height in inches: margins of fixed size
    fig.subplots_adjust(
        left=0.08, right=0.98, bottom=0.45 / h, top=1 - 0.3 / h, wspace=0.35, hspace=0.75 / 3.2 * 2
    )
    fig.savefig(out / "bias.png", dpi=120)


def format_table(results: list[RunResult], config: RegretConfig, calib_line: str = "") -> str:
    """A readable table of the final figures of each run, with a legend defining every
    column."""
    head = (
        f"{'run':<28}{'dual regret':>12}{'(at burn-in)':>13}{'growth':>14}{'dual dyn.':>11}"
        f"{'primal regret':>15}{'violation':>11}{'dyn. gap':>10}{'batch viol.':>12}"
        f"{'MaxVio_b':>10}{'MaxVio_g':>10}"
    )
    lines = [
        f"workload={config.workload} n={config.n} E={config.n_experts} k={config.k} "
        f"T={config.steps} seed={config.seed}" + (f"  {calib_line}" if calib_line else ""),
        "",
        head,
        "-" * len(head),
    ]
    for r in results:
        s = r.report.summary()
        g = s.get("dual_regret_growth", "n/a")
        lines.append(
            f"{r.spec.label[:27]:<28}{s['dual_regret']:>12.3f}{s['dual_regret_at_burn_in']:>13.3f}"
            f"{g:>14}{s.get('dual_dynamic_regret', float('nan')):>11.2f}"
            f"{s['primal_regret']:>15.3f}{s['violation_tokens']:>11.0f}"
            f"{s['dynamic_gap']:>10.2f}{s.get('batch_violation_tokens', float('nan')):>12.0f}"
            f"{s['maxvio_batch_mean_late']:>10.3f}{s['maxvio_global_final']:>10.4f}"
        )
    for r in results:
        c = r.cycle
        if c is None:
            continue
        if c.found and c.period == 1:
            what = f"reaches a fixed point (exact balance) at step {c.start}"
        elif c.found:
            what = (
                f"enters a limit cycle at step {c.start}: period {c.period}, band width "
                f"{c.band_width:.3g} ({c.band_width / PUBLISHED_RATE:.2g} steps of u), common "
                f"drift {c.drift:+.3g} per period"
            )
        else:
            what = f"did not repeat within {config.cycle_steps} steps"
        lines.append(f"{r.spec.label}: on a fixed batch (batch 0 repeated) the bias {what}")
    rep = results[0].report
    burn = rep.burn_in
    if rep.price_path is not None:
        lines.append(
            f"stream: path length of the per-batch optimal prices (centred) = "
            f"{float(rep.price_path[-1]):.4g} over T={int(rep.t[-1])} batches"
        )
    if any(r.report.eval_excluded for r in results):
        lines.append(f"evaluation batches excluded from every sum: {rep.eval_excluded}")
    if any(r.report.group_limited for r in results):
        lines.append(
            "GROUP-LIMITED routing: load - L is not a subgradient of D; the dual "
            "columns are labelled values, not dual descent"
        )
    lines += [
        "",
        "Columns (sums over training batches s <= T; D_s(p) = sum_tokens topk(s + p) - L sum p,",
        "OPT_s = max over balanced assignments of batch s, L = n k / E):",
        "  dual regret   sum_s D_s(p_s) - min_p sum_s D_s(p) (pooled hindsight price); "
        "(at burn-in): its value at t0",
        f"  growth        class of R(t) - R(t0) after burn-in t0={burn} "
        "(lfbtheory.analysis.growth)",
        "  dual dyn.     sum_s D_s(p_s) - sum_s OPT_s >= 0 (each batch's own optimal price)",
        "  primal regret OPT_pool(T) - sum_s reward_s (< 0 possible when capacity is violated)",
        "  violation     sum_i max(0, C_i(T) - T L): tokens over capacity in the cumulative loads",
        "  dyn. gap      sum_s (OPT_s - reward_s): primal gap to each batch's optimum",
        "  batch viol.   sum_s sum_i max(0, c_{s,i} - L): per-batch tokens over capacity",
        "  MaxVio_b      mean over batches after t0 of (max_i c_{s,i} - L) / L",
        "  MaxVio_g      (max_i C_i(T) - T L) / (T L) of the cumulative loads",
    ]
    return "\n".join(lines)


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"--workload-option must look like key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def parse_run(text: str) -> RunSpec:
    """A RunSpec from the command-line form RULE:SCHEDULE[:LABEL]."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--run must look like RULE:SCHEDULE[:LABEL], got {text!r}")
    return RunSpec(parts[2] if len(parts) == 3 else f"{parts[0]} {parts[1]}", parts[0], parts[1])


def read_user_file(p: Path, what: str, expected: str) -> str:
    """The text of a file a user named, or a ValueError naming ``what`` when it is missing, a
    folder or not text (``expected`` says what should be given instead)."""
    if not p.exists():
        raise ValueError(f"{what} {p} does not exist")
    if p.is_dir():
        raise ValueError(f"{what} {p} is a folder; give {expected}")
    try:
        return p.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {p} is not a text file: {exc}") from None


def load_config_file(path: str | Path) -> RegretConfig:
    """The RegretConfig of a config.json written by an earlier run (or a bare config object);
    ValueError naming the problem for a missing file, a folder, bad JSON or a non-object."""
    p = Path(path)
    text = read_user_file(p, "--config", "the config.json of an earlier run")
    try:
        saved = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {p} is not valid JSON: {exc}") from None
    if not isinstance(saved, dict):
        raise ValueError(
            f"--config {p} holds a JSON {type(saved).__name__}, expected an object (the "
            "config.json of an earlier run)"
        )
    return RegretConfig.from_json(saved.get("config", saved))


def replay_configs(
    options: dict[str, Any],
    *,
    n: int,
    n_experts: int | None,
    k: int | None,
    common: dict[str, Any],
) -> list[tuple[str, RegretConfig]]:
    """One RegretConfig per recorded layer of a replayed trace (each layer is one router with
    its own bias), E and k read from the file; a ``layer``/``layers`` option gives one config.

    Returns (layer name, config) pairs (name "" for a file without layers).
    """
    from lfbtheory.workloads import trace_info

    info = trace_info(options.get("path"), key=options.get("key"))
    if n_experts is not None and n_experts != info.n_experts:
        raise ValueError(
            f"--experts must match the trace's E={info.n_experts} (it is read from the file), "
            f"got {n_experts}"
        )
    if info.k is None and k is None:
        raise ValueError("the replayed file holds full score arrays (no recorded k); give --k")
    if info.k is not None and k is not None and k != info.k:
        raise ValueError(f"--k must match the trace's recorded k={info.k}, got {k}")
    kk = int(info.k if info.k is not None else k)  # type: ignore[arg-type]

    def config(opts: dict[str, Any]) -> RegretConfig:
        return RegretConfig(
            workload="replay",
            workload_options=opts,
            n=n,
            n_experts=info.n_experts,
            k=kk,
            **common,
        )

    if "layer" in options or "layers" in options or not info.layers:
        return [("", config(dict(options)))]
    return [(str(name), config({**options, "layer": int(name)})) for name in info.layers]


def _command(args: Any) -> int:
    if getattr(args, "trace", None):  # E, k, gate from the file; one run set per layer
        from lfbtheory.experiments.trace import trace_regret_command

        return trace_regret_command(args)
    if args.out is not None:
        check_out_dir(Path(args.out))
    if args.config:
        jobs = [("", load_config_file(args.config))]
    else:
        runs = tuple(parse_run(r) for r in args.run) if args.run else DEFAULT_RUNS
        options = dict(_parse_option(o) for o in args.workload_option)
        common = dict(
            steps=args.steps,
            seed=args.seed,
            runs=runs,
            solver=args.solver,
            burn_in=args.burn_in,
            num_checkpoints=args.checkpoints,
        )
        if args.workload == "replay":
            jobs = replay_configs(
                options, n=args.n, n_experts=args.experts, k=args.k, common=common
            )
        else:
            jobs = [
                (
                    "",
                    RegretConfig(
                        workload=args.workload,
                        workload_options=options,
                        n=args.n,
                        n_experts=16 if args.experts is None else args.experts,
                        k=2 if args.k is None else args.k,
                        **common,
                    ),
                )
            ]
    t0 = time.perf_counter()
    root = Path(args.out) if args.out is not None else None
    if len(jobs) > 1:
        root = root or Path("results") / f"regret-replay-{jobs[0][1].digest()}"
        check_out_dir(root)
        print(f"replaying {len(jobs)} recorded layers as separate routers (one bias each)")
    written = []
    for name, config in jobs:
        out = root if len(jobs) == 1 else root / f"layer-{name}"  # type: ignore[operator]
        results, out = run_regret(config, out, progress=not args.no_progress)
        calib = json.loads((out / "config.json").read_text())["calibration"]
        line = "calibrated: D={D:.3g} G={G:.3g} mu={mu:.3g} t0={t0:.3g}".format(**calib)
        if name:
            print(f"\n=== recorded layer {name} ===")
        print(format_table(results, config, line))
        written.append(out)
    what = "config.json, summary.json, timings.json, runs/, regret.png, maxvio.png, bias.png"
    print(f"\nwrote {', '.join(map(str, written))} ({what}) in {time.perf_counter() - t0:.1f} s")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``lfb regret``."""
    p = sub.add_parser(
        "regret",
        help="run regret experiments on bias-update rules (the main job)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--workload",
        default="stationary",
        help="stationary, zipf, olmoe, drifting, clustered, adversarial, replay (replay: E and "
        "k from the file, each recorded layer a separate run unless layer=... is given)",
    )
    p.add_argument(
        "--workload-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workload option (repeatable), e.g. gate=softmax, path=trace.npz, layer=3",
    )
    p.add_argument("--n", type=int, default=256, help="tokens per batch (default 256)")
    p.add_argument(
        "--experts", type=int, default=None, help="experts E (default 16; replay: from the file)"
    )
    p.add_argument(
        "--k", type=int, default=None, help="experts per token (default 2; replay: from the file)"
    )
    p.add_argument("--steps", type=int, default=2000, help="batches T (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--run",
        action="append",
        metavar="RULE:SCHEDULE[:LABEL]",
        help="a run (repeatable); schedules: "
        + ", ".join(SCHEDULE_CHOICES)
        + "; default: the five runs of DEFAULT_RUNS",
    )
    p.add_argument(
        "--solver", default="auto", help="exact solver for the comparators (default auto)"
    )
    p.add_argument("--burn-in", type=int, default=None, help="burn-in t0 (default T/10)")
    p.add_argument("--checkpoints", type=int, default=40, help="regret checkpoints (default 40)")
    p.add_argument("--out", default=None, help="results folder (default results/regret-<hash>)")
    p.add_argument("--config", default=None, help="rerun the config.json of an earlier run")
    p.add_argument(
        "--trace",
        default=None,
        metavar="FILE",
        help="recorded router trace (.npz): E, k, gate from the file, each layer a separate run",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_command)
