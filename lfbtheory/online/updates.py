"""Bias-update rules, each a small pure ``init``/``update`` pair (the optax style).

Every rule sees only the loads c (E,) of the batch just routed (summed over micro-batches and
data-parallel shards) and the step size u_t from a schedule; it never sees the scores. With
c_bar = sum(c) / E the balanced load and the relative error e_i = (c_bar - c_i) / c_bar
(dimensionless, so u does not depend on the batch size):

    sign            b_i += u sign(c_bar - c_i)                 (arXiv 2408.15664 Sec. 3, eq. 3)
    proportional    b_i += u e_i                   (dual subgradient descent on D(p)/L, DESIGN 2)
    multiplicative  b_i *= exp(u e_i), select on s * b          (exponentiated-gradient variant)
    centered(rule)  b += delta - mean(delta), delta = rule's step   (torchtitan, issue #1506)
    momentum        m = beta m + (1 - beta) g, b += u m, g = e or sign(e)   (heavy-ball / EMA)
    adagrad         G_i += g_i^2, b_i += u g_i / (sqrt(G_i) + eps)          (Duchi et al. 2011)

State is an immutable ``RuleState`` (bias, count of updates, rule-specific buffers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "RuleState",
    "Rule",
    "sign",
    "proportional",
    "multiplicative",
    "centered",
    "momentum",
    "adagrad",
    "make_rule",
    "load_error",
    "RULES",
]


class RuleState(NamedTuple):
    """bias (E,) float64; count = number of updates applied; buffers: rule-specific arrays."""

    bias: NDArray[np.float64]
    count: int
    buffers: tuple[NDArray[np.float64], ...] = ()


class Rule(NamedTuple):
    """A bias-update rule: ``init(E, bias0) -> state``, ``update(loads, state, u) -> state``."""

    name: str
    init: Callable[[int, ArrayLike | None], RuleState]
    update: Callable[[ArrayLike, RuleState, float], RuleState]
    bias_mode: str = "additive"


def _check_loads(loads: ArrayLike, n_experts: int) -> NDArray[np.float64]:
    c = np.asarray(loads, dtype=np.float64)
    if c.shape != (n_experts,):
        raise ValueError(f"loads must have shape (E,) = ({n_experts},), got {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError("loads must be finite and non-negative counts")
    return c


def _check_step(u: float) -> float:
    u = float(u)
    if not np.isfinite(u) or u < 0:
        raise ValueError(f"step size u must be finite and >= 0, got {u}")
    return u


def load_error(loads: ArrayLike) -> NDArray[np.float64]:
    """Relative load error e_i = (c_bar - c_i) / c_bar (zero for an empty batch)."""
    c = np.asarray(loads, dtype=np.float64)
    mean = c.mean()
    return np.zeros_like(c) if mean <= 0 else (mean - c) / mean


def _init_additive(n_experts: int, bias0: ArrayLike | None) -> RuleState:
    if bias0 is None:
        return RuleState(np.zeros(n_experts), 0)
    b = np.array(bias0, dtype=np.float64)
    if b.shape != (n_experts,) or not np.all(np.isfinite(b)):
        raise ValueError(
            f"init bias must be finite with shape (E,) = ({n_experts},), got {b.shape}"
        )
    return RuleState(b, 0)


def _additive_rule(
    name: str, direction: Callable[[NDArray[np.float64]], NDArray[np.float64]]
) -> Rule:
    def update(loads: ArrayLike, state: RuleState, u: float) -> RuleState:
        c = _check_loads(loads, state.bias.shape[0])
        return RuleState(state.bias + _check_step(u) * direction(c), state.count + 1, state.buffers)

    return Rule(name, _init_additive, update)


def sign() -> Rule:
    """b_i += u sign(c_bar - c_i): the published Loss-Free Balancing rule (arXiv 2408.15664 eq. 3).

    Invariant under scaling all counts (double counting cannot change it).
    """
    return _additive_rule("sign", lambda c: np.sign(c.mean() - c))


def proportional() -> Rule:
    """b_i += u (c_bar - c_i) / c_bar: a subgradient step on D(p)/L (DESIGN.md Sec. 2).

    Preserves sum(b) exactly (the step sums to zero).
    """
    return _additive_rule("proportional", load_error)


def multiplicative() -> Rule:
    """Select on s * b with b > 0 (init 1); b_i *= exp(u (c_bar - c_i) / c_bar).

    Exponentiated-gradient form of the multiplicative bias studied as a Loss-Free variant; it
    keeps b > 0 and is invariant under scaling all counts.
    """

    def init(n_experts: int, bias0: ArrayLike | None) -> RuleState:
        state = _init_additive(n_experts, np.ones(n_experts) if bias0 is None else bias0)
        if np.any(state.bias <= 0):
            raise ValueError("init bias must be > 0 for the multiplicative rule")
        return state

    def update(loads: ArrayLike, state: RuleState, u: float) -> RuleState:
        c = _check_loads(loads, state.bias.shape[0])
        return RuleState(state.bias * np.exp(_check_step(u) * load_error(c)), state.count + 1)

    return Rule("multiplicative", init, update, bias_mode="multiplicative")


def centered(rule: Rule) -> Rule:
    """Remove the mean of each step of an additive ``rule``: b += delta - mean(delta).

    Keeps mean(b) fixed, so sign updates cannot drift together (torchtitan issue #1506).
    """
    if rule.bias_mode != "additive":
        raise ValueError("centered() wraps additive rules only")

    def update(loads: ArrayLike, state: RuleState, u: float) -> RuleState:
        new = rule.update(loads, state, u)
        delta = new.bias - state.bias
        return new._replace(bias=state.bias + (delta - delta.mean()))

    return Rule(f"centered_{rule.name}", rule.init, update)


def momentum(beta: float = 0.9, signal: str = "proportional") -> Rule:
    """m = beta m + (1 - beta) g, b += u m with g = e (proportional) or sign(e) (sign).

    An EMA of the load signal (heavy-ball momentum with dampening), smoothing noisy batches.
    """
    beta = float(beta)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    if signal not in ("proportional", "sign"):
        raise ValueError(f"signal must be 'proportional' or 'sign', got {signal!r}")
    grad = load_error if signal == "proportional" else (lambda c: np.sign(c.mean() - c))

    def init(n_experts: int, bias0: ArrayLike | None) -> RuleState:
        s = _init_additive(n_experts, bias0)
        return s._replace(buffers=(np.zeros(n_experts),))

    def update(loads: ArrayLike, state: RuleState, u: float) -> RuleState:
        c = _check_loads(loads, state.bias.shape[0])
        m = beta * state.buffers[0] + (1.0 - beta) * grad(c)
        return RuleState(state.bias + _check_step(u) * m, state.count + 1, (m,))

    return Rule(f"momentum_{signal}", init, update)


def adagrad(eps: float = 1e-8) -> Rule:
    """Per-expert adaptive step: G_i += e_i^2, b_i += u e_i / (sqrt(G_i) + eps) (Duchi et al. 2011)."""
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")

    def init(n_experts: int, bias0: ArrayLike | None) -> RuleState:
        s = _init_additive(n_experts, bias0)
        return s._replace(buffers=(np.zeros(n_experts),))

    def update(loads: ArrayLike, state: RuleState, u: float) -> RuleState:
        c = _check_loads(loads, state.bias.shape[0])
        g = load_error(c)
        acc = state.buffers[0] + g * g
        return RuleState(
            state.bias + _check_step(u) * g / (np.sqrt(acc) + eps), state.count + 1, (acc,)
        )

    return Rule("adagrad", init, update)


RULES: dict[str, Callable[..., Rule]] = {
    "sign": sign,
    "proportional": proportional,
    "multiplicative": multiplicative,
    "centered_sign": lambda: centered(sign()),
    "centered_proportional": lambda: centered(proportional()),
    "momentum": momentum,
    "adagrad": adagrad,
}


def make_rule(name: str, **kwargs: float | str) -> Rule:
    """Build a rule by name (``RULES``); unknown names raise with the allowed list."""
    if name not in RULES:
        raise ValueError(f"rule must be one of {', '.join(sorted(RULES))}; got {name!r}")
    try:
        return RULES[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f"rule {name!r}: {exc}") from None
