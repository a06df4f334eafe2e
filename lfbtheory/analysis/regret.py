"""The regret ledger: exact comparators for a trajectory of the online loop.

Quantities (kept apart and named precisely; D_s is the Lagrangian dual of batch s,
D_s(p) = sum_tokens topk(s + p) - L sum(p), arXiv 2408.15664 Sec. 3 as an LP):

- dual regret  R_D(t) = sum_{s<=t} D_s(p_s) - min_p sum_{s<=t} D_s(p). Since
  sum_s D_s(p) = D_pool(p) for the pooled batches with capacity t*L, the hindsight price and
  value come from one exact balanced assignment of the pooled tokens (strong duality).
- dual dynamic regret  R_DD(t) = sum_{s<=t} D_s(p_s) - sum_{s<=t} OPT_s >= 0 (weak duality
  per batch): the online prices against each batch's own optimal price.
- primal regret R_P(t) = OPT_pool(t) - sum_{s<=t} reward_s, reported with the cumulative load
  violation V(t) = sum_i max(0, C_i(t) - t L) (tokens over capacity), since an online routing
  that violates capacity can beat the balanced optimum (R_P < 0).
- dynamic gap    G(t) = sum_{s<=t} (OPT_s - reward_s), each batch against its own optimum,
  reported with its per-batch violation V_b(t) = sum_{s<=t} sum_i max(0, c_{s,i} - L).
- price path length P(t) = sum_{s<t} ||p*_{s+1} - p*_s||_2 of the per-batch optimal prices,
  centred to mean 0 (prices are defined up to a constant; :func:`lfbtheory.analysis.drift.
  price_path`); the comparator's variation in the dynamic-regret bounds of online gradient
  descent (Zinkevich 2003, Thm 2). The optimal price of a batch is a set; this is the path of
  the prices the exact solver returns.
- MaxVio_batch(t) and MaxVio_global(t) (arXiv 2408.15664 Sec. 4.1).

Only training batches enter the sums: evaluation batches of the trajectory (``is_eval``) route
but move no bias, so they are dropped before any comparator or sum. Group-limited routing:
there the loads are not those of top-k(s + p), so load - L is not a subgradient of D and the
plain dual curves measure no dual descent. By default (``group_limited="bracket"``) the report
computes them labelled and adds the group-limited ledger of :mod:`lfbtheory.analysis.grouped`
(``group_summary``): the dual regret against min_p sum_t D^G_t(p) and the bracket
lower <= OPT^G <= min D^G <= OPT_LP of the group-limited optimum; ``"label"`` skips the
bracket, ``"refuse"`` raises.

Growth classes come from :func:`lfbtheory.analysis.growth.classify_growth` (re-exported).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.analysis.drift import per_batch_prices, price_path
from lfbtheory.analysis.growth import GROWTH_MODELS, Growth, classify_growth
from lfbtheory.lp import dual_objective
from lfbtheory.lp.model import Method
from lfbtheory.metrics import maxvio, maxvio_global
from lfbtheory.online.loop import Trajectory
from lfbtheory.validation import as_k, as_scores, choice

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
    "GROUP_LIMITED_MODES",
    "SUMMARY_LEGEND",
]

GROUP_LIMITED_MODES = ("bracket", "refuse", "label")


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
    """Exact comparators of a stream, independent of the algorithm (computed once, shared by
    every rule and step size run on the stream).

    batch_optimum (T,): OPT_s; t (C,): prefix lengths; pooled_optimum (C,): OPT_pool(t);
    hindsight_bias (E,): an optimal price of the whole stream; capacity: per-batch L;
    batch_prices (T, E): the optimal price of each batch returned by the solver, centred to
    mean 0 (None if not recorded).
    """

    batch_optimum: NDArray[np.float64]
    t: NDArray[np.int64]
    pooled_optimum: NDArray[np.float64]
    hindsight_bias: NDArray[np.float64]
    capacity: int
    batch_prices: NDArray[np.float64] | None = None


def compute_comparators(
    batches: Sequence[ArrayLike] | NDArray[np.float64],
    k: int,
    *,
    solver: Method = "auto",
    num_checkpoints: int = 40,
    progress: Callable[[int, int], None] | None = None,
) -> Comparators:
    """Solve every batch and the pooled prefixes at :func:`checkpoints` exactly.

    Incremental along the stream: each batch's solve is warm-started from the previous
    batch's optimal price (:func:`lfbtheory.analysis.drift.per_batch_prices`) and each pooled
    prefix from the previous prefix's (:func:`lfbtheory.lp.solve_prefixes`), so only
    the time depends on the order, never the optima. A materialised (T, n, E) float64 array
    is checked once and pooled by a reshape (no copy); a list is stacked once.
    """
    from lfbtheory.lp.solve import solve_prefixes

    arr = _as_stream(batches)
    t_len, n, e = arr.shape
    k = as_k(k, e)
    if (n * k) % e:
        raise ValueError("every batch needs the same n with n*k divisible by E (capacity n*k/E)")
    cap = n * k // e
    grid = checkpoints(t_len, num_checkpoints)
    total = t_len + len(grid)
    tick = None if progress is None else (lambda i: progress(i, total))
    per_batch = per_batch_prices(arr, k, method=solver, progress=tick)
    pooled = np.empty(len(grid))
    hindsight = np.zeros(e)
    for j, (opt, price) in enumerate(solve_prefixes(arr, k, grid, method=solver, output="optima")):
        pooled[j], hindsight = opt, price
        if progress:
            progress(t_len + j + 1, total)
    return Comparators(per_batch.optimum, grid, pooled, hindsight, cap, per_batch.prices)


def _checked_stream(
    batches: Sequence[ArrayLike] | NDArray[np.float64],
) -> NDArray[np.float64] | list[NDArray[np.float64]]:
    """A finite (T, n, E) float64 array as it is (one check), else :func:`_stack`."""
    if _is_stack(batches) and bool(np.isfinite(cast(NDArray[np.float64], batches)).all()):
        return cast(NDArray[np.float64], batches)
    return _stack(batches)


def _is_stack(batches: object) -> bool:
    """True for a non-empty (T, n, E) float64 array (its values not yet checked)."""
    return (
        isinstance(batches, np.ndarray)
        and batches.ndim == 3
        and batches.dtype == np.float64
        and batches.size > 0
    )


def _as_stream(batches: Sequence[ArrayLike] | NDArray[np.float64]) -> NDArray[np.float64]:
    """The stream as one (T, n, E) float64 array: a finite float64 array as it is (one check),
    anything else batch by batch (errors name ``batches[i]``), then stacked."""
    bs = _checked_stream(batches)
    if isinstance(bs, np.ndarray):
        return bs
    if len({b.shape[0] for b in bs}) != 1:
        raise ValueError("every batch needs the same n with n*k divisible by E (capacity n*k/E)")
    return np.stack(bs)


@dataclass(frozen=True)
class RegretReport:
    """Curves over prefix lengths ``t`` (checkpoints, counted in training batches) and per
    training batch (T,).

    dual_regret, dual_dynamic_regret, primal_regret, violation (cumulative loads' tokens over
    capacity), dynamic_gap, batch_violation (per-batch tokens over capacity, summed),
    price_path (path length of the per-batch optimal prices; NaN if the comparators hold no
    prices): at checkpoints; dual_value (T,) D_s(p_s); batch_optimum (T,); maxvio_batch (T,),
    maxvio_global (T,); growth: class of each regret curve; eval_excluded: evaluation rows
    dropped; group_limited: True if the routing was group-limited (the dual curves are then
    labelled, not dual descent).
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
    dual_dynamic_regret: NDArray[np.float64] | None = None
    batch_violation: NDArray[np.float64] | None = None
    price_path: NDArray[np.float64] | None = None
    eval_excluded: int = 0
    group_limited: bool = False
    group_summary: dict[str, float | int | bool] | None = None

    def summary(self) -> dict[str, float | str | bool]:
        """Final values and growth classes as a flat JSON-ready dict (SUMMARY_LEGEND)."""
        out: dict[str, float | str | bool] = {
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
        if self.dual_dynamic_regret is not None:
            out["dual_dynamic_regret"] = float(self.dual_dynamic_regret[-1])
        if self.batch_violation is not None:
            out["batch_violation_tokens"] = float(self.batch_violation[-1])
        if self.price_path is not None:
            out["price_path_length"] = float(self.price_path[-1])
        out["eval_batches_excluded"] = int(self.eval_excluded)
        out["group_limited"] = bool(self.group_limited)
        if self.group_summary is not None:
            out.update({f"grouped_{key}": val for key, val in self.group_summary.items()})
        for name, g in self.growth.items():
            out[f"{name}_growth"] = g.cls
            out[f"{name}_growth_coef"] = g.coef
            out[f"{name}_growth_r2"] = g.r2.get(g.cls, float("nan"))
            out[f"{name}_loglog_slope"] = g.loglog_slope
        return out


SUMMARY_LEGEND: dict[str, str] = {
    "T": "training batches in the ledger (evaluation batches excluded)",
    "dual_regret": "sum_s D_s(p_s) - min_p sum_s D_s(p) at T (pooled hindsight price)",
    "dual_regret_at_burn_in": "the dual regret at the burn-in t0 (interpolated)",
    "primal_regret": "OPT_pool(T) - sum_s reward_s (can be < 0 when capacity is violated)",
    "violation_tokens": "sum_i max(0, C_i(T) - T L): cumulative loads' tokens over capacity",
    "dynamic_gap": "sum_s (OPT_s - reward_s): primal gap to each batch's own optimum",
    "dual_dynamic_regret": "sum_s D_s(p_s) - sum_s OPT_s >= 0: dual gap to each batch's optimum",
    "batch_violation_tokens": "sum_s sum_i max(0, c_{s,i} - L): per-batch tokens over capacity",
    "price_path_length": "sum_s ||p*_{s+1} - p*_s||_2, per-batch optimal prices centred to mean 0",
    "maxvio_batch_mean_late": "mean of MaxVio_batch = (max_i c_i - L)/L after the burn-in",
    "maxvio_batch_final": "MaxVio_batch of the last training batch",
    "maxvio_global_final": "MaxVio of the cumulative loads at T",
    "eval_batches_excluded": "evaluation rows of the trajectory dropped before every sum",
    "group_limited": "routing was group-limited: D curves are labelled, not dual descent",
    "grouped_*": "group-limited ledger (analysis.grouped.GroupLedger.summary), bracket mode only",
}


def _dual_values(
    trajectory: Trajectory,
    bs: Sequence[NDArray[np.float64]] | NDArray[np.float64],
    keep: NDArray[np.bool_],
    k: int,
    cap: int,
) -> NDArray[np.float64]:
    """D_s(p_s) of the kept rows. For plain additive top-k routing the routed experts ARE
    top-k(s + p_s), so D_s(p_s) = reward_s + sum_i p_{s,i} (c_{s,i} - L), vectorised over the
    stream; otherwise :func:`lfbtheory.lp.dual_objective` evaluates D at p_s exactly."""
    if trajectory.bias_mode != "additive":
        return np.full(len(bs), np.nan)
    bias = trajectory.bias[keep]
    if not trajectory.group_limited:
        loads = trajectory.loads[keep].astype(np.float64)
        return trajectory.reward[keep] + np.einsum("ij,ij->i", bias, loads - float(cap))
    return np.array(
        [dual_objective(b, k=k, bias=p, capacity=cap) for b, p in zip(bs, bias, strict=True)]
    )


def regret_report(
    trajectory: Trajectory,
    batches: Sequence[ArrayLike],
    k: int,
    *,
    comparators: Comparators | None = None,
    burn_in: int | None = None,
    solver: Method = "auto",
    group_limited: str = "bracket",
) -> RegretReport:
    """Compute the regret ledger of ``trajectory`` on the ``batches`` it was run on.

    ``batches`` has one entry per trajectory row (evaluation rows included); only training
    rows enter the ledger, and ``comparators`` (if given) must be those of the training
    batches. ``burn_in`` (default T // 10, T = training batches) separates the transient from
    the growth that is classified. Dual quantities need an additive bias; for multiplicative
    rules they are NaN (that bias is not a price in the additive dual). Group-limited routing
    gets the group-limited bracket (``"bracket"``), labelled curves only (``"label"``) or a
    ValueError (``"refuse"``) (module docstring).
    """
    choice(group_limited, "group_limited", GROUP_LIMITED_MODES)
    if trajectory.group_limited and group_limited == "refuse":
        raise ValueError(
            "the trajectory was routed group-limited (n_groups/topk_groups): its loads are not "
            "those of top-k(s + p), so load - L is not a subgradient of the dual D and its dual "
            "regret measures no dual descent; pass group_limited='label' to compute the ledger "
            "anyway, labelled"
        )
    # A stacked stream's values are checked where they are read (compute_comparators,
    # dual_objective); with comparators given, only its length and E are used here.
    bs_all: NDArray[np.float64] | list[NDArray[np.float64]] = (
        cast(NDArray[np.float64], batches) if _is_stack(batches) else _stack(batches)
    )
    if len(bs_all) != len(trajectory):
        raise ValueError(f"trajectory has {len(trajectory)} rows but batches has {len(bs_all)}")
    k = as_k(k, bs_all[0].shape[1])
    if k != trajectory.k:
        raise ValueError(f"k={k} differs from the trajectory's k={trajectory.k}")
    keep = ~np.asarray(trajectory.is_eval, dtype=bool)
    if not keep.any():
        raise ValueError("the trajectory has no training batches (every row is an eval batch)")
    if isinstance(bs_all, np.ndarray):
        bs = bs_all if keep.all() else bs_all[keep]
    else:
        bs = [b for b, kept in zip(bs_all, keep, strict=True) if kept]
    comp = comparators if comparators is not None else compute_comparators(bs, k, solver=solver)
    if len(comp.batch_optimum) != len(bs):
        raise ValueError(
            f"comparators were computed for {len(comp.batch_optimum)} batches, the trajectory "
            f"has {len(bs)} training batches"
        )
    cap = comp.capacity
    dual = _dual_values(trajectory, bs, keep, k, cap)
    loads = trajectory.loads[keep]
    reward = trajectory.reward[keep]
    idx = comp.t - 1
    cum_dual = np.cumsum(dual)[idx]
    cum_reward = np.cumsum(reward)[idx]
    cum_loads = np.cumsum(loads, axis=0)[idx]
    violation = np.maximum(cum_loads - comp.t[:, None] * cap, 0).sum(axis=1).astype(np.float64)
    gap = np.cumsum(comp.batch_optimum - reward)[idx]
    per_batch_over = np.maximum(loads - cap, 0).sum(axis=1).astype(np.float64)
    path = None if comp.batch_prices is None else price_path(comp.batch_prices)[idx]
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
        maxvio_batch=np.asarray(maxvio(loads)),
        maxvio_global=maxvio_global(loads),
        hindsight_bias=comp.hindsight_bias,
        burn_in=burn,
        dual_dynamic_regret=cum_dual - np.cumsum(comp.batch_optimum)[idx],
        batch_violation=np.cumsum(per_batch_over)[idx],
        price_path=path,
        eval_excluded=int((~keep).sum()),
        group_limited=bool(trajectory.group_limited),
    )
    growth = {}
    for name in ("dual_regret", "dynamic_gap"):
        curve = getattr(report, name)
        if np.all(np.isfinite(curve)) and np.sum(comp.t > burn) >= 4:
            growth[name] = classify_growth(comp.t, curve, burn)
    extra: dict[str, object] = {"growth": growth}
    additive = trajectory.bias_mode == "additive"
    if trajectory.group_limited and group_limited == "bracket" and additive:
        from lfbtheory.analysis.grouped import group_ledger

        extra["group_summary"] = group_ledger(trajectory, bs_all, k).summary()
    return RegretReport(**{**report.__dict__, **extra})


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
    from lfbtheory.online.updates import make_rule

    if rule not in ("sign", "centered_sign"):
        raise ValueError(f"rule must be 'sign' or 'centered_sign' (lattice rules), got {rule!r}")
    s = as_scores(batch, name="batch")
    state = None
    lattice_rule = make_rule(rule, step)
    history: list[NDArray[np.float64]] = []
    while len(history) * chunk < max_steps:
        tr = simulate(np.broadcast_to(s, (chunk, *s.shape)), k, lattice_rule, state=state)
        state = tr.state
        history.append(tr.bias)
        spacing = step / s.shape[1] if rule == "centered_sign" else step
        cyc = detect_limit_cycle(np.concatenate(history), spacing, origin=history[0][0])
        if cyc.found:
            return cyc
    return LimitCycle(False, -1, 0, float("nan"))
