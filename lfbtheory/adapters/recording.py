"""Record router scores from any torch MoE model with forward hooks (optional extra ``torch``).

``record_router_scores(model, batches, ...)`` attaches a forward hook to every MoE gate of the
model, runs ``model(batch)`` under ``torch.no_grad()`` for each batch, and keeps, per gate, the
router logits of a seeded subsample of the tokens (the same tokens for every layer) with their
batch / sequence / position indices. The result is a :class:`lfbtheory.traces.Trace`
(``kind="logits"``; scores = gate(logits), the numbers Loss-Free Balancing biases,
arXiv 2408.15664 Sec. 3), written to ``path`` when given.

Gates are found by (``gates=``):

- ``None``: modules whose class name ends in ``TopKRouter``/``TopkRouter``/``MoEGate``/
  ``Router`` (Hugging Face transformers >= 5 Mixtral, Qwen2/3-MoE, OLMoE, DeepSeek-V3 routers;
  Megatron-core ``TopKRouter``; torchtitan ``TokenChoiceTopKRouter``);
- a string: a regular expression searched in the module names (``r"mlp\\.gate$"``);
- a type or tuple of types: ``isinstance``;
- a callable ``predicate(name, module) -> bool``.

What a hooked gate outputs decides what is recorded (first rule that applies):

1. ``extract(module, inputs, output)`` if given: returns the (tokens, E) logits tensor, or a
   pair (logits, chosen experts (tokens, k) or None);
2. a tuple/list whose first element is a float tensor (..., E) (E = the module's
   ``num_experts``-like attribute when it has one): the logits (transformers >= 5 routers
   return ``(router_logits, top_k_weights, top_k_index)``); an integer tensor (..., k) in the
   tuple is taken as the experts the model chose, and so is a boolean routing map (..., E)
   with k True per token -- also under rules 4 and 5;
3. a float tensor (..., E): logits of a linear gate (``nn.Linear(hidden, E)``, transformers 4.x
   ``mlp.gate``);
4. a child ``gate`` that is an ``nn.Linear``: logits = gate(input) (torchtitan's
   ``TokenChoiceTopKRouter``, whose forward returns the top-k scores, the chosen experts and
   the counts);
5. a module with a ``weight`` (E, hidden): logits = input @ weight.T in float32 (also used
   first for modules with a ``score_function`` attribute: Megatron-core's ``TopKRouter``,
   whose forward returns probabilities and a routing map).

E, k, gate function, bias and group settings come from keyword arguments when given, else from
attributes of the gate or its two nearest parents: k from ``top_k``/``num_experts_per_tok``/
``topk``/``moe_router_topk``; gate from ``score_func``/``score_function``/``scoring_func``
(else "sigmoid" when the module has ``e_score_correction_bias``, else "softmax"); bias from
``e_score_correction_bias``/``expert_bias``; groups from ``n_group``/``num_group`` and
``topk_group``. :func:`check_reproduction` then verifies that top-k of the recorded scores
(+ bias, group-limited) is the model's own choice.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory.adapters.discovery import BIAS_NAMES, COUNT_NAMES
from lfbtheory.adapters.torch import require_torch
from lfbtheory.metrics import tie_margin
from lfbtheory.traces import Trace, write_trace

__all__ = [
    "AUTO_GATE_PATTERN",
    "LoadLogger",
    "Reproduction",
    "check_reproduction",
    "find_gates",
    "record_router_scores",
]

AUTO_GATE_PATTERN = r"(TopKRouter|TopkRouter|MoEGate|Router)$"
_K_ATTRS = ("top_k", "num_experts_per_tok", "topk", "moe_router_topk", "experts_per_token")
_E_ATTRS = (
    "num_experts",
    "num_local_experts",
    "n_routed_experts",
    "num_moe_experts",
    "out_features",
)
_GATE_ATTRS = ("score_func", "score_function", "scoring_func")
_BIAS_ATTRS = ("e_score_correction_bias", "expert_bias")
_GROUP_ATTRS = (
    ("n_group", "num_group", "n_groups", "moe_router_num_groups"),
    ("topk_group", "topk_groups", "moe_router_group_topk"),
)


def _parents(model: Any) -> dict[str, Any]:
    return {name: mod for name, mod in model.named_modules()}


def find_gates(model: Any, gates: Any = None) -> list[tuple[str, Any]]:
    """(name, module) of every gate selected by ``gates`` (rules in the module docstring)."""
    torch = require_torch()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mods = [(n, m) for n, m in model.named_modules() if n]
    if gates is None:
        pat = re.compile(AUTO_GATE_PATTERN)
        found = [(n, m) for n, m in mods if pat.search(type(m).__name__)]
        # a router nested in a router (torchtitan's router.gate is a Linear; fine) -- keep outer
        found = [
            (n, m) for n, m in found if not any(n.startswith(o + ".") for o, _ in found if o != n)
        ]
    elif isinstance(gates, str):
        try:
            pat = re.compile(gates)
        except re.error as exc:
            raise ValueError(f"gates must be a valid regular expression: {exc}") from None
        found = [(n, m) for n, m in mods if pat.search(n)]
    elif isinstance(gates, type) or (
        isinstance(gates, tuple) and gates and all(isinstance(g, type) for g in gates)
    ):
        found = [(n, m) for n, m in mods if isinstance(m, gates)]
    elif callable(gates):
        found = [(n, m) for n, m in mods if gates(n, m)]
    else:
        raise TypeError(
            "gates must be None, a module-name regex, a type / tuple of types, or a "
            f"predicate(name, module); got {type(gates).__name__}"
        )
    if not found:
        raise ValueError(
            "gates matched no module of the model; pass gates= a module-name regex (e.g. "
            r"r'mlp\.gate$'), a gate type, or a predicate(name, module)"
        )
    return found


def _attr(chain: list[Any], names: Iterable[str]) -> Any:
    for mod in chain:
        for name in names:
            v = getattr(mod, name, None)
            if v is not None and not callable(v):
                return v
            cfg = getattr(mod, "config", None)
            v = getattr(cfg, name, None) if cfg is not None else None
            if v is not None and not callable(v):
                return v
    return None


def _chain(name: str, module: Any, by_name: dict[str, Any]) -> list[Any]:
    out = [module]
    parts = name.split(".")
    for cut in (1, 2):
        if len(parts) > cut:
            parent = by_name.get(".".join(parts[:-cut]))
            if parent is not None:
                out.append(parent)
    return out


@dataclass
class _Gate:
    name: str
    module: Any
    chain: list[Any]
    logits: list[NDArray[np.float32]] = field(default_factory=list)
    chosen: list[NDArray[np.int64] | None] = field(default_factory=list)
    weights: list[NDArray[np.float64] | None] = field(default_factory=list)
    dtype: str = ""
    n_experts: int = 0
    design: Any = None
    arg_bias: NDArray[np.float64] | None = None


def _extract(
    gate: _Gate, inputs: Any, output: Any, extract: Callable[..., Any] | None, torch: Any
) -> tuple[Any, Any, Any]:
    """(logits, chosen experts or None, their gate weights or None) of one gate call."""
    if extract is not None:
        res = extract(gate.module, inputs, output)
        res = res if isinstance(res, tuple) else (res, None)
        return res[0], res[1], None
    mod = gate.module
    x = inputs[0] if isinstance(inputs, tuple) and inputs else None
    e_known = gate.design.n_experts if gate.design is not None else None
    w = getattr(mod, "weight", None)
    # Megatron-core's TopKRouter returns (probs, routing_map): recompute its logits (rule 5)
    megatron = hasattr(mod, "score_function") and isinstance(w, torch.Tensor) and w.ndim == 2
    chosen, weights, first = None, None, None
    if isinstance(output, (tuple, list)) and output:
        for extra in output[1:]:
            if not isinstance(extra, torch.Tensor) or extra.is_floating_point() or extra.ndim < 2:
                continue
            if extra.dtype != torch.bool:
                chosen = extra
            else:  # a routing map (tokens, E) with the same number k of True per row
                per_row = extra.reshape(-1, extra.shape[-1]).sum(-1)
                if per_row.numel() and bool((per_row == per_row[0]).all()) and per_row[0] > 0:
                    flat_map = extra.reshape(-1, extra.shape[-1])
                    chosen = flat_map.nonzero()[:, 1].view(flat_map.shape[0], int(per_row[0]))
            break
        if chosen is not None:
            floats = [
                t
                for t in output
                if isinstance(t, torch.Tensor)
                and t.is_floating_point()
                and t.shape[-1] == chosen.shape[-1]
                and t.numel() == chosen.numel()
            ]
            weights = floats[0] if len(floats) == 1 else None
        first = output[0]
        sparse = _sparse_weights(first, torch)
        if chosen is None and sparse is not None:
            # a dense map holding the k gate weights of each token (Llama-4 returns
            # (sigmoid of the top-k logits scattered into zeros, logits)): not logits
            chosen, weights = sparse
            rest = [
                t
                for t in output[1:]
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.shape == first.shape
            ]
            if len(rest) == 1:
                return rest[0], chosen, weights
            first = None
    elif isinstance(output, torch.Tensor):
        first = output
    if (
        not megatron
        and isinstance(first, torch.Tensor)
        and first.is_floating_point()
        and (e_known is None or first.shape[-1] == e_known)
        and (chosen is None or first.shape[-1] != chosen.shape[-1] or e_known is not None)
    ):
        return first, chosen, weights
    sub = getattr(mod, "gate", None)  # torchtitan: router.gate = nn.Linear(dim, E)
    if (
        isinstance(sub, torch.nn.Linear)
        and isinstance(x, torch.Tensor)
        and x.shape[-1] == sub.in_features
    ):
        return sub(x), chosen, weights
    if (
        isinstance(w, torch.Tensor)
        and w.ndim == 2
        and isinstance(x, torch.Tensor)
        and x.shape[-1] == w.shape[1]
    ):
        return torch.nn.functional.linear(x.float(), w.float()), chosen, weights
    raise ValueError(
        f"gate {gate.name!r} ({type(mod).__name__}) output is neither logits nor a tuple "
        "starting with logits, and it has no (E, hidden) weight; pass extract=fn(module, inputs, "
        "output) returning the (tokens, E) logits"
    )


def _sparse_weights(x: Any, torch: Any) -> tuple[Any, Any] | None:
    """(chosen ids, their values) when ``x`` (..., E) holds the same number k < E of non-zero
    entries in every row, else None."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2:
        return None
    flat = x.detach().reshape(-1, x.shape[-1])
    nz = flat != 0
    per_row = nz.sum(-1)
    if not per_row.numel() or not bool((per_row == per_row[0]).all()):
        return None
    kk = int(per_row[0])
    if not 0 < kk < flat.shape[1]:
        return None
    ids = nz.nonzero()[:, 1].view(flat.shape[0], kk)
    return ids, flat.gather(1, ids)


def _batch_shape(batch: Any, torch: Any) -> tuple[int, int] | None:
    x = batch
    if isinstance(batch, dict):
        x = batch.get(
            "input_ids", next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
        )
    elif isinstance(batch, (tuple, list)) and batch:
        x = batch[0]
    if isinstance(x, torch.Tensor) and x.ndim >= 2:
        return int(x.shape[0]), int(x.shape[1])
    return None


def _model_identity(model: Any) -> str:
    cfg = getattr(model, "config", None)
    parts = [type(model).__name__]
    if cfg is not None:
        name = getattr(cfg, "_name_or_path", "") or getattr(cfg, "model_type", "")
        if name:
            parts.append(str(name))
        try:
            text = cfg.to_json_string() if hasattr(cfg, "to_json_string") else repr(cfg)
        except Exception:  # a config that cannot print itself: identity without digest
            text = ""
        if text:
            parts.append("config-sha256:" + hashlib.sha256(text.encode()).hexdigest()[:12])
    n_params = sum(int(p.numel()) for p in model.parameters())
    parts.append(f"params={n_params}")
    return " ".join(parts)


def _int_or(value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    if hasattr(value, "item"):
        value = value.item()
    return int(value)


def _bound_argument(module: Any, name: str, args: Any, kwargs: Any) -> Any:
    """The value of ``module.forward``'s parameter ``name`` in one call."""
    import inspect

    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
    except TypeError:
        return None
    return bound.arguments.get(name)


def _tensor_at(chain: list[Any], where: str) -> Any:
    kind, _, path = where.partition(":")
    mods = chain[:1] if kind == "buffer" else chain[1:]
    for mod in mods:
        obj = mod
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def _settle(g: _Gate, e: int) -> tuple[Any, NDArray[np.float64] | None]:
    """The gate's measured design and the bias it routed with (:mod:`.discovery`)."""
    from lfbtheory.adapters.discovery import fit_design

    d = g.design
    b = None
    if d.bias is not None:
        t = g.arg_bias if d.bias.startswith("argument:") else _tensor_at(g.chain, d.bias)
        if t is not None:
            b = np.asarray(t.detach().float().cpu().numpy() if hasattr(t, "detach") else t)
            b = np.asarray(b, np.float64).reshape(-1)
            if b.size != e:
                b = None
    z = np.concatenate(g.logits).astype(np.float64)
    if any(c is None for c in g.chosen):
        if d.score_function is None:
            raise ValueError(
                f"gate {g.name!r} returns no chosen experts, so its score function cannot be "
                "measured and no attribute names it; pass gate= (one of "
                "'softmax', 'sigmoid', 'sqrt_softplus', 'identity')"
            )
        return d, b
    chosen = np.concatenate([c for c in g.chosen if c is not None])  # none is None (above)
    w = (
        None
        if any(x is None for x in g.weights)
        else np.concatenate([x for x in g.weights if x is not None])
    )
    first = fit_design(d, z, chosen, b, w, softcap_applied=bool(d.logit_softcap))
    if d.logit_softcap and (first.refused or first.gaps):  # the logits were not capped yet
        again = fit_design(d, z, chosen, b, w)
        fitted = again if not again.refused else first
    else:
        fitted = first
        if d.logit_softcap and not first.refused:
            from dataclasses import replace

            fitted = replace(first, logit_softcap=0.0)  # recorded logits are already capped
    if fitted.refused:
        raise ValueError(f"gate {g.name!r} ({type(g.module).__name__}): {fitted.refused}")
    if fitted.gaps:
        raise ValueError(f"gate {g.name!r} ({type(g.module).__name__}): {'; '.join(fitted.gaps)}")
    return fitted, b


def record_router_scores(
    model: Any,
    batches: Iterable[Any],
    *,
    gates: Any = None,
    max_tokens: int = 4096,
    seed: int | np.random.SeedSequence = 0,
    path: str | os.PathLike[str] | None = None,
    k: int | None = None,
    gate: str | None = None,
    n_groups: int | None = None,
    topk_groups: int | None = None,
    group_score_topk: int | None = None,
    bias: str | None = None,
    bias_on: str | None = None,
    extract: Callable[..., Any] | None = None,
    call: Callable[[Any, Any], Any] | None = None,
    progress: bool = False,
) -> Trace:
    """Run ``model`` on ``batches`` and record every gate's logits on a seeded token subsample.

    Each batch's tokens (the rows the gate sees, sequence-major) are subsampled with
    ``np.random.default_rng(seed)`` so that at most ``max_tokens`` tokens are kept in total,
    the same tokens in every layer (a uniform draw without replacement per batch of
    ``ceil(max_tokens / #batches)`` rows when the number of batches is known, else of the
    first batches until ``max_tokens`` is reached). ``call(model, batch)`` runs one batch
    (default: ``model(**batch)`` for a dict, ``model(*batch)`` for a tuple, else
    ``model(batch)``). The model is put in eval mode for the recording and restored after.
    Hooks are always removed, also on error. Returns the :class:`Trace` (written to ``path``).

    The design of every gate (E, k, score function ``gate``, bias tensor ``bias`` and where it
    is added ``bias_on``, groups and group score) is read and measured by
    :mod:`lfbtheory.adapters.discovery`, the same code :func:`lfbtheory.adapters.torch.from_torch`
    uses; keywords override it. A gate whose choices no design reproduces (a hash router, a
    skip class) is refused with the reason, and so is a design the recording cannot settle
    (the message names the keyword that does).
    """
    from lfbtheory.adapters.discovery import read_design
    from lfbtheory.traces import SCORE_FUNCTIONS

    torch = require_torch()
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if gate is not None and gate not in SCORE_FUNCTIONS:
        raise ValueError(f"gate must be one of {SCORE_FUNCTIONS} (or None: inferred); got {gate!r}")
    rng = np.random.default_rng(seed)
    by_name = _parents(model)
    found = [_Gate(n, m, _chain(n, m, by_name)) for n, m in find_gates(model, gates)]
    overrides = {
        "k": k,
        "score_function": gate,
        "n_groups": n_groups,
        "topk_groups": topk_groups,
        "group_score_topk": group_score_topk,
        "bias": bias,
        "bias_on": bias_on,
    }
    for g in found:
        g.design = read_design(g.module, g.chain[1:], overrides)
    batch_list = batches if isinstance(batches, (list, tuple)) else None
    per_batch = -(-max_tokens // max(1, len(batch_list))) if batch_list is not None else max_tokens
    state: dict[str, Any] = {"rows": None, "pick": None, "kept": 0}
    idx: dict[str, list[NDArray[np.int64]]] = {"batch": [], "seq": [], "pos": []}

    def pick(rows: int) -> NDArray[np.int64]:
        if state["rows"] is None:
            room = max_tokens - state["kept"]
            take = min(rows, per_batch, room)
            sel = (
                np.sort(rng.choice(rows, size=take, replace=False))
                if take > 0
                else np.empty(0, np.int64)
            )
            state["rows"], state["pick"] = rows, sel.astype(np.int64)
        elif state["rows"] != rows:
            raise ValueError(
                f"gate layers saw different token counts in one batch ({state['rows']} vs "
                f"{rows}); record those layers separately (gates=...)"
            )
        return state["pick"]  # type: ignore[no-any-return]

    def make_hook(g: _Gate) -> Callable[..., None]:
        def hook(module: Any, inputs: Any, kwargs: Any, output: Any) -> None:
            logits, chosen, weights = _extract(g, inputs, output, extract, torch)
            e = int(logits.shape[-1])
            flat = logits.detach().reshape(-1, e)
            sel = pick(int(flat.shape[0]))
            g.dtype = str(logits.dtype).replace("torch.", "")
            g.n_experts = e
            t = torch.as_tensor(sel, device=flat.device)
            g.logits.append(flat.index_select(0, t).float().cpu().numpy().astype(np.float32))
            if chosen is not None:
                c = chosen.detach().reshape(flat.shape[0], -1).index_select(0, t)
                g.chosen.append(c.cpu().numpy().astype(np.int64))
                if weights is not None:
                    wt = weights.detach().reshape(flat.shape[0], -1).index_select(0, t)
                    g.weights.append(wt.float().cpu().numpy().astype(np.float64))
                else:
                    g.weights.append(None)
            else:
                g.chosen.append(None)
                g.weights.append(None)
            where = g.design.bias or ""
            if where.startswith("argument:"):
                b = _bound_argument(module, where.split(":", 1)[1], inputs, kwargs)
                if b is not None:
                    g.arg_bias = np.asarray(b.detach().float().cpu().numpy(), np.float64)

        return hook

    handles = [g.module.register_forward_hook(make_hook(g), with_kwargs=True) for g in found]
    was_training = bool(model.training)
    model.eval()
    try:
        it: Iterable[Any] = batches
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(batches, desc="record router scores", unit="batch")
        for i_batch, batch in enumerate(it):
            if state["kept"] >= max_tokens:
                break
            state["rows"], state["pick"] = None, None
            with torch.no_grad():
                if call is not None:
                    call(model, batch)
                elif isinstance(batch, dict):
                    model(**batch)
                elif isinstance(batch, (tuple, list)):
                    model(*batch)
                else:
                    model(batch)
            if state["pick"] is None:
                raise ValueError(
                    f"no gate ran on batch {i_batch}: check gates= "
                    f"(found {[g.name for g in found]})"
                )
            sel = state["pick"]
            shape = _batch_shape(batch, torch)
            idx["batch"].append(np.full(sel.size, i_batch, np.int64))
            if shape is not None and shape[0] * shape[1] == state["rows"]:
                idx["seq"].append(sel // shape[1])
                idx["pos"].append(sel % shape[1])
            else:
                idx["seq"].append(np.full(sel.size, -1, np.int64))
                idx["pos"].append(np.full(sel.size, -1, np.int64))
            state["kept"] += int(sel.size)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if state["kept"] == 0:
        raise ValueError("batches must contain at least one token reaching a gate")
    es = {g.n_experts for g in found}
    if len(es) != 1:
        raise ValueError(
            f"gates must all have the same E; found {sorted(es)} "
            f"({[(g.name, g.n_experts) for g in found]}); narrow gates="
        )
    e = es.pop()
    designs, biases = [], []
    for g in found:
        d, b = _settle(g, e)
        designs.append(d)
        biases.append(b)
    ks = {d.k for d in designs}
    if None in ks or len(ks) != 1:
        raise ValueError(
            "k could not be inferred from the gates' attributes (top_k, "
            f"num_experts_per_tok, topk): found {sorted(ks, key=str)}; pass k="
        )
    kk = int(ks.pop())
    for field_name in ("score_function", "logit_softcap", "bias_on", "group_limited"):
        vals = {getattr(d, field_name) for d in designs}
        if len(vals) != 1:
            raise ValueError(
                f"the gates differ in {field_name} ({sorted(vals, key=str)}); record them "
                "separately (gates=...)"
            )
    d0 = designs[0]
    gates_fn = d0.score_function
    grouped = d0.group_limited
    rules = {d.group_score_topk for d in designs}
    if grouped and len(rules) != 1:
        raise ValueError(f"the gates differ in their group score ({sorted(rules)}); pass gates=")
    has = np.array([b is not None for b in biases])
    bias_arr = np.stack([np.zeros(e) if b is None else b for b in biases]) if has.any() else None
    chosen: NDArray[np.int64] | None = None
    if all(c is not None for g in found for c in g.chosen):
        chosen = np.stack([np.concatenate([c for c in g.chosen if c is not None]) for g in found])
        if chosen.shape[2] != kk:
            chosen = None
    trace = Trace(
        values=np.stack([np.concatenate(g.logits) for g in found]),
        kind="logits",
        gate=gates_fn,
        k=kk,
        layer_names=tuple(g.name for g in found),
        model=_model_identity(model),
        dtype=found[0].dtype,
        n_groups=int(d0.n_groups) if grouped else 0,
        topk_groups=int(d0.topk_groups) if grouped else 0,
        group_score_topk=int(d0.group_score_topk or 2) if grouped else 2,
        logit_softcap=float(d0.logit_softcap),
        bias_on=d0.bias_on,
        bias_layers=None if bias_arr is None or has.all() else has,
        batch_index=np.concatenate(idx["batch"]),
        sequence_index=np.concatenate(idx["seq"]),
        position=np.concatenate(idx["pos"]),
        seed=int(seed) if isinstance(seed, (int, np.integer)) else 0,
        max_tokens=max_tokens,
        bias=bias_arr,
        experts=chosen,
    )
    if e != trace.n_experts:  # pragma: no cover - stacking guarantees it
        raise AssertionError("E mismatch")
    if path is not None:
        write_trace(trace, path)
    return trace


@dataclass(frozen=True)
class Reproduction:
    """Agreement of top-k(recorded scores + bias) with the model's own choice, per layer.

    mismatched[l]: tokens whose expert sets differ; near_ties[l]: how many of those have a
    tie margin (k-th minus (k+1)-th biased score) below ``tol`` -- ties aside means
    mismatched == near_ties.
    """

    layer_names: tuple[str, ...]
    tokens: int
    mismatched: tuple[int, ...]
    near_ties: tuple[int, ...]

    @property
    def exact_up_to_ties(self) -> bool:
        return self.mismatched == self.near_ties


def check_reproduction(trace: Trace, tol: float = 1e-6) -> Reproduction:
    """Compare :meth:`Trace.routed_experts` with the recorded ``experts`` (sets per token)."""
    if trace.experts is None:
        raise ValueError("trace has no recorded experts (the gate did not output its choice)")
    mism, ties = [], []
    for j in range(trace.n_layers):
        mine = np.sort(trace.routed_experts(j), axis=1)
        theirs = np.sort(trace.experts[j], axis=1)
        bad = np.any(mine != theirs, axis=1)
        margin = tie_margin(trace.scores(j), k=trace.k, bias=trace.layer_bias(j))
        mism.append(int(bad.sum()))
        ties.append(int((bad & (margin < tol)).sum()))
    return Reproduction(trace.layer_names, trace.n_tokens, tuple(mism), tuple(ties))


class LoadLogger:
    """Collect per-step tokens-per-expert (and bias) from a model's MoE buffers for
    ``lfb diagnose``.

    Call :meth:`log` once per optimizer step *before* the framework resets its counters.
    ``loads`` / ``bias`` name buffers found on the modules ``gates`` selects (default: modules
    that own one of the ``loads`` buffers; the names are :data:`.discovery.COUNT_NAMES` and
    :data:`.discovery.BIAS_NAMES`): torchtitan 0.3's MoE keeps ``tokens_per_expert_E`` and
    ``expert_bias_E`` (earlier releases without the ``_E``); Megatron-core's TopKRouter
    ``local_tokens_per_expert`` and ``expert_bias``. :meth:`save` writes the npz layout
    of :mod:`lfbtheory.analysis.diagnose` (loads (steps, layers, E) [+ bias]).
    """

    def __init__(
        self,
        model: Any,
        *,
        gates: Any = None,
        loads: tuple[str, ...] = COUNT_NAMES,
        bias: tuple[str, ...] = BIAS_NAMES,
    ) -> None:
        if gates is None:

            def gates(_n: str, m: Any) -> bool:
                return any(isinstance(getattr(m, b, None), require_torch().Tensor) for b in loads)

        self.modules = find_gates(model, gates)
        self.loads_names, self.bias_names = loads, bias
        self.steps: list[int] = []
        self.loads: list[NDArray[np.float64]] = []
        self.bias: list[NDArray[np.float64] | None] = []

    def _get(self, m: Any, names: tuple[str, ...]) -> NDArray[np.float64] | None:
        for n in names:
            v = getattr(m, n, None)
            if v is not None and hasattr(v, "detach"):
                return np.asarray(v.detach().float().cpu().numpy(), np.float64).copy()
        return None

    def log(self, step: int) -> None:
        rows, bias = [], []
        for name, m in self.modules:
            c = self._get(m, self.loads_names)
            if c is None:
                raise ValueError(f"module {name!r} has none of the load buffers {self.loads_names}")
            rows.append(c)
            bias.append(self._get(m, self.bias_names))
        self.steps.append(int(step))
        self.loads.append(np.stack(rows))
        self.bias.append(np.stack(bias) if all(b is not None for b in bias) else None)  # type: ignore[arg-type]

    def save(self, path: str | os.PathLike[str]) -> None:
        if not self.loads:
            raise ValueError("nothing logged yet: call log(step) once per optimizer step")
        out: dict[str, Any] = {
            "loads": np.stack(self.loads),
            "step": np.asarray(self.steps, np.int64),
            "layer_names": np.array([n for n, _ in self.modules], dtype=str),
        }
        if all(b is not None for b in self.bias):
            out["bias"] = np.stack(self.bias)  # type: ignore[arg-type]
        np.savez_compressed(path, **out)
