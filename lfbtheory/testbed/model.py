"""A small byte-level causal MoE transformer in plain PyTorch (CPU).

Pre-norm blocks: causal multi-head self-attention (``scaled_dot_product_attention``), then an
MoE FFN: E routed experts (GELU MLPs, d_model -> d_expert -> d_model), top-k token choice with a
sigmoid gate as in DeepSeek-V3 (arXiv 2412.19437 Sec. 2.1.2: s = sigmoid(x W), experts =
TopK(s + b), weights s / sum of the selected s, from the UNBIASED scores) or a softmax gate,
optionally one always-on shared expert. Expert Choice routing (Zhou et al., arXiv 2202.09368)
replaces the choice per chunk; its weights are normalised the same way over the experts that
took the token (a token no expert took passes through the residual only).

The Loss-Free bias of each layer is a float64 buffer (never a parameter, never requires grad)
owned by a :class:`~lfbtheory.testbed.balancing.TorchLFBRouter` state; it enters only the
index choice of :func:`~lfbtheory.testbed.balancing.topk_select`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from lfbtheory.testbed.balancing import TorchLFBRouter, aux_loss, expert_choice_mask, topk_select
from lfbtheory.validation import choice

__all__ = ["ModelConfig", "MoELayer", "MoELM", "RoutingInfo"]


def _pos_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the model; ``gate`` in {"sigmoid", "softmax"}; vocabulary = 256 bytes."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_experts: int = 16
    k: int = 2
    d_expert: int = 64
    shared_expert: bool = False
    gate: str = "sigmoid"
    seq_len: int = 128

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "n_experts", "k", "d_expert", "seq_len"):
            _pos_int(getattr(self, name), f"model.{name}")
        if self.k > self.n_experts:
            raise ValueError(f"model.k must be in [1, n_experts={self.n_experts}], got {self.k}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model must be divisible by model.n_heads={self.n_heads}, "
                f"got {self.d_model}"
            )
        choice(self.gate, "model.gate", ("sigmoid", "softmax"))
        if not isinstance(self.shared_expert, bool):
            raise ValueError(f"model.shared_expert must be a bool, got {self.shared_expert!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RoutingInfo:
    """One MoE layer's routing of one forward pass.

    loads (E,) int64 tokens per expert; aux_batch / aux_seq: E sum_i f_i P_i batch-wise and
    sequence-wise (alpha = 1; None under Expert Choice); scores (n, E) detached gate scores."""

    loads: torch.Tensor
    aux_batch: torch.Tensor | None
    aux_seq: torch.Tensor | None
    scores: torch.Tensor


class MoELayer(nn.Module):
    """Routed experts + optional shared expert; routing chosen per call (see :meth:`forward`)."""

    bias: torch.Tensor  # a registered buffer (typed here: nn.Module's __getattr__ is untyped)
    router: Any

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        e, d, h = cfg.n_experts, cfg.d_model, cfg.d_expert
        self.cfg = cfg
        self.gate = nn.Linear(d, e, bias=False)
        self.w1 = nn.Parameter(torch.randn(e, d, h) / math.sqrt(d))
        self.w2 = nn.Parameter(torch.randn(e, h, d) / math.sqrt(h))
        self.shared = (
            nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, d))
            if cfg.shared_expert
            else None
        )
        self.register_buffer("bias", torch.zeros(e, dtype=torch.float64))
        self.router: TorchLFBRouter | None = None
        self.router_state: Any = None

    def attach_router(self, router: TorchLFBRouter) -> None:
        """Make this layer route with ``router``'s bias (Loss-Free Balancing)."""
        self.router = router
        self.router_state = router.init()
        self.bias.copy_(router.bias(self.router_state))

    def optimizer_step(self) -> None:
        """One bias update from the counts of this optimizer step (no-op without a router)."""
        if self.router is not None:
            (self.router_state,) = self.router.step([self.router_state])
            self.bias.copy_(self.router.bias(self.router_state))

    def forward(
        self,
        x: torch.Tensor,
        *,
        routing: str = "token",
        chunk: int = 0,
        count: bool = True,
        dense: bool = False,
    ) -> tuple[torch.Tensor, RoutingInfo]:
        """x (B, T, D). routing "token": top-k of s + bias; "expert_choice": per chunk of
        ``chunk`` tokens of a sequence. ``count``: add this pass's loads to the LFB counts.
        ``dense``: every used expert computes all n tokens and keeps the rows routed to it, so
        a token's output is bitwise independent of which other tokens an expert took (matrix
        kernels may round a row differently when the row count changes); the same function
        as the gathered path up to that rounding, E / K times the expert cost."""
        b, t, d = x.shape
        e, k = self.cfg.n_experts, self.cfg.k
        flat = x.reshape(-1, d)
        logits = self.gate(flat)
        if self.cfg.gate == "sigmoid":
            s = torch.sigmoid(logits)
            probs = s / s.sum(dim=-1, keepdim=True)
        else:
            s = torch.softmax(logits, dim=-1)
            probs = s
        n = flat.shape[0]
        if routing == "token":
            if self.router is not None:
                mode = "train" if (count and self.training) else "eval"
                experts, w, self.router_state = self.router.forward(s, self.router_state, mode=mode)
            else:
                experts, w = topk_select(s, None, k)
            tok = torch.arange(n).repeat_interleave(k)
            exp = experts.reshape(-1)
            wt = w.reshape(-1)
            aux_b = aux_loss(probs, experts, e, k, 1.0)
            aux_s = aux_loss(probs, experts, e, k, 1.0, seq_len=t)
        elif routing == "expert_choice":
            mask = expert_choice_mask(s.reshape(b, t, e), k, chunk).reshape(n, e)
            ws = s * mask
            ws = ws / ws.sum(dim=-1, keepdim=True).clamp_min(1e-20)
            tok, exp = mask.nonzero(as_tuple=True)
            wt = ws[tok, exp]
            aux_b = aux_s = None
        else:
            raise ValueError(f"routing must be 'token' or 'expert_choice', got {routing!r}")
        loads = torch.bincount(exp, minlength=e)
        order = torch.argsort(exp, stable=True)
        tok_sorted, w_sorted = tok[order], wt[order]
        out = torch.zeros_like(flat)
        start = 0
        for i, c in enumerate(loads.tolist()):
            if c == 0:
                continue
            idx = tok_sorted[start : start + c]
            if dense:
                h = (F.gelu(flat @ self.w1[i]) @ self.w2[i])[idx]
            else:
                h = F.gelu(flat[idx] @ self.w1[i]) @ self.w2[i]
            out.index_add_(0, idx, h * w_sorted[start : start + c, None])
            start += c
        if self.shared is not None:
            out = out + self.shared(flat)
        info = RoutingInfo(loads, aux_b, aux_s, s.detach())
        return out.reshape(b, t, d), info


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.moe = MoELayer(cfg)

    def forward(self, x: torch.Tensor, **route: Any) -> tuple[torch.Tensor, RoutingInfo]:
        b, t, d = x.shape
        q, kk, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        shape = (b, t, self.n_heads, d // self.n_heads)
        q, kk, v = (z.reshape(shape).transpose(1, 2) for z in (q, kk, v))
        a = F.scaled_dot_product_attention(q, kk, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        y, info = self.moe(self.ln2(x), **route)
        return x + y, info


class MoELM(nn.Module):
    """Byte-level causal LM: embeddings (tied output head), learned positions, MoE blocks."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(256, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.seq_len, cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2 initialisation (Radford et al. 2019): every weight matrix N(0, 0.02^2), biases
        0, residual output projections N(0, (0.02 / sqrt(2 n_layers))^2). DeepSeek-V3 uses
        std 0.006 (arXiv 2412.19437 Sec. 4.2); PyTorch's default uniform init made the gate
        logits of this small model nearly token-independent (one expert took every token)."""
        std = 0.02
        out_std = std / math.sqrt(2 * self.cfg.n_layers)
        for name, p in self.named_parameters():
            if name.endswith("bias") or ".ln" in name or name.startswith("ln_f"):
                continue
            is_out = (
                name.endswith("proj.weight")
                or name.endswith("w2")
                or (".shared.2." in name and name.endswith("weight"))
            )
            nn.init.normal_(p, std=out_std if is_out else std)
        for name, p in self.named_parameters():
            if name.endswith(".bias") and ".ln" not in name and not name.startswith("ln_f"):
                nn.init.zeros_(p)

    @property
    def moe_layers(self) -> list[MoELayer]:
        return [cast(MoELayer, blk.moe) for blk in self.blocks]

    def router_parameters(self) -> list[nn.Parameter]:
        """The gate weights W (E, d_model) of every MoE layer (where interference is measured)."""
        return [cast(nn.Parameter, m.gate.weight) for m in self.moe_layers]

    def forward(
        self,
        idx: torch.Tensor,
        *,
        routing: str = "token",
        chunk: int = 0,
        count: bool = True,
        dense: bool = False,
    ) -> tuple[torch.Tensor, list[RoutingInfo]]:
        """idx (B, T) int64 bytes -> logits (B, T, 256) and each layer's RoutingInfo."""
        t = idx.shape[1]
        if t > self.cfg.seq_len:
            raise ValueError(f"sequence length {t} exceeds model.seq_len={self.cfg.seq_len}")
        x = self.embed(idx) + self.pos[:t]
        infos = []
        for blk in self.blocks:
            x, info = blk(x, routing=routing, chunk=chunk, count=count, dense=dense)
            infos.append(info)
        return self.ln_f(x) @ self.embed.weight.T, infos
