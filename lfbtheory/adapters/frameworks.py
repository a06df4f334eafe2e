"""Megatron-core and torchtitan routers, built on CPU the way the frameworks build them.

Optional extra ``frameworks`` (``pip install 'lfbtheory[frameworks]'``; both install from the
package index on CPU next to torch 2.13.0 CPU). :func:`megatron_router` and
:func:`torchtitan_router` build each framework's own top-k router with an expert bias at a
given shape, seeded random weights and a seeded random non-zero bias; :func:`megatron_gate` /
:func:`torchtitan_gate` wrap them for the conformance suite the documented way, with the
framework's own bias update where the framework exposes one:

- Megatron-core: ``TopKRouter`` counts ``local_tokens_per_expert`` itself (grad-enabled passes,
  ``padding_mask`` excluded) and its ``get_updated_expert_bias`` is the update (the sign
  rule, ``moe_router_bias_update_rate``). Building it on CPU needs three things Megatron does
  not do by itself: a one-process gloo group for its process-group collection, router buffers
  placed on the CPU (it allocates them on ``torch.cuda.current_device()``), and, in 0.16.1
  without TransformerEngine, ``moe_utils.te_general_gemm = None`` (the name is only bound
  when TransformerEngine imports). Its router also moves its weight to
  ``torch.cuda.current_device()`` in every forward, so everything Megatron runs must run
  inside :func:`megatron_on_cpu` (a context manager that restores ``current_device`` on exit).
- torchtitan: ``TokenChoiceTopKRouter`` takes the bias as a forward argument
  (``expert_bias_E``, a buffer of its parent ``MoE``); its update is a closure inside
  torchtitan's optimizer builder (not importable), so the adapter applies the same
  arithmetic, the centred sign rule b += c (sign(mean - load) - mean(sign(...))) with
  ``load_balance_coeff`` c: ``update="rule"``, rule ``updates.centered(updates.sign(c))``;
  the report says the update is the adapter's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from lfbtheory.adapters.torch import from_torch, require_torch

__all__ = [
    "megatron_on_cpu",
    "megatron_router",
    "megatron_update",
    "megatron_gate",
    "torchtitan_router",
    "torchtitan_gate",
]

UPDATE_RATE = 1e-3  # Megatron's moe_router_bias_update_rate default, torchtitan's coefficient


@contextlib.contextmanager
def megatron_on_cpu() -> Iterator[Any]:
    """Run Megatron-core's router on CPU (see the module docstring); yields torch.distributed."""
    torch = require_torch()
    import torch.distributed as dist

    started = False
    if not dist.is_initialized():
        fd, path = tempfile.mkstemp(prefix="lfb-gloo-")
        os.close(fd)
        dist.init_process_group("gloo", init_method=f"file://{path}", rank=0, world_size=1)
        started = True
    current = torch.cuda.current_device
    torch.cuda.current_device = lambda: "cpu"
    try:
        import megatron.core.transformer.moe.moe_utils as mu
        from megatron.core import parallel_state

        if not hasattr(mu, "te_general_gemm"):
            mu.te_general_gemm = None
        if not parallel_state.model_parallel_is_initialized():
            parallel_state.initialize_model_parallel(1, 1)  # training passes reduce over it
        yield dist
    finally:
        torch.cuda.current_device = current
        del started  # the one-process group stays: Megatron's router keeps references to it


def megatron_router(
    n_experts: int = 16,
    k: int = 4,
    n_groups: int | None = 4,
    topk_groups: int | None = 2,
    hidden: int = 32,
    seed: int = 0,
    score_function: str = "sigmoid",
    bias_scale: float = 0.1,
) -> Any:
    """Megatron-core's ``TopKRouter`` with an expert bias (random, non-zero) on CPU; build
    and run it inside :func:`megatron_on_cpu`."""
    torch = require_torch()
    with megatron_on_cpu() as dist:
        from megatron.core.process_groups_config import ProcessGroupCollection
        from megatron.core.transformer.moe.router import TopKRouter
        from megatron.core.transformer.transformer_config import TransformerConfig

        pg = ProcessGroupCollection()
        for name in ("tp", "cp", "tp_cp", "tp_dp_cp", "dp", "ep", "dp_cp"):
            setattr(pg, name, dist.group.WORLD)
        cfg = TransformerConfig(
            num_layers=1,
            hidden_size=hidden,
            num_attention_heads=4,
            num_moe_experts=n_experts,
            moe_router_topk=k,
            moe_router_score_function=score_function,
            moe_router_enable_expert_bias=True,
            moe_router_num_groups=n_groups,
            moe_router_group_topk=topk_groups,
            moe_router_bias_update_rate=UPDATE_RATE,
            use_cpu_initialization=True,
            moe_router_load_balancing_type="none",
            add_bias_linear=False,
        )
        router = TopKRouter(config=cfg, pg_collection=pg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        router.weight.copy_(torch.randn(router.weight.shape, generator=g) * hidden**-0.5)
        router.expert_bias.copy_(torch.randn(n_experts, generator=g) * bias_scale)
    return router


def megatron_update(module: Any, tokens_per_expert: Any) -> None:
    """Megatron's own update: ``expert_bias <- get_updated_expert_bias(counts, bias, rate)``."""
    from megatron.core.transformer.moe.moe_utils import get_updated_expert_bias

    torch = require_torch()
    with torch.no_grad():
        module.expert_bias.copy_(
            get_updated_expert_bias(
                tokens_per_expert, module.expert_bias, module.config.moe_router_bias_update_rate
            )
        )


def megatron_gate(n_experts: int = 16, seed: int = 0, **kw: Any) -> Any:
    """The Megatron router wrapped with its own counts and update (declared: sign rule); a
    fresh run: the bias starts at 0 (the suite sets its own biases where it needs them)."""
    from lfbtheory.online import updates

    router = megatron_router(n_experts, seed=seed, bias_scale=0.0, **kw)
    return from_torch(
        router,
        inputs="hidden",
        update=megatron_update,
        rule=updates.sign(UPDATE_RATE),
    )


def torchtitan_router(
    n_experts: int = 16,
    k: int = 4,
    n_groups: int | None = 4,
    topk_groups: int | None = 2,
    hidden: int = 32,
    seed: int = 0,
    score_func: str = "sigmoid",
) -> Any:
    """torchtitan's ``TokenChoiceTopKRouter`` (bias passed in by its parent ``MoE``)."""
    torch = require_torch()
    from torchtitan.models.common.linear import Linear
    from torchtitan.models.common.moe import TokenChoiceTopKRouter

    cfg = TokenChoiceTopKRouter.Config(
        num_experts=n_experts,
        gate=Linear.Config(in_features=hidden, out_features=n_experts),
        num_expert_groups=n_groups,
        num_limited_groups=topk_groups,
        top_k=k,
        score_func=score_func,
    )
    router = cfg.build()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        router.gate.weight.copy_(torch.randn(router.gate.weight.shape, generator=g) * hidden**-0.5)
    return router


def torchtitan_gate(n_experts: int = 16, seed: int = 0, **kw: Any) -> Any:
    """torchtitan's router wrapped: the adapter holds ``expert_bias_E`` and applies the
    centred sign rule of torchtitan's optimizer hook (``update="rule"``)."""
    from lfbtheory.online import updates

    return from_torch(
        torchtitan_router(n_experts, seed=seed, **kw),
        inputs="hidden",
        update="rule",
        rule=updates.centered(updates.sign(UPDATE_RATE)),
    )


def torchtitan_moe(
    n_experts: int = 16,
    k: int = 4,
    n_groups: int | None = 4,
    topk_groups: int | None = 2,
    hidden: int = 32,
    seed: int = 0,
) -> Any:
    """torchtitan's whole ``MoE`` layer (router, grouped experts, local token dispatcher) with
    its ``expert_bias_E`` (random, non-zero) and ``tokens_per_expert_E`` buffers."""
    torch = require_torch()
    from torchtitan.models.common.linear import Linear
    from torchtitan.models.common.moe import (
        GroupedExperts,
        MoE,
        RoutedExperts,
        TokenChoiceTopKRouter,
    )
    from torchtitan.models.common.token_dispatcher import LocalTokenDispatcher

    cfg = MoE.Config(
        num_experts=n_experts,
        routed_experts=RoutedExperts.Config(
            inner_experts=GroupedExperts.Config(dim=hidden, hidden_dim=16, num_experts=n_experts),
            token_dispatcher=LocalTokenDispatcher.Config(num_experts=n_experts, top_k=k),
        ),
        router=TokenChoiceTopKRouter.Config(
            num_experts=n_experts,
            gate=Linear.Config(in_features=hidden, out_features=n_experts),
            num_expert_groups=n_groups,
            num_limited_groups=topk_groups,
            top_k=k,
        ),
        load_balance_coeff=UPDATE_RATE,
    )
    moe = cfg.build()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in moe.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        moe.expert_bias_E.copy_(torch.randn(n_experts, generator=g) * 0.1)
    return moe


def torchtitan_moe_gate(n_experts: int = 16, seed: int = 0) -> Any:
    """torchtitan's ``MoE`` layer as the gate: its forward runs the whole layer (so its own
    ``tokens_per_expert_E`` counting is what the suite checks) and returns the router's
    (weights, experts), read by a forward hook; bias ``moe.expert_bias_E``, counts
    ``moe.tokens_per_expert_E``, update: the centred sign rule of torchtitan's optimizer hook
    applied by the adapter. A fresh run: the bias starts at 0."""
    torch = require_torch()
    from lfbtheory.online import updates

    moe = torchtitan_moe(n_experts, seed=seed)
    with torch.no_grad():
        moe.expert_bias_E.zero_()

    base: Any = torch.nn.Module  # a base class mypy can see (torch is imported at run time)

    class Gate(base):
        def __init__(self) -> None:
            super().__init__()
            self.moe = moe
            self.num_experts, self.top_k = moe.router.num_experts, moe.router.top_k
            self.num_expert_groups = moe.router.num_expert_groups
            self.num_limited_groups = moe.router.num_limited_groups

        def forward(self, x: Any) -> Any:
            seen: list[Any] = []
            h = self.moe.router.register_forward_hook(lambda m, i, o: seen.append(o))
            try:
                self.moe(x.unsqueeze(0))
            finally:
                h.remove()
            scores, ids, _ = seen[0]
            return scores[0], ids[0]

    return from_torch(
        Gate(),
        inputs="hidden",
        projection="moe.router.gate.weight",
        bias="moe.expert_bias_E",
        counts="moe.tokens_per_expert_E",
        update="rule",
        rule=updates.centered(updates.sign(UPDATE_RATE)),
    )
