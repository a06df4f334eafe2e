"""Paired comparisons over seeds (common random numbers) and the verdict of a claim.

Every method of a seed shares the initial weights, the batch order and the evaluation windows
(``train_run`` records digests of all three), so the per-seed difference d_s = a_s - b_s
cancels the seed-to-seed variation the methods share. Statistics of d (n seeds):

- mean d̄, sample standard deviation s (ddof 1), standard error s / sqrt(n);
- the paired t interval d̄ ± t_{1-alpha/2, n-1} s / sqrt(n) (``scipy.stats.t``);
- the sign-flip permutation test of "d is symmetric about 0": p = P(|mean(ε d)| >= |d̄|) over
  the 2^n sign vectors ε (exact enumeration for n <= ``EXACT_MAX``, otherwise a seeded Monte
  Carlo of ``MC_DRAWS`` vectors); its smallest attainable two-sided p is 2 / 2^n;
- the minimum detectable effect of the paired t test at level alpha with power 1 - beta,
  MDE = (t_{1-alpha/2, n-1} + t_{1-beta, n-1}) s / sqrt(n) (the usual normal-theory
  approximation, with t quantiles for the n - 1 degrees of freedom).

Verdict of a directional claim ("a < b", or "a > b"): "reproduces" when the t interval lies
on the claimed side of 0, "refuted" when it lies on the other side, otherwise "not resolvable
at this scale (MDE = ...)". The permutation test can only veto: when its smallest attainable p
is <= alpha and its p exceeds alpha, a resolved t interval is downgraded to "not resolvable"
(the normal-theory interval is not trusted where the distribution-free test disagrees); with
fewer seeds than that (n < 6 for alpha = 0.05) the verdict rests on the t interval alone and
says so in ``basis``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["ALPHA", "POWER", "paired_stats", "sign_flip_p", "verdict_of", "welch"]

ALPHA = 0.05  # two-sided level of every interval and test
POWER = 0.8  # power at which the minimum detectable effect is stated
EXACT_MAX = 16  # enumerate all 2^n sign vectors up to this many seeds
MC_DRAWS = 100_000


def sign_flip_p(
    d: Sequence[float] | NDArray[np.float64], *, rng: np.random.Generator | None = None
) -> float:
    """Two-sided sign-flip p-value of mean(d) (exact for n <= EXACT_MAX)."""
    x = np.asarray(d, dtype=np.float64)
    n = x.size
    if n == 0:
        return float("nan")
    obs = abs(x.mean())
    if n <= EXACT_MAX:
        eps = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        gen = rng if rng is not None else np.random.default_rng(0)
        eps = gen.choice((1.0, -1.0), size=(MC_DRAWS, n))
    stats = np.abs(eps @ x) / n
    # a relative tolerance so that the observed vector itself always counts (p >= 1 / 2^n)
    return float(np.mean(stats >= obs * (1 - 1e-12)))


def welch(a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA) -> dict[str, Any]:
    """The unpaired comparison, for contrast: mean(a) - mean(b) with its Welch half-width."""
    from scipy import stats

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    diff = float(x.mean() - y.mean())
    if se == 0:
        return {"diff": diff, "half_width": 0.0, "resolved": diff != 0}
    nu = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    hw = float(stats.t.ppf(1 - alpha / 2, nu)) * se
    return {"diff": diff, "half_width": hw, "resolved": abs(diff) > hw}


def paired_stats(
    d: Sequence[float], *, alpha: float = ALPHA, power: float = POWER
) -> dict[str, Any]:
    """Mean, sd, t interval, sign-flip p and MDE of paired differences ``d`` (module doc)."""
    from scipy import stats

    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    x = np.asarray(d, dtype=np.float64)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"d must hold >= 2 finite paired differences, got {x.tolist()}")
    n = x.size
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    tq = float(stats.t.ppf(1 - alpha / 2, n - 1))
    mde = (tq + float(stats.t.ppf(power, n - 1))) * se
    return {
        "n": n,
        "mean": mean,
        "sd": sd,
        "se": se,
        "ci_low": mean - tq * se,
        "ci_high": mean + tq * se,
        "p_sign_flip": sign_flip_p(x),
        "p_min_attainable": 2.0 / 2**n if n <= EXACT_MAX else 1.0 / MC_DRAWS,
        "mde": mde,
        "alpha": alpha,
        "power": power,
    }


def verdict_of(st: dict[str, Any], *, claim_sign: int) -> dict[str, str]:
    """The verdict of the claim "mean difference has sign ``claim_sign``" (+1 or -1)."""
    if claim_sign not in (1, -1):
        raise ValueError(f"claim_sign must be +1 or -1, got {claim_sign!r}")
    lo, hi, alpha = st["ci_low"], st["ci_high"], st["alpha"]
    perm_usable = st["p_min_attainable"] <= alpha
    basis = (
        f"paired t {100 * (1 - alpha):g}% interval + sign-flip test"
        if perm_usable
        else f"paired t {100 * (1 - alpha):g}% interval only (sign-flip test needs more "
        f"seeds: smallest attainable p = {st['p_min_attainable']:.3g} > alpha)"
    )
    resolved = lo > 0 or hi < 0
    if resolved and perm_usable and st["p_sign_flip"] > alpha:
        resolved = False
        basis += f"; vetoed by the sign-flip test (p = {st['p_sign_flip']:.3g})"
    if not resolved:
        v = (
            f"not resolvable at this scale (MDE = {st['mde']:.3g} at alpha = {alpha:g}, "
            f"power = {st['power']:g}, n = {st['n']})"
        )
    elif (lo > 0) == (claim_sign > 0):
        v = "reproduces"
    else:
        v = "refuted"
    return {"verdict": v, "basis": basis}
