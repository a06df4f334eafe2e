"""The batch LP handed to a general LP solver: methods "cvxpy" (the reference oracle) and "linprog".

Both solve the same LP (:mod:`lfbtheory.lp.model`) with HiGHS' dual simplex at its tightest
feasibility tolerances (1e-10), on scores the caller has rescaled by a power of two to
max |s| < 1 (HiGHS' tolerances are absolute). "cvxpy" goes through the cvxpy modelling layer
(the reference the tests compare the fast methods against); "linprog" calls scipy's HiGHS
directly. The vertex is rounded to 0/1 and the rounding verified; prices are the LP's duals.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

__all__ = ["cvxpy_lp", "linprog_lp", "round_vertex"]

_HIGHS_TOL = 1e-10


@contextlib.contextmanager
def _quiet_native_stdout() -> Iterator[None]:
    """Send the process's native stdout (fd 1) to /dev/null while HiGHS runs: its C++ core
    prints a copyright banner on first use that ``output_flag=False`` does not suppress."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no real fd 1 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def cvxpy_lp(
    s: NDArray[np.float64], k: int, cap: int, equality: bool
) -> tuple[NDArray[np.float64], float, NDArray[np.float64]]:
    """(x, objective, prices) of the LP through cvxpy + HiGHS (inputs validated and rescaled)."""
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
        with _quiet_native_stdout():
            prob.solve(
                solver="HIGHS",
                primal_feasibility_tolerance=_HIGHS_TOL,
                dual_feasibility_tolerance=_HIGHS_TOL,
                output_flag=False,
            )
    except (cp.error.SolverError, ValueError) as exc:
        raise RuntimeError(
            f"method 'cvxpy': HiGHS failed on a feasible balanced LP: {exc}"
        ) from None
    if prob.status != cp.OPTIMAL or x.value is None:
        raise RuntimeError(f"method 'cvxpy': status {prob.status!r} for a feasible balanced LP")
    # cvxpy's multiplier y of an expert row in a Maximize problem is the shadow price
    # d(objective)/dL; the bias is p = -y (p = -lambda <= 0 for "<=" rows).
    price = -np.asarray(expert_con.dual_value, dtype=np.float64).reshape(e)
    return np.asarray(x.value), float(prob.value), price


def linprog_lp(
    s: NDArray[np.float64], k: int, cap: int, equality: bool
) -> tuple[NDArray[np.float64], float, NDArray[np.float64]]:
    """(x, objective, prices) of the LP through scipy.optimize.linprog (HiGHS dual simplex)."""
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n, e = s.shape
    # x is flattened row-major: column t*E + i.
    tok = sp.kron(sp.eye(n, format="csr"), np.ones((1, e)), format="csr")
    exp = sp.kron(np.ones((1, n)), sp.eye(e, format="csr"), format="csr")
    if equality:
        kwargs = {
            "A_eq": sp.vstack([tok, exp], format="csr"),
            "b_eq": np.concatenate([np.full(n, k), np.full(e, cap)]),
        }
    else:
        kwargs = {"A_eq": tok, "b_eq": np.full(n, k), "A_ub": exp, "b_ub": np.full(e, cap)}
    with _quiet_native_stdout():
        res = linprog(
            -s.ravel(),
            bounds=(0, 1),
            method="highs-ds",
            options={
                "primal_feasibility_tolerance": _HIGHS_TOL,
                "dual_feasibility_tolerance": _HIGHS_TOL,
            },
            **kwargs,
        )
    if res.status != 0:
        raise RuntimeError(f"method 'linprog': HiGHS returned status {res.status}: {res.message}")
    # linprog minimises -s.x; the marginal of an expert row is d(min)/dL = -(shadow price) = p.
    marg = res.eqlin.marginals[n:] if equality else res.ineqlin.marginals
    return res.x.reshape(n, e), -float(res.fun), np.asarray(marg, dtype=np.float64)


def round_vertex(
    s: NDArray[np.float64],
    k: int,
    cap: int,
    equality: bool,
    x_lp: NDArray[np.float64],
    obj_lp: float,
    method: str,
) -> NDArray[np.int8]:
    """Round an LP vertex to 0/1 and verify integrality, feasibility and the objective."""
    x = np.rint(x_lp)
    frac = float(np.max(np.abs(x - x_lp)))
    if not frac <= 1e-6:
        raise RuntimeError(
            f"method {method!r} returned a non-vertex LP solution (max distance to 0/1: {frac:.3g})"
        )
    x = np.clip(x, 0, 1).astype(np.int8)
    rows = x.sum(axis=1)
    cols = x.sum(axis=0)
    if np.any(rows != k) or (np.any(cols != cap) if equality else np.any(cols > cap)):
        raise RuntimeError(f"method {method!r}: the rounded assignment is infeasible")
    obj = float(np.sum(s, where=x == 1))
    if not abs(obj - obj_lp) <= 1e-7 * max(1.0, abs(obj_lp)):
        raise RuntimeError(f"method {method!r}: rounded objective {obj} != LP objective {obj_lp}")
    return x
