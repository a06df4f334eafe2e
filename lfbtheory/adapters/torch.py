"""PyTorch adapter (optional extra ``torch``): check a torch router without changing it.

``from_torch(obj)`` returns a numpy router for :mod:`lfbtheory.analysis.causality` and
:mod:`lfbtheory.testing.conformance`: numpy arrays go in, are converted to tensors (float
arrays to ``dtype``, default float32; bool and integer arrays keep their kind) for the torch
callable, and tensors coming back are converted to numpy (recursively through tuples, lists and
dicts). Three kinds of ``obj``:

- a function ``fn(scores: Tensor, state) -> (selection: Tensor, state)`` (the router interface
  of :mod:`lfbtheory.routers`; the state is passed through untouched);
- an ``nn.Module`` whose ``forward(scores) -> selection`` (or a tuple starting with it) keeps
  its state in buffers/parameters, updated in place: state = a snapshot of its state_dict,
  loaded before each call (``None`` = the state when wrapped), so a stream can be re-run;
- an object with the :class:`lfbtheory.routers.BiasRouter` lifecycle methods written in torch
  (init/select/forward/step/bias/counts/freeze/state_dict/load_state_dict/__call__): every
  method is proxied with the conversions, and ``n_experts``, ``k``, ``rule``,
  group attributes are forwarded.

torch is imported lazily; without it ``from_torch`` raises ImportError saying how to install.
From the command line, point ``lfb check`` at a zero-argument factory in your code, e.g.
``def make(): return from_torch(MyRouter())`` and ``lfb check mymodule:make``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["CheckpointDict", "from_torch", "require_torch", "to_numpy", "to_torch"]

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


class _FunctionRouter:
    """numpy router around ``fn(scores: Tensor, state) -> (selection: Tensor, state)``."""

    def __init__(self, fn: Any, dtype: Any, device: str, n_experts: int | None) -> None:
        self.fn, self.dtype, self.device = fn, dtype, device
        if n_experts is not None:
            self.n_experts = n_experts
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def __call__(self, scores: Any, state: Any) -> tuple[Any, Any]:
        torch = require_torch()
        with torch.no_grad():
            sel, new_state = self.fn(
                to_torch(np.asarray(scores, np.float64), self.dtype, self.device), state
            )
        return to_numpy(sel), new_state


class _ModuleRouter:
    """numpy router around a stateful ``nn.Module``: state = a snapshot of its state_dict."""

    def __init__(self, module: Any, dtype: Any, device: str, n_experts: int | None) -> None:
        self.module, self.dtype, self.device = module, dtype, device
        self.initial = copy.deepcopy(module.state_dict())
        ne = n_experts if n_experts is not None else getattr(module, "n_experts", None)
        if ne is not None:
            self.n_experts = int(ne)
        self.__name__ = type(module).__name__

    def __call__(self, scores: Any, state: Any) -> tuple[Any, Any]:
        torch = require_torch()
        self.module.load_state_dict(self.initial if state is None else state)
        with torch.no_grad():
            out = self.module(to_torch(np.asarray(scores, np.float64), self.dtype, self.device))
        sel = out[0] if isinstance(out, (tuple, list)) else out
        return to_numpy(sel), copy.deepcopy(self.module.state_dict())


class _BiasRouterProxy:
    """numpy BiasRouter around a torch object with the lifecycle methods.

    States stay torch objects (never converted, so their dtypes survive); arrays the suite
    passes in (scores, biases, masks, checkpoint entries) become tensors, and the arrays the
    methods return (experts, weights, bias, counts, state dicts) become numpy.
    """

    def __init__(self, obj: Any, dtype: Any, device: str) -> None:
        self.obj, self.dtype, self.device = obj, dtype, device
        for name in _FORWARDED:
            if hasattr(obj, name):
                setattr(self, name, getattr(obj, name))
        if not callable(getattr(obj, "freeze", None)):
            self.freeze = None  # type: ignore[assignment]  # the frozen_bias property then skips
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

    def freeze(self, state: Any) -> Any:  # noqa: F811 -- replaced by None when obj has none
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
        sel, new = self._run(self.obj, self._t(np.asarray(scores, np.float64)), state)
        return to_numpy(sel), new


def _exact_tensor(x: Any) -> Any:
    """numpy -> tensor keeping the dtype exactly (checkpoint entries must round-trip bit-exact)."""
    torch = require_torch()
    return torch.as_tensor(np.array(x, copy=True))


def from_torch(
    obj: Any, *, dtype: Any = "float32", device: str = "cpu", n_experts: int | None = None
) -> Any:
    """Wrap a torch router function, module or BiasRouter-like object as a numpy router."""
    torch = require_torch()
    dt = _torch_dtype(torch, dtype)
    if all(callable(getattr(obj, m, None)) for m in _LIFECYCLE if m != "freeze"):
        return _BiasRouterProxy(obj, dt, device)
    if isinstance(obj, torch.nn.Module):
        return _ModuleRouter(obj, dt, device, n_experts)
    if not callable(obj):
        raise TypeError(
            "obj must be a torch router function, nn.Module or BiasRouter-like object, "
            f"got {type(obj).__name__}"
        )
    return _FunctionRouter(obj, dt, device, n_experts)
