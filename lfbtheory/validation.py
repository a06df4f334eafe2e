"""Input checks shared by the public functions.

Every public entry point validates its arguments here so that bad input fails early with a
``ValueError``/``TypeError`` that names the argument and the allowed range, never with a
traceback from deep inside numpy or cvxpy.
"""

from __future__ import annotations

import numbers
from typing import cast

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


MAGNITUDE_LIMIT = 1e150
"""Largest |score| or |bias| accepted by routing and the LP: squares (variances) and sums of up
to 1e150 terms of 3 * 1e150 stay finite in float64 (max ~1.8e308). There is no lower limit."""


def check_magnitude(
    arr: NDArray[np.float64], name: str, limit: float = MAGNITUDE_LIMIT
) -> NDArray[np.float64]:
    """The finite array ``arr`` unchanged if max |arr| <= ``limit``, else a ValueError."""
    big = float(np.max(np.abs(arr), initial=0.0))
    if big > limit:
        raise ValueError(
            f"{name} must have magnitude <= {limit:g} (the numeric domain of routing and the "
            f"LP), got max |{name}| = {big:.3g}; rescale it"
        )
    return arr


def as_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def as_int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    """``value`` as an int in [lo, hi] (hi=None: no upper bound); TypeError if not an integer
    (bools and floats refused), ValueError if out of range."""
    rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer {rng}, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer {rng}, got {v}")
    return v


def as_real(
    value: object, name: str, lo: float = 0.0, *, strict: bool = False, hi: float | None = None
) -> float:
    """``value`` as a finite float >= lo (> lo if ``strict``) and <= hi; TypeError if not a real
    number (bools refused), ValueError if infinite, nan or out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or (v <= lo if strict else v < lo) or (hi is not None and v > hi):
        rng = f"{'>' if strict else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise ValueError(f"{name} must be finite and {rng}, got {value!r}")
    return v


def choice(value: str, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def as_score_array(scores: ArrayLike, name: str = "scores") -> NDArray[np.floating]:
    """``scores`` as a 2-D float32/float64 array, WITHOUT copying float input and without the
    finiteness scan (the compiled routing kernel checks finiteness in its single pass)."""
    if isinstance(scores, (str, bytes)) or scores is None:
        raise TypeError(
            f"{name} must be a 2-D array of real numbers (n, E), got {type(scores).__name__}"
        )
    if isinstance(scores, np.ndarray) and scores.dtype in (np.float32, np.float64):
        arr = scores
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D with shape (n, E), got shape {arr.shape}")
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(
                f"{name} must have n >= 1 tokens and E >= 1 experts, got shape {arr.shape}"
            )
        return arr
    return as_scores(scores, name)


def as_finite_real(value: object, name: str) -> float:
    """``value`` as a finite float, or TypeError (not a real number) / ValueError (inf, nan)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def as_stream_indices(values: object, name: str) -> tuple[int, ...]:
    """A collection of non-negative integer stream indices (bools and floats refused)."""
    try:
        items: tuple[object, ...] = tuple(values)  # type: ignore[arg-type]  # TypeError below
    except TypeError:
        raise TypeError(f"{name} must be an iterable of integers >= 0, got {values!r}") from None
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must hold integers >= 0, got {v!r}")
        if v < 0:
            raise ValueError(f"{name} must hold integers >= 0, got {v}")
    return tuple(int(cast(int, v)) for v in items)  # each v is an Integral (checked above)
