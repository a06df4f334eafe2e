"""Every MoE family of the installed transformers, built tiny and read by the adapters.

:func:`moe_families` lists the model types of the installed ``transformers`` whose
configuration declares a top-k expert count (``num_experts_per_tok`` and its other names),
found by reading the package's configuration sources (no model is imported). :data:`KNOWN`
is the table of what each family's router *is*, written from its modeling source: the score
function, where the bias lives and where it is added, the group-limited routing, or why the
router cannot be expressed (a hash router, a skip class). The tests compare the two lists, so
a new family in a new transformers release fails loudly until it is read and tabulated here.

:func:`build_router` builds one family's router from a tiny text config (hidden size 32,
E = 16, k = 4, 4 groups with 2 kept where the family groups) with seeded random weights and
a seeded random non-zero bias in every bias tensor; :func:`check_family` records its scores
through :func:`lfbtheory.adapters.recording.record_router_scores`, replays them
(:func:`lfbtheory.adapters.recording.check_reproduction`), wraps the router the documented
way (``from_torch(router, inputs="hidden", update="rule", rule=updates.sign(1e-3))``) and
runs the conformance suite on it. ``python -m lfbtheory.adapters.zoo`` prints the recording
table (family, gate, bias placement, groups, mismatched tokens) for every family.
"""

from __future__ import annotations

import importlib
import inspect
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lfbtheory.adapters.torch import require_torch

__all__ = ["KNOWN", "Expected", "moe_families", "build_router", "check_family", "main"]

_TOPK_CONFIG = re.compile(
    r"num_experts_per_tok|experts_per_token|moe_topk|top_k_experts|num_selected_experts|"
    r"router_topk"
)
_ROUTER_CLASS = re.compile(r"(Router|Gate)$")
_NOT_A_ROUTER = re.compile(
    r"RMSNorm|Forget|DeltaNet|GateMLP|ResidualGate|MessageGate|OutputProjection|RouterMLP|"
    r"GatedResidual|Vision|Talker"
)


class Expected(NamedTuple):
    """What a family's router is (from its modeling source): score function, where the bias
    is held (None: no bias) and what it is added to, whether it is group-limited and its group
    score (top-m sum; 1 = max), or why it is refused / not buildable."""

    gate: str | None
    bias: str | None = None
    bias_on: str = "scores"
    group_score_topk: int | None = None
    refused: str | None = None
    bug: str | None = None  # a bug of the family's router the suite must find


_DSV3 = Expected("sigmoid", "buffer:e_score_correction_bias", group_score_topk=2)
_SIG_BIAS = Expected("sigmoid", "buffer:e_score_correction_bias")
_SOFTMAX = Expected("softmax")
_PROBS = Expected("identity")  # returns its softmax probabilities, not logits: recorded as scores
_NO_MODEL = "configuration only: the installed transformers ships no modeling code"

#: family -> Expected, read from transformers 5.25's modeling sources
KNOWN: dict[str, Expected] = {
    "afmoe": Expected("sigmoid", "argument:expert_bias"),
    "aria": _SOFTMAX,
    "axk1": _DSV3,
    "axk2": Expected(
        "sigmoid",
        "buffer:e_score_correction_bias",
        group_score_topk=2,
        bug="masked groups filled with 0.0 (apply_group_scoring): once s + b < 0 a masked "
        "expert wins",
    ),
    "bailing_hybrid": _DSV3,
    "beam": _DSV3,
    "cohere2_moe": _SOFTMAX,
    "deepseek_ocr2": Expected("softmax", group_score_topk=1),
    "deepseek_v2": Expected("softmax", group_score_topk=1),
    "deepseek_v3": _DSV3,
    "deepseek_v32": _DSV3,
    "deepseek_v4": Expected("sqrt_softplus", "buffer:e_score_correction_bias"),
    "diffusion_gemma": _PROBS,
    "doge": Expected(
        None,
        refused="product-key routing: an expert's score is the sum of two key scores, inlined "
        "in the MoE block (no gate module)",
    ),
    "dots1": _DSV3,
    "dots3_note": _DSV3,
    "ergo": _SIG_BIAS,
    "ernie4_5_moe": Expected("softmax", "buffer:moe_statics.e_score_correction_bias"),
    "ernie4_5_vl_moe": Expected("softmax", "buffer:moe_statics.e_score_correction_bias"),
    "exaone_moe": _DSV3,
    "flex_olmo": _SOFTMAX,
    "flint": Expected("sigmoid"),
    "gemma4": _PROBS,
    "glm4_moe": _DSV3,
    "glm4_moe_lite": _DSV3,
    "glm4v_moe": _DSV3,
    "glm5_next": _DSV3,
    "glm_moe_dsa": _DSV3,
    "gpt_oss": _SOFTMAX,
    "granitemoe": _SOFTMAX,
    "granitemoe_swa": _SOFTMAX,
    "granitemoehybrid": _SOFTMAX,
    "granitemoeshared": _SOFTMAX,
    "hunyuan_v1_moe": _SOFTMAX,
    "hy_v3": Expected("sigmoid", "argument:e_score_correction_bias"),
    "hy_v4": _DSV3,
    "hy_v4_vl": _DSV3,
    "inkling": Expected(None, refused=_NO_MODEL),
    "inkling2": _SIG_BIAS,
    "inkling2_loop": _SIG_BIAS,
    "jamba": _SOFTMAX,
    "jetmoe": Expected(
        None,
        refused="its gate (JetMoeTopKGating) returns a sorted dispatch (index_sorted_experts, "
        "batch_index, batch_gates, expert_size, logits), not a per-token choice",
    ),
    "kimi_linear": _DSV3,
    "kolibri1": Expected("sigmoid", "buffer:e_score_correction_bias", bias_on="logits"),
    "kolibri1_1": Expected("sigmoid", "buffer:e_score_correction_bias", bias_on="logits"),
    "laguna": _SIG_BIAS,
    "lara_mini": _SOFTMAX,
    "lfm2_moe": Expected("sigmoid", "argument:expert_bias"),
    "llama4": Expected("sigmoid"),
    "longcat_flash": Expected("softmax", "buffer:e_score_correction_bias"),
    "mellum": _SOFTMAX,
    "mimo_v2_flash": _DSV3,
    "minicpm5_moe": _DSV3,
    "minimax": _SOFTMAX,
    "minimax_m2": Expected("sigmoid", "argument:e_score_correction_bias"),
    "minimax_m3_vl": _SIG_BIAS,
    "mistral4": Expected("softmax", group_score_topk=2),
    "mistral_large4": Expected("softmax", group_score_topk=2),
    "muse_spark": _SIG_BIAS,
    "mixtral": _SOFTMAX,
    "nemotron3_5_transcribe": Expected(None, refused=_NO_MODEL),
    "nemotron_h": _DSV3,
    "olmoe": _SOFTMAX,
    "openai_privacy_filter": _SOFTMAX,
    "param2moe": Expected(None, refused=_NO_MODEL),
    "phimoe": Expected(
        None,
        refused="sparsemixer routing: the second expert is chosen after masking the first by "
        "a jitter threshold, not top-k of scores",
    ),
    "qwen2_moe": _SOFTMAX,
    "qwen3_5_moe": _SOFTMAX,
    "qwen3_moe": _SOFTMAX,
    "qwen3_next": _SOFTMAX,
    "qwen3_omni_moe": _SOFTMAX,
    "qwen3_vl_moe": _SOFTMAX,
    "qwen4_exp": _SOFTMAX,
    "sarvam_mla": Expected(None, refused=_NO_MODEL),
    "sarvam_moe": Expected(None, refused=_NO_MODEL),
    "solar_open": _DSV3,
    "step3p7": _SIG_BIAS,
    "unlimited_ocr": Expected("softmax", group_score_topk=1),
    "zaya": Expected(
        None, refused="a skip class: E + 1 router outputs, the extra one masked to expert 0"
    ),
}


def moe_families() -> list[str]:
    """Model types of the installed transformers whose configuration declares k (sorted)."""
    import transformers

    root = Path(transformers.__file__).parent / "models"
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if any(_TOPK_CONFIG.search(c.read_text()) for c in d.glob("configuration_*.py")):
            out.append(d.name)
    return out


_TINY = {
    "hidden_size": 32,
    "intermediate_size": 32,
    "moe_intermediate_size": 16,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 8,
    "router_hidden_size": 32,
    "zero_expert_num": 4,
}
_E_NAMES = (
    "num_experts",
    "n_routed_experts",
    "num_local_experts",
    "moe_num_experts",
    "num_moe_experts",
)
_K_NAMES = ("num_experts_per_tok", "moe_topk", "top_k")
_BATCHED = {"afmoe", "zaya"}


def _get(cfg: Any, name: str) -> Any:
    try:
        return getattr(cfg, name, None)
    except Exception:  # noqa: BLE001 -- per-layer attributes refuse a global read
        return None


def _text_config(cfg: Any) -> Any:
    for name in ("text_config", "thinker_config", "language_config", "llm_config"):
        sub = _get(cfg, name)
        if sub is not None and not isinstance(sub, dict):
            return _text_config(sub)
    return cfg


def _tiny_config(family: str) -> Any:
    from transformers import CONFIG_MAPPING

    cfg = _text_config(CONFIG_MAPPING[family]())
    for key, v in _TINY.items():
        if _get(cfg, key) is not None:
            try:
                setattr(cfg, key, v)
            except Exception:  # noqa: BLE001 -- a read-only or per-layer attribute
                pass
    for name in _E_NAMES:
        if isinstance(_get(cfg, name), int) or (hasattr(cfg, name) and _get(cfg, name) is None):
            setattr(cfg, name, 16)
    for name in _K_NAMES:
        if hasattr(cfg, name) and (_get(cfg, name) is None or isinstance(_get(cfg, name), int)):
            setattr(cfg, name, 4)
    for name in ("top_k_experts",):
        if hasattr(cfg, name):
            setattr(cfg, name, 4)
    if hasattr(cfg, "n_group"):  # group-limited wherever the family can be
        cfg.n_group, cfg.topk_group = 4, 2
    if _get(cfg, "topk_method") == "greedy":
        cfg.topk_method, cfg.n_group, cfg.topk_group = "group_limited_greedy", 4, 2
    if _get(cfg, "use_expert_bias") is not None:
        cfg.use_expert_bias = True
    return cfg


def _router_class(family: str) -> type:
    torch = require_torch()
    mod = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    classes = [
        c
        for n, c in vars(mod).items()
        if inspect.isclass(c)
        and issubclass(c, torch.nn.Module)
        and c.__module__ == mod.__name__
        and _ROUTER_CLASS.search(n)
        and not _NOT_A_ROUTER.search(n)
        and "Hash" not in n
    ]
    if not classes:
        raise LookupError(f"{family}: no router class in its modeling module")
    return classes[0]


def build_router(family: str, seed: int = 0) -> tuple[Any, Any]:
    """(block, router): the family's router from a tiny config, seeded random weights and a
    seeded random non-zero bias N(0, 0.1^2) (softmax gates: N(0, (0.5 / E)^2)) in every bias
    tensor; ``block`` is a parent holding the bias when the router takes it as an argument
    (as the family's MoE block does), calling ``router(hidden)`` otherwise."""
    from lfbtheory.adapters.discovery import BIAS_NAMES

    torch = require_torch()
    cfg = _tiny_config(family)
    cls = _router_class(family)
    params = inspect.signature(cls).parameters
    router = cls(cfg, 0) if "layer_idx" in params else cls(cfg)
    g = torch.Generator().manual_seed(seed)
    exp = KNOWN.get(family, Expected(None))
    scale = 0.5 / 16 if exp.gate == "softmax" else 0.1
    with torch.no_grad():
        for _, p in router.named_parameters():
            if p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) * p.shape[1] ** -0.5)
        for name, t in list(router.named_buffers()) + list(router.named_parameters()):
            if name.rsplit(".", 1)[-1] in BIAS_NAMES:
                t.copy_(torch.randn(t.shape, generator=g) * scale)
    arg = [n for n in inspect.signature(router.forward).parameters if n in BIAS_NAMES]

    base: Any = torch.nn.Module  # a base class mypy can see (torch is imported at run time)

    class Block(base):
        def __init__(self) -> None:
            super().__init__()
            self.router = router
            if arg:
                self.register_buffer(arg[0], torch.randn(16, generator=g) * scale)

        def forward(self, h: Any) -> Any:
            if family in _BATCHED:  # routers that read (batch, seq, hidden) themselves
                h = h.unsqueeze(0)
            if arg:
                return self.router(h, getattr(self, arg[0]))
            return self.router(h)

    return Block(), router


def _batched_cls() -> type:
    torch = require_torch()

    base: Any = torch.nn.Module  # a base class mypy can see (torch is imported at run time)

    class Batched(base):
        """Feeds a router that reads (batch, seq, hidden) the adapter's (tokens, hidden)."""

        def __init__(self, router: Any) -> None:
            super().__init__()
            self.router = router

        def forward(self, hidden_states: Any, expert_bias: Any = None) -> Any:
            return self.router(hidden_states.unsqueeze(0), expert_bias)

    return Batched


def _Batched(router: Any) -> Any:  # noqa: N802 -- a class built lazily (torch is optional)
    return _batched_cls()(router)


def _hidden(seed: int, n: int = 256) -> Any:
    torch = require_torch()
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(n, 32, generator=g)  # (tokens, hidden): MoE blocks flatten first


#: the properties that run the family's own router code (select); the lifecycle properties
#: of an inference-only router run only the adapter's update="rule" (the same for every family)
OWN_CODE = (
    "selection_valid",
    "gate_weights_bias_free",
    "bias_shift_invariance",
    "selected_in_selected_groups",
    "steering_monotonicity",
    "steering_factor",
)


def check_family(
    family: str, seed: int = 0, suite: bool = True, only: Sequence[str] | None = None
) -> dict[str, Any]:
    """Record, replay and (``suite``) run the conformance suite (``only`` these properties)
    on one family's router; the row of the recording table, with the design read and the
    suite's failures."""
    from lfbtheory.adapters.recording import check_reproduction, record_router_scores
    from lfbtheory.adapters.torch import from_torch
    from lfbtheory.online import updates
    from lfbtheory.testing.conformance import Config, run_conformance, score_scale

    exp = KNOWN[family]
    row: dict[str, Any] = {"family": family}
    if exp.refused:
        row["refused"] = exp.refused
        try:
            block, router = build_router(family, seed)
        except (LookupError, KeyError, ImportError) as exc:
            row["refused_by"] = f"not buildable: {exc}"
            return row
        try:
            record_router_scores(
                block, [_hidden(seed)], max_tokens=256, gates=lambda n, m: m is router
            )
        except ValueError as exc:
            row["refused_by"] = f"recording: {exc}"
        return row
    t0 = time.perf_counter()
    block, router = build_router(family, seed)
    row["router"] = type(router).__name__
    trace = record_router_scores(
        block, [_hidden(seed)], max_tokens=256, gates=lambda n, m: m is router
    )
    rep = check_reproduction(trace)
    row.update(
        gate=trace.gate,
        bias=("none" if trace.bias is None else f"on {trace.bias_on}"),
        groups=(
            f"{trace.topk_groups}/{trace.n_groups}, top-{trace.group_score_topk} sum"
            if trace.n_groups
            else "-"
        ),
        tokens=rep.tokens,
        mismatched=int(sum(rep.mismatched)),
    )
    if suite:
        target = _Batched(router) if family in _BATCHED else router
        wrapped = from_torch(target, inputs="hidden")
        if exp.bias is not None:
            # the sign rule with u = S / 512, S the gate's score scale (u = 1e-3 for sigmoid
            # scores, S = 1/2, as in arXiv 2408.15664), so every family balances on one clock
            s = np.random.default_rng(seed).uniform(0.05, 0.95, (64, wrapped.n_experts))
            u = score_scale(wrapped.gate_scores(s)) / 512
            wrapped = from_torch(target, inputs="hidden", update="rule", rule=updates.sign(u))
        res = run_conformance(
            wrapped, only=only, config=Config(seed=seed, causality_examples=10, drift_steps=20)
        )
        row["suite_failed"] = list(res.failed)
        row["suite_gaps"] = (list(res.coverage_gaps) if only is None else []) + list(
            res.design_gaps
        )
        row["suite_ok"] = res.ok
        row["design"] = getattr(wrapped, "design", None) and wrapped.design.describe()
        row["report"] = str(res)
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m lfbtheory.adapters.zoo", description=__doc__)
    p.add_argument("--families", nargs="+", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-suite", action="store_true", help="record and replay only")
    p.add_argument("--out", help="write the rows as JSON here")
    a = p.parse_args(argv)
    fams = a.families or moe_families()
    rows = []
    for fam in fams:
        try:
            row = check_family(fam, a.seed, suite=not a.no_suite)
        except Exception as exc:  # noqa: BLE001 -- a row per family, errors included
            row = {"family": fam, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        if "refused" in row:
            print(f"{fam:24} refused: {row['refused']}")
        elif "error" in row:
            print(f"{fam:24} ERROR {row['error'][:200]}")
        else:
            print(
                f"{fam:24} {row['gate']:14} bias {row['bias']:10} groups {row['groups']:18} "
                f"mismatched {row['mismatched']}/{row['tokens']}"
                + (
                    f"  suite failed {row['suite_failed']} gaps {row['suite_gaps']}"
                    if "suite_failed" in row
                    else ""
                )
            )
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1))
    return int(any("error" in r or r.get("mismatched") or r.get("suite_failed") for r in rows))


if __name__ == "__main__":
    raise SystemExit(main())
