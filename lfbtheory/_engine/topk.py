"""Compiled routing kernel: biased top-k selection and expert loads in one pass over the scores.

Computes exactly what :func:`lfbtheory.routing.topk_indices` of the selection scores computes
(arXiv 2408.15664 Sec. 3: token t goes to TopK_i(s[t,i] + b[i])), with the same tie rule -- rank by
selection score descending, then by expert index ascending -- and the same floating-point selection
scores s + (b - max b) (additive) or s * b (multiplicative), evaluated in float64 as numpy does.
Each row is scanned once, keeping its k best in a small sorted buffer (a candidate enters only if
it beats the current k-th strictly, so an equal score with a higher index never displaces a lower
one); the loads are counted in the same pass.

numba compiles it when importable; otherwise :func:`topk_and_loads` falls back to the numpy
path (``topk_indices`` of ``selection_scores`` + ``bincount``), which gives identical results.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from lfbtheory._engine.jit import HAVE_NUMBA, compiled, inline_compiled
from lfbtheory._engine.tuning import TUNING, Knobs
from lfbtheory.validation import MAGNITUDE_LIMIT, check_magnitude

__all__ = [
    "cols_top",
    "row_top",
    "topk_and_loads",
    "transpose_checked",
]


@inline_compiled
def row_top(r, kk, vals, idx, cand, theta, regs):  # type: ignore[no-untyped-def]
    """vals/idx = the kk largest entries of r, sorted desc (ties: lower index first).

    A pure function of (r, kk): ``theta`` and ``regs`` choose how, never what. Entries are
    offered in index order and one enters only if it beats the current kk-th strictly, so an
    equal value never displaces a lower index. kk = 1: four interleaved running maxima, then
    the first index reaching the maximum. ``regs`` (2 <= kk <= 4): the buffer lives in
    registers and is updated without branches (a_m <- max(a_m, min(a_{m-1}, v)), indices by
    selects on the strict comparisons), so a fresh row costs no mispredictions. Otherwise only
    entries >= theta (a guess of the kk-th largest, :func:`threshold_guess`; -inf offers every
    entry) are offered to a sorted buffer; with fewer than kk of them the row is redone with
    theta = -inf, so the guess never changes the result.
    """
    if kk == 1:
        _top1(r, vals, idx)
    elif regs and 2 <= kk <= 4:
        _top_registers(r, kk, vals, idx)
    else:
        _top_buffer(r, kk, vals, idx, cand, theta)


@inline_compiled
def _top1(r, vals, idx):  # type: ignore[no-untyped-def]
    """kk = 1: four interleaved running maxima, then the first index reaching the maximum."""
    e = r.shape[0]
    m0 = r[0]
    m1 = m0
    m2 = m0
    m3 = m0
    j = 1
    while j + 4 <= e:
        v0 = r[j]
        v1 = r[j + 1]
        v2 = r[j + 2]
        v3 = r[j + 3]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        j += 4
    while j < e:
        v0 = r[j]
        m0 = v0 if v0 > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m0 = m2 if m2 > m0 else m0
    j = 0
    while r[j] < m0:  # stops at the latest where the maximum was read
        j += 1
    vals[0] = r[j]
    idx[0] = j


@inline_compiled
def _top_registers(r, kk, vals, idx):  # type: ignore[no-untyped-def]
    """2 <= kk <= 4: the kk best in registers, updated without branches."""
    e = r.shape[0]
    # The kk best in registers, one select per slot and condition (g_m = [v > a_m]: slot m
    # takes slot m-1 if g_{m-1}, else v if g_m, else stays; strict >, so an equal value never
    # displaces a lower index). Each select is a statement of its own: numba lowers a
    # conditional expression to a branch diamond, which LLVM folds back into a select, but
    # nested ones (i2 = i1 if g1 else (j if g2 else i2)) sharing conditions it jump-threads
    # into branches that mispredict on fresh rows. The
    # values are kept by max/min after the fill (the same multiset, so the same
    # comparisons), and vals are read back from r at the indices: the entries' own bits
    # (max(+0.0, -0.0) may return either zero).
    # Entry j < kk is forced into slot j+1 or above; unused slots stay at -inf, index 0.
    a1 = r[0]
    a2 = -np.inf
    a3 = -np.inf
    a4 = -np.inf
    i1 = 0
    i2 = 0
    i3 = 0
    i4 = 0
    for j in range(1, kk):
        v = r[j]
        g1 = v > a1
        g2 = (v > a2) | (j == 1)
        g3 = (v > a3) | (j == 2)
        g4 = (v > a4) | (j == 3)
        i4 = j if g4 else i4
        i4 = i3 if g3 else i4
        i3 = j if g3 else i3
        i3 = i2 if g2 else i3
        i2 = j if g2 else i2
        i2 = i1 if g1 else i2
        i1 = j if g1 else i1
        a4 = v if g4 else a4
        a4 = a3 if g3 else a4
        a3 = v if g3 else a3
        a3 = a2 if g2 else a3
        a2 = v if g2 else a2
        a2 = a1 if g1 else a2
        a1 = v if g1 else a1
    if kk == 2:
        for j in range(2, e):
            v = r[j]
            g1 = v > a1
            g2 = v > a2
            i2 = j if g2 else i2
            i2 = i1 if g1 else i2
            i1 = j if g1 else i1
            a2 = max(a2, min(a1, v))
            a1 = max(a1, v)
    elif kk == 3:
        for j in range(3, e):
            v = r[j]
            g1 = v > a1
            g2 = v > a2
            g3 = v > a3
            i3 = j if g3 else i3
            i3 = i2 if g2 else i3
            i2 = j if g2 else i2
            i2 = i1 if g1 else i2
            i1 = j if g1 else i1
            a3 = max(a3, min(a2, v))
            a2 = max(a2, min(a1, v))
            a1 = max(a1, v)
    else:
        for j in range(4, e):
            v = r[j]
            g1 = v > a1
            g2 = v > a2
            g3 = v > a3
            g4 = v > a4
            i4 = j if g4 else i4
            i4 = i3 if g3 else i4
            i3 = j if g3 else i3
            i3 = i2 if g2 else i3
            i2 = j if g2 else i2
            i2 = i1 if g1 else i2
            i1 = j if g1 else i1
            a4 = max(a4, min(a3, v))
            a3 = max(a3, min(a2, v))
            a2 = max(a2, min(a1, v))
            a1 = max(a1, v)
    idx[0] = i1
    idx[1] = i2
    if kk > 2:
        idx[2] = i3
    if kk > 3:
        idx[3] = i4
    for m in range(kk):
        vals[m] = r[idx[m]]


@inline_compiled
def _top_buffer(r, kk, vals, idx, cand, theta):  # type: ignore[no-untyped-def]
    """Any kk: the entries >= theta offered to a sorted buffer (redone with -inf if too few)."""
    e = r.shape[0]
    nc = 0
    for attempt in range(2):
        guess = theta if attempt == 0 else -np.inf
        nc = 0
        for j in range(e):
            cand[nc] = j
            nc += r[j] >= guess
        if nc >= kk:
            break
    c = 0
    for q in range(nc):
        j = cand[q]
        v = r[j]
        if c == kk:
            if v <= vals[kk - 1]:
                continue
            pos = kk - 1
        else:
            pos = c
            c += 1
        while pos > 0 and vals[pos - 1] < v:
            vals[pos] = vals[pos - 1]
            idx[pos] = idx[pos - 1]
            pos -= 1
        vals[pos] = v
        idx[pos] = j


_SAMPLE = 32  # rows whose exact kk-th value :func:`threshold_guess` measures


@compiled
def row_theta(s, w, mode, kk, regs):  # type: ignore[no-untyped-def]
    """The ``theta`` to route the rows of the batch s (n, E) with: -inf where :func:`row_top`
    takes no threshold (kk = 1, or registers), else :func:`threshold_guess`."""
    if kk == 1 or (regs and 2 <= kk <= 4):
        return -np.inf
    return threshold_guess(s, w, mode, kk)


@compiled
def threshold_guess(s, w, mode, kk):  # type: ignore[no-untyped-def]
    """A guess of the kk-th largest selection score of a row of the batch s (n, E): the mean
    minus two standard deviations of the exact kk-th values of up to _SAMPLE evenly spaced
    rows (selection s, s + w or s * w for mode 0, 1, 2; -inf if a sampled row is not finite).
    Only :func:`row_top`'s speed depends on it: a row with fewer than kk entries above the
    guess is redone without one. Computed from the batch alone, before any row is routed."""
    n, e = s.shape
    if kk >= e or n == 0:
        return -np.inf
    step = max(1, n // _SAMPLE)
    r = np.empty(e)
    vals = np.empty(kk)
    idx = np.empty(kk, dtype=np.int64)
    cand = np.empty(e + 1, dtype=np.int64)
    total = 0.0
    sq = 0.0
    m = 0
    for t in range(0, n, step):
        for j in range(e):
            x = np.float64(s[t, j])
            r[j] = x if mode == 0 else (x + w[j] if mode == 1 else x * w[j])
        row_top(r, kk, vals, idx, cand, -np.inf, False)
        v = vals[kk - 1]
        if not np.isfinite(v):
            return -np.inf
        total += v
        sq += v * v
        m += 1
    mean = total / m
    var = max(sq / m - mean * mean, 0.0)
    return mean - 2.0 * np.sqrt(var)


@inline_compiled
def transpose_checked(s, lim, sT):  # type: ignore[no-untyped-def]
    """sT[j, i] = s[i, j] for a batch s (n, E) into sT (E, n); True iff every |s| <= lim (False
    for nan and inf). Columns outer: contiguous writes and strided reads (rows outer would make
    the writes n apart, which collide in the cache at large E)."""
    n, e = s.shape
    inside = True
    for j in range(e):
        for i in range(n):
            x = s[i, j]
            inside &= abs(x) <= lim
            sT[j, i] = x
    return inside


@inline_compiled
def _col_step1(sT, w, j, vals, idx):  # type: ignore[no-untyped-def]
    """Offer column j (sT[j] + w[j]) to every row's running maximum (strict >: ties keep the
    lower index)."""
    n = sT.shape[1]
    wj = w[j]
    for i in range(n):
        v = sT[j, i] + wj
        a1 = vals[0, i]
        i1 = idx[0, i]
        g1 = v > a1
        idx[0, i] = j if g1 else i1
        vals[0, i] = v if g1 else a1


@inline_compiled
def _col_step2(sT, w, j, f2, vals, idx):  # type: ignore[no-untyped-def]
    """Offer column j to every row's 2 best: with g_m = [v > a_m] (or forced, f), slot m takes
    slot m-1 if g_{m-1}, else v if g_m, else stays. Selects, not max/min: a slot keeps the bits
    of the entry its index names (max(+0, -0) could return either zero). Every slot is read
    into a local before any select: a load inside a conditional stays a branch, and the loop
    is no longer vectorised (``benchmarks/`` measures the difference). One
    function per slot count (2, 3, 4) keeps each update straight-line code; the three are
    alike on purpose (a loop over the slots has not been shown to vectorise)."""
    n = sT.shape[1]
    wj = w[j]
    for i in range(n):
        v = sT[j, i] + wj
        a1 = vals[0, i]
        a2 = vals[1, i]
        i1 = idx[0, i]
        i2 = idx[1, i]
        g1 = v > a1
        g2 = (v > a2) | f2
        idx[1, i] = i1 if g1 else (j if g2 else i2)
        idx[0, i] = j if g1 else i1
        vals[1, i] = a1 if g1 else (v if g2 else a2)
        vals[0, i] = v if g1 else a1


@inline_compiled
def _col_step3(sT, w, j, f2, f3, vals, idx):  # type: ignore[no-untyped-def]
    """:func:`_col_step2` for 3 slots."""
    n = sT.shape[1]
    wj = w[j]
    for i in range(n):
        v = sT[j, i] + wj
        a1 = vals[0, i]
        a2 = vals[1, i]
        a3 = vals[2, i]
        i1 = idx[0, i]
        i2 = idx[1, i]
        i3 = idx[2, i]
        g1 = v > a1
        g2 = (v > a2) | f2
        g3 = (v > a3) | f3
        idx[2, i] = i2 if g2 else (j if g3 else i3)
        idx[1, i] = i1 if g1 else (j if g2 else i2)
        idx[0, i] = j if g1 else i1
        vals[2, i] = a2 if g2 else (v if g3 else a3)
        vals[1, i] = a1 if g1 else (v if g2 else a2)
        vals[0, i] = v if g1 else a1


@inline_compiled
def _col_step4(sT, w, j, f2, f3, f4, vals, idx):  # type: ignore[no-untyped-def]
    """:func:`_col_step2` for 4 slots."""
    n = sT.shape[1]
    wj = w[j]
    for i in range(n):
        v = sT[j, i] + wj
        a1 = vals[0, i]
        a2 = vals[1, i]
        a3 = vals[2, i]
        a4 = vals[3, i]
        i1 = idx[0, i]
        i2 = idx[1, i]
        i3 = idx[2, i]
        i4 = idx[3, i]
        g1 = v > a1
        g2 = (v > a2) | f2
        g3 = (v > a3) | f3
        g4 = (v > a4) | f4
        idx[3, i] = i3 if g3 else (j if g4 else i4)
        idx[2, i] = i2 if g2 else (j if g3 else i3)
        idx[1, i] = i1 if g1 else (j if g2 else i2)
        idx[0, i] = j if g1 else i1
        vals[3, i] = a3 if g3 else (v if g4 else a4)
        vals[2, i] = a2 if g2 else (v if g3 else a3)
        vals[1, i] = a1 if g1 else (v if g2 else a2)
        vals[0, i] = v if g1 else a1


@compiled
def cols_top(sT, w, kk, vals, idx):  # type: ignore[no-untyped-def]
    """vals[m, i], idx[m, i] (m < kk) = the m-th largest of sT[:, i] + w and its index, sorted
    desc (ties: lower index first): :func:`row_top` of every row s[i] + w of the batch s = sT.T.

    For 1 <= kk <= 4 and kk <= E (callers use :func:`row_top` otherwise); sT (E, n), w (E,),
    vals (>= kk, n) float64 and idx (>= kk, n) int64, C-ordered. The batch is read column by
    column, every row's kk best kept in vals/idx and updated by row_top's branch-free rule
    (slot m takes slot m-1 if v beats it, else v if v beats slot m: strict >, so an equal value
    never displaces a lower index) in a loop over the n rows that LLVM vectorises. Entry j < kk
    is forced into slot j or above, as row_top fills its slots. vals are the sums sT[j, i] + w[j]
    themselves, bit for bit (the same IEEE add as row_top's caller forms). Which of cols_top and
    row_top is faster depends on E and kk: the tuning table decides (``lfb bench --tune``)."""
    n = sT.shape[1]
    e = sT.shape[0]
    w0 = w[0]
    for i in range(n):
        vals[0, i] = sT[0, i] + w0
        idx[0, i] = 0
    if kk == 1:
        for j in range(1, e):
            _col_step1(sT, w, j, vals, idx)
    elif kk == 2:
        _col_step2(sT, w, 1, True, vals, idx)
        for j in range(2, e):
            _col_step2(sT, w, j, False, vals, idx)
    elif kk == 3:
        _col_step3(sT, w, 1, True, True, vals, idx)
        _col_step3(sT, w, 2, False, True, vals, idx)
        for j in range(3, e):
            _col_step3(sT, w, j, False, False, vals, idx)
    else:
        _col_step4(sT, w, 1, True, True, True, vals, idx)
        _col_step4(sT, w, 2, False, True, True, vals, idx)
        _col_step4(sT, w, 3, False, False, True, vals, idx)
        for j in range(4, e):
            _col_step4(sT, w, j, False, False, False, vals, idx)


def _topk_kernel(s, lim, k, w, mode, regs, experts, loads):  # type: ignore[no-untyped-def]
    """experts[t] = top-k of the selection scores of row t (desc, ties: lower index); loads.

    Per row, in one vectorised pass: the selection scores r and a domain check of the raw
    scores (|s| <= lim, which is False for nan and inf); then :func:`row_top` on r. Returns
    the first row with a score outside the domain, or -1 (its experts are left as 0..k-1).
    """
    n, e = s.shape
    r = np.empty(e)
    cand = np.empty(e + 1, dtype=np.int64)
    vals = np.empty(k)
    idx = np.empty(k, dtype=np.int64)
    bad = -1
    theta = row_theta(s, w, mode, k, regs)
    for t in range(n):
        inside = True  # stays True iff every |s| <= lim (False for nan and inf)
        if mode == 0:
            for j in range(e):
                x = np.float64(s[t, j])
                inside &= abs(x) <= lim
                r[j] = x
        elif mode == 1:
            for j in range(e):
                x = np.float64(s[t, j])
                inside &= abs(x) <= lim
                r[j] = x + w[j]
        else:
            for j in range(e):
                x = np.float64(s[t, j])
                inside &= abs(x) <= lim
                r[j] = x * w[j]
        if not inside:
            bad = t
            for m in range(k):
                experts[t, m] = m
            continue
        row_top(r, k, vals, idx, cand, theta, regs)
        for m in range(k):
            experts[t, m] = idx[m]
            loads[idx[m]] += 1
    return bad


_topk_kernel = compiled(_topk_kernel)


def topk_and_loads(
    scores: NDArray[np.floating],
    k: int,
    offsets: NDArray[np.float64] | None,
    bias_mode: str = "additive",
    knobs: Knobs = TUNING.knobs,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(experts (n, k), loads (E,)) for validated k and offsets w (``routing.selection_offsets``):
    top-k of s + w (additive), s * w (multiplicative) or s (w None), float32/float64 read in
    place. Raises ValueError naming the first score that is not finite or exceeds
    ``validation.MAGNITUDE_LIMIT`` (the numeric domain shared with the LP)."""
    s = np.asarray(scores)
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    n, e = s.shape
    if not HAVE_NUMBA:  # pragma: no cover - exercised only without numba
        from lfbtheory.routing import topk_indices

        r = s.astype(np.float64)
        if offsets is not None:
            r = r + offsets if bias_mode == "additive" else r * offsets
        outside = ~(np.abs(s) <= MAGNITUDE_LIMIT)
        if outside.any():
            t = int(np.argwhere(outside)[0, 0])
            _raise_outside_domain(s[t], t)
        experts = topk_indices(r, k)
        return experts, np.bincount(experts.ravel(), minlength=e).astype(np.int64)
    mode = 0 if offsets is None else (1 if bias_mode == "additive" else 2)
    w = np.zeros(e) if offsets is None else np.ascontiguousarray(offsets, dtype=np.float64)
    s = np.ascontiguousarray(s)
    experts = np.empty((n, k), dtype=np.int64)
    loads = np.zeros(e, dtype=np.int64)
    regs = e <= knobs.row_registers_max_e
    bad = _topk_kernel(s, MAGNITUDE_LIMIT, k, w, mode, regs, experts, loads)
    if bad >= 0:
        _raise_outside_domain(s[bad], bad)
    return experts, loads


def _raise_outside_domain(row: NDArray[np.floating], t: int) -> None:
    finite = np.isfinite(row)
    if not finite.all():
        j = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"scores must be finite; found {row[j]} at token {t}, expert {j}")
    check_magnitude(np.asarray(row, dtype=np.float64), "scores")
