"""Balancing machinery of the testbed, in torch: biased top-k, the Loss-Free bias lifecycle,
the auxiliary balance loss and Expert Choice selection.

- Token choice (arXiv 2408.15664 Sec. 3; DeepSeek-V3, arXiv 2412.19437 Sec. 2.1.2): experts =
  TopK_i(s[t, i] + b[i]) ranked on s + (b - max b) in float64 (ties to the lower index); gate
  weights s[t, e_j] / sum_j s[t, e_j] from the UNBIASED scores. The bias is a plain tensor that
  never requires grad; it enters only the (piecewise constant) index choice.
- Bias updates: the package's rule objects (:mod:`lfbtheory.online.updates`, each owning its
  step size) applied once per optimizer step to the summed token counts, through the package's
  router-state machine (:mod:`lfbtheory.online.state`); :func:`make_rule` builds them.
- Auxiliary loss (Switch, arXiv 2101.03961 Sec. 2.2; GShard): l_aux = alpha E sum_i f_i P_i,
  f_i = c_i / (n K) (detached counts), P_i = mean_t q[t, i], q the softmax probabilities or
  the normalised sigmoid q = s / sum_j s (proofs lemma 9). Batch-wise: over all tokens;
  sequence-wise (DeepSeek-V3 eq. 17-20): per sequence, then averaged over sequences.
- Expert Choice (Zhou et al., arXiv 2202.09368): in each chunk of T tokens every expert takes
  its K T / E highest-scoring tokens; non-causal (arXiv 2408.15664 App. D).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lfbtheory.online import schedules, updates
from lfbtheory.online import state as _state
from lfbtheory.online.state import RouterState
from lfbtheory.routers import MODES
from lfbtheory.validation import as_positive_int, choice

__all__ = [
    "LFB_RULES",
    "RouterState",
    "TorchLFBRouter",
    "aux_loss",
    "expert_choice_mask",
    "make_rule",
    "topk_select",
]

LFB_RULES = ("sign", "proportional", "deepseek_v3")


def make_rule(kind: str, u: float, *, stop_step: int | None = None) -> updates.Rule:
    """The package rule for ``kind`` in LFB_RULES with step u (sign, proportional: constant u;
    deepseek_v3: sign with u until ``stop_step`` updates, then 0, arXiv 2412.19437 Sec. 4.2)."""
    choice(kind, "rule", LFB_RULES)
    if kind == "deepseek_v3":
        return updates.sign(schedules.deepseek_v3(u, stop_step if stop_step is not None else 10**9))
    return (updates.proportional if kind == "proportional" else updates.sign)(u)


def _torch() -> Any:
    from lfbtheory.adapters.torch import require_torch

    return require_torch()


def topk_select(scores: Any, bias: Any, k: int, *, normalize: bool = True) -> tuple[Any, Any]:
    """(experts (n, k) int64, weights (n, k)) of token-choice routing with an additive bias.

    Selection ranks s + (b - max b) in float64 with a stable sort (ties to the lower index);
    weights gather the unbiased ``scores`` (differentiable), normalised over the selected."""
    torch = _torch()
    with torch.no_grad():
        sel = scores.detach().to(torch.float64)
        if bias is not None:
            b = bias.detach().to(torch.float64)
            sel = sel + (b - b.max())
        experts = torch.sort(sel, dim=-1, descending=True, stable=True)[1][..., :k]
    w = torch.gather(scores, -1, experts)
    if normalize:
        w = w / w.sum(dim=-1, keepdim=True).clamp_min(1e-20)
    return experts, w


def expert_choice_mask(scores: Any, k: int, chunk: int) -> Any:
    """(..., T, E) bool mask: within each chunk of ``chunk`` consecutive tokens (along T) every
    expert takes its k*chunk/E highest-scoring tokens (ties to the earlier token)."""
    torch = _torch()
    *lead, t, e = scores.shape
    if t % chunk or (k * chunk) % e:
        raise ValueError(
            f"chunk must divide the sequence length {t} and chunk*k must be divisible by E={e}, "
            f"got chunk={chunk}"
        )
    cap = k * chunk // e
    s = scores.detach().reshape(-1, chunk, e).transpose(1, 2)  # (m, E, chunk)
    idx = torch.sort(s, dim=-1, descending=True, stable=True)[1][..., :cap]
    mask = torch.zeros_like(s, dtype=torch.bool)
    mask.scatter_(-1, idx, True)
    return mask.transpose(1, 2).reshape(*lead, t, e)


def aux_loss(
    probs: Any, experts: Any, n_experts: int, k: int, alpha: float, *, seq_len: int | None = None
) -> Any:
    """alpha E sum_i f_i P_i with f_i = c_i/(n k) detached and P_i = mean_t probs[t, i].

    ``probs`` (n, E): softmax probabilities or normalised sigmoid scores; ``experts`` (n, k).
    With ``seq_len`` the loss is computed per sequence of seq_len consecutive tokens and
    averaged (sequence-wise), else over the whole batch (batch-wise)."""
    torch = _torch()
    n = probs.shape[0]
    groups = 1 if seq_len is None else n // seq_len
    p = probs.reshape(groups, -1, n_experts)
    onehot = torch.zeros(p.shape[0], p.shape[1], n_experts, dtype=probs.dtype)
    onehot.scatter_(-1, experts.reshape(groups, -1, k), 1.0)
    f = onehot.sum(dim=1) / (p.shape[1] * k)  # (groups, E), no grad
    big_p = p.mean(dim=1)
    return alpha * n_experts * (f * big_p).sum(dim=-1).mean()


class TorchLFBRouter:
    """The testbed's Loss-Free router on torch tensors, with the BiasRouter lifecycle of
    :mod:`lfbtheory.routers` (init/select/forward/step/bias/counts/freeze/state_dict/
    load_state_dict/__call__), so :func:`lfbtheory.adapters.torch.from_torch` wraps it for the
    conformance suite. Selection and weights are :func:`topk_select`, the code path of the
    testbed's MoE layer; the lifecycle is the package's router-state machine
    (:mod:`lfbtheory.online.state`: pending counts, one rule update per optimizer step over all
    replicas, freeze, validated checkpoints), the same one ``simulate`` runs."""

    def __init__(self, n_experts: int, k: int, rule: updates.Rule) -> None:
        self.n_experts = as_positive_int(n_experts, "n_experts")
        self.k = as_positive_int(k, "k")
        if self.k > self.n_experts:
            raise ValueError(f"k must be in [1, n_experts={self.n_experts}], got {self.k}")
        if not isinstance(rule, updates.Rule):
            raise TypeError(f"rule must be an lfbtheory.updates.Rule, got {type(rule).__name__}")
        self.rule = rule

    def init(self, bias0: Any = None) -> RouterState:
        torch = _torch()
        b0 = None if bias0 is None else np.asarray(torch.as_tensor(bias0).double().numpy())
        return _state.init_state(self.rule, self.n_experts, b0)

    def select(self, scores: Any, bias: Any) -> tuple[Any, Any]:
        return topk_select(scores, bias, self.k)

    def forward(
        self, scores: Any, state: RouterState, *, mode: str = "train", valid: Any = None
    ) -> tuple[Any, Any, RouterState]:
        torch = _torch()
        choice(mode, "mode", MODES)
        experts, weights = self.select(scores, self.bias(state))
        if mode != "train":
            return experts, weights, state
        ex = experts if valid is None else experts[torch.as_tensor(valid, dtype=torch.bool)]
        c = torch.bincount(ex.reshape(-1), minlength=self.n_experts).numpy()
        return experts, weights, _state.accumulate(state, c)

    def step(self, states: Sequence[RouterState]) -> tuple[RouterState, ...]:
        return _state.optimizer_step(self.rule, states)

    def bias(self, state: RouterState) -> Any:
        return _torch().from_numpy(np.array(state.bias, dtype=np.float64))

    def counts(self, state: RouterState) -> Any:
        return _torch().from_numpy(np.array(state.pending, dtype=np.int64))

    def freeze(self, state: RouterState) -> RouterState:
        return _state.freeze(state)

    def state_dict(self, state: RouterState) -> dict[str, Any]:
        """The package's checkpoint format (:func:`lfbtheory.online.state.state_dict`) as
        tensors."""
        torch = _torch()
        d = _state.state_dict(self.rule, state)  # text fields (rule name) stay numpy strings
        return {
            k: v if v.dtype.kind == "U" else torch.from_numpy(np.array(v)) for k, v in d.items()
        }

    def load_state_dict(self, d: Mapping[str, Any]) -> RouterState:
        torch = _torch()
        arrays = {
            k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            for k, v in d.items()
        }
        return _state.load_state_dict(self.rule, arrays, n_experts=self.n_experts)

    def __call__(self, scores: Any, state: RouterState | None) -> tuple[Any, RouterState]:
        state = self.init() if state is None else state
        experts, _, pending = self.forward(scores, state, mode="train")
        return experts, self.step([pending])[0]
