"""Biased top-K routing: gates, selection, group-limited routing, gate weights, loads.

Loss-Free Balancing (arXiv 2408.15664, Sec. 3; DeepSeek-V3, arXiv 2412.19437, Sec. 2.1.2) routes
token t to TopK_i(s[t, i] + b[i]) and weights each selected expert by the *unbiased* score
s[t, i] (normalised over the K selected). The bias only changes the choice.

Selection scores are s + (b - max b): a shift that changes nothing in exact arithmetic and makes
the choice exactly invariant under b -> b + c in floating point.

Tie rule (documented, deterministic): experts are ranked by biased score, descending; equal
biased scores are ranked by expert index, ascending (the lower index wins). ``experts[t]`` lists
the K selected experts in that rank order. The same rule ranks groups in group-limited routing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.validation import (
    as_bias,
    as_finite_real,
    as_k,
    as_positive_int,
    as_score_array,
    as_scores,
    check_magnitude,
    choice,
)

__all__ = [
    "Routing",
    "route",
    "topk_indices",
    "sigmoid",
    "softmax",
    "selection_scores",
    "selection_offsets",
    "eligible_experts",
    "RouteOptions",
    "route_options",
    "select_and_count",
]


def sigmoid(logits: ArrayLike) -> NDArray[np.float64]:
    """Numerically stable logistic gate 1 / (1 + exp(-x)) (DeepSeek-V3 gate, arXiv 2412.19437).

    Examples
    --------
    >>> import lfbtheory as lfb
    >>> lfb.sigmoid([-800.0, 0.0, 800.0]).tolist()  # no overflow at either end
    [0.0, 0.5, 1.0]
    """
    x = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def softmax(logits: ArrayLike, axis: int = -1) -> NDArray[np.float64]:
    """Numerically stable softmax exp(x_i - max x) / sum_j exp(x_j - max x) along ``axis``.

    Examples
    --------
    >>> import lfbtheory as lfb
    >>> lfb.softmax([1000.0, 1000.0]).tolist()  # no overflow
    [0.5, 0.5]
    """
    x = np.asarray(logits, dtype=np.float64)
    z = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return z / np.sum(z, axis=axis, keepdims=True)


def topk_indices(x: NDArray[np.floating], k: int) -> NDArray[np.int64]:
    """Row-wise indices of the k largest entries, ranked by value desc then index asc.

    Exact and deterministic: the k-th largest value v of each row is found with a partition;
    every entry > v is taken, then the entries == v with the lowest indices fill the rest.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> lfb.topk_indices(np.array([[0.5, 0.9, 0.9, 0.1]]), 2).tolist()
    [[1, 2]]
    """
    n, e = x.shape
    if k == e:
        return np.argsort(-x, axis=1, kind="stable").astype(np.int64)
    kth = np.partition(x, e - k, axis=1)[:, e - k : e - k + 1]
    greater = x > kth
    equal = x == kth
    need = k - greater.sum(axis=1, keepdims=True)
    take = greater | (equal & (np.cumsum(equal, axis=1) <= need))
    idx = np.nonzero(take)[1].reshape(n, k)  # ascending index within each row
    vals = np.take_along_axis(x, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1).astype(np.int64)


def selection_offsets(bias: NDArray[np.float64], bias_mode: str) -> NDArray[np.float64]:
    """The vector w that the selection scores combine with: b - max b (additive) or b.

    Additive selection depends on b only up to a constant (arXiv 2408.15664 Sec. 3), so the
    bias is shifted to max 0 first: then b and b + c select *exactly* the same experts whenever
    b + c is itself exact in float64, even for huge c (biases that drifted to +35 or -1e9).
    """
    return bias - bias.max() if bias_mode == "additive" else bias


def selection_scores(
    scores: NDArray[np.floating], bias: NDArray[np.float64] | None, bias_mode: str = "additive"
) -> NDArray[np.float64]:
    """THE selection scores, used by routing, the dual, tie margins, the compiled kernel and the
    solvers: s + (b - max b) (additive) or s * b (multiplicative, b > 0), in float64."""
    s = np.asarray(scores, dtype=np.float64)
    if bias is None:
        return s
    w = selection_offsets(bias, bias_mode)
    return s + w if bias_mode == "additive" else s * w


def eligible_experts(
    sel: NDArray[np.float64], n_groups: int, topk_groups: int, group_score_topk: int = 2
) -> NDArray[np.bool_]:
    """Eligible experts under DeepSeek-V3 group-limited routing (arXiv 2412.19437, Sec. 2.1.2).

    A group's score is the sum of its ``group_score_topk`` largest selection scores (2 in
    DeepSeek-V3; 1 gives the max rule); the ``topk_groups`` best groups are eligible.
    """
    n, e = sel.shape
    g = e // n_groups
    grouped = sel.reshape(n, n_groups, g)
    m = min(group_score_topk, g)
    top = -np.sort(-grouped, axis=2)[:, :, :m]
    group_scores = top.sum(axis=2)
    best = topk_indices(group_scores, topk_groups)
    eligible_groups = np.zeros((n, n_groups), dtype=bool)
    np.put_along_axis(eligible_groups, best, True, axis=1)
    return np.repeat(eligible_groups, g, axis=1)


@dataclass(frozen=True)
class RouteOptions:
    """Validated routing options for E experts (see :func:`route_options`)."""

    n_experts: int
    k: int
    bias_mode: str = "additive"
    n_groups: int | None = None
    topk_groups: int | None = None
    group_score_topk: int = 2

    @property
    def group_limited(self) -> bool:
        """True when only some groups are eligible (then routing is not plain top-k of s + b)."""
        return (
            self.n_groups is not None
            and self.topk_groups is not None
            and (self.topk_groups < self.n_groups)
        )


def route_options(
    n_experts: int,
    k: object,
    bias_mode: str = "additive",
    n_groups: int | None = None,
    topk_groups: int | None = None,
    group_score_topk: int = 2,
) -> RouteOptions:
    """Check the routing options once (k in [1, E], groups dividing E, enough eligible experts)."""
    e = as_positive_int(n_experts, "n_experts")
    k = as_k(k, e)
    choice(bias_mode, "bias_mode", ("additive", "multiplicative"))
    if (n_groups is None) != (topk_groups is None):
        raise ValueError("n_groups and topk_groups must be given together (or both None)")
    if n_groups is not None:
        n_groups = as_positive_int(n_groups, "n_groups")
        if e % n_groups:
            raise ValueError(f"n_groups must divide E={e}, got n_groups={n_groups}")
        topk_groups = as_positive_int(topk_groups, "topk_groups")
        if topk_groups > n_groups:
            raise ValueError(f"topk_groups must be in [1, n_groups={n_groups}], got {topk_groups}")
        if k > topk_groups * (e // n_groups):
            raise ValueError(
                f"k={k} exceeds the {topk_groups * (e // n_groups)} experts eligible in "
                f"topk_groups={topk_groups} groups of size {e // n_groups}"
            )
    group_score_topk = as_positive_int(group_score_topk, "group_score_topk")
    return RouteOptions(e, k, bias_mode, n_groups, topk_groups, group_score_topk)


def _check_bias(bias: ArrayLike | None, opts: RouteOptions) -> NDArray[np.float64] | None:
    if bias is None:
        return None
    b = check_magnitude(as_bias(bias, opts.n_experts), "bias")
    if opts.bias_mode == "multiplicative" and np.any(b <= 0):
        raise ValueError(f"bias must be > 0 when bias_mode='multiplicative', got min {b.min():.6g}")
    return b


def select_and_count(
    scores: NDArray[np.floating], bias: NDArray[np.float64] | None, opts: RouteOptions
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(experts (n, k), loads (E,)) for already validated options and bias.

    Plain top-k runs the compiled one-pass kernel (:mod:`lfbtheory._engine.topk`) on float32/float64
    scores in place, finiteness checked by the kernel; group-limited routing masks ineligible
    experts with -inf (never 0: a finite fill wins once biased scores go negative) and ranks with
    :func:`topk_indices`. Both rank by :func:`selection_scores` with the documented tie rule.
    """
    if not opts.group_limited:
        from lfbtheory import _engine

        w = None if bias is None else selection_offsets(bias, opts.bias_mode)
        return _engine.route(scores, opts.k, w, opts.bias_mode)
    s = check_magnitude(as_scores(scores), "scores")
    sel = selection_scores(s, bias, opts.bias_mode)
    mask = eligible_experts(sel, opts.n_groups, opts.topk_groups, opts.group_score_topk)  # type: ignore[arg-type]
    experts = topk_indices(np.where(mask, sel, -np.inf), opts.k)
    return experts, np.bincount(experts.ravel(), minlength=opts.n_experts).astype(np.int64)


def _prepare(
    scores: ArrayLike,
    k: object,
    bias: ArrayLike | None,
    bias_mode: str,
    n_groups: int | None,
    topk_groups: int | None,
    group_score_topk: int,
) -> tuple[NDArray[np.floating], RouteOptions, NDArray[np.float64] | None]:
    s = as_score_array(scores)
    opts = route_options(s.shape[1], k, bias_mode, n_groups, topk_groups, group_score_topk)
    return s, opts, _check_bias(bias, opts)


@dataclass(frozen=True)
class Routing:
    """Result of :func:`route`.

    experts: (n, k) int64, ranked by selection score (tie rule in the module docstring).
    weights: (n, k) float64 gate weights from the unbiased scores (None when ``route`` was
             asked for the selection only, ``weights=False``).
    loads:   (E,) int64 number of tokens sent to each expert.
    """

    experts: NDArray[np.int64]
    weights: NDArray[np.float64] | None
    loads: NDArray[np.int64]


def route(
    scores: ArrayLike,
    k: int,
    bias: ArrayLike | None = None,
    *,
    bias_mode: str = "additive",
    n_groups: int | None = None,
    topk_groups: int | None = None,
    normalize: bool = True,
    scale: float = 1.0,
    group_score_topk: int = 2,
    weights: bool = True,
) -> Routing:
    """Route each token to the top-k experts of its selection scores.

    Selection: TopK_i(s[t,i] + b[i]) (``bias_mode="additive"``) or TopK_i(s[t,i] * b[i])
    (``"multiplicative"``, b > 0). Gate weights: w[t,j] = s[t,e_j] / sum_j' s[t,e_j'] when
    ``normalize`` (else s[t,e_j]), times ``scale`` -- always from the unbiased scores
    (arXiv 2408.15664 Sec. 3, arXiv 2412.19437 eq. 13-16). With ``n_groups``/``topk_groups``
    only experts in the best groups are eligible (group score: sum of the top
    ``group_score_topk`` selection scores of the group; DeepSeek-V3 uses 2).

    float32 and float64 scores are read in place (no copy). ``normalize=True`` needs a positive
    sum of the selected scores (sigmoid/softmax gates); pass ``normalize=False`` for logits.
    ``weights=False`` returns the selection and loads only (``weights`` None): what a caller
    needs that routes logits, or counts loads.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> s = np.array([[0.9, 0.5, 0.1], [0.2, 0.8, 0.7]])
    >>> r = lfb.route(s, 1)
    >>> r.experts.tolist(), r.loads.tolist()
    ([[0], [1]], [1, 1, 0])
    >>> lfb.route(s, 1, bias=[0.0, 0.0, 0.2], weights=False).experts.tolist()
    [[0], [2]]
    """
    s, opts, b = _prepare(scores, k, bias, bias_mode, n_groups, topk_groups, group_score_topk)
    scale = as_finite_real(scale, "scale")
    experts, loads = select_and_count(s, b, opts)
    if not weights:
        return Routing(experts=experts, weights=None, loads=loads)
    w = np.take_along_axis(s, experts, axis=1).astype(np.float64)
    if normalize:
        total = w.sum(axis=1, keepdims=True)
        if not np.all(total > 0) or not np.all(np.isfinite(total)):
            raise ValueError(
                "normalize=True needs a positive, finite sum of the selected scores for every "
                "token (use sigmoid/softmax gate scores, or pass normalize=False)"
            )
        w /= total
    if scale != 1.0:
        w *= scale
    return Routing(experts=experts, weights=w, loads=loads)
