"""Balancing machinery of the testbed, in torch: biased top-k, the Loss-Free bias lifecycle,
the auxiliary balance loss and Expert Choice selection.

- Token choice (arXiv 2408.15664 Sec. 3; DeepSeek-V3, arXiv 2412.19437 Sec. 2.1.2): experts =
  TopK_i(s[t, i] + b[i]) ranked on s + (b - max b) in float64 (ties to the lower index); gate
  weights s[t, e_j] / sum_j s[t, e_j] from the UNBIASED scores. The bias is a plain tensor that
  never requires grad; it enters only the (piecewise constant) index choice.
- Bias updates: the package's rule objects (:mod:`lfbtheory.online.updates`) applied once per
  optimizer step to the summed token counts. :func:`make_rule` builds them in either API of
  that module (rules owning their step size, or rule + schedule), :func:`rule_update` applies
  one update.
- Auxiliary loss (Switch, arXiv 2101.03961 Sec. 2.2; GShard): l_aux = alpha E sum_i f_i P_i,
  f_i = c_i / (n K) (detached counts), P_i = mean_t q[t, i], q the softmax probabilities or
  the normalised sigmoid q = s / sum_j s (proofs lemma 9). Batch-wise: over all tokens;
  sequence-wise (DeepSeek-V3 eq. 17-20): per sequence, then averaged over sequences.
- Expert Choice (Zhou et al., arXiv 2202.09368): in each chunk of T tokens every expert takes
  its K T / E highest-scoring tokens; non-causal (arXiv 2408.15664 App. D).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from lfbtheory.online import schedules, updates
from lfbtheory.routers import MODES
from lfbtheory.validation import as_positive_int, choice

__all__ = [
    "LFB_RULES",
    "RouterState",
    "TorchLFBRouter",
    "aux_loss",
    "expert_choice_mask",
    "make_rule",
    "rule_init",
    "rule_update",
    "topk_select",
]

LFB_RULES = ("sign", "proportional", "deepseek_v3")


def _new_api() -> bool:
    """True when rules own their step size (``updates.sign(u)``, ``rule.update(loads, state)``)."""
    try:
        params = inspect.signature(updates.sign).parameters
    except (TypeError, ValueError):
        return False
    return len(params) > 0


def make_rule(kind: str, u: float, *, stop_step: int | None = None) -> tuple[Any, Any]:
    """(rule, schedule) for ``kind`` in LFB_RULES with step u (sign, proportional: constant u;
    deepseek_v3: sign with u until ``stop_step`` updates, then 0, arXiv 2412.19437 Sec. 4.2).

    With the step-owning API the schedule is folded into the rule and the second element is the
    rule's own step function ``rule.step``."""
    choice(kind, "rule", LFB_RULES)
    if kind == "deepseek_v3":
        sched = schedules.deepseek_v3(u, stop_step if stop_step is not None else 10**9)
    else:
        sched = schedules.constant(u)
    factory = updates.proportional if kind == "proportional" else updates.sign
    if _new_api():
        rule = factory(sched)
        return rule, rule.step
    return factory(), sched


def rule_init(rule: Any, n_experts: int, bias0: Any = None) -> Any:
    """The rule's initial state (either API: ``init(E, bias0)``)."""
    return rule.init(n_experts, bias0)


def _buffer_fields(state: Any) -> tuple[str, ...]:
    """Names of the rule-specific array fields of a rule state (all but bias and count)."""
    return tuple(f for f in state._fields if f not in ("bias", "count"))


def rule_update(rule: Any, schedule: Any, loads: Any, state: Any) -> Any:
    """One update of ``rule`` on the loads of an optimizer step (either API)."""
    if _new_api():
        return rule.update(loads, state)
    return rule.update(loads, state, schedule(state.count))


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


class RouterState(NamedTuple):
    """rule: the package rule's state (bias float64, update count); counts: (E,) int64 pending
    token counts since the last optimizer step; frozen: no more updates."""

    rule: Any
    counts: Any
    frozen: bool = False


class TorchLFBRouter:
    """The testbed's Loss-Free router on torch tensors, with the BiasRouter lifecycle of
    :mod:`lfbtheory.routers` (init/select/forward/step/bias/counts/freeze/state_dict/
    load_state_dict/__call__), so :func:`lfbtheory.adapters.torch.from_torch` wraps it for the
    conformance suite. Selection and weights are :func:`topk_select`, the code path of the
    testbed's MoE layer; the bias update is the package rule (:func:`rule_update`)."""

    def __init__(self, n_experts: int, k: int, rule: Any, schedule: Any) -> None:
        self.n_experts = as_positive_int(n_experts, "n_experts")
        self.k = as_positive_int(k, "k")
        if self.k > self.n_experts:
            raise ValueError(f"k must be in [1, n_experts={self.n_experts}], got {self.k}")
        self.rule, self.schedule = rule, schedule

    def init(self, bias0: Any = None) -> RouterState:
        torch = _torch()
        b0 = None if bias0 is None else np.asarray(torch.as_tensor(bias0).double().numpy())
        return RouterState(
            rule_init(self.rule, self.n_experts, b0), torch.zeros(self.n_experts, dtype=torch.int64)
        )

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
        c = torch.bincount(ex.reshape(-1), minlength=self.n_experts)
        return experts, weights, state._replace(counts=state.counts + c)

    def step(self, states: Sequence[RouterState]) -> tuple[RouterState, ...]:
        torch = _torch()
        states = tuple(states)
        if not states:
            raise ValueError("states must hold at least one replica state")
        total = torch.stack([s.counts for s in states]).sum(dim=0).numpy()
        out = []
        for s in states:
            rs = s.rule if s.frozen else rule_update(self.rule, self.schedule, total, s.rule)
            out.append(RouterState(rs, torch.zeros(self.n_experts, dtype=torch.int64), s.frozen))
        return tuple(out)

    def bias(self, state: RouterState) -> Any:
        return _torch().from_numpy(np.array(state.rule.bias, dtype=np.float64))

    def counts(self, state: RouterState) -> Any:
        return state.counts

    def freeze(self, state: RouterState) -> RouterState:
        return state._replace(frozen=True)

    def state_dict(self, state: RouterState) -> dict[str, Any]:
        torch = _torch()
        d = {
            "bias": self.bias(state),
            "count": torch.tensor(state.rule.count, dtype=torch.int64),
            "counts": state.counts.clone(),
            "frozen": torch.tensor(state.frozen),
        }
        for name in _buffer_fields(state.rule):
            d[f"rule.{name}"] = torch.from_numpy(np.array(getattr(state.rule, name), np.float64))
        return d

    def load_state_dict(self, d: Mapping[str, Any]) -> RouterState:
        torch = _torch()
        if "bias" not in d:
            raise ValueError("state dict must contain 'bias'")
        fresh = rule_init(self.rule, self.n_experts)
        rs = fresh._replace(
            bias=np.array(torch.as_tensor(d["bias"]).double().numpy(), dtype=np.float64),
            count=int(torch.as_tensor(d.get("count", 0))),
            **{
                name: np.array(torch.as_tensor(d[f"rule.{name}"]).numpy(), dtype=np.float64)
                for name in _buffer_fields(fresh)
                if f"rule.{name}" in d
            },
        )
        counts = torch.as_tensor(d.get("counts", torch.zeros(self.n_experts))).to(torch.int64)
        return RouterState(rs, counts.clone(), bool(torch.as_tensor(d.get("frozen", False))))

    def __call__(self, scores: Any, state: RouterState | None) -> tuple[Any, RouterState]:
        state = self.init() if state is None else state
        experts, _, pending = self.forward(scores, state, mode="train")
        return experts, self.step([pending])[0]
