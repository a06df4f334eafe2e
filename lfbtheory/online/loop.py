"""The online primal-dual loop: route each batch with a bias computed from past batches only.

Online dual descent on D_t(p) = sum_tokens topk(s + p) - L sum(p) (arXiv 2512.03915 Sec. 3):
batch t is routed with p_t, then the rule moves p using the loads of batch t. Built on the
router-state machine of :mod:`lfbtheory.online.state`, so it models what training does:

- ``micro_batches=m``: m consecutive stream elements form one optimizer step; all are routed
  with the same bias, their loads are summed, and one update follows.
- ``eval_batches``: stream indices that are routed and recorded but move neither the pending
  loads nor the bias.
- ``state``: a :class:`RouterState` from an earlier run (``trajectory.state``, or
  :func:`load_state`); continuing from it is bit-identical to never having stopped.

Data-parallel replicas are not simulated here: their all-reduce is one sum of counts, checked
against real routers by the conformance suite's ``data_parallel_reduction`` property.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory._engine import loop as _engine_loop
from lfbtheory._engine.arith import total
from lfbtheory.online.resolve import Resolve
from lfbtheory.online.state import RouterState, init_state
from lfbtheory.online.updates import MirrorDescent, Rule, step_value
from lfbtheory.routing import RouteOptions, route_options, select_and_count
from lfbtheory.validation import as_k, as_positive_int, as_scores, as_stream_indices

__all__ = ["LoopState", "Trajectory", "simulate"]

LoopState = RouterState  # the loop's state is the router state (one format)


@dataclass(frozen=True)
class Trajectory:
    """One row per stream element (batch or micro-batch).

    bias (T, E): the bias that routed the element; loads (T, E) int64; reward (T,): sum of the
    unbiased scores of the selected experts; step (T,): the step size of the update that
    followed the element (NaN when none did); is_eval (T,) bool; state: the final RouterState;
    micro_batches: elements per optimizer step; routing: the routing options used.
    """

    bias: NDArray[np.float64]
    loads: NDArray[np.int64]
    reward: NDArray[np.float64]
    step: NDArray[np.float64]
    is_eval: NDArray[np.bool_]
    state: RouterState
    rule: str
    bias_mode: str
    k: int
    micro_batches: int = 1
    routing: RouteOptions | None = None

    def __len__(self) -> int:
        return int(self.loads.shape[0])

    @property
    def group_limited(self) -> bool:
        """True when routing was group-limited (then load - L is not a subgradient of D)."""
        return self.routing is not None and self.routing.group_limited


@overload
def simulate(
    batches: Iterable[ArrayLike],
    k: int,
    rule: Rule | Resolve,
    *,
    init_bias: ArrayLike | None = ...,
    state: RouterState | None = ...,
    micro_batches: int = ...,
    eval_batches: Iterable[int] = ...,
    adaptive: bool = ...,
    n_groups: int | None = ...,
    topk_groups: int | None = ...,
    group_score_topk: int = ...,
    progress: Callable[[int], None] | None = ...,
    _path: str | None = ...,
) -> Trajectory: ...


@overload
def simulate(
    batches: Iterable[ArrayLike],
    k: int,
    rule: Sequence[Rule | Resolve],
    *,
    init_bias: ArrayLike | None = ...,
    state: RouterState | None = ...,
    micro_batches: int = ...,
    eval_batches: Iterable[int] = ...,
    adaptive: bool = ...,
    n_groups: int | None = ...,
    topk_groups: int | None = ...,
    group_score_topk: int = ...,
    progress: Callable[[int], None] | None = ...,
    _path: str | None = ...,
) -> list[Trajectory]: ...


def simulate(
    batches: Iterable[ArrayLike],
    k: int,
    rule: Rule | Resolve | Sequence[Rule | Resolve],
    *,
    init_bias: ArrayLike | None = None,
    state: RouterState | None = None,
    micro_batches: int = 1,
    eval_batches: Iterable[int] = (),
    adaptive: bool = False,
    n_groups: int | None = None,
    topk_groups: int | None = None,
    group_score_topk: int = 2,
    progress: Callable[[int], None] | None = None,
    _path: str | None = None,
) -> Trajectory | list[Trajectory]:
    """Run the bias-update ``rule`` (which owns its step size) over a stream of score batches.

    The bias routing element t depends on elements < t only (online dual descent on
    D_t(p) = sum_tokens topk(s + p) - L sum(p), arXiv 2512.03915 Sec. 3). ``batches`` is any
    iterable of (n, E) arrays (same E; n may vary). ``rule`` may also be a sequence of rules:
    then every rule runs over the same stream (read once) and a list of Trajectories comes
    back, each what ``simulate`` gives for that rule alone. With ``adaptive=True``,
    ``batches`` must be a generator (e.g. ``Adversarial.adaptive_batches``): it is sent the
    bias used for each element before it yields the next (an adversary that sees only past
    biases); one rule only. ``progress`` is called with the number of elements done (over
    all rules) after each one, or after each chunk of a compiled pass.

    Every rule the :mod:`~lfbtheory.online.updates` constructors build runs compiled on a
    (T, n, E) float64 array (:mod:`lfbtheory._engine.loop`) and in the reference loop
    otherwise, bit for bit the same; ``_path`` is internal ("python", "rows", "columns":
    force a path, for the tests that check it).

    Two rule kinds run in the reference loop only, and forcing a compiled path for them
    raises ValueError (never a silent mis-run): the re-solving rules
    (:class:`lfbtheory.online.resolve.Resolve`: follow the leader, sliding window, lag-1),
    whose step is an exact LP solve of past batches' SCORES, which the compiled loop (it
    carries loads and (E,) buffers) does not have; and
    :class:`~lfbtheory.online.updates.MirrorDescent`, whose factor exp(-u e) multiplies an
    additive bias, no spec of the compiled loop. A re-solving rule is handed the scores of
    the training micro-batches of each optimizer step, after they were routed.

    Examples
    --------
    >>> import numpy as np
    >>> import lfbtheory as lfb
    >>> rng = np.random.default_rng(0)
    >>> batches = lfb.sigmoid(rng.normal(size=(50, 64, 8)) + rng.normal(size=8))
    >>> traj = lfb.simulate(batches, 2, lfb.updates.sign(1e-2))
    >>> traj.bias.shape, traj.loads.shape
    ((50, 8), (50, 8))
    >>> rules = [lfb.updates.sign(1e-2), lfb.updates.proportional(0.05)]
    >>> [t.rule for t in lfb.simulate(batches, 2, rules)]
    ['sign', 'proportional']
    """
    many = not isinstance(rule, (Rule, Resolve))
    rules: list[Rule | Resolve] = [rule] if isinstance(rule, (Rule, Resolve)) else _as_rules(rule)
    micro_batches = as_positive_int(micro_batches, "micro_batches")
    eval_set = set(as_stream_indices(eval_batches, "eval_batches"))
    if init_bias is not None and state is not None:
        raise ValueError("give init_bias or state, not both")
    if _path not in (None, "python", "rows", "columns"):
        raise ValueError(f"_path must be None, 'python', 'rows' or 'columns', got {_path!r}")
    if _path in ("rows", "columns"):
        for r in rules:
            if isinstance(r, (Resolve, MirrorDescent)):
                why = (
                    "its step is an exact LP solve of past batches' scores"
                    if isinstance(r, Resolve)
                    else "its update multiplies an additive bias (no compiled spec)"
                )
                raise ValueError(
                    f"rule {r.name!r} runs in the reference loop only ({why}); "
                    f"_path={_path!r} cannot run it"
                )
    if adaptive:
        if many:
            raise ValueError("adaptive=True runs one rule (the adversary answers one bias)")
        if not hasattr(batches, "send"):
            raise TypeError(
                "adaptive=True needs a generator that accepts the bias via send() (e.g. "
                f"Adversarial.adaptive_batches), got {type(batches).__name__}"
            )
    if state is not None:
        if not isinstance(state, RouterState):
            raise TypeError(f"state must be a RouterState, got {type(state).__name__}")
        for r in rules:
            r.check_state(state.rule)
        if state.n_pending and any(isinstance(r, Resolve) for r in rules):
            raise ValueError(
                "a re-solving rule resumes only from a state saved between optimizer steps "
                f"(this one has {state.n_pending} pending micro-batches, whose scores it lacks)"
            )
        if state.n_pending >= micro_batches:
            raise ValueError(
                f"state has {state.n_pending} pending micro-batches, which is not fewer than "
                f"micro_batches={micro_batches}: resume with the micro_batches it was saved with"
            )
    if many and isinstance(batches, Iterator):
        batches = list(batches)  # every rule sees the whole stream
    groups = (n_groups, topk_groups, group_score_topk)
    arr = None if adaptive else _float64_stream(batches)
    fused: dict[int, tuple[int, RouteOptions, RouterState]] = {}
    if arr is not None and arr.shape[0] >= 1 and _path != "python":
        for q, r in enumerate(rules):
            try:
                kk, opts, st = _start(arr.shape[2], k, r, state, init_bias, *groups)
            except Exception:  # the reference loop raises it again, in its turn
                continue
            if not opts.group_limited and isinstance(r, Rule) and _compiled_ok(r, st):
                fused[q] = (kk, opts, st)
    heads = _run_compiled(arr, rules, fused, micro_batches, eval_set, progress, _path)
    done = sum(h.stop for h in heads.values())  # what the compiled pass reported
    out = []
    for q, r in enumerate(rules):
        head = heads.get(q)
        skip = 0 if head is None else head.stop  # the reference loop's progress counts from here
        tick = None if progress is None else (lambda t, d=done - skip: progress(d + t))
        if head is None:
            pre = _prevalidated(batches) if not adaptive else None
            traj = _python_loop(
                batches if pre is None else pre, pre is not None, k, r, state, init_bias,
                micro_batches, eval_set, adaptive, groups, tick,
            )  # fmt: skip
        else:
            assert arr is not None
            kk, opts, st = fused[q]
            traj = _finish(arr, kk, opts, r, st, head, micro_batches, eval_set, tick)
        done += len(traj) - skip
        out.append(traj)
    return out if many else out[0]


def _as_rules(rules: object) -> list[Rule | Resolve]:
    """``rules`` as a list, or TypeError naming the argument (or the entry) that is wrong."""
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Iterable):
        raise TypeError(
            f"rule must be an lfbtheory.updates.Rule (e.g. updates.sign(1e-3)) or a sequence "
            f"of them, got {type(rules).__name__}"
        )
    out = list(rules)
    if not out:
        raise ValueError("rule must name at least one rule")
    for q, rule in enumerate(out):
        if not isinstance(rule, (Rule, Resolve)):
            raise TypeError(
                f"rule[{q}] must be an lfbtheory.updates.Rule (e.g. updates.sign(1e-3)), got "
                f"{type(rule).__name__}"
            )
    return out


def _start(
    n_experts: int,
    k: int,
    rule: Rule | Resolve,
    state: RouterState | None,
    init_bias: ArrayLike | None,
    n_groups: int | None,
    topk_groups: int | None,
    group_score_topk: int,
) -> tuple[int, RouteOptions, RouterState]:
    """What the loop fixes at its first batch: k, the routing options and the initial state
    (``init_state(rule, E, init_bias)`` or ``state``, checked against E)."""
    kk = as_k(k, n_experts)
    opts = route_options(n_experts, kk, rule.bias_mode, n_groups, topk_groups, group_score_topk)
    if state is None:
        state = init_state(rule, n_experts, init_bias)
    elif state.bias.shape != (n_experts,):
        raise ValueError(f"state has E={state.bias.shape[0]} experts, batches have E={n_experts}")
    return kk, opts, state


def _compiled_ok(rule: Rule, state: RouterState) -> bool:
    """True when the compiled loop computes exactly what the reference loop would: a ``Rule``
    itself (a subclass could override its arithmetic) on an unfrozen state whose bias and
    buffers are float64 ndarrays."""
    rs = state.rule
    return (
        type(rule) is Rule
        and not state.frozen
        and all(
            isinstance(a, np.ndarray) and a.dtype == np.float64
            for a in (rs.bias, *(getattr(rs, f) for f in rule.state_type._fields[2:]))
        )
    )


def _run_compiled(
    arr: NDArray[np.float64] | None,
    rules: Sequence[Rule | Resolve],
    fused: dict[int, tuple[int, RouteOptions, RouterState]],
    micro: int,
    eval_set: set[int],
    progress: Callable[[int], None] | None,
    path: str | None,
) -> dict[int, _engine_loop.Prefix]:
    """The compiled pass of the ``fused`` rules over ``arr``: their Prefixes by rule index."""
    if not fused or arr is None:
        return {}
    order = list(fused)
    kk = fused[order[0]][0]  # as_k(k, E): the same for every rule
    picked = [r for r in (rules[q] for q in order) if isinstance(r, Rule)]
    assert len(picked) == len(order)  # only Rules are fused (a Resolve step is an LP solve)
    states = [fused[q][2] for q in order]
    specs = _engine_loop.Specs(
        np.array([0 if r.signal == "sign" else 1 for r in picked], dtype=np.int64),
        np.array([r.centered for r in picked], dtype=np.bool_),
        np.array([("none", "momentum", "adagrad").index(r.memory) for r in picked], dtype=np.int64),
        np.array([r.beta for r in picked], dtype=np.float64),
        np.array([r.eps for r in picked], dtype=np.float64),
        np.array([r.bias_mode == "multiplicative" for r in picked], dtype=np.bool_),
    )
    e = arr.shape[2]
    arrays = _engine_loop.States(
        np.array([s.rule.bias for s in states], dtype=np.float64),
        np.array([s.rule[2] if len(s.rule) > 2 else np.zeros(e) for s in states], dtype=np.float64),
        np.array([s.pending for s in states], dtype=np.int64),
        np.array([s.n_pending for s in states], dtype=np.int64),
    )
    is_eval = np.zeros(arr.shape[0], dtype=bool)
    for t in eval_set:
        if t < arr.shape[0]:
            is_eval[t] = True
    prefixes = _engine_loop.run(
        arr, kk, specs, arrays, [s.rule.count for s in states], [r.step for r in picked],
        step_value, micro, is_eval, progress, path=None if path is None else path,
    )  # fmt: skip
    return dict(zip(order, prefixes, strict=True))


def _finish(
    arr: NDArray[np.float64],
    kk: int,
    opts: RouteOptions,
    rule: Rule | Resolve,
    start: RouterState,
    head: _engine_loop.Prefix,
    micro: int,
    eval_set: set[int],
    progress: Callable[[int], None] | None,
) -> Trajectory:
    """The Trajectory of ``rule`` over ``arr`` from the compiled pass's ``head``: from the first
    element it could not do exactly (a schedule error, a score outside the domain, an
    overflow) the reference loop takes over from the state reached, on the whole stream's
    validation path, so errors are raised as :func:`_python_loop` raises them and at the
    same element (``progress`` then gets the stream index of each element done)."""
    rs = start.rule
    if head.updates != rs.count or head.stop:
        buffers = [head.state_buffer.copy()] if len(rs) > 2 else []
        rs = rs._replace(bias=head.state_bias.copy(), count=head.updates)
        if buffers:
            rs = rs._replace(**{rule.state_type._fields[2]: buffers[0]})
    if head.stop == 0:
        state = start
    else:
        state = RouterState(rs, head.pending.copy(), head.n_pending, False)
    is_eval = np.zeros(head.stop, dtype=bool)
    for t in eval_set:
        if t < head.stop:
            is_eval[t] = True
    parts = [(head.bias, head.loads, head.reward, head.step, is_eval)]
    if head.stop < arr.shape[0]:
        tail = _python_loop(
            arr[head.stop :], _prevalidated(arr) is not None, kk, rule, state, None, micro,
            eval_set, False, (opts.n_groups, opts.topk_groups, opts.group_score_topk),
            progress, t_start=head.stop,
        )  # fmt: skip
        parts.append((tail.bias, tail.loads, tail.reward, tail.step, tail.is_eval))
        state = tail.state
    bias, loads, reward, step, evals = (
        parts[0] if len(parts) == 1 else (np.concatenate(x) for x in zip(*parts, strict=True))
    )
    return Trajectory(
        bias=bias,
        loads=loads,
        reward=reward,
        step=step,
        is_eval=evals,
        state=state,
        rule=rule.name,
        bias_mode=rule.bias_mode,
        k=kk,
        micro_batches=micro,
        routing=opts,
    )


def _python_loop(
    batches: Iterable[ArrayLike],
    prevalidated: bool,
    k: int,
    rule: Rule | Resolve,
    state: RouterState | None,
    init_bias: ArrayLike | None,
    micro_batches: int,
    eval_set: set[int],
    adaptive: bool,
    groups: tuple[int | None, int | None, int],
    progress: Callable[[int], None] | None,
    t_start: int = 0,
) -> Trajectory:
    """The loop in Python, one iteration per element (any rule, stream and options), on
    arguments :func:`simulate` validated; ``prevalidated``: ``batches`` passed
    :func:`_prevalidated`; ``t_start``: the stream index of its first element (for eval
    indices, progress and messages) when it continues a stream from ``state``."""
    biases: list[NDArray[np.float64]] = []
    loads: list[NDArray[np.int64]] = []
    rewards: list[float] = []
    steps: list[float] = []
    evals: list[bool] = []
    n_experts: int | None = None
    opts: RouteOptions | None = None
    kk = 0
    # The rule's state, the pending counts and their micro-batch count live in locals between
    # optimizer steps (the RouterState fields, rebuilt once at the end): validated once here,
    # then advanced below with the arithmetic of ``optimizer_step`` / ``Rule.update`` without
    # their per-call re-validation of what this loop itself produced.
    rs = pending = None
    n_pending = 0
    rows = np.empty((0, 1), dtype=np.intp)  # token indices, for the reward's gather
    frozen = False
    resolving = isinstance(rule, Resolve)
    step_scores: list[NDArray[np.float64]] = []  # a re-solving rule's tokens of this step

    it: Iterator[ArrayLike] = iter(batches)
    t = t_start
    while True:
        try:
            raw = next(it) if (not adaptive or not biases) else it.send(biases[-1])  # type: ignore[attr-defined]
        except StopIteration:
            break
        s: NDArray[np.float64] = (
            np.asarray(raw) if prevalidated else as_scores(raw, name=f"batches[{t}]")
        )
        if n_experts is None:
            n_experts = s.shape[1]
            kk, opts, state = _start(n_experts, k, rule, state, init_bias, *groups)
            rs, pending, n_pending, frozen = state
            pending = np.asarray(pending, dtype=np.int64)
        elif s.shape[1] != n_experts:
            raise ValueError(
                f"batches[{t}] has E={s.shape[1]} experts, earlier batches have E={n_experts}"
            )
        assert opts is not None and rs is not None and pending is not None

        bias = rs.bias
        experts, load = select_and_count(s, bias, opts)
        if rows.shape[0] != s.shape[0]:
            rows = np.arange(s.shape[0])[:, None]
        reward = total(s[rows, experts])  # the package's sum (_engine.arith), both paths

        is_eval = t in eval_set
        u = float("nan")
        if not is_eval:
            pending = pending + load
            n_pending += 1
            if resolving:
                step_scores.append(s)
            if n_pending >= micro_batches:
                if resolving:  # an LP solve of the step's scores (routed above with rs.bias)
                    assert isinstance(rule, Resolve)
                    if not frozen:
                        pool = (
                            step_scores[0] if len(step_scores) == 1 else np.concatenate(step_scores)
                        )
                        rs = rule.observe(pool, rs, kk)
                    step_scores = []
                else:
                    assert isinstance(rule, Rule)  # (a Resolve rule observes, above)
                    u = step_value(rule.step(rs.count), rs.count)
                    if not frozen:  # optimizer_step's arithmetic on a state this loop built
                        rs = rule.advance(pending.astype(np.float64), rs, u)
                pending = np.zeros_like(pending)
                n_pending = 0

        biases.append(bias)
        loads.append(load)
        rewards.append(reward)
        steps.append(u)
        evals.append(is_eval)
        t += 1
        if progress is not None:
            progress(t)
    if rs is not None:
        assert pending is not None  # set together with rs
        state = RouterState(rs, pending, n_pending, frozen)

    if n_experts is None or state is None:
        raise ValueError("batches is empty: the stream must yield at least one (n, E) array")
    return Trajectory(
        bias=np.array(biases),
        loads=np.array(loads, dtype=np.int64),
        reward=np.array(rewards),
        step=np.array(steps),
        is_eval=np.array(evals, dtype=bool),
        state=state,
        rule=rule.name,
        bias_mode=rule.bias_mode,
        k=kk,
        micro_batches=micro_batches,
        routing=opts,
    )


def _float64_stream(batches: object) -> NDArray[np.float64] | None:
    """``batches`` if it is a (T, n, E) float64 array with n, E >= 1, else None."""
    if (
        isinstance(batches, np.ndarray)
        and batches.dtype == np.float64
        and batches.ndim == 3
        and batches.shape[1] >= 1
        and batches.shape[2] >= 1
    ):
        return batches
    return None


def _prevalidated(batches: object) -> NDArray[np.float64] | None:
    """A (T, n, E) float64 array whose every batch :func:`as_scores` would accept unchanged
    (checked once for the whole stream), else None (each batch is then checked as it comes)."""
    arr = _float64_stream(batches)
    return arr if arr is not None and bool(np.isfinite(arr).all()) else None
