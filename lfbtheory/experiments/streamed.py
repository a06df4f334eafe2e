"""Streams in bounded memory: chunk sources, map-reduce passes, the pooled comparator by passes.

A stream of T batches (n, E) is never held whole: it is read chunk by chunk from a
:class:`ChunkSource` (``chunk(i)`` -> (c, n, E) float64, c <= ``chunk`` batches):

- :class:`ArraySource`: an array in memory or memory-mapped (``np.load(path, mmap_mode="r")``
  of a ``.npy`` trace: :meth:`ArraySource.from_npy`), read a chunk at a time;
- :class:`SeededSource`: an i.i.d. synthetic workload ("stationary", "zipf") generated chunk by
  chunk with random access: chunk i draws its noise from SeedSequence(seed, spawn_key=(i,))
  and every chunk shares the workload's offsets for ``seed``. This is a different stream from
  ``workload.batches(T, seed)`` (whose one noise generator runs through all T batches, so
  chunk i cannot be produced without the i-1 before it); it is reproducible from (workload,
  seed, chunk) and what a distributed pass needs (any worker builds any chunk);
- :func:`sequential_chunks`: ``workload.batches`` grouped into chunks, bit-identical to
  :func:`lfbtheory.workloads.materialize` (one sequential pass; not random access).

A pass is a map over chunks and a reduction in a fixed order (pairwise, in chunk order:
:func:`tree_sum`), so the result does not depend on where the chunks ran (this process, local
processes or a Dask cluster; :mod:`lfbtheory.experiments.executors`): bit-identical sums.

The pooled hindsight comparator min_p sum_t D_t(p) (D_t(p) = sum_tokens topk(s + p) - L sum p,
arXiv 2408.15664 Sec. 3) is computed by :func:`pooled_comparator`: the level-stabilised
cutting-plane method of :mod:`lfbtheory.analysis.cutting`, one cut per chunk per pass, each
pass computing sum_t D_t(p) and its subgradient (pooled loads - T L), stopped by the
certified gap (upper = best D value seen, lower = the model's weak-duality bound).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from lfbtheory.analysis.cutting import CutResult, minimize_pieces
from lfbtheory.validation import as_k, as_positive_int

__all__ = [
    "ArraySource",
    "PassStats",
    "SeededSource",
    "chunk_dual",
    "map_chunks",
    "pooled_comparator",
    "sequential_chunks",
    "tree_sum",
]


@dataclass(frozen=True)
class ArraySource:
    """Chunks of a (T, n, E) float64 array (in memory or a read-only memory map)."""

    array: Any
    chunk: int

    def __post_init__(self) -> None:
        a = self.array
        if getattr(a, "ndim", 0) != 3 or a.dtype != np.float64 or a.size == 0:
            raise ValueError("array must be a non-empty (T, n, E) float64 array")
        object.__setattr__(self, "chunk", as_positive_int(self.chunk, "chunk"))

    @classmethod
    def from_npy(cls, path: str, chunk: int) -> ArraySource:
        """A memory-mapped ``.npy`` trace (read-only; pages are read when a chunk is used)."""
        return cls(np.load(path, mmap_mode="r", allow_pickle=False), chunk)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def n_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk)

    def chunk_at(self, i: int) -> NDArray[np.float64]:
        out = np.asarray(self.array[i * self.chunk : (i + 1) * self.chunk], dtype=np.float64)
        if not np.isfinite(out).all():
            raise ValueError(f"chunk {i} of the stream holds a non-finite score")
        return out


@dataclass(frozen=True)
class SeededSource:
    """Chunk i of an i.i.d. synthetic workload from its own seed (module docstring)."""

    workload: Any
    steps: int
    seed: int
    chunk: int

    def __post_init__(self) -> None:
        if getattr(self.workload, "name", None) not in ("stationary", "zipf"):
            raise ValueError("SeededSource needs an i.i.d. workload ('stationary' or 'zipf')")
        object.__setattr__(self, "steps", as_positive_int(self.steps, "steps"))
        object.__setattr__(self, "chunk", as_positive_int(self.chunk, "chunk"))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.steps, int(self.workload.n), int(self.workload.n_experts))

    @property
    def n_chunks(self) -> int:
        return -(-self.steps // self.chunk)

    def chunk_at(self, i: int) -> NDArray[np.float64]:
        from lfbtheory.workloads.base import apply_gate

        w = self.workload
        c = min(self.chunk, self.steps - i * self.chunk)
        if not 0 <= i < self.n_chunks:
            raise ValueError(f"chunk index must be in [0, {self.n_chunks}), got {i}")
        z = w.offsets(self.seed)
        noise = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(i,)))
        x = z + w.noise_scale * noise.standard_normal((c, w.n, w.n_experts))
        return apply_gate(x, w.gate)


def sequential_chunks(workload: Any, steps: int, seed: int, chunk: int) -> Iterator[NDArray]:
    """``workload.batches(steps, seed)`` in (c, n, E) chunks: bit-identical to materialize."""
    chunk = as_positive_int(chunk, "chunk")
    buf: list[NDArray[np.float64]] = []
    for b in workload.batches(steps, seed):
        buf.append(b)
        if len(buf) == chunk:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def tree_sum(parts: Sequence[Any]) -> Any:
    """Pairwise sum in chunk order: ((p0 + p1) + (p2 + p3)) + ...; a fixed reduction tree, so
    the float result depends only on the parts and their order, never on where they ran."""
    if not parts:
        raise ValueError("tree_sum needs at least one part")
    level = list(parts)
    while len(level) > 1:
        nxt = [level[j] + level[j + 1] for j in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def chunk_dual(source: Any, i: int, k: int, price: NDArray[np.float64]) -> NDArray[np.float64]:
    """One chunk's share of the pooled dual at p: [sum_tokens topk(s + p), loads (E)] as one
    (1 + E,) vector (the -L sum p term is added once, after the reduction)."""
    from lfbtheory.routing import route

    x = source.chunk_at(i)
    s = x.reshape(-1, x.shape[2])
    ex = route(s, k, price, weights=False).experts
    top = float(np.take_along_axis(s, ex, axis=1).sum()) + float(price[ex].sum())
    loads = np.bincount(ex.ravel(), minlength=s.shape[1]).astype(np.float64)
    return np.concatenate([[top], loads])


def map_chunks(
    fn: Callable[..., Any], source: Any, args: tuple[Any, ...], executor: Any = None
) -> list[Any]:
    """[fn(source, i, *args) for each chunk i], in chunk order, run on ``executor`` (an
    :mod:`lfbtheory.experiments.executors` executor; None: this process)."""
    n = source.n_chunks
    if executor is None:
        return [fn(source, i, *args) for i in range(n)]
    futures = [executor.submit(fn, source, i, *args) for i in range(n)]
    return [f.result() for f in futures]


@dataclass
class PassStats:
    """Oracle passes of :func:`pooled_comparator`: count and seconds (wall, this process CPU)."""

    passes: int = 0
    wall: float = 0.0
    cpu: float = 0.0


def pooled_comparator(
    source: Any,
    k: int,
    *,
    start: NDArray[np.float64] | None = None,
    rtol: float = 1e-9,
    max_passes: int = 200,
    executor: Any = None,
    stats: PassStats | None = None,
) -> CutResult:
    """min_p sum_t D_t(p) over the whole stream of ``source``, certified (module docstring).

    One cut per chunk per pass; ``start`` (E,) warm-starts the price (e.g. the mean of the
    per-batch optimal prices). Returns the :class:`lfbtheory.analysis.cutting.CutResult`
    (``upper`` the comparator's value at ``price``, ``lower`` its certified lower bound).
    """
    t_len, n, e = source.shape
    k = as_k(k, e)
    if (n * k) % e:
        raise ValueError(f"n*k must be divisible by E (n={n}, k={k}, E={e})")
    total_cap = float(t_len * (n * k // e))
    m = source.n_chunks
    st = stats if stats is not None else PassStats()

    def oracle(p: NDArray[np.float64]) -> tuple[NDArray[np.float64], sp.csr_matrix]:
        w0, c0 = time.perf_counter(), time.process_time()
        parts = map_chunks(chunk_dual, source, (k, p), executor)
        st.passes += 1
        st.wall += time.perf_counter() - w0
        st.cpu += time.process_time() - c0
        mat = np.stack(parts)  # (m, 1 + E): per chunk value and loads
        vals = np.concatenate([mat[:, 0], [-total_cap * float(p.sum())]])
        grads = sp.vstack([sp.csr_matrix(mat[:, 1:]), sp.csr_matrix(np.full((1, e), -total_cap))])
        return vals, grads.tocsr()

    span = 1.0  # sigmoid/softmax scores lie in [0, 1]; the box doubles if the price needs more
    p0 = None if start is None else np.asarray(start, dtype=np.float64)
    return minimize_pieces(oracle, e, m + 1, start=p0, box=2 * span, rtol=rtol,
                           max_calls=max_passes)  # fmt: skip


def pooled_value(source: Any, k: int, price: NDArray[np.float64], executor: Any = None) -> float:
    """sum_t D_t(p) in one pass with the fixed reduction order (:func:`tree_sum`)."""
    t_len, n, e = source.shape
    parts = map_chunks(chunk_dual, source, (k, np.asarray(price, dtype=np.float64)), executor)
    tot = tree_sum(parts)
    return float(tot[0] - t_len * (n * k // e) * float(np.sum(price)))


def _replace(obj: Any, **kw: Any) -> Any:
    return dataclasses.replace(obj, **kw)


def _margins(s: NDArray[np.float64], k: int, price: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per token: (k-th largest) - ((k+1)-th largest) of s + p (inf when k = E)."""
    x = s + price
    e = x.shape[1]
    if k == e:
        return np.full(x.shape[0], np.inf)
    part = np.partition(x, (e - k - 1, e - k), axis=1)
    return part[:, e - k] - part[:, e - k - 1]


def chunk_screen(
    source: Any, i: int, k: int, price: NDArray[np.float64], radius: float
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """One chunk split at p: tokens with margin >= radius are decided (their top-k of s + p);
    returns (sum of s over the decided choices, decided loads (E,), undecided scores (u, E))."""
    from lfbtheory.routing import route

    x = source.chunk_at(i)
    s = x.reshape(-1, x.shape[2])
    near = _margins(s, k, price) < radius
    far = s[~near]
    ex = route(far, k, price, weights=False).experts if len(far) else np.zeros((0, k), int)
    value = float(np.take_along_axis(far, ex, axis=1).sum()) if len(far) else 0.0
    return value, np.bincount(ex.ravel(), minlength=s.shape[1]).astype(np.float64), s[near]


def _transport(s: NDArray[np.float64], k: int, caps: NDArray[np.float64]) -> NDArray[np.bool_]:
    """max s.x s.t. sum_i x_ti = k, sum_t x_ti = caps_i, x 0/1: OR-tools min-cost flow with the
    integer costs of :mod:`lfbtheory.lp.flow` (its rounding is covered by the certificate,
    which is computed in float64 afterwards)."""
    from ortools.graph.python import min_cost_flow

    u, e = s.shape
    if u == 0:
        return np.zeros((0, e), dtype=bool)
    smax = float(np.max(np.abs(s)))
    sc = np.ldexp(s, -int(np.frexp(smax)[1])) if smax > 0 else s
    cost = -np.rint(sc * min(2.0**40, 2.0**60 / (u * k + 1))).astype(np.int64).ravel()
    smcf = min_cost_flow.SimpleMinCostFlow()
    arcs = smcf.add_arcs_with_capacity_and_unit_cost(
        np.repeat(np.arange(u, dtype=np.int64), e), np.tile(np.arange(u, u + e, dtype=np.int64), u),
        np.ones(u * e, dtype=np.int64), cost)  # fmt: skip
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.arange(u, u + e, dtype=np.int64), np.full(e, u + e, dtype=np.int64),
        np.rint(caps).astype(np.int64), np.zeros(e, dtype=np.int64))  # fmt: skip
    sup = np.zeros(u + e + 1, dtype=np.int64)
    sup[:u] = k
    sup[u + e] = -u * k
    smcf.set_nodes_supplies(np.arange(u + e + 1, dtype=np.int64), sup)
    if smcf.solve() != smcf.OPTIMAL:
        raise RuntimeError("OR-tools min-cost flow found no balanced completion")
    return smcf.flows(arcs).reshape(u, e).astype(bool)


def chunk_exchange(source: Any, i: int, k: int, price: NDArray[np.float64],
                   radius: float) -> NDArray[np.float64]:  # fmt: skip
    """The expert exchange graph (:func:`lfbtheory.lp.exchange_graph`) of one chunk's decided
    tokens (margin >= radius at p, on their top-k of s + p); reduced by an elementwise min."""
    from lfbtheory.lp.certificate import exchange_graph
    from lfbtheory.routing import route

    x = source.chunk_at(i)
    s = x.reshape(-1, x.shape[2])
    far = s[_margins(s, k, price) >= radius]
    if not len(far):
        w = np.full((s.shape[1], s.shape[1]), np.inf)
        np.fill_diagonal(w, 0.0)
        return w
    ex = route(far, k, price, weights=False).experts
    on = np.zeros(far.shape, dtype=bool)
    np.put_along_axis(on, ex, True, axis=1)
    return exchange_graph(far, on)


def _prices(w: NDArray[np.float64]) -> NDArray[np.float64]:
    """Shortest-path prices p_j - p_i <= W[i, j] (Bellman-Ford from a virtual source), centred;
    as in :func:`lfbtheory.lp.optimal_prices`."""
    dist = np.zeros(w.shape[0])
    for _ in range(w.shape[0]):
        new = np.minimum(dist, (dist[:, None] + w).min(axis=0))
        if np.array_equal(new, dist):
            break
        dist = new
    return dist - dist.mean()


@dataclass(frozen=True)
class ScreenedOptimum:
    """The pooled optimum by screening: value of a feasible pooled assignment (decided tokens
    at their top-k of s + p_hat, the rest by a min-cost flow with the remaining capacities),
    dual = sum_t D_t(price) at the shortest-path prices of the whole assignment's exchange
    graph (two more passes), gap = dual - value >= 0 (weak
    duality: the assignment is feasible), rel_gap = gap / |value|; undecided: tokens in the LP;
    radius: the margin used; passes: data passes."""

    value: float
    dual: float
    gap: float
    rel_gap: float
    price: NDArray[np.float64]
    undecided: int
    radius: float
    passes: int


def screened_optimum(
    source: Any,
    k: int,
    price: NDArray[np.float64],
    *,
    radius: float = 0.02,
    max_tokens: int = 60_000,
    rtol: float = 1e-9,
    max_passes: int = 40,
    executor: Any = None,
) -> ScreenedOptimum:
    """The pooled optimum certified by a primal-dual pair, from an approximate price p_hat.

    Tokens whose top-k margin at p_hat is >= ``radius`` keep their top-k set (exact whenever the
    optimal price is within radius / 2 of p_hat in the inf-norm); the others (at most
    ``max_tokens``, held in memory) are solved by min-cost flow with the capacities left. Until the
    certified relative gap is <= ``rtol`` (or ``max_passes`` / the token limit): an infeasible
    split doubles the radius, too many undecided tokens narrow it, an uncertified split screens
    again from the certificate's price (the radius x 1.5 once that stops improving the gap).
    The best certified pair is returned, its gap reported.
    """
    t_len, n, e = source.shape
    cap = float(t_len * (n * k // e))
    p_hat = np.asarray(price, dtype=np.float64)
    passes = 0
    r = float(radius)
    best: ScreenedOptimum | None = None
    while passes < max_passes:
        parts = map_chunks(chunk_screen, source, (k, p_hat, r), executor)
        passes += 1
        value = tree_sum([np.float64(v) for v, _, _ in parts])
        loads = tree_sum([ld for _, ld, _ in parts])
        near = np.concatenate([u for _, _, u in parts])
        if len(near) > max_tokens:
            if best is not None or r < 1e-9:
                break
            r /= 4.0  # too many near-ties at this radius: narrow it (p_hat must be closer)
            continue
        if len(near) == t_len * n and best is not None:
            break
        left = cap - loads
        if np.any(left < 0) or abs(left.sum() - k * len(near)) > 0.5:
            r *= 2.0
            continue
        x = _transport(near, k, left)
        total = float(value + float(np.sum(near[x])))
        graphs = map_chunks(chunk_exchange, source, (k, p_hat, r), executor)
        from lfbtheory.lp.certificate import exchange_graph

        w = np.minimum.reduce([*graphs, exchange_graph(near, x)]) if len(near) else \
            np.minimum.reduce(graphs)  # fmt: skip
        p_lp = _prices(w)
        dual = pooled_value(source, k, p_lp, executor)
        passes += 2
        gap = dual - total
        cand = ScreenedOptimum(total, dual, gap, gap / max(1.0, abs(total)), p_lp, len(near), r,
                               passes)  # fmt: skip
        improved = best is None or cand.gap < best.gap
        if improved:
            best = cand
        if cand.rel_gap <= rtol:
            return dataclasses.replace(cand, passes=passes)
        p_hat = p_lp  # the certificate's price: screen again from it
        if not improved:
            r *= 1.5  # widen only when re-centring alone stopped helping
    if best is None:
        raise RuntimeError(
            f"screening found more than max_tokens={max_tokens} undecided tokens at radius "
            f"{r:g} before any certified assignment: start from a better price"
        )
    return dataclasses.replace(best, passes=passes)


@dataclass(frozen=True)
class StreamedPoint:
    """A regret point computed in passes over chunks (memory independent of T but for the
    (T,) and (T, E) per-batch records). summary[label]: the ledger's final values per rule;
    comparator: the certified pooled optimum; timings: seconds (wall and CPU) by part."""

    summary: dict[str, dict[str, float]]
    comparator: ScreenedOptimum
    batch_optimum: NDArray[np.float64]
    timings: dict[str, dict[str, float]]


def _clock(timings: dict[str, dict[str, float]], part: str, w0: float, c0: float) -> None:
    t = timings.setdefault(part, {"wall": 0.0, "cpu": 0.0})
    t["wall"] += time.perf_counter() - w0
    t["cpu"] += time.process_time() - c0


def streamed_point(
    source: Any,
    k: int,
    rules: Sequence[Any],
    *,
    labels: Sequence[str] | None = None,
    routing: dict[str, int] | None = None,
    n_devices: int | None = None,
    capacity_factors: tuple[float, ...] = (1.0, 1.25),
    per_batch: bool = True,
    executor: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> StreamedPoint:
    """Runs of every rule, per-batch optima and the pooled comparator in passes over chunks.

    One pass routes every rule chunk by chunk (``simulate`` resumed from each rule's state, so
    the runs equal one run over the whole stream) and solves each batch exactly
    (``solve_stream``, warm-started across chunks); then :func:`screened_optimum` from the
    mean of the per-batch prices. Per rule: dual regret sum_t D_t(p_t) - min_p sum_t D_t(p)
    (plain top-k routing only: group-limited runs get the primal columns and devices, their
    group-limited ledger is :mod:`lfbtheory.analysis.grouped`), primal regret, cumulative
    violation, dynamic gap, MaxVio, and the device table (:mod:`lfbtheory.analysis.devices`).
    """
    from lfbtheory.analysis.devices import device_table
    from lfbtheory.lp.solve import solve_stream
    from lfbtheory.metrics import maxvio
    from lfbtheory.online.loop import simulate

    t_len, n, e = source.shape
    cap = n * k // e
    names = list(labels) if labels is not None else [getattr(r, "name", str(r)) for r in rules]
    timings: dict[str, dict[str, float]] = {}
    states: list[Any] = [None] * len(rules)
    route_kw: dict[str, Any] = dict(routing or {})
    rec: dict[int, dict[str, list[Any]]] = {
        q: {"reward": [], "loads": [], "dual": []} for q in range(len(rules))
    }
    opts, prices = [], []
    warm = None
    for i in range(source.n_chunks):
        w0, c0 = time.perf_counter(), time.process_time()
        x = source.chunk_at(i)
        _clock(timings, "stream", w0, c0)
        w0, c0 = time.perf_counter(), time.process_time()
        for q, rule in enumerate(rules):
            tr = simulate(x, k, rule, state=states[q], **route_kw)
            states[q] = tr.state
            rec[q]["reward"].append(tr.reward)
            rec[q]["loads"].append(tr.loads)
            rec[q]["dual"].append(tr.reward + np.einsum("ij,ij->i", tr.bias, tr.loads - cap))
        _clock(timings, "runs", w0, c0)
        if per_batch:
            w0, c0 = time.perf_counter(), time.process_time()
            o, p = solve_stream(x, k, output="optima", warm_start=warm)  # type: ignore[misc]
            warm = p[-1]
            opts.append(o)
            prices.append(p.mean(axis=0) * len(p))
            _clock(timings, "per_batch_optima", w0, c0)
        if progress:
            progress("chunks", i + 1, source.n_chunks)
    w0, c0 = time.perf_counter(), time.process_time()
    start = np.sum(prices, axis=0) / t_len if prices else np.zeros(e)
    comp = screened_optimum(source, k, start, executor=executor)
    _clock(timings, "pooled_comparator", w0, c0)
    timings["pooled_comparator"]["passes"] = float(comp.passes)
    batch_opt = np.concatenate(opts) if opts else np.full(t_len, np.nan)
    summary: dict[str, dict[str, float]] = {}
    for q, name in enumerate(names):
        loads = np.concatenate(rec[q]["loads"])
        reward = np.concatenate(rec[q]["reward"])
        dual = np.concatenate(rec[q]["dual"])
        row = {
            "primal_regret": comp.value - float(reward.sum()),
            "violation_tokens": float(np.maximum(loads.sum(0) - t_len * cap, 0).sum()),
            "dynamic_gap": float(np.sum(batch_opt - reward)),
            "maxvio_batch_mean": float(np.mean(maxvio(loads))),
            "maxvio_global_final": float(maxvio(loads.sum(0))),
        }
        if not routing:
            row["dual_regret"] = float(dual.sum()) - comp.dual
            row["dual_dynamic_regret"] = float(np.sum(dual - batch_opt))
        if n_devices:
            tab = device_table(loads, k, n_devices=n_devices, capacity_factors=capacity_factors)
            row.update({f"device_{key}": float(v) for key, v in tab.summary().items()})
        summary[name] = row
    return StreamedPoint(summary, comp, batch_opt, timings)
