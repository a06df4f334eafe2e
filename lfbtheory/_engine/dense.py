"""Successive shortest paths on a dense exchange matrix: the repair step for small batches.

The batch LP's residual network contracts to the E experts (see :mod:`lfbtheory._engine.ssp`): with
token t on expert a and off expert b, moving t from a to b costs s[t,a] - s[t,b], so the edge
a -> b costs W[a,b] = min over such t, and prices p with W[a,b] + p[a] - p[b] >= 0 on every
edge certify that every token's experts are a top-k set of s + p (complementary slackness;
Ahuja, Magnanti & Orlin, *Network Flows*, 1993, Sec. 9.7).

:mod:`lfbtheory._engine.ssp` keeps a few candidate tokens per edge and offers edges in bands, which
pays on pooled instances of 10^5 - 10^6 tokens. On one batch (a few hundred to a few thousand
tokens) that bookkeeping costs more than it saves: here every edge keeps exactly its best token,
all n k (E - k) exchanges are scanned once, and an edge whose best token leaves is rescanned
over its expert's tokens. Equality capacity only (every expert holds exactly L = n k / E).
"""

from __future__ import annotations

import numpy as np

from lfbtheory._engine.jit import compiled, inline_compiled

__all__ = ["dense_repair"]

_INF = np.inf


@inline_compiled
def _rescan(s, x, lst, cnt, w, wt, a, j):  # type: ignore[no-untyped-def]
    """W[a, j] = min over tokens t on a and off j of s[t,a] - s[t,j] (first minimum kept)."""
    best = _INF
    arg = -1
    for q in range(cnt[a]):  # without data-dependent branches (they mispredict)
        t = lst[a, q]
        v = s[t, a] - s[t, j]
        v = v if x[t, j] == 0 else _INF
        better = np.int64(v < best)
        arg += better * (t - arg)
        best = min(best, v)
    w[a, j] = best
    wt[a, j] = arg


@inline_compiled
def _offer(w, wt, a, j, v, t):  # type: ignore[no-untyped-def]
    if v < w[a, j]:
        w[a, j] = v
        wt[a, j] = t


@compiled
def dense_repair(s, cap, p, asg, x, loads):  # type: ignore[no-untyped-def]
    """Repair a top-k routing at prices p to loads exactly cap, in place (asg (n,k), x (n,E),
    p (E,)); each augmenting path moves one token per edge and raises p by the truncated
    Dijkstra distances, so every token stays top-k of s + p. Returns the number of paths, or
    -1 if some over-full expert reaches no under-full one (infeasible: cannot happen when
    n k = E cap and 1 <= k <= E)."""
    n, e = s.shape
    k = asg.shape[1]
    size = 1
    for i in range(e):
        size = max(size, loads[i], cap)
    lst = np.empty((e, size + 1), dtype=np.int32)
    cnt = np.zeros(e, dtype=np.int64)
    for t in range(n):
        for m in range(k):
            a = asg[t, m]
            lst[a, cnt[a]] = t
            cnt[a] += 1
    w = np.full((e, e), _INF)
    wt = np.full((e, e), -1, dtype=np.int32)
    for t in range(n):
        for m in range(k):
            a = asg[t, m]
            sa = s[t, a]
            for j in range(e):
                if x[t, j] == 0:
                    v = sa - s[t, j]
                    if v < w[a, j]:
                        w[a, j] = v
                        wt[a, j] = t
    dist = np.empty(e)
    done = np.zeros(e, dtype=np.bool_)
    pred = np.empty(e, dtype=np.int64)
    path_a = np.empty(e, dtype=np.int64)
    path_b = np.empty(e, dtype=np.int64)
    path_t = np.empty(e, dtype=np.int64)
    excess = 0
    for i in range(e):
        if cnt[i] > cap:
            excess += cnt[i] - cap
    paths = 0
    while excess > 0:
        for v in range(e):
            done[v] = False
            pred[v] = -1
            dist[v] = 0.0 if cnt[v] > cap else _INF
        sink = -1
        while True:
            u = -1
            best = _INF
            for v in range(e):
                if not done[v] and dist[v] < best:
                    best = dist[v]
                    u = v
            if u < 0:
                break
            done[u] = True
            if cnt[u] < cap:
                sink = u
                break
            du = dist[u]
            base = du + p[u]
            for b in range(e):
                if not done[b]:
                    nd = base + w[u, b] - p[b]
                    if nd < du:
                        nd = du  # rounding: reduced costs are >= 0 in exact arithmetic
                    if nd < dist[b]:
                        dist[b] = nd
                        pred[b] = u
        if sink < 0:
            return -1
        dmax = dist[sink]
        for v in range(e):
            p[v] += dist[v] if done[v] else dmax
        length = 0
        v = sink
        while pred[v] >= 0:  # the path's tokens, all read before any move
            u = pred[v]
            path_a[length] = u
            path_b[length] = v
            path_t[length] = wt[u, v]
            length += 1
            v = u
        for r in range(length):
            _move(s, x, asg, lst, cnt, w, wt, path_t[r], path_a[r], path_b[r])
        excess -= 1
        paths += 1
    return paths


@inline_compiled
def _move(s, x, asg, lst, cnt, w, wt, t, a, b):  # type: ignore[no-untyped-def]
    """Move token t from expert a to expert b; keep every edge's best token exact."""
    e = s.shape[1]
    k = asg.shape[1]
    for m in range(k):
        if asg[t, m] == a:
            asg[t, m] = b
    for q in range(cnt[a]):
        if lst[a, q] == t:
            cnt[a] -= 1
            lst[a, q] = lst[a, cnt[a]]
            break
    lst[b, cnt[b]] = t
    cnt[b] += 1
    x[t, a] = 0
    x[t, b] = 1
    # t left a: the edges a -> j it was best on lose it
    for j in range(e):
        if wt[a, j] == t:
            _rescan(s, x, lst, cnt, w, wt, a, j)
    # b is now on t: edges i -> b of t's other experts lose it
    for m in range(k):
        i = asg[t, m]
        if i != b and wt[i, b] == t:
            _rescan(s, x, lst, cnt, w, wt, i, b)
    # t on b, off j: a candidate for b -> j; a is now off t: t is a candidate for i -> a
    sb = s[t, b]
    for j in range(e):
        if x[t, j] == 0:
            _offer(w, wt, b, j, sb - s[t, j], t)
    sa = s[t, a]
    for m in range(k):
        i = asg[t, m]
        _offer(w, wt, i, a, s[t, i] - sa, t)
