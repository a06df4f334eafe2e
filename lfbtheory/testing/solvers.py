"""A test battery for exact balanced-assignment solvers (yours or ours), in the style of cvxpy's.

Each named :class:`Instance` carries its known optimum and one optimal price vector, both known
*by construction* (a closed form, or exhaustive enumeration for the tie-heavy one) -- never by
running a solver. :func:`run_battery` passes every instance to a solver, a callable
``solve(scores, k, capacity) -> assignment`` returning an (n, E) 0/1 array or an object with
``.assignment`` (and optionally ``.bias``, e.g. :class:`lfbtheory.lp.BalancedAssignment`), and
checks:

- feasibility: 0/1, k experts per token, loads = L (or <= L);
- the objective s.x equals the known optimum;
- if the solver returns prices: the dual objective D(bias) equals the optimum (strong duality)
  and :func:`lfbtheory.lp.certify` passes (complementary slackness). Raw price vectors are never
  compared: prices are unique only up to a constant and non-unique on degenerate instances.

All comparisons use the relative tolerance rtol * max|s| per token (rtol = 1e-9 by default,
the certificate's; score differences below it are not resolved). :func:`check_solver` raises
AssertionError listing every failure. (LP model: arXiv 2408.15664 Sec. 3 read as an LP.)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lfbtheory.lp import RTOL, certify, dual_objective, optimal_prices, resolve_capacity

__all__ = ["BatteryResult", "Instance", "check_solver", "instances", "run_battery"]


@dataclass(frozen=True)
class Instance:
    """A battery instance: scores (n, E), k, capacity (None: L = n k / E), the known optimum,
    one optimal price vector certifying it, and what the instance exercises."""

    name: str
    scores: NDArray[np.floating]
    k: int
    capacity: int | None
    optimum: float
    prices: NDArray[np.float64]
    note: str


@dataclass(frozen=True)
class BatteryResult:
    """Outcome of one instance: ``problems`` is empty iff the solver passed it."""

    name: str
    objective: float
    optimum: float
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def _rank1(n: int, e: int, k: int, rng: np.random.Generator, dtype, e2: int = 0):  # type: ignore[no-untyped-def]
    """s = a_t + c_i with dyadic a, c (exact in float32): every feasible assignment is optimal,
    the optimum is k sum(a) + L sum(c) and p = -c makes every expert tied for every token."""
    a = rng.integers(0, 64, size=n) / 8.0
    c = rng.integers(0, 64, size=e) / 16.0
    s = np.ldexp(a[:, None] + c[None, :], e2).astype(dtype)
    cap = n * k // e
    opt = np.ldexp(k * a.sum() + cap * c.sum(), e2)
    p = -np.ldexp(c, e2)
    return s, float(opt), p - p.mean()


def _ties() -> tuple[NDArray[np.float64], float, NDArray[np.float64]]:
    """Integer scores in {-1, 0, 1} (heavy ties); optimum by exhaustive enumeration."""
    s = np.array(
        [[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, -1], [-1, 1, 1]], dtype=np.float64
    )
    n, e, k = 6, 3, 2
    cap = n * k // e
    best, best_x = -np.inf, None
    for choice in itertools.product(itertools.combinations(range(e), k), repeat=n):
        loads = np.bincount(np.array(choice).ravel(), minlength=e)
        if np.all(loads == cap):
            val = sum(s[t, list(c)].sum() for t, c in enumerate(choice))
            if val > best:
                best = val
                best_x = np.zeros((n, e), dtype=np.int8)
                for t, c in enumerate(choice):
                    best_x[t, list(c)] = 1
    assert best_x is not None  # some choice was enumerated (k <= E)
    p = optimal_prices(s, k, best_x)
    assert p is not None  # the enumerated optimum has no improving cycle
    return s, float(best), p


def instances() -> tuple[Instance, ...]:
    """The named battery (deterministic: fixed seeds)."""
    rng = np.random.default_rng(20240815)
    out = []
    s, opt, p = _ties()
    out.append(Instance("ties", s, 2, None, opt, p, "heavy ties, optimum by enumeration"))
    out.append(
        Instance(
            "all_equal",
            np.full((8, 4), 0.3),
            2,
            None,
            8 * 2 * 0.3,
            np.zeros(4),
            "every assignment optimal, every expert tied",
        )
    )
    eye = np.eye(5)
    out.append(Instance("k1", eye, 1, None, 5.0, np.zeros(5), "k = 1: a permutation"))
    out.append(
        Instance(
            "k_E_minus_1",
            -np.eye(5),
            4,
            None,
            0.0,
            np.zeros(5),
            "k = E - 1: each token drops its one bad expert",
        )
    )
    s = rng.normal(size=(6, 4))
    out.append(Instance("k_E", s, 4, None, float(s.sum()), np.zeros(4), "k = E: all ones"))
    out.append(
        Instance(
            "n1",
            np.array([[0.5, -1.0, 2.0, 0.25]]),
            2,
            1,
            2.5,
            np.zeros(4),
            "n = 1 token, '<=' capacity 1",
        )
    )
    # "<=": plain top-1 sends all three tokens to expert 0 (capacity 2); the third moves.
    out.append(
        Instance(
            "le_capacity",
            np.array([[3.0, 0.0], [2.0, 0.0], [1.0, 0.0]]),
            1,
            2,
            5.0,
            np.array([-1.5, 0.0]),
            "'<=' capacity that binds, price < 0 on the full expert",
        )
    )
    s, opt, p = _rank1(32, 8, 2, rng, np.float32)
    out.append(Instance("float32", s, 2, None, opt, p, "float32 scores (dyadic, exact)"))
    # 1e6 next to 1e-6: the 1e6 diagonal forces the assignment, the 1e-6 entries must not
    # disturb it (resolution rtol * 1e6 per token).
    big = 1e6 * np.eye(4) + 1e-6 * np.arange(16).reshape(4, 4)
    out.append(
        Instance(
            "dynamic_range",
            big,
            1,
            None,
            float(np.trace(big)),
            np.zeros(4),
            "entries 1e6 next to 1e-6",
        )
    )
    s, opt, p = _rank1(64, 16, 2, rng, np.float64, e2=-1000)
    out.append(Instance("tiny_scale", s, 2, None, opt, p, "rank-1 scores of size 1e-300"))
    s, opt, p = _rank1(128, 32, 2, rng, np.float64)
    out.append(Instance("rank1", s, 2, None, opt, p, "rank-1: every feasible assignment optimal"))
    return tuple(out)


def _unpack(result: object) -> tuple[NDArray[np.generic], NDArray[np.float64] | None]:
    x = getattr(result, "assignment", result)
    bias = getattr(result, "bias", None)
    return np.asarray(x), None if bias is None else np.asarray(bias, dtype=np.float64)


def _check(inst: Instance, result: object, rtol: float) -> BatteryResult:
    s = inst.scores.astype(np.float64)
    n, e = s.shape
    cap, equality = resolve_capacity(n, inst.k, e, inst.capacity)
    tol = rtol * float(np.max(np.abs(s))) * n * inst.k
    problems: list[str] = []
    x, bias = _unpack(result)
    objective = float("nan")
    if x.shape != (n, e):
        return BatteryResult(inst.name, objective, inst.optimum, (f"assignment shape {x.shape}",))
    if not np.all((x == 0) | (x == 1)):
        problems.append("assignment is not 0/1")
    xb = x == 1
    if np.any(xb.sum(axis=1) != inst.k):
        problems.append(f"a token does not get k={inst.k} experts")
    loads = xb.sum(axis=0)
    if np.any(loads != cap) if equality else np.any(loads > cap):
        problems.append(f"loads {loads.tolist()} violate L={cap} ({'==' if equality else '<='})")
    objective = float(np.sum(s, where=xb))
    if not abs(objective - inst.optimum) <= tol:
        problems.append(
            f"objective {objective!r} != known optimum {inst.optimum!r} (tol {tol:.3g})"
        )
    if bias is not None and not problems:
        d = dual_objective(s, inst.k, bias, capacity=inst.capacity)
        if not abs(d - inst.optimum) <= tol:
            problems.append(f"dual objective D(bias) = {d!r} != optimum {inst.optimum!r}")
        cert = certify(s, inst.k, x, bias, capacity=inst.capacity, rtol=rtol)
        if not cert.ok:
            problems.append("certificate: " + "; ".join(cert.problems))
    return BatteryResult(inst.name, objective, inst.optimum, tuple(problems))


def run_battery(
    solve: Callable[[NDArray[np.floating], int, int | None], object], *, rtol: float = RTOL
) -> tuple[BatteryResult, ...]:
    """Run ``solve(scores, k, capacity)`` on every instance; an exception counts as a failure."""
    out = []
    for inst in instances():
        try:
            result = solve(inst.scores.copy(), inst.k, inst.capacity)
        except Exception as exc:  # a crash is a failed instance, reported with its message
            out.append(
                BatteryResult(
                    inst.name, float("nan"), inst.optimum, (f"raised {type(exc).__name__}: {exc}",)
                )
            )
            continue
        out.append(_check(inst, result, rtol))
    return tuple(out)


def check_solver(
    solve: Callable[[NDArray[np.floating], int, int | None], object], *, rtol: float = RTOL
) -> tuple[BatteryResult, ...]:
    """:func:`run_battery`, raising AssertionError that lists every failed instance."""
    results = run_battery(solve, rtol=rtol)
    failed = [r for r in results if not r.ok]
    if failed:
        raise AssertionError(
            f"{len(failed)}/{len(results)} battery instances failed:\n"
            + "\n".join(f"  {r.name}: {'; '.join(r.problems)}" for r in failed)
        )
    return results
