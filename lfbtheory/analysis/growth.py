"""Growth class of a regret curve, with the evidence for it (or "undetermined").

On the increments after a burn-in t0, y(t) = R(t) - R(t0) for t > t0, fit by least squares

    constant     y = a                    (1 parameter)   \\  "bounded"
    inverse      y = a + b / t            (2)             /
    logarithmic  y = a + b ln t           (2)
    sqrt-like    y = a + b sqrt t         (2)
    linear       y = a + b t              (2)
    power        y = a + b t^alpha        (3; alpha on a grid in [0.1, 2]; a reference only)

and select by BIC = m ln(RSS/m) + p ln m (Schwarz 1978), which charges the extra parameter of a
trend term. Then, in order:

- a per-step curve (unit spacing at the tail) whose increments repeat with a period P is
  classified exactly: "bounded" with ``period`` P if it does not drift, else "linear" /
  "decreasing" with the drift per step as b;
- "bounded" if a bounded model wins, or the winning trend's 95% interval for b contains 0;
- "decreasing" if b < 0 (regret that falls is not a growth rate);
- "undetermined" if the best fit's R^2 is below ``r2_floor``, if the power law beats every
  class by more than 10 in BIC with an exponent away from the class's (t^0.75, t ln t), or if
  the later half of the checkpoints selects a different class (a transient still decaying;
  "bounded" and "decreasing" are compatible: a bounded curve may fall late).

The result keeps every fit (coefficients, 95% intervals, R^2, BIC), so a reader can see why.
A single log-log slope misleads (a + b ln t has slope 1/ln(t/t0) near t0); it is reported
(``loglog_slope``) but never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

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
_ALPHAS = np.round(np.arange(0.10, 2.0001, 0.01), 2)
_BIC_MARGIN = 10.0  # "very strong" evidence on Kass & Raftery's (1995) scale of BIC differences


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
    curve; the linear trend when the constant model wins); interval: its 95% interval;
    r2: R^2 per class ("bounded" = the inverse model's) and r2[cls] = R^2 of the deciding fit
    (NaN if none); fits: every model's :class:`Fit`;
    exponent: alpha of the best power law; period: of a periodic per-step curve; reason: why
    this class; loglog_slope: slope of log y on log(t - t0) (reported only); increment:
    y at the last t.
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
    """Student's t quantile (cached: a classification asks for the same few dof)."""
    return float(stats.t.ppf(q, dof))


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


def _select(
    x: NDArray[np.float64], y: NDArray[np.float64], r2_floor: float
) -> tuple[str, Fit | None, dict[str, Fit], Fit, str]:
    fits = {name: fit_model(x, y, name) for name in GROWTH_MODELS}
    power = _best_power(x, y)
    best = min(fits.values(), key=lambda f: f.bic)
    if best.model == "inverse":
        return "bounded", best, fits, power, "bounded model a + b/t has the best BIC"
    if best.model == "constant":  # report the (insignificant) linear trend as the evidence
        lin = fits["linear"]
        reason = (
            f"the constant model has the best BIC; linear trend b in "
            f"[{lin.b_low:.3g}, {lin.b_high:.3g}]"
        )
        return "bounded", lin, fits, power, reason
    if best.b_low <= 0.0 <= best.b_high:
        return "bounded", best, fits, power, f"the {best.model} trend's interval contains 0"
    if best.b < 0:
        return "decreasing", best, fits, power, f"{best.model} fit with b < 0"
    if best.r2 < r2_floor:
        return (
            "undetermined",
            best,
            fits,
            power,
            (f"best fit {best.model} has R^2 {best.r2:.3f} < {r2_floor}"),
        )
    if power.bic < best.bic - _BIC_MARGIN and abs(power.alpha - _EXPONENT[best.model]) >= 0.05:
        return (
            "undetermined",
            best,
            fits,
            power,
            (
                f"a power law t^{power.alpha:.2f} fits better than every class "
                f"(BIC {power.bic:.1f} vs {best.bic:.1f} for {best.model})"
            ),
        )
    return best.model, best, fits, power, f"{best.model} has the best BIC"


def classify_growth(t: ArrayLike, regret: ArrayLike, t0: int, *, r2_floor: float = 0.9) -> Growth:
    """Classify y(t) = R(t) - R(t0), t > t0 (see the module docstring for the rules).

    ``t``: increasing prefix lengths (e.g. log-spaced checkpoints, or 1..T); ``regret``: R at
    those t; ``t0``: the burn-in (the first checkpoint >= t0 is the base). Fewer than 6 points
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
    common = {"loglog_slope": slope, "t0": base_t, "increment": float(y[-1])}
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
    if len(x) < 6:
        return Growth(
            "undetermined",
            nan,
            {"undetermined": nan},
            reason=f"only {len(x)} checkpoints after t0",
            **common,
        )
    cls, deciding, fits, power, reason = _select(x, y, r2_floor)
    half = len(x) // 2
    if cls != "undetermined" and len(x) - half >= 6:
        late_cls, *_ = _select(x[half:], y[half:], r2_floor)
        if late_cls != cls and {late_cls, cls} != {"bounded", "decreasing"}:
            reason = f"{reason}, but the later half of the checkpoints says {late_cls}"
            cls = "undetermined"
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
        **common,
    )
