"""Bias-update rules in the optax style: each rule owns its step size and is a pure pair
``init(E, bias0=None) -> state`` / ``update(loads, state) -> state``.

A rule sees only the loads c (E,) of the optimizer step just taken (token counts summed over
micro-batches and data-parallel replicas), never the scores. With c_bar = sum(c) / E the
balanced load and e_i = (c_bar - c_i) / c_bar the relative load error (dimensionless, so the
step u does not depend on the batch size), a rule computes a direction d from the loads (and
its own buffers) and applies

    additive        b <- b + u_t d                    (select on s + b)
    multiplicative  b <- b * exp(u_t d)               (select on s * b, b > 0)

with u_t = step(t), t = the number of updates already applied. The directions:

    sign            d = sign(e)         the published rule (arXiv 2408.15664 Sec. 3, eq. 3)
    proportional    d = e               a subgradient step on D(p)/L: the bias is the dual
                                        price of the capacity constraint, D's subgradient is
                                        load - L (Zinkevich 2003 for online subgradient steps)
    multiplicative  d = e               exponentiated-gradient form (b stays > 0)
    momentum        d = m, m <- beta m + (1 - beta) g, g = e or sign(e)   (EMA / heavy ball)
    adagrad         d = g / (sqrt(G) + eps), G <- G + g^2, g = e          (Duchi et al. 2011)
    centered(rule)  d = d_rule - mean(d_rule): mean(b) stays fixed, so sign steps cannot
                    drift together (the torchtitan implementation centres its update)

``step`` is a float (a constant) or a schedule from :mod:`lfbtheory.online.schedules`, e.g.
``sign(1e-3)``, ``proportional(schedules.inverse_sqrt(0.05))``,
``sign(schedules.deepseek_v3(1e-3, stop_step=N))``. States are immutable NamedTuples, one type
per rule family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.online.schedules import Schedule, constant

__all__ = [
    "BiasState",
    "MomentumState",
    "AdagradState",
    "Rule",
    "Step",
    "sign",
    "proportional",
    "multiplicative",
    "centered",
    "momentum",
    "adagrad",
    "make_rule",
    "load_error",
    "step_value",
    "RULES",
]

Step = float | Schedule


class BiasState(NamedTuple):
    """State of the memoryless rules: bias (E,) float64 and count = updates applied."""

    bias: NDArray[np.float64]
    count: int


class MomentumState(NamedTuple):
    """bias, count, and the EMA m (E,) of the load signal."""

    bias: NDArray[np.float64]
    count: int
    velocity: NDArray[np.float64]


class AdagradState(NamedTuple):
    """bias, count, and the running sum G (E,) of squared load errors."""

    bias: NDArray[np.float64]
    count: int
    sum_sq: NDArray[np.float64]


State = BiasState | MomentumState | AdagradState
Direction = Callable[[NDArray[np.float64], Any], tuple[NDArray[np.float64], Any]]


def load_error(loads: ArrayLike) -> NDArray[np.float64]:
    """Relative load error e_i = (c_bar - c_i) / c_bar (zeros for an empty step)."""
    c = np.asarray(loads, dtype=np.float64)
    mean = c.mean()
    return np.zeros_like(c) if mean <= 0 else (mean - c) / mean


def _sign_error(c: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.sign(c.mean() - c)


class Rule(NamedTuple):
    """A bias-update rule: ``init(E, bias0=None) -> state``, ``update(loads, state) -> state``.

    ``direction(loads, state) -> (d, state with its buffers advanced)`` is the rule's own part;
    ``update`` validates, takes u = step(state.count) and applies d (see the module docstring).
    """

    name: str
    step: Schedule
    direction: Direction
    state_type: type
    bias_mode: str = "additive"

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
                bias = state.bias * np.exp(u * d)
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


def _memoryless(signal: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> Direction:
    return lambda c, state: (signal(c), state)


def _centered_direction(inner: Direction) -> Direction:
    def direction(c: NDArray[np.float64], state: Any) -> tuple[NDArray[np.float64], Any]:
        d, state = inner(c, state)
        return d - d.mean(), state

    return direction


# The built-in directions, one object each: :mod:`lfbtheory._engine.loop` recognises them by
# identity (never by a rule's name) and runs their rules' loop compiled, bit for bit.
_SIGN_DIRECTION = _memoryless(_sign_error)
_PROPORTIONAL_DIRECTION = _memoryless(load_error)
_CENTERED_SIGN_DIRECTION = _centered_direction(_SIGN_DIRECTION)
_CENTERED_PROPORTIONAL_DIRECTION = _centered_direction(_PROPORTIONAL_DIRECTION)


def sign(step: Step = 1e-3) -> Rule:
    """b_i += u sign(c_bar - c_i): the published Loss-Free Balancing rule (arXiv 2408.15664
    eq. 3, u = 1e-3). Invariant under scaling all counts (double counting cannot change it)."""
    return Rule("sign", _as_schedule(step), _SIGN_DIRECTION, BiasState)


def proportional(step: Step) -> Rule:
    """b_i += u (c_bar - c_i) / c_bar: a subgradient step on D(p)/L (arXiv 2512.03915 Sec. 3
    frames the bias update as online dual descent). Preserves sum(b) exactly in exact
    arithmetic (the step sums to zero)."""
    return Rule("proportional", _as_schedule(step), _PROPORTIONAL_DIRECTION, BiasState)


def multiplicative(step: Step) -> Rule:
    """Select on s * b (b > 0, init 1); b_i *= exp(u (c_bar - c_i) / c_bar): the exponentiated-
    gradient form of the multiplicative bias variant."""
    return Rule(
        "multiplicative", _as_schedule(step), _memoryless(load_error), BiasState, "multiplicative"
    )


def centered(rule: Rule) -> Rule:
    """The additive ``rule`` with each direction centred, d - mean(d): mean(b) stays fixed."""
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be an updates.Rule, got {type(rule).__name__}")
    if rule.bias_mode != "additive":
        raise ValueError("centered() wraps additive rules only")
    inner = rule.direction
    if inner is _SIGN_DIRECTION:
        direction = _CENTERED_SIGN_DIRECTION
    elif inner is _PROPORTIONAL_DIRECTION:
        direction = _CENTERED_PROPORTIONAL_DIRECTION
    else:
        direction = _centered_direction(inner)
    return rule._replace(name=f"centered_{rule.name}", direction=direction)


def momentum(step: Step, beta: float = 0.9, signal: str = "proportional") -> Rule:
    """m <- beta m + (1 - beta) g, b += u m with g = e (``signal="proportional"``) or sign(e):
    an EMA of the load signal (heavy-ball momentum with dampening)."""
    beta = float(beta)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    if signal not in ("proportional", "sign"):
        raise ValueError(f"signal must be 'proportional' or 'sign', got {signal!r}")
    grad = load_error if signal == "proportional" else _sign_error

    def direction(c: NDArray[np.float64], state: MomentumState) -> tuple[Any, MomentumState]:
        m = beta * state.velocity + (1.0 - beta) * grad(c)
        return m, state._replace(velocity=m)

    return Rule(f"momentum_{signal}", _as_schedule(step), direction, MomentumState)


def adagrad(step: Step, eps: float = 1e-8) -> Rule:
    """Per-expert adaptive step: G_i += e_i^2, b_i += u e_i / (sqrt(G_i) + eps)
    (Duchi, Hazan & Singer 2011)."""
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")

    def direction(c: NDArray[np.float64], state: AdagradState) -> tuple[Any, AdagradState]:
        g = load_error(c)
        acc = state.sum_sq + g * g
        return g / (np.sqrt(acc) + eps), state._replace(sum_sq=acc)

    return Rule("adagrad", _as_schedule(step), direction, AdagradState)


RULES: dict[str, Callable[..., Rule]] = {
    "sign": sign,
    "proportional": proportional,
    "multiplicative": multiplicative,
    "centered_sign": lambda step, **kw: centered(sign(step, **kw)),
    "centered_proportional": lambda step, **kw: centered(proportional(step, **kw)),
    "momentum": momentum,
    "adagrad": adagrad,
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
