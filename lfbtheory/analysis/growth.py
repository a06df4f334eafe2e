"""Growth class of a regret curve, with the evidence for it -- or "undetermined".

The class is read from the growth EXPONENT of the increments after a burn-in t0,
y(t) = R(t) - R(t0), t > t0, and is stated only when the evidence is unambiguous:

1. Profile the power law y = a + b t^alpha over a grid of alpha in [-2, 2] (alpha = 0 is the
   logarithm a + b ln t): RSS(alpha) by least squares, and the set A of exponents with
   m ln(RSS(alpha)/RSS_min) <= kappa^2 chi^2_1(0.99), kappa^2 = (1 + rho)/(1 - rho) the variance
   inflation of the residuals' lag-1 autocorrelation rho >= 0 (random-walk noise, cycles: the
   checkpoints are not independent). A is the exponent's 99% interval.
2. A class is stated only if A lies inside its exponent band -- linear [0.9, 1.1], sqrt-like
   [0.4, 0.6], logarithmic (-0.15, 0.15), bounded (-inf, -0.2] (an approach to a limit) -- and
   the class's own model a + b f(t) has b of the right sign with its (kappa-widened) 99%
   interval excluding 0 and R^2 >= ``r2_floor``; "decreasing" needs a negative linear trend
   whose widened interval excludes 0. "bounded" is also stated when no trend is detectable:
   the widened 99% intervals of the log, sqrt and linear trends all contain 0 AND the residuals
   are not autocorrelated (kappa < 1.5; a random walk is never called bounded).
3. The same rule on the later half of the checkpoints (in log t) must not state another class
   (a transient still bending shows a different exponent late); "bounded" and "decreasing"
   are compatible.
4. A per-step curve (unit spacing at the tail) whose increments repeat with a period P is
   classified exactly: "bounded" with ``period`` P if it does not drift, else "linear" /
   "decreasing" with the drift per step.
Anything else is "undetermined", with the reason. Every band and threshold was set on the
labelled battery of proofs/growth_battery.py (24 families of known growth -- transients of
every length up to T/2, log + periodic, random-walk noise, heavy tails, saturation, t^a,
t log t, t/log t -- x 20 seeds x T in {400, 2000, 6000, 20000}) to the rule: at most 5% confident
wrong classes on every family; docs/theory/growth.md gives the confusion matrix. Between the
bands (t^0.75, t log t, t/log t) the answer is "undetermined" by construction: the classes are
asymptotic statements that a finite curve can only support, never prove.

The result keeps every fit (coefficients, 95% intervals, R^2, BIC) and the exponent interval,
so a reader can see why. A single log-log slope of y misleads (a + b ln t has slope
1/ln(t/t0) near t0); it is reported (``loglog_slope``) but never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Fit", "Growth", "GROWTH_MODELS", "GROWTH_CLASSES", "classify_growth", "fit_model"]

Basis = Callable[[NDArray[np.float64]], NDArray[np.float64]]

GROWTH_MODELS: dict[str, Basis | None] = {
    "constant": None,
    "inverse": lambda t: 1.0 / t,
    "logarithmic": np.log,
    "sqrt-like": np.sqrt,
    "linear": lambda t: t,
}
"""Basis f of each model y = a + b f(t) (None: the constant model y = a)."""

GROWTH_CLASSES = ("bounded", "logarithmic", "sqrt-like", "linear", "decreasing", "undetermined")
_EXPONENT = {"logarithmic": 0.0, "sqrt-like": 0.5, "linear": 1.0}
_ALPHAS = np.round(np.arange(0.10, 2.0001, 0.01), 2)  # the reported power fit (exponent > 0)
_PROFILE = np.round(np.arange(-2.0, 2.0001, 0.01), 2)  # the exponent profile (0 = ln t)
_BANDS = {"linear": (0.92, 1.08), "sqrt-like": (0.4, 0.6), "logarithmic": (-0.15, 0.15)}
_LATE_TOL = 0.25  # the later half's best exponent must lie within the band widened by this
_BOUNDED_BELOW = -0.2  # an exponent interval below this is an approach to a limit ...
_R2_SATURATION = 0.99  # ... if the power law fits that well (a wandering walk does not)
_CHI2_99 = 6.635  # chi^2_1 at 0.99: the profile interval of the exponent
_Z99 = 2.576  # normal 0.995 quantile, with kappa: the widened intervals of the trends
_VN_MIN_BOUNDED = 1.4  # von Neumann ratio of y below this (a walk, a trend): never "bounded"
_MIN_POINTS = 8  # fewer checkpoints after t0: "undetermined"
_MIN_LATE = 6  # the later half is checked when it has at least this many points


class Fit(NamedTuple):
    """Least-squares fit y = a + b f(t): b with its ``level`` interval, R^2, BIC, RSS."""

    model: str
    a: float
    b: float
    b_low: float
    b_high: float
    r2: float
    bic: float
    rss: float
    n_params: int
    alpha: float = float("nan")  # the exponent of the power model


@dataclass(frozen=True)
class Growth:
    """Growth of a regret curve's increments after burn-in ``t0``.

    cls: one of GROWTH_CLASSES; coef: b of the deciding fit (drift per step for a periodic
    curve; for "undetermined", of the best-BIC model -- evidence, not a class coefficient);
    interval: its 95% interval;
    r2: R^2 per class ("bounded" = the inverse model's) and r2[cls] = R^2 of the deciding fit
    (NaN if none); fits: every model's :class:`Fit`;
    exponent: alpha of the best power law; period: of a periodic per-step curve; reason: why
    this class; loglog_slope: slope of log y on log(t - t0) (reported only); increment:
    y at the last t; exponent_interval: the 99% profile interval of the growth exponent
    (module docstring, step 1; 0 stands for ln t).
    """

    cls: str
    coef: float
    r2: dict[str, float]
    loglog_slope: float
    t0: int
    increment: float
    interval: tuple[float, float] = (float("nan"), float("nan"))
    fits: dict[str, Fit] = field(default_factory=dict)
    exponent: float = float("nan")
    period: int | None = None
    reason: str = ""
    exponent_interval: tuple[float, float] = (float("nan"), float("nan"))

    def __str__(self) -> str:
        lo, hi = self.interval
        head = f"{self.cls}: b = {self.coef:.4g} [{lo:.4g}, {hi:.4g}]"
        return f"{head} (R^2 {self.r2.get(self.cls, float('nan')):.4f}); {self.reason}"


def fit_model(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    model: str,
    level: float = 0.95,
    alpha: float | None = None,
) -> Fit:
    """OLS fit of ``model`` (a GROWTH_MODELS name, or "power" with exponent ``alpha``)."""
    m = len(x)
    if model == "power":
        if alpha is None:
            raise ValueError("alpha is required for the power model")
        design = np.column_stack([np.ones(m), x**alpha])
    elif GROWTH_MODELS.get(model, 0) is None and model == "constant":
        design = np.ones((m, 1))
    elif model in GROWTH_MODELS:
        design = np.column_stack([np.ones(m), GROWTH_MODELS[model](x)])  # type: ignore[misc]
    else:
        raise ValueError(f"model must be one of {', '.join(GROWTH_MODELS)} or 'power'")
    p = design.shape[1] + (1 if model == "power" else 0)
    # scale the basis column for conditioning (t up to 1e7); undo on the coefficient
    scale = np.maximum(np.max(np.abs(design), axis=0), 1e-300)
    sol, *_ = np.linalg.lstsq(design / scale, y, rcond=None)
    sol = sol / scale
    resid = y - design @ sol
    rss = float(resid @ resid)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - rss / ss_tot if ss_tot > 0 else 1.0
    yscale = max(float(np.max(np.abs(y))), 1e-300)
    floor = (1e-9 * yscale) ** 2  # exact fits: RSS at rounding level is treated as equal
    bic = m * np.log(rss / m + floor) + p * np.log(m)
    a = float(sol[0])
    if design.shape[1] == 1:
        return Fit(model, a, 0.0, 0.0, 0.0, r2, float(bic), rss, p)
    b = float(sol[1])
    dof = m - design.shape[1]
    if dof > 0:
        cov = (rss / dof) * np.linalg.pinv(design.T @ design)
        se = float(np.sqrt(max(cov[1, 1], 0.0)))
        half = _t_quantile(0.5 + level / 2, dof) * se
    else:
        half = float("inf")
    return Fit(
        model,
        a,
        b,
        b - half,
        b + half,
        r2,
        float(bic),
        rss,
        p,
        float(alpha) if alpha is not None else float("nan"),
    )


@lru_cache(maxsize=256)
def _t_quantile(q: float, dof: int) -> float:
    """Student's t quantile (cached: a classification asks for the same few dof).

    ``scipy.special.stdtrit`` is the function ``scipy.stats.t.ppf`` evaluates; called directly
    so that ``import lfbtheory`` does not import ``scipy.stats`` (most of its import time).
    """
    from scipy.special import stdtrit  # here, not at the top: keeps scipy out of the import

    return float(stdtrit(dof, q))


def _best_power(x: NDArray[np.float64], y: NDArray[np.float64]) -> Fit:
    """The power fit of least BIC over ``_ALPHAS`` (the first on ties), as
    ``min(fit_model(x, y, "power", alpha=a) for a in _ALPHAS)`` by BIC.

    Every alpha is screened at once by the same OLS in closed form (residuals formed
    explicitly, so the RSS keeps its accuracy for near-exact fits); only the alphas whose
    screened BIC is within a margin of the least are fitted by :func:`fit_model`, in grid
    order, so the winner and its reported fit are those of the full grid search.
    """
    m = len(x)
    basis = x[None, :] ** _ALPHAS[:, None]  # (A, m)
    xc = basis - basis.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    sxx = np.einsum("ij,ij->i", xc, xc)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(sxx > 0, (xc @ yc) / sxx, 0.0)
    resid = yc[None, :] - b[:, None] * xc
    rss = np.einsum("ij,ij->i", resid, resid)
    yscale = max(float(np.max(np.abs(y))), 1e-300)
    floor = (1e-9 * yscale) ** 2
    bic = m * np.log(rss / m + floor) + 3 * np.log(m)
    ok = np.isfinite(bic)
    if not ok.all():  # degenerate screen: fall back to the full search
        cand = np.arange(len(_ALPHAS))
    else:
        lo = float(bic.min())
        cand = np.flatnonzero(bic <= lo + 1e-6 * max(1.0, abs(lo)) + 1e-6)
    return min(
        (fit_model(x, y, "power", alpha=float(_ALPHAS[i])) for i in cand), key=lambda f: f.bic
    )


def _period(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[int, float] | None:
    """(P, drift per step) if the tail is a per-step curve whose P-step increments are constant."""
    unit = np.flatnonzero(np.diff(x) != 1.0)
    start = 0 if unit.size == 0 else int(unit[-1]) + 1
    tail = y[start:]
    if tail.size < 12:
        return None
    tol = 1e-9 * max(float(np.max(np.abs(tail))), 1.0)
    for p in range(1, tail.size // 3 + 1):
        inc = tail[p:] - tail[:-p]
        if np.ptp(inc) <= tol:
            return p, float(np.mean(inc)) / p
    return None


class _Verdict(NamedTuple):
    cls: str
    deciding: Fit | None
    reason: str
    alpha: float
    interval: tuple[float, float]
    kappa: float


def _profile(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """RSS of y = a + b f_alpha(x) for every alpha of _PROFILE (f_0 = ln x, else x^alpha),
    in closed form with explicit residuals (accurate for near-exact fits)."""
    lx = np.log(x)
    basis = np.where(_PROFILE[:, None] == 0.0, lx[None, :], np.exp(_PROFILE[:, None] * lx[None, :]))
    xc = basis - basis.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    sxx = np.einsum("ij,ij->i", xc, xc)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(sxx > 0, (xc @ yc) / sxx, 0.0)
    resid = yc[None, :] - b[:, None] * xc
    return np.einsum("ij,ij->i", resid, resid), b


def _kappa(resid: NDArray[np.float64]) -> float:
    """sqrt((1 + rho)/(1 - rho)) for the lag-1 autocorrelation rho >= 0 of the residuals."""
    r = resid - resid.mean()
    den = float(r @ r)
    if den <= 0 or r.size < 3:
        return 1.0
    rho = min(max(float(r[1:] @ r[:-1]) / den, 0.0), 0.9)
    return float(np.sqrt((1 + rho) / (1 - rho)))


def _widened(fit: Fit, kappa: float, m: int) -> tuple[float, float]:
    """The 99% interval of b, widened by kappa (from the fit's 95% half-width)."""
    half95 = (fit.b_high - fit.b_low) / 2
    q95 = _t_quantile(0.975, max(m - 2, 1))
    half = half95 / q95 * _Z99 * kappa if np.isfinite(half95) else float("inf")
    return fit.b - half, fit.b + half


def _verdict(
    x: NDArray[np.float64], y: NDArray[np.float64], fits: dict[str, Fit], r2_floor: float
) -> _Verdict:
    """The exponent rule of the module docstring on one window."""
    m = len(x)
    rss, b = _profile(x, y)
    yscale = max(float(np.max(np.abs(y - y.mean()))), 1e-300)
    floor = (1e-9 * yscale) ** 2 * m
    rss = np.maximum(rss, floor)
    j = int(np.argmin(rss))
    alpha = float(_PROFILE[j])
    basis = np.log(x) if alpha == 0.0 else x**alpha
    xc = basis - basis.mean()
    resid = (y - y.mean()) - b[j] * xc
    kappa = _kappa(resid)
    inside = m * np.log(rss / rss[j]) <= kappa**2 * _CHI2_99
    lo, hi = float(_PROFILE[inside].min()), float(_PROFILE[inside].max())
    interval = (lo, hi)
    # the interval must be one connected piece of the grid (else the profile is ambiguous)
    idx = np.flatnonzero(inside)
    if idx.size and idx[-1] - idx[0] + 1 != idx.size:
        return _Verdict(
            "undetermined",
            None,
            "the exponent profile has two separate minima",
            alpha,
            interval,
            kappa,
        )
    for cls, (blo, bhi) in _BANDS.items():
        if blo <= lo and hi <= bhi:
            fit = fits[cls]
            wlo, whi = _widened(fit, kappa, m)
            if wlo > 0 and fit.r2 >= r2_floor:
                return _Verdict(
                    cls,
                    fit,
                    f"exponent in [{lo:.2f}, {hi:.2f}], {cls} trend > 0",
                    alpha,
                    interval,
                    kappa,
                )
            if whi < 0 and cls == "linear" and fit.r2 >= r2_floor:
                return _Verdict(
                    "decreasing",
                    fit,
                    f"exponent in [{lo:.2f}, {hi:.2f}], linear trend < 0",
                    alpha,
                    interval,
                    kappa,
                )
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2_power = 1.0 - float(rss[j]) / ss_tot if ss_tot > 0 else 1.0
    if hi <= _BOUNDED_BELOW and r2_power >= _R2_SATURATION:
        fit = fits["inverse"]
        return _Verdict(
            "bounded",
            fit,
            f"exponent in [{lo:.2f}, {hi:.2f}]: an approach to a limit",
            alpha,
            interval,
            kappa,
        )
    lin = fits["linear"]
    llo, lhi = _widened(lin, kappa, m)
    if lhi < 0 and lin.r2 >= r2_floor and hi >= 0.9:
        return _Verdict("decreasing", lin, "linear trend < 0", alpha, interval, kappa)
    flat = all(
        (lambda w: w[0] <= 0.0 <= w[1])(_widened(fits[name], kappa, m))
        for name in ("logarithmic", "sqrt-like", "linear")
    )
    yc = y - y.mean()
    vn = float(np.sum(np.diff(y) ** 2) / max(float(yc @ yc), 1e-300))
    if flat and vn >= _VN_MIN_BOUNDED:
        return _Verdict(
            "bounded",
            lin,
            "no trend: the log, sqrt and linear trends are all 0 within their 99% intervals",
            alpha,
            interval,
            kappa,
        )
    reason = f"exponent in [{lo:.2f}, {hi:.2f}] is inside no class band"
    if flat:
        reason = f"no detectable trend, but the curve wanders (von Neumann ratio {vn:.2f})"
    return _Verdict("undetermined", None, reason, alpha, interval, kappa)


def classify_growth(t: ArrayLike, regret: ArrayLike, t0: int, *, r2_floor: float = 0.9) -> Growth:
    """Classify y(t) = R(t) - R(t0), t > t0 (see the module docstring for the rules).

    ``t``: increasing prefix lengths (e.g. log-spaced checkpoints, or 1..T); ``regret``: R at
    those t; ``t0``: the burn-in (the first checkpoint >= t0 is the base). Fewer than 8 points
    after t0 give "undetermined"; fewer than 3 raise ValueError.
    """
    tt = np.asarray(t, dtype=np.float64)
    rr = np.asarray(regret, dtype=np.float64)
    if tt.shape != rr.shape or tt.ndim != 1:
        raise ValueError("t and regret must be 1-D arrays of equal length")
    if not (np.all(np.isfinite(tt)) and np.all(np.isfinite(rr))):
        raise ValueError("t and regret must be finite")
    if np.any(np.diff(tt) <= 0) or tt[0] <= 0:
        raise ValueError("t must be strictly increasing and > 0")
    if not 0.0 < r2_floor < 1.0:
        raise ValueError(f"r2_floor must be in (0, 1), got {r2_floor}")
    base_idx = int(np.searchsorted(tt, t0))
    if base_idx >= len(tt) - 3:
        raise ValueError(f"need at least 3 checkpoints after t0={t0} to classify growth")
    x, y = tt[base_idx + 1 :], rr[base_idx + 1 :] - rr[base_idx]
    base_t = int(tt[base_idx])
    pos = y > 0
    slope = float("nan")
    if pos.sum() >= 2:
        slope = float(np.polyfit(np.log(x[pos] - tt[base_idx]), np.log(y[pos]), 1)[0])
    nan = float("nan")
    common: dict[str, Any] = {"loglog_slope": slope, "t0": base_t, "increment": float(y[-1])}
    if np.ptp(y) == 0.0:
        return Growth(
            "bounded",
            0.0,
            {"bounded": 1.0},
            interval=(0.0, 0.0),
            reason="the increments are constant",
            **common,
        )
    per = _period(x, y)
    if per is not None:
        p, drift = per
        tol = 1e-9 * max(float(np.max(np.abs(y))), 1.0) / p
        cls = "bounded" if abs(drift) <= tol else ("linear" if drift > 0 else "decreasing")
        return Growth(
            cls,
            drift,
            {cls: 1.0},
            interval=(drift, drift),
            period=p,
            reason=f"periodic with period {p}, drift {drift:.4g} per step",
            **common,
        )
    fits = {name: fit_model(x, y, name) for name in GROWTH_MODELS}
    power = _best_power(x, y)
    if len(x) < _MIN_POINTS:
        v = _Verdict(
            "undetermined",
            None,
            f"only {len(x)} checkpoints after t0 (at least {_MIN_POINTS} needed)",
            float("nan"),
            (nan, nan),
            1.0,
        )
    else:
        v = _verdict(x, y, fits, r2_floor)
    cls, reason = v.cls, v.reason
    late = np.log(x) >= (np.log(x[0]) + np.log(x[-1])) / 2
    if cls == "logarithmic" and late.sum() < _MIN_LATE:
        cls, reason = "undetermined", f"{reason}, but too few checkpoints to confirm it late"
    if cls != "undetermined" and late.sum() >= _MIN_LATE:
        xl, yl = x[late], y[late] - y[late][0] + 0.0
        late_fits = {name: fit_model(xl, yl, name) for name in GROWTH_MODELS}
        lv = _verdict(xl, yl, late_fits, r2_floor)
        compatible = lv.cls in (cls, "undetermined") or {lv.cls, cls} == {"bounded", "decreasing"}
        if v.reason.endswith("an approach to a limit") and lv.cls != "bounded":
            reason = f"{reason}, but the later half alone does not confirm it ({lv.reason})"
            cls = "undetermined"
        elif cls == "logarithmic" and lv.cls != "logarithmic":
            # one decade of log-like growth is also the end of a long transient: the later
            # half must confirm the class on its own
            reason = f"{reason}, but the later half alone does not confirm it ({lv.reason})"
            cls = "undetermined"
        elif not compatible:
            reason = f"{reason}, but the later half of the checkpoints says {lv.cls} ({lv.reason})"
            cls = "undetermined"
        elif lv.cls == "undetermined" and cls in _BANDS:
            blo, bhi = _BANDS[cls]
            if not blo - _LATE_TOL <= lv.alpha <= bhi + _LATE_TOL:  # a transient still bending
                reason = f"{reason}, but the later half's best exponent is {lv.alpha:.2f}"
                cls = "undetermined"
    # the evidence shown for "undetermined": the best-BIC model's fit (not a class coefficient)
    best = min(fits.values(), key=lambda f: f.bic)
    deciding = v.deciding if cls != "undetermined" else best
    r2 = {name: fits[name].r2 for name in ("logarithmic", "sqrt-like", "linear")}
    r2["bounded"] = fits["inverse"].r2
    r2[cls] = deciding.r2 if deciding is not None else nan
    coef = deciding.b if deciding is not None else nan
    interval = (deciding.b_low, deciding.b_high) if deciding is not None else (nan, nan)
    return Growth(
        cls,
        coef,
        r2,
        interval=interval,
        fits={**fits, "power": power},
        exponent=power.alpha,
        reason=reason,
        exponent_interval=v.interval,
        **common,
    )
