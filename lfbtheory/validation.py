"""Input checks shared by the public functions.

Every public entry point validates its arguments here so that bad input fails early with a
``ValueError``/``TypeError`` that names the argument and the allowed range, never with a
traceback from deep inside numpy or cvxpy.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray


def as_scores(scores: ArrayLike, name: str = "scores") -> NDArray[np.float64]:
    """Return ``scores`` as a finite float64 (n, E) array or raise."""
    if isinstance(scores, (str, bytes)) or scores is None:
        raise TypeError(
            f"{name} must be a 2-D array of real numbers (n, E), got {type(scores).__name__}"
        )
    try:
        arr = np.asarray(scores)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a 2-D array of real numbers (n, E): {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == bool
    ):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n, E), got shape {arr.shape}")
    n, e = arr.shape
    if n < 1 or e < 1:
        raise ValueError(
            f"{name} must have n >= 1 tokens and E >= 1 experts, got shape {arr.shape}"
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} must be finite; found {arr[tuple(bad)]} at token {bad[0]}, expert {bad[1]}"
        )
    return arr


def as_k(k: object, n_experts: int, name: str = "k") -> int:
    """Return ``k`` as an int in [1, E] or raise."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [1, E={n_experts}], got {k!r}")
    k = int(k)
    if not 1 <= k <= n_experts:
        raise ValueError(f"{name} must be in [1, E={n_experts}], got {k}")
    return k


def as_bias(bias: ArrayLike | None, n_experts: int, name: str = "bias") -> NDArray[np.float64]:
    """Return ``bias`` as a finite float64 (E,) array (zeros when None) or raise."""
    if bias is None:
        return np.zeros(n_experts)
    arr = np.asarray(bias)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a 1-D array of E={n_experts} real numbers")
    if arr.shape != (n_experts,):
        raise ValueError(f"{name} must have shape (E,) = ({n_experts},), got {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr[~np.isfinite(arr)][0]}")
    return arr


def as_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value
