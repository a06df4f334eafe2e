"""Read a torch router's design, the one way both adapters do it (optional extra ``torch``).

:func:`lfbtheory.adapters.torch.from_torch` and
:func:`lfbtheory.adapters.recording.record_router_scores` both call :func:`read_design` on a
gate module (and its parents) and :func:`fit_design` on what the gate computed, so the suite
and the traces see the same router. A design is:

- sizes: E and k;
- the score function f mapping logits z to the scores the bias is added to (``sigmoid``,
  ``softmax``, ``sqrt_softplus``, ``identity``), with an optional logit soft-cap
  c tanh(z / c) applied first (:data:`lfbtheory.traces.SCORE_FUNCTIONS`) and a constant
  logit multiplier (MuseSpark's ``output_multiplier``) before that;
- the bias: which tensor holds it (a buffer or grad-free parameter of the gate or of a
  sub-module, e.g. ERNIE's ``moe_statics.e_score_correction_bias``; a buffer of a parent
  block; or a ``forward`` argument the parent passes in, as in AFMoE and MiniMax-M2), where it
  is added (to the scores f(z) or to the logits z) and how (``additive``; the multiplicative
  rule of :mod:`lfbtheory.online.updates` is declared, never guessed);
- group-limited routing: groups, kept groups and the group score (the sum of the top
  ``group_score_topk`` biased scores of a group: 2 in DeepSeek-V3, 1 (the max) in
  DeepSeek-V2's ``group_limited_greedy``, k // kept groups in Megatron-core);
- the module's own counts buffer (tokens per expert), if any.

Names are read from the gate, its config (``module.config``) and, for recording, its two
nearest parents, under every name the Hugging Face, Megatron-core and torchtitan families use
(:data:`NAMES`); explicit keywords override them. What cannot be read from names -- most
gates hard-code their score function -- is *measured* by :func:`fit_design`: the hypotheses
(f, bias placement, group rule) are scored against the experts the gate itself chose for known
logits and a known non-zero bias, and against the ratios of its gate weights (w_j / w_1 =
f(z_j) / f(z_1) for weights taken from the scores, normalised or scaled or not). Exactly one
surviving hypothesis is the design; none means the router is not top-k of f(z) + b for any
f of the list (a hash router, a skip class, a learned MLP after the gate): it is refused with
that reason. Several survivors that route differently leave a gap naming the keyword that
settles it (``score_function=``, ``bias_on=``, ``group_score_topk=``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "NAMES",
    "BIAS_NAMES",
    "COUNT_NAMES",
    "Design",
    "read_design",
    "fit_design",
    "score_function",
]

#: design field -> attribute / config names, in the order they are tried
NAMES: dict[str, tuple[str, ...]] = {
    "n_experts": (
        "n_experts",
        "num_experts",
        "n_routed_experts",
        "num_local_experts",
        "num_moe_experts",
        "moe_num_experts",
    ),
    "k": (
        "k",
        "top_k",
        "topk",
        "router_topk",
        "moe_router_topk",
        "num_experts_per_tok",
        "n_activated_experts",
        "moe_topk",
        "experts_per_token",
        "num_selected_experts",
    ),
    "n_groups": (
        "n_groups",
        "n_group",
        "num_group",
        "num_groups",
        "n_expert_groups",
        "num_expert_groups",
        "moe_router_num_groups",
    ),
    "topk_groups": (
        "topk_groups",
        "topk_group",
        "n_limited_groups",
        "num_limited_groups",
        "moe_router_group_topk",
    ),
    "group_score_topk": ("group_score_topk",),
    "score_function": (
        "score_function",
        "score_func",
        "scoring_func",
        "router_score_function",
        "moe_router_score_function",
        "expert_selection_fn",
    ),
    "logit_softcap": ("router_logit_softcapping", "moe_router_logit_softcapping"),
    "logit_scale": ("output_multiplier", "router_logit_scale"),
    "topk_method": ("topk_method",),
}
#: tensor names a routing bias is found under (buffers, grad-free parameters, forward args)
BIAS_NAMES = (
    "e_score_correction_bias",
    "expert_bias",
    "expert_bias_E",
    "expert_biases",
    "score_correction_bias",
    "balancing_biases",
)
#: tensor names of a module's own tokens-per-expert counts
COUNT_NAMES = ("local_tokens_per_expert", "tokens_per_expert", "tokens_per_expert_E")
SCORE_ALIASES = {
    "sigmoid": "sigmoid",
    "softmax": "softmax",
    "sqrtsoftplus": "sqrt_softplus",
    "sqrt_softplus": "sqrt_softplus",
    "identity": "identity",
    "none": "identity",
}
CANDIDATES = ("sigmoid", "softmax", "sqrt_softplus", "identity")


def score_function(name: str, z: NDArray[np.floating], softcap: float = 0.0) -> NDArray[np.float64]:
    """f(z) row-wise in float64, after the soft-cap c tanh(z / c) when c > 0."""
    x = np.asarray(z, dtype=np.float64)
    if softcap:
        x = softcap * np.tanh(x / softcap)
    if name == "sigmoid":
        out = np.empty_like(x)
        pos = x >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
        ex = np.exp(x[~pos])
        out[~pos] = ex / (1.0 + ex)
        return out
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "sqrt_softplus":
        return np.sqrt(np.logaddexp(0.0, x))
    if name == "identity":
        return x
    raise ValueError(f"score function must be one of {CANDIDATES}, got {name!r}")


@dataclass(frozen=True)
class Design:
    """A router's design as read (``sources`` says from where, per field) and measured.

    ``bias`` names the bias tensor: ``"buffer:<path>"`` (relative to the gate),
    ``"parent:<path>"`` (a parent block's tensor, recording only) or ``"argument:<name>"``
    (passed to the gate's forward); None = no bias. ``gaps`` lists what could not be settled,
    each with the keyword that supplies it; ``refused`` says why the router cannot be
    expressed at all.
    """

    n_experts: int | None = None
    k: int | None = None
    score_function: str | None = None
    logit_softcap: float = 0.0
    logit_scale: float = 1.0
    bias: str | None = None
    bias_on: str = "scores"
    bias_mode: str = "additive"
    n_groups: int | None = None
    topk_groups: int | None = None
    group_score_topk: int | None = None
    counts: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    gaps: tuple[str, ...] = ()
    refused: str | None = None

    @property
    def group_limited(self) -> bool:
        return bool(
            self.n_groups
            and self.topk_groups
            and 1 < self.n_groups
            and self.topk_groups < self.n_groups
        )

    def describe(self) -> str:
        f = self.score_function or "?"
        if self.logit_softcap:
            f = f"{f}(softcap {self.logit_softcap:g})"
        parts = [f"gate {f}"]
        if self.bias:
            parts.append(f"bias {self.bias} on {self.bias_on} ({self.bias_mode})")
        else:
            parts.append("no bias")
        if self.group_limited:
            rule = "max" if self.group_score_topk == 1 else f"top-{self.group_score_topk} sum"
            parts.append(f"groups {self.topk_groups}/{self.n_groups} ({rule})")
        return ", ".join(parts)

    def scores(self, z: NDArray[np.floating]) -> NDArray[np.float64]:
        """The values the bias is added to: f(z) (bias on scores) or z (bias on logits)."""
        if self.bias_on == "logits":
            return np.asarray(z, dtype=np.float64)
        return score_function(self.score_function or "identity", z, self.logit_softcap)


def _value(obj: Any, name: str) -> Any:
    try:
        v = getattr(obj, name, None)
    except Exception:  # noqa: BLE001 -- e.g. per-layer config attributes that refuse a global read
        return None
    return None if callable(v) and not isinstance(v, str) else v


def _lookup(chain: Iterable[Any], names: Iterable[str]) -> tuple[Any, str] | None:
    """(value, "where.name") of the first name set on a module of ``chain`` or its config."""
    for depth, mod in enumerate(chain):
        where = "gate" if depth == 0 else f"parent {depth}"
        for holder, label in ((mod, where), (_value(mod, "config"), f"{where}.config")):
            if holder is None:
                continue
            for name in names:
                v = _value(holder, name)
                if v is not None and not isinstance(v, bool):
                    return v, f"{label}.{name}"
    return None


def _int(v: Any) -> int | None:
    if hasattr(v, "item") and getattr(v, "numel", lambda: 1)() == 1:
        v = v.item()
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    return None


def _tensors(module: Any) -> dict[str, Any]:
    """Buffers and grad-free parameters of ``module`` and its sub-modules, by dotted path."""
    out = dict(module.named_buffers())
    for name, p in module.named_parameters():
        if not p.requires_grad:
            out[name] = p
    return out


def _find_tensor(module: Any, names: tuple[str, ...], e: int | None) -> list[str]:
    return [
        path
        for path, t in _tensors(module).items()
        if path.rsplit(".", 1)[-1] in names
        and t.is_floating_point()
        and (e is None or int(t.numel()) == e)
    ]


def _forward_args(module: Any) -> list[str]:
    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return []
    return [n for n in params if n in BIAS_NAMES]


def read_design(
    module: Any,
    parents: Iterable[Any] = (),
    overrides: Mapping[str, Any] | None = None,
) -> Design:
    """The design of gate ``module`` from keywords (``overrides``, non-None entries), then its
    attributes and config, then those of ``parents`` (nearest first). The score function and
    the group rule are left for :func:`fit_design` to measure when no name gives them."""
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    chain = [module, *parents]
    src: dict[str, str] = {}
    got: dict[str, Any] = {}
    for key in ("n_experts", "k", "n_groups", "topk_groups", "group_score_topk"):
        if key in over:
            got[key], src[key] = int(over[key]), "keyword"
            continue
        hit = _lookup(chain, NAMES[key])
        if hit is not None and _int(hit[0]) is not None:
            got[key], src[key] = _int(hit[0]), hit[1]
    w = _projection_weight(module)
    if w is not None and "n_experts" not in over and got.get("n_experts") != int(w.shape[0]):
        # the gate scores its projection's rows (LongCat's zero-computation experts add rows)
        named = f" ({src['n_experts']} says {got['n_experts']})" if "n_experts" in got else ""
        got["n_experts"], src["n_experts"] = int(w.shape[0]), f"projection weight rows{named}"
    e = got.get("n_experts")
    fn, softcap = over.get("score_function"), float(over.get("logit_softcap", 0.0) or 0.0)
    if fn is not None:
        src["score_function"] = "keyword"
    else:
        hit = _lookup(chain, NAMES["score_function"])
        if hit is not None and str(hit[0]).lower().replace("-", "_") in SCORE_ALIASES:
            fn, src["score_function"] = SCORE_ALIASES[str(hit[0]).lower().replace("-", "_")], hit[1]
    scale = 1.0
    hit = _lookup(chain[:1], NAMES["logit_scale"])
    if hit is not None and isinstance(hit[0], (int, float)) and hit[0] > 0:
        scale, src["logit_scale"] = float(hit[0]), hit[1]
    if not softcap:
        hit = _lookup(chain[:1], NAMES["logit_softcap"])
        if hit is not None and isinstance(hit[0], (int, float)) and hit[0] > 0:
            softcap, src["logit_softcap"] = float(hit[0]), hit[1]
    # the group score: declared, else the family's convention (verified by fit_design)
    if got.get("n_groups") and got.get("topk_groups") and "group_score_topk" not in got:
        method = _lookup(chain, NAMES["topk_method"])
        if method is not None and str(method[0]) == "group_limited_greedy":
            got["group_score_topk"], src["group_score_topk"] = 1, f"{method[1]} (max)"
        elif src.get("n_groups", "").endswith("moe_router_num_groups") and got.get("k"):
            got["group_score_topk"] = max(1, got["k"] // got["topk_groups"])
            src["group_score_topk"] = "Megatron-core convention: top-(k // kept groups) sum"
        else:
            got["group_score_topk"] = 2
            src["group_score_topk"] = (
                f"DeepSeek-V3 convention for {src['n_groups']}: top-2 sum (HF, torchtitan)"
            )
    # the bias: keyword, a tensor of the gate, a forward argument, a parent's tensor
    bias = over.get("bias")
    if bias is not None:
        bias = bias if ":" in str(bias) else f"buffer:{bias}"
        src["bias"] = "keyword"
    else:
        own = _find_tensor(module, BIAS_NAMES, e)
        args = _forward_args(module)
        if len(own) > 1:
            return Design(
                **got,
                sources=src,
                gaps=(f"several bias tensors {own}: name one with bias=",),
            )
        if own:
            bias, src["bias"] = f"buffer:{own[0]}", f"tensor {own[0]}"
        elif args:
            bias, src["bias"] = f"argument:{args[0]}", f"forward argument {args[0]!r}"
        else:
            for depth, parent in enumerate(parents, 1):
                found = _find_tensor(parent, BIAS_NAMES, e)
                found = [p for p in found if not any(p.startswith(c) for c in ("experts.",))]
                if len(found) == 1:
                    bias, src["bias"] = f"parent:{found[0]}", f"parent {depth} tensor {found[0]}"
                    break
    counts = over.get("counts")
    if counts is None:
        found = _find_tensor(module, COUNT_NAMES, e)
        counts = found[0] if len(found) == 1 else None
    bias_on = over.get("bias_on", "scores")
    if "bias_on" in over:
        src["bias_on"] = "keyword"
    return Design(
        n_experts=e,
        k=got.get("k"),
        score_function=fn,
        logit_softcap=softcap,
        logit_scale=scale,
        bias=bias,
        bias_on=bias_on,
        bias_mode=str(over.get("bias_mode", "additive")),
        n_groups=got.get("n_groups"),
        topk_groups=got.get("topk_groups"),
        group_score_topk=got.get("group_score_topk"),
        counts=counts,
        sources=src,
    )


def _projection_weight(module: Any) -> Any:
    """The gate's (E, d) projection weight when it has exactly one 2-D weight."""
    cands = [p for n, p in module.named_parameters() if p.ndim == 2 and n.endswith("weight")]
    return cands[0] if len(cands) == 1 else None


# ---------------------------------------------------------------------------------------------
# measurement


def _topk_sets(
    x: NDArray[np.float64], k: int, groups: tuple[int, int, int] | None, tol: float
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    from lfbtheory.testing.conformance import tie_bounds

    must, may, _, _ = tie_bounds(x, k, groups, tol)
    return must, may


def _consistent(
    x: NDArray[np.float64],
    chosen: NDArray[np.bool_],
    k: int,
    groups: tuple[int, int, int] | None,
    tol: float,
) -> int:
    """Tokens whose chosen set is outside [must, may] of top-k (group-limited) of ``x``."""
    must, may = _topk_sets(x, k, groups, tol)
    return int(np.sum(np.any((must & ~chosen) | (chosen & ~may), axis=1)))


def _weights_match(
    name: str,
    z: NDArray[np.floating],
    ids: NDArray[np.int64],
    w: NDArray[np.float64],
    softcap: float,
) -> bool:
    """w_j / w_1 == f(z_j) / f(z_1) per token (weights from the scores, any normalisation)."""
    q = np.take_along_axis(score_function(name, z, softcap), ids, axis=1)
    ok = (np.abs(w[:, :1]) > 1e-30) & (np.abs(q[:, :1]) > 1e-30)
    if not ok.all() or ids.shape[1] < 2:
        return False
    return bool(np.allclose(w / w[:, :1], q / q[:, :1], rtol=2e-4, atol=1e-6))


def fit_design(
    design: Design,
    z: NDArray[np.floating],
    chosen: NDArray[np.int64],
    bias: NDArray[np.floating] | None,
    weights: NDArray[np.floating] | None = None,
    *,
    tol: float = 2e-6,
    softcap_applied: bool = False,
) -> Design:
    """Settle the score function, the bias placement and the group rule of ``design`` from what
    the gate did: logits ``z`` (n, E), the experts it ``chosen`` (n, k), the ``bias`` it held
    (None: no bias) and the gate ``weights`` (n, k, aligned with ``chosen``) when it returns
    them. Tokens within ``tol`` of a tie (float32 round-off of the gate) may go either way.
    ``softcap_applied``: the logits already went through the declared soft-cap (a gate that
    returns its capped logits)."""
    if design.refused:
        return design
    z = np.asarray(z, dtype=np.float64)
    n, e = z.shape
    ids = np.asarray(chosen, dtype=np.int64)
    k = design.k or ids.shape[1]
    mask = np.zeros((n, e), dtype=bool)
    np.put_along_axis(mask, ids, True, axis=1)
    if np.any(mask.sum(axis=1) != ids.shape[1]):
        return replace(design, refused="the gate chose an expert twice for a token")
    b = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    cap = 0.0 if softcap_applied else design.logit_softcap
    fns = (design.score_function,) if design.score_function else CANDIDATES
    places = (
        ("scores",)
        if b is None
        else (("scores", "logits") if "bias_on" not in design.sources else (design.bias_on,))
    )
    if design.n_groups and design.topk_groups and design.topk_groups < design.n_groups:
        if design.group_score_topk:
            rules: tuple[int, ...] = (design.group_score_topk,)
        else:
            g = e // design.n_groups
            rules = tuple(sorted({2, 1, max(1, k // design.topk_groups), g}))
    else:
        rules = (0,)
    alive = []
    for f_try in fns:
        for p_try in places:
            for r_try in rules:
                groups = None
                if r_try:  # rules != (0,) only for group-limited designs
                    assert design.n_groups is not None and design.topk_groups is not None
                    groups = (design.n_groups, design.topk_groups, r_try)
                if b is None:
                    x = score_function(f_try, z, cap)
                elif p_try == "logits":
                    x = (cap * np.tanh(z / cap) if cap else z) + b
                else:
                    x = score_function(f_try, z, cap) + b
                mag = float(np.max(np.abs(x))) if x.size else 1.0
                if _consistent(x, mask, k, groups, tol * max(1.0, mag)) == 0:
                    alive.append((f_try, p_try, r_try))
    constrained = (
        bool(design.score_function)
        or "bias_on" in design.sources
        or (rules != (0,) and design.group_score_topk is not None)
    )
    if not alive and constrained:
        free = replace(
            design,
            score_function=None,
            group_score_topk=None,
            sources={k: v for k, v in design.sources.items() if k != "bias_on"},
        )
        measured = fit_design(
            free, z, chosen, bias, weights, tol=tol, softcap_applied=softcap_applied
        )
        if not measured.refused:
            declared = design.describe()
            return replace(
                design,  # keep the declared design; take what names did not state from measurement
                score_function=design.score_function or measured.score_function,
                bias_on=design.bias_on if "bias_on" in design.sources else measured.bias_on,
                refused=(
                    f"its choices do not follow the design read from its names ({declared}; "
                    f"{', '.join(f'{k}: {v}' for k, v in design.sources.items())}) but "
                    f"{measured.describe()}: a bug, or pass the keywords (score_function=, "
                    "bias_on=, group_score_topk=) that state its real design"
                ),
            )
    if not alive:
        what = "top-k of f(z) + b" if b is not None else "top-k of f(z)"
        fn = design.score_function
        if fn is None and weights is not None:  # keep a score function for the oracles
            w = np.asarray(weights, dtype=np.float64)
            fits = [f for f in CANDIDATES if _weights_match(f, z, ids, w, cap)]
            fn = fits[0] if len(fits) == 1 else None
        return replace(
            design,
            score_function=fn,
            refused=(
                f"its choices are not {what} for any score function f in {CANDIDATES}, bias "
                "on scores or logits, and group rule (a hash router, a skip class, or scores "
                "from more than the gate's logits): it cannot be expressed"
            ),
        )
    src = dict(design.sources)
    # the weights decide the score function among hypotheses that route alike
    if len({a[0] for a in alive}) > 1 and weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        by_w = [a for a in alive if _weights_match(a[0], z, ids, w, cap)]
        if by_w:
            alive = by_w
            src.setdefault("score_function", "measured: gate weight ratios")
    fn_set = {a[0] for a in alive}
    place_set = {a[1] for a in alive}
    rule_set = {a[2] for a in alive}
    gaps = list(design.gaps)
    fn = design.score_function
    if fn is None:
        if len(fn_set) == 1:
            fn = fn_set.pop()
            src.setdefault("score_function", "measured: the gate's choices")
        else:
            gaps.append(
                f"score function: {sorted(fn_set)} all reproduce the gate; pass score_function="
            )
    place = design.bias_on
    if b is not None and "bias_on" not in design.sources:
        if len(place_set) == 1:
            place = place_set.pop()
            src["bias_on"] = "measured: the gate's choices"
        else:
            gaps.append("bias placement: scores or logits both reproduce the gate; pass bias_on=")
    rule = design.group_score_topk
    if rules != (0,) and rule is None:
        if len(rule_set) == 1:
            rule = rule_set.pop()
            src["group_score_topk"] = "measured: the gate's choices"
        else:
            gaps.append(
                f"group score: top-{sorted(rule_set)} sums all reproduce the gate; pass "
                "group_score_topk="
            )
    return replace(
        design,
        k=k,
        score_function=fn,
        bias_on=place,
        group_score_topk=rule,
        sources=src,
        gaps=tuple(gaps),
    )
