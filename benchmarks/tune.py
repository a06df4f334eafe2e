"""``lfb bench --tune``: measure the engine's break-evens on this machine and rewrite its table.

Every knob of ``lfbtheory/_engine/tuning.json`` chooses between two compiled paths that give
identical results (the tests force each path and compare), so tuning changes speed only. For
each knob both paths are timed (min over repeats, after a warm-up call that compiles) on a grid
of sizes; the knob becomes the largest grid size up to which the "small" path is never slower
(:func:`break_even`). The table records the machine, the command, the grid and every timing.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lfbtheory._engine import route as engine_route
from lfbtheory._engine import solve as engine_solve
from lfbtheory._engine.tuning import TUNING, TUNING_FILE, Knobs, write
from lfbtheory.online import simulate, updates


def break_even(grid: Sequence[int], small: Sequence[float], large: Sequence[float]) -> int:
    """The largest g in the increasing ``grid`` such that ``small[i] <= large[i]`` at every
    grid point up to g; 0 if the small path already loses at the first point (always large)."""
    if not (len(grid) == len(small) == len(large)) or len(grid) == 0:
        raise ValueError("grid, small and large must be non-empty and of one length")
    if any(b <= a for a, b in zip(grid, grid[1:], strict=False)):
        raise ValueError(f"grid must be strictly increasing, got {list(grid)}")
    best = 0
    for g, a, b in zip(grid, small, large, strict=True):
        if a > b:
            break
        best = g
    return best


def _min_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # compile and warm the caches
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return float(best)


def _scores(rng: np.random.Generator, n: int, e: int) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(rng.normal(size=(n, e)) + rng.normal(size=e))))


def measure(
    *, quick: bool = False, repeats: int = 5, seed: int = 0, log: Callable[[str], None] = print
) -> tuple[Knobs, dict[str, Any]]:
    """Time both paths of every knob; return the new knobs and the timings."""
    rng = np.random.default_rng(seed)
    e_grid = [16, 32, 48, 64] if quick else [16, 24, 32, 48, 64, 96, 128, 192, 256]
    n = 384  # n k = 768 is a multiple of every E of the grid (the Newton pass needs E | n k)
    timings: dict[str, Any] = {"E": e_grid}

    # row kernel: registers vs threshold, the worst over k = 2..4
    reg, thr = [], []
    for e in e_grid:
        s = _scores(rng, n, e)
        ks = [k for k in (2, 3, 4) if k < e]
        reg.append(
            max(
                _min_time(partial(engine_route, s, k, None, path="registers"), repeats)
                / _min_time(partial(engine_route, s, k, None, path="threshold"), repeats)
                for k in ks
            )
        )
        thr.append(1.0)
    timings["row_registers_ratio"] = reg
    row_registers = break_even(e_grid, reg, thr)
    log(f"row_registers_max_e = {row_registers}")

    # fused loop: columns vs rows, one run and two runs
    loop = {}
    for name, rules in (("one", [updates.sign(1e-3)]), ("runs", [updates.sign(1e-3)] * 2)):
        cols, rows = [], []
        for e in e_grid:
            batches = np.stack([_scores(rng, n, e) for _ in range(20 if quick else 100)])
            cols.append(_min_time(partial(simulate, batches, 2, rules, _path="columns"), repeats))
            rows.append(_min_time(partial(simulate, batches, 2, rules, _path="rows"), repeats))
        timings[f"loop_{name}_columns"], timings[f"loop_{name}_rows"] = cols, rows
        loop[name] = break_even(e_grid, cols, rows)
    log(f"loop_columns_max_e = {loop['one']}, loop_columns_max_e_runs = {loop['runs']}")

    # Newton pass of the per-batch solver: columns vs rows (k = 2, one batch, cold start)
    cols, rows = [], []
    for e in e_grid:
        s = _scores(rng, n, e)
        cap = n * 2 // e
        if cap * e != n * 2:
            raise ValueError(f"tuning grid: E = {e} must divide n k = {n * 2}")
        cols.append(_min_time(partial(engine_solve, s, 2, cap, True, path="columns"), repeats))
        rows.append(_min_time(partial(engine_solve, s, 2, cap, True, path="rows"), repeats))
    timings["newton_columns"], timings["newton_rows"] = cols, rows
    newton = break_even(e_grid, cols, rows)
    log(f"newton_columns_max_e = {newton}")

    # repair: dense vs banded exchange graph over the capacity L = n k / E (E = 16, k = 2)
    cap_grid = [64, 256, 1024, 2048] if quick else [64, 128, 256, 512, 1024, 2048, 4096, 8192]
    dense, banded = [], []
    for cap in cap_grid:
        s = _scores(rng, cap * 8, 16)
        dense.append(_min_time(partial(engine_solve, s, 2, cap, True, path="dense"), repeats))
        banded.append(_min_time(partial(engine_solve, s, 2, cap, True, path="banded"), repeats))
    timings["L"] = cap_grid
    timings["repair_dense"], timings["repair_banded"] = dense, banded
    dense_cap = break_even(cap_grid, dense, banded)
    log(f"dense_repair_max_cap = {dense_cap}")

    # a knob of 0 would force the large path everywhere; keep the smallest grid point instead
    # when the small path never wins, so a knob stays a positive integer (tuning.load's rule)
    knobs = Knobs(
        row_registers_max_e=max(row_registers, 1),
        loop_columns_max_e=max(loop["one"], 1),
        loop_columns_max_e_runs=max(loop["runs"], 1),
        newton_columns_max_e=max(newton, 1),
        dense_repair_max_cap=max(dense_cap, 1),
    )
    return knobs, timings


def main(*, quick: bool, repeats: int, seed: int, out: str | None) -> int:
    """Measure, print old -> new, and write the table (to ``out`` or the package's file)."""
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    knobs, timings = measure(quick=quick, repeats=repeats, seed=seed, log=log)
    import numba

    machine = {
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "lfb bench --tune" + (" --quick" if quick else ""),
        "platform": f"{platform.system()} {platform.machine()}",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "repeats": repeats,
        "timings_seconds": timings,
    }
    for name, new in knobs._asdict().items():
        print(f"{name}: {getattr(TUNING.knobs, name)} -> {new}")
    path = TUNING_FILE if out is None else Path(out)
    write(knobs, machine, path)
    print(f"tuning table written to {path} (restart Python to use it)")
    return 0
