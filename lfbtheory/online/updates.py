"""Bias-update rules in the optax style: each rule owns its step size and is a pure pair
``init(E, bias0=None) -> state`` / ``update(loads, state) -> state``.

A rule sees only the loads c (E,) of the optimizer step just taken (token counts summed over
micro-batches and data-parallel replicas), never the scores. With c_bar = sum(c) / E the
balanced load and e_i = (c_bar - c_i) / c_bar the relative load error (dimensionless, so the
step u does not depend on the batch size), a rule computes a direction d from the loads (and
its own buffers) and applies

    additive        b <- b + u_t d                    (select on s + b)
    multiplicative  b <- b * exp(u_t d)               (select on s * b, b > 0)

with u_t = step(t), t = the number of updates already applied. A rule is data, a
:class:`Rule` naming its parts, built as

    g = sign(e) (``sign``, the published rule, arXiv 2408.15664 Sec. 3 eq. 3) or g = e
        (``proportional``: a subgradient step on D(p)/L, the bias being the dual price of the
        capacity constraint whose subgradient is load - L; Zinkevich 2003);
    momentum:  m <- beta m + (1 - beta) g, d = m      (an EMA of the signal: heavy ball
               with dampening);  or
    adagrad:   G <- G + g^2, d = g / (sqrt(G) + eps)  (Duchi, Hazan & Singer 2011);
               else d = g;
    centered:  d <- d - mean(d), so mean(b) stays fixed and sign steps cannot drift together
               (the torchtitan implementation centres its update).

Every rule the constructors build is run by the compiled loop (:mod:`lfbtheory._engine.loop`)
and by the reference loop in Python from the same fields, with the same arithmetic (sums and
exponentials of :mod:`lfbtheory._engine.arith`): the two agree bit for bit.

``step`` is a float (a constant) or a schedule from :mod:`lfbtheory.online.schedules`, e.g.
``sign(1e-3)``, ``proportional(schedules.inverse_sqrt(0.05))``,
``sign(schedules.deepseek_v3(1e-3, stop_step=N))``. States are immutable NamedTuples, one
type per rule family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory._engine.arith import exp, total
from lfbtheory.online.schedules import Schedule, constant, to_json

__all__ = [
    "BiasState",
    "MomentumState",
    "AdagradState",
    "Rule",
    "Step",
    "SIGNALS",
    "sign",
    "proportional",
    "multiplicative",
    "centered",
    "momentum",
    "adagrad",
    "make_rule",
    "MirrorDescent",
    "mirror_descent",
    "follow_the_leader",
    "sliding_window",
    "lag1",
    "is_compiled_kind",
    "load_error",
    "step_value",
    "RULES",
]

Step = float | Schedule
SIGNALS = ("sign", "proportional")


class BiasState(NamedTuple):
    """State of the memoryless rules: bias (E,) float64 and count = updates applied."""

    bias: NDArray[np.float64]
    count: int  # type: ignore[assignment]  # shadows tuple.count: the field's public name


class MomentumState(NamedTuple):
    """bias, count, and the EMA m (E,) of the load signal."""

    bias: NDArray[np.float64]
    count: int  # type: ignore[assignment]  # shadows tuple.count: the field's public name
    velocity: NDArray[np.float64]


class AdagradState(NamedTuple):
    """bias, count, and the running sum G (E,) of squared load errors."""

    bias: NDArray[np.float64]
    count: int  # type: ignore[assignment]  # shadows tuple.count: the field's public name
    sum_sq: NDArray[np.float64]


def load_error(loads: ArrayLike) -> NDArray[np.float64]:
    """Relative load error e_i = (c_bar - c_i) / c_bar (zeros for an empty step)."""
    c = np.asarray(loads, dtype=np.float64)
    mean = total(c) / c.shape[0]
    return np.zeros_like(c) if mean <= 0 else (mean - c) / mean


def _signal(c: NDArray[np.float64], kind: str) -> NDArray[np.float64]:
    """g of the loads c: sign(c_bar - c) (+0 for zeros) or the relative load error."""
    if kind == "sign":
        return np.sign(total(c) / c.shape[0] - c)
    return load_error(c)


class Rule(NamedTuple):
    """A bias-update rule as data (module docstring): ``init(E, bias0=None) -> state``,
    ``update(loads, state) -> state``.

    signal: "sign" or "proportional"; step: the schedule u_t; bias_mode: "additive" or
    "multiplicative"; centered: subtract the mean direction; memory: "none", "momentum"
    (coefficient ``beta`` in [0, 1)) or "adagrad" (``eps`` > 0). Build rules with the
    constructors (:func:`sign`, :func:`proportional`, ...), which check the fields.
    """

    signal: str
    step: Schedule
    bias_mode: str = "additive"
    centered: bool = False
    memory: str = "none"
    beta: float = 0.0
    eps: float = 0.0

    @property
    def name(self) -> str:
        """The rule's name: what it is built of ("sign", "centered_momentum_proportional",
        ...), also its identity in checkpoints."""
        if self.bias_mode == "multiplicative":
            base = "multiplicative"
        elif self.memory == "momentum":
            base = f"momentum_{self.signal}"
        elif self.memory == "adagrad":
            base = "adagrad"
        else:
            base = self.signal
        return f"centered_{base}" if self.centered else base

    @property
    def state_type(self) -> Any:  # a NamedTuple class (mypy has no type for "some NamedTuple")
        """The rule's state: BiasState, MomentumState (momentum) or AdagradState."""
        if self.memory == "momentum":
            return MomentumState
        return AdagradState if self.memory == "adagrad" else BiasState

    def to_json(self) -> dict[str, Any]:
        """The rule as data (its fields, the step schedule as :func:`schedules.to_json`)."""
        return {
            "rule": self.name,
            "signal": self.signal,
            "bias_mode": self.bias_mode,
            "centered": self.centered,
            "memory": self.memory,
            "beta": self.beta,
            "eps": self.eps,
            "step": to_json(self.step),
        }

    def init(self, n_experts: int, bias0: ArrayLike | None = None) -> Any:
        """The state before any update: bias0 (default 0, or 1 for multiplicative)."""
        if isinstance(n_experts, bool) or not isinstance(n_experts, (int, np.integer)):
            raise TypeError(f"n_experts must be an integer >= 1, got {n_experts!r}")
        e = int(n_experts)
        if e < 1:
            raise ValueError(f"n_experts must be >= 1, got {e}")
        if bias0 is None:
            b = np.ones(e) if self.bias_mode == "multiplicative" else np.zeros(e)
        else:
            b = _as_bias(bias0, e, "bias0")
        if self.bias_mode == "multiplicative" and np.any(b <= 0):
            raise ValueError(f"bias0 must be > 0 for the multiplicative rule, got min {b.min()}")
        buffers = tuple(np.zeros(e) for _ in range(len(self.state_type._fields) - 2))
        return self.state_type(b, 0, *buffers)

    def update(self, loads: ArrayLike, state: Any) -> Any:
        """One update from the step's loads (E,) (non-negative counts)."""
        self.check_state(state)
        return self.advance(_as_loads(loads, state.bias.shape[0]), state)

    def direction(self, c: NDArray[np.float64], state: Any) -> tuple[NDArray[np.float64], Any]:
        """(d, state with its buffers advanced) for float64 loads c (module docstring)."""
        g = _signal(c, self.signal)
        if self.memory == "momentum":
            d = self.beta * state.velocity + (1.0 - self.beta) * g
            state = state._replace(velocity=d)
        elif self.memory == "adagrad":
            acc = state.sum_sq + g * g
            d = g / (np.sqrt(acc) + self.eps)
            state = state._replace(sum_sq=acc)
        else:
            d = g
        if self.centered:
            d = d - total(d) / d.shape[0]
        return d, state

    def advance(self, loads: NDArray[np.float64], state: Any, u: float | None = None) -> Any:
        """The arithmetic of :meth:`update` on a valid state and float64 loads of shape (E,),
        without re-checking them (for loops that built both); the result is still checked
        for overflow. ``u``: the step the caller already took for ``state.count`` (so a loop
        calls the schedule once per update), else taken here."""
        d, state = self.direction(loads, state)
        if u is None:
            u = step_value(self.step(state.count), state.count)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.bias_mode == "additive":
                bias = state.bias + u * d
            else:
                bias = state.bias * exp(u * d)
        if not np.all(np.isfinite(bias)):
            raise ValueError(
                f"the update of {self.name!r} at count {state.count} overflowed (step size "
                f"u={u:g}); use a smaller step"
            )
        return state._replace(bias=bias, count=state.count + 1)

    def check_state(self, state: Any) -> None:
        """Raise TypeError/ValueError unless ``state`` is a valid state of this rule."""
        if type(state) is not self.state_type:
            raise TypeError(
                f"state must be a {self.state_type.__name__} (the state of rule {self.name!r}), "
                f"got {type(state).__name__}"
            )
        b = np.asarray(state.bias)
        if b.ndim != 1 or b.size < 1 or not np.all(np.isfinite(b)):
            raise ValueError(f"state.bias must be a finite 1-D array, got {b!r}")
        if self.bias_mode == "multiplicative" and np.any(b <= 0):
            raise ValueError("state.bias must be > 0 for a multiplicative rule")
        if isinstance(state.count, bool) or not isinstance(state.count, (int, np.integer)):
            raise TypeError(f"state.count must be an integer, got {state.count!r}")
        if state.count < 0:
            raise ValueError(f"state.count must be >= 0, got {state.count}")
        for name in self.state_type._fields[2:]:
            buf = np.asarray(getattr(state, name))
            if buf.shape != b.shape or not np.all(np.isfinite(buf)):
                raise ValueError(f"state.{name} must be finite with shape {b.shape}")


def _as_bias(bias: ArrayLike, n_experts: int, name: str) -> NDArray[np.float64]:
    from lfbtheory.validation import as_bias

    return np.array(as_bias(bias, n_experts, name), dtype=np.float64)


def _as_loads(loads: ArrayLike, n_experts: int) -> NDArray[np.float64]:
    c = np.asarray(loads, dtype=np.float64)
    if c.shape != (n_experts,):
        raise ValueError(f"loads must have shape (E,) = ({n_experts},), got {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("loads must be finite, non-negative token counts")
    return c


def step_value(u: object, t: int) -> float:
    """u_t as a finite float >= 0, or TypeError/ValueError naming the schedule and t."""
    try:
        v = float(u)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"the step schedule returned {u!r} at t={t}, not a real number") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"the step schedule returned u={v} at t={t}; it must be finite, >= 0")
    return v


def _as_schedule(step: Step, name: str = "step") -> Schedule:
    if callable(step):
        return step
    if isinstance(step, bool) or not isinstance(step, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a non-negative float or a schedule, got {step!r}")
    return constant(float(step))


def sign(step: Step = 1e-3) -> Rule:
    """b_i += u sign(c_bar - c_i): the published Loss-Free Balancing rule (arXiv 2408.15664
    eq. 3, u = 1e-3). Invariant under scaling all counts (double counting cannot change it)."""
    return Rule("sign", _as_schedule(step))


def proportional(step: Step) -> Rule:
    """b_i += u (c_bar - c_i) / c_bar: a subgradient step on D(p)/L (arXiv 2512.03915 Sec. 3
    frames the bias update as online dual descent). Preserves sum(b) exactly in exact
    arithmetic (the step sums to zero)."""
    return Rule("proportional", _as_schedule(step))


def multiplicative(step: Step) -> Rule:
    """Select on s * b (b > 0, init 1); b_i *= exp(u (c_bar - c_i) / c_bar): the exponentiated-
    gradient form of the multiplicative bias variant."""
    return Rule("proportional", _as_schedule(step), "multiplicative")


def centered(rule: Rule) -> Rule:
    """The additive ``rule`` with each direction centred, d - mean(d): mean(b) stays fixed."""
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be an updates.Rule, got {type(rule).__name__}")
    if rule.bias_mode != "additive":
        raise ValueError("centered() wraps additive rules only")
    return rule._replace(centered=True)


def momentum(step: Step, beta: float = 0.9, signal: str = "proportional") -> Rule:
    """m <- beta m + (1 - beta) g, b += u m with g = e (``signal="proportional"``) or sign(e):
    an EMA of the load signal (heavy-ball momentum with dampening)."""
    beta = float(beta)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    if signal not in SIGNALS:
        raise ValueError(f"signal must be 'proportional' or 'sign', got {signal!r}")
    return Rule(signal, _as_schedule(step), memory="momentum", beta=beta)


def adagrad(step: Step, eps: float = 1e-8) -> Rule:
    """Per-expert adaptive step: G_i += e_i^2, b_i += u e_i / (sqrt(G_i) + eps)
    (Duchi, Hazan & Singer 2011)."""
    eps = float(eps)
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be finite and > 0, got {eps}")
    return Rule("proportional", _as_schedule(step), memory="adagrad", eps=eps)


class MirrorDescent(Rule):
    """Dual mirror descent on prices with the negative-entropy mirror map (multiplicative
    weights on prices; Balseiro, Lu & Mirrokni, arXiv 2011.10124, Sec. 3; Lemma 16 of
    proofs/): prices lam >= 0 for capacities read as upper bounds, routing on s - lam (the
    bias is b = -lam < 0), and

        lam_i <- lam_i exp(u (c_i - c_bar) / c_bar),   i.e.   b <- b exp(-u e),

    e the relative load error: an overloaded expert's price grows, an underloaded one's
    shrinks towards 0, never below. u is eta L for the step eta on D of Lemma 16. The update
    multiplies the bias by a factor that depends on the bias, so it is no spec of the
    compiled loop; :func:`lfbtheory.simulate` runs it in the reference loop (with the
    package's exp, as every rule)."""

    @property
    def name(self) -> str:
        return "mirror_descent"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.name, "kind": "mirror_descent", "step": to_json(self.step)}

    def init(self, n_experts: int, bias0: ArrayLike | None = None) -> Any:
        """The state before any update: bias0 (default -1: price 1 on every expert, the
        width of scores in [0, 1], so KL(q, 1) <= E for every price q in [0, 1]^E)."""
        if bias0 is None:
            bias0 = -np.ones(int(n_experts)) if isinstance(n_experts, (int, np.integer)) else 0
        state = Rule.init(self, n_experts, bias0)
        if np.any(state.bias >= 0):
            raise ValueError("bias0 must be < 0 for mirror descent (prices lam = -bias > 0)")
        return state

    def advance(self, loads: NDArray[np.float64], state: Any, u: float | None = None) -> Any:
        if u is None:
            u = step_value(self.step(state.count), state.count)
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            bias = state.bias * exp(-u * load_error(loads))
        if not np.all(np.isfinite(bias)) or np.any(bias >= 0):
            raise ValueError(
                f"the update of {self.name!r} at count {state.count} overflowed or reached a "
                f"zero price (step size u={u:g}); use a smaller step"
            )
        return state._replace(bias=bias, count=state.count + 1)

    def check_state(self, state: Any) -> None:
        Rule.check_state(self, state)
        if np.any(np.asarray(state.bias) >= 0):
            raise ValueError("state.bias must be < 0 for mirror descent (prices -bias > 0)")


def mirror_descent(step: Step) -> MirrorDescent:
    """Multiplicative weights on prices (:class:`MirrorDescent`) with step u_t."""
    return MirrorDescent("proportional", _as_schedule(step))


def follow_the_leader() -> Any:
    """p_{t+1} = an optimal price of the pooled batches 1..t (:mod:`lfbtheory.online.resolve`:
    re-solving, Agrawal, Wang & Ye 2014; Li & Ye arXiv 1901.04124)."""
    from lfbtheory.online.resolve import Resolve

    return Resolve(None)


def sliding_window(window: int) -> Any:
    """p_{t+1} = an optimal price of the pooled last ``window`` batches (re-solving on a
    window, for drifting streams)."""
    from lfbtheory.online.resolve import Resolve

    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    return Resolve(int(window))


def lag1() -> Any:
    """p_{t+1} = an optimal price of batch t alone (the lag-1 exact price)."""
    return sliding_window(1)


def is_compiled_kind(rule: object) -> bool:
    """True for the rules the compiled loop interprets (a :class:`Rule` itself); False for
    :class:`MirrorDescent` and the re-solving rules, which only the reference loop runs."""
    return type(rule) is Rule


RULES: dict[str, Callable[..., Rule]] = {
    "sign": sign,
    "proportional": proportional,
    "multiplicative": multiplicative,
    "centered_sign": lambda step, **kw: centered(sign(step, **kw)),
    "centered_proportional": lambda step, **kw: centered(proportional(step, **kw)),
    "momentum": momentum,
    "adagrad": adagrad,
    "mirror_descent": mirror_descent,
}


def make_rule(name: str, step: Step, **options: Any) -> Rule:
    """Build a rule by name (``RULES``) with its step size or schedule; unknown names raise
    with the allowed list."""
    if name not in RULES:
        raise ValueError(f"rule must be one of {', '.join(sorted(RULES))}; got {name!r}")
    try:
        return RULES[name](step, **options)
    except TypeError as exc:
        raise TypeError(f"rule {name!r}: {exc}") from None
