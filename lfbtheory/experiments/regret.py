"""Regret experiments: a frozen config -> run -> result files (the benchopt pattern).

``run_regret(config)`` draws one seeded stream from a workload, materialises it once, runs
every bias-update rule of ``config.runs`` on it, computes the exact comparators once per stream
and writes a results folder. The pieces, one concept each:

    config      RegretConfig, RunSpec, DEFAULT_RUNS (what an experiment is)
    calibrate   the documented step-size constants D, G, mu (module docstring there)
    run         one regret point: prepare_stream, run_point (no files)
    store       lock, atomic results folders, config.json / summary.json / runs/
    plots       regret.png, maxvio.png, bias.png
    table       the printed table

The command ``lfb regret`` is :mod:`lfbtheory.cli.regret`. This module re-exports the public
names of the pieces so that ``from lfbtheory.experiments.regret import ...`` keeps working.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lfbtheory import fileio
from lfbtheory.experiments.calibrate import Calibration, calibrate
from lfbtheory.experiments.config import (
    DEEPSEEK_STOP_FRACTION,
    DEFAULT_RUNS,
    PUBLISHED_RATE,
    SCHEDULE_CHOICES,
    RegretConfig,
    RunSpec,
    load_config_file,
    parse_run,
    read_user_file,
    replay_configs,
)
from lfbtheory.experiments.plots import plot_results
from lfbtheory.experiments.run import (
    RunResult,
    StreamContext,
    _is_adaptive,
    _materialise,
    _workload,
    prepare_stream,
    run_point,
    warm_kernels,
)
from lfbtheory.experiments.store import (
    ResultsLockedError,
    check_out_dir,
    package_versions,
    results_folder,
    summary_rows,
    write_results,
)
from lfbtheory.experiments.table import format_table

__all__ = [
    "RunSpec",
    "RegretConfig",
    "Calibration",
    "StreamContext",
    "RunResult",
    "ResultsLockedError",
    "DEFAULT_RUNS",
    "SCHEDULE_CHOICES",
    "PUBLISHED_RATE",
    "DEEPSEEK_STOP_FRACTION",
    "calibrate",
    "prepare_stream",
    "run_point",
    "run_regret",
    "results_folder",
    "check_out_dir",
    "format_table",
    "package_versions",
    "summary_rows",
    "parse_run",
    "read_user_file",
    "load_config_file",
    "replay_configs",
]


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
        warm_kernels(lambda msg: print(msg, file=sys.stderr, flush=True))
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
        write_results(tmp, out, config, context, results)
        if plots:
            plot_results(tmp, results)
        timings = {
            "total": time.perf_counter() - start,
            **context.seconds,
            "runs": {r.spec.label: r.seconds for r in results},
            "write_and_plots": time.perf_counter() - t_plot,
        }
        fileio.write_json(tmp / "timings.json", timings, fsync=False)
    return results, out
