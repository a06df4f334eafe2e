"""Deliberately broken routers: one per bug class real MoE codebases shipped.

The bug classes and their public sources are tabulated in docs/design.md (Sec. 4).

Each is a zero-argument factory returning a :class:`lfbtheory.routers.TokenChoice` subclass
(E = 8, k = 2, sign rule u = 1e-3, DeepSeek-V3 groups: 4 groups of 2, top 2 kept; the
steering mutants without groups) that differs
from the reference router (:func:`lfbtheory.testing.conformance.reference_router`) in exactly
one place. The conformance suite must fail each one on the named property (tests assert it;
``lfb check lfbtheory.testing.mutants:<name>`` exits 1 naming it):

mutant -> bug -> caught by [also fails, as a side effect]

- bias_in_gate_weights: weights from s + b, not s
  -> gate_weights_bias_free
- masked_groups_zero: masked groups filled with 0, not -inf
  -> bias_shift_invariance, selected_in_selected_groups
- group_score_max: group score = max while the top-2 sum is declared
  -> selected_in_selected_groups
- loads_from_current_batch: bias updated from the current batch's loads before routing it
  -> causality [microbatch_accumulation, data_parallel_reduction, count_precision,
  passes_that_do_not_count, frozen_bias, one_update_per_step, bias_drift]
- per_microbatch_update: bias updated after every micro-batch
  -> microbatch_accumulation, one_update_per_step [data_parallel_reduction, count_precision,
  padding_excluded]
- no_allreduce: each data-parallel replica updates from its own shard
  -> data_parallel_reduction
- raw_count_units: b += u (c_bar - c) on raw counts, proportional declared
  -> update_oracle, count_scale_invariance [count_precision, one_update_per_step]
- bf16_counts: counts accumulated in bfloat16 -> count_precision
- fp16_counts: counts accumulated in float16 -> count_precision
- eval_counts: eval / no-grad / recompute passes counted
  -> passes_that_do_not_count
- frozen_bias_moves: freeze() ignored -> frozen_bias
- out_of_place_checkpoint: out-of-place update, the checkpoint keeps the registered initial
  zeros -> checkpoint_roundtrip
- padding_counted: valid mask ignored -> padding_excluded
- bf16_bias: bias stored in bfloat16 -> bias_drift
- bias_ignored: selection on the raw scores -> steering_monotonicity, steering_factor,
  closed_loop_balance
- bias_negated: selection on s - b -> steering_monotonicity, steering_factor,
  closed_loop_balance
- bias_scaled: selection on s + 2 b -> steering_factor
- bias_subset: the bias added to half of the experts -> steering_monotonicity
- bias_after_topk: top-k of s, then the bias added to the weights -> gate_weights_bias_free,
  steering_monotonicity, steering_factor
- update_wrong_sign: b -= u sign(mean - load) -> update_oracle, closed_loop_balance

``MUTANTS`` maps each name to (factory, the properties expected to catch it).
:func:`detection_rates` measures, per mutant and property, the fraction of seeds on which the
property fails (``python -m lfbtheory.testing.mutants --seeds 30``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.metrics import expert_loads
from lfbtheory.online import updates
from lfbtheory.routers import TokenChoice, TokenChoiceState, check_batch
from lfbtheory.routing import eligible_experts, route, topk_indices
from lfbtheory.testing.conformance import to_bfloat16, to_float16

__all__ = ["MUTANTS"]

_CONFIG: dict[str, Any] = {"n_experts": 8, "k": 2, "n_groups": 4, "topk_groups": 2}


def _kw() -> dict[str, Any]:
    return dict(_CONFIG, rule=updates.sign(1e-3))


@dataclass(frozen=True)
class _BiasInWeights(TokenChoice):
    def select(
        self, scores: ArrayLike, bias: ArrayLike
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        experts, _ = super().select(scores, bias)
        s = check_batch(scores, self.n_experts) + np.asarray(bias, np.float64)  # BUG: s + b
        w = np.take_along_axis(s, experts, axis=1)
        return experts, w / w.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class _MaskedZero(TokenChoice):
    def select(
        self, scores: ArrayLike, bias: ArrayLike
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        s = check_batch(scores, self.n_experts)
        sel = s + np.asarray(bias, np.float64)
        mask = eligible_experts(sel, self.n_groups, self.topk_groups, self.group_score_topk)  # type: ignore[arg-type]
        experts = topk_indices(np.where(mask, sel, 0.0), self.k)  # BUG: 0.0 instead of -inf
        w = np.take_along_axis(s, experts, axis=1)
        return experts, w / w.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class _GroupScoreMax(TokenChoice):
    def select(
        self, scores: ArrayLike, bias: ArrayLike
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        r = route(
            check_batch(scores, self.n_experts),
            self.k,
            bias,
            n_groups=self.n_groups,
            topk_groups=self.topk_groups,
            group_score_topk=1,
        )  # BUG: max, declared top-2 sum
        assert r.weights is not None  # route's default weights=True
        return r.experts, r.weights


@dataclass(frozen=True)
class _CurrentBatchLoads(TokenChoice):
    def forward(
        self,
        scores: ArrayLike,
        state: TokenChoiceState,
        *,
        mode: str = "train",
        valid: ArrayLike | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], TokenChoiceState]:
        # BUG: "fresh" loads -- route provisionally, update the bias from this very batch, reroute.
        provisional, _ = self.select(scores, state.rule.bias)
        loads = expert_loads(provisional, self.n_experts, valid=valid)
        rs = self.rule.update(loads, state.rule)
        experts, weights, _ = super().forward(
            scores, state._replace(rule=rs), mode=mode, valid=valid
        )
        counts = state.pending + (
            expert_loads(experts, self.n_experts, valid=valid) if mode == "train" else 0
        )
        return experts, weights, state._replace(rule=rs, pending=counts)

    def step(self, states: Sequence[TokenChoiceState]) -> tuple[TokenChoiceState, ...]:
        return tuple(
            s._replace(pending=np.zeros(self.n_experts, dtype=np.int64), n_pending=0)
            for s in states
        )


@dataclass(frozen=True)
class _PerMicrobatch(TokenChoice):
    def forward(
        self,
        scores: ArrayLike,
        state: TokenChoiceState,
        *,
        mode: str = "train",
        valid: ArrayLike | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], TokenChoiceState]:
        experts, weights, st = super().forward(scores, state, mode=mode, valid=valid)
        if mode == "train":  # BUG: the update runs in every micro-batch's forward hook
            (st,) = super().step([st])
        return experts, weights, st

    def step(self, states: Sequence[TokenChoiceState]) -> tuple[TokenChoiceState, ...]:
        return tuple(states)


@dataclass(frozen=True)
class _NoAllReduce(TokenChoice):
    def step(self, states: Sequence[TokenChoiceState]) -> tuple[TokenChoiceState, ...]:
        return tuple(super(_NoAllReduce, self).step([s])[0] for s in states)  # BUG: local loads


@dataclass(frozen=True)
class _RawUnits(TokenChoice):
    def step(self, states: Sequence[TokenChoiceState]) -> tuple[TokenChoiceState, ...]:
        total = np.sum([s.pending for s in states], axis=0).astype(np.float64)
        out = []
        for s in states:
            u = self.rule.step(s.rule.count)
            bias = s.rule.bias + u * (total.mean() - total)  # BUG: raw count units
            rs = s.rule if s.frozen else s.rule._replace(bias=bias, count=s.rule.count + 1)
            zeros = np.zeros(self.n_experts, dtype=np.int64)
            out.append(TokenChoiceState(rs, zeros, 0, s.frozen))
        return tuple(out)


@dataclass(frozen=True)
class _LowPrecisionCounts(TokenChoice):
    dtype: str = "bfloat16"

    def forward(
        self,
        scores: ArrayLike,
        state: TokenChoiceState,
        *,
        mode: str = "train",
        valid: ArrayLike | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], TokenChoiceState]:
        experts, weights, _ = super().forward(scores, state, mode="eval")
        if mode != "train":
            return experts, weights, state
        rnd: Callable[[ArrayLike], NDArray[Any]] = (
            to_bfloat16 if self.dtype == "bfloat16" else to_float16
        )
        c = expert_loads(experts, self.n_experts, valid=valid)
        # BUG: the running counts live in a low-precision tensor
        acc = rnd(np.asarray(rnd(state.pending), np.float32) + np.asarray(rnd(c), np.float32))
        return (
            experts,
            weights,
            state._replace(
                pending=np.asarray(acc, np.float64),
                n_pending=state.n_pending + 1,  # type: ignore[arg-type]
            ),
        )


@dataclass(frozen=True)
class _EvalCounts(TokenChoice):
    def forward(
        self,
        scores: ArrayLike,
        state: TokenChoiceState,
        *,
        mode: str = "train",
        valid: ArrayLike | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], TokenChoiceState]:
        return super().forward(scores, state, mode="train", valid=valid)  # BUG: every pass counts


@dataclass(frozen=True)
class _FrozenMoves(TokenChoice):
    def freeze(self, state: TokenChoiceState) -> TokenChoiceState:
        return state  # BUG: the freeze flag never reaches the update hook


@dataclass(frozen=True)
class _OutOfPlace(TokenChoice):
    # The "module buffer" the checkpointer registered at init; updates rebind instead of writing
    # into it, so state_dict() keeps returning the initial values.
    registry: dict[str, NDArray[np.float64]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def init(self, bias0: ArrayLike | None = None) -> TokenChoiceState:
        st = super().init(bias0)
        self.registry["bias"] = st.rule.bias
        return st

    def state_dict(self, state: TokenChoiceState) -> dict[str, NDArray[Any]]:
        d = super().state_dict(state)
        d["bias"] = np.array(self.registry.get("bias", d["bias"]))  # BUG: the stale buffer
        return d


@dataclass(frozen=True)
class _PaddingCounted(TokenChoice):
    def forward(
        self,
        scores: ArrayLike,
        state: TokenChoiceState,
        *,
        mode: str = "train",
        valid: ArrayLike | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], TokenChoiceState]:
        return super().forward(scores, state, mode=mode, valid=None)  # BUG: valid ignored


@dataclass(frozen=True)
class _Bf16Bias(TokenChoice):
    def _round(self, rs: Any) -> Any:
        return rs._replace(bias=np.asarray(to_bfloat16(rs.bias), np.float64))

    def init(self, bias0: ArrayLike | None = None) -> TokenChoiceState:
        st = super().init(bias0)
        return st._replace(rule=self._round(st.rule))  # BUG: bias cast to bf16 with the module

    def step(self, states: Sequence[TokenChoiceState]) -> tuple[TokenChoiceState, ...]:
        return tuple(s._replace(rule=self._round(s.rule)) for s in super().step(states))

    def load_state_dict(self, d: Mapping[str, ArrayLike]) -> TokenChoiceState:
        st = super().load_state_dict(d)
        return st._replace(rule=self._round(st.rule))


@dataclass(frozen=True)
class _SteerAs(TokenChoice):
    """Selection on s + factor * b (on the first ``subset`` experts only, when set) or, with
    ``after_topk``, plain top-k of s with the bias added to the selected weights."""

    factor: float = 1.0
    subset: int | None = None
    after_topk: bool = False

    def select(
        self, scores: ArrayLike, bias: ArrayLike
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        s = check_batch(scores, self.n_experts)
        b = self.factor * np.asarray(bias, np.float64)
        if self.subset is not None:
            b[self.subset :] = 0.0  # BUG: the bias reaches only some experts
        if self.after_topk:  # BUG: top-k first, the bias only touches the selected weights
            experts = topk_indices(s, self.k)
            w = np.take_along_axis(s, experts, axis=1) + b[experts]
            return experts, w / w.sum(axis=1, keepdims=True)
        sel = s + b
        if self.n_groups is not None:
            mask = eligible_experts(sel, self.n_groups, self.topk_groups, self.group_score_topk)  # type: ignore[arg-type]
            sel = np.where(mask, sel, -np.inf)
        experts = topk_indices(sel, self.k)
        w = np.take_along_axis(s, experts, axis=1)
        return experts, w / w.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class _WrongSignUpdate(TokenChoice):
    def step(self, states: Sequence[TokenChoiceState]) -> tuple[TokenChoiceState, ...]:
        out = []
        for old, new in zip(states, super().step(states), strict=True):
            bias = 2 * old.rule.bias - new.rule.bias  # BUG: b -= u sign(mean - load)
            out.append(new._replace(rule=new.rule._replace(bias=bias)))
        return tuple(out)


def _plain() -> dict[str, Any]:
    """The steering mutants are not group-limited: the group property cannot catch them
    incidentally, so each is caught by the steering property named for it (or by nothing)."""
    return dict(_kw(), n_groups=None, topk_groups=None)


def bias_ignored() -> TokenChoice:
    """The bias is computed and updated but selection runs on the raw scores."""
    return _SteerAs(**_plain(), factor=0.0)


def bias_negated() -> TokenChoice:
    """Selection on s - b."""
    return _SteerAs(**_plain(), factor=-1.0)


def bias_scaled() -> TokenChoice:
    """Selection on s + 2 b."""
    return _SteerAs(**_plain(), factor=2.0)


def bias_subset() -> TokenChoice:
    """The bias is added to the first half of the experts only (a slicing bug)."""
    return _SteerAs(**_plain(), subset=_CONFIG["n_experts"] // 2)


def bias_after_topk() -> TokenChoice:
    """Top-k of the raw scores; the bias is added afterwards (to the selected weights)."""
    return _SteerAs(**_plain(), after_topk=True)


def update_wrong_sign() -> TokenChoice:
    """b -= u sign(mean - load): overloaded experts get more attractive."""
    return _WrongSignUpdate(**_plain())


def bias_in_gate_weights() -> TokenChoice:
    """Gate weights normalised from s + b instead of s."""
    return _BiasInWeights(**_kw())


def masked_groups_zero() -> TokenChoice:
    """Group-limited routing that fills masked groups with 0.0 (and selects on s + b)."""
    return _MaskedZero(**_kw())


def group_score_max() -> TokenChoice:
    """Group score = max of the group while the router declares the top-2 sum."""
    return _GroupScoreMax(**_kw())


def loads_from_current_batch() -> TokenChoice:
    """Bias updated from the current batch's own loads before routing it (non-causal)."""
    return _CurrentBatchLoads(**_kw())


def per_microbatch_update() -> TokenChoice:
    """Bias updated after every micro-batch instead of once per optimizer step."""
    return _PerMicrobatch(**_kw())


def no_allreduce() -> TokenChoice:
    """Each data-parallel replica updates from its own shard's loads."""
    return _NoAllReduce(**_kw())


def raw_count_units() -> TokenChoice:
    """Declares the proportional rule but steps u (c_bar - c) on raw counts."""
    return _RawUnits(**dict(_kw(), rule=updates.proportional(1e-3)))


def bf16_counts() -> TokenChoice:
    """Pending counts accumulated in (emulated) bfloat16."""
    return _LowPrecisionCounts(**_kw(), dtype="bfloat16")


def fp16_counts() -> TokenChoice:
    """Pending counts accumulated in float16."""
    return _LowPrecisionCounts(**_kw(), dtype="float16")


def eval_counts() -> TokenChoice:
    """Eval, no-grad and recompute passes add to the counts."""
    return _EvalCounts(**_kw())


def frozen_bias_moves() -> TokenChoice:
    """freeze() is a no-op: a frozen bias keeps moving."""
    return _FrozenMoves(**_kw())


def out_of_place_checkpoint() -> TokenChoice:
    """Out-of-place bias updates; the checkpoint holds the initially registered buffer."""
    return _OutOfPlace(**_kw())


def padding_counted() -> TokenChoice:
    """Padding tokens counted as load (the valid mask is ignored)."""
    return _PaddingCounted(**_kw())


def bf16_bias() -> TokenChoice:
    """Bias stored (and routed with) in bfloat16."""
    return _Bf16Bias(**_kw())


MUTANTS: dict[str, tuple[Callable[[], TokenChoice], tuple[str, ...]]] = {
    "bias_in_gate_weights": (bias_in_gate_weights, ("gate_weights_bias_free",)),
    "masked_groups_zero": (
        masked_groups_zero,
        ("bias_shift_invariance", "selected_in_selected_groups"),
    ),
    "group_score_max": (group_score_max, ("selected_in_selected_groups",)),
    "loads_from_current_batch": (loads_from_current_batch, ("causality",)),
    "per_microbatch_update": (
        per_microbatch_update,
        ("microbatch_accumulation", "one_update_per_step"),
    ),
    "no_allreduce": (no_allreduce, ("data_parallel_reduction",)),
    "raw_count_units": (raw_count_units, ("update_oracle", "count_scale_invariance")),
    "bf16_counts": (bf16_counts, ("count_precision",)),
    "fp16_counts": (fp16_counts, ("count_precision",)),
    "eval_counts": (eval_counts, ("passes_that_do_not_count",)),
    "frozen_bias_moves": (frozen_bias_moves, ("frozen_bias",)),
    "out_of_place_checkpoint": (out_of_place_checkpoint, ("checkpoint_roundtrip",)),
    "padding_counted": (padding_counted, ("padding_excluded",)),
    "bf16_bias": (bf16_bias, ("bias_drift",)),
    "bias_ignored": (
        bias_ignored,
        ("steering_monotonicity", "steering_factor", "closed_loop_balance"),
    ),
    "bias_negated": (
        bias_negated,
        ("steering_monotonicity", "steering_factor", "closed_loop_balance"),
    ),
    "bias_scaled": (bias_scaled, ("steering_factor",)),
    "bias_subset": (bias_subset, ("steering_monotonicity",)),
    "bias_after_topk": (
        bias_after_topk,
        ("gate_weights_bias_free", "steering_monotonicity", "steering_factor"),
    ),
    "update_wrong_sign": (update_wrong_sign, ("update_oracle", "closed_loop_balance")),
}
__all__ += list(MUTANTS)


def detection_rates(
    seeds: Sequence[int],
    *,
    names: Sequence[str] | None = None,
    run: Callable[..., Any] | None = None,
) -> dict[str, dict[str, float]]:
    """For each mutant and each property expected to catch it, the fraction of ``seeds`` on
    which that property fails (``Config(seed=s)``; ``run`` defaults to
    :func:`lfbtheory.testing.conformance.run_conformance`)."""
    from lfbtheory.testing.conformance import Config, run_conformance

    run = run or run_conformance
    out: dict[str, dict[str, float]] = {}
    for name in names or sorted(MUTANTS):
        factory, props = MUTANTS[name]
        hits = dict.fromkeys(props, 0)
        for s in seeds:
            rep = run(factory(), only=list(props), config=Config(seed=int(s)))
            for p in props:
                hits[p] += p in rep.failed
        out[name] = {p: hits[p] / len(seeds) for p in props}
    return out


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m lfbtheory.testing.mutants")
    ap.add_argument("--seeds", type=int, default=30, help="seeds 0..N-1 (default 30)")
    ap.add_argument("--out", help="write the JSON result here")
    a = ap.parse_args()
    rates = detection_rates(range(a.seeds))
    for name, r in rates.items():
        print(f"{name:26} " + ", ".join(f"{p}: {v:.0%}" for p, v in r.items()))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"seeds": a.seeds, "rates": rates}, fh, indent=1)
