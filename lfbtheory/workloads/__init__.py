"""Seeded, lazy streams of router score batches (n, E) for the online bias experiments.

Every workload is a frozen dataclass (the whole config, hashable, JSON-able through
:meth:`config`) with ``batches(steps, seed) -> Iterator[np.ndarray]`` yielding ``steps``
float64 arrays of shape (n, E), one at a time (a 10^9-step stream costs one batch of memory).
All randomness comes from ``np.random.default_rng(SeedSequence(...))`` built from ``seed``;
independent sub-streams (offsets, noise, drift, topics, completion) are children
``SeedSequence(entropy, spawn_key=seed_spawn_key + (stream,))`` so they never depend on call
order or global state, and the same seed gives bit-identical batches.

Synthetic workloads draw logits and apply a gate (arXiv 2412.19437 Sec. 2.1.2 for sigmoid,
Switch/GShard for softmax):

    stationary   x[t,i] = a z_i + sigma eps[t,i],  z_i ~ N(0,1) once per seed, eps ~ N(0,1)
    zipf         x[t,i] = -alpha ln r_i + sigma eps[t,i], r a seeded permutation of 1..E
    olmoe        x[t,i] = sigma (w_i + eps[t,i]),  w fitted so plain top-k load shares equal
                 a measured OLMoE/Mixtral histogram (arXiv 2409.02060 Sec. 5; see
                 :func:`fit_popularity_offsets`)
    drifting     x[t,i] = z_i(t) + sigma eps[t,i], z(t) a random walk / mean-reverting walk /
                 rotation with per-batch rms change ``drift``
    clustered    x[t,i] = c_{j,i} + a z_i + sigma eps[t,i], j a topic drawn per batch or per token
    adversarial  stationary logits + ``strength`` on the experts whose last bias is lowest
                 (adaptive: ``adaptive_batches`` receives the biases; sees only past ones)
    replay       recorded router scores (FLAME-MoE top-6 traces, completed; or any .npy/.npz)

scores = sigmoid(x) (``gate="sigmoid"``, DeepSeek-V3) or softmax over experts
(``gate="softmax"``). Sigmoid logits are clipped to [-30, 30] so every score lies strictly
inside (0, 1) in float64 (sigmoid(30) = 1 - 9.4e-14); the clip is never reached with the
default scales (|x| < 12 with overwhelming probability).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, ndtr, ndtri

from lfbtheory.routing import sigmoid, softmax, topk_indices
from lfbtheory.workloads.trace import TraceWorkload

__all__ = [
    "Workload",
    "Stationary",
    "Zipf",
    "OlmoeMatched",
    "Drifting",
    "Clustered",
    "Adversarial",
    "Replay",
    "PopularityFit",
    "WORKLOADS",
    "GATES",
    "DataNotFoundError",
    "FLAME_FILE",
    "HISTOGRAM_FILE",
    "make_workload",
    "materialize",
    "replay",
    "data_dir",
    "topk_load_shares",
    "fit_popularity_offsets",
]

GATES = ("sigmoid", "softmax")
LOGIT_CLIP = 30.0
FLAME_FILE = "flame_moe_290m_iter5473_prefill_32x64_layers2-9_top6.npz"
HISTOGRAM_FILE = "olmoe_mixtral_expert_load_histograms.npz"
MATERIALIZE_LIMIT_BYTES = 2**30  # materialize() refuses streams larger than 1 GiB

# Child stream keys (spawn_key suffixes). Fixed numbers, so e.g. Drifting(drift=0) reproduces
# Stationary with the same seed bit for bit, and replay completions do not depend on n.
_OFFSETS, _NOISE, _DRIFT, _TOPICS, _COMPLETION = 0, 1, 2, 3, 4


# --------------------------------------------------------------------------------------------
# Errors, seeds, small validators
# --------------------------------------------------------------------------------------------


class DataNotFoundError(FileNotFoundError, ValueError):
    """A data file or the shared data folder is missing (both a FileNotFoundError and a
    ValueError, so CLIs that report ValueErrors show its message)."""


Seed = int | np.random.SeedSequence


def _seed_sequence(seed: object, name: str = "seed") -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be a non-negative int or a numpy.random.SeedSequence, got {seed!r}"
        )
    if int(seed) < 0:
        raise ValueError(f"{name} must be a non-negative int, got {seed}")
    return np.random.SeedSequence(int(seed))


def _child(ss: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """The child of ``ss`` with spawn key ``ss.spawn_key + key`` (what ss.spawn makes, but
    addressed by name instead of by call order, and without mutating ``ss``)."""
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, *key),
                                  pool_size=ss.pool_size)


def _rng(ss: np.random.SeedSequence, *key: int) -> np.random.Generator:
    return np.random.default_rng(_child(ss, *key))


def _int(value: object, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, got {v}")
    return v


def _real(value: object, name: str, lo: float = 0.0, *, strict: bool = False,
          hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    bad = (not math.isfinite(v)) or (v <= lo if strict else v < lo) or (hi is not None and v > hi)
    if bad:
        rng = f"{'>' if strict else '>='} {lo}" + (f" and <= {hi}" if hi is not None else "")
        raise ValueError(f"{name} must be finite and {rng}, got {value!r}")
    return v


def _choice(value: object, name: str, allowed: Iterable[object]) -> Any:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _steps(steps: object) -> int:
    return _int(steps, "steps", 0)


def _apply_gate(logits: NDArray[np.float64], gate: str) -> NDArray[np.float64]:
    if gate == "sigmoid":  # scipy's stable logistic: equals routing.sigmoid to 1 ulp, 3x faster
        return expit(np.clip(logits, -LOGIT_CLIP, LOGIT_CLIP))
    return softmax(logits, axis=1)


def _frozen(arr: NDArray[np.float64]) -> NDArray[np.float64]:
    arr.flags.writeable = False
    return arr


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)  # normalising fields of a frozen dataclass


@runtime_checkable
class Workload(Protocol):
    """What the online loop relies on: n, n_experts, adaptive, batches(steps, seed)."""

    n: int
    n_experts: int
    adaptive: ClassVar[bool]

    def batches(self, steps: int, seed: Seed) -> Iterator[NDArray[np.float64]]: ...

    def config(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class _Synthetic:
    """Common fields: batch size n, experts E, gate, noise scale, optional offset seed."""

    name: ClassVar[str] = ""
    adaptive: ClassVar[bool] = False

    n: int
    n_experts: int
    gate: str = "sigmoid"
    noise_scale: float = 1.0
    offset_seed: int | None = None

    def __post_init__(self) -> None:
        _set(self, "n", _int(self.n, "n", 1))
        _set(self, "n_experts", _int(self.n_experts, "n_experts", 2))
        _choice(self.gate, "gate", GATES)
        _set(self, "noise_scale", _real(self.noise_scale, "noise_scale", 0.0, strict=True))
        if self.offset_seed is not None:
            _set(self, "offset_seed", _int(self.offset_seed, "offset_seed", 0))

    def config(self) -> dict[str, Any]:
        """Everything ``make_workload(**config)`` needs to rebuild this workload."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def _offset_ss(self, ss: np.random.SeedSequence) -> np.random.SeedSequence:
        return ss if self.offset_seed is None else np.random.SeedSequence(self.offset_seed)

    def offsets(self, seed: Seed) -> NDArray[np.float64]:
        """The per-expert logit offsets (E,) this seed's stream uses (at t = 0)."""
        return self._offsets(self._offset_ss(_seed_sequence(seed)))

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        raise NotImplementedError

    def batches(self, steps: int, seed: Seed) -> Iterator[NDArray[np.float64]]:
        """Yield ``steps`` score batches (n, E), lazily; same seed -> identical batches."""
        steps = _steps(steps)
        ss = _seed_sequence(seed)
        return self._stream(steps, ss)

    def _stream(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        z = self._offsets(self._offset_ss(ss))
        noise = _rng(ss, _NOISE)
        for _ in range(steps):
            x = z + self.noise_scale * noise.standard_normal((self.n, self.n_experts))
            yield _apply_gate(x, self.gate)


# --------------------------------------------------------------------------------------------
# Stationary and Zipf
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stationary(_Synthetic):
    """Gaussian logits with a per-expert popularity offset, i.i.d. over tokens and batches.

    x[t,i] = popularity_scale * z_i + noise_scale * eps[t,i], z_i, eps[t,i] ~ N(0, 1); z drawn
    once per seed (or per ``offset_seed``, so several batch seeds can share one popularity
    profile, e.g. held-out evaluation batches); scores = gate(x).

    Defaults: popularity_scale = noise_scale = 1 (the foundation demo's instance and the
    DESIGN.md example, n=256, E=16, k=2): the popularity spread equals the token noise, so
    plain top-k routing is clearly unbalanced yet every expert still wins some tokens, and
    the balancing prices are O(1) (E=16, k=2, seed 0: expected plain top-k loads from 0.04x
    to 3.1x the balanced load, by :func:`topk_load_shares`).
    gate = "sigmoid" (DeepSeek-V3, the setting of Loss-Free Balancing, arXiv 2408.15664).
    """

    name: ClassVar[str] = "stationary"
    popularity_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "popularity_scale", _real(self.popularity_scale, "popularity_scale"))

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        return self.popularity_scale * _rng(ss, _OFFSETS).standard_normal(self.n_experts)


@dataclass(frozen=True)
class Zipf(_Synthetic):
    """Zipf-skewed popularity: x[t,i] = -exponent * ln(r_i) + noise_scale * eps[t,i].

    r is a seeded random permutation of the ranks 1..E (so expert index carries no meaning and
    the low-index tie rule favours nobody), hence exp(offset) = r^-exponent: the mean softmax
    numerator of rank r is proportional to r^-exponent (Zipf's law). Default exponent 1
    (classic Zipf), noise_scale 1 (as ``stationary``). For the plain top-k load shares this
    implies, call :func:`topk_load_shares` on :meth:`offsets` (E=16, k=2: the rank-1 expert
    gets 5.5x its balanced load and the last 0.09x; E=64, k=8: 7.6x, like OLMoE arxiv).
    """

    name: ClassVar[str] = "zipf"
    exponent: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "exponent", _real(self.exponent, "exponent"))

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        ranks = _rng(ss, _OFFSETS).permutation(self.n_experts) + 1
        return -self.exponent * np.log(ranks.astype(np.float64))


# --------------------------------------------------------------------------------------------
# Exact expected top-k load shares and the histogram fit
# --------------------------------------------------------------------------------------------

_GRID_STEP = 0.1  # trapezoid step in noise units (vs step 0.05: shares differ by < 1e-13)
_GRID_PAD = 9.0   # integrate over [min w - 9, max w + 9]: the gaussian tails beyond are < 1e-18


def _selection_probs(w: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """P(i in TopK(w + eps)), eps ~ N(0, I), exact up to quadrature error.

    P_i = int phi(x - w_i) P(#{j != i : w_j + eps_j > x} <= k - 1) dx; the count of the
    independent others above x is Poisson-binomial, computed by the usual dynamic program
    truncated at k states, for all i at once (i is left out by giving it probability 0). The
    integrand is analytic and decays like a gaussian, so the trapezoid rule on a uniform grid
    converges geometrically: on the OLMoE fits (E=64, k=8) steps 0.1 and 0.05 agree to 2e-14.
    """
    e = w.shape[0]
    x = np.arange(w.min() - _GRID_PAD, w.max() + _GRID_PAD + _GRID_STEP, _GRID_STEP)
    above = ndtr(w[None, :] - x[:, None])  # (G, E): P(w_j + eps_j > x)
    dist = np.zeros((e, x.size, k))
    dist[:, :, 0] = 1.0
    for j in range(e):
        q = np.broadcast_to(above[:, j], (e, x.size)).copy()
        q[j] = 0.0  # leave expert j out of its own count
        q = q[:, :, None]
        new = dist * (1.0 - q)
        new[:, :, 1:] += dist[:, :, :-1] * q
        dist = new
    dens = np.exp(-0.5 * (x[None, :] - w[:, None]) ** 2) / math.sqrt(2.0 * math.pi)
    return _GRID_STEP * np.sum(dens * dist.sum(axis=2), axis=1)


def topk_load_shares(offsets: ArrayLike, k: int, noise_scale: float = 1.0) -> NDArray[np.float64]:
    """Expected load shares E[c_i] / (n k) of plain top-k of offsets + noise_scale * N(0, I).

    Exact up to quadrature error (see ``_selection_probs``); the shares sum to 1.
    The gate does not matter: sigmoid and softmax are monotone in the logits, so top-k of the
    scores is top-k of the logits.
    """
    w = np.asarray(offsets, dtype=np.float64)
    if w.ndim != 1 or w.size < 2 or not np.all(np.isfinite(w)):
        raise ValueError(f"offsets must be a finite 1-D array of E >= 2 values, got {w.shape}")
    k = _int(k, "k", 1, w.size)
    sigma = _real(noise_scale, "noise_scale", 0.0, strict=True)
    return _selection_probs(w / sigma, k) / k


@dataclass(frozen=True)
class PopularityFit:
    """Result of :func:`fit_popularity_offsets`.

    offsets: (E,) logit offsets in units of the noise scale given (mean 0);
    target / achieved: (E,) load shares (achieved = exact expected shares at ``offsets``);
    max_abs_error, max_rel_error: max_i |achieved - target| (/ target); iterations; converged.
    """

    offsets: NDArray[np.float64]
    target: NDArray[np.float64]
    achieved: NDArray[np.float64]
    k: int
    max_abs_error: float
    max_rel_error: float
    iterations: int
    converged: bool


def fit_popularity_offsets(
    target_shares: ArrayLike, k: int, *, noise_scale: float = 1.0, tol: float = 1e-8,
    max_iter: int = 100,
) -> PopularityFit:
    """Logit offsets w with plain top-k load shares of w + noise_scale * N(0, I) equal to target.

    Rule (a probit fixed point, documented and deterministic): with p_i = k * share_i the
    probability that expert i is among a token's top k, start at w = Phi^-1(p*) and iterate

        w <- w + Phi^-1(p*) - Phi^-1(p(w)),   then recentre w to mean 0,

    with p(w) computed exactly (:func:`topk_load_shares`). If the k-th largest competitor were
    a fixed threshold tau, p_i = Phi(w_i - tau) and one step would be exact (Newton); in
    practice the max relative error drops ~50x per step (OLMoE arxiv layer 0, E=64, k=8: 1.9e-2,
    3.0e-4, 5e-6, 8e-8, ...). If an iteration ever increases the error the step is halved.
    Stops when max_i |p_i - p*_i| / p*_i < tol (default 1e-8: far below the sampling error
    of any simulated stream -- a share's relative sd is ~1e-3 even at 10^6 tokens -- and
    reached in 4 steps on OLMoE top-8 histograms (arxiv and c4, layer 0), 12 on a top-1 one;
    max_iter=100 is a safety net). Needs 0 < share_i < 1/k (an expert cannot be chosen by
    more than every token); raises ValueError otherwise.
    """
    s = np.asarray(target_shares, dtype=np.float64)
    if s.ndim != 1 or s.size < 2 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("target_shares must be a 1-D array of E >= 2 positive finite shares")
    s = s / s.sum()
    k = _int(k, "k", 1, s.size)
    sigma = _real(noise_scale, "noise_scale", 0.0, strict=True)
    if np.any(s >= 1.0 / k):
        raise ValueError(
            f"target_shares must be < 1/k = {1.0 / k:.6g} for top-{k} routing (an expert can be "
            f"chosen by at most every token); got max share {s.max():.6g}"
        )
    p_star = k * s
    goal = ndtri(p_star)
    w = goal - goal.mean()
    p = _selection_probs(w, k)
    err = float(np.max(np.abs(p - p_star) / p_star))
    it, damp = 0, 1.0
    while err >= tol and it < max_iter:
        it += 1
        step = goal - ndtri(np.clip(p, 1e-300, 1.0 - 1e-16))
        cand = w + damp * step
        cand -= cand.mean()
        p_c = _selection_probs(cand, k)
        err_c = float(np.max(np.abs(p_c - p_star) / p_star))
        if err_c > err and damp > 1e-3:
            damp *= 0.5
            continue
        w, p, err = cand, p_c, err_c
    achieved = p / k
    for arr in (w, s, achieved):
        arr.flags.writeable = False  # fits are cached and shared: keep them immutable
    return PopularityFit(
        offsets=_frozen(sigma * w), target=s, achieved=achieved, k=k,
        max_abs_error=float(np.max(np.abs(achieved - s))), max_rel_error=err,
        iterations=it, converged=err < tol,
    )


# --------------------------------------------------------------------------------------------
# Shared data
# --------------------------------------------------------------------------------------------


def data_dir() -> Path:
    """The folder of the real routing data shipped with the package (``lfbtheory/data``).

    Its README gives each file's provenance and licence (both sources are Apache-2.0).
    """
    return Path(__file__).resolve().parent.parent / "data"


def _existing(path: object, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{name} must be a file path (str or os.PathLike), got {path!r}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataNotFoundError(
            f"{name}={str(path)!r} does not exist or is not a file"
        )
    return p


# --------------------------------------------------------------------------------------------
# OLMoE / Mixtral matched popularity
# --------------------------------------------------------------------------------------------

_HIST_LAYERS = (0, 7, 15)  # rows of each per-layer histogram array (README of the data)
_HIST_K = {"olmoe": 8, "olmoe-sft": 8, "olmoe-dpo": 8, "mistral": 2}
_HIST_KINDS = ("expert_counts", "expert_counts_top1")
PSEUDO_COUNT = 0.5  # add-half (Jeffreys) smoothing: experts never chosen get a finite offset


@functools.lru_cache(maxsize=64)
def _load_histogram(path: str, key: str, row: int) -> tuple[float, ...]:
    with np.load(path) as data:
        if key not in data.files:
            raise ValueError(f"histogram key {key!r} not in {path}")
        return tuple(float(c) for c in data[key][row])


@functools.lru_cache(maxsize=64)
def _cached_fit(counts: tuple[float, ...], k: int) -> PopularityFit:
    shares = (np.asarray(counts) + PSEUDO_COUNT) / (np.sum(counts) + PSEUDO_COUNT * len(counts))
    return fit_popularity_offsets(shares, k, noise_scale=1.0)


@dataclass(frozen=True)
class OlmoeMatched(_Synthetic):
    """Popularity matched to a measured expert-load histogram (OLMoE, arXiv 2409.02060 Sec. 5).

    x[t,i] = noise_scale * (w_i + eps[t,i]) with w fitted by :func:`fit_popularity_offsets` so
    that plain top-``fit_k`` routing has expected load shares equal to the histogram
    ``{model}/{kind}/{domain}`` row ``layer`` of ``HISTOGRAM_FILE`` (counts + 0.5 each,
    normalised). The fit is deterministic (no seed); the seed drives only the token noise. The
    achieved match is :meth:`fit` (for OLMoE c4 layer 0: max relative error < 1e-8).

    Options: model in olmoe, olmoe-sft, olmoe-dpo (E=64, top-8) or mistral (E=8, top-2);
    layer in 0, 7, 15; domain in arxiv, book, c4, github, wikipedia (olmoe, mistral) or tulu
    (olmoe*); kind "expert_counts" (top-k counts) or "expert_counts_top1" (k=1, not for
    olmoe-sft/dpo). Defaults: olmoe / layer 0 / c4 (the web-text domain closest to the
    pretraining mix; max/mean load 3.0); domain="arxiv" is the most skewed (7.8). ``fit_k``
    (default: the model's k) is the k whose load shares are matched. ``path`` defaults to
    data_dir() / HISTOGRAM_FILE. ``offset_seed`` has no effect (offsets are fitted).
    """

    name: ClassVar[str] = "olmoe"
    model: str = "olmoe"
    layer: int = 0
    domain: str = "c4"
    kind: str = "expert_counts"
    fit_k: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice(self.model, "model", tuple(_HIST_K))
        _choice(self.kind, "kind", _HIST_KINDS)
        _choice(self.layer, "layer", _HIST_LAYERS)
        path = str(_existing(self.path)) if self.path is not None else str(
            _existing(data_dir() / HISTOGRAM_FILE, "path"))
        _set(self, "path", path)
        with np.load(path) as data:
            keys = data.files
        prefix = f"{self.model}/{self.kind}/"
        domains = sorted(key[len(prefix):] for key in keys if key.startswith(prefix))
        if not domains:
            raise ValueError(f"kind={self.kind!r} is not available for model={self.model!r}")
        _choice(self.domain, "domain", domains)
        counts = _load_histogram(path, self.key, _HIST_LAYERS.index(self.layer))
        if len(counts) != self.n_experts:
            raise ValueError(
                f"n_experts={self.n_experts} does not match E={len(counts)} of the "
                f"{self.model!r} histogram (olmoe*: 64 experts, mistral: 8)"
            )
        k = self.default_k if self.fit_k is None else _int(self.fit_k, "fit_k", 1,
                                                            self.n_experts - 1)
        _set(self, "fit_k", k)
        try:
            self.fit()  # fit now (cached): infeasible targets fail at construction, not mid-run
        except ValueError as exc:
            raise ValueError(f"fit_k={k} cannot match the {self.key} histogram: {exc}") from None

    @property
    def key(self) -> str:
        return f"{self.model}/{self.kind}/{self.domain}"

    @property
    def default_k(self) -> int:
        return 1 if self.kind == "expert_counts_top1" else _HIST_K[self.model]

    def histogram(self) -> NDArray[np.float64]:
        """The measured counts (E,) being matched (before the +0.5 smoothing)."""
        assert self.path is not None
        return np.asarray(_load_histogram(self.path, self.key, _HIST_LAYERS.index(self.layer)))

    def fit(self) -> PopularityFit:
        """The fitted offsets (in noise units) and the achieved match (cached)."""
        assert self.fit_k is not None
        return _cached_fit(tuple(self.histogram()), int(self.fit_k))

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        return self.noise_scale * self.fit().offsets


# --------------------------------------------------------------------------------------------
# Drifting and clustered
# --------------------------------------------------------------------------------------------

DRIFT_MODES = ("random_walk", "mean_reverting", "rotation")


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
        _choice(self.mode, "mode", DRIFT_MODES)
        _set(self, "drift", _real(self.drift, "drift"))
        if self.mode != "random_walk" and self.popularity_scale <= 0:
            raise ValueError(f"popularity_scale must be > 0 for mode={self.mode!r}")
        if self.mode == "mean_reverting" and self.drift >= self.popularity_scale:
            raise ValueError(
                f"drift must be < popularity_scale={self.popularity_scale} for "
                f"mode='mean_reverting', got {self.drift}"
            )

    def offset_path(self, steps: int, seed: Seed) -> Iterator[NDArray[np.float64]]:
        """The offsets z(t) (E,) for t = 0..steps-1 (lazily), as used by :meth:`batches`."""
        ss = _seed_sequence(seed)
        return self._path(_steps(steps), self._offset_ss(ss), ss)

    def _path(self, steps: int, oss: np.random.SeedSequence,
              ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        z = self._offsets(oss)
        if self.mode == "rotation":
            a = z / self.popularity_scale
            b = _rng(oss, _DRIFT).standard_normal(self.n_experts)
            b = b - (b @ a) / (a @ a) * a
            b *= np.linalg.norm(a) / np.linalg.norm(b)
            theta = self.drift / (self.popularity_scale * np.sqrt(np.mean(a * a)))
            for t in range(steps):
                yield self.popularity_scale * (np.cos(theta * t) * a + np.sin(theta * t) * b)
            return
        walk = _rng(ss, _DRIFT)
        rho = 1.0 if self.mode == "random_walk" else math.sqrt(
            1.0 - (self.drift / self.popularity_scale) ** 2)
        for _ in range(steps):
            yield z
            z = rho * z + self.drift * walk.standard_normal(self.n_experts)

    def _stream(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        noise = _rng(ss, _NOISE)
        for z in self._path(steps, self._offset_ss(ss), ss):
            x = z + self.noise_scale * noise.standard_normal((self.n, self.n_experts))
            yield _apply_gate(x, self.gate)


@dataclass(frozen=True)
class Clustered(Stationary):
    """Topics: logits x[t] = c_j + popularity_scale z + noise_scale eps[t], topic j ~ weights.

    C = n_topics centroids c_j = topic_scale * N(0, I_E) drawn once per seed (with the offsets);
    ``per="batch"``: one topic for the whole batch (domain-homogeneous batches: each batch has
    its own balancing price, the hardest case for a single bias); ``per="token"``: each token
    draws its own topic (a stationary mixture). Defaults: 4 topics (a handful of text domains,
    as in the OLMoE routing analysis), topic_scale 1 (each topic as skewed as ``stationary``),
    popularity_scale 0 (no skew shared by all topics), uniform topic weights, per="batch".
    """

    name: ClassVar[str] = "clustered"
    popularity_scale: float = 0.0
    n_topics: int = 4
    topic_scale: float = 1.0
    per: str = "batch"
    topic_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "n_topics", _int(self.n_topics, "n_topics", 1))
        _set(self, "topic_scale", _real(self.topic_scale, "topic_scale"))
        _choice(self.per, "per", ("batch", "token"))
        if self.topic_weights is not None:
            w = np.asarray(self.topic_weights, dtype=np.float64)
            if (w.shape != (self.n_topics,) or not np.all(np.isfinite(w)) or np.any(w < 0)
                    or w.sum() <= 0):
                raise ValueError(
                    f"topic_weights must be {self.n_topics} non-negative finite numbers with a "
                    f"positive sum (one per topic), got {self.topic_weights!r}"
                )
            _set(self, "topic_weights", tuple(float(v) for v in w / w.sum()))

    def centroids(self, seed: Seed) -> NDArray[np.float64]:
        """The (C, E) topic centroids of this seed's stream."""
        return self._centroids(self._offset_ss(_seed_sequence(seed)))

    def _centroids(self, oss: np.random.SeedSequence) -> NDArray[np.float64]:
        return self.topic_scale * _rng(oss, _TOPICS, 0).standard_normal(
            (self.n_topics, self.n_experts))

    def topics(self, steps: int, seed: Seed) -> Iterator[NDArray[np.int64]]:
        """The topic ids used by :meth:`batches`: (1,) per batch or (n,) per token, lazily."""
        return self._topics(_steps(steps), _seed_sequence(seed))

    def _topics(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.int64]]:
        draw = _rng(ss, _TOPICS, 1)
        p = None if self.topic_weights is None else np.asarray(self.topic_weights)
        size = 1 if self.per == "batch" else self.n
        for _ in range(steps):
            yield draw.choice(self.n_topics, size=size, p=p).astype(np.int64)

    def _stream(self, steps: int, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        oss = self._offset_ss(ss)
        z = self._offsets(oss)
        cents = self._centroids(oss)
        noise = _rng(ss, _NOISE)
        for topic in self._topics(steps, ss):
            eps = noise.standard_normal((self.n, self.n_experts))
            x = cents[topic] + z + self.noise_scale * eps
            yield _apply_gate(x, self.gate)


# --------------------------------------------------------------------------------------------
# Adversary
# --------------------------------------------------------------------------------------------


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
    softmax); strength is bounded by 10 logits (far from the +-30 sigmoid clip at default
    scales; +10 already ranks the targets above every other expert for virtually every
    token). Before any bias is sent the bias is taken as 0 (targets: experts
    0..n_targets-1). Defaults: strength 2 (twice the popularity spread: a
    boosted expert lands in most tokens' top-k -- measured for seed 0 on 20,000 tokens: 95% of
    tokens at E=16, k=2 and 100% at E=64, k=8), n_targets = max(1, E // 8).

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
        _set(self, "strength", _real(self.strength, "strength", hi=10.0))
        m = max(1, self.n_experts // 8) if self.n_targets is None else self.n_targets
        _set(self, "n_targets", _int(m, "n_targets", 1, self.n_experts - 1))

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
        noise = _rng(ss, _NOISE)
        for _ in range(steps):
            yield z + self.noise_scale * noise.standard_normal((self.n, self.n_experts))

    def _attack(self, logits: NDArray[np.float64],
                bias: NDArray[np.float64]) -> NDArray[np.float64]:
        x = logits.copy()
        x[:, self.targets(bias)] += self.strength
        return _apply_gate(x, self.gate)

    def adaptive_batches(self, steps: int, seed: Seed) -> Generator[
            NDArray[np.float64], NDArray[np.float64] | None, None]:
        """The adaptive stream: prime with next(), then send the bias used for the last batch."""
        steps = _steps(steps)
        ss = _seed_sequence(seed)

        def gen() -> Generator[NDArray[np.float64], NDArray[np.float64] | None, None]:
            bias = np.zeros(self.n_experts)
            for logits in self._base(steps, ss):
                sent = yield self._attack(logits, bias)
                if sent is not None:
                    bias = self._check_bias(sent).copy()

        return gen()

    def batches(self, steps: int, seed: Seed, *,
                biases: ArrayLike | None = None) -> Iterator[NDArray[np.float64]]:
        """Non-adaptive regeneration: batch t answers biases[t-1] (zeros when biases is None)."""
        steps = _steps(steps)
        ss = _seed_sequence(seed)
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


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------

TAILS = ("lognormal", "dirichlet", "uniform")
TRANSFORMS = ("none", "sigmoid", "softmax")
TAIL_SPREAD = 1.3  # logit std calibrated on the FLAME trace (see Replay's docstring)
_CACHE_LIMIT_BYTES = 256 * 2**20  # completed trace layers are cached up to this size


def _lognormal_tail(left: NDArray[np.float64], kth: NDArray[np.float64], rest: int,
                    rng: np.random.Generator, spread: float) -> NDArray[np.float64]:
    """w_j = s_k * sigmoid(g_j + theta_t), g_j ~ N(0, spread^2), theta_t: sum_j w_j = R_t.

    f(theta) = s_k sum_j sigmoid(g_j + theta) increases from 0 to (E-k) s_k > R, so theta is
    unique; it is bracketed by logit(r) - max g <= theta <= logit(r) - min g, r = R/((E-k) s_k),
    and found by safeguarded Newton (bisection when Newton leaves the bracket).
    """
    g = spread * rng.standard_normal((left.size, rest))
    r = left / (rest * kth)
    pos = left > 0
    lr = np.log(np.where(pos, r, 0.5)) - np.log1p(-np.where(pos, r, 0.5))  # logit(r)
    lo, hi = lr - g.max(axis=1), lr - g.min(axis=1)
    theta = 0.5 * (lo + hi)
    for _ in range(200):
        sig = expit(g + theta[:, None])
        f = kth * sig.sum(axis=1) - left
        # 1e-12 relative is plenty: the rescale below makes the sum exact
        done = (np.abs(f) <= 1e-12 * left) | ~pos
        if np.all(done):
            break
        lo = np.where(f < 0, theta, lo)
        hi = np.where(f > 0, theta, hi)
        slope = kth * (sig * (1.0 - sig)).sum(axis=1)
        newton = theta - f / np.where(slope > 0, slope, 1.0)
        inside = (newton > lo) & (newton < hi) & (slope > 0)
        theta = np.where(done, theta, np.where(inside, newton, 0.5 * (lo + hi)))
    w = kth[:, None] * expit(g + theta[:, None])
    w *= np.where(pos, left / np.where(pos, w.sum(axis=1), 1.0), 0.0)[:, None]  # exact sum R
    return np.minimum(w, np.nextafter(kth, 0.0)[:, None])  # float guard; never binds (tested)


def _complete_topk(
    top_scores: NDArray[np.float64], top_ids: NDArray[np.int64], n_experts: int,
    rng: np.random.Generator | None, tail: str, concentration: float = 1.0,
    spread: float = TAIL_SPREAD,
) -> NDArray[np.float64]:
    """Full (N, E) probability rows from the recorded top-k (scores sorted descending).

    For each token with recorded s_1 >= ... >= s_k the leftover mass R = 1 - sum(s) goes to
    the E - k unrecorded experts (in ascending expert id), every entry strictly below s_k so
    the recorded top-k stays the top-k, in the same order, and each row sums to 1 (up to
    float rounding). Needs R/(E-k) < s_k for every token; raises otherwise. ``tail``:

    - "lognormal" (default): w_j = s_k sigmoid(g_j + theta), g_j ~ N(0, spread^2) seeded, with
      the one shift theta per token that makes sum_j w_j = R. Far below s_k, log w_j = const +
      g_j: log-normal probabilities, i.e. the softmax of gaussian router logits with std
      ``spread``; near s_k the sigmoid squashes them smoothly below it (never equal to it).
    - "dirichlet": d ~ Dirichlet(concentration 1) seeded, w = R d; cap m = (R/(E-k) + s_k)/2
      (halfway between the even level and s_k); if max w > m, w <- (1 - lam) w + lam R/(E-k)
      with lam = (max w - m)/(max w - R/(E-k)), the smallest pull toward the even split that
      brings the max down to m. Caveat (measured on the FLAME trace, concentration 1): the cap
      binds for 95% of tokens, so most rows have one unrecorded entry exactly at m.
    - "uniform": w_j = R/(E-k) (deterministic).
    """
    n_tok, k = top_scores.shape
    rest = n_experts - k
    left = 1.0 - top_scores.sum(axis=1)
    level = left / rest
    kth = top_scores[:, -1]
    bad = np.flatnonzero((left < 0) | (level >= kth))
    if bad.size:
        t = bad[0]
        raise ValueError(
            f"cannot complete token {t}: leftover mass 1 - sum(top{k}) = {left[t]:.6g} does not "
            f"fit below its {k}-th score {kth[t]:.6g} over {rest} unrecorded experts"
        )
    # Completion rule (documented above): the leftover mass R of each token is split over its
    # E-k unrecorded experts (random draws row by row, tokens in order), capped below s_k.
    if tail == "uniform" or rng is None:
        w = np.repeat(level[:, None], rest, axis=1)
    elif tail == "lognormal":
        w = _lognormal_tail(left, kth, rest, rng, spread)
    else:
        g = rng.standard_gamma(concentration, size=(n_tok, rest))
        g_sum = g.sum(axis=1, keepdims=True)
        d = np.where(g_sum > 0, g / np.where(g_sum > 0, g_sum, 1.0), 1.0 / rest)
        w = left[:, None] * d
        cap = 0.5 * (level + kth)
        wmax = w.max(axis=1)
        lam = np.where(wmax > cap, (wmax - cap) / np.where(wmax > level, wmax - level, 1.0), 0.0)
        w = (1.0 - lam[:, None]) * w + lam[:, None] * level[:, None]
    full = np.empty((n_tok, n_experts))
    mask = np.ones((n_tok, n_experts), dtype=bool)
    np.put_along_axis(mask, top_ids, False, axis=1)
    full[mask] = w.ravel()  # unrecorded experts in ascending id order get w's columns in order
    np.put_along_axis(full, top_ids, top_scores, axis=1)
    return full


def _to_tuple(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),)
    try:
        return tuple(int(v) for v in value)  # type: ignore[union-attr]
    except TypeError:
        raise ValueError(
            f"layers must be an int, a sequence of ints or None, got {value!r}") from None


@dataclass(frozen=True)
class Replay:
    """Replay recorded router scores: a FLAME-MoE top-k trace, or any .npy / .npz score array.

    Top-k traces (npz with ``topk_scores`` (L, N, k) sorted descending, ``topk_ids`` (L, N, k),
    ``num_experts``, optional ``layers``; e.g. ``FLAME_FILE``: FLAME-MoE-290M, 8 layers x 2048
    tokens, top-6 of 64 softmax probabilities): each token's row is completed to all E experts
    by ``_complete_topk``: the leftover mass 1 - sum(top-k) is split over the E - k unrecorded
    experts, every entry strictly below the token's k-th score, so the recorded top-k stays
    the top-k exactly (ids, order and scores) and rows sum to 1. Default ``tail="lognormal"``:
    unrecorded probabilities s_k sigmoid(g_j + theta), g_j ~ N(0, tail_spread^2), theta fixing
    the sum -- the softmax of gaussian router logits, squashed below s_k. tail_spread = 1.3 is
    calibrated on the FLAME trace: its mean log(s_1/s_6) is 1.32 and for 64 standard gaussian
    logits E[x_(1) - x_(6)] = 0.986, so the logits' std is about 1.32/0.986 = 1.3 (the mean
    top-6 mass, 0.43, also lies between that of std 1.0 (0.36) and std 1.5 (0.53)). Other
    tails: "dirichlet" (the seeded split suggested in the issue; with ``tail_concentration=1``
    its cap binds for 95% of FLAME tokens -- see ``_complete_topk``) and "uniform" (even).
    tail_spread is bounded by 5 (an extremely heavy tail; keeps sigmoid(g + theta) away
    from 1 in float64). The completion of layer position j uses the seed's child stream
    (4, j), so it is the
    same in every epoch, for every n and every layer selection; completed layers are cached
    while the stream runs (FLAME: 8 x 2048 x 64 floats = 8 MiB; not above 256 MiB).

    Order: the selected ``layers`` (default all, in file order), each in token order
    (sequence-major), concatenated and cycled; batch t is tokens [t n, (t+1) n) of that cyclic
    stream, so when n does not divide the per-layer count a batch can straddle two layers
    (select one layer to avoid it). An epoch is (#layers x N) tokens.

    User arrays (.npy, or .npz with ``key`` naming the array; a single-array npz needs none):
    2-D (N, E) rows are batched the same way (n consecutive rows, cyclic); 3-D (T, n', E) is
    T ready batches, cycled (n must equal n'). ``transform`` turns logits into scores
    ("sigmoid" / "softmax"; default "none": the values are the scores). .npy files are
    memory-mapped, so large files are read one batch at a time.
    """

    name: ClassVar[str] = "replay"
    adaptive: ClassVar[bool] = False

    path: str
    n: int | None = None
    n_experts: int | None = None
    layers: tuple[int, ...] | None = None
    key: str | None = None
    tail: str = "lognormal"
    tail_spread: float = TAIL_SPREAD
    tail_concentration: float = 1.0
    transform: str = "none"
    kind: str = field(init=False, default="")

    def __post_init__(self) -> None:
        p = _existing(self.path)
        _set(self, "path", str(p))
        _choice(self.tail, "tail", TAILS)
        _set(self, "tail_concentration",
             _real(self.tail_concentration, "tail_concentration", 0.0, strict=True))
        _set(self, "tail_spread", _real(self.tail_spread, "tail_spread", hi=5.0))
        _choice(self.transform, "transform", TRANSFORMS)
        _set(self, "layers", _to_tuple(self.layers))
        if p.suffix not in (".npy", ".npz"):
            raise ValueError(f"path must be a .npy or .npz file, got {p.name!r}")
        if p.suffix == ".npz":
            with np.load(p) as data:
                files = data.files
                if "topk_scores" in files and "topk_ids" in files and self.key is None:
                    self._init_trace(data)
                    return
                key = self.key
                if key is None:
                    if len(files) != 1:
                        raise ValueError(
                            f"key must name the score array of {p.name} (it holds "
                            f"{', '.join(files)})"
                        )
                    key = files[0]
                _choice(key, "key", files)
                _set(self, "key", key)
                shape = data[key].shape
        else:
            if self.key is not None:
                raise ValueError("key applies only to .npz files; got key for a .npy file")
            shape = np.load(p, mmap_mode="r").shape
        if self.layers is not None:
            raise ValueError("layers applies only to top-k trace files (topk_scores/topk_ids)")
        self._init_matrix(shape)

    def _init_matrix(self, shape: tuple[int, ...]) -> None:
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"score array must be 2-D (N, E) or 3-D (T, n, E), got shape {shape}")
        e = shape[-1]
        if self.n_experts is not None and _int(self.n_experts, "n_experts", 1) != e:
            raise ValueError(f"n_experts={self.n_experts} does not match E={e} of {self.path}")
        _set(self, "n_experts", e)
        if len(shape) == 3:
            if self.n is not None and _int(self.n, "n", 1) != shape[1]:
                raise ValueError(
                    f"n={self.n} does not match the batch size n={shape[1]} of the 3-D array "
                    f"(T, n, E) = {shape} in {self.path}"
                )
            _set(self, "n", shape[1])
            _set(self, "kind", "batches")
        else:
            if self.n is None:
                raise ValueError("n (tokens per batch) is required for a 2-D (N, E) score array")
            _set(self, "n", _int(self.n, "n", 1))
            _set(self, "kind", "rows")

    def _init_trace(self, data: Any) -> None:
        if self.transform != "none":
            raise ValueError("transform must be 'none' for a top-k trace (it holds probabilities)")
        scores = np.asarray(data["topk_scores"])
        ids = np.asarray(data["topk_ids"])
        if scores.ndim != 3 or ids.shape != scores.shape:
            raise ValueError(f"topk_scores/topk_ids must both be (L, N, k), got {scores.shape}, "
                             f"{ids.shape}")
        if "num_experts" in data.files:
            e = int(data["num_experts"])
        elif self.n_experts is None:
            raise ValueError("n_experts is required: the trace has no num_experts entry")
        else:
            e = _int(self.n_experts, "n_experts", 2)
        if self.n_experts is not None and _int(self.n_experts, "n_experts", 1) != e:
            raise ValueError(
                f"n_experts={self.n_experts} does not match the trace's E={e} "
                f"({Path(self.path).name}); replay uses the recorded E"
            )
        if scores.shape[2] >= e or ids.min() < 0 or ids.max() >= e:
            raise ValueError(f"topk_ids must lie in [0, {e}) with k < E={e}")
        names = tuple(int(v) for v in data["layers"]) if "layers" in data.files else tuple(
            range(scores.shape[0]))
        if self.layers is not None:
            for layer in self.layers:
                _choice(layer, "layers entries", names)
        if self.n is None:
            raise ValueError("n (tokens per batch) is required for a top-k trace")
        _set(self, "n", _int(self.n, "n", 1))
        _set(self, "n_experts", e)
        _set(self, "kind", "trace")
        # Feasibility of the completion for every token, checked once up front.
        s = scores.astype(np.float64)
        left = 1.0 - s.sum(axis=2)
        bad = (left < 0) | (left / (e - s.shape[2]) >= s[:, :, -1])
        if bad.any():
            layer, tok = np.argwhere(bad)[0]
            raise ValueError(
                f"trace cannot be completed: layer position {layer}, token {tok} has leftover "
                f"mass {left[layer, tok]:.6g} that does not fit below its k-th score"
            )

    def config(self) -> dict[str, Any]:
        """Everything ``make_workload(**config)`` needs to rebuild this workload."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            if f.init:
                v = getattr(self, f.name)
                out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def batches(self, steps: int, seed: Seed = 0) -> Iterator[NDArray[np.float64]]:
        """Yield ``steps`` (n, E) batches in sequence order, cycling (seed: completion only)."""
        steps = _steps(steps)
        ss = _seed_sequence(seed)
        if self.kind == "trace":
            chunks = self._trace_chunks(ss)
        elif self.kind == "rows":
            chunks = self._row_chunks()
        else:
            return self._batch_stream(steps)
        return self._rebatch(chunks, steps)

    def _trace_chunks(self, ss: np.random.SeedSequence) -> Iterator[NDArray[np.float64]]:
        with np.load(self.path) as data:
            scores = np.asarray(data["topk_scores"], dtype=np.float64)  # float32 -> exact
            ids = np.asarray(data["topk_ids"], dtype=np.int64)
            names = tuple(int(v) for v in data["layers"]) if "layers" in data.files else tuple(
                range(scores.shape[0]))
        positions = range(len(names)) if self.layers is None else [names.index(v) for v in
                                                                     self.layers]
        e = int(self.n_experts or 0)
        cache: dict[int, NDArray[np.float64]] = {}
        keep = len(positions) * scores.shape[1] * e * 8 <= _CACHE_LIMIT_BYTES
        while True:
            for j in positions:
                if j in cache:
                    yield cache[j]
                    continue
                rng = None if self.tail == "uniform" else _rng(ss, _COMPLETION, j)
                full = _complete_topk(scores[j], ids[j], e, rng, self.tail,
                                      self.tail_concentration, self.tail_spread)
                full.flags.writeable = False  # cached blocks are shared between epochs
                if keep:
                    cache[j] = full
                yield full

    def _load_matrix(self) -> NDArray[Any]:
        if self.path.endswith(".npy"):
            return np.load(self.path, mmap_mode="r")
        with np.load(self.path) as data:
            return np.asarray(data[self.key])

    def _convert(self, block: NDArray[Any], where: str) -> NDArray[np.float64]:
        x = np.array(block, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"non-finite score in {self.path} ({where})")
        if self.transform == "sigmoid":
            return sigmoid(x)
        if self.transform == "softmax":
            return softmax(x, axis=-1)
        return x

    def _row_chunks(self) -> Iterator[NDArray[np.float64]]:
        arr = self._load_matrix()
        step = max(int(self.n or 1), 4096)
        while True:
            for start in range(0, arr.shape[0], step):
                yield self._convert(arr[start:start + step], f"rows {start}..{start + step - 1}")

    def _batch_stream(self, steps: int) -> Iterator[NDArray[np.float64]]:
        arr = self._load_matrix()
        for t in range(steps):
            yield self._convert(arr[t % arr.shape[0]], f"batch {t % arr.shape[0]}")

    def _rebatch(self, chunks: Iterator[NDArray[np.float64]],
                 steps: int) -> Iterator[NDArray[np.float64]]:
        n = int(self.n or 1)
        buf: list[NDArray[np.float64]] = []
        have = 0
        made = 0
        while made < steps:
            while have < n:
                c = next(chunks)
                buf.append(c)
                have += c.shape[0]
            block = np.concatenate(buf) if len(buf) > 1 else buf[0]
            yield np.array(block[:n], dtype=np.float64, copy=True)  # never a view of a cache
            made += 1
            rest = block[n:]
            buf, have = ([rest] if rest.shape[0] else []), rest.shape[0]


def replay(
    path: str | os.PathLike[str] | None = None, *, n: int, n_experts: int | None = None,
    layers: int | Iterable[int] | None = None, key: str | None = None, tail: str = "lognormal",
    tail_spread: float = TAIL_SPREAD, tail_concentration: float = 1.0, transform: str = "none",
) -> Replay:
    """A :class:`Replay` workload; ``path=None`` means data_dir() / FLAME_FILE."""
    if path is None:
        path = data_dir() / FLAME_FILE
    return Replay(path=str(path), n=n, n_experts=n_experts, layers=_to_tuple(layers), key=key,
                  tail=tail, tail_spread=tail_spread, tail_concentration=tail_concentration,
                  transform=transform)


# --------------------------------------------------------------------------------------------
# Registry, factory, materialize
# --------------------------------------------------------------------------------------------

WORKLOADS: dict[str, type] = {
    "stationary": Stationary,
    "zipf": Zipf,
    "olmoe": OlmoeMatched,
    "drifting": Drifting,
    "clustered": Clustered,
    "adversarial": Adversarial,
    "replay": Replay,
    "trace": TraceWorkload,  # recorded router traces (lfbtheory.workloads.trace)
}


def make_workload(name: str, *, n: int, n_experts: int, **options: Any) -> Workload:
    """Build the workload ``name`` (one of WORKLOADS) for batches of n tokens and E experts.

    ``options`` are the workload's own fields (see its class docstring); unknown names or
    options and out-of-range values raise ValueError naming the argument and what is allowed.
    For "replay", n_experts must equal the file's E and ``path`` defaults to the FLAME trace
    in data_dir().
    """
    _choice(name, "workload", tuple(WORKLOADS))
    cls = WORKLOADS[name]
    allowed = [f.name for f in dataclasses.fields(cls)
               if f.init and f.name not in ("n", "n_experts")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for workload {name!r}; allowed: "
            f"{', '.join(allowed)}"
        )
    n = _int(n, "n", 1)
    n_experts = _int(n_experts, "n_experts", 2)
    if name == "replay":
        opts = dict(options)
        path = opts.pop("path", None)
        return replay(path, n=n, n_experts=n_experts, **opts)
    if name in ("clustered",) and options.get("topic_weights") is not None:
        options = {**options, "topic_weights": tuple(options["topic_weights"])}
    return cls(n=n, n_experts=n_experts, **options)  # type: ignore[no-any-return]


def materialize(workload: Workload, steps: int, seed: Seed) -> NDArray[np.float64]:
    """The first ``steps`` batches as one (steps, n, E) array (for small runs; <= 1 GiB).

    For the adversary this is its non-adaptive stream (its answer to a zero bias).
    """
    steps = _steps(steps)
    size = steps * int(workload.n or 0) * int(workload.n_experts or 0) * 8
    if size > MATERIALIZE_LIMIT_BYTES:
        raise ValueError(
            f"steps={steps} would materialize {size / 2**30:.1f} GiB (> 1 GiB); iterate "
            f"workload.batches(steps, seed) lazily instead"
        )
    out = np.empty((steps, int(workload.n or 0), int(workload.n_experts or 0)))
    for t, batch in enumerate(workload.batches(steps, seed)):
        out[t] = batch
    return out
