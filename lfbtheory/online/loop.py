"""The online primal-dual loop: route each batch with a bias computed from past batches only.

Online dual descent on D_t(p) = sum_{tokens} topKsum(s + p) - L sum(p) (DESIGN.md Sec. 2;
arXiv 2512.03915 Sec. 3): batch t is routed with p_t, then the rule moves p using the loads of
batch t. What real training does is modelled explicitly:

- ``micro_batches=m``: m consecutive stream elements form one optimizer step; all are routed
  with the same bias, their loads are summed, and one update follows (torchtitan #1114).
- ``shards=R``: every stream element is split into R equal row blocks (data-parallel ranks),
  each routed by its own replica of the state; loads are all-reduced (summed) and every replica
  applies the identical update, so replicas stay bit-identical (checked at every step).
- ``eval_batches``: stream indices that are routed and recorded but move neither loads nor bias.
- ``state``: a :class:`LoopState` from a previous run; continuing from it is bit-identical to
  never having stopped (:func:`save_state`/:func:`load_state` round-trip it exactly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.online.schedules import Schedule, constant
from lfbtheory.online.updates import Rule, RuleState, make_rule
from lfbtheory.routing import _check_route_args, _select
from lfbtheory.validation import as_k, as_positive_int, as_scores

__all__ = ["LoopState", "Trajectory", "simulate", "save_state", "load_state"]


class LoopState(NamedTuple):
    """Everything the loop carries between batches: the rule's state plus the loads of the
    micro-batches seen since the last update (``pending``, ``n_pending`` of them)."""

    rule: RuleState
    pending: NDArray[np.float64]
    n_pending: int


@dataclass(frozen=True)
class Trajectory:
    """One row per stream element (batch or micro-batch).

    bias (T, E): the bias that routed the element; loads (T, E) int64; reward (T,): sum of the
    unbiased scores of the selected experts; step (T,): the step size of the update that
    followed the element (NaN when none did); is_eval (T,) bool; state: the final LoopState.
    """

    bias: NDArray[np.float64]
    loads: NDArray[np.int64]
    reward: NDArray[np.float64]
    step: NDArray[np.float64]
    is_eval: NDArray[np.bool_]
    state: LoopState
    rule: str
    bias_mode: str
    k: int

    def __len__(self) -> int:
        return int(self.loads.shape[0])


def _as_rule(rule: Rule | str) -> Rule:
    if isinstance(rule, str):
        return make_rule(rule)
    if not isinstance(rule, Rule):
        raise TypeError(
            f"rule must be a lfbtheory.online.updates.Rule or a rule name, got {type(rule).__name__}"
        )
    return rule


def _as_schedule(step: Schedule | float) -> Schedule:
    if callable(step):
        return step
    return constant(float(step))


def simulate(
    batches: Iterable[ArrayLike],
    k: int,
    rule: Rule | str,
    step: Schedule | float,
    *,
    init_bias: ArrayLike | None = None,
    state: LoopState | None = None,
    micro_batches: int = 1,
    shards: int = 1,
    eval_batches: Iterable[int] = (),
    adaptive: bool = False,
    n_groups: int | None = None,
    topk_groups: int | None = None,
    group_score_topk: int = 2,
    progress: Callable[[int], None] | None = None,
) -> Trajectory:
    """Run the bias-update ``rule`` with step sizes ``step(t)`` over a stream of score batches.

    The bias routing element t depends on elements < t only. ``batches`` is any iterable of
    (n, E) arrays (all with the same E; n may vary unless ``shards`` > 1 needs divisibility).
    With ``adaptive=True``, ``batches`` is a generator that is sent the bias used for each
    element before it yields the next (an adversary that sees only past biases).
    ``progress`` is called with the number of elements done after each one.
    """
    rule = _as_rule(rule)
    schedule = _as_schedule(step)
    micro_batches = as_positive_int(micro_batches, "micro_batches")
    shards = as_positive_int(shards, "shards")
    eval_set = {int(i) for i in eval_batches}
    if any(i < 0 for i in eval_set):
        raise ValueError("eval_batches must be non-negative stream indices")

    biases: list[NDArray[np.float64]] = []
    loads: list[NDArray[np.int64]] = []
    rewards: list[float] = []
    steps: list[float] = []
    evals: list[bool] = []
    n_experts: int | None = None
    k_checked: int | None = None
    replicas: list[LoopState] = []

    it: Iterator[ArrayLike] = iter(batches)
    t = 0
    while True:
        try:
            raw = next(it) if (not adaptive or t == 0) else it.send(biases[-1])  # type: ignore[attr-defined]
        except StopIteration:
            break
        s = as_scores(raw, name=f"batches[{t}]")
        if n_experts is None:
            n_experts = s.shape[1]
            k_checked = as_k(k, n_experts)
            _check_route_args(
                s[:1], k_checked, None, rule.bias_mode, n_groups, topk_groups, group_score_topk
            )
            if state is None:
                state = LoopState(rule.init(n_experts, init_bias), np.zeros(n_experts), 0)
            elif state.rule.bias.shape != (n_experts,):
                raise ValueError(
                    f"state has E={state.rule.bias.shape[0]} experts, batches have E={n_experts}"
                )
            replicas = [state] * shards
        elif s.shape[1] != n_experts:
            raise ValueError(
                f"batches[{t}] has E={s.shape[1]} experts, earlier batches have E={n_experts}"
            )
        if s.shape[0] % shards:
            raise ValueError(
                f"batches[{t}] has n={s.shape[0]} tokens, not divisible by shards={shards}"
            )
        assert k_checked is not None

        bias = replicas[0].rule.bias
        blocks = np.split(s, shards, axis=0)
        chosen = [
            _select(
                b,
                k_checked,
                replicas[r].rule.bias,
                rule.bias_mode,
                n_groups,
                topk_groups,
                group_score_topk,
            )
            for r, b in enumerate(blocks)
        ]
        shard_loads = [np.bincount(c.ravel(), minlength=n_experts) for c in chosen]
        total = np.sum(shard_loads, axis=0).astype(np.int64)  # all-reduce
        reward = float(
            sum(np.take_along_axis(b, c, axis=1).sum() for b, c in zip(blocks, chosen, strict=True))
        )

        is_eval = t in eval_set
        u = float("nan")
        if not is_eval:
            new = []
            for rep in replicas:
                pending = rep.pending + total
                n_pending = rep.n_pending + 1
                if n_pending == micro_batches:
                    u = float(schedule(rep.rule.count))
                    new.append(LoopState(rule.update(pending, rep.rule, u), np.zeros(n_experts), 0))
                else:
                    new.append(LoopState(rep.rule, pending, n_pending))
            replicas = new
            if any(not np.array_equal(r.rule.bias, replicas[0].rule.bias) for r in replicas[1:]):
                raise RuntimeError(
                    "data-parallel replicas diverged"
                )  # cannot happen: identical inputs

        biases.append(bias)
        loads.append(total)
        rewards.append(reward)
        steps.append(u)
        evals.append(is_eval)
        t += 1
        if progress is not None:
            progress(t)

    if n_experts is None:
        raise ValueError("batches is empty: the stream must yield at least one (n, E) array")
    return Trajectory(
        bias=np.array(biases),
        loads=np.array(loads, dtype=np.int64),
        reward=np.array(rewards),
        step=np.array(steps),
        is_eval=np.array(evals, dtype=bool),
        state=replicas[0],
        rule=rule.name,
        bias_mode=rule.bias_mode,
        k=int(k_checked),  # type: ignore[arg-type]
    )


def save_state(path: str | Path, state: LoopState) -> None:
    """Write a LoopState to an .npz file; float64 arrays round-trip bit-exactly."""
    arrays = {
        "bias": state.rule.bias,
        "count": np.array(state.rule.count),
        "pending": state.pending,
        "n_pending": np.array(state.n_pending),
    }
    for i, b in enumerate(state.rule.buffers):
        arrays[f"buffer{i}"] = b
    np.savez(Path(path), **arrays)


def load_state(path: str | Path) -> LoopState:
    """Read a LoopState written by :func:`save_state`."""
    with np.load(Path(path)) as f:
        buffers = tuple(
            f[f"buffer{i}"] for i in range(sum(key.startswith("buffer") for key in f.files))
        )
        rule = RuleState(f["bias"], int(f["count"]), buffers)
        return LoopState(rule, f["pending"], int(f["n_pending"]))
