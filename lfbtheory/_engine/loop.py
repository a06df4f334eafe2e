"""The fused fast path of :func:`lfbtheory.simulate`: the whole online loop in one compiled call.

For a memoryless additive rule (the built-in sign and proportional directions, plain or
``centered``) on a (T, n, E) float64 array, batch t is routed with b_t, its
reward is the pairwise sum of the selected unbiased scores, and b_{t+1} = b_t + u_t d(c_t),
all inside :func:`_run_chunk`. Results are bit-identical to the Python loop because every
float is produced by the same IEEE operations in the same order:

- routing: the top-k of the selection scores s + (b - max b) (desc, ties: lower index), by
  ``kernels.row_top`` row by row as ``kernels._topk_kernel`` does, or for k <= 4 and E not too
  large (:func:`column_routing`) by ``kernels.cols_top`` on the batch transposed once for all
  runs, which selects the same experts from the same float sums; the domain check |s| <=
  ``MAGNITUDE_LIMIT`` (False for nan and inf, so the stream needs no separate finiteness scan)
  is made during the row pass or the transpose;
- sums: :func:`_pairwise_sum` replays numpy's float64 ``add.reduce`` of a contiguous 1-D array
  (0 + pairwise sum: sequential below 8 entries, 8 interleaved accumulators up to 128, halves
  rounded to multiples of 8 above), so ``c.mean()``, ``d.mean()`` and the reward
  ``s[rows, experts].sum()`` (an (n, k) C-ordered gather) come out identical;
- directions: sign(c_bar - c) with np.sign's +0 for zeros, (c_bar - c) / c_bar (zeros when
  c_bar <= 0), centred as d - mean(d); then b + u * d (numba contracts no mul+add into an FMA
  without fastmath).

The step sizes are user code and stay in Python (:func:`step_sizes`): each update's schedule
is called once with its count, as the Python loop calls it (it hands the value to
``Rule.advance``), and that value is recorded and applied. The run goes in chunks of
``CHUNK`` batches: the schedule is called for a chunk before it is routed, ``progress`` for
each batch after it. Whatever the fused path cannot finish exactly -- a schedule that raises
or returns a bad value, a score outside the numeric domain, an update that overflows -- stops
it before that batch, and the caller hands the rest of the stream (with the state reached) to
the Python loop, which then raises (or not) exactly as it would have; on such an error path
the schedule may be called once more for the failing count.

:func:`run_many` runs several rules in one pass (``lfbtheory.online.simulate_runs``); the kernel is
the same, :func:`run` being its one-run case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from lfbtheory._engine.jit import compiled
from lfbtheory._engine.topk import cols_top, row_theta, row_top, transpose_checked
from lfbtheory._engine.tuning import TUNING
from lfbtheory.online import updates
from lfbtheory.online.updates import BiasState, Rule, step_value
from lfbtheory.validation import MAGNITUDE_LIMIT

__all__: list[str] = []

CHUNK = 256  # batches per compiled call (schedule ahead, progress after)

SIGN, PROPORTIONAL, CENTERED_SIGN, CENTERED_PROPORTIONAL = 0, 1, 2, 3

_OK = 0  # _run_chunk's status; 1: a score outside the domain, 2: an overflowing update


def column_routing(k: int, e: int, n_runs: int) -> bool:
    """True when :func:`_run_chunk` routes column-wise: cols_top supports 1 <= k <= 4, and the
    shared transpose pays for itself up to the tuning's E for one run or for several."""
    knobs = TUNING.knobs
    limit = knobs.loop_columns_max_e_runs if n_runs >= 2 else knobs.loop_columns_max_e
    return 1 <= k <= 4 and e <= limit


def direction_code(rule: Rule) -> int | None:
    """The kernel's code for ``rule.direction`` when it IS one of the built-in direction
    objects of :mod:`lfbtheory.online.updates` (identity, never the rule's name), else None."""
    d = rule.direction
    for fn, code in (
        (updates._SIGN_DIRECTION, SIGN),
        (updates._PROPORTIONAL_DIRECTION, PROPORTIONAL),
        (updates._CENTERED_SIGN_DIRECTION, CENTERED_SIGN),
        (updates._CENTERED_PROPORTIONAL_DIRECTION, CENTERED_PROPORTIONAL),
    ):
        if d is fn:
            return code
    return None


@compiled
def _block_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """numpy's pairwise leaf, n <= 128: sequential below 8 entries, else eight interleaved
    accumulators combined ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    m = n - n % 8
    i = 8
    while i < m:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@compiled
def _pairwise_sum(a, lo, n):  # type: ignore[no-untyped-def]
    """sum(a[lo:lo + n]) in numpy's pairwise order, without numpy's leading 0 +: a block of
    n <= 128 is a leaf (:func:`_block_sum`), a longer range the sum of its two halves, the
    first n // 2 rounded down to a multiple of 8. The tree is walked with an explicit stack
    (numba's on-disk cache mishandles recursive functions); IEEE addition is commutative, so
    only the tree, not the order of visits, fixes the result."""
    if n <= 128:
        return _block_sum(a, lo, n)
    los = np.empty(192, dtype=np.int64)  # pending nodes; depth <= 64 for any int64 length
    ns = np.empty(192, dtype=np.int64)
    done = np.zeros(192, dtype=np.bool_)  # True: both children summed, combine them
    vals = np.empty(192)
    los[0] = lo
    ns[0] = n
    sp = 1
    vp = 0
    while sp > 0:
        sp -= 1
        lo_, n_ = los[sp], ns[sp]
        if n_ <= 128:
            vals[vp] = _block_sum(a, lo_, n_)
            vp += 1
        elif done[sp]:
            vp -= 1
            vals[vp - 1] = vals[vp - 1] + vals[vp]
        else:
            n2 = n_ // 2
            n2 -= n2 % 8
            done[sp] = True
            sp += 1
            los[sp], ns[sp], done[sp] = lo_ + n2, n_ - n2, False
            sp += 1
            los[sp], ns[sp], done[sp] = lo_, n2, False
            sp += 1
    return vals[0]


@compiled
def _numpy_sum(a):  # type: ignore[no-untyped-def]
    """float(a.sum()) of a contiguous float64 1-D array, bit for bit (0 + the pairwise sum)."""
    return 0.0 + _pairwise_sum(a, 0, a.shape[0])


@compiled
def _direction(c, code, d):  # type: ignore[no-untyped-def]
    """d = the built-in direction ``code`` of the float64 loads c (E,), as updates computes it:
    sign: np.sign(c.mean() - c); proportional: load_error(c); centred: d - d.mean()."""
    e = c.shape[0]
    mean = _numpy_sum(c) / e
    if code == 0 or code == 2:
        for j in range(e):
            x = mean - c[j]
            d[j] = 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)  # np.sign: +0 for +-0
    elif mean <= 0:
        for j in range(e):
            d[j] = 0.0
    else:
        for j in range(e):
            d[j] = (mean - c[j]) / mean
    if code >= 2:
        dm = _numpy_sum(d) / e
        for j in range(e):
            d[j] = d[j] - dm


@compiled
def _run_chunk(  # type: ignore[no-untyped-def]
    batches, t0, lim, k, cols, regs, codes, is_eval, u_app, stop, bias, pend,
    bias_out, loads_out, reward_out, done, status,
):  # fmt: skip
    """Route and update R runs over batches t0.. in ONE pass: batch t for runs 0..R-1, then
    t + 1 (why this beats R passes: :func:`run_many`). Run r (direction ``codes[r]``, step
    sizes ``u_app[r]``) does batches t0..stop[r]-1 until its first failure; on return
    done[r] = its first batch not done and status[r] = 0, or 1 (a score of batch done[r]
    outside |s| <= lim: every run still going at that batch stops there too) or 2 (run r's
    update of batch done[r] is not finite). Row r of ``bias`` (R, E), ``pend`` (R, E) int64
    and ``st`` (R, 3) (row_top's guess statistics, which never change results) is run r's
    state, advanced only by its completed batches; rows [r, t] of the outputs are written
    for them. R = 1 is :func:`simulate`'s own fused loop: there is no other copy of this
    arithmetic. ``cols`` (1 <= k <= 4 only): batch t is transposed and domain-checked once, then
    routed column-wise for each run (``kernels.cols_top``), which selects exactly what row_top
    does row by row."""
    n_runs = bias.shape[0]
    n = batches.shape[1]
    e = batches.shape[2]
    w = np.empty(e)
    r = np.empty(e)
    cand = np.empty(e + 1, dtype=np.int64)
    vals = np.empty(k)
    idx = np.empty(k, dtype=np.int64)
    picked = np.empty(n * k)
    sT = np.empty((e, n) if cols else (0, 0))
    cvals = np.empty((k, n) if cols else (0, 0))
    cidx = np.empty((k, n) if cols else (0, 0), dtype=np.int64)
    inside = True
    c = np.empty(e)
    d = np.empty(e)
    nb = np.empty(e)
    t1 = t0
    for q in range(n_runs):
        done[q] = t0
        status[q] = 0
        t1 = max(t1, stop[q])
    for t in range(t0, t1):
        if cols:
            going = False
            for q in range(n_runs):
                going |= done[q] == t and t < stop[q]
            if not going:
                break
            inside = transpose_checked(batches[t], lim, sT)  # one check for every run
        going = False
        for q in range(n_runs):
            if done[q] != t or t >= stop[q]:  # stopped: a failure, or its schedule's stop
                continue
            going = True
            bmax = bias[q, 0]
            for j in range(1, e):
                if bias[q, j] > bmax:
                    bmax = bias[q, j]
            for j in range(e):
                w[j] = bias[q, j] - bmax
                bias_out[q, t, j] = bias[q, j]
                loads_out[q, t, j] = 0
            if cols:
                if inside:
                    cols_top(sT, w, k, cvals, cidx)
                    # slot by slot along cidx's rows, the scores from the transposed copy: the
                    # same picked array, ~0.3 us a run less than row by row from batches
                    for m in range(k):
                        for i in range(n):
                            jj = cidx[m, i]
                            loads_out[q, t, jj] += 1
                            picked[i * k + m] = sT[jj, i]
            else:
                inside = True
                theta = row_theta(batches[t], w, 1, k, regs)
                for i in range(n):
                    for j in range(e):
                        x = batches[t, i, j]
                        inside &= abs(x) <= lim  # False for nan, inf and |s| > lim
                        r[j] = x + w[j]
                    if not inside:
                        break
                    row_top(r, k, vals, idx, cand, theta, regs)
                    for m in range(k):
                        loads_out[q, t, idx[m]] += 1
                        picked[i * k + m] = batches[t, i, idx[m]]
            if not inside:
                status[q] = 1
                continue
            reward_out[q, t] = _numpy_sum(picked)
            if not is_eval[t]:
                for j in range(e):
                    c[j] = np.float64(pend[q, j] + loads_out[q, t, j])
                _direction(c, codes[q], d)
                u = u_app[q, t]
                finite = True
                for j in range(e):
                    nb[j] = bias[q, j] + u * d[j]
                    finite &= np.isfinite(nb[j])
                if not finite:
                    status[q] = 2
                    continue
                for j in range(e):
                    bias[q, j] = nb[j]
                    pend[q, j] = 0
            done[q] = t + 1
        if not going:
            break


class Prefix(NamedTuple):
    """What the fused path completed: the Trajectory fields of batches [0, stop) and the
    RouterState parts (rule state, pending counts) reached after them."""

    stop: int
    bias: NDArray[np.float64]
    loads: NDArray[np.int64]
    reward: NDArray[np.float64]
    step: NDArray[np.float64]
    is_eval: NDArray[np.bool_]
    rule_state: Any
    pending: NDArray[np.int64]


def eligible(batches: NDArray[np.float64], rule: Rule, rule_state: Any, frozen: bool) -> bool:
    """True when :func:`run` computes exactly what the Python loop would for this input (the
    caller also checks: a (T, n, E) float64 array, not adaptive, one micro-batch, plain
    top-k): a ``Rule`` itself (a subclass could override ``advance``), additive, a built-in
    direction, an unfrozen BiasState with a float64 ndarray bias, at least one batch."""
    b = rule_state.bias
    return (
        type(rule) is Rule
        and rule.bias_mode == "additive"
        and direction_code(rule) is not None
        and type(rule_state) is BiasState
        and not frozen
        and isinstance(b, np.ndarray)
        and b.dtype == np.float64
        and batches.dtype.isnative
        and batches.shape[0] >= 1
    )


def step_sizes(
    rule: Rule, count: Any, is_eval: NDArray[np.bool_], t0: int, t1: int
) -> tuple[NDArray[np.float64], int]:
    """(u, stop) for batches t0..t1-1 from update ``count`` on: per non-eval batch
    ``step_value(rule.step(count), count)`` (recorded and applied, as the Python loop does),
    count += 1; NaN for eval batches. ``stop`` < t1: the first batch whose call raised."""
    u = np.full(t1 - t0, np.nan)
    for t in range(t0, t1):
        if is_eval[t]:
            continue
        try:
            u[t - t0] = step_value(rule.step(count), count)
        except Exception:  # the Python loop re-raises it from this batch on
            return u, t
        count = count + 1
    return u, t1


def run(
    batches: NDArray[np.float64],
    k: int,
    rule: Rule,
    rule_state: BiasState,
    pending: NDArray[np.int64],
    eval_set: set[int],
    progress: Callable[[int], None] | None,
) -> Prefix:
    """Run the loop compiled over ``batches`` (T, n, E) from ``rule_state`` and ``pending``
    (int64, the counts carried into the first update) until the end or the first batch it
    cannot do exactly (see the module docstring); ``progress(t)`` for every batch done.
    The one-run case of :func:`run_many`."""
    return run_many(batches, k, [rule], [rule_state], [pending], eval_set, progress)[0]


def run_many(
    batches: NDArray[np.float64],
    k: int,
    rules: Sequence[Rule],
    rule_states: Sequence[BiasState],
    pendings: Sequence[NDArray[np.int64]],
    eval_set: set[int],
    progress: Callable[[int], None] | None,
) -> list[Prefix]:
    """:func:`run` for R rules (each with its own state and pending counts) in ONE pass over
    ``batches``: each chunk's schedules are called rule by rule, then :func:`_run_chunk`
    routes batch t for every run before batch t + 1. A run that stops (module docstring)
    leaves the others going; each Prefix is what :func:`run` alone returns for its rule.
    After each chunk, ``progress(i)`` is called for every batch t of it that some run
    completed, i = batches completed over all runs (those of batches <= t in this chunk
    included).

    Why one pass is faster: column-wise routing transposes and checks each batch once for
    all runs (while it is in cache); row by row, routing was bound by mispredicted branches
    (measured, 256 x 16, k = 2: ~13 us a batch on fresh data, ~2 us on a 65 MB stream of 8
    batches repeated, so not by memory), and runs whose biases are close take nearly the same
    branches on the same batch, which the predictor replays when the runs follow one another
    on it. Hence every run goes through the same code (a check skipped for later runs was
    slower)."""
    n_batches, _, e = batches.shape
    n_runs = len(rules)
    codes = np.empty(n_runs, dtype=np.int64)
    for q, rule in enumerate(rules):
        code = direction_code(rule)
        assert code is not None
        codes[q] = code
    is_eval = np.zeros(n_batches, dtype=bool)
    for t in eval_set:
        if t < n_batches:
            is_eval[t] = True
    bias = np.empty((n_runs, e))  # private copies the kernel advances
    pend = np.empty((n_runs, e), dtype=np.int64)
    for q in range(n_runs):
        bias[q] = rule_states[q].bias
        pend[q] = pendings[q]
    bias_out = np.empty((n_runs, n_batches, e))
    loads_out = np.empty((n_runs, n_batches, e), dtype=np.int64)
    reward_out = np.empty((n_runs, n_batches))
    step_out = np.full((n_runs, n_batches), np.nan)
    counts = [s.count for s in rule_states]
    updated = [False] * n_runs
    ends = [n_batches] * n_runs  # a run's first batch not done, once it has stopped
    going = [True] * n_runs
    stop = np.empty(n_runs, dtype=np.int64)
    cols = column_routing(k, e, n_runs)
    done = np.empty(n_runs, dtype=np.int64)
    status = np.empty(n_runs, dtype=np.int64)
    total = 0
    t = 0
    while t < n_batches and any(going):
        t1 = min(t + CHUNK, n_batches)
        for q in range(n_runs):
            stop[q] = t
            if going[q]:
                u, stop[q] = step_sizes(rules[q], counts[q], is_eval, t, t1)
                step_out[q, t:t1] = u
        _run_chunk(
            batches, t, MAGNITUDE_LIMIT, k, cols, e <= TUNING.knobs.row_registers_max_e, codes,
            is_eval, step_out, stop, bias, pend, bias_out, loads_out, reward_out, done, status,
        )  # fmt: skip
        for q in range(n_runs):
            if not going[q]:
                continue
            n_updates = int(done[q]) - t - int(np.count_nonzero(is_eval[t : done[q]]))
            if n_updates > 0:  # count + n == n times count + 1, for int and np.integer counts
                counts[q] = counts[q] + n_updates
                updated[q] = True
            if status[q] != _OK or done[q] < t1:
                going[q] = False
                ends[q] = int(done[q])
        if progress is not None:
            finished = np.sort(done)  # runs stopped before this chunk have done = t
            i = 0
            for b in range(t, int(finished[-1])):
                while finished[i] <= b:
                    i += 1
                total += n_runs - i  # the runs that completed batch b
                progress(total)
        t = t1
    out = []
    for q in range(n_runs):
        end = ends[q]
        upd = updated[q]  # else the Python loop's state objects are returned unchanged
        out.append(
            Prefix(
                end,
                bias_out[q, :end],
                loads_out[q, :end],
                reward_out[q, :end],
                step_out[q, :end],
                is_eval[:end],
                rule_states[q]._replace(bias=bias[q].copy(), count=counts[q])
                if upd
                else rule_states[q],
                pend[q].copy() if upd else pendings[q],
            )
        )
    return out
