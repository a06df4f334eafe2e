"""The online loop compiled: every bias-update rule over a (T, n, E) stream in one pass.

The caller (:func:`lfbtheory.simulate`) hands each rule over as data (:class:`Specs`: its
signal, centring, momentum, AdaGrad and bias mode, the fields of
:class:`lfbtheory.online.updates.Rule`) with its state as arrays (:class:`States`), and this
loop interprets them with the reference loop's arithmetic, so both paths agree bit for bit:

- routing: the top-k of the selection scores s + (b - max b), or s * b (desc, ties: lower
  index), by :func:`lfbtheory._engine.topk.row_top` row by row, or for additive rules with
  k <= 4 (:func:`column_routing`) by :func:`~lfbtheory._engine.topk.cols_top` on the batch
  transposed once for all runs (the same experts from the same float sums); the domain check
  |s| <= ``MAGNITUDE_LIMIT`` (False for nan and inf) is made during the row pass or the
  transpose;
- sums and exponentials: :mod:`lfbtheory._engine.arith` (the reward is the sum of the (n, k)
  selected unbiased scores in token-major order, c_bar and mean(d) the sums over experts / E);
- directions: sign(c_bar - c) (+0 for zeros) or (c_bar - c) / c_bar (zeros when c_bar <= 0),
  then momentum m = beta m + (1 - beta) g or AdaGrad g / (sqrt(G) + eps), then centring
  d - mean(d); then b + u d or b * exp(u d) (numba contracts no mul+add into an FMA without
  fastmath). One update per ``micro_batches`` training elements; evaluation elements are
  routed and recorded and change nothing.

Step sizes are user code and stay in Python: :func:`run` calls each rule's schedule for a
chunk of ``CHUNK`` elements ahead of routing it (once per update, with its count, as the
reference loop does) and ``progress`` after it. Whatever this loop cannot finish exactly -- a
schedule that raises or returns a bad value, a score outside the numeric domain, an update
that overflows -- stops that run before the element, with its state as it was; the caller
hands the rest of the stream to the reference loop, which then raises (or not) exactly as it
would have.

Several rules share one pass (:func:`run`): batch t is routed for every run before batch
t + 1, so a column-routed batch is transposed and checked once for all of them, while it is
in cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from lfbtheory._engine.arith import exp_into, lanes
from lfbtheory._engine.jit import compiled, inline_compiled
from lfbtheory._engine.topk import cols_top, row_theta, row_top, transpose_checked
from lfbtheory._engine.tuning import TUNING, Knobs
from lfbtheory.validation import MAGNITUDE_LIMIT

__all__ = ["CHUNK", "Specs", "States", "Prefix", "column_routing", "run"]

CHUNK = 256  # elements per compiled call (schedules ahead, progress after)

_OK = 0  # a run's status; 1: a score outside the domain, 2: an overflowing update


class Specs(NamedTuple):
    """The R rules as arrays: signal (0 sign, 1 proportional), centered, memory (0 none,
    1 momentum with ``beta``, 2 AdaGrad with ``eps``), mult (multiplicative bias mode)."""

    signal: NDArray[np.int64]
    centered: NDArray[np.bool_]
    memory: NDArray[np.int64]
    beta: NDArray[np.float64]
    eps: NDArray[np.float64]
    mult: NDArray[np.bool_]


class States(NamedTuple):
    """The R runs' states, advanced in place by completed elements only: bias (R, E), buffer
    (R, E) (momentum's velocity or AdaGrad's sum of squares; zeros otherwise), pending
    counts (R, E) int64 and pending micro-batches (R,) int64."""

    bias: NDArray[np.float64]
    buffer: NDArray[np.float64]
    pending: NDArray[np.int64]
    n_pending: NDArray[np.int64]


class Outputs(NamedTuple):
    """Per run and element: the bias that routed it (R, T, E), its loads (R, T, E) and its
    reward (R, T)."""

    bias: NDArray[np.float64]
    loads: NDArray[np.int64]
    reward: NDArray[np.float64]


class Prefix(NamedTuple):
    """What the loop completed for one run: elements [0, stop) (bias, loads, reward, step) and
    the state reached after them (bias, buffer, pending counts, pending micro-batches, the
    number of updates applied)."""

    stop: int
    bias: NDArray[np.float64]
    loads: NDArray[np.int64]
    reward: NDArray[np.float64]
    step: NDArray[np.float64]
    state_bias: NDArray[np.float64]
    state_buffer: NDArray[np.float64]
    pending: NDArray[np.int64]
    n_pending: int
    updates: int


def column_routing(k: int, e: int, n_runs: int, knobs: Knobs = TUNING.knobs) -> bool:
    """True when additive runs are routed column-wise: cols_top supports 1 <= k <= 4, and the
    shared transpose pays for itself up to the tuning's E for one run or for several."""
    limit = knobs.loop_columns_max_e_runs if n_runs >= 2 else knobs.loop_columns_max_e
    return 1 <= k <= 4 and e <= limit


@inline_compiled
def _direction(c, specs, q, buf_in, buf_out, d):  # type: ignore[no-untyped-def]
    """d = the direction of run q's rule for float64 loads c (module docstring); buf_out =
    its advanced buffer (buf_in untouched, so a failed update leaves the state as it was)."""
    e = c.shape[0]
    mean = lanes(c, 0, e) / e
    if specs.signal[q] == 0:
        for j in range(e):
            x = mean - c[j]
            d[j] = 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)  # np.sign: +0 for +-0
    elif mean <= 0:
        for j in range(e):
            d[j] = 0.0
    else:
        for j in range(e):
            d[j] = (mean - c[j]) / mean
    beta = specs.beta[q]
    eps = specs.eps[q]
    if specs.memory[q] == 1:
        one = 1.0 - beta
        for j in range(e):
            d[j] = beta * buf_in[j] + one * d[j]
            buf_out[j] = d[j]
    elif specs.memory[q] == 2:
        for j in range(e):
            g = d[j]
            acc = buf_in[j] + g * g
            buf_out[j] = acc
            d[j] = g / (math.sqrt(acc) + eps)
    else:
        for j in range(e):
            buf_out[j] = buf_in[j]
    if specs.centered[q]:
        dm = lanes(d, 0, e) / e
        for j in range(e):
            d[j] = d[j] - dm


@compiled
def _run_chunk(
    batches, t0, lim, k, cols, regs, micro, specs, st, is_eval, u_app, stop, out, done, status
):  # type: ignore[no-untyped-def]  # noqa: E501
    """Route and update R runs over elements t0.. in ONE pass: element t for runs 0..R-1,
    then t + 1. Run q does elements t0..stop[q]-1 until its first failure; on return
    done[q] = its first element not done and status[q] = 0, 1 (a score of element done[q]
    outside |s| <= lim) or 2 (run q's update after element done[q] is not finite). ``cols``:
    additive runs are routed column-wise (k <= 4); ``regs``: row_top's register path;
    ``micro``: elements per optimizer step; u_app[q, t]: the step of the update that follows
    element t (NaN: none)."""
    n_runs = st.bias.shape[0]
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
    c = np.empty(e)
    d = np.empty(e)
    du = np.empty(e)
    nb = np.empty(e)
    nbuf = np.empty(e)
    factor = np.empty(e)
    # Each run's threshold guess for row_top (speed only, never the result): the mean minus two
    # standard deviations of the k-th selection values of its previous element, which the
    # slowly moving bias keeps close to this element's; the first element samples its own.
    guess = np.full(n_runs, np.nan)
    t1 = t0
    for q in range(n_runs):
        done[q] = t0
        status[q] = 0
        t1 = max(t1, stop[q])
    for t in range(t0, t1):
        transposed = False
        inside_t = True
        going = False
        for q in range(n_runs):
            if done[q] != t or t >= stop[q]:  # stopped: a failure, or its schedule's stop
                continue
            going = True
            mult = specs.mult[q]
            if mult:
                for j in range(e):
                    w[j] = st.bias[q, j]
            else:
                bmax = st.bias[q, 0]
                for j in range(1, e):
                    if st.bias[q, j] > bmax:
                        bmax = st.bias[q, j]
                for j in range(e):
                    w[j] = st.bias[q, j] - bmax
            for j in range(e):
                out.bias[q, t, j] = st.bias[q, j]
                out.loads[q, t, j] = 0
            if cols and not mult:
                if not transposed:  # one transpose and check for every run of element t
                    inside_t = transpose_checked(batches[t], lim, sT)
                    transposed = True
                inside = inside_t
                if inside:
                    cols_top(sT, w, k, cvals, cidx)
                    for m in range(k):
                        for i in range(n):
                            jj = cidx[m, i]
                            out.loads[q, t, jj] += 1
                            picked[i * k + m] = sT[jj, i]
            else:
                inside = True
                if np.isfinite(guess[q]):
                    theta = guess[q]
                else:
                    theta = row_theta(batches[t], w, 2 if mult else 1, k, regs)
                acc = 0.0
                acc2 = 0.0
                for i in range(n):
                    for j in range(e):
                        x = batches[t, i, j]
                        inside &= abs(x) <= lim  # False for nan, inf and |s| > lim
                        r[j] = x * w[j] if mult else x + w[j]
                    if not inside:
                        break
                    row_top(r, k, vals, idx, cand, theta, regs)
                    v = vals[k - 1]
                    acc += v
                    acc2 += v * v
                    for m in range(k):
                        out.loads[q, t, idx[m]] += 1
                        picked[i * k + m] = batches[t, i, idx[m]]
                if inside and k > 1 and not (regs and k <= 4):
                    mean = acc / n
                    guess[q] = mean - 2.0 * math.sqrt(max(acc2 / n - mean * mean, 0.0))
            if not inside:
                status[q] = 1
                continue
            out.reward[q, t] = lanes(picked, 0, n * k)
            if not is_eval[t]:
                if st.n_pending[q] + 1 >= micro:
                    for j in range(e):
                        c[j] = np.float64(st.pending[q, j] + out.loads[q, t, j])
                    _direction(c, specs, q, st.buffer[q], nbuf, d)
                    u = u_app[q, t]
                    finite = True
                    if mult:
                        for j in range(e):
                            du[j] = u * d[j]
                        exp_into(du, factor)
                        for j in range(e):
                            nb[j] = st.bias[q, j] * factor[j]
                            finite &= np.isfinite(nb[j])
                    else:
                        for j in range(e):
                            nb[j] = st.bias[q, j] + u * d[j]
                            finite &= np.isfinite(nb[j])
                    if not finite:
                        status[q] = 2
                        continue
                    for j in range(e):
                        st.bias[q, j] = nb[j]
                        st.buffer[q, j] = nbuf[j]
                        st.pending[q, j] = 0
                    st.n_pending[q] = 0
                else:
                    for j in range(e):
                        st.pending[q, j] += out.loads[q, t, j]
                    st.n_pending[q] += 1
            done[q] = t + 1
        if not going:
            break


def _step_sizes(
    step: Callable[[int], float],
    check: Callable[[object, int], float],
    count: int,
    n_pending: int,
    micro: int,
    is_eval: NDArray[np.bool_],
    t0: int,
    t1: int,
) -> tuple[NDArray[np.float64], int, int]:
    """(u, stop, count after) for elements t0..t1-1: for each element an update follows
    (training, completing a step of ``micro`` elements) ``check(step(count), count)``, count
    += 1; NaN for the others. ``stop`` < t1: the first element whose call raised."""
    u = np.full(t1 - t0, np.nan)
    for t in range(t0, t1):
        if is_eval[t]:
            continue
        n_pending += 1
        if n_pending < micro:
            continue
        n_pending = 0
        try:
            u[t - t0] = check(step(count), count)
        except Exception:  # the reference loop raises it again from this element on
            return u, t, count
        count = count + 1
    return u, t1, count


def run(
    batches: NDArray[np.float64],
    k: int,
    specs: Specs,
    states: States,
    counts: Sequence[int],
    steps: Sequence[Callable[[int], float]],
    check: Callable[[object, int], float],
    micro: int,
    is_eval: NDArray[np.bool_],
    progress: Callable[[int], None] | None = None,
    *,
    path: str | None = None,
) -> list[Prefix]:
    """Run R rules over ``batches`` (T, n, E) from ``states`` (copied, not changed) and their
    update ``counts``, each until the end or its first element it cannot do exactly (module
    docstring). ``steps[q]`` is run q's schedule, ``check(u, t)`` validates a step as the
    reference loop does; ``progress(i)`` after each chunk for every element some run completed
    (i = elements completed over all runs). ``path``: "rows" or "columns" to force the
    routing of additive runs (:mod:`lfbtheory._engine`)."""
    from lfbtheory._engine import knobs_for

    knobs = knobs_for(path)
    n_batches, _, e = batches.shape
    n_runs = specs.signal.shape[0]
    st = States._make(np.array(a) for a in states)  # private copies the kernel advances
    out = Outputs(
        np.empty((n_runs, n_batches, e)),
        np.empty((n_runs, n_batches, e), dtype=np.int64),
        np.empty((n_runs, n_batches)),
    )
    step_out = np.full((n_runs, n_batches), np.nan)
    counts = list(counts)
    ends = [n_batches] * n_runs
    going = [True] * n_runs
    stop = np.empty(n_runs, dtype=np.int64)
    cols = column_routing(k, e, n_runs, knobs)
    regs = e <= knobs.row_registers_max_e
    done = np.empty(n_runs, dtype=np.int64)
    status = np.empty(n_runs, dtype=np.int64)
    pend_at = [int(v) for v in st.n_pending]
    total = 0
    t = 0
    while t < n_batches and any(going):
        t1 = min(t + CHUNK, n_batches)
        planned = list(counts)
        for q in range(n_runs):
            stop[q] = t
            if going[q]:
                u, stop[q], planned[q] = _step_sizes(
                    steps[q], check, counts[q], pend_at[q], micro, is_eval, t, t1
                )
                step_out[q, t:t1] = u
        _run_chunk(
            batches, t, MAGNITUDE_LIMIT, k, cols, regs, micro, specs, st, is_eval, step_out,
            stop, out, done, status,
        )  # fmt: skip
        for q in range(n_runs):
            if not going[q]:
                continue
            reached = int(done[q])
            counts[q] += int(np.count_nonzero(~np.isnan(step_out[q, t:reached])))
            if status[q] == 2:  # the update of element `reached` failed: not applied
                step_out[q, reached] = np.nan
            pend_at[q] = int(st.n_pending[q])
            if status[q] != _OK or reached < t1:
                going[q] = False
                ends[q] = reached
        if progress is not None:
            finished = np.sort(done)  # runs stopped before this chunk have done = t
            i = 0
            for b in range(t, int(finished[-1])):
                while finished[i] <= b:
                    i += 1
                total += n_runs - i  # the runs that completed element b
                progress(total)
        t = t1
    return [
        Prefix(
            ends[q],
            out.bias[q, : ends[q]],
            out.loads[q, : ends[q]],
            out.reward[q, : ends[q]],
            step_out[q, : ends[q]],
            st.bias[q].copy(),
            st.buffer[q].copy(),
            st.pending[q].copy(),
            int(st.n_pending[q]),
            counts[q],
        )
        for q in range(n_runs)
    ]
