"""Popularity calibrated to measured expert loads: exact top-k load shares, the histogram fit,
and the ``olmoe`` workload (arXiv 2409.02060 Sec. 5: OLMoE's routing analysis).

    olmoe   x[t,i] = sigma (w_i + eps[t,i]),  w fitted so plain top-k load shares equal a
            measured OLMoE/Mixtral histogram (:func:`fit_popularity_offsets`)

The histogram is read and the fit computed lazily, on first use (``fit()``, ``histogram()``,
``offsets()`` or ``batches()``), and cached per (file contents, histogram, k): constructing or
``dataclasses.replace``-ing an :class:`OlmoeMatched` does no I/O and no fitting.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

from lfbtheory.validation import as_int, as_real, choice
from lfbtheory.workloads.base import SyntheticBase, frozen, set_field
from lfbtheory.workloads.data import (
    HISTOGRAM_FILE,
    check_path,
    data_dir,
    file_stamp,
    load_histogram_row,
    npz_keys,
)

__all__ = [
    "PopularityFit",
    "topk_load_shares",
    "fit_popularity_offsets",
    "OlmoeMatched",
    "PSEUDO_COUNT",
    "HIST_LAYERS",
    "HIST_KINDS",
    "HIST_K",
]

# Quadrature of the exact top-k selection probabilities (``_selection_probs``): a trapezoid
# step of 0.1 noise units (vs step 0.05 the shares differ by < 1e-13: the integrand is analytic,
# so the rule converges geometrically) over [min w - 9, max w + 9] (the gaussian tails beyond
# 9 sd are < 1e-18).
_GRID_STEP = 0.1
_GRID_PAD = 9.0

HIST_LAYERS = (0, 7, 15)  # rows of each per-layer histogram array (lfbtheory/data/README.md)
HIST_K = {"olmoe": 8, "olmoe-sft": 8, "olmoe-dpo": 8, "mistral": 2}  # each model's top-k
HIST_KINDS = ("expert_counts", "expert_counts_top1")
# Add-half (Jeffreys prior) smoothing of the counts: an expert never chosen gets a small
# positive share, hence a finite offset, and a share moves by < 1e-6 on the OLMoE histograms
# (1.67M counts per layer), far below the sampling error of any simulated stream.
PSEUDO_COUNT = 0.5

# Fit defaults: relative tolerance 1e-8 (a share's relative sampling sd is ~1e-3 even at 10^6
# tokens, so 1e-8 is exact for every practical purpose; reached in 4 steps on OLMoE top-8
# histograms and 12 on a top-1 one); max_iter 100 is a safety net. Probabilities are clipped
# to [1e-300, 1 - 1e-16] before Phi^-1 so the step stays finite in float64. A step that
# increases the error is halved, down to a damping of 1e-3 (10 halvings), below which it is
# taken anyway, so the loop always ends within max_iter.
_FIT_TOL = 1e-8
_FIT_MAX_ITER = 100
_MIN_DAMPING = 1e-3


def _selection_probs(w: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """P(i in TopK(w + eps)), eps ~ N(0, I), exact up to quadrature error.

    P_i = int phi(x - w_i) P(#{j != i : w_j + eps_j > x} <= k - 1) dx; the count of the
    independent others above x is Poisson-binomial, computed by the usual dynamic program
    truncated at k states, for all i at once (i is left out by giving it probability 0). The
    integrand is analytic and decays like a gaussian, so the trapezoid rule on a uniform grid
    converges geometrically.
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


def _as_offsets(offsets: ArrayLike, name: str) -> NDArray[np.float64]:
    try:
        w = np.asarray(offsets, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 1-D array of real numbers, got {offsets!r}") from None
    if w.ndim != 1 or w.size < 2 or not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be a finite 1-D array of E >= 2 values, got shape {w.shape}")
    return w


def topk_load_shares(offsets: ArrayLike, k: int, noise_scale: float = 1.0) -> NDArray[np.float64]:
    """Expected load shares E[c_i] / (n k) of plain top-k of offsets + noise_scale * N(0, I).

    Exact up to quadrature error (see ``_selection_probs``); the shares sum to 1.
    The gate does not matter: sigmoid and softmax are monotone in the logits, so top-k of the
    scores is top-k of the logits.
    """
    w = _as_offsets(offsets, "offsets")
    k = as_int(k, "k", 1, w.size)
    sigma = as_real(noise_scale, "noise_scale", strict=True)
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
    target_shares: ArrayLike,
    k: int,
    *,
    noise_scale: float = 1.0,
    tol: float = _FIT_TOL,
    max_iter: int = _FIT_MAX_ITER,
) -> PopularityFit:
    """Logit offsets w with plain top-k load shares of w + noise_scale * N(0, I) equal to target.

    Rule (a probit fixed point, documented and deterministic): with p_i = k * share_i the
    probability that expert i is among a token's top k, start at w = Phi^-1(p*) and iterate

        w <- w + Phi^-1(p*) - Phi^-1(p(w)),   then recentre w to mean 0,

    with p(w) computed exactly (:func:`topk_load_shares`). If the k-th largest competitor were
    a fixed threshold tau, p_i = Phi(w_i - tau) and one step would be exact (Newton); in
    practice the max relative error drops ~50x per step. If an iteration ever increases the
    error the step is halved. Stops when max_i |p_i - p*_i| / p*_i < tol (default 1e-8, see
    ``_FIT_TOL``). Needs 0 < share_i < 1/k (an expert cannot be chosen by more than every
    token); raises ValueError otherwise.
    """
    s = np.asarray(target_shares, dtype=np.float64)
    if s.ndim != 1 or s.size < 2 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("target_shares must be a 1-D array of E >= 2 positive finite shares")
    s = s / s.sum()
    k = as_int(k, "k", 1, s.size)
    sigma = as_real(noise_scale, "noise_scale", strict=True)
    tol = as_real(tol, "tol", strict=True)
    max_iter = as_int(max_iter, "max_iter", 0)
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
        if err_c > err and damp > _MIN_DAMPING:
            damp *= 0.5
            continue
        w, p, err = cand, p_c, err_c
    achieved = p / k
    for arr in (w, s, achieved):
        arr.flags.writeable = False  # fits are cached and shared: keep them immutable
    return PopularityFit(
        offsets=frozen(sigma * w),
        target=s,
        achieved=achieved,
        k=k,
        max_abs_error=float(np.max(np.abs(achieved - s))),
        max_rel_error=err,
        iterations=it,
        converged=err < tol,
    )


@functools.lru_cache(maxsize=64)
def _histogram_fit(counts: tuple[float, ...], k: int) -> PopularityFit:
    shares = (np.asarray(counts) + PSEUDO_COUNT) / (np.sum(counts) + PSEUDO_COUNT * len(counts))
    return fit_popularity_offsets(shares, k, noise_scale=1.0)


@dataclass(frozen=True)
class OlmoeMatched(SyntheticBase):
    """Popularity matched to a measured expert-load histogram (OLMoE, arXiv 2409.02060 Sec. 5).

    x[t,i] = noise_scale * (w_i + eps[t,i]) with w fitted by :func:`fit_popularity_offsets` so
    that plain top-``fit_k`` routing has expected load shares equal to the histogram
    ``{model}/{kind}/{domain}`` row ``layer`` of ``HISTOGRAM_FILE`` (counts + PSEUDO_COUNT each,
    normalised). The fit is deterministic (no seed); the seed drives only the token noise. The
    achieved match is :meth:`fit`.

    Options: model in olmoe, olmoe-sft, olmoe-dpo (E=64, top-8) or mistral (E=8, top-2);
    layer in 0, 7, 15; domain in arxiv, book, c4, github, wikipedia (olmoe, mistral) or tulu
    (olmoe*); kind "expert_counts" (top-k counts) or "expert_counts_top1" (k=1, not for
    olmoe-sft/dpo). Defaults: olmoe / layer 0 / c4 (the web-text domain closest to the
    pretraining mix; max/mean load 3.0); domain="arxiv" is the most skewed (7.8). ``fit_k``
    (default: the model's k) is the k whose load shares are matched. ``path`` (default None:
    data_dir() / HISTOGRAM_FILE) is read on first use. ``offset_seed`` has no effect (offsets
    are fitted). Errors that need the file (unknown domain, E mismatch, infeasible fit_k) are
    raised on first use.
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
        choice(self.model, "model", tuple(HIST_K))
        choice(self.kind, "kind", HIST_KINDS)
        choice(self.layer, "layer", HIST_LAYERS)  # type: ignore[arg-type]
        if not isinstance(self.domain, str):
            raise TypeError(f"domain must be a string, got {self.domain!r}")
        k = (
            self.default_k
            if self.fit_k is None
            else as_int(self.fit_k, "fit_k", 1, self.n_experts - 1)
        )
        set_field(self, "fit_k", k)
        if self.path is not None:
            set_field(self, "path", check_path(self.path))

    @property
    def key(self) -> str:
        return f"{self.model}/{self.kind}/{self.domain}"

    @property
    def default_k(self) -> int:
        return 1 if self.kind == "expert_counts_top1" else HIST_K[self.model]

    def _path(self) -> str:
        return self.path if self.path is not None else str(data_dir() / HISTOGRAM_FILE)

    def histogram(self) -> NDArray[np.float64]:
        """The measured counts (E,) being matched (before the smoothing); read on first use."""
        path = self._path()
        stamp = file_stamp(path)
        prefix = f"{self.model}/{self.kind}/"
        domains = sorted(key[len(prefix) :] for key in npz_keys(path) if key.startswith(prefix))
        if not domains:
            raise ValueError(f"kind={self.kind!r} is not available for model={self.model!r}")
        choice(self.domain, "domain", tuple(domains))
        counts = load_histogram_row(stamp[0], self.key, HIST_LAYERS.index(self.layer))
        if len(counts) != self.n_experts:
            raise ValueError(
                f"n_experts={self.n_experts} does not match E={len(counts)} of the "
                f"{self.model!r} histogram (olmoe*: 64 experts, mistral: 8)"
            )
        return np.asarray(counts)

    def fit(self) -> PopularityFit:
        """The fitted offsets (in noise units) and the achieved match (computed once, cached)."""
        counts = tuple(self.histogram())
        try:
            return _histogram_fit(counts, int(self.fit_k or 1))
        except ValueError as exc:
            raise ValueError(
                f"fit_k={self.fit_k} cannot match the {self.key} histogram: {exc}"
            ) from None

    def _prepare(self) -> None:
        self.fit()

    def _offsets(self, ss: np.random.SeedSequence) -> NDArray[np.float64]:
        return self.noise_scale * self.fit().offsets
