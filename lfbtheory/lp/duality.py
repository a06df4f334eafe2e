"""Duality of the batch LP: the dual D(p) and its subgradient (the certificate: lp.certificate).

Dualising the expert constraints of the batch LP (:mod:`lfbtheory.lp.model`) with prices p gives

    D(p) = sum_t topKsum_i(s[t,i] + p[i]) - L * sum_i p[i],

convex and piecewise linear with subgradient load(p) - L, where load(p) counts the experts that
top-k routing with bias p selects (arXiv 2408.15664 Sec. 3: the bias is the dual price). In the
"<=" case (E*L > n*k) the prices are restricted to p <= 0 and D = +inf outside.

Every function here uses THE selection of :mod:`lfbtheory.routing` (``select_experts`` on the
selection scores s + (p - max p), ties to the lower index), so ``dual_subgradient(s, k, p)`` is
exactly ``route(s, k, p).loads - L`` on every input, ties included, and D is evaluated in the
same gauge: D(p) = sum_t topKsum(s_t + w) - L sum w + (n k - E L) max p with w = p - max p.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.lp.model import lp_bias, lp_scores, resolve_capacity
from lfbtheory.routing import route, selection_offsets, selection_scores
from lfbtheory.validation import as_k

__all__ = ["dual_objective", "dual_subgradient"]


def _checked(scores, k, bias, capacity):  # type: ignore[no-untyped-def]
    s = lp_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    p = lp_bias(bias, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    return s, k, p, cap, equality


def dual_objective(
    scores: ArrayLike, k: int, bias: ArrayLike, *, capacity: int | None = None
) -> float:
    """D(p) = sum_t topKsum(s_t + p) - L * sum(p) (Lagrangian dual of the expert constraints).

    For every p (every p <= 0 in the "<=" case) D(p) >= the LP optimum (weak duality), with
    equality at the optimal prices (strong duality). Returns +inf for p with a positive entry
    in the "<=" case, where such p are outside the dual domain.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> s = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, 0.2], [0.95, 0.3, 0.4]])
    >>> r = lfb.solve_balanced(s, k=1)
    >>> round(lfb.dual_objective(s, 1, r.bias), 9) == round(r.objective, 9)  # strong duality
    True
    >>> lfb.dual_objective(s, 1, np.zeros(3)) >= r.objective  # weak duality at any price
    True
    """
    s, k, p, cap, equality = _checked(scores, k, bias, capacity)
    n, e = s.shape
    if not equality and np.any(p > 0):
        return float("inf")
    experts = route(s, k, p, weights=False).experts
    w = selection_offsets(p, "additive")
    top = np.take_along_axis(selection_scores(s, p), experts, axis=1).sum()
    return float(top - float(cap) * w.sum() + float(n * k - e * cap) * p.max())


def dual_subgradient(
    scores: ArrayLike, k: int, bias: ArrayLike, *, capacity: int | None = None
) -> NDArray[np.float64]:
    """A subgradient of D at p: load(p) - L, with load(p) the loads of ``route(s, k, p)``.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> s = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, 0.2], [0.95, 0.3, 0.4]])
    >>> lfb.dual_subgradient(s, 1, np.zeros(3)).tolist()  # plain top-1 loads minus L = 1
    [2.0, -1.0, -1.0]
    """
    s, k, p, cap, _ = _checked(scores, k, bias, capacity)
    experts = route(s, k, p, weights=False).experts
    return np.bincount(experts.ravel(), minlength=s.shape[1]).astype(np.float64) - float(cap)
