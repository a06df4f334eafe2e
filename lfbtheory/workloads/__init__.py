"""Seeded, lazy streams of router score batches (n, E) for the online bias experiments.

Every workload is a frozen dataclass holding only its configuration (hashable, JSON-able
through ``config()``; construction does no file I/O and no fitting) with
``batches(steps, seed) -> Iterator[np.ndarray]`` yielding ``steps`` float64 arrays of shape
(n, E), one at a time (a 10^9-step stream costs one batch of memory). All randomness comes
from named child streams of ``SeedSequence(seed)`` (:mod:`lfbtheory.workloads._seeding`), so
the same seed gives bit-identical batches. Data files are read, and fits computed, on first
use and cached.

Modules: :mod:`~lfbtheory.workloads.synthetic` (stationary, zipf, drifting, clustered,
adversarial), :mod:`~lfbtheory.workloads.calibrated` (olmoe: popularity fitted to measured
OLMoE/Mixtral loads), :mod:`~lfbtheory.workloads.replay` (recorded traces; completion of
top-k-only traces), :mod:`~lfbtheory.workloads.data` (the shipped data, cached loading),
:mod:`~lfbtheory.workloads.base` (the protocol, gates).

``make_workload(name, ...)`` builds any registered workload; the registry is the one dict
``WORKLOADS`` (name -> workload class; add an entry to register a new kind).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory.validation import choice
from lfbtheory.workloads._seeding import Seed, as_steps
from lfbtheory.workloads.base import GATES, LOGIT_CLIP, Workload
from lfbtheory.workloads.calibrated import (
    PSEUDO_COUNT,
    OlmoeMatched,
    PopularityFit,
    fit_popularity_offsets,
    topk_load_shares,
)
from lfbtheory.workloads.data import (
    FLAME_FILE,
    HISTOGRAM_FILE,
    DataNotFoundError,
    data_dir,
)
from lfbtheory.workloads.replay import (
    TAIL_SPREAD,
    TAILS,
    TRANSFORMS,
    Replay,
    TraceInfo,
    complete_topk,
    replay,
    trace_info,
)
from lfbtheory.workloads.synthetic import (
    DRIFT_MODES,
    Adversarial,
    Clustered,
    Drifting,
    Stationary,
    Zipf,
)
from lfbtheory.workloads.trace import TraceWorkload

__all__ = [
    "Workload",
    "Stationary",
    "Zipf",
    "OlmoeMatched",
    "Drifting",
    "Clustered",
    "Adversarial",
    "Replay",
    "PopularityFit",
    "TraceInfo",
    "WORKLOADS",
    "GATES",
    "LOGIT_CLIP",
    "DRIFT_MODES",
    "TAILS",
    "TRANSFORMS",
    "TAIL_SPREAD",
    "PSEUDO_COUNT",
    "DataNotFoundError",
    "FLAME_FILE",
    "HISTOGRAM_FILE",
    "MATERIALIZE_LIMIT_BYTES",
    "make_workload",
    "materialize",
    "replay",
    "trace_info",
    "complete_topk",
    "data_dir",
    "topk_load_shares",
    "fit_popularity_offsets",
]

# materialize() refuses streams larger than 1 GiB: it is meant for small runs and tests
# (a round limit that fits in the memory of any laptop); long streams are iterated lazily.
MATERIALIZE_LIMIT_BYTES = 2**30

WORKLOADS: dict[str, type] = {
    "stationary": Stationary,
    "zipf": Zipf,
    "olmoe": OlmoeMatched,
    "drifting": Drifting,
    "clustered": Clustered,
    "adversarial": Adversarial,
    "replay": Replay,
    "trace": TraceWorkload,  # recorded router traces (lfbtheory.workloads.trace)
}


def _option_names(cls: type) -> list[str]:
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    return [p for p in inspect.signature(cls).parameters if p != "self"]


def make_workload(
    name: str, *, n: int | None = None, n_experts: int | None = None, **options: Any
) -> Workload:
    """Build the workload ``name`` (a key of WORKLOADS) for batches of n tokens and E experts.

    ``options`` are the workload's own fields (see its class docstring); unknown names raise
    ValueError listing the allowed ones; wrong types raise TypeError and out-of-range values
    ValueError, naming the argument. n and n_experts are required for the synthetic
    workloads. For "replay" both may be None: E (and k) are inferred from the file, ``path``
    defaults to the shipped FLAME trace, and ONE recorded layer is replayed (``layer``;
    default the first) -- see :mod:`lfbtheory.workloads.replay`. Constructing does no I/O.
    """
    choice(name, "workload", tuple(WORKLOADS))
    cls = WORKLOADS[name]
    allowed = [o for o in _option_names(cls) if o not in ("n", "n_experts")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for workload {name!r}; allowed: "
            f"{', '.join(allowed)}"
        )
    return cls(n=n, n_experts=n_experts, **options)  # type: ignore[no-any-return]


def materialize(workload: Workload, steps: int, seed: Seed) -> NDArray[np.float64]:
    """The first ``steps`` batches as one (steps, n, E) array (for small runs; <= 1 GiB).

    Equal to ``np.stack(list(workload.batches(steps, seed)))``; replay gathers it in one
    vectorised step. For the adversary this is its non-adaptive stream (its answer to a zero
    bias).
    """
    steps = as_steps(steps)
    n, e = int(workload.n or 0), int(workload.n_experts or 0)
    size = steps * n * e * 8
    if size > MATERIALIZE_LIMIT_BYTES:
        raise ValueError(
            f"steps={steps} would materialize {size / 2**30:.1f} GiB (> 1 GiB); iterate "
            f"workload.batches(steps, seed) lazily instead"
        )
    fast = getattr(workload, "_materialize", None)
    if fast is not None:
        return fast(steps, seed)  # type: ignore[no-any-return]
    out = np.empty((steps, n, e))
    for t, batch in enumerate(workload.batches(steps, seed)):
        out[t] = batch
    return out
