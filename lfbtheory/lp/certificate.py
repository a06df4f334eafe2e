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

from typing import NamedTuple

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


ROWS_PER_PASS = 8192  # tokens per vectorised pass: the temporaries stay in cache


class TokenFacts(NamedTuple):
    """Per-token facts of assignments given as expert lists (arrays of shape (c, n)).

    viol: max over unassigned experts - min over assigned of r = s + w (-inf when k = E);
    sums: sum of s over the token's experts, in ascending expert order (every objective here is
    the sum of these over the tokens, so all verdicts agree bit for bit); size: max |s| over
    them; term: topKsum(r_t) - (sum of r_t over its experts) >= 0, its share of the duality
    gap (exactly 0 where viol <= 0).
    """

    viol: NDArray[np.float64]
    sums: NDArray[np.float64]
    size: NDArray[np.float64]
    term: NDArray[np.float64]


def sorted_experts(
    experts: NDArray[np.integer], n_experts: int
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """(the expert lists (..., k) sorted ascending as int64, valid (...)): valid iff a token's
    k experts are distinct and in [0, E)."""
    ex = np.asarray(experts, dtype=np.int64)
    k = ex.shape[-1]
    if 1 < k <= 8:  # a sorting network on columns (numpy sorts short rows one by one)
        cols = [ex[..., j].copy() for j in range(k)]
        for rnd in range(k):
            for i in range(rnd % 2, k - 1, 2):
                lo = np.minimum(cols[i], cols[i + 1])
                cols[i + 1] = np.maximum(cols[i], cols[i + 1])
                cols[i] = lo
        ex = np.stack(cols, axis=-1)
    elif k > 8:
        ex = np.sort(ex, axis=-1)
    valid = (ex[..., 0] >= 0) & (ex[..., -1] < n_experts)
    for j in range(1, k):
        valid &= ex[..., j] > ex[..., j - 1]
    return ex, valid


def token_facts(
    s: NDArray[np.float64], experts: NDArray[np.int64], w: NDArray[np.float64]
) -> TokenFacts:
    """:class:`TokenFacts` of scores s (c, n, E) with valid sorted expert lists (c, n, k) and
    offsets w (c, E), in passes of about :data:`ROWS_PER_PASS` tokens."""
    c, n, e = s.shape
    out = TokenFacts(*(np.empty((c, n)) for _ in range(4)))
    step = max(1, ROWS_PER_PASS // max(n, 1))
    if n > ROWS_PER_PASS:  # one long batch (a pooled prefix): passes over its rows
        for b in range(c):
            for lo in range(0, n, ROWS_PER_PASS):
                hi = min(n, lo + ROWS_PER_PASS)
                part = _facts(s[b : b + 1, lo:hi], experts[b : b + 1, lo:hi], w[b : b + 1])
                for mine, theirs in zip(out, part, strict=True):
                    mine[b, lo:hi] = theirs[0]
        return out
    for b in range(0, c, step):
        part = _facts(s[b : b + step], experts[b : b + step], w[b : b + step])
        for mine, theirs in zip(out, part, strict=True):
            mine[b : b + step] = theirs
    return out


def _facts(s, experts, w):  # type: ignore[no-untyped-def]
    """:func:`token_facts` of one pass. Reductions over a token's E (or k) entries are taken
    column by column, as elementwise operations across the tokens: numpy reduces a short
    row one row at a time, with a per-row overhead larger than a short row's work."""
    c, n, e = s.shape
    k = experts.shape[2]
    r = np.add(s, w[:, None, :], order="C")  # written in place below: a C-ordered copy
    flat = experts + (np.arange(c * n) * e).reshape(c, n, 1)  # index of each assigned entry
    r_flat = r.reshape(-1)
    r_on = r_flat[flat]
    s_on = np.ascontiguousarray(s).reshape(-1)[flat]
    r_flat[flat] = -np.inf
    lo, total, size = r_on[..., 0].copy(), s_on[..., 0].copy(), np.abs(s_on[..., 0])
    for j in range(1, k):  # ascending expert order: the objective's order of addition
        np.minimum(lo, r_on[..., j], out=lo)
        total += s_on[..., j]
        np.maximum(size, np.abs(s_on[..., j]), out=size)
    if k == e:
        viol = np.full((c, n), -np.inf)
    elif e <= 32:
        hi = r[..., 0].copy()
        for j in range(1, e):
            np.maximum(hi, r[..., j], out=hi)
        viol = hi - lo
    else:
        viol = r.max(axis=2) - lo
    term = np.zeros((c, n))
    bad = viol > 0
    if bad.any():  # a top-k sum only where the experts are not a top-k set
        rows = s[bad] + np.broadcast_to(w[:, None, :], s.shape)[bad]
        top = np.cumsum(-np.sort(-rows, axis=1), axis=1)[:, k - 1]
        term[bad] = np.maximum(top - r_on[bad].sum(axis=1), 0.0)
    return viol, total, size, term


def slackness_tolerance(size: NDArray[np.float64], w: NDArray[np.float64], rtol: float) -> float:
    """rtol (S + max w - min w) with S = max |s| over the assigned entries (module docstring)."""
    return rtol * (float(size.max(initial=0.0)) + float(w.max() - w.min()))


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
    problems: list[str] = []
    zero_one = (x == 0) | (x == 1)
    integral = bool(zero_one.all())
    if not integral:
        problems.append(f"assignment has {int(np.sum(~zero_one))} entries outside {{0, 1}}")
    on = x == 1
    counts = on.sum(axis=1)
    good = zero_one.all(axis=1) & (counts == k)
    if integral and not good.all():
        problems.append(f"token rows must sum to k={k}; {int(np.sum(~good))} do not")
    experts = np.zeros((n, k), dtype=np.int64)
    experts[good] = np.nonzero(on[good])[1].reshape(-1, k)  # ascending within each token
    return _judge(s, k, experts, good, on.sum(axis=0), p, cap, equality, rtol, problems)


def verdict_of_experts(
    s: NDArray[np.float64],
    k: int,
    experts: NDArray[np.integer],
    p: NDArray[np.float64],
    cap: int,
    equality: bool,
    rtol: float,
) -> Certificate:
    """:func:`certify` of the assignment given as expert lists (n, k) (validated here)."""
    n, e = s.shape
    ex, valid = sorted_experts(experts, e)
    problems: list[str] = []
    if not valid.all():
        problems.append(
            f"{int(np.sum(~valid))} tokens do not list k={k} distinct experts in [0, {e})"
        )
    loads = np.bincount(ex[valid].ravel(), minlength=e)
    ex[~valid] = 0
    return _judge(s, k, ex, valid, loads, p, cap, equality, rtol, problems)


def _judge(s, k, experts, valid, loads, p, cap, equality, rtol, problems) -> Certificate:  # type: ignore[no-untyped-def]
    """The verdict from the scores s (n, E), the sorted expert lists (n, k) of the ``valid``
    tokens (the others' are ignored), the loads and the problems found so far."""
    n = s.shape[0]
    feasible = not problems
    bad_cols = (loads != cap) if equality else (loads > cap)
    if np.any(bad_cols):
        feasible = False
        problems.append(
            f"expert loads must be {'==' if equality else '<='} L={cap}; "
            f"{int(bad_cols.sum())} experts violate it (max load {int(loads.max())})"
        )
    w = p - p.max()
    facts = token_facts(s[None], experts[None], w[None])
    viol = np.where(valid, facts.viol[0], -np.inf)
    tol = slackness_tolerance(np.where(valid, facts.size[0], 0.0), w, rtol)
    primal = float(np.sum(np.where(valid, facts.sums[0], 0.0)))
    worst = float(viol.max(initial=-np.inf))
    cs = bool(np.all(viol <= tol))
    if not cs:
        t = int(np.argmax(viol))
        problems.append(
            f"complementary slackness violated at a token: an unassigned expert beats an "
            f"assigned one by {viol[t]:.3g} (tolerance {tol:.3g})"
        )
    gap = float(facts.term[0][valid].sum())
    tolerance = n * k * tol
    dual_ok = True
    if not equality:
        # "<=": prices live in p <= 0, and an expert with room must have price 0; an expert
        # never holds more than n tokens, so capacity min(L, n) is the same LP
        dual_ok = bool(np.all(p <= tol))
        if not dual_ok:
            problems.append(f"bias must be <= 0 in the '<=' case; max is {p.max():.3g}")
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
        integral=not any(q.startswith("assignment has") for q in problems),
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

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> s = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, 0.2], [0.95, 0.3, 0.4]])
    >>> x = lfb.solve_balanced(s, k=1).assignment
    >>> lfb.optimal_prices(s, 1, x).round(6).tolist()
    [-0.2, -0.1, 0.3]
    >>> worse = np.eye(3, dtype=np.int8)  # feasible but 0.05 below the optimum
    >>> lfb.optimal_prices(s, 1, worse) is None
    True
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
    experts: NDArray[np.integer],
    p: NDArray[np.float64],
    k: int,
    cap: int,
    rtol: float = RTOL,
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """(ok (T,), objective (T,)) of equality-case answers given as expert lists (T, n, k) with
    prices p (T, E) for the batches s (T, n, E): ``verdict_of_experts(s[t], k, experts[t],
    p[t], cap, True, rtol)`` for every t, vectorised (the same float operations per batch)."""
    t_len, n, e = s.shape
    ex, valid = sorted_experts(experts, e)
    ok = valid.all(axis=1)
    flat = ex + (np.arange(t_len) * e)[:, None, None]
    loads = np.bincount(flat[ok].ravel(), minlength=t_len * e).reshape(t_len, e)
    ok &= np.all(loads == cap, axis=1)
    w = p - p.max(axis=1, keepdims=True)
    facts = token_facts(s, np.where(valid[..., None], ex, 0), w)
    tol = rtol * (facts.size.max(axis=1) + (w.max(axis=1) - w.min(axis=1)))
    ok &= np.all(facts.viol <= tol[:, None], axis=1)
    return ok, facts.sums.sum(axis=1)


class GrowingVerdicts:
    """Certificates of the nested prefixes s[:n_1] ⊂ s[:n_2] ⊂ ... of one stream, each with
    its own assignment (expert lists) and prices, at the cost of the tokens that can have
    changed.

    A token checked for an earlier prefix is checked again only if its expert list differs
    from the one checked then (entry by entry: a reordered list counts as changed), or if its
    margin then (min assigned - max unassigned of s + w, w = p - max p), less the spread of
    every price change since, is within a rounding guard of a tie: a token whose list is
    unchanged and whose margin stays positive under the price change is still strictly a
    top-k set (its slackness term is 0), so its verdict and :class:`TokenFacts` are those
    cached. Each prefix gets the verdict :func:`verdict_of_experts` gives (``ok``, the
    objective bit for bit, the tolerance, the gap). Mutable: one instance per sequence of
    growing prefixes of the same scores.
    """

    GUARD = 1e-12  # relative to max|s| + max|w|: >> the rounding of a margin (~1e-15)
    # the running total of spreads is folded back into the keys once it exceeds this many
    # units of max|s| + max|w|, so that key - total keeps a margin's precision
    REBASE = 64.0

    def __init__(self, n_max: int, n_experts: int, k: int) -> None:
        self.e = n_experts
        self.lists = np.zeros((n_max, k), dtype=np.int32)  # the lists as checked
        self.counted = np.zeros(n_max, dtype=bool)  # ... and valid (in the loads)
        self.keys = np.full(n_max, -np.inf)  # margin + total when checked (-inf: recheck)
        self.sums = np.zeros(n_max)
        self.size = np.zeros(n_max)
        self.loads = np.zeros(n_experts, dtype=np.int64)
        self.n_old = 0
        self.total = 0.0
        self.w_old: NDArray[np.float64] | None = None

    def certify(
        self,
        s: NDArray[np.float64],
        experts: NDArray[np.integer],
        p: NDArray[np.float64],
        cap: int,
        smax: float,
        rtol: float = RTOL,
    ) -> Certificate:
        """The verdict of the prefix s (n, E) with expert lists (n, k) and prices p (equality
        case), where s[:n_old] is the previous prefix; smax = max |s| (the guard's scale)."""
        n, e = s.shape
        k = experts.shape[1]
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
        m = self.n_old
        redo = self.keys[:m] <= total + self.GUARD * scale
        lists = np.asarray(experts).astype(np.int32, copy=False)
        for j in range(k):
            redo |= lists[:m, j] != self.lists[:m, j]
        again = np.flatnonzero(redo)
        got = np.concatenate([lists[again], lists[m:n]])  # tokens to check: again, then new
        old = self.lists[again]
        old = old[self.counted[again]]
        ex, valid = sorted_experts(got, e)
        self.loads -= np.bincount(old.ravel(), minlength=e)
        self.loads += np.bincount(ex[valid].ravel(), minlength=e)
        ex[~valid] = 0
        sub = np.concatenate([s[again], s[m:n]])
        facts = token_facts(sub[None], ex[None], w[None])
        viol = np.where(valid, facts.viol[0], -np.inf)
        for rows, part in ((again, slice(0, again.size)), (slice(m, n), slice(again.size, None))):
            self.lists[rows] = got[part]
            self.counted[rows] = valid[part]
            self.keys[rows] = np.where(valid[part], total - viol[part], -np.inf)  # -inf: again
            self.sums[rows] = np.where(valid[part], facts.sums[0][part], 0.0)
            self.size[rows] = np.where(valid[part], facts.size[0][part], 0.0)
        self.n_old, self.w_old, self.total = n, w, total
        problems: list[str] = []
        if not valid.all():
            problems.append(
                f"{int(np.sum(~valid))} tokens do not list k={k} distinct experts in [0, {e})"
            )
        loads = self.loads
        if np.any(loads != cap):
            problems.append(f"expert loads must be == L={cap}; max load {int(loads.max())}")
        tol = rtol * (float(self.size[:n].max(initial=0.0)) + float(w.max() - w.min()))
        cs = bool(np.all(viol <= tol))
        if not cs:
            problems.append("complementary slackness violated")
        primal = float(np.sum(self.sums[:n]))
        gap = float(facts.term[0][valid].sum())
        return Certificate(
            primal_feasible=bool(valid.all()) and not np.any(loads != cap),
            integral=True,
            dual_feasible=True,
            complementary_slackness=cs,
            primal_objective=primal,
            dual_objective=primal + gap,
            duality_gap=gap,
            max_slackness_violation=max(float(viol.max(initial=-np.inf)), 0.0),
            tolerance=n * k * tol,
            problems=tuple(problems),
        )
