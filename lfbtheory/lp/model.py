"""The batch assignment LP: capacity, methods, result types and the declared numeric domain.

    max sum_{t,i} s[t,i] x[t,i]  s.t.  sum_i x[t,i] = k,  sum_t x[t,i] = L (or <= L),  0 <= x <= 1

(arXiv 2408.15664 Sec. 3 read as an LP; BASE layers, arXiv 2103.16716 Sec. 3.)

Numeric domain (the same for :func:`lfbtheory.route`, the solvers, :func:`certify` and the dual):
finite scores and prices with max |.| <= :data:`lfbtheory.validation.MAGNITUDE_LIMIT` (1e150);
larger magnitudes are refused with a ValueError naming the argument. There is no lower limit:
the solvers work on the scores rescaled by a power of two (exact when scaling up) and every
check uses tolerances relative to the scores' own scale, so scores of size 1e-300 are solved
and certified like scores of size 1.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.validation import (
    MAGNITUDE_LIMIT,
    as_bias,
    as_score_array,
    as_scores,
    check_magnitude,
)

__all__ = [
    "METHODS",
    "RTOL",
    "BalancedAssignment",
    "Certificate",
    "CertificationError",
    "Method",
    "absmax",
    "lp_bias",
    "lp_scores",
    "resolve_capacity",
]

Method = Literal["auto", "ssp", "flow", "linprog", "cvxpy"]
METHODS: tuple[str, ...] = ("auto", "ssp", "flow", "linprog", "cvxpy")

RTOL = 1e-9
"""Default relative tolerance of :func:`certify`: rtol times (max |s| over the assigned entries
+ spread of the prices), :mod:`lfbtheory.lp.certificate`. Chosen above HiGHS' feasibility
tolerances (1e-10 on scores rescaled to max |s| < 1, used by the "cvxpy" and "linprog"
methods) and the 2^-40 integer scaling of "flow", and far below any score difference that
matters."""


class CertificationError(RuntimeError):
    """A method produced an assignment that fails the optimality certificate (never returned)."""


def absmax(arr: NDArray[np.float64]) -> float:
    """max |arr| of a non-empty finite array (two reductions, no temporary)."""
    return max(float(arr.max()), -float(arr.min()))


def lp_scores(scores: ArrayLike, name: str = "scores") -> NDArray[np.float64]:
    """``scores`` as a finite float64 (n, E) array inside the numeric domain, or raise.

    One max and one min decide finiteness and magnitude together (NaN and inf propagate);
    only a bad input is scanned again, by the shared validators, for their error message."""
    s = np.asarray(as_score_array(scores, name), dtype=np.float64)
    hi, lo = float(s.max()), float(s.min())
    if not (np.isfinite(hi) and np.isfinite(lo)):
        as_scores(s, name)  # raises, naming the first non-finite entry
    if max(hi, -lo) > MAGNITUDE_LIMIT:
        check_magnitude(s, name)  # raises
    return s


def lp_bias(bias: ArrayLike | None, n_experts: int, name: str = "bias") -> NDArray[np.float64]:
    """``bias`` as a finite float64 (E,) array inside the numeric domain, or raise."""
    return check_magnitude(as_bias(bias, n_experts, name), name)


def resolve_capacity(n: int, k: int, n_experts: int, capacity: object = None) -> tuple[int, bool]:
    """Return (L, equality) for a batch of n tokens, k per token, E experts.

    ``capacity=None`` means L = n*k/E exactly (an error when it does not divide). An integer
    capacity needs E*L >= n*k (else the batch cannot be served); equality holds iff E*L = n*k.
    Any L >= n is allowed (an expert never holds more than n tokens).
    """
    total = n * k
    if capacity is None:
        if total % n_experts:
            raise ValueError(
                f"capacity=None needs n*k divisible by E: n*k={total}, E={n_experts}; pass an "
                f"integer capacity >= ceil(n*k/E) = {-(-total // n_experts)}"
            )
        return total // n_experts, True
    if isinstance(capacity, bool) or not isinstance(capacity, numbers.Integral):
        raise TypeError(f"capacity must be an integer or None, got {capacity!r}")
    cap = int(capacity)
    if cap < 1 or cap * n_experts < total:
        raise ValueError(
            f"capacity must be an integer >= ceil(n*k/E) = {-(-total // n_experts)} "
            f"(n={n}, k={k}, E={n_experts}); got {cap}: the batch cannot be served"
        )
    return cap, cap * n_experts == total


@dataclass(frozen=True)
class Certificate:
    """What :func:`lfbtheory.lp.certify` found. ``ok`` iff every check passed.

    duality_gap = D(p) - s.x >= 0, zero iff x and p are both optimal; dual_objective = D(p);
    max_slackness_violation = max over tokens of (best unassigned - worst assigned entry) of
    s + p (and -p on "<=" experts with room); tolerance = the objective resolution: ``ok``
    implies s.x >= OPT - tolerance (:mod:`lfbtheory.lp.certificate`).
    """

    primal_feasible: bool
    integral: bool
    dual_feasible: bool
    complementary_slackness: bool
    primal_objective: float
    dual_objective: float
    duality_gap: float
    max_slackness_violation: float
    tolerance: float = 0.0
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class BalancedAssignment:
    """Certified exact balanced assignment of one batch.

    assignment: (n, E) int8 0/1 matrix x; experts: (n, k) int64, each token's experts ranked by
    the selection scores of :func:`lfbtheory.routing.selection_scores` at ``bias`` (ties to the
    lower index); loads: (E,) int64; objective: sum of s over the assignment; bias: (E,) optimal
    expert prices (mean zero in the equality case, <= 0 and 0 where there is room in the "<="
    case); status: "optimal" (set only after ``certificate`` passed); capacity: L; method: the
    method that produced it; certificate: the optimality certificate that was checked.
    """

    assignment: NDArray[np.int8]
    experts: NDArray[np.int64]
    loads: NDArray[np.int64]
    objective: float
    bias: NDArray[np.float64]
    status: str
    capacity: int
    method: str
    certificate: Certificate
