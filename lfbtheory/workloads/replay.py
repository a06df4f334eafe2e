"""Replay of recorded router scores, with completion of top-k-only traces.

Real routers are recorded per layer; a Loss-Free Balancing bias is per layer (one router, one
bias vector). So :class:`Replay` of a top-k trace replays ONE recorded layer by default (the
first in the file; ``layer=`` picks another; :func:`trace_info` lists them so an experiment can
make one run per layer). Cycling several layers through one bias (``layers=(...)`` or
``layers="all"``) is kept only as an explicit option -- it is what v0.1 did by default, and
not what a model does.

Completion rule (top-k traces). A trace holds, per layer and token, only the k largest router
probabilities s_1 >= ... >= s_k (softmax over E experts) and their expert ids. A full row is
rebuilt by :func:`complete_topk`: the leftover mass R = 1 - sum_j s_j is split over the E - k
unrecorded experts, every entry strictly below s_k, so the recorded top-k stays the top-k
exactly (same ids, same order, same float values) and every row sums to 1 (up to rounding).
Feasible iff R >= 0 and R/(E-k) < s_k for every token (checked before use). Tails:

- "lognormal" (default): w_j = s_k sigmoid(g_j + theta), g_j ~ N(0, tail_spread^2) seeded,
  theta the one shift per token with sum_j w_j = R. Far below s_k, log w_j = const + g_j:
  the softmax of gaussian router logits of std tail_spread; near s_k the sigmoid squashes
  them smoothly below it. TAIL_SPREAD = 1.3 is calibrated on the FLAME trace: its mean
  log(s_1/s_6) is 1.32 and for 64 standard gaussian logits E[x_(1) - x_(6)] = 0.986, so the
  logits' std is about 1.32/0.986 = 1.3 (the mean top-6 mass, 0.43, also lies between that of
  std 1.0 (0.36) and std 1.5 (0.53)). tail_spread is bounded by MAX_TAIL_SPREAD = 5 (an
  extremely heavy tail; keeps sigmoid(g + theta) away from 1 in float64).
- "dirichlet": d ~ Dirichlet(tail_concentration) seeded, w = R d, capped at m = (R/(E-k) +
  s_k)/2 (halfway between the even level and s_k: any cap below s_k keeps the top-k; the
  midpoint leaves equal room on both sides) by the smallest pull toward the even split.
  Default concentration 1: the flat Dirichlet, uniform on the simplex. Caveat (FLAME,
  concentration 1): the cap binds for 95% of tokens, so most rows have one entry exactly at m.
- "uniform": w_j = R/(E-k) (deterministic).

The completion of layer position j (index in the file) uses the seed's child stream
(COMPLETION, j), so a layer's completed rows are the same in every epoch, for every n and every
layer selection; completed layers are cached (LRU, at most COMPLETED_CACHE_BYTES).

Order: the selected layers, each in token order (sequence-major), concatenated and cycled;
batch t is tokens [t n, (t+1) n) of that cyclic stream (with several layers, a batch straddles
two layers when n does not divide the per-layer token count).

User arrays (.npy, or .npz with ``key`` naming the array; a single-array npz needs none): 2-D
(N, E) rows are batched the same way (n consecutive rows, cyclic); 3-D (T, n', E) is T ready
batches, cycled (n defaults to n'). ``transform`` turns logits into scores ("sigmoid" /
"softmax"; default "none": the values are the scores). .npy files are memory-mapped.

Nothing is read when a :class:`Replay` is constructed: the file is opened on first use
(``batches``, ``n_experts``, ``k``, ``info``) and its contents cached per (path, mtime, size).
"""

from __future__ import annotations

import functools
import numbers
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from lfbtheory.routing import sigmoid, softmax
from lfbtheory.validation import as_int, as_real, choice
from lfbtheory.workloads._seeding import COMPLETION, Seed, as_steps, rng, seed_key, seed_sequence
from lfbtheory.workloads.base import set_field
from lfbtheory.workloads.data import (
    FLAME_FILE,
    TopkTrace,
    check_path,
    data_dir,
    file_stamp,
    is_topk_trace,
    load_array,
    load_topk_trace,
    npz_keys,
)

__all__ = [
    "Replay",
    "replay",
    "TraceInfo",
    "trace_info",
    "complete_topk",
    "TAILS",
    "TRANSFORMS",
    "TAIL_SPREAD",
]

TAILS = ("lognormal", "dirichlet", "uniform")
TRANSFORMS = ("none", "sigmoid", "softmax")
TAIL_SPREAD = 1.3  # logit std calibrated on the FLAME trace (module docstring)
MAX_TAIL_SPREAD = 5.0
# Completed layers kept in memory (LRU by bytes): 256 MiB holds the 8 FLAME layers (1 MiB
# each) for dozens of seeds, and bounds memory for large user traces.
COMPLETED_CACHE_BYTES = 256 * 2**20
# Root finding of the lognormal tail's shift theta: safeguarded Newton to a relative sum error
# of 1e-12 (the final rescale makes the sum exact anyway); 200 iterations is a safety net
# (bisection alone halves the bracket each step: 200 steps exhaust float64).
_THETA_RTOL = 1e-12
_THETA_MAX_ITER = 200


# ------------------------------------------------------------------------------- completion


def _lognormal_tail(
    left: NDArray[np.float64],
    kth: NDArray[np.float64],
    rest: int,
    gen: np.random.Generator,
    spread: float,
) -> NDArray[np.float64]:
    """w_j = s_k * sigmoid(g_j + theta_t), g_j ~ N(0, spread^2), theta_t: sum_j w_j = R_t.

    f(theta) = s_k sum_j sigmoid(g_j + theta) increases from 0 to (E-k) s_k > R, so theta is
    unique; it is bracketed by logit(r) - max g <= theta <= logit(r) - min g, r = R/((E-k) s_k),
    and found by safeguarded Newton (bisection when Newton leaves the bracket).
    """
    g = spread * gen.standard_normal((left.size, rest))
    r = left / (rest * kth)
    pos = left > 0
    lr = np.log(np.where(pos, r, 0.5)) - np.log1p(-np.where(pos, r, 0.5))  # logit(r)
    lo, hi = lr - g.max(axis=1), lr - g.min(axis=1)
    theta = 0.5 * (lo + hi)
    for _ in range(_THETA_MAX_ITER):
        sig = expit(g + theta[:, None])
        f = kth * sig.sum(axis=1) - left
        done = (np.abs(f) <= _THETA_RTOL * left) | ~pos
        if np.all(done):
            break
        lo = np.where(f < 0, theta, lo)
        hi = np.where(f > 0, theta, hi)
        slope = kth * (sig * (1.0 - sig)).sum(axis=1)
        newton = theta - f / np.where(slope > 0, slope, 1.0)
        inside = (newton > lo) & (newton < hi) & (slope > 0)
        theta = np.where(done, theta, np.where(inside, newton, 0.5 * (lo + hi)))
    w = kth[:, None] * expit(g + theta[:, None])
    w *= np.where(pos, left / np.where(pos, w.sum(axis=1), 1.0), 0.0)[:, None]  # exact sum R
    return np.minimum(w, np.nextafter(kth, 0.0)[:, None])  # float guard; never binds (tested)


def _infeasible(top_scores: NDArray[np.float64], n_experts: int) -> NDArray[np.bool_]:
    """Tokens whose leftover mass cannot go strictly below their k-th score."""
    left = 1.0 - top_scores.sum(axis=-1)
    return (left < 0) | (left / (n_experts - top_scores.shape[-1]) >= top_scores[..., -1])


def complete_topk(
    top_scores: NDArray[np.float64],
    top_ids: NDArray[np.int64],
    n_experts: int,
    rng_: np.random.Generator | None,
    tail: str = "lognormal",
    concentration: float = 1.0,
    spread: float = TAIL_SPREAD,
) -> NDArray[np.float64]:
    """Full (N, E) probability rows from the recorded top-k (N, k) scores (sorted descending).

    The completion rule of the module docstring: the leftover mass R = 1 - sum(s) of each
    token goes to its E - k unrecorded experts (in ascending expert id; random draws row by
    row, tokens in order), every entry strictly below s_k, recorded entries copied exactly.
    Needs R/(E-k) < s_k for every token; raises ValueError otherwise. ``rng_=None`` or
    tail="uniform" gives the even split.
    """
    n_tok, k = top_scores.shape
    rest = n_experts - k
    left = 1.0 - top_scores.sum(axis=1)
    level = left / rest
    kth = top_scores[:, -1]
    bad = np.flatnonzero((left < 0) | (level >= kth))
    if bad.size:
        t = bad[0]
        raise ValueError(
            f"cannot complete token {t}: leftover mass 1 - sum(top{k}) = {left[t]:.6g} does not "
            f"fit below its {k}-th score {kth[t]:.6g} over {rest} unrecorded experts"
        )
    if tail == "uniform" or rng_ is None:
        w = np.repeat(level[:, None], rest, axis=1)
    elif tail == "lognormal":
        w = _lognormal_tail(left, kth, rest, rng_, spread)
    else:
        g = rng_.standard_gamma(concentration, size=(n_tok, rest))
        g_sum = g.sum(axis=1, keepdims=True)
        d = np.where(g_sum > 0, g / np.where(g_sum > 0, g_sum, 1.0), 1.0 / rest)
        w = left[:, None] * d
        cap = 0.5 * (level + kth)
        wmax = w.max(axis=1)
        lam = np.where(wmax > cap, (wmax - cap) / np.where(wmax > level, wmax - level, 1.0), 0.0)
        w = (1.0 - lam[:, None]) * w + lam[:, None] * level[:, None]
    full = np.empty((n_tok, n_experts))
    mask = np.ones((n_tok, n_experts), dtype=bool)
    np.put_along_axis(mask, top_ids, False, axis=1)
    full[mask] = w.ravel()  # unrecorded experts in ascending id order get w's columns in order
    np.put_along_axis(full, top_ids, top_scores, axis=1)
    return full


class _ByteLRU:
    """A least-recently-used cache of read-only arrays bounded by their total bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[Any, ...], NDArray[np.float64]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> NDArray[np.float64] | None:
        arr = self._items.get(key)
        if arr is not None:
            self._items.move_to_end(key)
        return arr

    def put(self, key: tuple[Any, ...], arr: NDArray[np.float64]) -> None:
        arr.flags.writeable = False
        if arr.nbytes > self.limit:
            return
        self._items[key] = arr
        while sum(a.nbytes for a in self._items.values()) > self.limit:
            self._items.popitem(last=False)


_COMPLETED = _ByteLRU(COMPLETED_CACHE_BYTES)


def _completed_layer(
    trace: TopkTrace,
    stamp: tuple[str, int, int],
    pos: int,
    ss: np.random.SeedSequence,
    tail: str,
    concentration: float,
    spread: float,
) -> NDArray[np.float64]:
    """Layer position ``pos`` of the trace completed to (N, E) (cached, read-only)."""
    seeded = tail != "uniform"
    key = (
        stamp,
        trace.n_experts,
        pos,
        seed_key(ss) if seeded else None,
        tail,
        concentration if tail == "dirichlet" else None,
        spread if tail == "lognormal" else None,
    )
    full = _COMPLETED.get(key)
    if full is None:
        gen = rng(ss, COMPLETION, pos) if seeded else None
        full = complete_topk(
            trace.scores[pos], trace.ids[pos], trace.n_experts, gen, tail, concentration, spread
        )
        _COMPLETED.put(key, full)
    return full


# ------------------------------------------------------------------------------- trace info


class TraceInfo(NamedTuple):
    """What a recorded file holds: E, k (None for full score arrays), the recorded layer
    names (() for full score arrays), the gate that produced the scores (None if unknown),
    and the tokens per layer (rows for a 2-D array, T x n' for a 3-D one)."""

    n_experts: int
    k: int | None
    layers: tuple[int, ...]
    gate: str | None
    n_tokens: int


def _default_path(path: object) -> str:
    return str(data_dir() / FLAME_FILE) if path is None else check_path(path)


def _array_key(path: str, key: str | None) -> str | None:
    """The .npz entry holding the score array (None for .npy); validates ``key``."""
    if path.endswith(".npy"):
        if key is not None:
            raise ValueError("key applies only to .npz files; got key for a .npy file")
        return None
    files = npz_keys(path)
    if key is None:
        if len(files) != 1:
            raise ValueError(
                f"key must name the score array of {path} (it holds {', '.join(files)})"
            )
        return files[0]
    choice(key, "key", files)
    return key


def _check_suffix(path: str) -> None:
    if not path.endswith((".npy", ".npz")):
        raise ValueError(f"path must be a .npy or .npz file, got {path!r}")


def trace_info(path: object = None, *, key: str | None = None) -> TraceInfo:
    """E, k, layers and gate of a recorded file (default: the shipped FLAME trace: E=64, k=6,
    layers 2..9, softmax). Reads the file on first call (cached)."""
    p = _default_path(path)
    _check_suffix(p)
    file_stamp(p)  # DataNotFoundError for a missing file
    if p.endswith(".npz") and key is None and is_topk_trace(npz_keys(p)):
        tr = load_topk_trace(p)
        return TraceInfo(tr.n_experts, tr.k, tr.layers, tr.gate, tr.scores.shape[1])
    arr = load_array(p, _array_key(p, key))
    if arr.ndim not in (2, 3) or min(arr.shape) < 1:
        raise ValueError(f"score array must be 2-D (N, E) or 3-D (T, n, E), got shape {arr.shape}")
    return TraceInfo(int(arr.shape[-1]), None, (), None, int(np.prod(arr.shape[:-1])))


# ------------------------------------------------------------------------------- workload


class _Plan(NamedTuple):
    """A Replay config resolved against its file (what the stream needs)."""

    kind: str  # "trace" | "rows" | "batches"
    stamp: tuple[str, int, int]
    n: int
    n_experts: int
    k: int | None
    positions: tuple[int, ...]  # trace: layer positions replayed, in order
    layers: tuple[int, ...]  # trace: their recorded names
    key: str | None


class _FromFile:
    """Data descriptor of a Replay field whose None means "read it from the file".

    The raw value (what was passed) is the configuration: compared, hashed, printed and
    returned by ``config()``. Reading the attribute gives the resolved value, reading the file
    on first use when the raw value is None.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot = f"_raw_{name}"

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return None  # the dataclass default
        raw = obj.__dict__[self.slot]
        return raw if raw is not None else getattr(obj._plan(), self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


def _layers_arg(value: object) -> tuple[int, ...] | str | None:
    if value is None or value == "all":
        return value  # type: ignore[return-value]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (as_int(value, "layers", 0),)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"layers must be 'all', an int, a sequence of ints or None, got {value!r}")
    out = tuple(as_int(v, "layers entries", 0) for v in value)
    if not out:
        raise ValueError("layers must name at least one layer")
    return out


@dataclass(frozen=True, eq=False, repr=False)
class Replay:
    """Replay recorded router scores: a top-k trace (completed) or any .npy / .npz score array.

    Fields (pure configuration; nothing is read at construction, see the module docstring):
    path (None: the shipped FLAME trace data_dir() / FLAME_FILE: FLAME-MoE-290M, 8 layers x
    2048 tokens, top-6 of 64 softmax probabilities); n tokens per batch (required for top-k
    traces and 2-D arrays, inferred for 3-D arrays); n_experts (None: inferred from the file;
    if given it must match); layer (a recorded layer name; None: the file's first layer);
    layers (several layer names, or "all", cycled in that order through ONE stream -- an
    explicit option, exclusive with ``layer``); key (.npz entry of a user array); tail,
    tail_spread, tail_concentration (the completion, module docstring); transform.

    Reading ``n``, ``n_experts``, ``k`` or :meth:`info` resolves the config against the file
    (cached). The seed of ``batches`` drives only the completion of top-k traces.
    """

    name: ClassVar[str] = "replay"
    adaptive: ClassVar[bool] = False

    path: str | None = None
    n: int | None = _FromFile()  # type: ignore[assignment]
    n_experts: int | None = _FromFile()  # type: ignore[assignment]
    layer: int | None = None
    layers: tuple[int, ...] | str | None = None
    key: str | None = None
    tail: str = "lognormal"
    tail_spread: float = TAIL_SPREAD
    tail_concentration: float = 1.0
    transform: str = "none"

    def __post_init__(self) -> None:
        if self.path is not None:
            set_field(self, "path", check_path(self.path))
        raw_n, raw_e = self._raw("n"), self._raw("n_experts")
        if raw_n is not None:
            set_field(self, "n", as_int(raw_n, "n", 1))
        if raw_e is not None:
            set_field(self, "n_experts", as_int(raw_e, "n_experts", 1))
        if self.layer is not None:
            set_field(self, "layer", as_int(self.layer, "layer", 0))
        set_field(self, "layers", _layers_arg(self.layers))
        if self.layer is not None and self.layers is not None:
            raise ValueError("give layer (one layer) or layers (several, cycled), not both")
        if self.key is not None and not isinstance(self.key, str):
            raise TypeError(f"key must be a string, got {self.key!r}")
        choice(self.tail, "tail", TAILS)
        set_field(self, "tail_spread", as_real(self.tail_spread, "tail_spread", hi=MAX_TAIL_SPREAD))
        set_field(
            self,
            "tail_concentration",
            as_real(self.tail_concentration, "tail_concentration", strict=True),
        )
        choice(self.transform, "transform", TRANSFORMS)

    # --- configuration identity (raw values: no I/O)

    def _raw(self, name: str) -> Any:
        return self.__dict__[f"_raw_{name}"]

    def _config_items(self) -> tuple[tuple[str, Any], ...]:
        return (
            ("path", self.path),
            ("n", self._raw("n")),
            ("n_experts", self._raw("n_experts")),
            ("layer", self.layer),
            ("layers", self.layers),
            ("key", self.key),
            ("tail", self.tail),
            ("tail_spread", self.tail_spread),
            ("tail_concentration", self.tail_concentration),
            ("transform", self.transform),
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._config_items() == other._config_items()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._config_items())

    def __repr__(self) -> str:
        return f"Replay({', '.join(f'{k}={v!r}' for k, v in self._config_items())})"

    def config(self) -> dict[str, Any]:
        """Everything ``make_workload(**config)`` needs to rebuild this workload (no I/O:
        inferred fields stay None)."""
        out: dict[str, Any] = {"name": self.name}
        for k, v in self._config_items():
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    # --- resolution against the file (cached)

    def _plan(self) -> _Plan:
        path = _default_path(self.path)
        _check_suffix(path)
        return _resolve(self._config_items(), file_stamp(path))

    @property
    def k(self) -> int | None:
        """The recorded top-k of a trace (None for full score arrays); reads the file."""
        return self._plan().k

    @property
    def layer_names(self) -> tuple[int, ...]:
        """The recorded layers replayed, in stream order (() for full score arrays)."""
        return self._plan().layers

    def info(self) -> TraceInfo:
        """:func:`trace_info` of this workload's file."""
        return trace_info(_default_path(self.path), key=self.key)

    # --- the stream

    def batches(self, steps: int, seed: Seed = 0) -> Iterator[NDArray[np.float64]]:
        """Yield ``steps`` (n, E) batches in recorded order, cycling (seed: completion only).

        Each yielded batch is a fresh array (never a view of a cache).
        """
        steps = as_steps(steps)
        ss = seed_sequence(seed)
        plan = self._plan()
        source = self._source(plan, ss)
        return self._stream(plan, source, steps)

    def _materialize(self, steps: int, seed: Seed) -> NDArray[np.float64]:
        """All ``steps`` batches at once, (steps, n, E): one vectorised gather."""
        ss = seed_sequence(seed)
        plan = self._plan()
        source = self._source(plan, ss)
        if plan.kind == "batches":
            idx = np.arange(steps) % source.shape[0]
            return self._convert(source[idx], "batches")
        idx = np.arange(steps * plan.n) % source.shape[0]
        block = (
            source.take(idx, axis=0) if plan.kind == "trace" else self._convert(source[idx], "rows")
        )
        return block.reshape(steps, plan.n, plan.n_experts)

    def _source(self, plan: _Plan, ss: np.random.SeedSequence) -> NDArray[Any]:
        """The cyclic token source: completed trace rows (M, E), or the user array."""
        if plan.kind != "trace":
            return load_array(plan.stamp[0], plan.key)
        trace = load_topk_trace(plan.stamp[0], self._raw("n_experts"))
        blocks = [
            _completed_layer(
                trace, plan.stamp, j, ss, self.tail, self.tail_concentration, self.tail_spread
            )
            for j in plan.positions
        ]
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)

    def _stream(
        self, plan: _Plan, source: NDArray[Any], steps: int
    ) -> Iterator[NDArray[np.float64]]:
        total = source.shape[0]
        n = plan.n
        for t in range(steps):
            if plan.kind == "batches":
                yield self._convert(source[t % total], f"batch {t % total}")
                continue
            start = (t * n) % total
            if start + n <= total:
                block = source[start : start + n]
            else:
                block = source.take(np.arange(start, start + n) % total, axis=0)
            if plan.kind == "trace":
                yield np.array(block, dtype=np.float64, copy=True)
            else:
                yield self._convert(block, f"rows {start}..{(start + n - 1) % total}")

    def _convert(self, block: NDArray[Any], where: str) -> NDArray[np.float64]:
        x = np.array(block, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"non-finite score in {_default_path(self.path)} ({where})")
        if self.transform == "sigmoid":
            return sigmoid(x)
        if self.transform == "softmax":
            return softmax(x, axis=-1)
        return x


@functools.lru_cache(maxsize=64)
def _resolve(items: tuple[tuple[str, Any], ...], stamp: tuple[str, int, int]) -> _Plan:
    """Check a Replay config against its file; the plan of the stream (cached)."""
    cfg = dict(items)
    path = stamp[0]
    n, e_given = cfg["n"], cfg["n_experts"]
    if path.endswith(".npz") and cfg["key"] is None and is_topk_trace(npz_keys(path)):
        if cfg["transform"] != "none":
            raise ValueError("transform must be 'none' for a top-k trace (it holds probabilities)")
        trace = load_topk_trace(path, e_given)
        names = trace.layers
        if cfg["layers"] == "all":
            positions = tuple(range(len(names)))
        elif cfg["layers"] is not None:
            for v in cfg["layers"]:
                choice(v, "layers entries", names)  # type: ignore[arg-type]
            positions = tuple(names.index(v) for v in cfg["layers"])
        elif cfg["layer"] is not None:
            choice(cfg["layer"], "layer", names)  # type: ignore[arg-type]
            positions = (names.index(cfg["layer"]),)
        else:
            positions = (0,)
        if n is None:
            raise ValueError("n (tokens per batch) is required for a top-k trace")
        for j in positions:
            bad = _infeasible(trace.scores[j], trace.n_experts)
            if bad.any():
                tok = int(np.flatnonzero(bad)[0])
                left = 1.0 - trace.scores[j, tok].sum()
                raise ValueError(
                    f"trace cannot be completed: layer position {j}, token {tok} has leftover "
                    f"mass {left:.6g} that does not fit below its k-th score"
                )
        return _Plan(
            "trace",
            stamp,
            n,
            trace.n_experts,
            trace.k,
            positions,
            tuple(names[j] for j in positions),
            None,
        )
    if cfg["layer"] is not None or cfg["layers"] is not None:
        raise ValueError("layer/layers apply only to top-k trace files (topk_scores/topk_ids)")
    key = _array_key(path, cfg["key"])
    shape = load_array(path, key).shape
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"score array must be 2-D (N, E) or 3-D (T, n, E), got shape {shape}")
    e = int(shape[-1])
    if e_given is not None and e_given != e:
        raise ValueError(f"n_experts={e_given} does not match E={e} of {path}")
    if len(shape) == 3:
        if n is not None and n != shape[1]:
            raise ValueError(
                f"n={n} does not match the batch size n={shape[1]} of the 3-D array "
                f"(T, n, E) = {shape} in {path}"
            )
        return _Plan("batches", stamp, int(shape[1]), e, None, (), (), key)
    if n is None:
        raise ValueError("n (tokens per batch) is required for a 2-D (N, E) score array")
    return _Plan("rows", stamp, n, e, None, (), (), key)


def replay(
    path: str | None = None,
    *,
    n: int | None = None,
    layer: int | None = None,
    layers: int | Iterable[int] | str | None = None,
    n_experts: int | None = None,
    key: str | None = None,
    tail: str = "lognormal",
    tail_spread: float = TAIL_SPREAD,
    tail_concentration: float = 1.0,
    transform: str = "none",
) -> Replay:
    """A :class:`Replay` workload; ``path=None`` means the shipped FLAME trace. No I/O."""
    return Replay(
        path=path,
        n=n,
        n_experts=n_experts,
        layer=layer,  # type: ignore[arg-type]
        layers=layers,  # type: ignore[arg-type]  # normalised by Replay.__post_init__
        key=key,
        tail=tail,  # type: ignore[arg-type]
        tail_spread=tail_spread,
        tail_concentration=tail_concentration,
        transform=transform,
    )
