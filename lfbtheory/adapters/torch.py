"""PyTorch adapter (optional extra ``torch``): check a torch router without changing it.

``from_torch(obj, ...)`` returns a numpy router for :mod:`lfbtheory.analysis.causality` and
:mod:`lfbtheory.testing.conformance`: numpy arrays go in, are converted to tensors (float
arrays to ``dtype``, default float32; bool and integer arrays keep their kind), and tensors
coming back are converted to numpy. What ``obj`` may be:

(a) a router that selects: a function ``fn(x) -> out`` or ``fn(x, state) -> (out, state)``, or
    an ``nn.Module`` whose ``forward(x) -> out``. ``out`` is the expert indices (n, k) or an
    (n, E) bool routing map, or a tuple / list / dict / dataclass holding them: name the
    entries with ``indices=`` and ``weights=`` (a position, a key/attribute name or a
    function of ``out``); unnamed, the one integer (or bool) 2-D tensor is the selection and
    the one float tensor of the same shape (or (n, E) next to a routing map) the weights.
    A stateful module keeps its state in buffers updated in place: state = a snapshot of its
    buffers, loaded before each call (``None`` = the buffers when wrapped).
(b) a gate module with a bias buffer (``bias=`` its name; found automatically under the
    usual names, e.g. ``e_score_correction_bias``, ``expert_bias``): the adapter writes the
    suite's bias into the buffer, so every bias property applies (``select(scores, bias)``).
    With ``update=`` (a method name, called ``module.<update>(loads)``, or a callable
    ``update(module, loads)`` that moves the bias in place from the summed tokens per expert
    of an optimizer step, or ``"rule"``: the adapter applies the declared rule itself, for
    inference-only gates such as the Hugging Face routers, whose update lives in a trainer;
    the run then starts from the rule's initial bias, and the report says the update was the
    adapter's) and ``rule=`` (the declared :class:`lfbtheory.updates.Rule`), the
    adapter also plays the trainer: it routes micro-batches (counting the selected experts of
    real tokens in train mode, or reading the module's own counts buffer ``counts=``), sums
    the counts over data-parallel replicas, calls the update once per optimizer step and
    zeroes the counts -- so the whole training lifecycle of the suite applies.
    Modes: "train" = ``module.train()`` with grad enabled; "eval" = ``module.eval()`` under
    ``no_grad``; "no_grad" and "recompute" = ``module.train()`` under ``no_grad`` (a module
    counting only ``if self.training and torch.is_grad_enabled()`` counts neither).
    Checkpoints are the module's own ``state_dict()`` (a bias buffer registered with
    ``persistent=False`` is missing from it, and the checkpoint property says so).
(c) a gate that takes logits or hidden states instead of scores (``inputs=``): "scores" (the
    default) passes the suite's scores s; "logits" passes z = logit(s) (s clipped to
    [eps, 1 - eps], eps = 2^-20: 0/1 scores would give z = -inf/inf and NaN in the
    projection, 0 * inf); "hidden" passes h = [logit(s), 0, ..., 0] of the module's hidden
    size d >= E and sets its projection weight (``projection=``, found automatically as the
    (E, d) weight) to the identity [I_E | 0], so the gate's own logits are exactly logit(s)
    (the original weight is kept as ``router.original_projection``).
    A gate computing sigmoid(z) in float32 recovers s within ~1e-7, far below the suite's
    grid spacing 2^-8 (scores j/256, biases in Z/256); the suite's tie-aware oracles accept
    any tie-break among exactly tied values, so the round-off cannot cause a false alarm.
(d) an object with the :class:`lfbtheory.routers.BiasRouter` methods written in torch (all or
    some of init/select/forward/step/bias/counts/freeze/state_dict/load_state_dict): each
    method it has is proxied; a router with only ``select`` still gets every bias property.

``n_experts``, ``k``, ``rule`` and the group attributes (``n_groups``, ``topk_groups``,
``group_score_topk``) are read from the object (also under the names ``num_experts``,
``n_routed_experts``, ``top_k``, ``topk``, ``router_topk``, ``num_experts_per_tok``,
``n_group``, ``topk_group``, ``n_limited_groups``) or given as keywords; declare the groups,
or the group property cannot run. torch is imported lazily; without it ``from_torch`` raises
ImportError saying how to install. From the command line, point ``lfb check`` at a
zero-argument factory, e.g. ``def make(): return from_torch(MyGate(), rule=updates.sign(1e-3),
update="update_bias")`` and ``lfb check mymodule:make``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CheckpointDict",
    "GateState",
    "INPUTS",
    "extract",
    "from_torch",
    "require_torch",
    "to_numpy",
    "to_torch",
]

_FORWARDED = ("n_experts", "k", "rule", "n_groups", "topk_groups", "group_score_topk")
_LIFECYCLE = (
    "init",
    "select",
    "forward",
    "step",
    "bias",
    "counts",
    "freeze",
    "state_dict",
    "load_state_dict",
)


def require_torch() -> Any:
    """Import torch or raise ImportError with the install line."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "lfbtheory.adapters.torch needs PyTorch: pip install 'lfbtheory[torch]' "
            "(CPU build: pip install torch==2.13.0)"
        ) from exc
    return torch


def _torch_dtype(torch: Any, dtype: Any) -> Any:
    if isinstance(dtype, str):
        if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
            raise ValueError(
                f"dtype must name a torch floating dtype (float32, float64, ...), got {dtype!r}"
            )
        dtype = getattr(torch, dtype)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a torch floating dtype, got {dtype!r}")
    return dtype


def to_torch(x: Any, dtype: Any = "float32", device: str = "cpu") -> Any:
    """numpy -> torch, recursively: float arrays/scalars to ``dtype``, ints to int64, bools kept."""
    torch = require_torch()
    dt = _torch_dtype(torch, dtype)
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        a = np.asarray(x)
        if a.dtype == bool:
            return torch.as_tensor(a.copy(), device=device)
        if np.issubdtype(a.dtype, np.integer):
            return torch.as_tensor(a.astype(np.int64), device=device)
        if np.issubdtype(a.dtype, np.floating):
            return torch.as_tensor(a.astype(np.float64), device=device).to(dt)
        return x
    if isinstance(x, tuple):
        return tuple(to_torch(v, dtype, device) for v in x)
    if isinstance(x, list):
        return [to_torch(v, dtype, device) for v in x]
    if isinstance(x, Mapping):
        return {key: to_torch(v, dtype, device) for key, v in x.items()}
    return x


def to_numpy(x: Any) -> Any:
    """torch -> numpy, recursively (bool stays bool, ints -> int64, floats keep their width;
    bfloat16, which numpy lacks, becomes float32 holding the bf16 values)."""
    torch = require_torch()
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)
        a = t.numpy().copy()
        if np.issubdtype(a.dtype, np.integer):
            a = a.astype(np.int64)
        return a
    if isinstance(x, tuple):
        return tuple(to_numpy(v) for v in x)
    if isinstance(x, list):
        return [to_numpy(v) for v in x]
    if isinstance(x, Mapping):
        return {key: to_numpy(v) for key, v in x.items()}
    return x


class CheckpointDict(dict):  # type: ignore[type-arg]
    """A state dict converted to numpy that remembers each entry's torch dtype
    (``storage_dtypes``): bfloat16 entries become float32 arrays in numpy, but the conformance
    suite must still see that the checkpoint stored them in bfloat16."""

    storage_dtypes: dict[str, str] = {}  # replaced per instance by _BiasRouterProxy.state_dict


INPUTS = ("scores", "logits", "hidden")
EPS = 2.0**-20
SCORE_ERROR = 2.0**-20  # bound on |f(float32 logit(s)) - f(logit(s))| for the gates' f


def _declared(design: Any, rule: Any) -> dict[str, Any]:
    """The router attributes the suite reads, from a :class:`discovery.Design`."""
    out: dict[str, Any] = {}
    for key in ("n_experts", "k"):
        if getattr(design, key) is not None:
            out[key] = int(getattr(design, key))
    if design.group_limited:
        out["n_groups"], out["topk_groups"] = int(design.n_groups), int(design.topk_groups)
        if design.group_score_topk is not None:
            out["group_score_topk"] = int(design.group_score_topk)
    if rule is not None:
        out["rule"] = rule
    return out


def _fields(out: Any) -> list[tuple[str, Any]]:
    if isinstance(out, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(out)]
    if isinstance(out, Mapping):
        return [(str(key), v) for key, v in out.items()]
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return [(f.name, getattr(out, f.name)) for f in dataclasses.fields(out)]
    return [("0", out)]


def _pick(out: Any, spec: Any) -> Any:
    if callable(spec):
        return spec(out)
    if isinstance(spec, int):
        return out[spec]
    return out[spec] if isinstance(out, Mapping) else getattr(out, spec)


def _describe_out(out: Any) -> str:
    parts = []
    for name, v in _fields(out):
        shape = tuple(v.shape) if hasattr(v, "shape") else type(v).__name__
        parts.append(f"{name}: {getattr(v, 'dtype', '')} {shape}".replace("torch.", ""))
    return "; ".join(parts)


def _sparse(x: Any) -> tuple[Any, Any] | None:
    """(ids, values) when every row of the (n, E) float ``x`` has the same k < E non-zeros."""
    nz = x != 0
    per_row = nz.sum(-1)
    if not per_row.numel() or not bool((per_row == per_row[0]).all()):
        return None
    kk = int(per_row[0])
    if not 0 < kk < x.shape[1]:
        return None
    ids = nz.nonzero()[:, 1].view(x.shape[0], kk)
    return ids, x.gather(1, ids)


def extract(
    out: Any, *, indices: Any = None, weights: Any = None, k: int | None = None
) -> tuple[Any, Any]:
    """(selection, weights) as numpy from a router's raw output (see module docstring (a)).

    The selection is (n, k) int64 ids, or the (n, E) bool map when rows do not all hold k
    experts; weights are aligned with the ids ((n, E) dense weights are gathered at the ids),
    or None when the output has none. Raises ValueError naming the output's entries when the
    selection is ambiguous or missing.
    """
    torch = require_torch()
    tensors = [(n, v) for n, v in _fields(out) if isinstance(v, torch.Tensor)]
    if indices is not None:
        sel = _pick(out, indices)
    elif isinstance(out, torch.Tensor):
        sel = out
    else:
        cands = [v for _, v in tensors if v.ndim == 2 and not v.is_floating_point()]
        ints = [v for v in cands if v.dtype != torch.bool]
        cands = ints or cands
        maps = [_sparse(v) for _, v in tensors if v.ndim == 2 and v.is_floating_point()]
        sparse = [x for x in maps if x is not None and (k is None or x[0].shape[1] == k)]
        if not cands and len(sparse) == 1 and weights is None:
            # a dense (n, E) map holding the k gate weights of each token (Llama-4 style)
            return to_numpy(sparse[0][0]), np.asarray(to_numpy(sparse[0][1]), np.float64)
        if len(cands) != 1:
            raise ValueError(
                "cannot tell which router output holds the selected experts "
                f"({_describe_out(out)}): name it with from_torch(..., indices=<position, "
                "key or attribute>)"
            )
        sel = cands[0]
    w = None
    if weights is not None:
        w = _pick(out, weights)
    elif not isinstance(out, torch.Tensor):
        floats = [v for _, v in tensors if v.is_floating_point() and v.ndim == 2]
        same = [v for v in floats if tuple(v.shape) == tuple(sel.shape)]
        if sel.dtype == torch.bool and len(floats) == 1:
            w = floats[0]
        elif len(same) == 1:
            w = same[0]
    sel_np = to_numpy(sel)
    w_np = None if w is None else np.asarray(to_numpy(w), dtype=np.float64)
    if sel_np.dtype == bool:
        mask = sel_np
        counts = mask.sum(axis=1)
        if (
            mask.ndim == 2
            and counts.size
            and np.all(counts == counts[0])
            and (k is None or counts[0] == k)
        ):
            ids = np.argsort(~mask, axis=1, kind="stable")[:, : int(counts[0])].astype(np.int64)
            if w_np is not None and w_np.shape == mask.shape:
                w_np = np.take_along_axis(w_np, ids, axis=1)
            return ids, w_np
        return mask, w_np
    if w_np is not None and w_np.ndim == 2 and sel_np.ndim == 2 and w_np.shape != sel_np.shape:
        if w_np.shape[0] == sel_np.shape[0] and w_np.shape[1] > sel_np.max(initial=-1):
            w_np = np.take_along_axis(w_np, sel_np, axis=1)  # dense (n, E) probabilities
    return sel_np, w_np


def _logits(scores: Any, eps: float) -> np.ndarray:
    s = np.clip(np.asarray(scores, np.float64), eps, 1.0 - eps)
    return np.log(s) - np.log1p(-s)


def _find_projection(module: Any, n_experts: int | None, name: str | None) -> tuple[str, Any]:
    params = dict(module.named_parameters())
    if name is not None:
        if name not in params:
            raise ValueError(f"projection {name!r} is not a parameter of {type(module).__name__}")
        return name, params[name]
    cands = [
        (n, p)
        for n, p in params.items()
        if p.ndim == 2 and (n_experts is None or p.shape[0] == n_experts)
    ]
    if len(cands) != 1:
        raise ValueError(
            "inputs='hidden' needs the gate's (E, d) projection weight; found "
            f"{[n for n, _ in cands] or 'none'}: name it with from_torch(..., projection=...)"
        )
    return cands[0]


class _Inputs:
    """Builds the tensor the torch router takes from the suite's scores (module doc (c))."""

    def __init__(
        self,
        module: Any,
        inputs: str,
        dtype: Any,
        device: str,
        eps: float,
        n_experts: Any,
        projection: str | None,
    ) -> None:
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {inputs!r}")
        self.inputs, self.dtype, self.device, self.eps = inputs, dtype, device, eps
        self.hidden = 0
        self.original_projection = None
        if inputs == "hidden":
            torch = require_torch()
            if module is None or not isinstance(module, torch.nn.Module):
                raise TypeError("inputs='hidden' needs an nn.Module with a projection weight")
            pname, w = _find_projection(module, n_experts, projection)
            e, d = w.shape
            if d < e:
                raise ValueError(
                    f"inputs='hidden' needs hidden size d >= n_experts to realise any scores "
                    f"with an identity projection; {pname} has shape {tuple(w.shape)}"
                )
            self.original_projection = w.detach().clone()
            with torch.no_grad():
                w.zero_()
                w[:, :e] = torch.eye(e, dtype=w.dtype, device=w.device)
            self.hidden = d

    def __call__(self, scores: Any) -> Any:
        s = np.asarray(scores, np.float64)
        if self.inputs == "scores":
            return to_torch(s, self.dtype, self.device)
        z = _logits(s, self.eps)
        if self.inputs == "hidden":
            z = np.concatenate([z, np.zeros((z.shape[0], self.hidden - z.shape[1]))], axis=1)
        return to_torch(z, self.dtype, self.device)

    def logits_seen(self, scores: Any) -> np.ndarray:
        """The logits the gate computes from the suite's scores (inputs "logits" / "hidden"):
        z = logit(clip(s)) as the gate receives it (rounded to the input dtype)."""
        z = _logits(np.asarray(scores, np.float64), self.eps)
        return np.asarray(to_numpy(to_torch(z, self.dtype)), np.float64)

    def describe(self) -> str:
        m, ex = math.frexp(self.eps)
        eps = f"2^{ex - 1}" if m == 0.5 else f"{self.eps:g}"
        if self.inputs == "logits":
            return f"inputs: logits z = logit(clip(s, {eps}, 1 - {eps}))"
        if self.inputs == "hidden":
            return (
                f"inputs: hidden states h = [logit(clip(s, {eps}, 1 - {eps})), 0] "
                f"of size {self.hidden}, projection weight set to the identity [I | 0]"
            )
        return "inputs: the suite's scores s"


def _positional_arity(fn: Any) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    return sum(
        1
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


def _set_attrs(target: Any, declared: Mapping[str, Any]) -> None:
    for key, v in declared.items():
        setattr(target, key, v)


class _FunctionRouter:
    """numpy router around ``fn(x, state) -> (out, state)`` or a selector ``fn(x) -> out``."""

    def __init__(self, fn: Any, inputs: _Inputs, declared: Mapping[str, Any], pick: Any) -> None:
        self.fn, self.inputs, self.pick = fn, inputs, pick
        self.stateful = _positional_arity(fn) >= 2
        _set_attrs(self, declared)
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def describe(self) -> str:
        return self.inputs.describe()

    def __call__(self, scores: Any, state: Any) -> tuple[Any, Any]:
        torch = require_torch()
        with torch.no_grad():
            x = self.inputs(scores)
            if self.stateful:
                out, state = self.fn(x, state)
            else:
                out = self.fn(x)
        return self.pick(out)[0], state


class _ModuleRouter:
    """numpy router around a (possibly stateful) ``nn.Module``: state = a snapshot of its
    buffers, loaded before each call, so a stream can be re-run."""

    def __init__(
        self, module: Any, inputs: _Inputs, declared: Mapping[str, Any], pick: Any
    ) -> None:
        self.module, self.inputs, self.pick = module, inputs, pick
        self.initial = _snapshot(module)
        self.original_projection = inputs.original_projection
        _set_attrs(self, declared)
        self.__name__ = type(module).__name__

    def describe(self) -> str:
        return self.inputs.describe()

    def __call__(self, scores: Any, state: Any) -> tuple[Any, Any]:
        torch = require_torch()
        _restore(self.module, self.initial if state is None else state)
        with torch.no_grad():
            out = self.module(self.inputs(scores))
        return self.pick(out)[0], _snapshot(self.module)


def _state_tensors(module: Any) -> dict[str, Any]:
    """The module's router state: every buffer (persistent or not) and any parameter that
    does not require grad (a bias registered as a frozen Parameter)."""
    out = dict(module.named_buffers())
    for name, p in module.named_parameters():
        if not p.requires_grad:
            out[name] = p
    return out


def _snapshot(module: Any) -> dict[str, Any]:
    return {name: t.detach().clone() for name, t in _state_tensors(module).items()}


def _restore(module: Any, snap: Mapping[str, Any]) -> None:
    torch = require_torch()
    live = _state_tensors(module)
    with torch.no_grad():
        for name, t in snap.items():
            live[name].copy_(t)


@contextmanager
def _mode(module: Any, mode: str) -> Any:
    torch = require_torch()
    was = module.training
    module.train(mode != "eval")
    try:
        with torch.set_grad_enabled(mode == "train"):
            yield
    finally:
        module.train(was)


class GateState(NamedTuple):
    """State of a wrapped gate module: ``buffers`` (its router state tensors), ``pending``
    (int64 tokens per expert counted by the adapter since the last step; None when the module
    counts itself), updates applied, frozen flag, the bias (``bias``: held by the adapter when
    the gate takes it as a forward argument, else None) and the declared rule's state when the
    adapter applies the rule itself (``update="rule"``)."""

    buffers: dict[str, Any]
    pending: Any
    n_updates: int = 0
    frozen: bool = False
    bias: Any = None
    rule_state: Any = None


class _GateModule:
    """numpy router (select, and with an update the full BiasRouter lifecycle) around a torch
    gate module holding its bias in a buffer or taking it as a forward argument (module
    docstring (b)); its design comes from :mod:`lfbtheory.adapters.discovery`."""

    rule: Any  # set from the declared keywords (_set_attrs), when a rule is declared
    initial_bias: Any
    update: Callable[[Any], Any] | None

    @property
    def _buffer(self) -> str:
        """The bias buffer's name (the bias is a buffer whenever it is not an argument)."""
        assert self.bias_name is not None
        return self.bias_name

    def __init__(
        self,
        module: Any,
        design: Any,
        inputs: _Inputs,
        declared: Mapping[str, Any],
        pick: Any,
        update: Any,
    ) -> None:
        torch = require_torch()
        self.module, self.design, self.inputs, self.pick = module, design, inputs, pick
        self._torch = torch
        kind, _, path = design.bias.partition(":")
        self.bias_arg = path if kind == "argument" else None
        self.bias_name = None if kind == "argument" else path
        self.counts_name = design.counts
        self.original_projection = inputs.original_projection
        tensors = _state_tensors(module)
        if self.bias_name is not None and self.bias_name not in tensors:
            raise ValueError(
                f"bias {self.bias_name!r} is not a buffer (or grad-free parameter) of "
                f"{type(module).__name__}; it has {sorted(tensors)}"
            )
        if self.counts_name is not None and self.counts_name not in tensors:
            raise ValueError(
                f"counts {self.counts_name!r} is not a buffer of {type(module).__name__}"
            )
        self.initial = _snapshot(module)
        _set_attrs(self, declared)
        if "n_experts" not in declared:
            if self.bias_name is None:
                raise ValueError("n_experts could not be read: pass from_torch(..., n_experts=)")
            self.n_experts = int(tensors[self.bias_name].numel())
        e = self.n_experts
        self.initial_bias = (
            torch.zeros(e, dtype=torch.float32) if self.bias_arg is not None else None
        )
        self.rule_applied = isinstance(update, str) and update == "rule"
        if update is None:
            for m in _LIFECYCLE:
                if m != "select":
                    setattr(self, m, None)  # no update: the lifecycle properties report it missing
            self.update = None
        elif self.rule_applied:
            if not hasattr(getattr(self, "rule", None), "update"):
                raise ValueError('update="rule" needs the declared rule: from_torch(..., rule=)')
            self.update = None
        elif isinstance(update, str):
            fn = getattr(module, update, None)
            if not callable(fn):
                raise ValueError(f"update {update!r} is not a method of {type(module).__name__}")
            self.update = fn
        elif callable(update):
            self.update = lambda loads: update(module, loads)
        else:
            raise TypeError(f'update must be a method name, "rule" or a callable, got {update!r}')
        self.__name__ = type(module).__name__
        self.selection_dtype = str(inputs.dtype).removeprefix("torch.")
        self.score_error = SCORE_ERROR if inputs.inputs != "scores" else 0.0
        self.design_gaps: tuple[str, ...] = ()
        if inputs.inputs != "scores":
            self._measure()
        if "k" not in declared and getattr(self, "k", None) is None:
            sel, _ = self._route(np.full((2, e), 0.5), self._buffers(None), "eval")
            self.k = int(sel.shape[1]) if sel.dtype != bool else int(sel.sum(axis=1).max())

    # -- design ----------------------------------------------------------------------------
    def _measure(self) -> None:
        """Settle the gate's score function, bias placement and group rule by measurement
        (:func:`lfbtheory.adapters.discovery.fit_design`): route 256 tokens with logits
        z ~ N(0, 1.5^2) and a bias ~ N(0, (0.5 / sqrt(E))^2) (seed 0), compare with each
        hypothesis. Refused or unsettled designs become coverage gaps."""
        from lfbtheory.adapters.discovery import fit_design

        rng = np.random.default_rng(0)
        e = self.n_experts
        z = rng.normal(0.0, 1.5, (256, e))
        s = 1.0 / (1.0 + np.exp(-z))
        b = rng.normal(0.0, 0.5 / np.sqrt(e), e)
        sel, w = self.select(s, b)
        if sel.dtype == bool:
            self.design_gaps = ("the gate returns a routing map with varying experts per token",)
            return
        zin = self.inputs.logits_seen(s) * self.design.logit_scale
        d = fit_design(self.design, zin, sel, b, w, tol=4 * SCORE_ERROR)
        self.design = d
        if d.refused:
            self.design_gaps = (f"design: {d.refused}",)
        else:
            self.design_gaps = tuple(f"design: {g}" for g in d.gaps)
        if d.k is not None:
            self.k = int(d.k)
        if d.group_limited and d.group_score_topk is not None:
            self.group_score_topk = int(d.group_score_topk)

    def gate_scores(self, scores: Any) -> Any:
        """The values the gate adds its bias to when fed the suite's scores (its f(logit(s)),
        or logit(s) for a bias on the logits; the scores themselves for inputs='scores')."""
        s = np.asarray(scores, np.float64)
        if self.inputs.inputs == "scores":
            return s
        return self.design.scores(self.inputs.logits_seen(s) * self.design.logit_scale)

    def describe(self) -> str:
        where = (
            f"bias passed as forward argument {self.bias_arg!r} (held by the adapter)"
            if self.bias_arg is not None
            else f"bias buffer {self.bias_name!r}"
        )
        how = (
            "adapter counts selected experts of real tokens"
            if self.counts_name is None
            else (f"module counts in buffer {self.counts_name!r}")
        )
        return f"{where}; {how}; {self.inputs.describe()}; design: {self.design.describe()}"

    @property
    def provenance(self) -> dict[str, str]:
        """Who each lifecycle piece exercises: the user's module or the adapter."""
        upd = (
            "the adapter applies the declared rule to the bias (the module has no update "
            "of its own)"
            if self.rule_applied
            else "your update"
            if self.update is not None
            else "nothing (no update: inference only)"
        )
        counts = (
            "the adapter counts the selected experts"
            if self.counts_name is None
            else f"your module's counts buffer {self.counts_name!r}"
        )
        return {
            "select": "your module's forward (selection and weights)",
            "forward": f"your module's forward; {counts}",
            "step": f"the adapter sums counts over replicas and calls {upd}",
            "state_dict": "your module's state_dict (+ the adapter's counters)",
        }

    # -- plumbing --------------------------------------------------------------------------
    def _buffers(self, bias: Any) -> dict[str, Any]:
        if bias is None or self.bias_name is None:
            return dict(self.initial)
        return dict(self.initial, **{self.bias_name: self._bias_tensor(bias)})

    def _call(self, scores: Any, valid: Any, arg_bias: Any = None) -> Any:
        x = self.inputs(scores)
        kw = {}
        if self.bias_arg is not None:
            kw[self.bias_arg] = arg_bias if arg_bias is not None else self.initial_bias
        if valid is None or self.counts_name is None:
            return self.module(x, **kw)
        params = inspect.signature(self.module.forward).parameters
        v = to_torch(np.asarray(valid, dtype=bool), device=self.inputs.device)
        if "valid" in params:
            return self.module(x, valid=v, **kw)
        if "padding_mask" in params:
            return self.module(x, padding_mask=~v, **kw)
        if np.all(valid):
            return self.module(x, **kw)
        raise ValueError(
            f"{type(self.module).__name__} counts its own tokens but forward() takes no "
            "valid= or padding_mask= argument, so padding cannot be excluded from its counts"
        )

    def _route(
        self,
        scores: Any,
        buffers: Mapping[str, Any],
        mode: str,
        valid: Any = None,
        arg_bias: Any = None,
    ):
        _restore(self.module, buffers)
        if arg_bias is None and self.bias_arg is not None and self.bias_name is None:
            arg_bias = buffers.get("__bias__")
        with _mode(self.module, mode):
            out = self._call(scores, valid, arg_bias)
        return self.pick(out)

    def _bias_tensor(self, bias: Any) -> Any:
        ref = self.initial[self.bias_name] if self.bias_name else self.initial_bias
        return self._torch.as_tensor(np.asarray(bias, np.float64)).to(ref.dtype).reshape(ref.shape)

    def _state_buffers(self, state: GateState) -> dict[str, Any]:
        if self.bias_arg is None:
            return state.buffers
        return dict(state.buffers, __bias__=state.bias)

    # -- pure routing ------------------------------------------------------------------------
    def select(self, scores: Any, bias: Any) -> tuple[Any, Any]:
        if self.bias_arg is not None:
            sel, w = self._route(scores, self.initial, "eval", arg_bias=self._bias_tensor(bias))
        else:
            sel, w = self._route(scores, self._buffers(bias), "eval")
        if w is None:
            raise ValueError(
                "the gate's output holds no weights aligned with the selection: name them "
                "with from_torch(..., weights=<position, key or attribute>)"
            )
        return sel, w

    # -- lifecycle (with update=) -------------------------------------------------------------
    def _live_bias(self, buffers: Mapping[str, Any], bias: Any) -> np.ndarray:
        t = bias if self.bias_arg is not None else buffers[self._buffer]
        return np.asarray(to_numpy(t), np.float64).reshape(-1)

    def init(self, bias0: Any = None) -> GateState:
        buffers = dict(self.initial)
        if bias0 is None and self.rule_applied:
            bias0 = self.rule.init(self.n_experts).bias  # a fresh run starts at the rule's init
        held = None
        if self.bias_arg is not None:
            held = self._bias_tensor(np.zeros(self.n_experts) if bias0 is None else bias0)
        elif bias0 is not None:
            buffers[self._buffer] = self._bias_tensor(bias0)
        pending = None if self.counts_name else np.zeros(self.n_experts, dtype=np.int64)
        rs = None
        if self.rule_applied:
            rs = self.rule.init(self.n_experts, self._live_bias(buffers, held))
        return GateState(buffers, pending, bias=held, rule_state=rs)

    def forward(
        self, scores: Any, state: GateState, *, mode: str = "train", valid: Any = None
    ) -> tuple[Any, Any, GateState]:
        sel, w = self._route(scores, state.buffers, mode, valid, arg_bias=state.bias)
        pending = state.pending
        if self.counts_name is None and mode == "train":
            from lfbtheory.metrics import expert_loads

            pending = pending + expert_loads(sel, self.n_experts, valid=valid)
        return sel, w, state._replace(buffers=_snapshot(self.module), pending=pending)

    def _counts(self, state: GateState) -> np.ndarray:
        if self.counts_name is None:
            return np.asarray(state.pending)
        return to_numpy(state.buffers[self.counts_name])

    def step(self, states: Any) -> tuple[GateState, ...]:
        torch = self._torch
        total = np.sum([np.asarray(self._counts(s), np.float64) for s in states], axis=0)
        out = []
        for s in states:
            _restore(self.module, s.buffers)
            held, rs = s.bias, s.rule_state
            with torch.no_grad():
                if not s.frozen and self.rule_applied:
                    rs = self.rule.update(total, rs)
                    new = self._bias_tensor(rs.bias)
                    if self.bias_arg is not None:
                        held = new
                    else:
                        _state_tensors(self.module)[self._buffer].copy_(new)
                elif not s.frozen:
                    assert self.update is not None  # a gate without update has no step
                    self.update(torch.as_tensor(total, dtype=torch.float32))
                if self.counts_name is not None:
                    _state_tensors(self.module)[self.counts_name].zero_()
            pending = None if self.counts_name else np.zeros(self.n_experts, dtype=np.int64)
            out.append(
                GateState(
                    _snapshot(self.module),
                    pending,
                    s.n_updates + (not s.frozen),
                    s.frozen,
                    held,
                    rs,
                )
            )
        return tuple(out)

    def bias(self, state: GateState) -> Any:
        if self.bias_arg is not None:
            return to_numpy(state.bias)
        return to_numpy(state.buffers[self._buffer])

    def counts(self, state: GateState) -> Any:
        return self._counts(state)

    def freeze(self, state: GateState) -> GateState:
        return state._replace(frozen=True)

    def state_dict(self, state: GateState) -> Any:
        _restore(self.module, state.buffers)
        raw = {key: v.detach().clone() for key, v in self.module.state_dict().items()}
        if self.bias_arg is not None:
            raw[f"lfb_adapter.{self.bias_arg}"] = state.bias.detach().clone()
        d = CheckpointDict(to_numpy(raw))
        d.storage_dtypes = {key: str(v.dtype).removeprefix("torch.") for key, v in raw.items()}
        if state.pending is not None:
            d["lfb_adapter.pending"] = np.array(state.pending, copy=True)
        d["lfb_adapter.n_updates"] = np.int64(state.n_updates)
        d["lfb_adapter.frozen"] = np.bool_(state.frozen)
        if state.rule_state is not None:
            for key, v in state.rule_state._asdict().items():
                d[f"lfb_adapter.rule.{key}"] = np.array(v, copy=True)
        return d

    def load_state_dict(self, d: Mapping[str, Any]) -> GateState:
        _restore(self.module, self.initial)
        own = {key: _exact_tensor(v) for key, v in d.items() if not key.startswith("lfb_adapter.")}
        self.module.load_state_dict(own)
        pending = d.get("lfb_adapter.pending")
        held = None
        if self.bias_arg is not None:
            held = _exact_tensor(d[f"lfb_adapter.{self.bias_arg}"])
        rs = None
        if self.rule_applied:
            fields = type(self.rule.init(self.n_experts))._fields
            vals = [np.array(d[f"lfb_adapter.rule.{f}"], copy=True) for f in fields]
            vals = [v.item() if v.ndim == 0 else v for v in vals]
            rs = type(self.rule.init(self.n_experts))(*vals)
        return GateState(
            _snapshot(self.module),
            None if pending is None else np.asarray(pending, np.int64).copy(),
            int(d["lfb_adapter.n_updates"]),
            bool(d["lfb_adapter.frozen"]),
            held,
            rs,
        )

    def __call__(self, scores: Any, state: Any) -> tuple[Any, Any]:
        if self.update is None and not self.rule_applied:  # select-only: route as wrapped
            sel, _ = self._route(scores, self.initial, "eval")
            return sel, state
        state = self.init() if state is None else state
        sel, _, state = self.forward(scores, state)
        return sel, self.step([state])[0]


class _BiasRouterProxy:
    """numpy BiasRouter around a torch object with (some of) the lifecycle methods.

    States stay torch objects (never converted, so their dtypes survive); arrays the suite
    passes in (scores, biases, masks, checkpoint entries) become tensors, and the arrays the
    methods return (experts, weights, bias, counts, state dicts) become numpy. Methods the
    object lacks are None here, so the suite reports the properties needing them as skipped.
    """

    def __init__(self, obj: Any, dtype: Any, device: str, declared: Mapping[str, Any]) -> None:
        self.obj, self.dtype, self.device = obj, dtype, device
        _set_attrs(self, declared)
        for m in _LIFECYCLE:
            if not callable(getattr(obj, m, None)):
                setattr(self, m, None)
        self.__name__ = type(obj).__name__

    def _t(self, x: Any) -> Any:
        return to_torch(x, self.dtype, self.device)

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        torch = require_torch()
        with torch.no_grad():
            return fn(*args, **kwargs)

    def init(self, bias0: Any = None) -> Any:
        return self._run(
            self.obj.init, None if bias0 is None else self._t(np.asarray(bias0, np.float64))
        )

    def select(self, scores: Any, bias: Any) -> Any:
        return to_numpy(
            self._run(
                self.obj.select,
                self._t(np.asarray(scores, np.float64)),
                self._t(np.asarray(bias, np.float64)),
            )
        )

    def forward(self, scores: Any, state: Any, *, mode: str = "train", valid: Any = None) -> Any:
        v = None if valid is None else self._t(np.asarray(valid, dtype=bool))
        experts, weights, new = self._run(
            self.obj.forward, self._t(np.asarray(scores, np.float64)), state, mode=mode, valid=v
        )
        return to_numpy(experts), to_numpy(weights), new

    def step(self, states: Any) -> Any:
        return tuple(self._run(self.obj.step, list(states)))

    def bias(self, state: Any) -> Any:
        return to_numpy(self.obj.bias(state))

    def counts(self, state: Any) -> Any:
        return to_numpy(self.obj.counts(state))

    def freeze(self, state: Any) -> Any:
        return self.obj.freeze(state)

    def state_dict(self, state: Any) -> Any:
        raw = self.obj.state_dict(state)
        d = CheckpointDict(to_numpy(dict(raw)))
        d.storage_dtypes = {
            key: str(v.dtype).removeprefix("torch.")
            for key, v in raw.items()
            if hasattr(v, "dtype")
        }
        return d

    def load_state_dict(self, d: Any) -> Any:
        return self.obj.load_state_dict({key: _exact_tensor(v) for key, v in d.items()})

    def __call__(self, scores: Any, state: Any) -> tuple[Any, Any]:
        if callable(self.obj):
            sel, new = self._run(self.obj, self._t(np.asarray(scores, np.float64)), state)
            return to_numpy(sel), new
        e = getattr(self, "n_experts", None)
        if e is None:
            raise ValueError("a select-only router needs n_experts (attribute or keyword)")
        sel, _ = self.select(scores, np.zeros(int(e)))  # routes with a fixed zero bias
        return sel, state


def _exact_tensor(x: Any) -> Any:
    """numpy -> tensor keeping the dtype exactly (checkpoint entries must round-trip bit-exact);
    text entries (a rule's name in a checkpoint) pass through as numpy strings."""
    torch = require_torch()
    a = np.array(x, copy=True)
    return a if a.dtype.kind in "US" else torch.as_tensor(a)


def from_torch(
    obj: Any,
    *,
    inputs: str = "scores",
    indices: Any = None,
    weights: Any = None,
    bias: str | None = None,
    update: str | Callable[..., Any] | None = None,
    counts: str | None = None,
    rule: Any = None,
    n_experts: int | None = None,
    k: int | None = None,
    n_groups: int | None = None,
    topk_groups: int | None = None,
    group_score_topk: int | None = None,
    score_function: str | None = None,
    bias_on: str | None = None,
    projection: str | None = None,
    dtype: Any = "float32",
    device: str = "cpu",
    eps: float = EPS,
) -> Any:
    """Wrap a torch router (function, module, gate with a bias buffer, or BiasRouter-like
    object; see the module docstring) as a numpy router for the conformance suite."""
    from lfbtheory.adapters.discovery import read_design

    torch = require_torch()
    dt = _torch_dtype(torch, dtype)
    module = obj if isinstance(obj, torch.nn.Module) else None
    design = (
        read_design(
            obj,
            overrides={
                "n_experts": n_experts,
                "k": k,
                "n_groups": n_groups,
                "topk_groups": topk_groups,
                "group_score_topk": group_score_topk,
                "score_function": score_function,
                "bias_on": bias_on,
                "bias": bias,
                "counts": counts,
                "bias_mode": getattr(rule, "bias_mode", None),
            },
        )
        if module is not None
        else None
    )
    if design is not None and design.gaps and design.bias is None:
        raise ValueError(f"{type(obj).__name__}: {'; '.join(design.gaps)}")
    declared = (
        _declared(design, rule)
        if design is not None
        else {
            key: v
            for key, v in (
                ("n_experts", n_experts),
                ("k", k),
                ("n_groups", n_groups),
                ("topk_groups", topk_groups),
                ("group_score_topk", group_score_topk),
                ("rule", rule),
            )
            if v is not None
        }
    )
    if module is None:
        for key, names in (("n_experts", ("n_experts", "num_experts")), ("k", ("k", "top_k"))):
            for name in names:
                if key not in declared and isinstance(getattr(obj, name, None), int):
                    declared[key] = int(getattr(obj, name))
        if "rule" not in declared and getattr(obj, "rule", None) is not None:
            declared["rule"] = obj.rule
        for key in ("n_groups", "topk_groups", "group_score_topk"):
            if key not in declared and isinstance(getattr(obj, key, None), int):
                declared[key] = int(getattr(obj, key))
    if callable(getattr(obj, "select", None)):
        return _BiasRouterProxy(obj, dt, device, declared)
    if not callable(obj):
        raise TypeError(
            "obj must be a torch router function, nn.Module or BiasRouter-like object, "
            f"got {type(obj).__name__}"
        )
    if not (isinstance(eps, float) and 0 < eps < 0.5):
        raise ValueError(f"eps must be a float in (0, 0.5), got {eps!r}")
    inp = _Inputs(module, inputs, dt, device, eps, declared.get("n_experts"), projection)
    kk = declared.get("k")

    def pick(out: Any) -> tuple[Any, Any]:
        return extract(out, indices=indices, weights=weights, k=kk)

    if module is not None:
        assert design is not None  # read whenever there is a module
        if design.bias is not None:
            return _GateModule(module, design, inp, declared, pick, update)
        if update is not None or counts is not None:
            raise ValueError(
                "update= and counts= need the module's bias (bias=...: a buffer, a grad-free "
                "parameter or a forward argument)"
            )
        return _ModuleRouter(module, inp, declared, pick)
    return _FunctionRouter(obj, inp, declared, pick)
