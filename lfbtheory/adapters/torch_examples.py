"""Three real-world router designs in plain torch, wrapped for the conformance suite.

Written from the papers' equations (not copied from any code base), at any shape:

- :class:`DeepSeekV3Gate` -- sigmoid affinities s = sigmoid(u W^T), selection TopK(s + b)
  within the ``topk_groups`` groups of highest group score (sum of the 2 largest s + b of the
  group), gate weights s / sum(s) over the selected experts times ``route_scale``; the
  correction bias b is a float32 buffer moved in place under ``no_grad`` by
  b_i += gamma sign(mean load - load_i) (DeepSeek-V3, arXiv 2412.19437 Sec. 2.1.2, eqs.
  12-16; Loss-Free Balancing, arXiv 2408.15664 Sec. 3).
- :class:`MegatronRouter` -- the same sigmoid / bias routing, returning the dense (n, E)
  probabilities and the (n, E) bool routing map; the module counts tokens per expert itself
  in a float32 buffer (only ``if self.training and torch.is_grad_enabled()``, padding
  excluded), and the optimizer-step hook :func:`megatron_update` replaces the float32 bias by
  :func:`get_updated_expert_bias` of the summed tokens per expert (arXiv 2408.15664 eq. 3).
- :class:`SoftmaxBiasGate` -- ERNIE 4.5 / LongCat-Flash: softmax scores with a selection
  bias, weights from the unbiased softmax (scores ~1/E).
- :class:`SoftmaxTopKRouter` -- Mixtral / Qwen-MoE: p = softmax(u W^T), the top-k of p, its
  weights renormalised to sum 1 (Mixtral, arXiv 2401.04088 Sec. 2.1: softmax over the top-k
  logits, the same numbers); no bias. Returns (logits, weights, indices).

Each factory (:func:`deepseek_v3`, :func:`megatron`, :func:`softmax_topk`) builds the module
at one of ``SHAPES`` (or given sizes) and wraps it with :func:`lfbtheory.adapters.torch.from_torch`
with ``inputs="hidden"``: the adapter feeds hidden states h = [logit(s), 0] and sets the
projection to the identity, so the gate computes its own sigmoid/softmax of the suite's scores.
``lfb check lfbtheory.adapters.torch_examples:deepseek_v3`` checks the E = 256 gate.

``python -m lfbtheory.adapters.torch_examples --seeds 30`` runs the zero-false-positive sweep
(every router x every shape x seeds; JSON with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from lfbtheory.adapters.torch import from_torch, require_torch
from lfbtheory.online import updates

torch = require_torch()
nn = torch.nn
_Module: Any = nn.Module  # a base class mypy can see (torch is imported at run time)

__all__ = [
    "SHAPES",
    "DeepSeekV3Gate",
    "MegatronRouter",
    "SoftmaxTopKRouter",
    "SoftmaxBiasGate",
    "softmax_bias",
    "get_updated_expert_bias",
    "megatron_update",
    "deepseek_v3",
    "megatron",
    "softmax_topk",
    "EXAMPLES",
    "sweep",
]

#: E -> (k, n_groups, topk_groups): E = 8 (Mixtral-sized), 64 (DeepSeek-V2-Lite/OLMoE-sized,
#: k = 6), 256 (DeepSeek-V3: k = 8, 8 groups, 4 kept).
SHAPES: dict[int, tuple[int, int, int]] = {8: (2, 4, 2), 64: (6, 8, 4), 256: (8, 8, 4)}

UPDATE_SPEED = 1e-3  # gamma of arXiv 2412.19437 Sec. 2.1.2 (u = 1e-3 of arXiv 2408.15664)


def _projection(n_experts: int, dim: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    return nn.Parameter(torch.randn(n_experts, dim, generator=g) * dim**-0.5)


class DeepSeekV3Gate(_Module):
    """DeepSeek-V3 gate (arXiv 2412.19437 Sec. 2.1.2): forward(x) -> (weights, indices).

    ``mask_value`` fills the experts of groups that were not selected (-inf; 0.0 reproduces a
    released bug: with negative s + b a masked expert wins)."""

    mask_value = float("-inf")

    def __init__(
        self,
        dim: int,
        n_experts: int,
        k: int,
        n_groups: int = 1,
        topk_groups: int = 1,
        route_scale: float = 1.0,
        update_speed: float = UPDATE_SPEED,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_experts % n_groups:
            raise ValueError(f"n_groups={n_groups} must divide n_experts={n_experts}")
        self.dim, self.n_experts, self.k = dim, n_experts, k
        self.n_groups, self.topk_groups = n_groups, topk_groups
        self.route_scale, self.update_speed = route_scale, update_speed
        self.weight = _projection(n_experts, dim, seed)
        self.register_buffer("e_score_correction_bias", torch.zeros(n_experts))

    def forward(self, x: Any) -> tuple[Any, Any]:
        scores = torch.sigmoid(nn.functional.linear(x.float(), self.weight.float()))
        original = scores
        scores = scores + self.e_score_correction_bias
        if self.n_groups > 1:
            grouped = scores.view(x.shape[0], self.n_groups, -1)
            group_scores = grouped.topk(2, dim=-1)[0].sum(dim=-1)
            keep = group_scores.topk(self.topk_groups, dim=-1)[1]
            drop = torch.ones_like(group_scores, dtype=torch.bool).scatter_(1, keep, False)
            scores = grouped.masked_fill(drop.unsqueeze(-1), self.mask_value).flatten(1)
        indices = torch.topk(scores, self.k, dim=-1)[1]
        weights = original.gather(1, indices)
        weights = weights / weights.sum(dim=-1, keepdim=True) * self.route_scale
        return weights.type_as(x), indices

    @torch.no_grad()
    def update_bias(self, tokens_per_expert: Any) -> None:
        """b_i += gamma sign(mean - load_i), in place (the optimizer-step hook)."""
        load = tokens_per_expert.float()
        self.e_score_correction_bias += self.update_speed * torch.sign(load.mean() - load)


def get_updated_expert_bias(tokens_per_expert: Any, expert_bias: Any, update_rate: float) -> Any:
    """b + rate * sign(mean(c) - c) from the summed (all-reduced) tokens per expert c
    (arXiv 2408.15664 eq. 3)."""
    with torch.no_grad():
        average = tokens_per_expert.sum(dim=-1, keepdim=True) / tokens_per_expert.shape[-1]
        return expert_bias + torch.sign(average - tokens_per_expert) * update_rate


class MegatronRouter(_Module):
    """Sigmoid top-k router with an expert bias, Megatron style: forward(x, padding_mask=None)
    -> (probs (n, E), routing_map (n, E) bool); counts in ``local_tokens_per_expert`` (float32)
    during training passes with grad enabled, padding (``padding_mask`` True) excluded."""

    def __init__(
        self,
        dim: int,
        n_experts: int,
        topk: int,
        n_groups: int = 1,
        topk_groups: int = 1,
        update_rate: float = UPDATE_SPEED,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_experts, self.topk = n_experts, topk
        self.n_groups, self.topk_groups, self.update_rate = n_groups, topk_groups, update_rate
        self.weight = _projection(n_experts, dim, seed)
        self.register_buffer("expert_bias", torch.zeros(n_experts, dtype=torch.float32))
        self.register_buffer("local_tokens_per_expert", torch.zeros(n_experts, dtype=torch.float32))

    def forward(self, x: Any, padding_mask: Any = None) -> tuple[Any, Any]:
        scores = torch.sigmoid(nn.functional.linear(x.float(), self.weight.float()))
        routing = scores + self.expert_bias
        if self.n_groups > 1:
            grouped = routing.view(x.shape[0], self.n_groups, -1)
            group_scores = grouped.topk(2, dim=-1)[0].sum(dim=-1)
            keep = group_scores.topk(self.topk_groups, dim=-1)[1]
            gmask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, keep, True)
            emask = gmask.repeat_interleave(self.n_experts // self.n_groups, dim=1)
            routing = routing.masked_fill(~emask, float("-inf"))
        top = torch.topk(routing, self.topk, dim=-1)[1]
        probs = scores.gather(1, top)
        probs = probs / (probs.sum(dim=-1, keepdim=True) + 1e-20)
        routing_map = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top, True)
        dense = torch.zeros_like(scores).scatter_(1, top, probs)
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                counted = routing_map if padding_mask is None else routing_map[~padding_mask]
                self.local_tokens_per_expert += counted.sum(dim=0).float()
        return dense, routing_map


def megatron_update(module: MegatronRouter, tokens_per_expert: Any) -> None:
    """The optimizer-step hook: copy the updated float32 bias into the buffer."""
    with torch.no_grad():
        module.expert_bias.copy_(
            get_updated_expert_bias(tokens_per_expert, module.expert_bias, module.update_rate)
        )


class SoftmaxTopKRouter(_Module):
    """Mixtral / Qwen-MoE router (arXiv 2401.04088 Sec. 2.1): forward(x) -> (router_logits,
    weights (n, k), indices (n, k)); weights renormalised over the top-k (``norm_topk_prob``)."""

    def __init__(
        self, dim: int, num_experts: int, top_k: int, norm_topk_prob: bool = True, seed: int = 0
    ) -> None:
        super().__init__()
        self.num_experts, self.top_k, self.norm_topk_prob = num_experts, top_k, norm_topk_prob
        self.gate = nn.Linear(dim, num_experts, bias=False)
        with torch.no_grad():
            self.gate.weight.copy_(_projection(num_experts, dim, seed))

    def forward(self, x: Any) -> tuple[Any, Any, Any]:
        router_logits = self.gate(x)
        probs = torch.softmax(router_logits.float(), dim=-1)
        weights, indices = torch.topk(probs, self.top_k, dim=-1)
        if self.norm_topk_prob:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return router_logits, weights.type_as(x), indices


class SoftmaxBiasGate(_Module):
    """Softmax gate with a selection bias (ERNIE 4.5 / LongCat-Flash design): p = softmax(u W^T),
    experts = TopK(p + b), weights = p / sum(p) over the selected experts (from the unbiased
    softmax); b moved in place by the sign rule. Scores are ~1/E, so every perturbation of
    the suite must be relative to the score scale."""

    def __init__(self, dim: int, n_experts: int, k: int, update_speed: float, seed: int = 0):
        super().__init__()
        self.n_experts, self.k, self.update_speed = n_experts, k, update_speed
        self.weight = _projection(n_experts, dim, seed)
        self.register_buffer("e_score_correction_bias", torch.zeros(n_experts))

    def forward(self, x: Any) -> tuple[Any, Any]:
        p = torch.softmax(nn.functional.linear(x.float(), self.weight.float()), dim=-1)
        indices = torch.topk(p + self.e_score_correction_bias, self.k, dim=-1)[1]
        weights = p.gather(1, indices)
        return weights / weights.sum(dim=-1, keepdim=True), indices

    @torch.no_grad()
    def update_bias(self, tokens_per_expert: Any) -> None:
        load = tokens_per_expert.float()
        self.e_score_correction_bias += self.update_speed * torch.sign(load.mean() - load)


def _shape(n_experts: int) -> tuple[int, int, int]:
    if n_experts not in SHAPES:
        raise ValueError(f"n_experts must be one of {sorted(SHAPES)}, got {n_experts}")
    return SHAPES[n_experts]


def deepseek_v3(n_experts: int = 256, seed: int = 0, gate_cls: type = DeepSeekV3Gate) -> Any:
    """The DeepSeek-V3 gate at SHAPES[n_experts], wrapped: bias buffer, in-place sign update
    (declared rule: updates.sign(1e-3)), hidden-state inputs through an identity projection."""
    k, g, tg = _shape(n_experts)
    gate = gate_cls(n_experts + 8, n_experts, k, g, tg, seed=seed)
    return from_torch(gate, inputs="hidden", update="update_bias", rule=updates.sign(UPDATE_SPEED))


def megatron(n_experts: int = 256, seed: int = 0) -> Any:
    """The Megatron-style router at SHAPES[n_experts], wrapped: the module counts tokens, the
    adapter calls megatron_update on the summed counts once per optimizer step."""
    k, g, tg = _shape(n_experts)
    router = MegatronRouter(n_experts + 8, n_experts, k, g, tg, seed=seed)
    return from_torch(
        router,
        inputs="hidden",
        update=megatron_update,
        counts="local_tokens_per_expert",
        rule=updates.sign(UPDATE_SPEED),
    )


def softmax_bias(n_experts: int = 256, seed: int = 0) -> Any:
    """The softmax + selection-bias gate at SHAPES[n_experts] (no groups), wrapped; the sign
    rule's step is 2^-8 / E (the scores are ~1/E; 1e-3 at E = 4): a stated rule, not tuned."""
    k, _, _ = _shape(n_experts)
    u = 2.0**-8 / n_experts
    gate = SoftmaxBiasGate(n_experts + 8, n_experts, k, u, seed=seed)
    return from_torch(gate, inputs="hidden", update="update_bias", rule=updates.sign(u))


def softmax_topk(n_experts: int = 8, seed: int = 0) -> Any:
    """The Mixtral/Qwen softmax top-k router at SHAPES[n_experts] (no bias), wrapped; the
    weights and indices are read from its (logits, weights, indices) output by name."""
    k, _, _ = _shape(n_experts)
    router = SoftmaxTopKRouter(n_experts + 8, n_experts, k, seed=seed)
    return from_torch(router, inputs="hidden", indices=2, weights=1)


EXAMPLES: dict[str, Callable[..., Any]] = {
    "deepseek_v3": deepseek_v3,
    "megatron": megatron,
    "softmax_bias": softmax_bias,
    "softmax_topk": softmax_topk,
}


def sweep(
    seeds: Iterable[int],
    *,
    shapes: Sequence[int] = tuple(SHAPES),
    routers: Sequence[str] = tuple(EXAMPLES),
    causality_examples: int = 30,
    drift_steps: int = 50,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the full suite on every example router x shape x seed (Config(seed=seed)); return
    per (router, E) the runs, the failures per property and the seconds per run. Every example
    is correct, so every failure counted is a false positive."""
    from lfbtheory.testing.conformance import Config, run_conformance

    seeds = list(seeds)
    jobs = [(name, e, s) for name in routers for e in shapes for s in seeds]
    try:
        from tqdm import tqdm

        it: Any = tqdm(jobs, disable=not progress, desc="conformance sweep")
    except ImportError:  # pragma: no cover - tqdm ships with the notebooks extra
        it = jobs
    out: dict[str, Any] = {}
    for name, e, s in it:
        cell = out.setdefault(
            f"{name}@E={e}",
            {
                "router": name,
                "n_experts": e,
                "runs": 0,
                "failed_runs": 0,
                "failures": {},
                "passed": None,
                "not_applicable": None,
                "missing": None,
                "seconds": [],
            },
        )
        t0 = time.perf_counter()
        rep = run_conformance(
            EXAMPLES[name](e),
            config=Config(seed=s, causality_examples=causality_examples, drift_steps=drift_steps),
        )
        cell["seconds"].append(time.perf_counter() - t0)
        cell["runs"] += 1
        cell["failed_runs"] += int(not rep.ok)
        for p in rep.failed:
            cell["failures"].setdefault(p, []).append(s)
        cell["passed"], cell["missing"] = list(rep.passed), list(rep.missing)
        cell["not_applicable"] = list(rep.not_applicable)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lfbtheory.adapters.torch_examples",
        description="zero-false-positive sweep of the conformance suite on the example routers",
    )
    p.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1 per shape (default 30)")
    p.add_argument("--shapes", type=int, nargs="+", default=list(SHAPES))
    p.add_argument("--routers", nargs="+", default=list(EXAMPLES), choices=list(EXAMPLES))
    p.add_argument("--causality-examples", type=int, default=30)
    p.add_argument("--drift-steps", type=int, default=50)
    p.add_argument("--out", help="write the JSON result here")
    a = p.parse_args(argv)
    res = sweep(
        range(a.seeds),
        shapes=a.shapes,
        routers=a.routers,
        causality_examples=a.causality_examples,
        drift_steps=a.drift_steps,
    )
    config = {k: v for k, v in vars(a).items() if k != "out"}
    for key, cell in res.items():
        secs = cell["seconds"]
        print(
            f"{key:22} false positives: {cell['failed_runs']}/{cell['runs']} runs "
            f"{cell['failures'] or ''}  passed {len(cell['passed'])}, "
            f"n/a {len(cell['not_applicable'])}, missing {len(cell['missing'])}; "
            f"{sum(secs) / len(secs):.1f} s/run"
        )
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"config": config, "results": res}, fh, indent=1)
    return int(any(c["failed_runs"] for c in res.values()))


if __name__ == "__main__":
    sys.exit(main())
