"""The workload protocol and the common base of the synthetic (gated-logit) workloads.

A workload is a frozen dataclass holding only configuration (validated, hashable, JSON-able
through :meth:`config`; no file I/O, no fitting at construction) with
``batches(steps, seed) -> Iterator[np.ndarray]`` yielding ``steps`` float64 (n, E) score
batches lazily. Synthetic workloads draw logits x and apply a gate (arXiv 2412.19437
Sec. 2.1.2 for sigmoid, Switch/GShard for softmax): scores = sigmoid(x) (DeepSeek-V3, the
setting of Loss-Free Balancing, arXiv 2408.15664) or softmax over the experts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from lfbtheory.routing import softmax
from lfbtheory.validation import as_int, as_real, choice
from lfbtheory.workloads._seeding import NOISE, Seed, as_steps, rng, seed_sequence

__all__ = [
    "Workload",
    "GATES",
    "LOGIT_CLIP",
    "apply_gate",
    "config_of",
    "frozen",
    "set_field",
    "SyntheticBase",
]

GATES = ("sigmoid", "softmax")
# Sigmoid logits are clipped to [-30, 30] so every score lies strictly inside (0, 1) in
# float64 (sigmoid(30) = 1 - 9.4e-14; sigmoid(37) already rounds to 1.0). Chosen as a round
# number safely below 37; never reached with the default scales (|x| < 12 with overwhelming
# probability).
LOGIT_CLIP = 30.0


def apply_gate(logits: NDArray[np.float64], gate: str) -> NDArray[np.float64]:
    """sigmoid(clip(x, -30, 30)) or the row softmax of (n, E) logits."""
    if gate == "sigmoid":  # scipy's stable logistic: equals routing.sigmoid to 1 ulp, and faster
        return expit(np.clip(logits, -LOGIT_CLIP, LOGIT_CLIP))
    return softmax(logits, axis=1)


def set_field(obj: object, name: str, value: object) -> None:
    """Normalise a field of a frozen dataclass in ``__post_init__``."""
    object.__setattr__(obj, name, value)


def frozen(arr: NDArray[Any]) -> NDArray[Any]:
    """``arr`` made read-only (cached arrays are shared between callers)."""
    arr.flags.writeable = False
    return arr


@runtime_checkable
class Workload(Protocol):
    """What the online loop relies on: n, n_experts, adaptive, batches(steps, seed), config()."""

    n: int
    n_experts: int
    adaptive: ClassVar[bool]

    def batches(self, steps: int, seed: Seed) -> Iterator[NDArray[np.float64]]: ...

    def config(self) -> dict[str, Any]: ...


def config_of(obj: Any) -> dict[str, Any]:
    """``{"name": obj.name, field: value, ...}`` over the init fields; tuples become lists."""
    out: dict[str, Any] = {"name": obj.name}
    for f in dataclasses.fields(obj):
        if f.init:
            v = getattr(obj, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


@dataclass(frozen=True)
class SyntheticBase:
    """Common fields: batch size n, experts E, gate, noise scale, optional offset seed.

    x[t,i] = z_i + noise_scale * eps[t,i], eps ~ N(0, 1) from the seed's child stream NOISE;
    the offsets z (E,) come from :meth:`_offsets` of the subclass, drawn from the seed (or
    from ``offset_seed``, so several batch seeds can share one popularity profile).
    """

    name: ClassVar[str] = ""
    adaptive: ClassVar[bool] = False

    n: int
    n_experts: int
    gate: str = "sigmoid"
    noise_scale: float = 1.0
    offset_seed: int | None = None

    def __post_init__(self) -> None:
        set_field(self, "n", as_int(self.n, "n", 1))
        set_field(self, "n_experts", as_int(self.n_experts, "n_experts", 2))
        choice(self.gate, "gate", GATES)
        set_field(self, "noise_scale", as_real(self.noise_scale, "noise_scale", strict=True))
        if self.offset_seed is not None:
            set_field(self, "offset_seed", as_int(self.offset_seed, "offset_seed", 0))

    def config(self) -> dict[str, Any]:
        """Everything ``make_workload(**config)`` needs to rebuild this workload."""
        return config_of(self)

    def _offset_ss(self, ss: np.random.SeedSequence) -> np.random.SeedSequence:
        return ss if self.offset_seed is None else np.random.SeedSequence(self.offset_seed)

    def offsets(self, seed: Seed) -> NDArray[np.float64]:
        """The per-expert logit offsets (E,) this seed's stream uses (at t = 0)."""
        self._prepare()
        return self._offsets(self._offset_ss(seed_sequence(seed)))

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Load / fit whatever the stream needs (cached), so errors surface at first use."""

    def batches(self, steps: int, seed: Seed) -> Iterator[NDArray[np.float64]]:
        """Yield ``steps`` score batches (n, E), lazily; same seed -> identical batches."""
        steps = as_steps(steps)
        ss = seed_sequence(seed)
        self._prepare()
        return self._stream(steps, ss)

    def _stream(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        z = self._offsets(self._offset_ss(ss))
        noise = rng(ss, NOISE)
        for _ in range(steps):
            x = z + self.noise_scale * noise.standard_normal((self.n, self.n_experts))
            yield apply_gate(x, self.gate)
