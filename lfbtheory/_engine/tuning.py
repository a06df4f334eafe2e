"""The engine's one tuning table: every threshold that picks a compiled path, and the machine
that measured it.

Each entry is a break-even between two paths that compute the same thing bit for bit (the
tests force every path through the dispatcher's ``path=`` argument and check that), so the
table changes speed, never a result. ``lfb bench --tune`` measures the break-evens on the
machine at hand and rewrites ``tuning.json`` beside this module, recording that machine.

- ``row_registers_max_e``: :func:`~lfbtheory._engine.topk.row_top` keeps 2 <= k <= 4 best in
  registers (branch-free) up to this E, above it offers the entries over a guessed threshold;
- ``loop_columns_max_e`` / ``loop_columns_max_e_runs``: the fused loop routes a batch
  column-wise (:func:`~lfbtheory._engine.topk.cols_top` on the batch transposed once for all
  runs, k <= 4) up to this E for one run / for two runs or more, row by row above it;
- ``newton_columns_max_e``: the per-batch solver's Newton pass runs column-wise up to this E;
- ``dense_repair_max_cap``: one batch with L up to this is repaired on the dense E x E exchange
  matrix (:mod:`~lfbtheory._engine.dense`), larger ones on the banded candidate lists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["TUNING", "TUNING_FILE", "Knobs", "Tuning", "load", "write"]

TUNING_FILE = Path(__file__).with_name("tuning.json")


class Knobs(NamedTuple):
    """The thresholds a compiled caller needs, passed down as one argument (numba reads a
    named tuple of ints as a struct; a global would be frozen into the on-disk cache)."""

    row_registers_max_e: int
    loop_columns_max_e: int
    loop_columns_max_e_runs: int
    newton_columns_max_e: int
    dense_repair_max_cap: int


class Tuning(NamedTuple):
    """The table: the knobs and the record of the machine that measured them."""

    knobs: Knobs
    machine: dict[str, Any]


def load(path: Path = TUNING_FILE) -> Tuning:
    """The table in ``path`` (every knob a positive integer, or a ValueError naming it)."""
    doc = json.loads(path.read_text())
    values = {}
    for name in Knobs._fields:
        v = doc.get(name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{path}: {name} must be a positive integer, got {v!r}")
        values[name] = v
    return Tuning(Knobs(**values), dict(doc.get("machine", {})))


def write(knobs: Knobs, machine: dict[str, Any], path: Path = TUNING_FILE) -> None:
    """Write a table (atomically: a temporary file in the same folder, then a rename)."""
    doc = {"format": 1, "machine": machine, **knobs._asdict()}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


TUNING = load()
