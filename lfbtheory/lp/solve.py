"""The front door: :func:`solve_balanced`, one call for every exact method, certified returns.

Every method's answer is checked with the project's own certificate
(:func:`lfbtheory.lp.certify`: feasibility, complementary slackness and the duality gap, at the
relative tolerance :data:`lfbtheory.lp.model.RTOL`) before it is returned; a failed check raises
:class:`CertificationError` with the measured gap instead of returning a wrong "optimal".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal, NamedTuple, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory import _engine
from lfbtheory._engine.tuning import TUNING
from lfbtheory.lp.certificate import GrowingVerdicts, optimal_prices, stream_verdicts, verdict
from lfbtheory.lp.model import (
    METHODS,
    RTOL,
    BalancedAssignment,
    Certificate,
    CertificationError,
    Method,
    absmax,
    lp_bias,
    lp_scores,
    resolve_capacity,
)
from lfbtheory.routing import selection_offsets
from lfbtheory.validation import MAGNITUDE_LIMIT, as_k, as_score_array, choice

__all__ = ["solve_balanced", "solve_prefixes", "solve_stream"]

REUSE_WINDOW = 64  # distinct recent batches whose results solve_stream reuses for repeats
_SSP_RANGE = 64  # "ssp" works on the scores as given when 2^-64 <= max|s| < 2^64


def solve_balanced(
    scores: ArrayLike,
    k: int,
    *,
    capacity: int | None = None,
    method: Method = "auto",
    warm_start: ArrayLike | None = None,
    _path: str | None = None,
) -> BalancedAssignment:
    """Solve the balanced assignment LP of one batch exactly and return it with its prices.

    max sum s.x  s.t. k experts per token, load L per expert (``capacity=None``: L = n k / E;
    an integer capacity with E L > n k gives "<=" rows and prices p <= 0), 0 <= x <= 1
    (arXiv 2408.15664 Sec. 3 as an LP; BASE layers, arXiv 2103.16716). ``method``:

    - ``"auto"``: the default, the same as ``"ssp"``;
    - ``"ssp"``: successive shortest paths on the E-node expert exchange graph, numba-compiled
      (:mod:`lfbtheory._engine.ssp`); the only method that uses ``warm_start``;
    - ``"flow"``: OR-tools min-cost flow on the full bipartite graph (extra ``flow``), prices
      from :func:`lfbtheory.lp.optimal_prices`;
    - ``"linprog"``: scipy's HiGHS dual simplex on the LP, prices from its duals;
    - ``"cvxpy"``: the named reference oracle the tests compare against -- the LP written in
      cvxpy, HiGHS inside at its tightest tolerances (1e-10).

    ``warm_start``: prices (E,) from a previous batch. Prices are defined up to a constant, so
    they are re-centred (median 0; max 0 in the "<=" case) and clipped to [-R, R] with R the
    range max s - min s of the scores before use; only the time changes, not the optimum.
    The scores are rescaled by a power of two internally (the numeric domain in
    :mod:`lfbtheory.lp.model`); results are in the original units. Raises ValueError/TypeError
    for bad input (naming the argument), CertificationError if a method's answer fails
    :func:`lfbtheory.lp.certify`. ``_path`` is internal: it forces one compiled path of
    "ssp" (:mod:`lfbtheory._engine`), which the tests use to check that all paths agree.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> s = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, 0.2], [0.95, 0.3, 0.4]])
    >>> r = lfb.solve_balanced(s, k=1)  # L = n k / E = 1 token per expert
    >>> r.experts.ravel().tolist(), r.loads.tolist(), round(r.objective, 6), r.certificate.ok
    ([1, 2, 0], [1, 1, 1], 1.95, True)
    >>> lfb.route(s, 1, r.bias).loads.tolist()  # the optimal price balances only up to ties
    [1, 2, 0]
    """
    s = lp_scores(scores)
    n, e = s.shape
    k = as_k(k, e)
    cap, equality = resolve_capacity(n, k, e, capacity)
    choice(method, "method", METHODS)
    start = None if warm_start is None else lp_bias(warm_start, e, "warm_start")
    return _solve_valid(s, k, cap, equality, method, start, _path)


@overload
def solve_stream(
    batches: Iterable[ArrayLike],
    k: int,
    *,
    method: Method = ...,
    warm_start: ArrayLike | None = ...,
    output: Literal["assignments"] = ...,
    progress: Callable[[int], None] | None = ...,
) -> Iterator[BalancedAssignment]: ...


@overload
def solve_stream(
    batches: Iterable[ArrayLike],
    k: int,
    *,
    method: Method = ...,
    warm_start: ArrayLike | None = ...,
    output: Literal["optima"],
    progress: Callable[[int], None] | None = ...,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...


def solve_stream(
    batches: Iterable[ArrayLike],
    k: int,
    *,
    method: Method = "auto",
    warm_start: ArrayLike | None = None,
    output: str = "assignments",
    progress: Callable[[int], None] | None = None,
) -> Iterator[BalancedAssignment] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`solve_balanced` of each batch of a stream (L = n k / E per batch), each
    warm-started from the previous batch's prices (the first from ``warm_start``).

    ``output="assignments"``: an iterator over exactly what the calls ``solve_balanced(b_t, k,
    method=method, warm_start=previous.bias)`` return, each certified -- except that a batch
    bit-identical to one of the last ``REUSE_WINDOW`` distinct batches yields that batch's
    result again (the same LP, so the same certified optimum; replayed traces cycle through a
    few batches). ``output="optima"``: the arrays (OPT_t (T,), optimal prices (T, E)) of those
    results, each certified, without building the assignments (what regret comparators need;
    a (T, n, E) float64 stream runs in one compiled loop). A (T, n, E) float64 array is
    checked once as a whole instead of batch by batch. Bad input raises naming
    ``batches[t]``. ``progress(t)``: batches done (``output="optima"``).

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> stream = np.random.default_rng(0).normal(size=(4, 32, 8))
    >>> opts, prices = lfb.lp.solve_stream(stream, 2, output="optima")
    >>> [round(float(v), 6) for v in opts] == [
    ...     round(sol.objective, 6) for sol in lfb.lp.solve_stream(stream, 2)]
    True
    """
    choice(output, "output", ("assignments", "optima"))
    choice(method, "method", METHODS)
    if output == "optima":
        return _stream_optima(batches, k, method, warm_start, progress)
    return _stream_assignments(batches, k, method, warm_start)


def _stream_assignments(batches, k, method, warm_start):  # type: ignore[no-untyped-def]
    """:func:`solve_stream`'s iterator of certified results."""
    stacked = (
        isinstance(batches, np.ndarray)
        and batches.ndim == 3
        and batches.dtype == np.float64
        and batches.size > 0
    )
    if stacked:  # one max and one min for the whole stream (else checked batch by batch)
        hi, lo = float(batches.max()), float(batches.min())  # type: ignore[union-attr]
        stacked = bool(np.isfinite(hi) and np.isfinite(lo) and max(hi, -lo) <= MAGNITUDE_LIMIT)
    prev = None
    recent: dict[bytes, list[tuple[NDArray[np.float64], BalancedAssignment]]] = {}
    for t, b in enumerate(batches):
        s = b if stacked else lp_scores(b, f"batches[{t}]")
        key = _batch_key(s)  # a hit is confirmed on the whole array
        hit = next((sol for old, sol in recent.get(key, ()) if np.array_equal(old, s)), None)
        if hit is not None:
            prev = hit.bias
            yield hit
            continue
        n, e = s.shape
        kk = as_k(k, e)
        cap, equality = resolve_capacity(n, kk, e, None)
        if prev is None:
            start = None if warm_start is None else lp_bias(warm_start, e, "warm_start")
        else:
            start = prev if prev.shape == (e,) else None
            if start is None:
                raise ValueError(f"batches[{t}] has E={e} experts, batches[0] has {prev.shape[0]}")
        sol = _solve_valid(s, kk, cap, equality, method, start)
        prev = sol.bias
        recent.setdefault(key, []).append((s, sol))
        if sum(map(len, recent.values())) > REUSE_WINDOW:  # forget the oldest distinct batch
            oldest = next(iter(recent))
            recent[oldest].pop(0)
            if not recent[oldest]:
                del recent[oldest]
        yield sol


def _stream_optima(batches, k, method, warm_start, progress, chunk=64):  # type: ignore[no-untyped-def]
    """(OPT_t (T,), optimal prices (T, E)) of every batch of a stream: exactly the
    ``(objective, bias)`` of each result of :func:`solve_stream`, each certified, without
    building the per-batch assignments. A (T, n, E) float64 stream in the equality case with
    L up to the tuning's dense_repair_max_cap and no repeated batch runs in one compiled loop
    (:func:`lfbtheory._engine.ssp.dense_stream`, ``chunk`` batches per call, each certified
    by :func:`lfbtheory.lp.certificate.stream_verdicts`); anything else goes through
    :func:`solve_stream`'s iterator."""
    from lfbtheory._engine import ssp

    arr = batches if isinstance(batches, np.ndarray) else None
    fast = (
        arr is not None
        and arr.ndim == 3
        and arr.dtype == np.float64
        and arr.shape[0] > 1
        and arr.shape[1] > 0
        and method in ("auto", "ssp")
    )
    if fast:
        assert arr is not None
        t_len, n, e = arr.shape
        kk = as_k(k, e)
        cap, equality = resolve_capacity(n, kk, e, None)
        distinct = len({_batch_key(s) for s in arr}) == t_len  # repeats: solve_stream reuses
        fast = equality and cap <= TUNING.knobs.dense_repair_max_cap and distinct
    if not fast:
        opts, prices = [], []
        for sol in _stream_assignments(batches, k, method, warm_start):
            opts.append(sol.objective)
            prices.append(sol.bias)
            if progress is not None:
                progress(len(opts))
        if not opts:
            raise ValueError("batches must hold at least one (n, E) array")
        return np.array(opts, dtype=np.float64), np.array(prices)
    arr = np.ascontiguousarray(arr)
    biases = np.empty((t_len, e))
    lists = np.empty((chunk, n, kk), dtype=np.int32)
    opts = np.empty(t_len)
    grid = np.ascontiguousarray(ssp._H_GRID)
    t = 0
    while t < t_len:
        end = min(t + chunk, t_len)
        stop = t  # batch 0 (a cold start) goes the slow way below
        if t > 0:
            stop = ssp.dense_stream(
                arr, kk, cap, biases[t - 1], t, end, grid, biases, lists, TUNING.knobs
            )
        # the compiled loop's answers, each certified (lp.certificate, independent of it)
        ok, objective = stream_verdicts(arr[t:stop], lists[: stop - t], biases[t:stop], kk, cap)
        if not ok.all():  # never expected: solve the first failure the slow way (which raises)
            stop = t + int(np.argmin(ok))
        opts[t:stop] = objective[: stop - t]
        if progress is not None:
            for u in range(t, stop):
                progress(u + 1)
        if stop < end:  # handed back (or batch 0): solve_stream's path, which raises on failure
            start = biases[stop - 1] if stop > 0 else _start_of(warm_start, e)
            s = lp_scores(arr[stop], f"batches[{stop}]")  # dense_stream hands back nan/inf too
            sol = _solve_valid(s, kk, cap, True, method, start)
            opts[stop], biases[stop] = sol.objective, sol.bias
            if progress is not None:
                progress(stop + 1)
            stop += 1
        t = stop
    return opts, biases


def _start_of(warm_start: ArrayLike | None, e: int) -> NDArray[np.float64] | None:
    return None if warm_start is None else lp_bias(warm_start, e, "warm_start")


def _batch_key(s: NDArray[np.float64]) -> bytes:
    """A cheap key of a batch (shape, first and last row) for spotting repeated batches."""
    return repr(s.shape).encode() + s[0].tobytes() + s[-1].tobytes()


@overload
def solve_prefixes(
    batches: ArrayLike,
    k: int,
    lengths: ArrayLike,
    *,
    method: Method = ...,
    output: Literal["assignments"] = ...,
) -> Iterator[BalancedAssignment]: ...


@overload
def solve_prefixes(
    batches: ArrayLike,
    k: int,
    lengths: ArrayLike,
    *,
    method: Method = ...,
    output: Literal["optima"],
) -> Iterator[tuple[float, NDArray[np.float64]]]: ...


def solve_prefixes(
    batches: ArrayLike,
    k: int,
    lengths: ArrayLike,
    *,
    method: Method = "auto",
    output: str = "assignments",
) -> Iterator[BalancedAssignment] | Iterator[tuple[float, NDArray[np.float64]]]:
    """:func:`solve_balanced` of the pooled prefix ``batches[:t]`` (all its tokens as one batch,
    L = t n k / E) for each t of the increasing ``lengths``, each warm-started from the
    previous prefix's prices: the hindsight optima min_p sum_{s<=t} D_s(p) of a stream
    (arXiv 2408.15664 Sec. 3 as an LP, pooled). ``batches``: a (T, n, E) array, checked once
    and pooled by a reshape (no copy). Each yield is certified, with the optimum of
    ``solve_balanced(batches[:t].reshape(-1, E), k, method=method)``.

    With ``method`` "auto"/"ssp" the prefixes are solved incrementally
    (:func:`lfbtheory._engine.ssp.ssp_prefixes`: each prefix's optimal assignment is the start of
    the next, only the new tokens are routed), so the work grows with the new tokens and the
    band of contested ones rather than with the prefix; the optimal value is the same, the
    optimal price returned may be another point of the optimal set (prices are not unique).
    ``output="optima"`` yields (optimum, optimal price) of each prefix instead, without
    keeping the assignments (what regret comparators need).
    """
    choice(output, "output", ("assignments", "optima"))
    if output == "optima":
        return _prefix_optima(batches, k, lengths, method)
    return _prefix_assignments(batches, k, lengths, method)


def _prefix_assignments(batches, k, lengths, method):  # type: ignore[no-untyped-def]
    for item in _prefixes(batches, k, lengths, method):
        if isinstance(item, BalancedAssignment):
            yield item
            continue
        from lfbtheory._engine.ssp import _experts_ranked

        experts = _experts_ranked(item.tokens, item.asg, item.bias - item.bias.max())
        cap = int(item.loads[0])  # every load is L in the equality case the chain solves
        x = np.zeros(item.tokens.shape, dtype=np.int8)  # the certified lists, as a 0/1 matrix
        np.put_along_axis(x, experts, 1, axis=1)
        yield _assignment(x, experts, item.bias, item.loads, cap, "ssp", item.cert)


def _prefix_optima(batches, k, lengths, method):  # type: ignore[no-untyped-def]
    """(optimum, optimal price) of each pooled prefix, as :func:`solve_prefixes` finds and
    certifies them, without keeping the assignments."""
    for item in _prefixes(batches, k, lengths, method):
        if isinstance(item, BalancedAssignment):
            yield item.objective, item.bias
        else:
            yield item.cert.primal_objective, item.bias


class _PrefixView(NamedTuple):
    """A certified pooled prefix from the incremental chain; asg (each token's experts, the
    lists the certificate checked) is a view of a buffer the next prefix overwrites (use it
    before advancing)."""

    tokens: NDArray[np.float64]
    asg: NDArray[np.int32]
    bias: NDArray[np.float64]
    loads: NDArray[np.int64]
    cert: Certificate


def _prefixes(batches, k, lengths, method):  # type: ignore[no-untyped-def]
    """The checked pooled prefixes, each certified: a :class:`_PrefixView` from the incremental
    chain, else (after a failed certificate, or for other methods) a BalancedAssignment."""
    choice(method, "method", METHODS)
    arr = np.asarray(batches)
    if arr.ndim != 3 or arr.size == 0:
        raise ValueError(f"batches must be a non-empty (T, n, E) array, got shape {arr.shape}")
    e = arr.shape[2]
    kk = as_k(k, e)
    shape = arr.shape
    arr = np.asarray(as_score_array(arr.reshape(-1, e), "batches"), dtype=np.float64)
    # per-batch max and min: lp_scores' domain check (one max and one min decide finiteness
    # and magnitude) and the per-prefix max |s| (the certificate's scale) from one pair of
    # passes over the stream
    per = arr.reshape(shape[0], -1)
    hi, lo = per.max(axis=1), per.min(axis=1)
    big, small = float(hi.max()), float(lo.min())
    if not (np.isfinite(big) and np.isfinite(small)) or max(big, -small) > MAGNITUDE_LIMIT:
        lp_scores(arr, "batches")  # raises, naming the offending entry
    arr = arr.reshape(shape)
    ts = np.asarray(lengths)
    if ts.ndim != 1 or ts.size == 0 or not np.issubdtype(ts.dtype, np.integer):
        raise TypeError("lengths must be a non-empty 1-D array of integers")
    if ts[0] < 1 or ts[-1] > arr.shape[0] or np.any(np.diff(ts) <= 0):
        raise ValueError(f"lengths must increase strictly within [1, T={arr.shape[0]}]")
    smax = np.maximum.accumulate(np.maximum(hi, -lo))
    incremental = method in ("auto", "ssp") and (
        2.0**-_SSP_RANGE <= float(smax[0]) and float(smax[-1]) < 2.0**_SSP_RANGE
    )
    chain = None
    if incremental:
        from lfbtheory._engine.ssp import ssp_prefixes

        chain = ssp_prefixes(
            np.ascontiguousarray(arr.reshape(-1, e)), arr.shape[1], kk, ts.astype(np.int64)
        )
        growing = GrowingVerdicts(int(ts[-1]) * arr.shape[1], e, kk)
    prev = None
    for t in ts.tolist():
        tokens = arr[:t].reshape(-1, e)
        cap, equality = resolve_capacity(tokens.shape[0], kk, e, None)
        if chain is not None:
            x, asg, bias, _ = next(chain)
            # re-reads only the rows that changed or sit near a tie
            cert = growing.certify(tokens, asg, bias, cap, float(smax[t - 1]))
            if cert.ok:
                prev = bias
                loads = np.full(e, cap, dtype=np.int64)  # checked by the certificate
                yield _PrefixView(tokens, asg, bias, loads, cert)
                continue
            chain = None  # never expected: solve this and later prefixes anew
        sol = _solve_valid(tokens, kk, cap, equality, method, prev)
        prev = sol.bias
        yield sol


def _solve_valid(
    s: NDArray[np.float64],
    k: int,
    cap: int,
    equality: bool,
    method: str,
    start: NDArray[np.float64] | None,
    path: str | None = None,
) -> BalancedAssignment:
    """:func:`solve_balanced` on validated scores, capacity and warm start (certified);
    ``path``: the engine path to force (:mod:`lfbtheory._engine`; tests).

    ``method="auto"`` is ssp; if its answer fails the certificate (its price arithmetic runs
    at the batch's scale, so a decision far below that scale's rounding -- e.g. 1e-276 beside
    a -1 entry -- can be lost), the certified answer of "flow" (when ortools is installed),
    then "linprog", is returned instead; the answer's ``method`` names the one that produced
    it. Every returned answer passed the certificate; if none does, the first error is raised.
    """
    if method != "auto":
        return _solve_method(s, k, cap, equality, method, start, path)
    try:
        return _solve_method(s, k, cap, equality, "ssp", start, path)
    except CertificationError as first:
        for fallback in ("flow", "linprog"):
            try:
                return _solve_method(s, k, cap, equality, fallback, start, None)
            except (ImportError, CertificationError):  # "flow" needs the optional ortools
                continue
        raise first


def _solve_method(
    s: NDArray[np.float64],
    k: int,
    cap: int,
    equality: bool,
    used: str,
    start: NDArray[np.float64] | None,
    path: str | None = None,
) -> BalancedAssignment:
    """One exact method's certified answer (CertificationError if it fails the certificate)."""
    n, e = s.shape
    smax = absmax(s)
    e2 = int(np.frexp(smax)[1]) if smax > 0 else 0  # 2^(e2-1) <= max|s| < 2^e2
    if used == "ssp" and abs(e2) <= _SSP_RANGE:
        e2 = 0
    sw = np.ldexp(s, -e2) if e2 else s
    cap_w = min(cap, n)  # an expert never holds more than n tokens
    x: NDArray[np.integer]
    price: NDArray[np.float64] | None
    if used == "ssp":
        p0 = None if start is None else np.ldexp(_recentre(start, s, equality), -e2)
        x, ranked, price, _ = _engine.solve(sw, k, cap_w, equality, p0, path=path)
    elif used == "flow":
        from lfbtheory.lp.flow import flow_assignment

        x = flow_assignment(sw, k, cap_w)
        price = optimal_prices(sw, k, x, capacity=None if equality else cap_w)
        if price is None:
            raise CertificationError(
                "method 'flow': the integer-scaled flow optimum has an improving cycle beyond "
                f"rtol={RTOL:g} for the float scores; use method='ssp'"
            )
    else:
        from lfbtheory.lp.oracle import cvxpy_lp, linprog_lp, round_vertex

        x_lp, obj_lp, price = (cvxpy_lp if used == "cvxpy" else linprog_lp)(sw, k, cap_w, equality)
        x = round_vertex(sw, k, cap_w, equality, x_lp, obj_lp, used)
    bias = np.ldexp(price, e2) if e2 else np.asarray(price, dtype=np.float64)
    if used == "ssp" and not e2 and (equality or cap < n):
        # ssp's prices are final (mean zero / <= 0) and its experts are ranked by them already
        return _certified(s, k, x, bias, cap, equality, used, smax, ranked)
    if equality:
        bias = bias - bias.mean()
    elif cap >= n:
        bias = np.zeros(e)  # no expert constraint can bind: plain top-k with price 0 is optimal
    else:
        bias = np.minimum(bias, 0.0)
    return _certified(s, k, x, bias, cap, equality, used, smax)


def _recentre(
    start: NDArray[np.float64], s: NDArray[np.float64], equality: bool
) -> NDArray[np.float64]:
    """A warm start in the gauge of the solver's prices, clipped to the range of the scores."""
    r = float(np.max(s) - np.min(s))
    if r == 0.0:
        return np.zeros_like(start)
    if equality:
        from lfbtheory._engine.ssp import recentre_equal

        return recentre_equal(np.ascontiguousarray(start, dtype=np.float64), s)
    return np.clip(start - start.max(), -r, 0.0)


def _certified(s, k, x, bias, cap, equality, method, smax, experts=None) -> BalancedAssignment:  # type: ignore[no-untyped-def]
    from lfbtheory._engine.ssp import experts_ranked

    x8 = (
        x.view(np.int8)
        if x.dtype == np.uint8 and x.flags.c_contiguous
        else np.ascontiguousarray(x, dtype=np.int8)
    )
    cert = verdict(s, k, x8, bias, cap, equality, RTOL)
    if not cert.ok and cert.primal_feasible:
        # A method's prices carry the rounding of its own arithmetic, which is relative to
        # every entry it read (a masked -1e9 entry moves every price a little); the
        # certificate's tolerance is relative to the assigned entries only. If the
        # assignment is optimal, exact prices follow from it alone (lp.optimal_prices).
        exact = optimal_prices(s, k, x8, capacity=None if equality else cap)
        if exact is not None:
            bias, experts = exact, None
            cert = verdict(s, k, x8, bias, cap, equality, RTOL)
    if not cert.ok:
        raise CertificationError(
            f"method {method!r} produced an answer that fails the optimality certificate "
            f"(duality gap {cert.duality_gap:.6g}, slackness violation "
            f"{cert.max_slackness_violation:.3g}, objective tolerance {cert.tolerance:.3g}): "
            + "; ".join(cert.problems)
        )
    loads = np.count_nonzero(x8, axis=0).astype(np.int64)
    if experts is None:
        experts = experts_ranked(s, x8, k, selection_offsets(bias, "additive"))
    return _assignment(x8, experts, bias, loads, cap, method, cert)


def _assignment(x8, experts, bias, loads, cap, method, cert) -> BalancedAssignment:  # type: ignore[no-untyped-def]
    """The result of a solve whose certificate ``cert`` passed."""
    return BalancedAssignment(
        assignment=x8,
        experts=experts,
        loads=loads,
        objective=cert.primal_objective,
        bias=bias,
        status="optimal",
        capacity=cap,
        method=method,
        certificate=cert,
    )
