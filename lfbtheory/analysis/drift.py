"""Drift of the optimal prices and the dynamic-regret bound of the proportional rule.

For a stream of batches with per-batch optimal prices p*_t (the exact LP duals, Lemma 1), the
path length is P_T = sum_{t<T} ||p*_{t+1} - p*_t||_2. Prices are defined up to a common shift
(routing and D_t are invariant under p -> p + c 1, Lemma 3(d)), so every price vector is centred
(mean zero) first. For online dual descent with step eta on D (the proportional rule with u = eta
L), the dynamic regret sum_t D_t(p_t) - D_t(p*_t) is at most

    R^2/(2 eta) + R P_T/eta + eta G^2 T/2,        R >= max_t ||p_t - p*_t||,  G >= max ||g_t||,

minimised by eta* = sqrt((R^2 + 2 R P_T)/(G^2 T)) with value G sqrt((R^2 + 2 R P_T) T)
(Zinkevich, ICML 2003, Thm 2, for unconstrained steps; proofs/proof_13_drift.py). Per-batch
optimal prices are not unique (a polytope when there are ties); :func:`per_batch_prices` uses
the exact solver's choice, so P_T also contains the jitter of that choice between batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.validation import as_real

if TYPE_CHECKING:
    from lfbtheory.lp.model import Method

__all__ = [
    "BatchPrices",
    "bound_optimal_step",
    "centre",
    "dynamic_regret_bound",
    "per_batch_prices",
    "price_path",
    "price_path_length",
]


class BatchPrices(NamedTuple):
    """Centred optimal prices (T, E) of each batch and each batch's optimum OPT_t (T,)."""

    prices: NDArray[np.float64]
    optimum: NDArray[np.float64]


def centre(prices: ArrayLike) -> NDArray[np.float64]:
    """Each row minus its mean: the representative of a price vector modulo common shifts."""
    p = np.asarray(prices, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"prices must be a non-empty (T, E) array, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("prices must be finite")
    return p - p.mean(axis=1, keepdims=True)


def price_path(prices: ArrayLike) -> NDArray[np.float64]:
    """The cumulative path length P(t) = sum_{s<t} ||c(p_{s+1}) - c(p_s)||_2, t = 1..T
    (length T, P(1) = 0), c = :func:`centre`."""
    steps = np.linalg.norm(np.diff(centre(prices), axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def price_path_length(prices: ArrayLike) -> float:
    """P_T = sum_{t<T} ||c(p_{t+1}) - c(p_t)||_2 of a (T, E) price sequence, c = :func:`centre`
    (0 for T = 1): the last entry of :func:`price_path`."""
    return float(price_path(prices)[-1])


def per_batch_prices(
    batches: Iterable[ArrayLike],
    k: int,
    *,
    method: Method = "auto",
    progress: Callable[[int], None] | None = None,
) -> BatchPrices:
    """The exact solver's optimal price of every batch (centred) and its optimum OPT_t, each
    solve warm-started from the previous batch's price (:func:`lfbtheory.lp.solve_stream` with
    ``output="optima"``; a (T, n, E) array is checked once). ``progress(t)``: batches done."""
    from lfbtheory.lp.solve import solve_stream

    opts, prices = solve_stream(batches, k, method=method, output="optima", progress=progress)
    return BatchPrices(centre(prices), opts)


def _positive(values: Sequence[object], names: Sequence[str]) -> list[float]:
    return [as_real(v, n, 0.0, strict=True) for v, n in zip(values, names, strict=True)]


def dynamic_regret_bound(
    radius: float, grad: float, path: float, horizon: float, eta: float
) -> float:
    """R^2/(2 eta) + R P/eta + eta G^2 T/2 (step eta on D; the proportional rule's u is eta L)."""
    r, g, t, e = _positive((radius, grad, horizon, eta), ("radius", "grad", "horizon", "eta"))
    p = as_real(path, "path", 0.0)
    return r * r / (2 * e) + r * p / e + e * g * g * t / 2


def bound_optimal_step(radius: float, grad: float, path: float, horizon: float) -> float:
    """eta* = sqrt((R^2 + 2 R P)/(G^2 T)), the step minimising :func:`dynamic_regret_bound`."""
    r, g, t = _positive((radius, grad, horizon), ("radius", "grad", "horizon"))
    p = as_real(path, "path", 0.0)
    return math.sqrt((r * r + 2 * r * p) / (g * g * t))
