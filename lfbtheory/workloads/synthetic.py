"""Synthetic score streams: stationary, Zipf, drifting, clustered (topics), adversarial.

    stationary   x[t,i] = a z_i + sigma eps[t,i],  z_i ~ N(0,1) once per seed, eps ~ N(0,1)
    zipf         x[t,i] = -alpha ln r_i + sigma eps[t,i], r a seeded permutation of 1..E
    drifting     x[t,i] = z_i(t) + sigma eps[t,i], z(t) a random walk / mean-reverting walk /
                 rotation with per-batch rms change ``drift``
    clustered    x[t,i] = c_{j,i} + a z_i + sigma eps[t,i], j a topic drawn per batch or per token
    adversarial  stationary logits + ``strength`` on the experts whose last bias is lowest
                 (adaptive: ``adaptive_batches`` receives the biases; sees only past ones)

scores = gate(x) (:func:`lfbtheory.workloads.base.apply_gate`). Each random ingredient is its
own named child stream of the seed (:mod:`lfbtheory.workloads._seeding`).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.routing import topk_indices
from lfbtheory.validation import as_int, as_real, choice
from lfbtheory.workloads._seeding import (
    DRIFT,
    NOISE,
    OFFSETS,
    TOPICS,
    Seed,
    as_steps,
    rng,
    seed_sequence,
)
from lfbtheory.workloads.base import SyntheticBase, apply_gate, set_field

__all__ = ["Stationary", "Zipf", "Drifting", "Clustered", "Adversarial", "DRIFT_MODES"]

DRIFT_MODES = ("random_walk", "mean_reverting", "rotation")


@dataclass(frozen=True)
class Stationary(SyntheticBase):
    """Gaussian logits with a per-expert popularity offset, i.i.d. over tokens and batches.

    x[t,i] = popularity_scale * z_i + noise_scale * eps[t,i], z_i, eps[t,i] ~ N(0, 1); z drawn
    once per seed (or per ``offset_seed``, so several batch seeds can share one popularity
    profile, e.g. held-out evaluation batches); scores = gate(x).

    Defaults: popularity_scale = noise_scale = 1 (the package's demo instance, n=256, E=16,
    k=2): the popularity spread equals the token noise, so
    plain top-k routing is clearly unbalanced yet every expert still wins some tokens, and
    the balancing prices are O(1) (E=16, k=2, seed 0: expected plain top-k loads from 0.04x
    to 3.1x the balanced load, by :func:`~lfbtheory.workloads.topk_load_shares`).
    gate = "sigmoid" (DeepSeek-V3, the setting of Loss-Free Balancing, arXiv 2408.15664).
    """

    name: ClassVar[str] = "stationary"
    popularity_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        set_field(self, "popularity_scale", as_real(self.popularity_scale, "popularity_scale"))

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        return self.popularity_scale * rng(ss, OFFSETS).standard_normal(self.n_experts)


@dataclass(frozen=True)
class Zipf(SyntheticBase):
    """Zipf-skewed popularity: x[t,i] = -exponent * ln(r_i) + noise_scale * eps[t,i].

    r is a seeded random permutation of the ranks 1..E (so expert index carries no meaning and
    the low-index tie rule favours nobody), hence exp(offset) = r^-exponent: the mean softmax
    numerator of rank r is proportional to r^-exponent (Zipf's law). Default exponent 1
    (classic Zipf), noise_scale 1 (as ``stationary``). For the plain top-k load shares this
    implies, call :func:`~lfbtheory.workloads.topk_load_shares` on :meth:`offsets`.
    """

    name: ClassVar[str] = "zipf"
    exponent: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        set_field(self, "exponent", as_real(self.exponent, "exponent"))

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        ranks = rng(ss, OFFSETS).permutation(self.n_experts) + 1
        return -self.exponent * np.log(ranks.astype(np.float64))


@dataclass(frozen=True)
class Drifting(Stationary):
    """Stationary logits whose popularity offsets z(t) drift; rms change per batch = ``drift``.

    z(0) = popularity_scale * N(0, I) (the ``stationary`` offsets of the same seed), then
      random_walk:     z(t+1) = z(t) + drift * xi_t          (spread grows like drift sqrt t)
      mean_reverting:  z(t+1) = rho z(t) + drift * xi_t,
                       rho = sqrt(1 - (drift / popularity_scale)^2)
                       (AR(1) with stationary std popularity_scale; correlation time
                       ~ 2 popularity_scale^2 / drift^2 batches)
      rotation:        z(t) = popularity_scale (cos(theta t) a + sin(theta t) b), a = z(0) /
                       popularity_scale, b a seeded gaussian vector orthogonal to a with |b| = |a|,
                       theta = drift / (popularity_scale * rms(a)): period 2 pi / theta batches.
    xi_t ~ N(0, I). Default drift 0.01 logit per batch: over a 10^4-batch run the random walk
    moves each offset by ~1 (as much as the initial popularity spread), while the published
    sign rule (u = 1e-3 per batch) can still follow it (net drift 0.01 sqrt(t) < 1e-3 t once
    t > 100). drift = 0 reproduces ``stationary`` bit for bit. Default mode "random_walk":
    the plainest non-stationarity, with no hidden time scale besides ``drift``.
    """

    name: ClassVar[str] = "drifting"
    mode: str = "random_walk"
    drift: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        choice(self.mode, "mode", DRIFT_MODES)
        set_field(self, "drift", as_real(self.drift, "drift"))
        if self.mode != "random_walk" and self.popularity_scale <= 0:
            raise ValueError(f"popularity_scale must be > 0 for mode={self.mode!r}")
        if self.mode == "mean_reverting" and self.drift >= self.popularity_scale:
            raise ValueError(
                f"drift must be < popularity_scale={self.popularity_scale} for "
                f"mode='mean_reverting', got {self.drift}"
            )

    def offset_path(self, steps: int, seed: Seed) -> Iterator[NDArray[np.float64]]:
        """The offsets z(t) (E,) for t = 0..steps-1 (lazily), as used by :meth:`batches`."""
        ss = seed_sequence(seed)
        return self._path(as_steps(steps), self._offset_ss(ss), ss)

    def _path(
        self, steps: int, oss: np.random.SeedSequence, ss: np.random.SeedSequence
    ) -> Iterator[NDArray[np.float64]]:
        z = self._offsets(oss)
        if self.mode == "rotation":
            a = z / self.popularity_scale
            b = rng(oss, DRIFT).standard_normal(self.n_experts)
            b = b - (b @ a) / (a @ a) * a
            b *= np.linalg.norm(a) / np.linalg.norm(b)
            theta = self.drift / (self.popularity_scale * np.sqrt(np.mean(a * a)))
            for t in range(steps):
                yield self.popularity_scale * (np.cos(theta * t) * a + np.sin(theta * t) * b)
            return
        walk = rng(ss, DRIFT)
        rho = (
            1.0
            if self.mode == "random_walk"
            else math.sqrt(1.0 - (self.drift / self.popularity_scale) ** 2)
        )
        for _ in range(steps):
            yield z
            z = rho * z + self.drift * walk.standard_normal(self.n_experts)

    def _stream(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        noise = rng(ss, NOISE)
        for z in self._path(steps, self._offset_ss(ss), ss):
            x = z + self.noise_scale * noise.standard_normal((self.n, self.n_experts))
            yield apply_gate(x, self.gate)


@dataclass(frozen=True)
class Clustered(Stationary):
    """Topics: logits x[t] = c_j + popularity_scale z + noise_scale eps[t], topic j ~ weights.

    C = n_topics centroids c_j = topic_scale * N(0, I_E) drawn once per seed (with the offsets);
    ``per="batch"``: one topic for the whole batch (domain-homogeneous batches: each batch has
    its own balancing price, the hardest case for a single bias); ``per="token"``: each token
    draws its own topic (a stationary mixture). Defaults: 4 topics (a handful of text domains,
    as in the OLMoE routing analysis, arXiv 2409.02060 Sec. 5), topic_scale 1 (each topic as
    skewed as ``stationary``), popularity_scale 0 (no skew shared by all topics), uniform topic
    weights, per="batch". ``topic_weights`` (any sequence) is stored normalised, as a tuple.
    """

    name: ClassVar[str] = "clustered"
    popularity_scale: float = 0.0
    n_topics: int = 4
    topic_scale: float = 1.0
    per: str = "batch"
    topic_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        set_field(self, "n_topics", as_int(self.n_topics, "n_topics", 1))
        set_field(self, "topic_scale", as_real(self.topic_scale, "topic_scale"))
        choice(self.per, "per", ("batch", "token"))
        if self.topic_weights is not None:
            try:
                w = np.asarray(self.topic_weights, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(
                    f"topic_weights must be a sequence of {self.n_topics} real numbers, got "
                    f"{self.topic_weights!r}"
                ) from None
            if (
                w.shape != (self.n_topics,)
                or not np.all(np.isfinite(w))
                or np.any(w < 0)
                or w.sum() <= 0
            ):
                raise ValueError(
                    f"topic_weights must be {self.n_topics} non-negative finite numbers with a "
                    f"positive sum (one per topic), got {self.topic_weights!r}"
                )
            set_field(self, "topic_weights", tuple(float(v) for v in w / w.sum()))

    def centroids(self, seed: Seed) -> NDArray[np.float64]:
        """The (C, E) topic centroids of this seed's stream."""
        return self._centroids(self._offset_ss(seed_sequence(seed)))

    def _centroids(self, oss: np.random.SeedSequence) -> NDArray[np.float64]:
        return self.topic_scale * rng(oss, TOPICS, 0).standard_normal(
            (self.n_topics, self.n_experts)
        )

    def topics(self, steps: int, seed: Seed) -> Iterator[NDArray[np.int64]]:
        """The topic ids used by :meth:`batches`: (1,) per batch or (n,) per token, lazily."""
        return self._topics(as_steps(steps), seed_sequence(seed))

    def _topics(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.int64]]:
        draw = rng(ss, TOPICS, 1)
        p = None if self.topic_weights is None else np.asarray(self.topic_weights)
        size = 1 if self.per == "batch" else self.n
        for _ in range(steps):
            yield draw.choice(self.n_topics, size=size, p=p).astype(np.int64)

    def _stream(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        oss = self._offset_ss(ss)
        z = self._offsets(oss)
        cents = self._centroids(oss)
        noise = rng(ss, NOISE)
        for topic in self._topics(steps, ss):
            eps = noise.standard_normal((self.n, self.n_experts))
            x = cents[topic] + z + self.noise_scale * eps
            yield apply_gate(x, self.gate)


# The adversary's boost is bounded by 10 logits: +10 already ranks the targets above every
# other expert for virtually every token at default scales, and stays far from the +-30 clip.
MAX_STRENGTH = 10.0


@dataclass(frozen=True)
class Adversarial(Stationary):
    """An adaptive adversary that sees only past biases (adaptive = True).

    Protocol: ``gen = w.adaptive_batches(steps, seed)``; ``next(gen)`` gives batch 0; for
    t = 1..steps-1, ``gen.send(bias_used_for_batch_{t-1})`` gives batch t (``None`` means "no new
    bias", the last one is kept). So batch t is a function of the seed and p_0..p_{t-1} only:
    the adaptive (non-oblivious) adversary of online learning and online convex optimisation
    (Cesa-Bianchi & Lugosi, Prediction, Learning, and Games, 2006, Ch. 4, oblivious vs
    non-oblivious opponents; Hazan, Introduction to Online Convex Optimization, arXiv
    1909.05207, Ch. 1), which may react to the learner's past plays but not to its current one.

    Strategy: the ``stationary`` logits of the same seed, plus ``strength`` on the logits of
    the ``n_targets`` experts whose latest bias is lowest (ties: lower index), i.e. the experts
    the balancer is currently pushing down as overloaded get more popular still. The boost
    acts on logits, so scores stay in the gate's range ((0,1) for sigmoid, the simplex for
    softmax); strength is bounded by MAX_STRENGTH = 10 logits. Before any bias is sent the
    bias is taken as 0 (targets: experts 0..n_targets-1). Defaults: strength 2 (twice the
    popularity spread: a boosted expert lands in most tokens' top-k -- measured for seed 0 on
    20,000 tokens: 95% of tokens at E=16, k=2 and 100% at E=64, k=8), n_targets =
    max(1, E // 8) (with k = E/8, as in OLMoE's 64 experts / top-8, as many experts as each
    token picks).

    ``batches(steps, seed, biases=None)`` regenerates the stream non-adaptively: with a
    recorded (steps, E) bias trajectory (row t routed batch t) it reproduces exactly the
    batches the adaptive run produced (use this, not biases=None, for hindsight comparators);
    with biases=None it is the adversary's response to a bias that stays 0.
    """

    name: ClassVar[str] = "adversarial"
    adaptive: ClassVar[bool] = True
    strength: float = 2.0
    n_targets: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        set_field(self, "strength", as_real(self.strength, "strength", hi=MAX_STRENGTH))
        m = max(1, self.n_experts // 8) if self.n_targets is None else self.n_targets
        set_field(self, "n_targets", as_int(m, "n_targets", 1, self.n_experts - 1))

    def targets(self, bias: ArrayLike) -> NDArray[np.int64]:
        """The experts boosted after seeing ``bias``: the n_targets lowest (ties: lower index)."""
        b = self._check_bias(bias)
        return topk_indices(-b[None, :], int(self.n_targets or 1))[0]

    def _check_bias(self, bias: object) -> NDArray[np.float64]:
        b = np.asarray(bias, dtype=np.float64)
        if b.shape != (self.n_experts,) or not np.all(np.isfinite(b)):
            raise ValueError(
                f"bias sent to the adversary must be a finite array of shape (E,) = "
                f"({self.n_experts},), got shape {b.shape}"
            )
        return b

    def _base(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        z = self._offsets(self._offset_ss(ss))
        noise = rng(ss, NOISE)
        for _ in range(steps):
            yield z + self.noise_scale * noise.standard_normal((self.n, self.n_experts))

    def _attack(
        self, logits: NDArray[np.float64], bias: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        x = logits.copy()
        x[:, self.targets(bias)] += self.strength
        return apply_gate(x, self.gate)

    def adaptive_batches(
        self, steps: int, seed: Seed
    ) -> Generator[NDArray[np.float64], NDArray[np.float64] | None, None]:
        """The adaptive stream: prime with next(), then send the bias used for the last batch."""
        steps = as_steps(steps)
        ss = seed_sequence(seed)

        def gen() -> Generator[NDArray[np.float64], NDArray[np.float64] | None, None]:
            bias = np.zeros(self.n_experts)
            for logits in self._base(steps, ss):
                sent = yield self._attack(logits, bias)
                if sent is not None:
                    bias = self._check_bias(sent).copy()

        return gen()

    def batches(
        self, steps: int, seed: Seed, *, biases: ArrayLike | None = None
    ) -> Iterator[NDArray[np.float64]]:
        """Non-adaptive regeneration: batch t answers biases[t-1] (zeros when biases is None)."""
        steps = as_steps(steps)
        ss = seed_sequence(seed)
        if biases is not None:
            b = np.asarray(biases, dtype=np.float64)
            if b.ndim != 2 or b.shape[1] != self.n_experts or b.shape[0] < steps - 1:
                raise ValueError(
                    f"biases must have shape (T, E={self.n_experts}) with T >= steps - 1 = "
                    f"{steps - 1} (row t is the bias that routed batch t), got {b.shape}"
                )

        def gen() -> Iterator[NDArray[np.float64]]:
            bias = np.zeros(self.n_experts)
            for t, logits in enumerate(self._base(steps, ss)):
                if biases is not None and t > 0:
                    bias = self._check_bias(b[t - 1])
                yield self._attack(logits, bias)

        return gen()
