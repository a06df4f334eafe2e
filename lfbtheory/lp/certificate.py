"""The optimality certificate of the batch LP and exact prices from an assignment, in numpy.

A 0/1 assignment x of the batch LP (:mod:`lfbtheory.lp.model`) is optimal iff it is feasible
and some prices p make every token's experts a top-k set of s + p (complementary slackness);
then D(p) = s.x, and D(p) >= OPT for every p is weak duality (arXiv 2408.15664 Sec. 3 read as
an LP). :func:`certify` checks exactly that. It is written with numpy alone and shares no code
with the routing kernels or the solvers of :mod:`lfbtheory._engine`, so a bug there cannot
corrupt an answer and its check together; every solver's answer goes through it before it is
returned.

**What a passing certificate guarantees.** With w = p - max p (the routing gauge) and
r = s + w, token t's check compares its worst assigned entry a (the minimum of r over its
experts) with its best unassigned entry b (the maximum over the others):

    viol_t = r[t, b] - r[t, a] <= tol = rtol * (S + max w - min w),   S = max |s| over x.

S is the magnitude of the assigned entries, never that of the largest entry of the batch: an
expert masked with -1e9 (or any outlier) that no token takes cannot loosen any check. (An
unassigned entry that decides a token is within S + spread(w) of zero when the token passes,
since r[t, b] <= r[t, a]. The tolerance is one number for the batch, not one per token,
because prices are shared: a solver computes them from the comparisons of all tokens, so
their rounding is relative to S and to their own spread.) D(p) - s.x = sum_t (topKsum(r_t) -
sum of r_t over x_t), plus in the "<=" case sum_j (L - load_j) |p_j|, and each token's term
is at most k viol_t^+. Hence a certificate that is ``ok`` proves

    s.x >= OPT - tolerance,   tolerance = n k tol  (+ sum_j (L - load_j) tol in the "<=" case),

so an assignment worse than the optimum by more than ``tolerance`` is never certified,
whatever prices come with it (:attr:`Certificate.tolerance` reports it). Loads, rows and 0/1
entries are checked exactly (integers).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.lp.model import RTOL, Certificate, lp_bias, lp_scores, resolve_capacity
from lfbtheory.validation import as_k

__all__ = ["certify", "exchange_graph", "optimal_prices"]


def certify(
    scores: ArrayLike,
    k: int,
    assignment: ArrayLike,
    bias: ArrayLike,
    *,
    capacity: int | None = None,
    rtol: float = RTOL,
) -> Certificate:
    """Check an assignment and a bias against the optimality conditions of the batch LP.

    Primal feasibility (0/1 entries, k per token, loads = L, or <= L), dual feasibility
    (p <= 0 in the "<=" case), complementary slackness (each token's experts are a top-k set of
    s + p within its own tolerance, and p_i = 0 on experts with room) and the duality gap
    D(p) - s.x. ``ok`` implies ``s.x >= OPT - tolerance`` (module docstring: the tolerance is
    built from the entries that decide each token, never from an outlier).

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> s = np.array([[0.9, 0.1], [0.8, 0.3]])
    >>> opt = lfb.solve_balanced(s, 1)
    >>> lfb.certify(s, 1, opt.assignment, opt.bias).ok
    True
    >>> lfb.certify(s, 1, [[0, 1], [1, 0]], opt.bias).ok  # feasible, but 0.1 worse
    False
    """
    s = lp_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    p = lp_bias(bias, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    x = _as_assignment(assignment, n, e)
    if isinstance(rtol, bool) or not (isinstance(rtol, (int, float)) and 0 <= rtol < 1):
        raise ValueError(f"rtol must be a real number in [0, 1), got {rtol!r}")
    return verdict(s, k, x, p, cap, equality, float(rtol))


def _as_assignment(assignment: ArrayLike, n: int, e: int) -> NDArray[np.generic]:
    """``assignment`` as a real (n, E) array (entries not yet checked) or TypeError/ValueError."""
    if isinstance(assignment, (str, bytes)) or assignment is None:
        raise TypeError(f"assignment must be an (n, E) 0/1 array, got {type(assignment).__name__}")
    try:
        x = np.asarray(assignment)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"assignment must be an (n, E) 0/1 array: {exc}") from None
    if (
        x.dtype == object
        or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool)
        or np.issubdtype(x.dtype, np.complexfloating)
    ):
        raise TypeError(f"assignment must hold real numbers (0/1), got dtype {x.dtype}")
    if x.shape != (n, e):
        raise ValueError(f"assignment must have shape (n, E) = ({n}, {e}), got {x.shape}")
    return x


def token_checks(
    s: NDArray[np.float64], on: NDArray[np.bool_], w: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(viol, term) per token of scores s (..., n, E), assigned entries ``on`` and offsets
    w (..., E): viol_t = max off r - min on r of r = s + w (-inf for a token with no entry
    on or every entry on) and term_t = topKsum(r_t) - (sum of r_t over on_t) >= 0, the
    token's share of the duality gap (0, exactly, where viol_t <= 0)."""
    r = s + w[..., None, :]
    both = on.any(axis=-1) & ~on.all(axis=-1)
    lo = np.where(on, r, np.inf).min(axis=-1)
    hi = np.where(on, -np.inf, r).max(axis=-1)
    viol = np.where(both, hi - lo, -np.inf)
    term = np.zeros(viol.shape)
    bad = viol > 0
    if bad.any():
        rows = r[bad]
        kk = on[bad].sum(axis=-1)
        cum = np.cumsum(-np.sort(-rows, axis=-1), axis=-1)
        best = np.take_along_axis(cum, np.maximum(kk - 1, 0)[:, None], axis=-1)[:, 0]
        term[bad] = np.maximum(best - np.where(on[bad], rows, 0.0).sum(axis=-1), 0.0)
    return viol, term


def assigned_size(s: NDArray[np.float64], on: NDArray[np.bool_]) -> NDArray[np.float64]:
    """max |s| over each token's assigned entries (..., n); S is their max (module docstring)."""
    return np.where(on, np.abs(s), 0.0).max(axis=-1)


def row_sums(s: NDArray[np.float64], on: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Sum of s over the assigned entries of each token (..., n): the objective is the sum of
    these over the tokens, in token order, by every verdict here (one batch, a stream of
    batches, growing prefixes), so they agree bit for bit."""
    return np.where(on, s, 0.0).sum(axis=-1)


def verdict(
    s: NDArray[np.float64],
    k: int,
    x: NDArray[np.generic],
    p: NDArray[np.float64],
    cap: int,
    equality: bool,
    rtol: float,
) -> Certificate:
    """:func:`certify` on validated scores, prices and capacity (x not yet checked)."""
    n, e = s.shape
    integral = bool(np.all((x == 0) | (x == 1)))
    problems: list[str] = []
    if not integral:
        problems.append(f"assignment has {int(np.sum((x != 0) & (x != 1)))} entries outside {{0, 1}}")
    on = x == 1
    rows = on.sum(axis=1)
    loads = on.sum(axis=0)
    wrong_rows = int(np.sum(rows != k))
    feasible = integral and wrong_rows == 0
    if integral and wrong_rows:
        problems.append(f"token rows must sum to k={k}; {wrong_rows} do not")
    bad_cols = (loads != cap) if equality else (loads > cap)
    if np.any(bad_cols):
        feasible = False
        problems.append(
            f"expert loads must be {'==' if equality else '<='} L={cap}; "
            f"{int(bad_cols.sum())} experts violate it (max load {int(loads.max())})"
        )
    w = p - p.max()
    viol, term = token_checks(s, on, w)
    tol = rtol * (float(assigned_size(s, on).max(initial=0.0)) + float(w.max() - w.min()))
    primal = float(np.sum(row_sums(s, on)))
    worst = float(viol.max(initial=-np.inf))
    cs = bool(np.all(viol <= tol))
    if not cs:
        t = int(np.argmax(viol))
        problems.append(
            f"complementary slackness violated at token {t}: an unassigned expert beats an "
            f"assigned one by {viol[t]:.3g} (tolerance {tol:.3g})"
        )
    gap = float(term.sum())
    tolerance = n * k * tol
    dual_ok = True
    if not equality:
        # "<=": prices live in p <= 0, and an expert with room must have price 0
        dual_ok = bool(np.all(p <= tol))
        if not dual_ok:
            problems.append(f"bias must be <= 0 in the '<=' case; max is {p.max():.3g}")
        # an expert never holds more than n tokens, so capacity min(L, n) is the same LP
        room = np.maximum(min(cap, n) - loads, 0)
        priced = np.where(room > 0, -np.minimum(p, 0.0), 0.0)
        if np.any(priced > tol):
            j = int(np.argmax(priced))
            cs = False
            problems.append(
                f"complementary slackness violated at expert {j}: it has room for "
                f"{int(room[j])} tokens but price {p[j]:.3g} < 0 (tolerance {tol:.3g})"
            )
        gap += float(np.sum(room * -np.minimum(p, 0.0)))
        tolerance += float(np.sum(room)) * tol
        worst = max(worst, float(priced.max(initial=0.0)))
    return Certificate(
        primal_feasible=feasible,
        integral=integral,
        dual_feasible=dual_ok,
        complementary_slackness=cs,
        primal_objective=primal,
        dual_objective=primal + gap if dual_ok else float("inf"),
        duality_gap=gap if dual_ok else float("inf"),
        max_slackness_violation=max(worst, 0.0),
        tolerance=tolerance,
        problems=tuple(problems),
    )


def _feasible_assignment(assignment, n, e, k, cap, equality):  # type: ignore[no-untyped-def]
    x = _as_assignment(assignment, n, e)
    if not np.all((x == 0) | (x == 1)):
        raise ValueError("assignment must be a 0/1 matrix (entries outside {0, 1} found)")
    x = x.astype(bool)
    rows, loads = x.sum(axis=1), x.sum(axis=0)
    if np.any(rows != k):
        raise ValueError(
            f"assignment must have k={k} ones per token row; {int(np.sum(rows != k))} rows do not"
        )
    if np.any(loads != cap) if equality else np.any(loads > cap):
        raise ValueError(
            f"assignment must have expert loads {'==' if equality else '<='} L={cap}; "
            f"max load {int(loads.max())}, min load {int(loads.min())}"
        )
    return x


def exchange_graph(s: NDArray[np.float64], x: NDArray[np.bool_]) -> NDArray[np.float64]:
    """W[i, j] = min over tokens t on expert i and off expert j of s[t,i] - s[t,j] (inf if none).

    Moving such a token from i to j changes the objective by -W[i, j]; x is optimal iff this
    graph has no negative cycle (Klein's cycle-cancelling criterion).
    """
    n, e = s.shape
    w = np.full((e, e), np.inf)
    for i in range(e):
        on = x[:, i]
        if not on.any():
            continue
        rows = s[on]
        diff = rows[:, i : i + 1] - rows
        diff[x[on]] = np.inf  # j must be off token t
        w[i] = diff.min(axis=0)
    np.fill_diagonal(w, 0.0)
    return w


def optimal_prices(
    scores: ArrayLike,
    k: int,
    assignment: ArrayLike,
    *,
    capacity: int | None = None,
    rtol: float = RTOL,
) -> NDArray[np.float64] | None:
    """Dual prices certifying a feasible 0/1 assignment, or None if it is not optimal.

    Complementary slackness asks p_j - p_i <= W[i,j] = min_t (s[t,i] - s[t,j]) over tokens t on
    expert i and off expert j: difference constraints, feasible iff the expert exchange graph
    (:func:`exchange_graph`) has no negative cycle, i.e. iff the assignment is optimal. For
    "<=" a node 0 with p_0 = 0 adds p_i <= 0, and p_i >= 0 for experts below capacity.

    Shortest paths by Bellman-Ford from a virtual source (E+1 rounds, each edge relaxed once per
    round). The prices found are returned only if :func:`certify` passes with them, so a
    returned p carries certify's guarantee: the assignment is within ``certify``'s tolerance
    of the optimum (rounding-level cycles, e.g. on rank-1 scores where every assignment is
    optimal, are accepted; improving ones are not). An assignment that is not a feasible 0/1
    matrix is refused with a ValueError.
    """
    s = lp_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    if isinstance(rtol, bool) or not (isinstance(rtol, (int, float)) and 0 <= rtol < 1):
        raise ValueError(f"rtol must be a real number in [0, 1), got {rtol!r}")
    x = _feasible_assignment(assignment, n, e, k, cap, equality)
    loads = x.sum(axis=0)
    v = e if equality else e + 1
    w = np.full((v, v), np.inf)
    w[:e, :e] = exchange_graph(s, x)
    if not equality:
        w[e, :e] = 0.0  # p_i <= p_0 = 0
        w[:e, e] = np.where(loads < cap, 0.0, np.inf)  # p_0 <= p_i when i has room
        w[e, e] = 0.0
    dist = np.zeros(v)  # virtual source with 0-edges to every node
    for _ in range(v):
        new = np.minimum(dist, (dist[:, None] + w).min(axis=0))
        if np.array_equal(new, dist):
            break
        dist = new
    if equality:
        p = dist - dist.mean()
    else:
        p = np.minimum(dist[:e] - dist[e], 0.0)
        p[loads < cap] = 0.0  # slackness: an expert with room has price exactly 0
    if not verdict(s, k, x.view(np.uint8), p, cap, equality, float(rtol)).ok:
        return None
    return p


def stream_verdicts(
    s: NDArray[np.float64],
    x: NDArray[np.uint8],
    p: NDArray[np.float64],
    k: int,
    cap: int,
    rtol: float = RTOL,
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """(ok (T,), objective (T,)) of the equality-case answers (x (T, n, E) 0/1, p (T, E)) for
    the batches s (T, n, E): ``verdict(s[t], k, x[t], p[t], cap, True, rtol).ok`` and its
    ``primal_objective`` for every t, vectorised (the same float operations per batch)."""
    on = x == 1
    integral = np.all((x == 0) | (x == 1), axis=(1, 2))
    rows_ok = np.all(on.sum(axis=2) == k, axis=1)
    loads_ok = np.all(on.sum(axis=1) == cap, axis=1)
    w = p - p.max(axis=1, keepdims=True)
    viol, _ = token_checks(s, on, w)
    tol = rtol * (assigned_size(s, on).max(axis=1) + (w.max(axis=1) - w.min(axis=1)))
    cs = np.all(viol <= tol[:, None], axis=1)
    objective = row_sums(s, on).sum(axis=1)
    return integral & rows_ok & loads_ok & cs, objective


class GrowingVerdicts:
    """Certificates of the nested prefixes s[:n_1] ⊂ s[:n_2] ⊂ ... of one stream, each with
    its own assignment and prices, at the cost of the tokens that can have changed.

    A token checked for an earlier prefix is checked again only if its 0/1 row differs from
    the one checked then, or if its margin then (min on - max off of s + w, w = p - max p),
    less the spread of every price change since, is within a rounding guard of a tie: a token
    whose row is unchanged and whose margin stays positive under the price change is still
    strictly a top-k set (its slackness term is 0), so its verdict, its objective share
    (:func:`row_sums`) and its scale are those cached. The verdict of each prefix is the one
    :func:`verdict` gives (``ok``, objective bit for bit, loads, gap). Mutable: one instance
    per sequence of growing prefixes of the same scores.
    """

    GUARD = 1e-12  # relative to max|s| + max|w|: >> the rounding of a margin (~1e-15)
    # the running total of spreads is folded back into the keys once it exceeds this many
    # units of max|s| + max|w|, so that key - total keeps a margin's precision
    REBASE = 64.0

    def __init__(self, n_max: int, n_experts: int) -> None:
        self.x_old = np.zeros((n_max, n_experts), dtype=np.uint8)
        self.keys = np.full(n_max, -np.inf)  # margin + total when checked (-inf: recheck)
        self.sums = np.zeros(n_max)  # row_sums when checked
        self.size = np.zeros(n_max)  # assigned_size when checked
        self.loads = np.zeros(n_experts, dtype=np.int64)
        self.n_old = 0
        self.total = 0.0
        self.w_old: NDArray[np.float64] | None = None

    def certify(
        self,
        s: NDArray[np.float64],
        k: int,
        x: NDArray[np.uint8],
        p: NDArray[np.float64],
        cap: int,
        smax: float,
        rtol: float = RTOL,
    ) -> Certificate:
        """The :func:`verdict` of the prefix s (n, E) with assignment x (0/1) and prices p
        (equality case), where s[:n_old] is the previous prefix; smax = max |s|."""
        n, e = s.shape
        w = p - p.max()
        scale = smax + float(-w.min())
        total = self.total
        if self.w_old is not None:
            dw = w - self.w_old
            total += float(dw.max() - dw.min())
            total += total * 2.0**-52  # >= the exact sum (one rounding of at most half an ulp)
        if total > self.REBASE * scale:
            self.keys[: self.n_old] -= total  # -inf stays -inf
            total = 0.0
        guard = self.GUARD * scale
        m = self.n_old
        redo = self.keys[:m] - total <= guard
        redo |= _rows_differ(x[:m], self.x_old[:m])
        rows = np.concatenate([np.flatnonzero(redo), np.arange(m, n)])
        xs = x[rows]
        old_on = self.x_old[rows[rows < m]] == 1
        self.loads -= old_on.sum(axis=0)
        on = xs == 1
        zero_one = np.all((xs == 0) | (xs == 1), axis=1)
        integral = bool(zero_one.all())
        wrong = int(np.sum(on.sum(axis=1) != k))
        self.loads += on.sum(axis=0)
        sub = s[rows]
        viol, term = token_checks(sub, on, w)
        self.x_old[rows] = xs
        valid = (on.sum(axis=1) == k) & zero_one  # a cached row is a valid 0/1 row
        self.keys[rows] = np.where(valid, total - viol, -np.inf)
        self.sums[rows] = row_sums(sub, on)
        self.size[rows] = assigned_size(sub, on)
        self.n_old, self.w_old, self.total = n, w, total
        loads = self.loads.copy()
        problems: list[str] = []
        if not integral:
            problems.append("assignment has entries outside {0, 1}")
        if wrong:
            problems.append(f"token rows must sum to k={k}; {wrong} do not")
        if np.any(loads != cap):
            problems.append(f"expert loads must be == L={cap}; max load {int(loads.max())}")
        tol = rtol * (float(self.size[:n].max(initial=0.0)) + float(w.max() - w.min()))
        cs = bool(np.all(viol <= tol))
        if not cs:
            problems.append("complementary slackness violated")
        primal = float(np.sum(self.sums[:n]))
        gap = float(term.sum())
        return Certificate(
            primal_feasible=integral and not wrong and not np.any(loads != cap),
            integral=integral,
            dual_feasible=True,
            complementary_slackness=cs,
            primal_objective=primal,
            dual_objective=primal + gap,
            duality_gap=gap,
            max_slackness_violation=max(float(viol.max(initial=-np.inf)), 0.0),
            tolerance=n * k * tol,
            problems=tuple(problems),
        )


def _rows_differ(x: NDArray[np.uint8], y: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """x[t] != y[t] row by row, reading rows of whole 8-byte words where the width allows."""
    e = x.shape[1]
    if e % 8 == 0 and x.flags.c_contiguous and y.flags.c_contiguous:
        xw, yw = x.view(np.uint64), y.view(np.uint64)
        out = xw[:, 0] != yw[:, 0]
        for j in range(1, e // 8):
            out |= xw[:, j] != yw[:, j]
        return out
    return np.any(x != y, axis=1)
