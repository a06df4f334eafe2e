"""Device-level balance under expert parallelism: placement, device loads, overhead, token drops.

Under expert parallelism the E experts live on D devices and a step waits for the slowest one,
so the step time scales with the largest device load (GShard, arXiv 2006.16668; DeepSeek-V3,
arXiv 2412.19437 Sec. 3.2). With a placement pi: experts -> devices, the device loads are
c_d = sum_{i: pi(i) = d} c_i and

    overhead = max_d c_d / mean_d c_d = 1 + MaxVio_device.

Relation to the expert-level MaxVio V_e (arXiv 2408.15664 Sec. 4.1), with m_d experts on device
d and m = E / D their mean: c_d <= m_d max_i c_i and max_d c_d >= max_i c_i, mean_d c_d = m
mean_i c_i, hence

    max(0, (1 + V_e) / m - 1) <= V_d <= (max_d m_d / m) (1 + V_e) - 1,

so for equal-size groups (contiguous placement, D | E) V_d <= V_e. Both ends are attained:
the upper one when a device holds only maximally loaded experts, the lower one when the most
loaded expert shares its device with empty experts and the other devices are level
(:func:`maxvio_bounds`; tests/test_devices.py checks both, with examples).

Token dropping with capacity factor f (GShard / Switch Transformer, arXiv 2101.03961 Sec.
2.1): each expert takes at most C = floor(f n k / E) token-slots of a batch; the slots are
served in a fixed order and those over C are dropped. Orders: ``"token"`` (token index
ascending, then a token's choices in rank order: Switch's cumulative-sum position) and
``"rank"`` (every token's first choice in token order, then every second choice, ...: GShard's
priority for first choices). The number dropped per expert is max(0, c_i - C) in either order;
the order only decides which slots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.metrics import maxvio
from lfbtheory.validation import as_positive_int, choice

__all__ = [
    "DROP_ORDERS",
    "DeviceTable",
    "capacity",
    "contiguous_placement",
    "device_loads",
    "device_maxvio",
    "device_table",
    "dropped_mask",
    "dropped_tokens",
    "ep_overhead",
    "maxvio_bounds",
]

DROP_ORDERS = ("token", "rank")


def contiguous_placement(n_experts: int, n_devices: int) -> NDArray[np.int64]:
    """pi(i) = i // (E / D): experts 0..E/D-1 on device 0, and so on (needs D | E)."""
    e = as_positive_int(n_experts, "n_experts")
    d = as_positive_int(n_devices, "n_devices")
    if e % d:
        raise ValueError(f"n_devices must divide n_experts={e} for a contiguous placement, got {d}")
    return np.arange(e, dtype=np.int64) // (e // d)


def _placement(placement: ArrayLike | None, e: int, n_devices: int | None) -> tuple:  # type: ignore[type-arg]
    if placement is None:
        if n_devices is None:
            raise ValueError("give n_devices (contiguous placement) or a placement array")
        return contiguous_placement(e, n_devices), int(n_devices)
    pi = np.asarray(placement)
    if pi.shape != (e,) or not np.issubdtype(pi.dtype, np.integer):
        raise ValueError(f"placement must be an integer array of shape (E,) = ({e},), got "
                         f"{pi.dtype} {pi.shape}")  # fmt: skip
    d = int(pi.max()) + 1 if n_devices is None else as_positive_int(n_devices, "n_devices")
    if pi.min() < 0 or pi.max() >= d:
        raise ValueError(f"placement entries must lie in [0, n_devices={d}), got "
                         f"[{pi.min()}, {pi.max()}]")  # fmt: skip
    if len(np.unique(pi)) != d:
        raise ValueError("every device in [0, n_devices) must hold at least one expert")
    return pi.astype(np.int64), d


def device_loads(
    loads: ArrayLike, *, n_devices: int | None = None, placement: ArrayLike | None = None
) -> NDArray[np.float64]:
    """c_d = sum_{pi(i) = d} c_i over the last axis: (E,) -> (D,), (T, E) -> (T, D)."""
    c = np.asarray(loads, dtype=np.float64)
    if c.ndim not in (1, 2):
        raise ValueError(f"loads must have shape (E,) or (T, E), got {c.shape}")
    pi, d = _placement(placement, c.shape[-1], n_devices)
    one_hot = np.zeros((c.shape[-1], d))
    one_hot[np.arange(c.shape[-1]), pi] = 1.0
    return c @ one_hot


def device_maxvio(
    loads: ArrayLike, *, n_devices: int | None = None, placement: ArrayLike | None = None
) -> NDArray[np.float64] | float:
    """MaxVio of the device loads: (max_d c_d - mean_d c_d) / mean_d c_d."""
    return maxvio(device_loads(loads, n_devices=n_devices, placement=placement))


def ep_overhead(
    loads: ArrayLike, *, n_devices: int | None = None, placement: ArrayLike | None = None
) -> NDArray[np.float64] | float:
    """Step-time overhead of expert parallelism: max_d c_d / mean_d c_d = 1 + MaxVio_device."""
    v = device_maxvio(loads, n_devices=n_devices, placement=placement)
    return 1.0 + v


def maxvio_bounds(
    expert_maxvio: ArrayLike,
    *,
    n_devices: int | None = None,
    placement: ArrayLike | None = None,
    n_experts: int | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(lower, upper) on MaxVio_device from MaxVio_expert (module docstring):
    max(0, (1 + V_e)/m - 1) and (max_d m_d / m)(1 + V_e) - 1, with m = E / D."""
    ve = np.asarray(expert_maxvio, dtype=np.float64)
    if placement is None:
        if n_experts is None:
            raise ValueError("give n_experts with n_devices (contiguous), or a placement")
        pi, d = _placement(None, int(n_experts), n_devices)
    else:
        pi0 = np.asarray(placement)
        pi, d = _placement(pi0, pi0.shape[0], n_devices)
    sizes = np.bincount(pi, minlength=d)
    m = len(pi) / d
    return np.maximum(0.0, (1.0 + ve) / m - 1.0), (sizes.max() / m) * (1.0 + ve) - 1.0


def capacity(n_tokens: int, k: int, n_experts: int, factor: float) -> int:
    """C = floor(f n k / E) token-slots per expert (computed exactly for float f)."""
    f = float(factor)
    if not np.isfinite(f) or f <= 0:
        raise ValueError(f"capacity factor must be a finite number > 0, got {factor!r}")
    from fractions import Fraction

    return int(Fraction(f) * n_tokens * k // n_experts)


def dropped_mask(
    experts: ArrayLike, n_experts: int, factor: float, *, order: str = "token"
) -> NDArray[np.bool_]:
    """(n, k) bool: True for the token-slots dropped at capacity C = floor(f n k / E), serving
    slots in ``order`` ("token" or "rank", module docstring)."""
    choice(order, "order", DROP_ORDERS)
    ex = np.asarray(experts)
    if ex.ndim != 2 or not np.issubdtype(ex.dtype, np.integer):
        raise ValueError(f"experts must be a 2-D integer array (n, k), got {ex.dtype} {ex.shape}")
    e = as_positive_int(n_experts, "n_experts")
    if ex.size and (ex.min() < 0 or ex.max() >= e):
        raise ValueError(f"experts must lie in [0, n_experts={e})")
    n, k = ex.shape
    cap = capacity(n, k, e, factor)
    seq = ex.ravel() if order == "token" else ex.T.ravel()  # serving order of the slots
    onehot = np.zeros((seq.size, e), dtype=np.int64)
    onehot[np.arange(seq.size), seq] = 1
    position = np.cumsum(onehot, axis=0)[np.arange(seq.size), seq]  # 1-based place in buffer
    drop = position > cap
    return drop.reshape(n, k) if order == "token" else drop.reshape(k, n).T


def dropped_tokens(loads: ArrayLike, factor: float, k: int) -> NDArray[np.int64] | int:
    """Token-slots dropped per batch: sum_i max(0, c_i - C), C = floor(f n k / E), n k = sum c
    (the same in every serving order). (E,) -> int, (T, E) -> (T,)."""
    c = np.asarray(loads)
    if c.ndim not in (1, 2) or not np.issubdtype(c.dtype, np.integer) or np.any(c < 0):
        raise ValueError("loads must be non-negative integers of shape (E,) or (T, E)")
    k = as_positive_int(k, "k")
    rows = np.atleast_2d(c)
    e = rows.shape[1]
    totals = rows.sum(axis=1)
    if np.any(totals % k):
        raise ValueError(f"every batch's total load must be n k (a multiple of k={k})")
    caps = np.array([capacity(int(t) // k, k, e, factor) for t in totals])
    out = np.maximum(rows - caps[:, None], 0).sum(axis=1)
    return int(out[0]) if c.ndim == 1 else out


@dataclass(frozen=True)
class DeviceTable:
    """Per-batch device metrics of a (T, E) load history: maxvio_expert, maxvio_device,
    overhead (= 1 + maxvio_device), lower/upper (the bounds on maxvio_device from
    maxvio_expert), dropped[f] (T,) token-slots dropped at capacity factor f."""

    maxvio_expert: NDArray[np.float64]
    maxvio_device: NDArray[np.float64]
    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    dropped: dict[float, NDArray[np.int64]]
    n_devices: int

    def summary(self, burn_in: int = 0) -> dict[str, float | int]:
        sl = slice(burn_in, None)
        out: dict[str, float | int] = {
            "n_devices": self.n_devices,
            "maxvio_expert_mean": float(np.mean(self.maxvio_expert[sl])),
            "maxvio_device_mean": float(np.mean(self.maxvio_device[sl])),
            "ep_overhead_mean": float(np.mean(1.0 + self.maxvio_device[sl])),
            "ep_overhead_max": float(np.max(1.0 + self.maxvio_device[sl])),
            "device_over_expert_maxvio_mean": float(
                np.mean(self.maxvio_device[sl] / np.maximum(self.maxvio_expert[sl], 1e-300))
            ),
            "bound_violations": int(np.sum((self.maxvio_device < self.lower - 1e-12)
                                           | (self.maxvio_device > self.upper + 1e-12))),
        }  # fmt: skip
        for f, d in self.dropped.items():
            out[f"dropped_per_batch_f{f:g}"] = float(np.mean(d[sl]))
        return out


def device_table(
    loads: ArrayLike,
    k: int,
    *,
    n_devices: int | None = None,
    placement: ArrayLike | None = None,
    capacity_factors: tuple[float, ...] = (1.0, 1.25),
) -> DeviceTable:
    """The :class:`DeviceTable` of a (T, E) history of integer loads routed with k experts."""
    c = np.asarray(loads)
    if c.ndim != 2:
        raise ValueError(f"loads must have shape (T, E), got {c.shape}")
    pi, d = _placement(placement, c.shape[1], n_devices)
    ve = np.asarray(maxvio(c))
    vd = np.asarray(device_maxvio(c, placement=pi, n_devices=d))
    lo, hi = maxvio_bounds(ve, placement=pi, n_devices=d)
    drops = {float(f): np.asarray(dropped_tokens(c, f, k)) for f in capacity_factors}
    return DeviceTable(ve, vd, lo, hi, drops, d)
