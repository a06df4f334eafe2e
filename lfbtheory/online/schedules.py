"""Step-size schedules: each is a ``Callable[[int], float]`` mapping the update count t >= 0 to u_t.

Factories validate their arguments once and return the schedule as data, a frozen dataclass
that is called like a function (the optax style, ``optax/schedules/_schedule.py``, with
parameters that can be recorded: :func:`to_json`). Any other callable int -> float works
too wherever a schedule is taken. The textbook rates of online dual descent
(Zinkevich 2003; Hazan, "Introduction to Online Convex Optimization", Sec. 3.1-3.3):
constant -> linear regret, c/sqrt(t) -> O(sqrt T), c/(mu t) under mu-strong convexity -> O(log T).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Schedule = Callable[[int], float]

__all__ = [
    "Schedule",
    "Constant",
    "Inverse",
    "InverseSqrt",
    "Polynomial",
    "Cosine",
    "Ramp",
    "Join",
    "to_json",
    "constant",
    "inverse",
    "inverse_sqrt",
    "polynomial",
    "cosine",
    "warmup",
    "join",
    "deepseek_v3",
    "make_schedule",
    "SCHEDULES",
]


def _positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        rng = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {rng}, got {value!r}")
    return v


def _step(t: int) -> int:
    if type(t) is int and t >= 0:  # the common case, without the abstract-class check
        return t
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"schedule step t must be an integer >= 0, got {t!r}")
    if t < 0:
        raise ValueError(f"schedule step t must be >= 0, got {t}")
    return int(t)


@dataclass(frozen=True)
class Constant:
    """u_t = rate (the published rule uses 1e-3; arXiv 2408.15664 Sec. 3)."""

    rate: float

    def __call__(self, t: int) -> float:
        _step(t)
        return self.rate


@dataclass(frozen=True)
class Inverse:
    """u_t = c / (t + t0): the 1/(mu t) family, O(log T) regret under mu-strong convexity."""

    c: float
    t0: float = 1.0

    def __call__(self, t: int) -> float:
        return self.c / (_step(t) + self.t0)


@dataclass(frozen=True)
class InverseSqrt:
    """u_t = c / sqrt(t + t0): O(sqrt T) regret for convex Lipschitz losses (Zinkevich 2003)."""

    c: float
    t0: float = 1.0

    def __call__(self, t: int) -> float:
        return self.c / math.sqrt(_step(t) + self.t0)


@dataclass(frozen=True)
class Polynomial:
    """u_t = c / (t + t0)^power, power in (0, 1] (interpolates inverse_sqrt and inverse)."""

    c: float
    power: float
    t0: float = 1.0

    def __call__(self, t: int) -> float:
        return self.c / (_step(t) + self.t0) ** self.power


@dataclass(frozen=True)
class Cosine:
    """u_t = final + (rate - final) (1 + cos(pi min(t, T)/T)) / 2 (Loshchilov & Hutter 2017)."""

    rate: float
    decay_steps: int
    final: float = 0.0

    def __call__(self, t: int) -> float:
        frac = min(_step(t), self.decay_steps) / self.decay_steps
        return self.final + (self.rate - self.final) * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass(frozen=True)
class Ramp:
    """u_t = rate (t + 1) / steps: the linear part of a warm-up."""

    rate: float
    steps: int

    def __call__(self, t: int) -> float:
        return self.rate * (_step(t) + 1) / self.steps


@dataclass(frozen=True)
class Join:
    """Piecewise: ``schedules[i]`` from boundaries[i-1] on, restarted at 0 there (optax's
    join_schedules)."""

    schedules: tuple[Schedule, ...]
    boundaries: tuple[int, ...]

    def __call__(self, t: int) -> float:
        _step(t)
        start = 0
        for sched, b in zip(self.schedules, self.boundaries, strict=False):
            if t < b:
                return float(sched(t - start))
            start = b
        return float(self.schedules[-1](t - start))


def to_json(schedule: Schedule) -> dict[str, object]:
    """A schedule as data: ``{"schedule": name, **parameters}`` for the built-in ones (a
    join nests its parts); a schedule of the user's own is recorded by its repr."""
    if isinstance(schedule, Join):
        return {
            "schedule": "join",
            "schedules": [to_json(s) for s in schedule.schedules],
            "boundaries": list(schedule.boundaries),
        }
    if dataclasses.is_dataclass(schedule) and type(schedule).__module__ == __name__:
        return {"schedule": type(schedule).__name__.lower(), **dataclasses.asdict(schedule)}
    return {"schedule": "callable", "repr": repr(schedule)}


def constant(rate: float) -> Schedule:
    """u_t = rate (the published rule uses 1e-3; arXiv 2408.15664 Sec. 3)."""
    return Constant(_positive(rate, "rate", allow_zero=True))


def inverse(c: float, t0: float = 1.0) -> Schedule:
    """u_t = c / (t + t0): the 1/(mu t) family, O(log T) regret under mu-strong convexity."""
    return Inverse(_positive(c, "c"), _positive(t0, "t0"))


def inverse_sqrt(c: float, t0: float = 1.0) -> Schedule:
    """u_t = c / sqrt(t + t0): O(sqrt T) regret for convex Lipschitz losses (Zinkevich 2003)."""
    return InverseSqrt(_positive(c, "c"), _positive(t0, "t0"))


def polynomial(c: float, power: float, t0: float = 1.0) -> Schedule:
    """u_t = c / (t + t0)^power, power in (0, 1] (interpolates inverse_sqrt and inverse)."""
    c = _positive(c, "c")
    power = _positive(power, "power")
    if power > 1:
        raise ValueError(f"power must be in (0, 1], got {power}")
    return Polynomial(c, power, _positive(t0, "t0"))


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def cosine(rate: float, decay_steps: int, final: float = 0.0) -> Schedule:
    """u_t = final + (rate - final) (1 + cos(pi min(t, T)/T)) / 2 (Loshchilov & Hutter 2017)."""
    rate = _positive(rate, "rate", allow_zero=True)
    final = _positive(final, "final", allow_zero=True)
    return Cosine(rate, _count(decay_steps, "decay_steps"), final)


def warmup(rate: float, warmup_steps: int, then: Schedule | None = None) -> Schedule:
    """Linear warm-up u_t = rate (t + 1) / W for t < W, then ``then(t - W)`` (default constant)."""
    rate = _positive(rate, "rate", allow_zero=True)
    w = _count(warmup_steps, "warmup_steps")
    after = constant(rate) if then is None else then
    if not callable(after):
        raise TypeError("then must be a schedule (a callable int -> float)")
    return join([Ramp(rate, w), after], [w])


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Piecewise schedule: ``schedules[i]`` from boundaries[i-1], restarted at 0 there
    (optax's join_schedules)."""
    schedules = list(schedules)
    boundaries = [int(b) for b in boundaries]
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(
            f"join needs len(schedules) == len(boundaries) + 1, got {len(schedules)} and "
            f"{len(boundaries)}"
        )
    if any(b < 1 for b in boundaries) or boundaries != sorted(set(boundaries)):
        raise ValueError(f"boundaries must be strictly increasing integers >= 1, got {boundaries}")
    if not all(callable(s) for s in schedules):
        raise TypeError("every element of schedules must be callable int -> float")
    return Join(tuple(schedules), tuple(boundaries))


def deepseek_v3(rate: float = 1e-3, stop_step: int = 10**9) -> Schedule:
    """u_t = rate for t < stop_step, then 0 (DeepSeek-V3, arXiv 2412.19437 Sec. 4.2: 0.001 for
    the first 14.3T tokens, then 0.0)."""
    return join([constant(rate), constant(0.0)], [_count(stop_step, "stop_step")])


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "constant": constant,
    "inverse": inverse,
    "inverse_sqrt": inverse_sqrt,
    "polynomial": polynomial,
    "cosine": cosine,
    "warmup": warmup,
    "deepseek_v3": deepseek_v3,
}


def make_schedule(name: str, **kwargs: float) -> Schedule:
    """Build a schedule by name (``SCHEDULES``); unknown names raise with the allowed list."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(sorted(SCHEDULES))}; got {name!r}")
    try:
        return SCHEDULES[name](**kwargs)
    except TypeError as exc:
        raise TypeError(f"schedule {name!r}: {exc}") from None
