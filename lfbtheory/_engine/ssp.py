"""Fast exact balanced assignment: successive shortest paths on the E-node expert exchange graph.

The batch LP (see :mod:`lfbtheory.lp.solve`) is a transportation problem with n token nodes
and only E expert nodes. Contract the tokens: with t on expert a and off expert b, moving t from
a to b changes the objective by s[t,b] - s[t,a], so the residual network on the experts has
edges a -> b of cost W[a,b] = min_{t on a, off b} (s[t,a] - s[t,b]) (the "expert exchange
graph" of :func:`lfbtheory.lp.solve.optimal_prices`). With prices p, the reduced cost
W[a,b] + p[a] - p[b] >= 0 on every edge is exactly complementary slackness: every token's
experts are a top-k set of s + p (arXiv 2408.15664 Sec. 3 read as an LP; Ahuja, Magnanti &
Orlin, *Network Flows*, 1993, Sec. 9.7 for successive shortest paths with potentials).

The solver

1. starts from prices p0 (a warm start, e.g. the previous batch's prices, or minus the column
   means) and takes a few damped per-expert Newton steps on the dual D(p) (load - L divided by
   the density of tokens at the expert's threshold);
2. routes top-k of s + p: complementary slackness holds, only the loads are off;
3. repeatedly runs Dijkstra (dense, O(E^2)) from every over-full expert to the nearest
   under-full one with the reduced costs, moves one token along each edge of the path and
   raises the prices by the truncated distances. Reduced costs stay >= 0, so each step keeps
   the assignment optimal for its current loads; it stops when every load is L.

The "<=" capacity case (E*L > n*k) adds a slack node Z holding the E*L - n*k unused slots
(dummy units of score 0 that any expert can take); at the end the prices are shifted so that
p[Z] = 0, which makes every p <= 0 and p = 0 on the experts with spare capacity.

On one batch in the equality case (L <= the tuning's dense_repair_max_cap) step 3 runs on the
dense exchange matrix of :mod:`lfbtheory._engine.dense` (every edge keeps its best token; no
bands); the bands below pay on pooled instances.

Edges are pruned and priced back in ("pricing out"): only exchange edges whose
reduced cost at the starting prices is <= g are offered to the graph. Prices only rise during
the repair, and a left-out edge's reduced cost is >= g - spread(p - p_start), so a shortest path
of length D is exact while spread + D <= g; otherwise g is raised and the edges in the new band
are offered before the step is retried. Each edge keeps its M best tokens in a small sorted list
(with a flag saying whether the list is complete), so a move updates O(E*M) entries and an edge
is rescanned over its expert's tokens only when an incomplete list runs empty.

Pooled prefixes of a stream (:func:`ssp_prefixes`) are solved incrementally: the optimal
assignment of one prefix, balanced at its prices, is the start of the next; only the new tokens
are routed, and each token carries a lower bound on its gap (exact where its edges were offered,
less the spread of the price change elsewhere), which is all the band of offered edges needs.

The loops are compiled with numba when it is importable; otherwise the same functions run as
plain Python (exact, identical results, slow -- meant for small instances and for tests).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from lfbtheory._engine.dense import dense_repair
from lfbtheory._engine.jit import HAVE_NUMBA, compiled, inline_compiled
from lfbtheory._engine.topk import cols_top, row_theta, row_top
from lfbtheory._engine.tuning import TUNING, Knobs


class Edges(NamedTuple):
    """The pruned exchange graph: edge a -> j keeps its M best candidate tokens t (on a, off j)
    sorted by value s[t,a] - s[t,j]: ``value[m, a, j]`` (inf past the list), ``token[m, a, j]``,
    ``n_listed[a, j]`` listed, and ``partial[a, j]`` != 0 iff valid candidates exist beyond it."""

    value: NDArray[np.float64]
    token: NDArray[np.int32]
    n_listed: NDArray[np.int64]
    partial: NDArray[np.uint8]


class Members(NamedTuple):
    """The tokens on each expert, ``token[a, :n_tokens[a]]``; ``slot[t, m]`` is where token t's
    m-th expert (``asg[t, m]``) lists it."""

    token: NDArray[np.int32]
    n_tokens: NDArray[np.int64]
    slot: NDArray[np.int32]


class Slack(NamedTuple):
    """The "<=" case's dummy slack units: ``on[i]`` sit on expert i, ``left[0]`` on the slack
    node Z (a 1-array so that the compiled loop can update it in place)."""

    on: NDArray[np.int64]
    left: NDArray[np.int64]


__all__ = ["HAVE_NUMBA", "experts_ranked", "ssp_prefixes", "ssp_solve"]

_M = 4  # candidate tokens kept per exchange-graph edge
_M_LARGE = 32  # ... when an expert holds more than _M_LARGE_CAP tokens
_M_LARGE_CAP = 2048
_INF = np.inf


@compiled
def _topk_rows(s, p, k, asg, x, loads, gap, regs):  # type: ignore[no-untyped-def]
    """asg[t] = top-k experts of s[t] + p (ties: lower index); x, loads filled to match.

    gap[t] = (k-th best) - ((k+1)-th best) of s[t] + p (inf when k = E): every exchange edge
    of token t has reduced cost >= gap[t] at these prices.
    """
    n, e = s.shape
    kk = k + 1 if k < e else k
    vals = np.empty(kk)
    idx = np.empty(kk, dtype=np.int32)
    r = np.empty(e)
    cand = np.empty(e + 1, dtype=np.int64)
    theta = row_theta(s, p, 1, kk, regs)
    for t in range(n):
        for j in range(e):
            r[j] = s[t, j] + p[j]
        row_top(r, kk, vals, idx, cand, theta, regs)
        for m in range(k):
            a = idx[m]
            asg[t, m] = a
            x[t, a] = 1
            loads[a] += 1
        gap[t] = vals[k - 1] - vals[k] if k < e else np.inf


@compiled
def _newton_pass(s, p, k, cap, equality, damp, h, asg, gap, regs):  # type: ignore[no-untyped-def]
    """One damped per-expert Newton step on the dual D(p); returns the top-k excess at p.

    D's partial subgradient is load_i(p) - cap; its slope in p_i is the number of tokens whose
    margin m[t,i] = s[t,i] + p[i] - theta[t,i] lies within a window, per unit width (theta: the
    k-th best of s[t] + p without i, so t picks i iff m > 0). Each expert moves by
    -(load - cap) / slope, using the narrowest window (h[0] < h[1] < ...) holding >= 16 tokens;
    "<=": clipped to p <= 0 (the dual domain). Same fixed point as exact coordinate descent.
    Records each token's top-k experts at the old p in asg and its k-th minus (k+1)-th value
    in gap, so that routing at the new prices only has to redo the tokens that can change.
    """
    n, e = s.shape
    nh = h.shape[0]
    hmax = h[nh - 1]
    top = np.empty(k + 1)
    tidx = np.empty(k + 1, dtype=np.int32)
    r = np.empty(e)
    cand = np.empty(e + 1, dtype=np.int64)
    theta = row_theta(s, p, 1, k + 1, regs)
    loads = np.zeros(e, dtype=np.int64)
    near = np.zeros((e, nh), dtype=np.int64)
    for t in range(n):
        for j in range(e):
            r[j] = s[t, j] + p[j]
        row_top(r, k + 1, top, tidx, cand, theta, regs)
        vk = top[k - 1]
        vk1 = top[k]
        for m in range(k):
            asg[t, m] = tidx[m]
        gap[t] = vk - vk1
        far = vk - hmax
        for j in range(e):
            v = r[j]
            if v <= far:
                continue
            if v >= vk:
                m = v - vk1
                loads[j] += 1
            else:
                m = vk - v
            if m < hmax:
                q = nh - 1
                while q > 0 and m < h[q - 1]:
                    q -= 1
                near[j, q] += 1
    excess = 0
    for j in range(e):
        for q in range(1, nh):
            near[j, q] += near[j, q - 1]
        d = loads[j] - cap
        if d > 0:
            excess += d
        if d == 0:
            continue
        q = 0
        while q < nh - 1 and near[j, q] < 16:
            q += 1
        slope = max(near[j, q], 1) / (2.0 * h[q])
        p[j] -= damp * d / slope
        if not equality and p[j] > 0.0:
            p[j] = 0.0
    return excess


@compiled
def _newton_pass_cols(sT, p, k, cap, equality, damp, h, asg, gap, top, tidx, mm):  # type: ignore[no-untyped-def]
    """:func:`_newton_pass` on the transposed scores sT (E, n) (k + 1 <= 4), expert by expert:
    the same float operations, so the same p, excess, asg and gap bit for bit, in loops over
    the tokens that vectorise. The window counts come out cumulative directly: a token counts
    for window q iff it is not far (v > vk - h_max) and its margin m < h[q]. Scratch: top,
    tidx (4, n), mm (n,)."""
    e, n = sT.shape
    nh = h.shape[0]
    hmax = h[nh - 1]
    cols_top(sT, p, k + 1, top, tidx)
    for t in range(n):
        for m in range(k):
            asg[t, m] = tidx[m, t]
        gap[t] = top[k - 1, t] - top[k, t]
    excess = 0
    kth, next_ = top[k - 1], top[k]
    for j in range(e):
        pj = p[j]
        load = 0
        for i in range(n):
            v = sT[j, i] + pj
            vk = kth[i]
            vk1 = next_[i]
            near = v > vk - hmax
            on = v >= vk
            load += near & on
            m = v - vk1 if on else vk - v
            mm[i] = m if near else np.inf
        d = load - cap
        if d > 0:
            excess += d
        if d == 0:
            continue
        q = 0
        count = 0
        while True:  # the narrowest window holding >= 16 tokens (else the widest)
            hq = h[q]
            count = 0
            for i in range(n):
                count += mm[i] < hq
            if count >= 16 or q == nh - 1:
                break
            q += 1
        slope = max(count, 1) / (2.0 * h[q])
        p[j] -= damp * d / slope
        if not equality and p[j] > 0.0:
            p[j] = 0.0
    return excess


@compiled
def _reroute_cols(sT, p, k, asg, x, loads, gap, spread, top, tidx):  # type: ignore[no-untyped-def]
    """:func:`_reroute` on the transposed scores (k + 1 <= 4): every token's top-(k+1) at p
    by :func:`lfbtheory._engine.topk.cols_top` (cheaper than deciding which to redo), kept
    only where gap <= spread, so the same asg, gap, x and loads."""
    e, n = sT.shape
    cols_top(sT, p, k + 1, top, tidx)
    for t in range(n):
        if gap[t] > spread:
            gap[t] -= spread
        else:
            for m in range(k):
                asg[t, m] = tidx[m, t]
            gap[t] = top[k - 1, t] - top[k, t]
        for m in range(k):
            a = asg[t, m]
            x[t, a] = 1
            loads[a] += 1


@compiled
def _reroute(s, p, k, asg, x, loads, gap, spread, regs):  # type: ignore[no-untyped-def]
    """Top-k at p from the top-k at prices that differ from p by at most ``spread`` (max - min).

    A token whose recorded gap exceeds spread keeps its experts (every on-off difference moved
    by at most spread) and gets gap - spread as a lower bound on its new gap; the others are
    routed again. Fills x and loads.
    """
    n, e = s.shape
    kk = k + 1
    vals = np.empty(kk)
    idx = np.empty(kk, dtype=np.int32)
    r = np.empty(e)
    cand = np.empty(e + 1, dtype=np.int64)
    theta = row_theta(s, p, 1, kk, regs)
    for t in range(n):
        if gap[t] > spread:
            gap[t] -= spread
        else:
            for j in range(e):
                r[j] = s[t, j] + p[j]
            row_top(r, kk, vals, idx, cand, theta, regs)
            for m in range(k):
                asg[t, m] = idx[m]
            gap[t] = vals[k - 1] - vals[k]
        for m in range(k):
            a = asg[t, m]
            x[t, a] = 1
            loads[a] += 1


@compiled
def _build_lists(asg, e, cap):  # type: ignore[no-untyped-def]
    n, k = asg.shape
    cnt = np.zeros(e, dtype=np.int64)
    lst = np.empty((e, cap), dtype=np.int32)
    slotpos = np.empty((n, k), dtype=np.int32)
    for t in range(n):
        for m in range(k):
            a = asg[t, m]
            lst[a, cnt[a]] = t
            slotpos[t, m] = cnt[a]
            cnt[a] += 1
    return Members(lst, cnt, slotpos)


@inline_compiled
def _insert(edges, a, j, v, t):  # type: ignore[no-untyped-def]
    """Offer candidate (v, t) to edge (a, j)'s sorted list of at most M.

    Invariant: the list holds the smallest of the candidates offered so far, and partial[a, j] = 0
    iff it holds all of them (complete). An incomplete list only takes v below its maximum
    (the unlisted candidates are >= that maximum but may be < v).
    """
    val, tok, num, partial = edges
    mm = val.shape[0]
    c = num[a, j]
    if c > 0 and v >= val[c - 1, a, j] and (c == mm or partial[a, j] != 0):
        partial[a, j] = 1
        return
    if c == mm:
        partial[a, j] = 1  # the listed maximum drops out
    pos = c if c < mm else mm - 1
    while pos > 0 and val[pos - 1, a, j] > v:
        val[pos, a, j] = val[pos - 1, a, j]
        tok[pos, a, j] = tok[pos - 1, a, j]
        pos -= 1
    val[pos, a, j] = v
    tok[pos, a, j] = t
    if c < mm:
        num[a, j] = c + 1


@inline_compiled
def _recompute(s, x, members, edges, a, j):  # type: ignore[no-untyped-def]
    """Rebuild edge (a, j)'s list from scratch: the M smallest s[t,a]-s[t,j], t on a, off j."""
    lst, cnt = members.token, members.n_tokens
    val, tok, num, partial = edges
    mm = val.shape[0]
    num[a, j] = 0
    partial[a, j] = 0
    for m in range(mm):
        val[m, a, j] = _INF
    for q in range(cnt[a]):
        t = lst[a, q]
        if x[t, j] == 0:
            _insert(edges, a, j, s[t, a] - s[t, j], t)


@compiled
def _add_edges(s, p0, asg, x, edges, tokens, glo, ghi):  # type: ignore[no-untyped-def]
    """Offer the exchange edges a -> j (t on a, off j) of the given tokens whose reduced cost at
    the starting prices p0, c0 = (s[t,a] + p0[a]) - (s[t,j] + p0[j]), lies in (glo, ghi].

    (See :func:`_insert` for how a candidate joins a list.)
    """
    e = s.shape[1]
    k = asg.shape[1]
    onv = np.empty(k)
    offj = np.empty(e, dtype=np.int64)
    for q in range(tokens.shape[0]):
        t = tokens[q]
        lo_on = _INF
        for m in range(k):
            a = asg[t, m]
            v = s[t, a] + p0[a]
            onv[m] = v
            if v < lo_on:
                lo_on = v
        hi_off = -_INF
        noff = 0
        for j in range(e):
            if x[t, j] != 0:
                continue
            v = s[t, j] + p0[j]
            if v > hi_off:
                hi_off = v
            if lo_on - v <= ghi:
                offj[noff] = j
                noff += 1
        for m in range(k):
            a = asg[t, m]
            va = onv[m]
            if va - hi_off > ghi:
                continue
            sa = s[t, a]
            for qq in range(noff):
                j = offj[qq]
                c0 = va - (s[t, j] + p0[j])
                if c0 <= glo or c0 > ghi:
                    continue
                _insert(edges, a, j, sa - s[t, j], t)


@inline_compiled
def _remove(edges, a, j, t, v):  # type: ignore[no-untyped-def]
    """Drop token t (every copy: a token can be offered twice) from edge (a, j)'s list; v is
    its value s[t,a] - s[t,j] (the same subtraction as when it joined).

    Returns True if the list ran empty while candidates beyond it exist (partial): rescan it.
    """
    val, tok, num, partial = edges
    c = num[a, j]
    if c == 0 or v < val[0, a, j] or v > val[c - 1, a, j]:
        return False  # the list is sorted: t is not in it (spares reading every entry)
    kept = 0
    for m in range(c):
        if tok[m, a, j] != t:
            val[kept, a, j] = val[m, a, j]
            tok[kept, a, j] = tok[m, a, j]
            kept += 1
    if kept == c:
        return False
    for m in range(kept, c):
        val[m, a, j] = _INF
        tok[m, a, j] = -1
    num[a, j] = kept
    return kept == 0 and partial[a, j] != 0


@inline_compiled
def _move(s, x, asg, members, edges, t, a, b, todo):  # type: ignore[no-untyped-def]
    """Move token t from expert a to expert b and update every affected exchange-graph edge."""
    lst, cnt, slotpos = members
    e = s.shape[1]
    k = asg.shape[1]
    slot = -1
    for m in range(k):
        if asg[t, m] == a:
            slot = m
    # expert lists
    q = slotpos[t, slot]
    last = lst[a, cnt[a] - 1]
    lst[a, q] = last
    for m in range(k):
        if asg[last, m] == a:
            slotpos[last, m] = q
    cnt[a] -= 1
    lst[b, cnt[b]] = t
    slotpos[t, slot] = cnt[b]
    cnt[b] += 1
    asg[t, slot] = b
    x[t, a] = 0
    x[t, b] = 1
    nt = 0
    # t leaves row a (it was a candidate for (a, j), j off t) and column b (now on t)
    sa = s[t, a]
    for j in range(e):
        if _remove(edges, a, j, t, sa - s[t, j]):
            todo[nt, 0] = a
            todo[nt, 1] = j
            nt += 1
    for m in range(k):
        i = asg[t, m]
        if i != b and _remove(edges, i, b, t, s[t, i] - s[t, b]):
            todo[nt, 0] = i
            todo[nt, 1] = b
            nt += 1
    # t joins row b (for j off t) and column a (a is now off t)
    sb = s[t, b]
    for j in range(e):
        if x[t, j] == 0:
            _insert(edges, b, j, sb - s[t, j], t)
    for m in range(k):
        i = asg[t, m]
        if i != b:
            _insert(edges, i, a, s[t, i] - sa, t)
    for r in range(nt):
        _recompute(s, x, members, edges, todo[r, 0], todo[r, 1])
    return nt


@compiled
def _ssp(s, cap, p, asg, x, members, edges, slack, delta, g, stats, moved):  # type: ignore[no-untyped-def]
    """Successive shortest paths until every expert holds cap (tokens + dummy slack units).

    p has E+1 entries, the last for the slack node Z; zsup[0] dummy units are still on Z and
    dum[i] sit on expert i. Only tokens whose initial gap was <= g have offered their edges;
    delta = p - p_initial (experts). An edge of a left-out token has reduced cost
    >= g - spread(delta), so a path of length D is shortest, and the new prices keep it >= 0,
    while spread + D <= g; otherwise return 1 (offer more tokens, then call again).
    Returns 0 when balanced, -1 if no path exists among the offered edges.
    stats[0] counts augmenting paths, stats[1] holds the spread + D that was needed, stats[2]
    counts edge rescans, stats[3] Dijkstra node visits; moved[t] = 1 for every token moved.
    """
    cnt = members.n_tokens
    tok = edges.token
    val = edges.value
    dum, zsup = slack
    n, e = s.shape
    k = asg.shape[1]
    z = e
    v_all = e + 1
    dist = np.empty(v_all)
    done = np.zeros(v_all, dtype=np.bool_)
    pred = np.empty(v_all, dtype=np.int64)
    path_a = np.empty(v_all, dtype=np.int64)
    path_b = np.empty(v_all, dtype=np.int64)
    path_t = np.empty(v_all, dtype=np.int64)
    todo = np.empty((e + k + 2, 2), dtype=np.int64)
    excess = zsup[0]
    for i in range(e):
        if cnt[i] + dum[i] > cap:
            excess += cnt[i] + dum[i] - cap
    while excess > 0:
        for v in range(v_all):
            dist[v] = _INF
            done[v] = False
            pred[v] = -1
        for i in range(e):
            if cnt[i] + dum[i] > cap:
                dist[i] = 0.0
        if zsup[0] > 0:
            dist[z] = 0.0
        sink = -1
        while True:
            u = -1
            best = _INF
            for v in range(v_all):
                if not done[v] and dist[v] < best:
                    best = dist[v]
                    u = v
            if u < 0:
                break
            done[u] = True
            stats[3] += 1
            if u < e and cnt[u] + dum[u] < cap:
                sink = u
                break
            du = dist[u]
            if u < e:
                base = du + p[u]
                for b in range(e):
                    if not done[b]:
                        nd = base + val[0, u, b] - p[b]
                        if nd < du:
                            nd = du  # rounding: reduced costs are >= 0 in exact arithmetic
                        if nd < dist[b]:
                            dist[b] = nd
                            pred[b] = u
                if dum[u] > 0 and not done[z]:
                    nd = max(base - p[z], du)
                    if nd < dist[z]:
                        dist[z] = nd
                        pred[z] = u
            else:
                base = du + p[z]
                for b in range(e):
                    if not done[b]:
                        nd = max(base - p[b], du)
                        if nd < dist[b]:
                            dist[b] = nd
                            pred[b] = z
        if sink < 0:
            return -1
        dmax = dist[sink]
        if g < _INF:
            lo = delta[0]
            hi = delta[0]
            for i in range(1, e):
                lo = min(lo, delta[i])
                hi = max(hi, delta[i])
            if hi - lo + dmax > g:
                stats[1] = hi - lo + dmax
                return 1
        for v in range(v_all):
            inc = dist[v] if done[v] else dmax
            p[v] += inc
            if v < e:
                delta[v] += inc
        # record the path (tokens chosen before any move), then apply it
        length = 0
        v = sink
        while pred[v] >= 0:
            u = pred[v]
            path_a[length] = u
            path_b[length] = v
            path_t[length] = tok[0, u, v] if (u < e and v < e) else -1
            length += 1
            v = u
        for r in range(length):
            u = path_a[r]
            w = path_b[r]
            if u < e and w < e:
                moved[path_t[r]] = 1
                stats[2] += _move(s, x, asg, members, edges, path_t[r], u, w, todo)
            elif w == z:
                dum[u] -= 1
            else:
                dum[w] += 1
        if v == z:
            zsup[0] -= 1
        excess -= 1
        stats[0] += 1
    return 0


@compiled
def _experts_ranked(s, asg, bias):  # type: ignore[no-untyped-def]
    """Each token's assigned experts ranked by s + bias desc, ties to the lower index
    (:func:`lfbtheory._engine.topk.row_top` over its k values, listed in expert order).

    Called with the selection offsets w = b - max b, s + w is exactly
    :func:`lfbtheory.routing.selection_scores` (the same float64 additions)."""
    n, k = asg.shape
    out = np.empty((n, k), dtype=np.int64)
    ids = np.empty(k, dtype=np.int64)
    r = np.empty(k)
    vals = np.empty(k)
    idx = np.empty(k, dtype=np.int64)
    cand = np.empty(k + 1, dtype=np.int64)
    for t in range(n):
        for m in range(k):  # the experts in ascending order (k is small: insertion)
            a = asg[t, m]
            pos = m
            while pos > 0 and ids[pos - 1] > a:
                ids[pos] = ids[pos - 1]
                pos -= 1
            ids[pos] = a
        for m in range(k):
            r[m] = s[t, ids[m]] + bias[ids[m]]
        row_top(r, k, vals, idx, cand, -np.inf, True)
        for m in range(k):
            out[t, m] = ids[idx[m]]
    return out


_GAP_QUANTILE_LARGE = 0.03  # first band on instances with cap > _M_LARGE_CAP (else: the median)
_H_GRID = np.logspace(-5, -1, 9)  # Newton windows, in units of the scores' spread


def _median(v: NDArray[np.float64]) -> float:
    """``np.quantile(v, 0.5)`` (linear interpolation) bit for bit, by one partition."""
    n = v.shape[0]
    lo = (n - 1) // 2
    if n % 2:
        return float(np.partition(v, lo)[lo])
    part = np.partition(v, [lo, lo + 1])
    a, b = float(part[lo]), float(part[lo + 1])
    return b - (b - a) * 0.5  # numpy's lerp at gamma = 0.5


@compiled
def _below(gap, bound):  # type: ignore[no-untyped-def]
    """(the t with gap[t] <= bound in increasing order, their gaps, max of gap), one pass."""
    n = gap.shape[0]
    rows = np.empty(n, dtype=np.int64)
    c = 0
    top = -_INF
    for t in range(n):
        v = gap[t]
        rows[c] = t  # a branch-free compress: the count advances only for a listed token
        c += v <= bound
        top = v if v > top else top
    rows = rows[:c].copy()
    return rows, gap[rows], top


def _near_band(gap: NDArray[np.float64], q: int):  # type: ignore[no-untyped-def]
    """The tokens whose gap is at most a generous guess of the q-th smallest gap (the rank 4q
    quantile of every 64th gap), their gaps and the max gap, with the guess -- or None when
    they are not more than q (then the caller partitions every gap)."""
    sample = gap[::64]
    m = sample.shape[0]
    qs = min(m - 1, (4 * q * m) // gap.shape[0])
    bound = float(np.partition(sample, qs)[qs])
    rows, vals, top = _below(gap, bound)
    return (rows, vals, float(top), bound) if rows.shape[0] > q else None


def _band(gap: NDArray[np.float64], g: float, near) -> NDArray[np.int64]:  # type: ignore[no-untyped-def]
    """The tokens with gap <= g in increasing order; from ``near`` (:func:`_near_band`) when
    g is within its bound: every token with gap <= bound is listed there."""
    if near is not None and g <= near[3]:
        return near[0][near[1] <= g]
    return np.flatnonzero(gap <= g).astype(np.int64)


def _repair(  # type: ignore[no-untyped-def]
    s, k, cap, equality, p, asg, x, loads, gap, clock, members=None
):
    """Successive shortest paths from the top-k routing (asg, x, loads) at prices p: offer the
    exchange edges of the tokens whose gap (a lower bound on k-th minus (k+1)-th of s + p is
    enough) lies in the first band, then repair every load to cap, widening the band on
    demand. Returns (prices (E+1,), final band g, (stats, expansions, offer seconds, moved)),
    moved[t] = 1 for the tokens the paths moved. ``members``: the per-expert token lists
    (:class:`Members`) of asg if the caller keeps them (they are updated in place)."""
    n, e = s.shape
    if members is None:
        members = _build_lists(asg, e, int(max(loads.max(), cap)) + 1)
    else:  # the lists of every token of asg, kept by the caller
        members = Members(members.token, members.n_tokens, members.slot[:n])
    # A longer candidate list costs O(M) per offer but runs empty (a rescan of all of the
    # expert's tokens) less often; the head of every list, the only entry a path reads, is
    # the same for any M.
    mm = _M_LARGE if cap > _M_LARGE_CAP else _M
    edges = Edges(
        value=np.full((mm, e, e), _INF),
        token=np.full((mm, e, e), -1, dtype=np.int32),
        n_listed=np.zeros((e, e), dtype=np.int64),
        partial=np.zeros((e, e), dtype=np.uint8),
    )
    near = None  # (tokens with gap <= bound in increasing order, their gaps, max gap, bound)
    if n > 64 and k < e:
        if cap > _M_LARGE_CAP:
            # large (pooled) instances start warm and need a thin band: offer the ~3% of
            # tokens closest to a tie (g decides which edges are offered first, never the
            # shortest paths, ties aside, nor the optimum)
            q = int(_GAP_QUANTILE_LARGE * (n - 1))
            near = _near_band(gap, q)
            if near is not None:
                g = float(np.partition(near[1], q)[q])
            else:
                g = float(np.partition(gap, q)[q])
        else:  # the half of tokens closest to a tie; more are offered on demand
            g = _median(gap)
    else:
        g = _INF
    tokens = _band(gap, g, near)
    clock.append(time.perf_counter())
    _add_edges(s, p, asg, x, edges, tokens, -_INF, g)
    clock.append(time.perf_counter())
    pz = np.empty(e + 1)
    pz[:e] = p
    pz[e] = 0.0 if not equality else p.max()
    dum = np.zeros(e, dtype=np.int64)
    zsup = np.zeros(1, dtype=np.int64)
    if not equality:
        # dummy slack units may sit only on experts priced like Z (p = 0): place them up front
        left = e * cap - n * k
        for i in range(e):
            if left > 0 and p[i] == 0.0 and loads[i] < cap:
                d = min(cap - int(loads[i]), left)
                dum[i] = d
                left -= d
        zsup[0] = left
    delta = np.zeros(e)
    stats = np.zeros(4)
    moved = np.zeros(n, dtype=np.uint8)
    expansions = 0
    add_seconds = 0.0
    while True:
        status = _ssp(s, cap, pz, asg, x, members, edges, Slack(dum, zsup), delta, g, stats, moved)
        if status == 0:
            break
        if status < 0 and g == _INF:
            raise RuntimeError("ssp: no augmenting path on a feasible instance (please report)")
        g_new = _INF if status < 0 else max(2.0 * g, 1.5 * float(stats[1]))
        if g_new >= (near[2] if near is not None else float(gap.max())):
            g_new = _INF
        t_add = time.perf_counter()
        more = _band(gap, g_new, near)
        _add_edges(s, p, asg, x, edges, more, g, g_new)
        add_seconds += time.perf_counter() - t_add
        g = g_new
        expansions += 1
    return pz, g, (stats, expansions, add_seconds, moved)


@compiled
def _route_start(s, k, cap, equality, p, passes, h, knobs):  # type: ignore[no-untyped-def]
    """Up to ``passes`` damped Newton steps on p in place (:func:`_newton_pass`; stop once the
    top-k excess is <= max(2, E // 8)), then top-k routing at p (:func:`_reroute` after a
    step, else :func:`_topk_rows`). Returns (asg, x, loads, gap, passes done)."""
    n, e = s.shape
    asg = np.empty((n, k), dtype=np.int32)
    x = np.zeros((n, e), dtype=np.uint8)
    loads = np.zeros(e, dtype=np.int64)
    gap = np.empty(n)
    done_passes = 0
    regs = e <= knobs.row_registers_max_e
    if passes > 0 and k < e and k + 1 <= 4 and e <= knobs.newton_columns_max_e:  # same results
        sT = s.T.copy()
        top = np.empty((4, n))
        tidx = np.empty((4, n), dtype=np.int64)
        mm = np.empty(n)
        before = p.copy()
        for it in range(passes):
            before = p.copy()
            damp = 1.0 if it == 0 else 0.7
            excess = _newton_pass_cols(sT, p, k, cap, equality, damp, h, asg, gap, top, tidx, mm)
            done_passes += 1
            if excess <= max(2, e // 8):
                break
        step = p - before
        _reroute_cols(sT, p, k, asg, x, loads, gap, step.max() - step.min(), top, tidx)
    elif passes > 0 and k < e:
        before = p.copy()
        for it in range(passes):
            before = p.copy()
            damp = 1.0 if it == 0 else 0.7
            excess = _newton_pass(s, p, k, cap, equality, damp, h, asg, gap, regs)
            done_passes += 1
            if excess <= max(2, e // 8):
                break
        step = p - before
        _reroute(s, p, k, asg, x, loads, gap, step.max() - step.min(), regs)
    else:
        _topk_rows(s, p, k, asg, x, loads, gap, regs)
    return asg, x, loads, gap, done_passes


@compiled
def _spread(s):  # type: ignore[no-untyped-def]
    """Standard deviation of the rows s[::max(1, n // 256)] (the Newton windows' unit), or 1.0
    when it is 0: mean, then mean squared deviation, summed in order."""
    n, e = s.shape
    step = max(1, n // 256)
    m = 0
    total = 0.0
    for t in range(0, n, step):
        for j in range(e):
            total += s[t, j]
            m += 1
    mean = total / m
    sq = 0.0
    for t in range(0, n, step):
        for j in range(e):
            d = s[t, j] - mean
            sq += d * d
    sd = np.sqrt(sq / m)
    return sd if sd != 0.0 else 1.0


@compiled
def _centred(p):  # type: ignore[no-untyped-def]
    """p - mean(p), the sum taken in order."""
    total = 0.0
    for v in p:
        total += v
    return p - total / p.shape[0]


@compiled
def recentre_equal(start, s):  # type: ignore[no-untyped-def]
    """A warm start in the equality gauge: start - median(start), clipped to +-(max s - min s)
    (0 if the scores are constant); the median of an even count is the mean of the middle two."""
    return _recentre_range(start, s.max() - s.min())


@compiled
def _recentre_range(start, r):  # type: ignore[no-untyped-def]
    """:func:`recentre_equal` given r = max s - min s."""
    if r == 0.0:
        return np.zeros_like(start)
    srt = np.sort(start)
    e = srt.shape[0]
    h = e // 2
    med = srt[h] if e % 2 else (srt[h - 1] + srt[h]) / 2
    return np.minimum(np.maximum(start - med, -r), r)


@inline_compiled
def _max_min(s):  # type: ignore[no-untyped-def]
    """(max, min) of a 2-D array in one pass; (nan, nan) if it holds a nan."""
    hi = s[0, 0]
    lo = hi
    nan = False
    for row in s:
        for v in row:
            hi = max(hi, v)
            lo = min(lo, v)
            nan |= v != v
    return (np.nan, np.nan) if nan else (hi, lo)


@compiled
def dense_stream(arr, k, cap, prev, t0, t1, grid, biases, lists, knobs):  # type: ignore[no-untyped-def]
    """Solve batches t0 <= t < t1 of a (T, n, E) stream (equality, L = cap <= the tuning's
    dense_repair_max_cap)
    as :func:`ssp_solve` does with the previous batch's price as warm start (one Newton pass,
    dense repair, mean-zero price). Fills biases[t] and lists[t - t0] (each token's experts,
    for the caller's certificate); returns the first t it did not solve (t1 when all were): a
    batch whose scores leave [2^-64, 2^64) in magnitude or hold a nan or inf, or whose repair
    found no path, is left to the caller."""
    e = arr.shape[2]
    for t in range(t0, t1):
        s = arr[t]
        hi, lo = _max_min(s)
        m = max(hi, -lo)
        if not (m == 0.0 or 2.0**-65 <= m < 2.0**64):  # also nan (every comparison is False)
            return t
        p = _recentre_range(prev, hi - lo)
        h = _spread(s) * grid if k < e else grid
        # the equality case on one batch: Newton step and routing, then the repair on the
        # dense exchange matrix
        asg, x, ld, _, _ = _route_start(s, k, cap, True, p, 1, h, knobs)
        if dense_repair(s, cap, p, asg, x, ld) < 0:
            return t
        bias = _centred(p)
        lists[t - t0] = asg
        biases[t] = bias
        prev = bias
    return t1


def _solve_from(
    s: NDArray[np.float64],
    k: int,
    cap: int,
    equality: bool,
    p0: NDArray[np.float64],
    passes: int,
    knobs: Knobs,
) -> tuple[NDArray[np.uint8], NDArray[np.int32], NDArray[np.float64], dict]:
    n, e = s.shape
    clock = [time.perf_counter()]
    p = np.array(p0, dtype=np.float64)
    h = _spread(s) * _H_GRID if passes > 0 and k < e else _H_GRID
    if equality and cap <= knobs.dense_repair_max_cap:
        asg, x, loads, _, done_passes = _route_start(s, k, cap, True, p, passes, h, knobs)
        paths = dense_repair(s, cap, p, asg, x, loads)  # the dense exchange-matrix repair
        if paths < 0:
            raise RuntimeError("ssp: no augmenting path on a feasible instance (please report)")
        return (
            x,
            asg,
            _centred(p),
            {
                "seconds": {"total": time.perf_counter() - clock[0]},
                "augmentations": int(paths),
                "passes": done_passes,
                "repair": "dense",
            },
        )
    if not equality:  # "<=": prices live in p <= 0
        p = np.minimum(p - p.max(), 0.0)
    asg, x, loads, gap, done_passes = _route_start(s, k, cap, equality, p, passes, h, knobs)
    clock.append(time.perf_counter())
    pz, g, run = _repair(s, k, cap, equality, p, asg, x, loads, gap, clock)
    stats, expansions, add_seconds, _ = run
    clock.append(time.perf_counter())
    bias = _centred(pz[:e]) if equality else np.minimum(pz[:e] - pz[e], 0.0)
    secs = np.diff(clock)
    return (
        x,
        asg,
        bias,
        {
            "seconds": {
                "passes and routing": secs[0],
                "lists": secs[1],
                "edges": secs[2],
                "paths": secs[3] - add_seconds,
                "offers": add_seconds,
            },
            "augmentations": int(stats[0]),
            "passes": done_passes,
            "expansions": expansions,
            "threshold": g,
            "rescans": int(stats[2]),
            "visits": int(stats[3]),
        },
    )


@compiled
def _refresh_gaps(s, p, x, gap, g, moved, shift):  # type: ignore[no-untyped-def]
    """After a prefix's repair at new prices p: a token offered to the graph (gap <= g) or
    moved gets its exact gap (min over its experts of s[t] + p minus max over the others);
    every other token kept its experts and its gap drops by ``shift`` (a lower bound)."""
    n = moved.shape[0]
    e = s.shape[1]
    # one branch-free pass shifts the kept tokens and lists the others (a compress: every
    # index is written, the count advances only for a listed token) ...
    rows = np.empty(n, dtype=np.int64)
    c = 0
    for t in range(n):
        v = gap[t]
        exact = (v <= g) | (moved[t] != 0)
        rows[c] = t
        c += exact
        gap[t] = v if exact else v - shift
    # ... then the listed tokens are read in full, without branches (a mispredicted branch
    # per row would also stall the loads of the next rows, which miss the cache)
    for q in range(c):
        t = rows[q]
        lo_on = _INF
        hi_off = -_INF
        for j in range(e):
            v = s[t, j] + p[j]
            on = x[t, j] != 0
            von = v if on else _INF
            voff = -_INF if on else v
            lo_on = von if von < lo_on else lo_on
            hi_off = voff if voff > hi_off else hi_off
        gap[t] = lo_on - hi_off


@compiled
def _extend_lists(asg, members, lo, hi):  # type: ignore[no-untyped-def]
    """Append tokens lo <= t < hi to the per-expert token lists of their experts."""
    lst, cnt, slotpos = members
    k = asg.shape[1]
    for t in range(lo, hi):
        for m in range(k):
            a = asg[t, m]
            lst[a, cnt[a]] = t
            slotpos[t, m] = cnt[a]
            cnt[a] += 1


def ssp_prefixes(
    s: NDArray[np.float64],
    n_batch: int,
    k: int,
    lengths: NDArray[np.int64],
    warm_start: NDArray[np.float64] | None = None,
    knobs: Knobs = TUNING.knobs,
):  # type: ignore[no-untyped-def]
    """Exact balanced assignments of the pooled prefixes s[:t n_batch] (L = t n_batch k / E,
    equality) for the increasing batch counts t in ``lengths``, incrementally (inputs
    already validated; s is the (T n_batch, E) stream).

    The optimum of one prefix is the start of the next: its tokens keep their experts (a top-k
    set of s + p at the prefix's prices p, every load L), the new tokens are routed top-k at
    p, and the successive shortest paths repair the loads. Each token keeps a lower bound on
    its gap (k-th minus (k+1)-th of s + p): exact for the tokens whose edges were offered,
    minus the spread of the price change for the others -- what the band of offered edges
    needs (:func:`_repair`). Yields (x (N, E) uint8, asg (N, k) int32 -- views of buffers the
    next prefix overwrites: certify or copy them before advancing --, bias (mean zero), stats)
    per prefix; the caller certifies each.
    """
    total, e = s.shape
    regs = e <= knobs.row_registers_max_e
    n_max = int(lengths[-1]) * n_batch
    asg = np.empty((n_max, k), dtype=np.int32)
    x = np.zeros((n_max, e), dtype=np.uint8)
    gap = np.empty(n_max)
    p = -s[:n_batch].mean(axis=0) if warm_start is None else np.array(warm_start, dtype=np.float64)
    # per-expert token lists, kept across prefixes (the paths keep them current); an expert
    # never holds more than max(its load after routing the new tokens, L) <= L_old + new
    ns = np.asarray(lengths, dtype=np.int64) * n_batch
    before = np.concatenate([[0], ns[:-1]])
    width = int(np.max(before * k // e + (ns - before))) + 1  # a token adds 1 per expert at most
    members = Members(
        token=np.empty((e, max(width, n_max * k // e + 1)), dtype=np.int32),
        n_tokens=np.zeros(e, dtype=np.int64),
        slot=np.empty((n_max, k), dtype=np.int32),
    )
    done = 0
    for t in lengths:
        n = int(t) * n_batch
        cap = n * k // e
        clock = [time.perf_counter()]
        new_loads = np.zeros(e, dtype=np.int64)
        _topk_rows(s[done:n], p, k, asg[done:n], x[done:n], new_loads, gap[done:n], regs)
        loads = new_loads + (done * k // e)  # the earlier tokens fill every expert to L_old
        clock.append(time.perf_counter())
        _extend_lists(asg, members, done, n)
        pz, g, (stats, expansions, _, moved) = _repair(
            s[:n], k, cap, True, p, asg[:n], x[:n], loads, gap[:n], clock, members
        )
        p_new = pz[:e].copy()
        step = p_new - p
        spread = float(step.max() - step.min())
        # tokens offered to the graph, or moved (a rescanned list may take any token): exact
        # gaps at the new prices; every other token kept its experts (rounding margin added)
        _refresh_gaps(s, p_new, x, gap, g, moved, spread + 1e-12 * (1.0 + spread))
        p = p_new
        done = n
        yield (
            x[:n],
            asg[:n],
            _centred(p),
            {
                "augmentations": int(stats[0]),
                "expansions": expansions,
                "threshold": g,
                "rescans": int(stats[2]),
                "visits": int(stats[3]),
            },
        )


def experts_ranked(
    s: NDArray[np.float64], x: NDArray[np.integer], k: int, offsets: NDArray[np.float64]
) -> NDArray[np.int64]:
    """(n, k) experts of a 0/1 assignment x, ranked by s + offsets desc (ties: lower index)."""
    n = s.shape[0]
    asg = np.nonzero(x)[1].reshape(n, k)
    return _experts_ranked(np.ascontiguousarray(s), asg, np.ascontiguousarray(offsets))


def ssp_solve(
    s: NDArray[np.float64],
    k: int,
    cap: int,
    equality: bool,
    warm_start: NDArray[np.float64] | None = None,
    *,
    passes: int | None = None,
    knobs: Knobs = TUNING.knobs,
) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.float64], dict]:
    """Exact balanced assignment by successive shortest paths (inputs already validated).

    Starts from ``warm_start`` prices (default: minus the column means), takes up to ``passes``
    damped per-expert Newton steps on the dual (default 3 cold, 1 warm), routes top-k and
    repairs the loads exactly. Returns (x (n,E) uint8, experts (n,k) ranked by s + bias, bias,
    stats); the bias is mean-zero (equality) or <= 0 and 0 on experts with room ("<=").
    """
    s = np.ascontiguousarray(s, dtype=np.float64)
    if warm_start is None:
        p0 = -s.mean(axis=0)
        passes = 3 if passes is None else passes
    else:
        p0 = np.array(warm_start, dtype=np.float64)
        passes = 1 if passes is None else passes
    x, asg, bias, stats = _solve_from(s, k, cap, equality, p0, passes, knobs)
    experts = _experts_ranked(s, asg, bias - bias.max())  # routing's gauge: s + (b - max b)
    loads = np.bincount(experts.ravel(), minlength=s.shape[1])
    if np.any(loads != cap) if equality else np.any(loads > cap):
        raise RuntimeError("ssp: the repaired assignment is infeasible (please report)")
    return x, experts, bias, stats
