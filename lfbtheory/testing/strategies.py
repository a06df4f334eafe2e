"""Hypothesis strategies for routing and assignment instances (public, for users' own tests).

Keyword-only factories built on ``hypothesis.extra.numpy.arrays`` with bounded finite floats;
valid instances are built directly (no ``assume``), in the style of xarray's strategies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["Instance", "scores", "biases", "instances", "balanced_instances"]


@dataclass(frozen=True)
class Instance:
    """A routing instance: scores (n, E), k, and (optionally) groups."""

    scores: np.ndarray
    k: int
    n_groups: int | None = None
    topk_groups: int | None = None


_DEFAULT_N = st.integers(1, 24)
_DEFAULT_E = st.integers(2, 12)


def scores(
    *,
    n: st.SearchStrategy[int] | int = _DEFAULT_N,
    n_experts: st.SearchStrategy[int] | int = _DEFAULT_E,
    min_value: float = -4.0,
    max_value: float = 4.0,
    ties: bool = True,
) -> st.SearchStrategy[np.ndarray]:
    """(n, E) float64 score matrices; with ``ties`` some are drawn from a few repeated values."""

    @st.composite
    def build(draw: st.DrawFn) -> np.ndarray:
        rows = n if isinstance(n, int) else draw(n)
        cols = n_experts if isinstance(n_experts, int) else draw(n_experts)
        if ties and draw(st.booleans()):
            # Integer-valued scores on a small range: heavy ties.
            return draw(
                hnp.arrays(np.float64, (rows, cols), elements=st.integers(-2, 2).map(float))
            )
        return draw(
            hnp.arrays(
                np.float64,
                (rows, cols),
                elements=st.floats(
                    min_value, max_value, allow_nan=False, allow_infinity=False, width=64
                ),
            )
        )

    return build()


def biases(n_experts: int, *, magnitude: float = 4.0) -> st.SearchStrategy[np.ndarray]:
    """(E,) float64 bias vectors with entries in [-magnitude, magnitude]."""
    return hnp.arrays(
        np.float64,
        (n_experts,),
        elements=st.floats(-magnitude, magnitude, allow_nan=False, width=64),
    )


@st.composite
def instances(
    draw: st.DrawFn, *, max_n: int = 24, max_experts: int = 12, groups: bool = False
) -> Instance:
    """A valid routing instance; with ``groups`` also a group count dividing E and topk_groups."""
    e = draw(st.integers(2, max_experts))
    s = draw(scores(n=st.integers(1, max_n), n_experts=e))
    if groups:
        divisors = [g for g in range(1, e + 1) if e % g == 0]
        g = draw(st.sampled_from(divisors))
        tg = draw(st.integers(1, g))
        k = draw(st.integers(1, tg * (e // g)))
        return Instance(s, k, g, tg)
    return Instance(s, draw(st.integers(1, e)))


@st.composite
def balanced_instances(draw: st.DrawFn, *, max_n: int = 16, max_experts: int = 6) -> Instance:
    """An instance whose n*k is divisible by E, so the default capacity L = n*k/E exists."""
    e = draw(st.integers(1, max_experts))
    k = draw(st.integers(1, e))
    # n must be a multiple of E / gcd(E, k)
    step = e // math.gcd(e, k)
    m = draw(st.integers(1, max(1, max_n // step)))
    return Instance(draw(scores(n=int(m * step), n_experts=e)), k)
