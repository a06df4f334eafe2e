"""Duality of the batch LP: the dual D(p), its subgradient, the certificate and exact prices.

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

from lfbtheory._engine.jit import compiled, inline_compiled
from lfbtheory._engine.topk import row_top
from lfbtheory.lp.model import (
    RTOL,
    Certificate,
    absmax,
    lp_bias,
    lp_scores,
    resolve_capacity,
)
from lfbtheory.routing import select_experts, selection_offsets, selection_scores
from lfbtheory.validation import as_k

__all__ = ["certify", "dual_objective", "dual_subgradient", "optimal_prices"]


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
    """
    s, k, p, cap, equality = _checked(scores, k, bias, capacity)
    n, e = s.shape
    if not equality and np.any(p > 0):
        return float("inf")
    experts = select_experts(s, k, p)
    w = selection_offsets(p, "additive")
    top = np.take_along_axis(selection_scores(s, p), experts, axis=1).sum()
    return float(top - float(cap) * w.sum() + float(n * k - e * cap) * p.max())


def dual_subgradient(
    scores: ArrayLike, k: int, bias: ArrayLike, *, capacity: int | None = None
) -> NDArray[np.float64]:
    """A subgradient of D at p: load(p) - L, with load(p) the loads of ``route(s, k, p)``."""
    s, k, p, cap, _ = _checked(scores, k, bias, capacity)
    experts = select_experts(s, k, p)
    return np.bincount(experts.ravel(), minlength=s.shape[1]).astype(np.float64) - float(cap)


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


@compiled
def _row_buffers(e, k):  # type: ignore[no-untyped-def]
    """Scratch arrays of :func:`_row` (row values, top-k values and indices, row_top's own)."""
    return (
        np.empty(e),
        np.empty(k),
        np.empty(k, dtype=np.int64),
        np.empty(e + 1, dtype=np.int64),
        np.zeros(3),
    )


@inline_compiled
def _row(s, i, w, x, t, k, buf):  # type: ignore[no-untyped-def]
    """Row t of :func:`_tally` with its scores in s[i]: (#entries outside {0, 1}, #ones, on-sum
    of s, (max off - min on) of s + w, its top-k term: the on-sum of s + w if the ones are a
    top-k set, else topKsum(s + w) by :func:`lfbtheory._engine.topk.row_top`). ``buf``: its
    scratch arrays. No branches on x (a row's ones sit anywhere, each branch would
    mispredict): adding 0.0 to a sum that starts at +0.0 and min/max against +-inf change
    nothing, so the values are those of the branching loop bit for bit."""
    e = s.shape[1]
    c = 0
    bad = 0
    so = 0.0
    ps = 0.0
    mn = np.inf
    mx = -np.inf
    for j in range(e):
        sv = s[i, j]
        v = sv + w[j]
        xv = x[t, j]
        on = xv == 1
        c += on
        bad += (xv != 0) & (xv != 1)
        so += v if on else 0.0
        ps += sv if on else 0.0
        mn = min(mn, v if on else np.inf)
        mx = max(mx, -np.inf if on else v)
    if c == k and mx - mn <= 0.0:
        return bad, c, ps, mx - mn, so
    return bad, c, ps, mx - mn, _top_sum(s, w, i, k, buf)


@inline_compiled
def _top_sum(s, w, t, k, buf):  # type: ignore[no-untyped-def]
    """topKsum(s[t] + w) by :func:`lfbtheory._engine.topk.row_top` (summed largest first)."""
    r, vals, idx, cand, st = buf
    for j in range(s.shape[1]):
        r[j] = s[t, j] + w[j]
    row_top(r, k, vals, idx, cand, st)
    top = 0.0
    for q in range(k):
        top += vals[q]
    return top


@compiled
def _tally(s, w, x, k, loads):  # type: ignore[no-untyped-def]
    """One pass over (r = s + w, x), the certificate's raw material: returns (#entries outside
    {0, 1}, primal sum s[x == 1], #rows not summing to k, max over rows of (max of r off x -
    min of r on x)^+, sum over rows of topKsum(r)); adds each row's experts to ``loads``. A
    row whose experts are a top-k set of r contributes its on-sum to the last term; any other
    row its k largest values of r (:func:`_row`)."""
    n, e = s.shape
    bad = 0
    wrong = 0
    primal = 0.0
    viol = 0.0
    top = 0.0
    buf = _row_buffers(s.shape[1], k)
    for t in range(n):
        rb, c, ps, gap, rt = _row(s, t, w, x, t, k, buf)
        for j in range(e):
            loads[j] += x[t, j] == 1
        bad += rb
        wrong += c != k
        primal += ps
        viol = max(viol, max(gap, 0.0))
        top += rt
    return bad, primal, wrong, viol, top


_CHUNK = 1024  # rows of :func:`_tally_growing` screened before the listed ones are read


@compiled
def _tally_growing(s, w, x, k, loads, n_old, xw, xw_old, x_old, keys, sums, total, guard):  # type: ignore[no-untyped-def]
    """:func:`_tally` of a prefix extending one tallied before (its first ``n_old`` rows, whose
    0/1 rows are ``x_old``, whose loads ``loads`` holds on entry); ``xw``/``xw_old``: x and
    x_old read as words (or as x and x_old themselves) for comparing rows.

    ``total`` bounds from above the sum of the price changes' spreads (max - min of the change
    of w) so far; a row's key is its margin (min on - max off of s + w) plus ``total`` when it
    was tallied, so key - total is a lower bound on its margin now. A row equal to its x_old
    row with key - total > guard is still strictly a top-k set: its slackness term is 0 as a
    full pass would find, its on-sum of s is the cached ``sums[t]`` (the same additions, so the
    primal, summed in row order, is :func:`_tally`'s bit for bit) and its on-sum of s + w
    enters the dual as sums[t] + its ones' w. Every other row is evaluated in full and
    re-cached. Loads, primal, rows off k, entries outside {0, 1} and slackness equal
    :func:`_tally`'s; the dual sum agrees to rounding."""
    n, e = s.shape
    nw = xw.shape[1]
    bad = 0
    wrong = 0
    primal = 0.0
    viol = 0.0
    top = 0.0
    kept = 0.0
    buf = _row_buffers(e, k)
    fresh = np.zeros(e, dtype=np.int64)  # loads of the rows evaluated here
    rows = np.empty(_CHUNK, dtype=np.int64)
    got = np.empty((_CHUNK, e))
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        # screen the chunk: list the rows to evaluate ...
        m = 0
        for t in range(lo, hi):
            if t < n_old:
                diff = 0
                for j in range(nw):
                    diff |= xw[t, j] ^ xw_old[t, j]
                if diff == 0 and keys[t] - total > guard:
                    kept += sums[t]
                    continue
                for j in range(e):
                    loads[j] -= x_old[t, j] == 1
            rows[m] = t
            m += 1
        # ... copy their scores in a loop short enough to keep many cache misses in flight
        # (rows past the old prefix are all listed and read in order: no copy) ...
        direct = lo >= n_old
        src = s if direct else got
        if not direct:
            for q in range(m):
                t = rows[q]
                for j in range(e):
                    got[q, j] = s[t, j]
        # ... evaluate them (:func:`_row`) ...
        for q in range(m):
            t = rows[q]
            rb, c, ps, gap, rt = _row(src, t if direct else q, w, x, t, k, buf)
            for j in range(e):
                xv = x[t, j]
                on = xv == 1
                x_old[t, j] = xv
                loads[j] += on
                fresh[j] += on
            bad += rb
            wrong += c != k
            viol = max(viol, max(gap, 0.0))
            top += rt
            keys[t] = total - gap if (rb == 0 and c == k) else -np.inf
            sums[t] = ps
        # ... and add the chunk's on-sums in row order, as :func:`_tally` does
        for t in range(lo, hi):
            primal += sums[t]
    for j in range(e):
        kept += w[j] * (loads[j] - fresh[j])
    return bad, primal, wrong, viol, top + kept


class GrowingCertificates:
    """Certificates of the nested prefixes of one stream, each at its own prices: a row
    tallied for the previous prefix is re-read only if its 0/1 row changed or its cached
    margin is within the price changes since (+ a rounding guard) of a tie
    (:func:`_tally_growing`). Mutable: one instance per sequence of growing prefixes of the
    same scores."""

    GUARD = 1e-12  # relative to max|s| + max|w|: >> the rounding of a margin (~1e-15)
    # the running total of spreads is folded back into the keys (total = 0) once it exceeds
    # this many units of max|s| + max|w|, so that key - total keeps a margin's precision
    REBASE = 64.0

    def __init__(self, n_max: int, n_experts: int) -> None:
        self.x_old = np.zeros((n_max, n_experts), dtype=np.int8)
        self.keys = np.full(n_max, -np.inf)
        self.sums = np.zeros(n_max)
        self.loads = np.zeros(n_experts, dtype=np.int64)
        self.n_old = 0
        self.total = 0.0
        self.w_old: NDArray[np.float64] | None = None

    def certify(self, s, k, x, p, cap, rtol, smax):  # type: ignore[no-untyped-def]
        """(loads, Certificate) of the prefix scores s (int8 0/1 x, equality case), as
        :func:`_certificate` gives them."""
        w = selection_offsets(p, "additive")
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
        e = s.shape[1]
        if x.dtype.itemsize == 1 and x.flags.c_contiguous and e % 8 == 0:
            xw, xw_old = x.view(np.uint64), self.x_old.view(np.uint64)  # 8 entries a word
        else:
            xw, xw_old = x, self.x_old
        loads = self.loads
        raw = _tally_growing(
            np.ascontiguousarray(s),
            w,
            x,
            k,
            loads,
            self.n_old,
            xw,
            xw_old,
            self.x_old,
            self.keys,
            self.sums,
            total,
            guard,
        )
        self.n_old, self.w_old, self.total = s.shape[0], w, total
        return loads.copy(), _judge(raw, s.shape, k, p, w, loads, cap, True, rtol, smax)


def _certificate(s, k, x, p, cap, equality, rtol, smax=None):  # type: ignore[no-untyped-def]
    """(loads, :func:`certify`) on validated inputs (run by every solver before it returns)."""
    w = selection_offsets(p, "additive")
    xs = x if x.flags.c_contiguous else np.ascontiguousarray(x)
    loads = np.zeros(s.shape[1], dtype=np.int64)
    raw = _tally(np.ascontiguousarray(s), w, xs, k, loads)
    smax = absmax(s) if smax is None else smax
    return loads, _judge(raw, s.shape, k, p, w, loads, cap, equality, rtol, smax)


def _judge(raw, shape, k, p, w, loads, cap, equality, rtol, smax) -> Certificate:  # type: ignore[no-untyped-def]
    """The certificate's verdict from :func:`_tally`'s ``raw`` values on (n, E) = ``shape``
    scores with max |s| = smax, prices p (w = p - max p) and the tallied loads."""
    bad, primal, wrong, viol, top = raw
    n, e = shape
    scale = smax + (float(-w.min()) if equality else absmax(p))
    atol = rtol * scale
    problems: list[str] = []
    integral = bad == 0
    if not integral:
        problems.append(f"assignment has {bad} entries outside {{0, 1}}")
    feasible = integral and wrong == 0
    if integral and not feasible:
        problems.append(f"token rows must sum to k={k}; {wrong} do not")
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
    # complementary slackness: each token's experts are a top-k set of s + p
    viol = float(viol)
    if not equality:
        viol = max(viol, float(np.max(np.where(loads < cap, -p, 0.0), initial=0.0)))
    cs = viol <= atol
    if not cs:
        problems.append(f"complementary slackness violated by {viol:.3g} (tolerance {atol:.3g})")
    # D(p) in the routing gauge
    if not equality and np.any(p > atol):
        dual = float("inf")
    else:
        dual = float(top - float(cap) * w.sum() + float(n * k - e * cap) * p.max())
    gap = dual - primal
    gap_tol = atol * n * k
    if feasible and dual_ok and not gap <= gap_tol:
        problems.append(f"duality gap {gap:.3g} exceeds tolerance {gap_tol:.3g}")
    return Certificate(
        primal_feasible=feasible,
        integral=integral,
        dual_feasible=dual_ok,
        complementary_slackness=cs,
        primal_objective=float(primal),
        dual_objective=dual,
        duality_gap=gap,
        max_slackness_violation=viol,
        tolerance=atol,
        problems=tuple(problems),
    )


def _judge_equal_rows(raw, shape, k, p, loads, cap, rtol, smax):  # type: ignore[no-untyped-def]
    """``_judge(raw[u], shape, k, p[u], w[u], loads[u], cap, True, rtol, smax[u]).ok`` for
    every row u of a stream of equality-case tallies (raw (T, 5), p (T, E), loads (T, E),
    smax (T,)), vectorised with the same float operations as :func:`_judge`."""
    n, e = shape
    w = p - p.max(axis=1, keepdims=True)
    atol = rtol * (smax + (-w.min(axis=1)))
    bad, primal, wrong, viol, top = raw.T
    dual = top - float(cap) * w.sum(axis=1) + float(n * k - e * cap) * p.max(axis=1)
    return (
        (bad == 0)
        & (wrong == 0)
        & np.all(loads == cap, axis=1)
        & (viol <= atol)
        & (dual - primal <= atol * n * k)
    )


def certify(
    scores: ArrayLike,
    k: int,
    assignment: ArrayLike,
    bias: ArrayLike,
    *,
    capacity: int | None = None,
    rtol: float = RTOL,
) -> Certificate:
    """Check an assignment and a bias against the LP optimality conditions.

    Primal feasibility (0/1, k per token, loads = L or <= L), dual feasibility (p <= 0 in the
    "<=" case), complementary slackness (every token's experts are a top-k set of s + p, and
    p_i < 0 only on full experts) and the duality gap D(p) - s.x, zero iff all hold. Tolerances
    are relative: tol = rtol * (max|s| + spread of p) per token and n*k*tol for the gap, so the
    verdict does not depend on the units of the scores (1e-300 or 1e100 alike).
    """
    s, k, p, cap, equality = _checked(scores, k, bias, capacity)
    n, e = s.shape
    x = _as_assignment(assignment, n, e)
    if not (isinstance(rtol, (int, float)) and 0 <= rtol < 1):
        raise ValueError(f"rtol must be a real number in [0, 1), got {rtol!r}")
    if x.dtype == bool:
        x = x.view(np.uint8)
    return _certificate(s, k, x, p, cap, equality, float(rtol))[1]


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
    round: rounding errors add up along a path, they are never doubled as in Floyd-Warshall).
    The assignment counts as optimal iff every constraint then holds within rtol * max|s|:
    rounding-level cycles (every cycle has cost 0 when all assignments are optimal, e.g. on
    rank-1 scores) are accepted, genuinely improving cycles are not. An assignment that is
    not a feasible 0/1 matrix is refused with a ValueError.
    """
    s = lp_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    if not (isinstance(rtol, (int, float)) and 0 <= rtol < 1):
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
    with np.errstate(invalid="ignore"):
        excess = dist[None, :] - dist[:, None] - w  # > 0 where p_j - p_i <= W[i,j] fails
    worst = float(np.max(np.where(np.isfinite(w), excess, -np.inf)))
    if worst > float(rtol) * float(np.max(np.abs(s))):
        return None
    if equality:
        return dist - dist.mean()
    p = np.minimum(dist[:e] - dist[e], 0.0)
    p[loads < cap] = 0.0  # slackness: an expert with room has price exactly 0
    return p
