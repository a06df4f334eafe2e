"""Replay one layer of a recorded router trace as a workload; ``lfb regret --trace FILE``.

:class:`TraceWorkload` reads E (and k, gate) from the file: an :mod:`lfbtheory.traces` file
(scores = gate(recorded logits), or the recorded scores) or a top-k-only trace
(``topk_scores``/``topk_ids``, e.g. the shipped FLAME-MoE file), which is completed to all E
experts by :class:`lfbtheory.workloads.Replay` (its documented completion; the recorded top-k
stays the top-k exactly). Batch t is tokens [t n, (t+1) n) of the layer's N recorded tokens,
cycled (an epoch is N / n batches); ``seed`` only affects a top-k completion.

The regret experiment over every recorded layer (``lfb regret --trace FILE``) lives in
:mod:`lfbtheory.experiments.trace`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from lfbtheory.traces import FORMAT, TraceInfo, inspect_trace, read_trace

__all__ = ["TraceWorkload", "batch_size_for"]


@dataclass(frozen=True)
class TraceWorkload:
    """Batches of n consecutive recorded tokens of trace layer ``layer`` (position in [0, L))."""

    name: ClassVar[str] = "trace"
    adaptive: ClassVar[bool] = False

    path: str
    n: int
    n_experts: int | None = None
    layer: int = 0
    info: TraceInfo | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        info = inspect_trace(self.path)
        object.__setattr__(self, "path", str(Path(self.path)))
        object.__setattr__(self, "info", info)
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if self.n_experts is not None and int(self.n_experts) != info.n_experts:
            raise ValueError(
                f"n_experts must equal the trace's E={info.n_experts} (it is read "
                f"from the file), got {self.n_experts}"
            )
        object.__setattr__(self, "n_experts", info.n_experts)
        n_layers = len(info.layer_names)
        if (
            isinstance(self.layer, bool)
            or not isinstance(self.layer, int)
            or not (0 <= self.layer < n_layers)
        ):
            raise ValueError(
                f"layer must be an integer in [0, {n_layers}) (the trace's layers "
                f"{list(info.layer_names)}), got {self.layer!r}"
            )

    @property
    def k(self) -> int:
        assert self.info is not None
        return self.info.k

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "n": self.n,
            "n_experts": self.n_experts,
            "layer": self.layer,
        }

    def batches(self, steps: int, seed: Any = 0) -> Iterator[NDArray[np.float64]]:
        """``steps`` (n, E) float64 batches, cycling through the layer's tokens."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        assert self.info is not None
        if self.info.layout != FORMAT:
            from lfbtheory.workloads import replay

            name = int(self.info.layer_names[self.layer])
            return replay(self.path, n=self.n, n_experts=self.info.n_experts, layer=name).batches(
                steps, seed
            )
        scores = read_trace(self.path).scores(self.layer)
        return _cycle(scores, self.n, steps)


def _cycle(scores: NDArray[np.float64], n: int, steps: int) -> Iterator[NDArray[np.float64]]:
    total = scores.shape[0]
    for t in range(steps):
        rows = np.arange(t * n, (t + 1) * n) % total
        yield scores[rows].copy()


def batch_size_for(n: int, k: int, n_experts: int, n_tokens: int) -> int:
    """The largest batch size <= min(n, n_tokens) with n k divisible by E (capacity n k / E)."""
    step = n_experts // math.gcd(n_experts, k)
    m = (min(n, n_tokens) // step) * step
    if m < 1:
        raise ValueError(
            f"the trace has {n_tokens} tokens per layer, fewer than the smallest "
            f"batch with integral capacity (n = {step} for E={n_experts}, k={k}); "
            "record more tokens"
        )
    return m
