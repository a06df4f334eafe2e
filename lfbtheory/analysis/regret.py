"""The regret ledger: exact comparators for a trajectory of the online loop.

Quantities (DESIGN.md Sec. 2; kept apart and named precisely):

- dual regret  R_D(t) = sum_{s<=t} D_s(p_s) - min_p sum_{s<=t} D_s(p). Since
  sum_s D_s(p) = D_pool(p) for the pooled batches with capacity t*L, the hindsight price and
  value come from one exact balanced assignment of the pooled tokens (strong duality).
- primal regret R_P(t) = OPT_pool(t) - sum_{s<=t} reward_s, reported with the cumulative load
  violation V(t) = sum_i max(0, C_i(t) - t L) (tokens over capacity), since an online routing
  that violates capacity can beat the balanced optimum (R_P < 0).
- dynamic gap    G(t) = sum_{s<=t} (OPT_s - reward_s), each batch against its own optimum.
- MaxVio_batch(t) and MaxVio_global(t) (arXiv 2408.15664 Sec. 4.1).

Growth (:func:`classify_growth`): on increments after a burn-in t0, y(t) = R(t) - R(t0), fit
y = a + b f(t) by least squares for f in {-1/t (bounded), ln t (logarithmic), sqrt t
(sqrt-like), t (linear)}; the class is the best fit by R^2 (all models have two parameters).
A single log-log slope misleads (DESIGN.md Sec. 2), so it is reported but not used to classify.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.lp import dual_objective, solve_balanced
from lfbtheory.metrics import maxvio, maxvio_global
from lfbtheory.online.loop import Trajectory
from lfbtheory.validation import as_k, as_scores

__all__ = [
    "Comparators",
    "Growth",
    "LimitCycle",
    "RegretReport",
    "checkpoints",
    "classify_growth",
    "compute_comparators",
    "detect_limit_cycle",
    "fixed_batch_cycle",
    "regret_report",
    "GROWTH_MODELS",
]

GROWTH_MODELS: dict[str, Callable[[NDArray[np.float64]], NDArray[np.float64]]] = {
    "bounded": lambda t: -1.0 / t,
    "logarithmic": np.log,
    "sqrt-like": np.sqrt,
    "linear": lambda t: t,
}


def checkpoints(horizon: int, num: int = 40) -> NDArray[np.int64]:
    """Geometric grid of prefix lengths 1..horizon (always including horizon)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    grid = np.unique(np.round(np.geomspace(1, horizon, max(2, num))).astype(np.int64))
    return np.union1d(grid, [horizon]).astype(np.int64)


def _stack(batches: Sequence[ArrayLike] | NDArray[np.float64]) -> list[NDArray[np.float64]]:
    out = [as_scores(b, name=f"batches[{i}]") for i, b in enumerate(batches)]
    if not out:
        raise ValueError("batches must hold at least one (n, E) array")
    e = out[0].shape[1]
    for i, b in enumerate(out):
        if b.shape[1] != e:
            raise ValueError(f"batches[{i}] has E={b.shape[1]}, batches[0] has E={e}")
    return out


@dataclass(frozen=True)
class Comparators:
    """Exact comparators of a stream, independent of the algorithm (computed once, shared).

    batch_optimum (T,): OPT_s; t (C,): prefix lengths; pooled_optimum (C,): OPT_pool(t);
    hindsight_bias (E,): an optimal price of the whole stream; capacity: per-batch L.
    """

    batch_optimum: NDArray[np.float64]
    t: NDArray[np.int64]
    pooled_optimum: NDArray[np.float64]
    hindsight_bias: NDArray[np.float64]
    capacity: int


def _solve(scores: NDArray[np.float64], k: int, solver: str, warm: NDArray[np.float64] | None):
    return solve_balanced(scores, k, method=solver, warm_start=warm)  # type: ignore[arg-type]


def compute_comparators(
    batches: Sequence[ArrayLike],
    k: int,
    *,
    solver: str = "auto",
    num_checkpoints: int = 40,
    progress: Callable[[int, int], None] | None = None,
) -> Comparators:
    """Solve every batch and the pooled prefixes at :func:`checkpoints` exactly."""
    bs = _stack(batches)
    e = bs[0].shape[1]
    k = as_k(k, e)
    caps = {b.shape[0] * k for b in bs}
    if len(caps) != 1 or next(iter(caps)) % e:
        raise ValueError("every batch needs the same n with n*k divisible by E (capacity n*k/E)")
    cap = next(iter(caps)) // e
    grid = checkpoints(len(bs), num_checkpoints)
    total = len(bs) + len(grid)
    batch_opt = np.empty(len(bs))
    warm = None
    for i, b in enumerate(bs):
        sol = _solve(b, k, solver, warm)
        batch_opt[i] = sol.objective
        warm = sol.bias
        if progress:
            progress(i + 1, total)
    pooled = np.empty(len(grid))
    warm = None
    for j, t in enumerate(grid):
        sol = _solve(np.concatenate(bs[:t]), k, solver, warm)
        pooled[j] = sol.objective
        warm = sol.bias
        if progress:
            progress(len(bs) + j + 1, total)
    return Comparators(batch_opt, grid, pooled, sol.bias, cap)


@dataclass(frozen=True)
class Growth:
    """Fitted growth of a regret curve's increments after burn-in ``t0``.

    cls: best model by R^2; coef: its b; r2: R^2 of every model; loglog_slope: slope of
    log(y) on log(t) (reported only; misleading on its own).
    """

    cls: str
    coef: float
    r2: dict[str, float]
    loglog_slope: float
    t0: int
    increment: float


def classify_growth(t: ArrayLike, regret: ArrayLike, t0: int) -> Growth:
    """Classify y(t) = R(t) - R(t0) for t > t0 by the best two-parameter fit a + b f(t)."""
    tt = np.asarray(t, dtype=np.float64)
    rr = np.asarray(regret, dtype=np.float64)
    if tt.shape != rr.shape or tt.ndim != 1:
        raise ValueError("t and regret must be 1-D arrays of equal length")
    base_idx = int(np.searchsorted(tt, t0))
    if base_idx >= len(tt) - 3:
        raise ValueError(f"need at least 3 checkpoints after t0={t0} to classify growth")
    base = rr[base_idx]
    x, y = tt[base_idx + 1 :], rr[base_idx + 1 :] - base
    r2 = {}
    coefs = {}
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    for name, f in GROWTH_MODELS.items():
        fx = f(x)
        a_mat = np.column_stack([np.ones_like(fx), fx])
        sol, *_ = np.linalg.lstsq(a_mat, y, rcond=None)
        resid = y - a_mat @ sol
        r2[name] = 1.0 - float(resid @ resid) / ss_tot if ss_tot > 0 else 1.0
        coefs[name] = float(sol[1])
    if ss_tot == 0:
        cls = "bounded"
    else:
        cls = max(r2, key=lambda m: r2[m])
    pos = y > 0
    slope = float("nan")
    if pos.sum() >= 2:
        slope = float(np.polyfit(np.log(x[pos] - tt[base_idx]), np.log(y[pos]), 1)[0])
    return Growth(cls, coefs[cls], r2, slope, int(tt[base_idx]), float(y[-1]))


@dataclass(frozen=True)
class RegretReport:
    """Curves over prefix lengths ``t`` (checkpoints) and per batch (T,).

    dual_regret, primal_regret, violation (tokens over capacity, summed over experts),
    dynamic_gap: at checkpoints; dual_value (T,) D_s(p_s); batch_optimum (T,);
    maxvio_batch (T,), maxvio_global (T,); growth: class of each regret curve.
    """

    t: NDArray[np.int64]
    dual_regret: NDArray[np.float64]
    primal_regret: NDArray[np.float64]
    violation: NDArray[np.float64]
    dynamic_gap: NDArray[np.float64]
    dual_value: NDArray[np.float64]
    batch_optimum: NDArray[np.float64]
    maxvio_batch: NDArray[np.float64]
    maxvio_global: NDArray[np.float64]
    hindsight_bias: NDArray[np.float64]
    burn_in: int
    growth: dict[str, Growth] = field(default_factory=dict)

    def summary(self) -> dict[str, float | str]:
        """Final values and growth classes as a flat JSON-ready dict."""
        out: dict[str, float | str] = {
            "T": int(self.t[-1]),
            "dual_regret": float(self.dual_regret[-1]),
            "dual_regret_at_burn_in": float(np.interp(self.burn_in, self.t, self.dual_regret)),
            "primal_regret": float(self.primal_regret[-1]),
            "violation_tokens": float(self.violation[-1]),
            "dynamic_gap": float(self.dynamic_gap[-1]),
            "maxvio_batch_mean_late": float(np.mean(self.maxvio_batch[self.burn_in :])),
            "maxvio_batch_final": float(self.maxvio_batch[-1]),
            "maxvio_global_final": float(self.maxvio_global[-1]),
        }
        for name, g in self.growth.items():
            out[f"{name}_growth"] = g.cls
            out[f"{name}_growth_coef"] = g.coef
            out[f"{name}_growth_r2"] = g.r2[g.cls]
            out[f"{name}_loglog_slope"] = g.loglog_slope
        return out


def regret_report(
    trajectory: Trajectory,
    batches: Sequence[ArrayLike],
    k: int,
    *,
    comparators: Comparators | None = None,
    burn_in: int | None = None,
    solver: str = "auto",
) -> RegretReport:
    """Compute the regret ledger of ``trajectory`` on the ``batches`` it was run on.

    ``burn_in`` (default T // 10) separates the transient from the growth that is classified.
    Dual regret needs an additive bias; for multiplicative rules it is NaN (the multiplicative
    bias is not a price in the additive dual).
    """
    bs = _stack(batches)
    if len(bs) != len(trajectory):
        raise ValueError(f"trajectory has {len(trajectory)} rows but batches has {len(bs)}")
    k = as_k(k, bs[0].shape[1])
    if k != trajectory.k:
        raise ValueError(f"k={k} differs from the trajectory's k={trajectory.k}")
    comp = comparators if comparators is not None else compute_comparators(bs, k, solver=solver)
    if len(comp.batch_optimum) != len(bs):
        raise ValueError("comparators were computed for a different number of batches")
    cap = comp.capacity
    if trajectory.bias_mode == "additive":
        dual = np.array(
            [
                dual_objective(b, k, p, capacity=cap)
                for b, p in zip(bs, trajectory.bias, strict=True)
            ]
        )
    else:
        dual = np.full(len(bs), np.nan)
    idx = comp.t - 1
    cum_dual = np.cumsum(dual)[idx]
    cum_reward = np.cumsum(trajectory.reward)[idx]
    cum_loads = np.cumsum(trajectory.loads, axis=0)[idx]
    violation = np.maximum(cum_loads - comp.t[:, None] * cap, 0).sum(axis=1).astype(np.float64)
    gap = np.cumsum(comp.batch_optimum - trajectory.reward)[idx]
    t_len = len(bs)
    burn = t_len // 10 if burn_in is None else int(burn_in)
    if not 0 <= burn < t_len:
        raise ValueError(f"burn_in must be in [0, T={t_len}), got {burn}")
    report = RegretReport(
        t=comp.t,
        dual_regret=cum_dual - comp.pooled_optimum,
        primal_regret=comp.pooled_optimum - cum_reward,
        violation=violation,
        dynamic_gap=gap,
        dual_value=dual,
        batch_optimum=comp.batch_optimum,
        maxvio_batch=np.asarray(maxvio(trajectory.loads)),
        maxvio_global=maxvio_global(trajectory.loads),
        hindsight_bias=comp.hindsight_bias,
        burn_in=burn,
    )
    growth = {}
    for name in ("dual_regret", "dynamic_gap"):
        curve = getattr(report, name)
        if np.all(np.isfinite(curve)) and np.sum(comp.t > burn) >= 4:
            growth[name] = classify_growth(comp.t, curve, burn)
    return RegretReport(**{**report.__dict__, "growth": growth})


@dataclass(frozen=True)
class LimitCycle:
    """Eventual period of a lattice bias trajectory.

    b[start + period] = b[start] + drift * 1 (drift = 0 for an exact repeat); band_width =
    max_i (max - min of b_i - mean(b) over one period), in bias units.
    """

    found: bool
    start: int
    period: int
    band_width: float
    drift: float = 0.0


def detect_limit_cycle(
    bias: ArrayLike, step: float, origin: ArrayLike | None = None, *, modulo_shift: bool = True
) -> LimitCycle:
    """Find the first repeated state of a constant-step lattice trajectory on a fixed batch.

    Sign updates with constant step u keep b - b_0 on the lattice u Z^E (u Z^E / E when
    centred), and the dynamics on a fixed batch is deterministic, so a bounded trajectory is
    eventually periodic (proofs/proof_07_bounded_bias.py). Routing depends on b only up to a
    common shift, so by default states are compared modulo shifts (the uncentred sign rule can
    cycle while every bias drifts by the same amount per period: ``drift``). States are exact
    lattice points round((b - b_0) / step).
    """
    b = np.asarray(bias, dtype=np.float64)
    if b.ndim != 2:
        raise ValueError(f"bias must be (T, E), got {b.shape}")
    u = float(step)
    if not u > 0:
        raise ValueError(f"step must be > 0, got {step}")
    b0 = b[0] if origin is None else np.asarray(origin, dtype=np.float64)
    coords = (b - b0) / u
    lattice = np.rint(coords)
    if np.max(np.abs(coords - lattice)) > 1e-6:
        raise ValueError("bias trajectory is not on the lattice b_0 + step * Z^E")
    z = lattice.astype(np.int64)
    keys = z - z[:, :1] if modulo_shift else z
    seen: dict[bytes, int] = {}
    for t, row in enumerate(keys):
        key = row.tobytes()
        if key in seen:
            start = seen[key]
            cyc = b[start:t] - b[start:t].mean(axis=1, keepdims=True)
            drift = float(np.mean(b[t] - b[start]))
            return LimitCycle(True, start, t - start, float(np.max(cyc.max(0) - cyc.min(0))), drift)
        seen[key] = t
    return LimitCycle(False, -1, 0, float("nan"))


def fixed_batch_cycle(
    batch: ArrayLike,
    k: int,
    rule: str = "sign",
    step: float = 1e-3,
    *,
    max_steps: int = 20000,
    chunk: int = 500,
) -> LimitCycle:
    """Run a constant-step lattice rule on one batch repeated, until its bias state repeats.

    Returns the :class:`LimitCycle` (found=False if no repeat within ``max_steps``).
    """
    from lfbtheory.online.loop import simulate

    if rule not in ("sign", "centered_sign"):
        raise ValueError(f"rule must be 'sign' or 'centered_sign' (lattice rules), got {rule!r}")
    s = as_scores(batch, name="batch")
    state = None
    history: list[NDArray[np.float64]] = []
    while len(history) * chunk < max_steps:
        tr = simulate([s] * chunk, k, rule, step, state=state)
        state = tr.state
        history.append(tr.bias)
        spacing = step / s.shape[1] if rule == "centered_sign" else step
        cyc = detect_limit_cycle(np.concatenate(history), spacing, origin=history[0][0])
        if cyc.found:
            return cyc
    return LimitCycle(False, -1, 0, float("nan"))
