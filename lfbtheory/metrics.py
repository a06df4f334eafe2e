"""Balance metrics: loads, MaxVio (batch and global), per-token tie margin.

MaxVio = (max_i load_i - mean load) / mean load, as defined in Loss-Free Balancing
(arXiv 2408.15664, Sec. 4.1). MaxVio_batch applies it to one batch's loads, MaxVio_global to
the loads summed over every batch seen so far. Its range is [0, E/k - 1] (proofs/).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.routing import selection_scores
from lfbtheory.validation import (
    as_bias,
    as_k,
    as_positive_int,
    as_scores,
    check_magnitude,
    choice,
)

__all__ = ["expert_loads", "maxvio", "maxvio_global", "tie_margin"]


def expert_loads(
    experts: ArrayLike, n_experts: int, *, valid: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Tokens per expert: c_i = #{(t, j): experts[t, j] = i}, counting only ``valid`` tokens.

    ``valid`` (n,) bool marks real tokens; padding rows (False) are not counted.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> lfb.expert_loads(np.array([[0, 1], [0, 2], [0, 1], [1, 2]]), 4).tolist()
    [3, 3, 2, 0]
    """
    n_experts = as_positive_int(n_experts, "n_experts")
    ex = np.asarray(experts)
    if ex.ndim != 2 or not np.issubdtype(ex.dtype, np.integer):
        raise ValueError(f"experts must be a 2-D integer array (n, k), got {ex.dtype} {ex.shape}")
    if ex.size and (ex.min() < 0 or ex.max() >= n_experts):
        raise ValueError(
            f"experts must lie in [0, n_experts={n_experts}), got [{ex.min()}, {ex.max()}]"
        )
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        if v.shape != (ex.shape[0],):
            raise ValueError(f"valid must have shape (n,) = ({ex.shape[0]},), got {v.shape}")
        ex = ex[v]
    return np.bincount(ex.ravel(), minlength=n_experts).astype(np.int64)


def maxvio(loads: ArrayLike) -> NDArray[np.float64] | float:
    """MaxVio = (max_i c_i - mean c) / mean c over the last axis (arXiv 2408.15664, Sec. 4.1).

    ``loads`` (E,) gives a float; (T, E) gives one value per row (MaxVio_batch).

    Examples
    --------
    >>> import lfbtheory as lfb
    >>> float(lfb.maxvio([3, 3, 2, 0]))  # (3 - 2) / 2
    0.5
    """
    c = np.asarray(loads, dtype=np.float64)
    if c.ndim not in (1, 2) or c.shape[-1] < 1:
        raise ValueError(f"loads must have shape (E,) or (T, E), got {c.shape}")
    if np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("loads must be finite and non-negative")
    mean = c.mean(axis=-1)
    if np.any(mean <= 0):
        raise ValueError(
            "loads must have a positive total (MaxVio is undefined for an empty batch)"
        )
    out = (c.max(axis=-1) - mean) / mean
    return float(out) if c.ndim == 1 else out


def maxvio_global(loads: ArrayLike) -> NDArray[np.float64]:
    """MaxVio_global(t) = MaxVio(sum_{s<=t} loads_s) for a (T, E) history of loads.

    Examples
    --------
    >>> import lfbtheory as lfb
    >>> lfb.maxvio_global([[3, 1], [1, 3]]).tolist()  # imbalanced batches, balanced in total
    [0.5, 0.0]
    """
    c = np.asarray(loads, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"loads must have shape (T, E), got {c.shape}")
    return np.asarray(maxvio(np.cumsum(c, axis=0)))


def tie_margin(
    scores: ArrayLike, k: int, bias: ArrayLike | None = None, *, bias_mode: str = "additive"
) -> NDArray[np.float64]:
    """Per-token gap between the k-th and (k+1)-th largest biased score (inf when k = E).

    A margin of 0 means the token's top-k set is not unique: any balance statement about
    top-k routing holds "up to ties" exactly on these tokens.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> lfb.tie_margin(np.array([[0.5, 0.9, 0.9, 0.1], [0.1, 0.4, 0.2, 0.3]]), 1).round(9).tolist()
    [0.0, 0.1]
    """
    s = as_scores(scores)
    k = as_k(k, s.shape[1])
    choice(bias_mode, "bias_mode", ("additive", "multiplicative"))
    b = None if bias is None else check_magnitude(as_bias(bias, s.shape[1]), "bias")
    sel = selection_scores(check_magnitude(s, "scores"), b, bias_mode)
    e = s.shape[1]
    if k == e:
        return np.full(s.shape[0], np.inf)
    part = np.partition(sel, (e - k - 1, e - k), axis=1)
    return part[:, e - k] - part[:, e - k - 1]
