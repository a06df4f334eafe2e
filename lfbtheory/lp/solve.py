"""The exact balanced assignment of one batch, its dual D(p), and an optimality certificate.

The batch LP (arXiv 2408.15664 Sec. 3 read as an LP; BASE layers, arXiv 2103.16716 Sec. 3):

    max  sum_{t,i} s[t,i] x[t,i]
    s.t. sum_i x[t,i] = k  (each token),   sum_t x[t,i] = L  (each expert; "<=" with slack),
         0 <= x <= 1.

Its constraint matrix is a bipartite incidence matrix, hence totally unimodular, so a vertex
optimum is integral; the solvers here *check* integrality instead of assuming it. Dualising the
expert constraints with prices p gives

    D(p) = sum_t topKsum_i(s[t,i] + p[i]) - L * sum_i p[i],

convex and piecewise linear, with subgradient load(p) - L. Top-k routing with bias p is the
Lagrangian best response, so the optimal p is a bias that balances top-k routing up to ties.
In the "<=" case (E*L > n*k) the multipliers of the inequality constraints are >= 0, i.e. the
bias is restricted to p <= 0; :func:`dual_objective` is +inf outside that domain.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.routing import topk_indices
from lfbtheory.validation import as_bias, as_k, as_scores, choice

__all__ = [
    "BalancedAssignment",
    "Certificate",
    "certify",
    "dual_objective",
    "dual_subgradient",
    "optimal_prices",
    "resolve_capacity",
    "solve_balanced",
    "SOLVERS",
]

SOLVERS = ("cvxpy", "highs", "flow", "ssp", "auto")


def resolve_capacity(n: int, k: int, n_experts: int, capacity: object = None) -> tuple[int, bool]:
    """Return (L, equality) for a batch of n tokens, k per token, E experts.

    ``capacity=None`` means L = n*k/E exactly (an error when it does not divide). An integer
    capacity needs E*L >= n*k (else the batch cannot be served); equality holds iff E*L = n*k.
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


def dual_objective(
    scores: ArrayLike, bias: ArrayLike, k: int, capacity: int | None = None
) -> float:
    """D(p) = sum_t topKsum(s_t + p) - L * sum(p) (Lagrangian dual of the expert constraints).

    For every p (every p <= 0 in the "<=" case) D(p) >= the LP optimum (weak duality), with
    equality at the optimal prices (strong duality). Returns +inf for p with a positive entry
    in the "<=" case, where such p are outside the dual domain.
    """
    s = as_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    p = as_bias(bias, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    if not equality and np.any(p > 0):
        return float("inf")
    return _dual_value(s, p, k, cap)


def _dual_value(s: NDArray[np.float64], p: NDArray[np.float64], k: int, cap: int) -> float:
    r = s + p
    e = s.shape[1]
    top = np.partition(r, e - k, axis=1)[:, e - k :]
    return float(top.sum() - cap * p.sum())


def dual_subgradient(
    scores: ArrayLike, bias: ArrayLike, k: int, capacity: int | None = None
) -> NDArray[np.float64]:
    """A subgradient of D at p: load(p) - L, where load(p) counts top-k of s + p (ties: lower index)."""
    s = as_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    p = as_bias(bias, e)
    cap, _ = resolve_capacity(n, k, e, capacity)
    experts = topk_indices(s + p, k)
    return np.bincount(experts.ravel(), minlength=e).astype(np.float64) - cap


@dataclass(frozen=True)
class BalancedAssignment:
    """Exact balanced assignment of one batch.

    assignment: (n, E) int8 0/1 matrix x; experts: (n, k) int64 (per token ranked by s + bias,
    ties to the lower index); loads: (E,) int64; objective: sum of s over the assignment;
    bias: (E,) optimal expert prices (mean zero in the equality case, <= 0 in the "<=" case);
    status: "optimal" once integrality and feasibility have been verified.
    """

    assignment: NDArray[np.int8]
    experts: NDArray[np.int64]
    loads: NDArray[np.int64]
    objective: float
    bias: NDArray[np.float64]
    status: str
    capacity: int
    solver: str


def solve_balanced(
    scores: ArrayLike,
    k: int,
    *,
    capacity: int | None = None,
    solver: str = "cvxpy",
    cvxpy_solver: str = "HIGHS",
    warm_start: ArrayLike | None = None,
) -> BalancedAssignment:
    """Solve the balanced assignment LP exactly and return it with its dual prices.

    ``solver="cvxpy"`` is the reference oracle (cvxpy formulation, solved by ``cvxpy_solver``;
    a simplex method is needed so the optimum is a vertex). ``"highs"`` calls HiGHS' dual
    simplex through scipy on the same LP. Either way the LP solution is rounded to 0/1 and the
    rounding is verified (integrality, feasibility, objective) before it is returned.

    ``"ssp"`` is the fast exact path (:mod:`lfbtheory.lp.ssp`: successive shortest paths on
    the E-node expert exchange graph, numba-compiled), ``"flow"`` OR-tools' min-cost flow on the
    full bipartite graph (needs the ``flow`` extra; prices from :func:`optimal_prices`), and
    ``"auto"`` the fastest exact path available ("ssp" with numba, else "flow", else "highs").
    ``warm_start``: prices (E,) from a previous batch; only "ssp" uses them, as its starting
    point -- the optimum returned is the same, only the time changes.
    """
    s = as_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    choice(solver, "solver", SOLVERS)
    start = None if warm_start is None else as_bias(warm_start, e, "warm_start")
    if solver == "auto":
        solver = _auto_solver()
    if solver == "ssp":
        return _solve_ssp(s, k, cap, equality, start)
    if solver == "flow":
        return _solve_flow(s, k, cap, equality)
    if solver == "cvxpy":
        x_lp, obj_lp, price = _solve_cvxpy(s, k, cap, equality, cvxpy_solver)
    else:
        x_lp, obj_lp, price = _solve_highs(s, k, cap, equality)
    x = _round_and_verify(s, k, cap, equality, x_lp, obj_lp, solver)
    return _package(s, k, cap, equality, x, price, solver)


def _auto_solver() -> str:
    from lfbtheory.lp.ssp import HAVE_NUMBA

    if HAVE_NUMBA:
        return "ssp"
    try:
        import ortools  # noqa: F401
    except ImportError:
        return "highs"
    return "flow"


def _solve_ssp(s, k, cap, equality, start) -> BalancedAssignment:  # type: ignore[no-untyped-def]
    from lfbtheory.lp.ssp import ssp_solve

    x, experts, bias, _ = ssp_solve(s, k, cap, equality, start)
    return BalancedAssignment(
        assignment=x.view(np.int8),
        experts=experts,
        loads=np.bincount(experts.ravel(), minlength=s.shape[1]).astype(np.int64),
        objective=float(np.take_along_axis(s, experts, axis=1).sum()),
        bias=bias,
        status="optimal",
        capacity=cap,
        solver="ssp",
    )


def _solve_flow(s, k, cap, equality) -> BalancedAssignment:  # type: ignore[no-untyped-def]
    from lfbtheory.lp.ssp import flow_assignment

    x = flow_assignment(s, k, cap).astype(np.int8)
    price = optimal_prices(s, x, k, None if equality else cap)
    if price is None:
        raise RuntimeError(
            "solver 'flow': the integer-scaled flow optimum is not optimal for "
            "the float scores (rounding); use solver='ssp' or 'highs'"
        )
    return _package(s, k, cap, equality, x, price, "flow")


def _package(s, k, cap, equality, x, price, solver) -> BalancedAssignment:  # type: ignore[no-untyped-def]
    bias = price - price.mean() if equality else np.minimum(price, 0.0)
    r = np.where(x == 1, s + bias, -np.inf)
    experts = topk_indices(r, k)
    return BalancedAssignment(
        assignment=x.astype(np.int8),
        experts=experts,
        loads=x.sum(axis=0).astype(np.int64),
        objective=float(np.sum(s, where=x == 1)),
        bias=bias,
        status="optimal",
        capacity=cap,
        solver=solver,
    )


def _solve_cvxpy(s, k, cap, equality, cvxpy_solver):  # type: ignore[no-untyped-def]
    import cvxpy as cp

    n, e = s.shape
    x = cp.Variable((n, e))
    expert_sum = cp.sum(x, axis=0)
    expert_con = expert_sum == cap if equality else expert_sum <= cap
    prob = cp.Problem(
        cp.Maximize(cp.sum(cp.multiply(s, x))),
        [cp.sum(x, axis=1) == k, expert_con, x >= 0, x <= 1],
    )
    try:
        # HiGHS at its tightest tolerances (1e-10): the oracle is exact up to them, i.e. score
        # differences below ~1e-10 may be resolved either way ("ssp" is exact in floating point).
        opts = (
            {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}
            if cvxpy_solver.upper() == "HIGHS"
            else {}
        )
        prob.solve(solver=cvxpy_solver, **opts)
    except cp.error.SolverError as exc:
        raise RuntimeError(f"cvxpy solver {cvxpy_solver!r} failed: {exc}") from None
    if prob.status != cp.OPTIMAL or x.value is None:
        raise RuntimeError(f"cvxpy returned status {prob.status!r} for a feasible balanced LP")
    # cvxpy's multiplier y of an equality row in a Maximize problem is the shadow price
    # d(objective)/dL; the bias is p = -y (p = -lambda <= 0 for "<=" rows).
    price = -np.asarray(expert_con.dual_value, dtype=np.float64).reshape(e)
    return np.asarray(x.value), float(prob.value), price


def _solve_highs(s, k, cap, equality):  # type: ignore[no-untyped-def]
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n, e = s.shape
    # x is flattened row-major: column t*E + i.
    tok = sp.kron(sp.eye(n, format="csr"), np.ones((1, e)), format="csr")
    exp = sp.kron(np.ones((1, n)), sp.eye(e, format="csr"), format="csr")
    kwargs = {}
    if equality:
        kwargs = {
            "A_eq": sp.vstack([tok, exp], format="csr"),
            "b_eq": np.concatenate([np.full(n, k), np.full(e, cap)]),
        }
    else:
        kwargs = {"A_eq": tok, "b_eq": np.full(n, k), "A_ub": exp, "b_ub": np.full(e, cap)}
    res = linprog(-s.ravel(), bounds=(0, 1), method="highs-ds", **kwargs)
    if res.status != 0:
        raise RuntimeError(f"HiGHS returned status {res.status}: {res.message}")
    # linprog minimises -s.x; the marginal of an expert row is d(min)/dL = -(shadow price) = p.
    marg = res.eqlin.marginals[n:] if equality else res.ineqlin.marginals
    return res.x.reshape(n, e), -float(res.fun), np.asarray(marg, dtype=np.float64)


def _round_and_verify(s, k, cap, equality, x_lp, obj_lp, solver):  # type: ignore[no-untyped-def]
    x = np.rint(x_lp)
    frac = float(np.max(np.abs(x - x_lp)))
    if frac > 1e-6:
        raise RuntimeError(
            f"solver {solver!r} returned a non-vertex LP solution (max distance to 0/1: {frac:.3g}); "
            "use a simplex solver (cvxpy_solver='HIGHS')"
        )
    x = np.clip(x, 0, 1).astype(np.int8)
    rows = x.sum(axis=1)
    cols = x.sum(axis=0)
    if np.any(rows != k) or (np.any(cols != cap) if equality else np.any(cols > cap)):
        raise RuntimeError(f"solver {solver!r}: the rounded assignment is infeasible")
    obj = float(np.sum(s, where=x == 1))
    if abs(obj - obj_lp) > 1e-7 * max(1.0, abs(obj_lp)):
        raise RuntimeError(f"solver {solver!r}: rounded objective {obj} != LP objective {obj_lp}")
    return x


def optimal_prices(
    scores: ArrayLike, assignment: ArrayLike, k: int, capacity: int | None = None
) -> NDArray[np.float64] | None:
    """Exact dual prices certifying a feasible 0/1 assignment, or None if it is not optimal.

    Complementary slackness asks p_j - p_i <= s[t,i] - s[t,j] for every token t on expert i
    and off expert j. Those are shortest-path constraints on the E experts with edge weights
    w_ij = min_t (s[t,i] - s[t,j]); a feasible p exists iff the graph has no negative cycle,
    i.e. iff the assignment is optimal (Klein's cycle-cancelling criterion). For "<=" a node 0
    with p_0 = 0 adds p_i <= 0 and p_i >= 0 for experts below capacity. Floyd-Warshall, O(E^3).
    """
    s = as_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    x = np.asarray(assignment).astype(bool)
    if x.shape != (n, e):
        raise ValueError(f"assignment must have shape (n, E) = ({n}, {e}), got {x.shape}")
    w = np.full((e + 1, e + 1), np.inf)
    for i in range(e):
        on = s[x[:, i]]
        if on.shape[0] == 0:
            continue
        diff = on[:, i : i + 1] - on  # s[t,i] - s[t,j]
        diff[x[x[:, i]]] = np.inf  # j must be off token t
        w[i, :e] = diff.min(axis=0)
    np.fill_diagonal(w, 0.0)
    if not equality:
        w[e, :e] = 0.0  # p_i <= p_0 = 0
        loads = x.sum(axis=0)
        w[:e, e] = np.where(loads < cap, 0.0, np.inf)  # p_0 <= p_i when i has slack
    dist = w.copy()
    for m in range(e + 1):
        np.minimum(dist, dist[:, m : m + 1] + dist[m : m + 1, :], out=dist)
    scale = max(1.0, float(np.max(np.abs(s))))
    if np.any(np.diag(dist) < -1e-9 * scale):
        return None
    if equality:
        p = dist[:e, :e].min(axis=0)  # virtual source with 0-edges to every expert
        return p - p.mean()
    p = np.minimum(dist[e, :e], 0.0)
    # Slackness: an expert below capacity has price exactly 0 (distances can carry rounding
    # far below the negative-cycle tolerance, e.g. -8e-90).
    p[x.sum(axis=0) < cap] = 0.0
    return p


@dataclass(frozen=True)
class Certificate:
    """What :func:`certify` found. ``ok`` iff every check passed within ``tol``."""

    primal_feasible: bool
    integral: bool
    dual_feasible: bool
    complementary_slackness: bool
    primal_objective: float
    dual_objective: float
    duality_gap: float
    max_slackness_violation: float
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def certify(
    scores: ArrayLike,
    k: int,
    assignment: ArrayLike,
    bias: ArrayLike,
    *,
    capacity: int | None = None,
    tol: float = 1e-7,
) -> Certificate:
    """Check an assignment and a bias against the LP optimality conditions.

    Primal feasibility (0/1, k per token, loads = L or <= L), dual feasibility (p <= 0 in the
    "<=" case), complementary slackness (every token's experts are a top-k set of s + p, and
    p_i < 0 only on full experts) and the duality gap D(p) - s.x >= 0, which is zero iff all
    hold. Tolerances are absolute, scaled by max(1, max |s|, max |p|).
    """
    s = as_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    p = as_bias(bias, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    x_raw = np.asarray(assignment)
    if x_raw.shape != (n, e):
        raise ValueError(f"assignment must have shape (n, E) = ({n}, {e}), got {x_raw.shape}")
    scale = max(1.0, float(np.max(np.abs(s))), float(np.max(np.abs(p))))
    atol = tol * scale
    problems: list[str] = []

    integral = bool(np.all((x_raw == 0) | (x_raw == 1)))
    if not integral:
        problems.append("assignment has entries outside {0, 1}")
    x = x_raw.astype(np.float64)
    rows, loads = x.sum(axis=1), x.sum(axis=0)
    feasible = integral and bool(np.all(rows == k))
    if integral and not np.all(rows == k):
        problems.append(f"token rows must sum to k={k}; {int(np.sum(rows != k))} do not")
    bad_cols = (loads != cap) if equality else (loads > cap)
    if np.any(bad_cols):
        feasible = False
        problems.append(
            f"expert loads must be {'==' if equality else '<='} L={cap}; "
            f"{int(bad_cols.sum())} experts violate it (max load {int(loads.max())})"
        )

    dual_ok = equality or bool(np.all(p <= atol))
    if not dual_ok:
        problems.append(f"bias must be <= 0 in the '<=' case; max is {p.max():.3g}")

    r = s + p
    on = x > 0.5
    worst_on = np.where(on, r, np.inf).min(axis=1)
    best_off = np.where(on, -np.inf, r).max(axis=1)
    viol = float(np.max(np.maximum(best_off - worst_on, 0.0), initial=0.0))
    if not equality:
        slack_viol = np.where(loads < cap, np.maximum(-p, 0.0), 0.0)
        viol = max(viol, float(slack_viol.max(initial=0.0)))
    cs = viol <= atol
    if not cs:
        problems.append(f"complementary slackness violated by {viol:.3g} (tolerance {atol:.3g})")

    primal = float(np.sum(s * x))
    dual = _dual_value(s, np.minimum(p, 0.0) if not equality else p, k, cap)
    gap = dual - primal
    if feasible and dual_ok and gap > atol * max(1.0, n):
        problems.append(f"duality gap {gap:.3g} exceeds tolerance {atol * max(1.0, n):.3g}")
    return Certificate(
        primal_feasible=feasible,
        integral=integral,
        dual_feasible=dual_ok,
        complementary_slackness=cs,
        primal_objective=primal,
        dual_objective=dual,
        duality_gap=gap,
        max_slackness_violation=viol,
        problems=tuple(problems),
    )
