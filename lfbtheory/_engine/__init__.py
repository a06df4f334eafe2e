"""The engine: every compiled kernel of the package, behind one door.

Public modules (``lfbtheory.routing``, ``lfbtheory.lp``, ``lfbtheory.online``) are the plain
numpy reference that reads like the math; for speed they call the functions here, and nothing
here imports them back. Each function picks its compiled path from the one tuning table
(:mod:`lfbtheory._engine.tuning`); ``path=`` forces one (tests force every path and check that
all give the same result bit for bit). Nothing here is public API.

Paths:

- :func:`route`: ``"registers"`` / ``"threshold"`` (the two ways of the row kernel, for
  2 <= k <= 4), default from ``row_registers_max_e``;
- :func:`solve`: ``"dense"`` (the dense E x E exchange-matrix repair, equality case only) /
  ``"banded"`` (banded candidate lists), default from ``dense_repair_max_cap``; with
  ``"rows"`` / ``"columns"`` appended after a comma for the Newton pass (default from
  ``newton_columns_max_e``), e.g. ``"banded,columns"``;
- :func:`run_rules`: ``"rows"`` / ``"columns"``, default from ``loop_columns_max_e(_runs)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory._engine.tuning import TUNING, Knobs

__all__ = ["knobs_for", "route", "solve"]

_BIG = 2**62


def knobs_for(path: str | None, knobs: Knobs = TUNING.knobs) -> Knobs:
    """The tuning knobs with ``path``'s choices forced (None: the table as it is)."""
    if path is None:
        return knobs
    if not isinstance(path, str):
        raise TypeError(f"path must be a string or None, got {type(path).__name__}")
    for part in path.split(","):
        if part == "registers":
            knobs = knobs._replace(row_registers_max_e=_BIG)
        elif part == "threshold":
            knobs = knobs._replace(row_registers_max_e=0)
        elif part == "dense":
            knobs = knobs._replace(dense_repair_max_cap=_BIG)
        elif part == "banded":
            knobs = knobs._replace(dense_repair_max_cap=0)
        elif part == "columns":
            knobs = knobs._replace(
                newton_columns_max_e=_BIG, loop_columns_max_e=_BIG, loop_columns_max_e_runs=_BIG
            )
        elif part == "rows":
            knobs = knobs._replace(
                newton_columns_max_e=0, loop_columns_max_e=0, loop_columns_max_e_runs=0
            )
        else:
            raise ValueError(
                f"unknown engine path {part!r}: one of registers, threshold, dense, banded, "
                "columns, rows"
            )
    return knobs


def route(
    scores: NDArray[np.floating],
    k: int,
    offsets: NDArray[np.float64] | None,
    bias_mode: str = "additive",
    *,
    path: str | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(experts (n, k), loads (E,)) of top-k routing on s + w, s * w or s (w = offsets None),
    compiled (:func:`lfbtheory._engine.topk.topk_and_loads`)."""
    from lfbtheory._engine.topk import topk_and_loads

    return topk_and_loads(scores, k, offsets, bias_mode, knobs_for(path))


def solve(
    s: NDArray[np.float64],
    k: int,
    cap: int,
    equality: bool,
    warm_start: NDArray[np.float64] | None = None,
    *,
    path: str | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.float64], dict[str, Any]]:
    """The exact balanced assignment of one batch by successive shortest paths
    (:func:`lfbtheory._engine.ssp.ssp_solve`): (x, experts ranked, prices, stats)."""
    from lfbtheory._engine.ssp import ssp_solve

    knobs = knobs_for(path)
    if not equality and knobs.dense_repair_max_cap == _BIG:
        raise ValueError("path 'dense' repairs the equality case only (E L = n k)")
    return ssp_solve(s, k, cap, equality, warm_start, knobs=knobs)
