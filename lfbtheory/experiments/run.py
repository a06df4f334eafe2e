"""One regret point: draw a config's stream once, calibrate, compute the exact comparators
once, and run every rule of ``config.runs`` on it.

:func:`prepare_stream` holds what every rule and step size on one stream shares (the
calibration of :mod:`lfbtheory.experiments.calibrate` and the comparators of
:mod:`lfbtheory.analysis.regret`); :func:`run_point` simulates the rules and reports each
against them. Nothing here writes files (:mod:`lfbtheory.experiments.store` does).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

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
from lfbtheory.experiments.calibrate import Calibration, calibrate
from lfbtheory.experiments.config import PUBLISHED_RATE, RegretConfig, RunSpec
from lfbtheory.lp.model import Method
from lfbtheory.online import schedules as sched
from lfbtheory.online.loop import Trajectory, simulate
from lfbtheory.online.updates import make_rule
from lfbtheory.workloads import MATERIALIZE_LIMIT_BYTES, make_workload, materialize

__all__ = [
    "RunResult",
    "StreamContext",
    "COMPILE_NOTICE_SECONDS",
    "prepare_stream",
    "run_point",
    "warm_kernels",
]


@dataclass(frozen=True)
class RunResult:
    spec: RunSpec
    trajectory: Trajectory
    report: RegretReport
    seconds: float
    cycle: LimitCycle | None = None
    schedule: dict[str, Any] | None = None  # the step schedule actually used, as data


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
        self.gen = gen
        self.batches: list[NDArray[np.float64]] = []

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
        solver=cast(Method, config.solver),  # validated by RegretConfig
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
        trajs = cast(list[Trajectory], simulate(batches, config.k, rules, progress=progress))
        shared = (time.perf_counter() - t0) / len(rules)
    results = []
    for i, (spec, rule) in enumerate(zip(config.runs, rules, strict=True)):
        t0 = time.perf_counter()
        if adaptive:
            done = i * config.steps
            tick = None if progress is None else (lambda t, d=done: progress(d + t))
            rec = _Recorder(wl.adaptive_batches(config.steps, _stream_seed(config)))
            traj = cast(Trajectory, simulate(rec, config.k, rule, adaptive=True, progress=tick))
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
        used = sched.to_json(rule.step)
        results.append(RunResult(spec, traj, rep, shared + time.perf_counter() - t0, cycle, used))
    return results, context


# A warm 20-batch point returns in a fraction of a second; a cold numba cache compiles the
# package's kernels on the first call (tens of seconds). A point still running after this many
# seconds is announced as compiling (on a heavily loaded machine a warm point may cross it: the
# note then says "compiling" for a run that was only slow, never the reverse).
COMPILE_NOTICE_SECONDS = 1.0


def warm_kernels(log: Callable[[str], None]) -> float:
    """Run a 20-batch point so that the kernels are compiled before a long run starts (its
    progress bar's first step would otherwise hold the whole compile time); if the point has
    not returned within :data:`COMPILE_NOTICE_SECONDS`, tell ``log`` that the kernels are
    compiling, and when they are done how long it took. Returns the seconds it took."""
    said: list[bool] = []

    def notice() -> None:
        said.append(True)
        log("compiling kernels (first run; cached on disk for later runs) ...")

    timer = threading.Timer(COMPILE_NOTICE_SECONDS, notice)
    timer.daemon = True
    start = time.perf_counter()
    timer.start()
    try:
        run_point(RegretConfig(steps=20, num_checkpoints=5))
    finally:
        timer.cancel()
        timer.join()  # a notice already under way finishes before ``said`` is read
    seconds = time.perf_counter() - start
    if said:
        log(f"compiled in {seconds:.0f} s")
    return seconds
