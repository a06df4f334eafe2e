"""Router-score trace files: a versioned, self-describing ``.npz`` readable with numpy alone.

A trace holds, for every recorded MoE layer of a model, the router output of the same seeded
subsample of N tokens: ``values`` (L, N, E) are either the gate *scores* s[t, i] (the numbers
Loss-Free Balancing adds its bias to, arXiv 2408.15664 Sec. 3) or the gate *logits* x[t, i],
with ``gate`` naming the score function f, logits -> scores (:data:`SCORE_FUNCTIONS`: "softmax"
for Mixtral / Qwen-MoE / OLMoE, "sigmoid" for DeepSeek-V3, arXiv 2412.19437 Sec. 2.1.2,
"sqrt_softplus", "identity" for gates that select on the logits), applied after the soft-cap
c tanh(x / c) when ``logit_softcap`` c > 0. :meth:`Trace.scores` always returns scores in
float64. Routing that the recorded values reproduce: TopK_i(v[t, i] + b[i]) with v = s
(``bias_on="scores"``) or v = the (capped) logits (``bias_on="logits"``), b the recorded
``bias`` of the layer (zeros for layers without one, ``bias_layers``), restricted to the best
``topk_groups`` of ``n_groups`` expert groups when group-limited (group score: sum of the top
``group_score_topk`` biased values), i.e. :func:`lfbtheory.route` with those keywords.
A router that is not of this form (a hash router, a learned skip class) cannot be recorded:
:func:`lfbtheory.adapters.recording.record_router_scores` refuses it and says why.

File layout (format ``lfbtheory.trace``, ``format_version`` 2; version 1 files, without the
entries marked v2, read as soft-cap 0, bias on scores, every layer biased; every entry a plain
array, so ``np.load(path, allow_pickle=False)`` reads it; the text entry ``description``
repeats this):

    format            str   "lfbtheory.trace"
    format_version    int   1
    values            (L, N, E) float32/float64   scores or logits, see ``kind``
    kind              str   "scores" | "logits"
    gate              str   "softmax" | "sigmoid" | "sqrt_softplus" | "identity" | "none"
                            (scores given directly)
    logit_softcap     float c of c tanh(x / c) applied to the logits first; 0 = none (v2)
    bias_on           str   "scores" | "logits": what the bias is added to (v2)
    k                 int   experts per token;   num_experts  int  E
    n_groups, topk_groups, group_score_topk   int   0, 0, 2 when routing is not group-limited
    layer_names       (L,) str   module names of the recorded gates
    model             str   identity of the model (class, config digest, name)
    dtype             str   torch dtype the gate produced (values are stored exactly in float32
                            when it was bfloat16/float16)
    batch_index, sequence_index, position   (N,) int64   where each token came from
                            (-1 = unknown); the same tokens for every layer
    seed, max_tokens  int   the subsample's seed and cap
    bias              (L, E) float64   optional: the model's selection bias at recording time
    bias_layers       (L,) bool   which layers have a bias (rows of the others are 0) (v2)
    experts           (L, N, k) int64  optional: the experts the model itself chose

Top-k-only traces (``topk_scores``/``topk_ids``, e.g. the shipped FLAME-MoE file) are a
different layout; :func:`inspect_trace` recognises both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory import fileio
from lfbtheory.routing import route, sigmoid, softmax

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GATES",
    "KINDS",
    "SCORE_FUNCTIONS",
    "BIAS_ON",
    "Trace",
    "TraceInfo",
    "inspect_trace",
    "read_trace",
    "validate_trace",
    "write_trace",
]

FORMAT = "lfbtheory.trace"
FORMAT_VERSION = 2
SCORE_FUNCTIONS = ("softmax", "sigmoid", "sqrt_softplus", "identity")
GATES = (*SCORE_FUNCTIONS, "none")
BIAS_ON = ("scores", "logits")
KINDS = ("scores", "logits")
_DESCRIPTION = __doc__.split("File layout", 1)[1] if __doc__ else ""


@dataclass(frozen=True, eq=False)
class Trace:
    """Recorded router outputs of L layers on the same N tokens (see the module docstring).

    Arrays are read-only; ``bias`` and ``experts`` may be None.
    """

    values: NDArray[np.floating]
    kind: str
    gate: str
    k: int
    layer_names: tuple[str, ...]
    model: str = ""
    dtype: str = "float32"
    n_groups: int = 0
    topk_groups: int = 0
    group_score_topk: int = 2
    batch_index: NDArray[np.int64] | None = None
    sequence_index: NDArray[np.int64] | None = None
    position: NDArray[np.int64] | None = None
    seed: int = 0
    max_tokens: int = 0
    bias: NDArray[np.float64] | None = None
    experts: NDArray[np.int64] | None = None
    logit_softcap: float = 0.0
    bias_on: str = "scores"
    bias_layers: NDArray[np.bool_] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        validate_trace(self)

    @property
    def n_layers(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_experts(self) -> int:
        return int(self.values.shape[2])

    @property
    def group_kwargs(self) -> dict[str, Any]:
        """Keywords for :func:`lfbtheory.route` / ``select_experts`` (empty when not grouped)."""
        if not self.n_groups:
            return {}
        return {
            "n_groups": self.n_groups,
            "topk_groups": self.topk_groups,
            "group_score_topk": self.group_score_topk,
        }

    def layer(self, layer: int | str) -> int:
        """Position of ``layer`` (an index in [0, L) or a recorded layer name)."""
        if isinstance(layer, str):
            if layer not in self.layer_names:
                raise ValueError(
                    f"layer must be one of the recorded layer names {list(self.layer_names)}; "
                    f"got {layer!r}"
                )
            return self.layer_names.index(layer)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise TypeError(
                f"layer must be an int in [0, {self.n_layers}) or a name, got {layer!r}"
            )
        if not 0 <= int(layer) < self.n_layers:
            raise ValueError(f"layer must be in [0, {self.n_layers}), got {layer}")
        return int(layer)

    def scores(self, layer: int | str) -> NDArray[np.float64]:
        """(N, E) float64 gate scores of one layer (the gate applied when ``kind='logits'``)."""
        x = np.asarray(self.values[self.layer(layer)], dtype=np.float64)
        if self.kind == "scores" or self.gate == "none":
            return x
        if self.logit_softcap:
            x = self.logit_softcap * np.tanh(x / self.logit_softcap)
        if self.gate == "sigmoid":
            return sigmoid(x)
        if self.gate == "softmax":
            return softmax(x, axis=1)
        if self.gate == "sqrt_softplus":
            return np.sqrt(np.logaddexp(0.0, x))
        return x

    def selection_values(self, layer: int | str) -> NDArray[np.float64]:
        """(N, E) the values the recorded bias is added to: the scores, or the (capped)
        logits when ``bias_on='logits'``."""
        if self.bias_on == "scores" or self.kind == "scores":
            return self.scores(layer)
        x = np.asarray(self.values[self.layer(layer)], dtype=np.float64)
        return self.logit_softcap * np.tanh(x / self.logit_softcap) if self.logit_softcap else x

    def layer_bias(self, layer: int | str) -> NDArray[np.float64] | None:
        """The layer's recorded bias, None when it has none."""
        j = self.layer(layer)
        if self.bias is None or (self.bias_layers is not None and not self.bias_layers[j]):
            return None
        return np.asarray(self.bias[j], np.float64)

    def routed_experts(self, layer: int | str) -> NDArray[np.int64]:
        """(N, k) experts that top-k of the recorded values (+ recorded bias) selects."""
        return route(
            self.selection_values(layer),
            self.k,
            self.layer_bias(layer),
            **self.group_kwargs,
            weights=False,
        ).experts

    def describe(self) -> str:
        grp = (
            f", group-limited {self.topk_groups}/{self.n_groups} groups (group score: top-"
            f"{self.group_score_topk} sum)"
            if self.n_groups
            else ""
        )
        cap = f" after soft-cap {self.logit_softcap:g}" if self.logit_softcap else ""
        biased = ""
        if self.bias is not None:
            m = self.n_layers if self.bias_layers is None else int(np.sum(self.bias_layers))
            biased = f", bias on the {self.bias_on} recorded for {m}/{self.n_layers} layer(s)"
        return (
            f"{self.model or 'model'}: {self.n_layers} layer(s) x {self.n_tokens} tokens, "
            f"E={self.n_experts}, k={self.k}, {self.gate} gate{cap}, {self.kind} stored "
            f"({self.dtype}){grp}{biased}"
        )


def _ro(a: NDArray[Any] | None) -> NDArray[Any] | None:
    if a is None:
        return None
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def validate_trace(trace: Trace) -> None:
    """Check a :class:`Trace`'s invariants; raise ValueError/TypeError naming the field."""
    v = np.asarray(trace.values)
    if v.dtype.kind != "f":
        raise TypeError(f"values must be a float array (L, N, E), got dtype {v.dtype}")
    if v.ndim != 3 or min(v.shape) < 1:
        raise ValueError(f"values must have shape (L, N, E) with L, N, E >= 1, got {v.shape}")
    n_layers, n, e = v.shape
    if e < 2:
        raise ValueError(f"values must hold E >= 2 experts, got E={e}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    if trace.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {trace.kind!r}")
    if trace.gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}; got {trace.gate!r}")
    if trace.kind == "logits" and trace.gate == "none":
        raise ValueError(f"gate must be one of {SCORE_FUNCTIONS} when kind='logits'")
    if trace.bias_on not in BIAS_ON:
        raise ValueError(f"bias_on must be one of {BIAS_ON}; got {trace.bias_on!r}")
    cap = trace.logit_softcap
    if (
        isinstance(cap, bool)
        or not isinstance(cap, (int, float, np.floating))
        or not (np.isfinite(cap) and cap >= 0)
    ):
        raise ValueError(f"logit_softcap must be a finite float >= 0 (0 = none), got {cap!r}")
    if (
        isinstance(trace.k, bool)
        or not isinstance(trace.k, (int, np.integer))
        or not (1 <= int(trace.k) < e)
    ):
        raise ValueError(f"k must be an integer in [1, E={e}), got {trace.k!r}")
    if len(trace.layer_names) != n_layers:
        raise ValueError(
            f"layer_names must name all L={n_layers} layers, got {len(trace.layer_names)}"
        )
    if len(set(trace.layer_names)) != n_layers:
        raise ValueError("layer_names must be unique")
    if trace.n_groups:
        if e % trace.n_groups or not 1 <= trace.topk_groups <= trace.n_groups:
            raise ValueError(
                f"n_groups must divide E={e} and topk_groups must be in [1, n_groups]; got "
                f"n_groups={trace.n_groups}, topk_groups={trace.topk_groups}"
            )
        if trace.k > trace.topk_groups * (e // trace.n_groups):
            raise ValueError(
                f"k={trace.k} exceeds the experts of topk_groups={trace.topk_groups} groups"
            )
    for name in ("batch_index", "sequence_index", "position"):
        a = getattr(trace, name)
        if a is not None and np.asarray(a).shape != (n,):
            raise ValueError(f"{name} must have shape (N,) = ({n},), got {np.asarray(a).shape}")
    if trace.bias is not None:
        b = np.asarray(trace.bias)
        if b.shape != (n_layers, e) or not np.all(np.isfinite(b)):
            raise ValueError(
                f"bias must be finite with shape (L, E) = ({n_layers}, {e}), got {b.shape}"
            )
    if trace.bias_layers is not None:
        m = np.asarray(trace.bias_layers)
        if m.shape != (n_layers,) or m.dtype != bool:
            raise ValueError(f"bias_layers must be a bool array of shape (L,) = ({n_layers},)")
        if trace.bias is None:
            raise ValueError("bias_layers needs bias (the rows of the biased layers)")
    if trace.experts is not None:
        x = np.asarray(trace.experts)
        if (
            x.shape != (n_layers, n, trace.k)
            or x.dtype.kind not in "iu"
            or (x.size and (x.min() < 0 or x.max() >= e))
        ):
            raise ValueError(
                f"experts must be integers in [0, {e}) with shape (L, N, k) = "
                f"({n_layers}, {n}, {trace.k}), got {x.dtype} {x.shape}"
            )
    object.__setattr__(trace, "values", _ro(v))
    object.__setattr__(trace, "k", int(trace.k))
    object.__setattr__(trace, "layer_names", tuple(str(s) for s in trace.layer_names))
    for name in ("batch_index", "sequence_index", "position", "experts"):
        a = getattr(trace, name)
        object.__setattr__(trace, name, None if a is None else _ro(np.asarray(a, np.int64)))
    if trace.bias is not None:
        object.__setattr__(trace, "bias", _ro(np.asarray(trace.bias, np.float64)))
    if trace.bias_layers is not None:
        object.__setattr__(trace, "bias_layers", _ro(np.asarray(trace.bias_layers, bool)))
    object.__setattr__(trace, "logit_softcap", float(cap))


def write_trace(trace: Trace, path: str | os.PathLike[str]) -> Path:
    """Write ``trace`` as a compressed ``.npz`` (layout in the module docstring); return path."""
    p = Path(path)
    if p.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {p.name!r}")
    n = trace.n_tokens
    minus = np.full(n, -1, np.int64)
    out: dict[str, Any] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "description": np.array(_DESCRIPTION),
        "values": trace.values,
        "kind": np.array(trace.kind),
        "gate": np.array(trace.gate),
        "k": np.array(trace.k),
        "num_experts": np.array(trace.n_experts),
        "n_groups": np.array(trace.n_groups),
        "topk_groups": np.array(trace.topk_groups),
        "group_score_topk": np.array(trace.group_score_topk),
        "layer_names": np.array(trace.layer_names, dtype=str),
        "model": np.array(trace.model),
        "dtype": np.array(trace.dtype),
        "batch_index": minus if trace.batch_index is None else trace.batch_index,
        "sequence_index": minus if trace.sequence_index is None else trace.sequence_index,
        "position": minus if trace.position is None else trace.position,
        "seed": np.array(trace.seed),
        "max_tokens": np.array(trace.max_tokens),
        "logit_softcap": np.array(trace.logit_softcap),
        "bias_on": np.array(trace.bias_on),
    }
    if trace.bias is not None:
        out["bias"] = trace.bias
        out["bias_layers"] = (
            np.ones(trace.n_layers, bool) if trace.bias_layers is None else trace.bias_layers
        )
    if trace.experts is not None:
        out["experts"] = trace.experts
    p.parent.mkdir(parents=True, exist_ok=True)
    return fileio.write_npz(p, out, compress=True)  # atomically: an old trace survives a failure


_F, _INT, _U, _B = "f", "iu", "U", "b"
# The arrays of a trace file as fileio.read_npz checks them (dtype kinds, dimensions, whether
# required) before reading any data: a hostile file is refused, never allocated.
TRACE_FIELDS = {
    "format": fileio.NpzField(_U, (0,)),
    "format_version": fileio.NpzField(_INT, (0,)),
    "values": fileio.NpzField(_F, (3,)),
    "kind": fileio.NpzField(_U, (0,)),
    "gate": fileio.NpzField(_U, (0,)),
    "k": fileio.NpzField(_INT, (0,)),
    "layer_names": fileio.NpzField(_U, (1,)),
    **{
        key: fileio.NpzField(_INT, (0,), False)
        for key in ("num_experts", "n_groups", "topk_groups", "group_score_topk", "seed")
    },
    "max_tokens": fileio.NpzField(_INT, (0,), False),
    **{key: fileio.NpzField(_U, (0,), False) for key in ("model", "dtype", "description")},
    **{
        key: fileio.NpzField(_INT, (1,), False)
        for key in ("batch_index", "sequence_index", "position")
    },
    "bias": fileio.NpzField(_F, (2,), False),
    "experts": fileio.NpzField(_INT, (3,), False),
    "logit_softcap": fileio.NpzField(_F, (0,), False),
    "bias_on": fileio.NpzField(_U, (0,), False),
    "bias_layers": fileio.NpzField(_B, (1,), False),
}


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace written by :func:`write_trace` (numpy only, no pickle); validate it.

    Every array's declared shape and dtype is checked against :data:`TRACE_FIELDS` and the
    file's size before anything is read (:func:`lfbtheory.fileio.read_npz`); a malformed or
    hostile file raises :class:`lfbtheory.fileio.FileFormatError` naming the file and field.
    """
    p = Path(path)
    names = fileio.inspect_npz(p, what="trace")
    if "format" not in names:
        if {"topk_scores", "topk_ids"} <= set(names):
            raise fileio.FileFormatError(
                p,
                "is a top-k-only trace (topk_scores/topk_ids); read it with inspect_trace() "
                "or replay it with the 'trace' workload",
                what="trace",
            )
        raise fileio.FileFormatError(
            p, f"is not an {FORMAT} file (no 'format' entry)", what="trace"
        )
    data = fileio.read_npz(p, TRACE_FIELDS, what="trace")
    if str(data["format"]) != FORMAT:
        bad = str(data["format"])
        raise fileio.FileFormatError(
            p, f"must be {FORMAT!r}, got {bad!r}", what="trace", field="format"
        )
    version = int(data["format_version"])
    if version > FORMAT_VERSION:
        raise fileio.FileFormatError(
            p,
            f"must be <= {FORMAT_VERSION} (this lfbtheory), got {version}: upgrade lfbtheory "
            "to read this file",
            what="trace",
            field="format_version",
        )

    def get(key: str, default: int) -> int:
        return int(data[key]) if key in data else default

    def text(key: str, default: str = "") -> str:
        return str(data[key]) if key in data else default

    try:
        return Trace(
            values=data["values"],
            kind=text("kind"),
            gate=text("gate"),
            k=int(data["k"]),
            layer_names=tuple(str(s) for s in data["layer_names"].tolist()),
            model=text("model"),
            dtype=text("dtype"),
            n_groups=get("n_groups", 0),
            topk_groups=get("topk_groups", 0),
            group_score_topk=get("group_score_topk", 2),
            seed=get("seed", 0),
            max_tokens=get("max_tokens", 0),
            bias=data.get("bias"),
            experts=data.get("experts"),
            logit_softcap=float(data["logit_softcap"]) if "logit_softcap" in data else 0.0,
            bias_on=text("bias_on", "scores"),
            bias_layers=data.get("bias_layers"),
            batch_index=data.get("batch_index"),
            sequence_index=data.get("sequence_index"),
            position=data.get("position"),
        )
    except (TypeError, ValueError) as exc:  # the validation of the trace's content
        if isinstance(exc, fileio.FileFormatError):
            raise
        raise fileio.FileFormatError(p, str(exc), what="trace") from None


_TOPK_FIELDS = {
    "topk_scores": fileio.NpzField(_F, (3,)),
    "topk_ids": fileio.NpzField(_INT, (3,)),
    "num_experts": fileio.NpzField(_INT, (0,), False),
    "layers": fileio.NpzField(_INT, (1,), False),
}


@dataclass(frozen=True)
class TraceInfo:
    """What a replay needs to know about a trace file, for either layout."""

    layout: str  # "lfbtheory.trace" | "topk"
    n_experts: int
    k: int
    gate: str
    n_tokens: int
    layer_names: tuple[str, ...]
    has_bias: bool
    n_groups: int = 0
    topk_groups: int = 0


def inspect_trace(path: str | os.PathLike[str]) -> TraceInfo:
    """E, k, gate, tokens per layer and layer names of an lfbtheory trace or a top-k trace.

    For top-k traces (``topk_scores`` (L, N, k), ``topk_ids``, ``num_experts``, optional
    ``layers``) k is the recorded width and the gate is "softmax" (the stored rows are
    probabilities; the completion in :mod:`lfbtheory.workloads` keeps rows summing to 1).
    """
    p = Path(path)
    names = fileio.inspect_npz(p, what="trace")
    if {"topk_scores", "topk_ids"} <= set(names) and "format" not in names:
        shape = names["topk_scores"].shape
        if len(shape) != 3:
            raise fileio.FileFormatError(
                p, f"must be (L, N, k), got {shape}", what="trace", field="topk_scores"
            )
        if "num_experts" not in names:
            raise fileio.FileFormatError(
                p, "is missing: E cannot be inferred", what="trace", field="num_experts"
            )
        small = {key: _TOPK_FIELDS[key] for key in ("num_experts", "layers")}
        data = fileio.read_npz(p, small, what="trace")  # the small entries only
        layers = data.get("layers")
        names_ = (
            tuple(str(int(v)) for v in layers)
            if layers is not None
            else tuple(str(i) for i in range(shape[0]))
        )
        return TraceInfo(
            "topk", int(data["num_experts"]), int(shape[2]), "softmax", int(shape[1]), names_, False
        )
    t = read_trace(p)
    return TraceInfo(
        FORMAT,
        t.n_experts,
        t.k,
        t.gate,
        t.n_tokens,
        t.layer_names,
        t.bias is not None,
        t.n_groups,
        t.topk_groups,
    )
