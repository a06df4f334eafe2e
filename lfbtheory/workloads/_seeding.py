"""SeedSequence helpers: every random stream of a workload is a named child of the seed.

A stream with key ``key`` is ``SeedSequence(entropy, spawn_key=seed.spawn_key + key)``: what
``SeedSequence.spawn`` makes, but addressed by name instead of by call order and without
mutating the parent, so sub-streams never depend on call order or global state and the same
seed gives bit-identical batches (numpy's recommended parallel-stream construction).
"""

from __future__ import annotations

import numbers

import numpy as np

from lfbtheory.validation import as_int

__all__ = [
    "Seed",
    "seed_sequence",
    "child",
    "rng",
    "seed_key",
    "as_steps",
    "OFFSETS",
    "NOISE",
    "DRIFT",
    "TOPICS",
    "COMPLETION",
]

Seed = int | np.random.SeedSequence

# Child stream keys (spawn_key suffixes). Fixed numbers, chosen once in v0.1 and frozen since
# (changing one changes every stream): e.g. Drifting(drift=0) reproduces Stationary with the
# same seed bit for bit, and replay completions do not depend on n.
OFFSETS, NOISE, DRIFT, TOPICS, COMPLETION = 0, 1, 2, 3, 4


def seed_sequence(seed: object, name: str = "seed") -> np.random.SeedSequence:
    """``seed`` (a non-negative int or a SeedSequence) as a SeedSequence.

    TypeError for any other type (bools and floats included), ValueError for a negative int.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be a non-negative int or a numpy.random.SeedSequence, got {seed!r}"
        )
    if int(seed) < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed}")
    return np.random.SeedSequence(int(seed))


def child(ss: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """The child of ``ss`` with spawn key ``ss.spawn_key + key``."""
    return np.random.SeedSequence(
        ss.entropy, spawn_key=(*ss.spawn_key, *key), pool_size=ss.pool_size
    )


def rng(ss: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """``default_rng`` (PCG64) of the child stream ``key`` of ``ss``."""
    return np.random.default_rng(child(ss, *key))


def seed_key(ss: np.random.SeedSequence) -> tuple[object, ...]:
    """A hashable key identifying ``ss`` (entropy, spawn_key, pool_size), for caches."""
    ent = ss.entropy
    ent_key = tuple(int(v) for v in ent) if isinstance(ent, (list, tuple, np.ndarray)) else ent
    return (ent_key, tuple(int(v) for v in ss.spawn_key), int(ss.pool_size))


def as_steps(steps: object) -> int:
    """The number of batches asked for: an int >= 0."""
    return as_int(steps, "steps", 0)
