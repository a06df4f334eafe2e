"""Full-score traces of the testbed's learned router, and the two-timescale view.

:func:`training_trace` turns a recorded run (layer-0 gate scores s = sigmoid(x W) of
``record_tokens`` tokens of every training step, all E experts, with the bias that routed
them) into an :mod:`lfbtheory.traces` file: one trace "layer" per snapshot step t, named
``blocks.0.moe@step<t>``, holding that step's recorded tokens and, as its ``bias`` row, the bias
b_t that routed them. Every score is recorded (no completion); the rows are *different*
batches of the same router at different points of training, not one batch seen by L layers.

:func:`two_timescale` measures a bias rule on the snapshot stream in training order (the
router's scores move while the bias learns: non-stationary) beside the same rule on each
snapshot cycled as a fixed stream (the setting of the fixed-stream theory), both through
:func:`lfbtheory.simulate` and :func:`lfbtheory.analysis.regret.regret_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory.traces import Trace

__all__ = ["training_trace", "snapshot_stream", "two_timescale"]


def training_trace(
    scores: NDArray[np.floating],
    bias: NDArray[np.floating],
    *,
    k: int,
    every: int,
    model: str,
    seed: int,
) -> Trace:
    """Trace of the recorded ``scores`` (steps, n, E) and ``bias`` (steps, E) at steps
    0, every, 2 every, ... (step t = the t-th optimizer step, 0-based)."""
    s = np.asarray(scores)
    b = np.asarray(bias, dtype=np.float64)
    if s.ndim != 3 or b.shape != (s.shape[0], s.shape[2]):
        raise ValueError(
            f"scores must be (steps, n, E) and bias (steps, E), got {s.shape}, {b.shape}"
        )
    if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= s.shape[0]:
        raise ValueError(f"every must be an integer in [1, {s.shape[0]}], got {every!r}")
    steps = np.arange(0, s.shape[0], every)
    return Trace(
        values=s[steps].astype(np.float32),
        kind="scores",
        gate="none",
        k=k,
        layer_names=tuple(f"blocks.0.moe@step{int(t)}" for t in steps),
        model=model,
        dtype="float32",
        seed=seed,
        max_tokens=int(s.shape[1]),
        bias=b[steps],
    )


def snapshot_stream(trace: Trace) -> list[NDArray[np.float64]]:
    """The snapshots of a :func:`training_trace` in training order, as batches (n, E)."""
    return [np.asarray(trace.values[i], dtype=np.float64) for i in range(trace.n_layers)]


def two_timescale(trace: Trace, rule: Any, *, fixed: Sequence[int] | None = None) -> dict[str, Any]:
    """Regret of ``rule`` on the snapshot stream in training order, and on snapshot i cycled
    for as many steps (i in ``fixed``; default first, middle, last), each against its own
    hindsight comparators (exact pooled LP)."""
    from lfbtheory import simulate
    from lfbtheory.analysis.regret import regret_report

    batches = snapshot_stream(trace)
    t = len(batches)
    k = trace.k
    out: dict[str, Any] = {"steps": t, "tokens_per_step": int(batches[0].shape[0])}
    rep = regret_report(simulate(batches, k, rule), batches, k)
    out["training_order"] = rep.summary()
    fixed = (0, t // 2, t - 1) if fixed is None else tuple(fixed)
    out["fixed"] = {}
    for i in fixed:
        cyc = [batches[i]] * t
        out["fixed"][f"step{trace.layer_names[i].rsplit('@step', 1)[1]}"] = regret_report(
            simulate(cyc, k, rule), cyc, k
        ).summary()
    return out
