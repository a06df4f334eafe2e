"""Exact minimisation of a convex piecewise-linear dual by a level-stabilised cutting-plane method.

The duals of the toolkit are sums of maxima of affine functions of the price p (E,):
D(p) = sum_j D_j(p), each D_j(p) = max_X a_{j,X} + g_{j,X}.p. An oracle evaluates every piece
at p and returns its value and a subgradient (the active affine function). Each call adds one
cut per piece (disaggregated cuts, Kelley 1960; level stabilisation, Lemarechal, Nemirovskii
and Nesterov 1995, here in the infinity norm so every subproblem is an LP for HiGHS). Stopped
by a certificate: upper bound = the best D value seen (a true value at a known price), lower
bound = the minimum of the cutting-plane model (every cut is a global under-estimator of its
piece), gap = upper - lower.

The model is minimised over the box |p_i| <= B on the hyperplane sum p = 0 (D is invariant
under p -> p + c 1 when every token takes k experts and E L = n k). The lower bound is computed
from the master LP's multipliers in float64 (weak duality, :func:`_dual_bound`): it holds for
every price in the box, whatever the LP solver's tolerances. The method requires the best price
to lie well inside the box (|p|_inf <= B / 2; else B is doubled and it continues), so the
certified gap is that of a minimiser strictly inside the region the bound covers.
``box_active`` reports a final best price outside B / 2 (then ``converged`` is False).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = ["CutResult", "minimize_pieces"]

Oracle = Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], sp.csr_matrix]]


@dataclass(frozen=True)
class CutResult:
    """price: the best price found (sum 0); upper: D(price); lower: the certified lower bound
    on min_p D(p); gap: upper - lower; rel_gap: gap / max(1, |upper|); calls: oracle calls
    (each one pass over the data); box: the final box half-width B; box_active: True if the
    model's minimiser touched the box (then ``lower`` is only a bound over the box)."""

    price: NDArray[np.float64]
    upper: float
    lower: float
    gap: float
    rel_gap: float
    calls: int
    box: float
    box_active: bool
    converged: bool


_TIGHT = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


def _dual_bound(lam, a, g, piece, m, box):  # type: ignore[no-untyped-def]
    """A lower bound on min_{|q| <= box, sum q = 0} of the model from any multipliers lam >= 0:
    normalised per piece (weights summing to 1 over each piece's cuts), sum_c lam_c (a_c +
    g_c.q) <= model(q) for every q, and its minimum over the box is sum lam a - box ||r - mu||_1
    with r = sum lam g and mu = median(r) (weak duality evaluated in float64, independent of the
    LP solver's tolerances)."""
    lam = np.maximum(lam, 0.0)
    tot = np.bincount(piece, weights=lam, minlength=m)
    if np.any(tot <= 0):
        return -np.inf
    w = lam / tot[piece]
    r = np.asarray(g.T @ w).ravel()
    return float(w @ a - box * np.abs(r - np.median(r)).sum())


def _model_lp(e, m, rows_a, rows_g, rows_piece, box, extra=None):  # type: ignore[no-untyped-def]
    """Kelley master: min sum z s.t. g.q - z_j <= -a, sum q = 0, |q| <= box. Variables (q, z)."""
    from scipy.optimize import linprog

    g = sp.vstack(rows_g).tocsr()
    piece = np.concatenate(rows_piece)
    a = np.concatenate(rows_a)
    nrow = g.shape[0]
    zpart = sp.csr_matrix((-np.ones(nrow), (np.arange(nrow), piece)), shape=(nrow, m))
    a_ub = sp.hstack([g, zpart]).tocsr()
    b_ub = -a
    c = np.concatenate([np.zeros(e), np.ones(m)])
    bounds = [(-box, box)] * e + [(None, None)] * m
    a_eq = sp.csr_matrix(np.concatenate([np.ones(e), np.zeros(m)])[None, :])
    if extra is not None:  # level projection: min t s.t. |q - centre| <= t, sum z <= level
        centre, level = extra
        c = np.concatenate([np.zeros(e + m), [1.0]])
        a_ub = sp.hstack([a_ub, sp.csr_matrix((nrow, 1))]).tocsr()
        eye = sp.identity(e, format="csr")
        zeros_m = sp.csr_matrix((e, m))
        minus1 = sp.csr_matrix(-np.ones((e, 1)))
        up = sp.hstack([eye, zeros_m, minus1])
        down = sp.hstack([-eye, zeros_m, minus1])
        lev = sp.csr_matrix(np.concatenate([np.zeros(e), np.ones(m), [0.0]])[None, :])
        a_ub = sp.vstack([a_ub, up, down, lev]).tocsr()
        b_ub = np.concatenate([b_ub, centre, -centre, [level]])
        bounds = bounds + [(0, None)]
        a_eq = sp.hstack([a_eq, sp.csr_matrix((1, 1))]).tocsr()
    res = linprog(c, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[0.0], bounds=bounds, method="highs",
                  options=_TIGHT)  # fmt: skip
    if res.status != 0:
        return None
    if extra is not None:
        return res.x[:e], float(res.fun), None
    lam = -np.asarray(res.ineqlin.marginals, dtype=np.float64)[:nrow]
    return res.x[:e], _dual_bound(lam, a, g, piece, m, box), None


def minimize_pieces(
    oracle: Oracle,
    n_experts: int,
    n_pieces: int,
    *,
    start: NDArray[np.float64] | None = None,
    box: float = 1.0,
    rtol: float = 1e-9,
    max_calls: int = 200,
    level: float = 0.3,
    max_doublings: int = 6,
) -> CutResult:
    """Minimise D(p) = sum of ``n_pieces`` convex piecewise-linear pieces (module docstring).

    ``oracle(p)`` returns (values (m,), subgradients (m, E) sparse): D_j(p) and an active
    gradient of each piece. Stops when upper - lower <= rtol * max(1, |upper|) with an interior
    model minimiser, or after ``max_calls`` oracle calls (``converged`` False then).
    """
    e, m = int(n_experts), int(n_pieces)
    if not (0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level}")
    p = np.zeros(e) if start is None else np.asarray(start, dtype=np.float64) - np.mean(start)
    box = max(float(box), 2.0 * float(np.max(np.abs(p))) + 1e-12)
    rows_a: list[NDArray[np.float64]] = []
    rows_g: list[sp.csr_matrix] = []
    rows_piece: list[NDArray[np.int64]] = []
    best_p, upper, lower = p, np.inf, -np.inf
    calls, active, doublings = 0, True, 0
    while calls < max_calls:
        vals, grads = oracle(p)
        calls += 1
        value = float(np.sum(vals))
        if value < upper:
            best_p, upper = p.copy(), value
        rows_a.append(vals - grads @ p)
        rows_g.append(grads)
        rows_piece.append(np.arange(m))
        sol = _model_lp(e, m, rows_a, rows_g, rows_piece, box)
        if sol is None:
            raise RuntimeError("the cutting-plane master LP failed (HiGHS status != 0)")
        q, lower, _ = sol
        active = bool(np.max(np.abs(best_p)) > box / 2)
        gap = upper - lower
        if gap <= rtol * max(1.0, abs(upper)):
            if not active or doublings >= max_doublings:
                return CutResult(best_p, upper, lower, gap, gap / max(1.0, abs(upper)), calls,
                                 box, active, not active)  # fmt: skip
            box *= 2.0  # the best price is not well inside the box: widen it, continue
            doublings += 1
            p = q
            continue
        target = lower + level * gap
        proj = _model_lp(e, m, rows_a, rows_g, rows_piece, box, extra=(best_p, target))
        p = q if proj is None else proj[0]
    gap = upper - lower
    return CutResult(best_p, upper, lower, gap, gap / max(1.0, abs(upper)), calls, box, active,
                     False)  # fmt: skip
