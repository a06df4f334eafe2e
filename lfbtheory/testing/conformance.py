"""Router conformance suite: named properties any router can be put through.

Run it three ways: ``run_conformance(router) -> ConformanceReport`` (this module), the pytest
fixture ``lfb_conformance`` (:mod:`lfbtheory.testing.pytest_plugin`), or
``lfb check MODULE:CALLABLE`` on the command line.

Which properties apply depends on what the router exposes (:mod:`lfbtheory.routers`):
a bare ``router(scores, state) -> (selection, state)`` gets ``selection_valid`` and
``causality``; a router with ``select(scores, bias)`` gets every bias property; a
:class:`lfbtheory.routers.BiasRouter` (token choice with a bias and a training lifecycle) gets
all of them. Each result is PASS, FAIL, SKIP (applies, but a capability is missing; the reason
says which) or N/A (does not apply to the router's declared design). A router with a bias that
was not checked by every bias property (:data:`BIAS_PROPERTIES`) is a coverage gap: the report
is not ``ok`` (:class:`ConformanceReport`).

Ties: instances are exact (scores on {1..256}/256, biases in Z/256, shifts |c| <= 1024: exact
in float32), so the oracles know every exact tie and accept any tie-break of a token tied at
the k-th place or at the group boundary (:func:`tie_bounds`; torch.topk promises no order
among equal values); untied tokens are checked exactly. A router computing its own gate must
reproduce the suite's scores within 2^-10 (float32 sigmoid of logit(s): ~1e-7), far below the
grid spacing 2^-8, so round-off only decides exact ties.

Properties (each targets a bug class; the classes and their public sources are tabulated in
docs/design.md, Sec. 4):

========================== ======================================================================
selection_valid            ids in [0, E), no expert twice per token (or a bool mask); deterministic
gate_weights_bias_free     weights of a fixed selected set do not depend on the bias
bias_shift_invariance      b -> b + c selects the same (dyadic c, |c| <= 1024, negative included)
selected_in_selected_groups group-limited routing picks experts only in the top groups
steering_monotonicity      raising b_i never drops i, lowering never adds it; a bias raised past
                           the score range sends every token to i (every expert)
steering_factor            the measured factor a of s + a b (s * b^a) contains the declared 1
closed_loop_balance        the router's own forward/step balances a skewed stationary stream
                           within twice the steps the declared rule needs
update_oracle              the bias follows the declared rule exactly for deterministic loads
no_update_when_balanced    balanced loads leave the bias unchanged
count_scale_invariance     counts m*c (double counting, m = 2, 3) give the update of c
microbatch_accumulation    micro-batches then one step == one step on the concatenated batch
data_parallel_reduction    summed shard loads == single-process loads; replica biases identical
count_precision            counts at ~40k: no sign flip of (mean - load) vs exact integers
passes_that_do_not_count   eval / no-grad / recompute passes move neither counts nor bias
frozen_bias                a frozen bias stays frozen
one_update_per_step        k micro-batches + one optimizer step == exactly one update
checkpoint_roundtrip       bias persisted in >= float32; resume continues bit-identically
padding_excluded           padding tokens are not counted (n == E included)
bias_drift                 drift measured; the router's choice with a drifted bias equals the
                           float32 choice; how often a bf16-rounded bias changes the top-k reported
causality                  no routing depends on later tokens (:mod:`lfbtheory.analysis.causality`)
========================== ======================================================================

Precision is emulated in numpy: :func:`to_bfloat16` rounds float32 to the nearest bfloat16
(round-to-nearest-even on the top 16 bits), :func:`to_float16` is ``np.float16``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.metrics import expert_loads, maxvio
from lfbtheory.online import updates
from lfbtheory.routers import TokenChoice, selection_mask
from lfbtheory.routing import selection_scores

__all__ = [
    "PropertyResult",
    "ConformanceReport",
    "Config",
    "PROPERTIES",
    "run_conformance",
    "reference_router",
    "to_bfloat16",
    "to_float16",
    "scores_for_loads",
    "is_bias_router",
    "has_bias",
    "tie_bounds",
    "BIAS_PROPERTIES",
    "router_scores",
    "score_scale",
    "resolution",
]

LIFECYCLE = ("init", "select", "forward", "step", "bias", "counts", "state_dict", "load_state_dict")


# ---------------------------------------------------------------------------------------------
# precision emulation and instance builders


def to_bfloat16(x: ArrayLike) -> NDArray[np.float32]:
    """Round to the nearest bfloat16 (ties to even), returned as float32 holding bf16 values.

    bf16 keeps the top 16 bits of a float32 (8 exponent bits, 7 stored mantissa bits); adding
    0x7FFF + (bit 16) before truncation rounds to nearest, ties to even. Finite inputs only.
    """
    a = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("to_bfloat16 needs finite values")
    u = a.view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32).reshape(a.shape)


def to_float16(x: ArrayLike) -> NDArray[np.float16]:
    """IEEE half precision (np.float16, round to nearest even)."""
    return np.asarray(x, dtype=np.float16)


def scores_for_loads(loads: ArrayLike, k: int) -> NDArray[np.float64]:
    """Scores whose plain top-k gives exactly ``loads``: 1 on each token's k assigned experts,
    0 elsewhere (any bias with spread < 1 keeps that choice).

    n = sum(loads) / k tokens; the multiset of experts (expert i repeated loads[i] times) is
    dealt column-wise, so token t gets items t, t + n, ..., distinct when every load <= n.
    """
    c = np.asarray(loads, dtype=np.int64)
    total = int(c.sum())
    if total % k or np.any(c < 0):
        raise ValueError(f"loads must be >= 0 and sum to a multiple of k={k}, got sum {total}")
    n = total // k
    if np.any(c > n):
        raise ValueError(f"every load must be <= n = sum(loads)/k = {n}, got max {c.max()}")
    items = np.repeat(np.arange(c.size), c).reshape(k, n).T
    s = np.zeros((n, c.size))
    np.put_along_axis(s, items, 1.0, axis=1)
    return s


def _grid_scores(rng: np.random.Generator, n: int, e: int) -> NDArray[np.float64]:
    """Sigmoid-like gate scores on the dyadic grid {1..256}/256 (exact in float32)."""
    x = 1.0 / (1.0 + np.exp(-rng.normal(size=(n, e))))
    return np.clip(np.round(x * 256), 1, 256) / 256


def _gate_scores(
    rng: np.random.Generator, n: int, e: int, skew: float = 0.0
) -> NDArray[np.float64]:
    pop = np.linspace(-skew, skew, e)
    return 1.0 / (1.0 + np.exp(-(rng.normal(size=(n, e)) + pop)))


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class PropertyResult:
    """One property: status "pass", "fail" or "skip"; message says why (and what was measured);
    ``exercised`` says whose code the property ran (the router's own or an adapter's)."""

    name: str
    status: str
    message: str
    applicable: bool = True
    exercised: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"


BIAS_PROPERTIES = (
    "gate_weights_bias_free",
    "bias_shift_invariance",
    "selected_in_selected_groups",
    "steering_monotonicity",
    "steering_factor",
    "closed_loop_balance",
)


@dataclass(frozen=True)
class ConformanceReport:
    """All property results for one router.

    ``ok`` iff no property failed and coverage is complete: a router with a bias
    (``has_bias``) must have been checked by every requested bias property
    (:data:`BIAS_PROPERTIES`; the group property only when group-limited, the closed loop
    only when the router has a training lifecycle) -- a skipped bias property is a
    ``coverage_gap``. ``strict_ok`` also requires no ``missing`` skip (a
    property that applies to this kind of router but could not run); properties that do not
    apply to the router's declared design are ``not_applicable`` and never count against it.
    """

    router: str
    results: tuple[PropertyResult, ...]
    has_bias: bool = False
    group_limited: bool = False
    lifecycle: bool = False
    design_gaps: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed and not self.coverage_gaps and not self.design_gaps

    @property
    def strict_ok(self) -> bool:
        return self.ok and not self.missing

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == "fail")

    @property
    def passed(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == "pass")

    @property
    def skipped(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == "skip")

    @property
    def applied(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status != "skip")

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == "skip" and r.applicable)

    @property
    def not_applicable(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == "skip" and not r.applicable)

    @property
    def coverage_gaps(self) -> tuple[str, ...]:
        if not self.has_bias:
            return ()
        need = set(BIAS_PROPERTIES)
        if not self.group_limited:
            need.discard("selected_in_selected_groups")
        if not self.lifecycle:
            need.discard("closed_loop_balance")
        return tuple(
            r.name for r in self.results if r.status == "skip" and r.applicable and r.name in need
        )

    def __getitem__(self, name: str) -> PropertyResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (what ``lfb check --json`` prints)."""
        return {
            "router": self.router,
            "ok": self.ok,
            "strict_ok": self.strict_ok,
            "has_bias": self.has_bias,
            "group_limited": self.group_limited,
            "applied": list(self.applied),
            "passed": list(self.passed),
            "failed": list(self.failed),
            "skipped": list(self.skipped),
            "missing": list(self.missing),
            "not_applicable": list(self.not_applicable),
            "coverage_gaps": list(self.coverage_gaps),
            "design_gaps": list(self.design_gaps),
            "results": [
                {
                    "name": r.name,
                    "status": r.status,
                    "applicable": r.applicable,
                    "message": r.message,
                    "exercised": r.exercised,
                }
                for r in self.results
            ],
        }

    def __str__(self) -> str:
        lines = [f"conformance of {self.router}:"]
        for r in self.results:
            msg = r.message.replace("\n", "\n        ")
            tag = r.status.upper() if r.applicable else "N/A"
            lines.append(f"  {tag:4}  {r.name}: {msg}")
            if r.exercised and r.status != "skip":
                lines.append(f"        exercised: {r.exercised}")
        lines.append(
            f"applied {len(self.applied)}: {len(self.passed)} passed, {len(self.failed)} "
            f"failed; {len(self.skipped)} skipped ({len(self.missing)} missing a capability, "
            f"{len(self.not_applicable)} not applicable)"
        )
        if self.coverage_gaps:
            lines.append(
                "INCOMPLETE: the router has a bias but these bias properties did not run: "
                + ", ".join(self.coverage_gaps)
            )
        for gap in self.design_gaps:
            lines.append(f"INCOMPLETE: the router's design could not be read: {gap}")
        lines.append(
            f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.skipped)} skipped"
            + (f" -- FAILED: {', '.join(self.failed)}" if self.failed else "")
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class Config:
    """Suite knobs: seed (every instance is drawn from np.random.default_rng([seed, i])),
    Hypothesis budget of the causality search, length of the drift run, bias offsets probed,
    E of a bare router function, and the horizon of the closed-loop reference run."""

    seed: int = 0
    causality_examples: int = 100
    drift_steps: int = 200
    drift_offsets: tuple[float, ...] = (0.0, 8.0, 32.0)
    n_experts: int = 8
    closed_loop_steps: int = 1000


class _Fail(Exception):
    pass


class _Skip(Exception):
    """The property applies to this kind of router but could not run (a capability is missing)."""


class _NotApplicable(_Skip):
    """The property does not apply to this router's declared design (e.g. no bias, no groups)."""


# ---------------------------------------------------------------------------------------------
# capabilities


def is_bias_router(router: Any) -> bool:
    """True when ``router`` has the :class:`lfbtheory.routers.BiasRouter` lifecycle methods."""
    return all(callable(getattr(router, m, None)) for m in LIFECYCLE)


def _need_lifecycle(r: Any) -> None:
    if not is_bias_router(r):
        missing = [m for m in LIFECYCLE if not callable(getattr(r, m, None))]
        msg = f"needs the BiasRouter lifecycle; router lacks {', '.join(missing)}"
        if not has_bias(r):
            raise _NotApplicable(msg + " (router has no bias)")
        raise _Skip(
            msg + " (torch modules: from_torch(module, bias='buffer', update='method', "
            "rule=updates.sign(1e-3)))"
        )


def has_bias(router: Any) -> bool:
    """True when ``router`` routes with a bias the suite can set: it has ``select(scores,
    bias)`` (a :class:`lfbtheory.routers.BiasRouter`, or an adapter that found a bias buffer)."""
    return callable(getattr(router, "select", None))


def _need_select(r: Any) -> None:
    if not has_bias(r) and callable(getattr(r, "bias", None)):
        raise _Skip(
            "router has a bias (bias(state)) but no select(scores, bias) -> (experts, weights) "
            "to route with a given bias"
        )
    if not has_bias(r):
        raise _NotApplicable(
            "router has no bias the suite can set (needs select(scores, bias) -> "
            "(experts, weights); torch modules: from_torch(module, bias='buffer_name'))"
        )


def _need_rule(r: Any) -> updates.Rule:
    _need_lifecycle(r)
    rule = getattr(r, "rule", None)
    if not isinstance(rule, updates.Rule):
        raise _Skip(
            "needs the declared update rule (attribute `rule`, an lfbtheory.updates.Rule that "
            "owns its step size)"
        )
    return rule


def _bias_mode(r: Any) -> str:
    rule = getattr(r, "rule", None)
    return rule.bias_mode if isinstance(rule, updates.Rule) else "additive"


def _n_experts(r: Any, cfg: Config) -> int:
    return int(getattr(r, "n_experts", cfg.n_experts))


def _sets(experts: ArrayLike, e: int) -> NDArray[np.bool_]:
    return selection_mask(np.asarray(experts), e)


def _ids(row: NDArray[np.bool_]) -> list[int]:
    return [int(i) for i in np.flatnonzero(row)]


def _f(x: ArrayLike) -> str:
    return np.array2string(np.asarray(x, dtype=np.float64), precision=6, max_line_width=200)


def _warm(r: Any, rng: np.random.Generator, steps: int = 2, n: int = 64) -> Any:
    """A state after ``steps`` optimizer steps on skewed gate scores (a non-trivial bias)."""
    st = r.init()
    for _ in range(steps):
        _, _, st = r.forward(_gate_scores(rng, n, r.n_experts, skew=1.0), st)
        (st,) = r.step([st])
    return st


def router_scores(r: Any, scores: ArrayLike) -> NDArray[np.float64]:
    """The scores the router adds its bias to when it is fed the suite's ``scores``: its
    ``gate_scores(scores)`` when it has one (an adapter feeding logits to a softmax gate
    declares softmax(logit(s)) there), else ``scores`` themselves. Every oracle of the suite
    works in this space."""
    s = np.asarray(scores, dtype=np.float64)
    fn = getattr(r, "gate_scores", None)
    return s if not callable(fn) else np.asarray(fn(s), dtype=np.float64)


def score_scale(p: ArrayLike) -> float:
    """The router's score scale: the power of two nearest the median spread (max - min) of a
    token's scores. Perturbations and tolerances are relative to it, so a softmax gate at
    E = 256 (scores ~ 1/E) is probed as finely as a sigmoid gate (scores ~ 0.5). A power of two
    keeps dyadic instances dyadic."""
    x = np.asarray(p, dtype=np.float64)
    spread = float(np.median(np.ptp(x, axis=1))) if x.size else 1.0
    return float(2.0 ** np.round(np.log2(spread))) if spread > 0 else 1.0


def resolution(r: Any, magnitude: float) -> float:
    """The round-off a router may make on selection values of size ``magnitude``: four units
    in the last place of its ``selection_dtype`` (default float64) at that size, plus the error
    of the scores it computes itself (``score_error``, e.g. a float32 sigmoid of logit(s): ~1e-7).
    Values closer than this count as tied (:func:`tie_bounds`)."""
    dt = np.dtype(getattr(r, "selection_dtype", None) or np.float64)
    eps = float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else 0.0
    return 4.0 * eps * max(1.0, float(magnitude)) + float(getattr(r, "score_error", 0.0) or 0.0)


def _k(r: Any, sel: NDArray[np.bool_] | None = None) -> int:
    k = int(getattr(r, "k", 0) or 0)
    if not k and sel is not None:
        k = int(sel.sum(axis=1).max())
    return k


def _bias_close(a: ArrayLike, b: ArrayLike, step: float) -> tuple[bool, float]:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    err = float(np.max(np.abs(a64 - b64))) if a64.size else 0.0
    tol = 1e-2 * step + 1e-6 * max(1.0, float(np.max(np.abs(b64))))
    return err <= tol, err


# ---------------------------------------------------------------------------------------------
# the properties: each returns a pass message or raises _Fail / _Skip


def selection_valid(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Selections are (n, k) ids in [0, E) with no expert twice in a row, or an (n, E) bool mask;
    the same input gives the same output (ties resolved deterministically)."""
    e = _n_experts(r, cfg)
    s = _gate_scores(rng, 16, e)
    sel, _ = r(s.copy(), None)
    sel = np.asarray(sel)
    try:
        mask = selection_mask(sel, e)
    except (TypeError, ValueError) as exc:
        raise _Fail(f"invalid selection: {exc}") from None
    if mask.shape[0] != 16:
        raise _Fail(f"selection has {mask.shape[0]} rows for a batch of 16 tokens")
    if sel.dtype != bool:
        k = getattr(r, "k", sel.shape[1])
        if sel.shape[1] != k:
            raise _Fail(f"selection has {sel.shape[1]} columns, router declares k={k}")
        dup = np.flatnonzero(mask.sum(axis=1) != sel.shape[1])
        if dup.size:
            raise _Fail(f"token {dup[0]} selects an expert twice: {sel[dup[0]].tolist()}")
    again, _ = r(s.copy(), None)
    if not np.array_equal(selection_mask(np.asarray(again), e), mask):
        raise _Fail("the same batch from the same (fresh) state gave a different selection")
    return f"{'mask' if sel.dtype == bool else 'ids'} of shape {sel.shape}, deterministic"


GATE_WEIGHT_SIGMAS = (0.03, 0.01, 0.003, 0.001)  # the bias change b' - b, in units of the scale


def gate_weights_bias_free(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """For every token whose selected set is the same under biases b and b', the gate weights are
    equal (rtol 1e-5): weights come from the unbiased scores (arXiv 2408.15664 Sec. 3).

    b ~ N(0, 0.05 S) and b' - b ~ N(0, sigma S) with S the router's score scale
    (:func:`score_scale`; multiplicative biases: 1 + N(0, 0.05) and a relative change sigma),
    so a softmax gate at E = 256 is perturbed as gently as a sigmoid gate. When no token keeps
    its set (inconclusive), sigma is retried smaller along GATE_WEIGHT_SIGMAS; if it stays
    inconclusive the property is skipped with that reason, never passed or failed."""
    _need_select(r)
    e = r.n_experts
    mult = _bias_mode(r) == "multiplicative"
    batches = [_gate_scores(rng, 64, e) for _ in range(4)]
    scale = 1.0 if mult else score_scale(router_scores(r, batches[0]))
    base = [rng.normal(0, 0.05 * scale, e) + (1.0 if mult else 0.0) for _ in batches]
    noise = [rng.normal(0, 1.0, e) for _ in batches]
    for sigma in GATE_WEIGHT_SIGMAS:
        compared = 0
        for s, b1, z in zip(batches, base, noise, strict=True):
            b2 = b1 * (1 + sigma * z) if mult else b1 + sigma * scale * z
            e1, w1 = r.select(s, b1)
            e2, w2 = r.select(s, b2)
            e1, e2, w1, w2 = map(np.asarray, (e1, e2, w1, w2))
            same = np.all(_sets(e1, e) == _sets(e2, e), axis=1)
            o1, o2 = np.argsort(e1, axis=1), np.argsort(e2, axis=1)
            v1 = np.take_along_axis(w1, o1, axis=1)[same].astype(np.float64)
            v2 = np.take_along_axis(w2, o2, axis=1)[same].astype(np.float64)
            compared += int(same.sum())
            bad = ~np.all(np.isclose(v1, v2, rtol=1e-5, atol=1e-7), axis=1)
            if bad.any():
                t = int(np.flatnonzero(same)[np.argmax(bad)])
                i = int(np.argmax(bad))
                raise _Fail(
                    f"token {t} keeps experts {sorted(e1[t].tolist())} under biases b and b' "
                    f"but its gate weights change {_f(v1[i])} -> {_f(v2[i])}: the bias leaked "
                    "into the weights (weights must come from the unbiased scores)"
                )
        if compared:
            return (
                f"weights equal for {compared} tokens with an unchanged selected set "
                f"(bias change sigma = {sigma:g} x score scale {scale:g})"
            )
    raise _Skip(
        "inconclusive: no token kept its selected set under bias changes down to "
        f"{GATE_WEIGHT_SIGMAS[-1]:g} x the score scale {scale:g}, so the weights could not be "
        "compared"
    )


SHIFTS = (-1024.0, -37.5, -1.0, -(2.0**-8), 2.0**-8, 3.0, 64.0, 1024.0)
SCALES = (2.0**-6, 0.5, 2.0, 2.0**6)


def _groups(r: Any) -> tuple[int, int, int] | None:
    """(n_groups, topk_groups, group_score_topk) of a group-limited router, else None."""
    ng, tg = getattr(r, "n_groups", None), getattr(r, "topk_groups", None)
    if ng is None or tg is None or tg >= ng:
        return None
    return int(ng), int(tg), int(getattr(r, "group_score_topk", None) or 2)


def _kth(x: NDArray[np.float64], k: int) -> NDArray[np.float64]:
    """Row-wise k-th largest value, shape (n, 1); -inf when k exceeds the row length."""
    if k > x.shape[1]:
        return np.full((x.shape[0], 1), -np.inf)
    return -np.sort(-x, axis=1)[:, k - 1 : k]


def tie_bounds(
    sel: ArrayLike,
    k: int,
    groups: tuple[int, int, int] | None = None,
    tol: float = 0.0,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """Tie-aware oracle of top-k routing (optionally DeepSeek-V3 group-limited) on selection
    scores ``sel`` computed by the suite in float64.

    Returns (must, may, group_must, group_may), (n, E) bool: every valid tie-break selects all
    of ``must`` and only experts of ``may``; group_must / group_may mark the experts whose
    group is in every / some valid choice of the ``topk_groups`` groups of highest group score
    (arXiv 2412.19437 Sec. 2.1.2). With v_j the j-th largest value: an item above
    v_{m+1} + tol is always among the top m, an item below v_m - tol never, so a token is tied
    when v_m - v_{m+1} <= tol at the group boundary (m = topk_groups) or at the k-th place.
    Then any selection S with must <= S <= may is correct -- torch.topk promises no order among
    equal values. ``tol`` = 0 on the suite's exact grids; a router that computes its scores or
    adds a shift in lower precision gets the round-off it can make (:func:`resolution`), so
    values closer than that count as tied (group scores: ``group_score_topk`` times ``tol``).
    """
    x = np.asarray(sel, dtype=np.float64)
    n, e = x.shape
    if groups is None:
        gmust = gmay = np.ones((n, e), dtype=bool)
    else:
        ng, tg, gtop = groups
        g = e // ng
        gt = min(gtop, g)
        grouped = -np.sort(-x.reshape(n, ng, g), axis=2)[:, :, :gt].sum(axis=2)
        gmust = np.repeat(grouped > _kth(grouped, tg + 1) + gt * tol, g, axis=1)
        gmay = np.repeat(grouped >= _kth(grouped, tg) - gt * tol, g, axis=1)
    # The chosen eligible set E' satisfies gmust <= E' <= gmay.
    must = gmust & (x > _kth(np.where(gmay, x, -np.inf), k + 1) + tol)
    may = gmay & (x >= _kth(np.where(gmust, x, -np.inf), k) - tol)
    return must, may, gmust, gmay


def _tied(must: NDArray[np.bool_], may: NDArray[np.bool_]) -> NDArray[np.bool_]:
    return np.any(must != may, axis=1)


def _c_max(r: Any, scale: float, magnitude: float) -> float:
    c_max = 1024.0
    while c_max > scale and resolution(r, magnitude + c_max) > scale / 64:
        c_max /= 2
    return c_max


def _shifts(r: Any, scale: float, magnitude: float) -> tuple[float, ...]:
    """SHIFTS (times the score scale for the small ones) up to c_max, the largest power of two
    at which the router's dtype still resolves 1/64 of its score scale
    (``resolution(r, magnitude + c_max) <= scale / 64``), plus +-c_max itself: a float64
    router gets every shift up to +-1024, a float32 softmax gate at E = 256 the shifts its
    arithmetic can represent."""
    c_max = _c_max(r, scale, magnitude)
    small = {c * scale for c in SHIFTS if abs(c) < 1}
    large = {c for c in SHIFTS if 1 <= abs(c) <= c_max} | {c_max, -c_max}
    return tuple(sorted(small | large))


def bias_shift_invariance(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Additive bias: b and b + c select the same experts for every shift c (negative
    included; :func:`_shifts`). Scores lie on the grid {1..256}/256 and biases on the grid
    (Z/256) S within [-2 S, 2 S], S the router's score scale, so for a router that biases the
    suite's scores s + b + c is exact in float32 for |c| <= 1024 (19 significant bits): a
    correct router must pass without re-centering its bias. With group-limited routing this
    also catches masked groups filled with 0 instead of -inf. Multiplicative bias: b -> 2^m b
    (exact) instead.

    Tie-aware: a token tied at the k-th place or at the group boundary (:func:`tie_bounds`,
    within the router's :func:`resolution` at the shifted magnitude) may break the tie
    differently at each shift, but must stay within its tie (must <= S <= may; checked when
    the router's untied tokens follow the declared routing); untied tokens must select
    identically."""
    _need_select(r)
    e = r.n_experts
    mult = _bias_mode(r) == "multiplicative"
    groups = _groups(r)
    mode = "multiplicative" if mult else "additive"
    n_tied = 0
    consts: tuple[float, ...] = SCALES
    for _ in range(3):
        s = _grid_scores(rng, 32, e)
        p = router_scores(r, s)
        scale = 1.0 if mult else score_scale(p)
        b = 2.0 ** rng.integers(-2, 3, e) if mult else rng.integers(-512, 513, e) / 256 * scale
        x = selection_scores(p, b, mode)
        mag = float(np.max(np.abs(p))) + float(np.max(np.abs(b)))
        consts = SCALES if mult else _shifts(r, scale, mag)
        base = _sets(r.select(s, b)[0], e)
        kk = _k(r, base)
        must, may, _, _ = tie_bounds(x, kk, groups, resolution(r, mag))
        tied = _tied(must, may)
        n_tied += int(tied.sum())
        # Hold tied tokens to their tie only when the router routes as declared (its untied
        # tokens match the oracle); a router with undeclared rules gets invariance only.
        as_declared = bool(np.all(base[~tied] == must[~tied]))
        for c in consts:
            tol = resolution(r, mag * (2.0**6 if mult else 1.0) + (0 if mult else abs(c)))
            must_c, may_c, _, _ = tie_bounds(x, kk, groups, tol)
            tied_c = _tied(must_c, may_c)
            got = _sets(r.select(s, b * c if mult else b + c)[0], e)
            outside = np.any((must_c & ~got) | (got & ~may_c), axis=1) & as_declared
            diff = np.flatnonzero(np.any(got != base, axis=1) & (~tied_c | outside))
            if diff.size:
                t = int(diff[0])
                op = "multiplying every bias by" if mult else "adding"
                raise _Fail(
                    f"{op} c={c:g} {'' if mult else 'to every bias '}changed the experts of "
                    f"{diff.size}/{s.shape[0]} tokens (token {t}: {_ids(base[t])} -> "
                    f"{_ids(got[t])}{', not a tie' if not tied_c[t] else ', outside its tie'}"
                    f"); selection must depend on the bias only up to a constant shift"
                )
    what = "scales" if mult else f"shifts (|c| <= {max(abs(c) for c in consts):g})"
    return (
        f"{len(consts)} {what} x 3 batches select identically "
        f"({n_tied} tokens tied within the router's resolution: any tie-break accepted)"
    )


def selected_in_selected_groups(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Group-limited routing (DeepSeek-V3, arXiv 2412.19437 Sec. 2.1.2): every selected expert
    lies in one of the ``topk_groups`` groups with the highest group score (sum of the
    ``group_score_topk`` largest biased scores of the group), also when the biased scores are
    negative (bias offsets 0, -(max s + 3 S) and -c_max, S the score scale, c_max the largest
    shift the router's dtype resolves: :func:`_shifts`). Tie-aware: groups tied at the
    boundary (within the router's :func:`resolution`) may be chosen in any order, but at most
    ``topk_groups`` groups are used and every group strictly better than the boundary wins
    before a tied one (:func:`tie_bounds`)."""
    _need_select(r)
    groups = _groups(r)
    if groups is None:
        raise _NotApplicable(
            "router is not group-limited (n_groups/topk_groups unset or all groups kept)"
        )
    ng, tg, gtop = groups
    e = r.n_experts
    g = e // ng
    k = int(getattr(r, "k", 1) or 1)
    mode = _bias_mode(r)
    n_tied = 0
    s0 = _grid_scores(rng, 32, e)
    p0 = router_scores(r, s0)
    scale = score_scale(p0)
    top = float(2.0 ** np.ceil(np.log2(np.max(p0) + 3 * scale)))
    offsets = (0.0, -top, -_c_max(r, scale, top + 2 * scale))
    for j, offset in enumerate(offsets):
        s = s0 if j == 0 else _grid_scores(rng, 32, e)
        p = router_scores(r, s)
        if mode == "multiplicative":
            b = 2.0 ** rng.integers(-2, 3, e)
        else:
            b = rng.integers(-512, 513, e) / 256 * scale + offset
        mag = float(np.max(np.abs(p))) + float(np.max(np.abs(b)))
        tol = resolution(r, mag)
        _, _, gmust, gmay = tie_bounds(selection_scores(p, b, mode), k, groups, tol)
        n_tied += int(np.any(gmust != gmay, axis=1).sum())
        got = _sets(r.select(s, b)[0], e)
        used = got.reshape(-1, ng, g).any(axis=2)
        n_must = gmust.reshape(-1, ng, g)[:, :, 0].sum(axis=1)
        tie_groups = (gmay & ~gmust).reshape(-1, ng, g)[:, :, 0]
        bad = np.any(got & ~gmay, axis=1) | ((used & tie_groups).sum(axis=1) > tg - n_must)
        bad = np.flatnonzero(bad)
        if bad.size:
            t = int(bad[0])
            raise _Fail(
                f"token {t} (bias offset {offset:g}) selects experts {_ids(got[t])}, but only "
                f"{_ids(gmay[t])} lie in its top {tg} of {ng} groups (group score: sum of "
                f"the top {gtop} biased scores; ties at the boundary accepted); a masked "
                "expert won -- masked groups must be -inf, and the group score must follow "
                "the declared rule"
            )
    return (
        "all selected experts lie in the selected groups (offsets "
        + ", ".join(f"{o:g}" for o in offsets)
        + f"; {n_tied} tokens with a tie at the group boundary: any tie-break accepted)"
    )


# ---------------------------------------------------------------------------------------------
# steering: the bias moves the selection the declared way


def _moved(b0: NDArray[np.float64], i: int, beta: float, mult: bool) -> NDArray[np.float64]:
    """b0 with expert i's bias raised by ``beta``: b_i + beta (additive), b_i 2^beta (mult.)."""
    b = np.array(b0, dtype=np.float64, copy=True)
    b[i] = b[i] * 2.0**beta if mult else b[i] + beta
    return b


def _steering_instance(
    r: Any, rng: np.random.Generator, n: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], float, float]:
    """(s, p = router_scores(s), base bias b0, score scale S, dominating increment D): raising
    one bias by D (additive; by 2^D multiplicative) makes that expert every token's best."""
    e = r.n_experts
    s = _grid_scores(rng, n, e)
    p = router_scores(r, s)
    if _bias_mode(r) == "multiplicative":
        b0 = 2.0 ** (rng.integers(-2, 3, e) / 4)
        ratio = np.max(p * b0) / max(float(np.min(p * b0)), 1e-300)
        return s, p, b0, 1.0, float(np.ceil(np.log2(ratio))) + 2
    scale = score_scale(p)
    b0 = rng.integers(-64, 65, e) / 256 * scale
    span = float(np.ptp(p) + np.ptp(b0))
    return s, p, b0, scale, float(2.0 ** np.ceil(np.log2(span + scale)))


FACTOR_EXPERTS = 16  # experts probed by small bias steps (all when E <= 16)


def _avoidable(r: Any) -> bool:
    """Whether a token can always avoid one expert: k < E, and k < the eligible experts of a
    group-limited router (else a kept group is selected whole)."""
    e, k, groups = r.n_experts, _k(r), _groups(r)
    return k < (groups[1] * (e // groups[0]) if groups else e)


def steering_monotonicity(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """The bias steers each expert's load the declared way, on a fixed batch: raising b_i (by
    S/8, S the score scale; multiplicative: b_i 2^(1/4)) never drops i from a token that
    selected it and lowering b_i never adds it (FACTOR_EXPERTS sampled experts, all when
    E <= FACTOR_EXPERTS), and for every expert raising b_i past the whole score range sends
    every token to i (lowering it that far: no token, when i is avoidable).
    Top-k of s + b, also group-limited, is monotone this way token by token (raising b_i only
    raises i's score and its group's score); tokens tied within the router's resolution are
    excused. Catches a bias that is ignored, negated, added after the top-k, or added to some
    experts only."""
    _need_select(r)
    e = r.n_experts
    mult = _bias_mode(r) == "multiplicative"
    groups, kk = _groups(r), _k(r)
    s, p, b0, scale, big = _steering_instance(r, rng, 32)
    small = 0.25 if mult else scale / 8
    mode = "multiplicative" if mult else "additive"
    base = _sets(r.select(s, b0)[0], e)
    kk = kk or int(base.sum(axis=1).max())

    def tied_on(b: NDArray[np.float64], i: int) -> NDArray[np.bool_]:
        x = selection_scores(p, b, mode)
        must, may, _, _ = tie_bounds(x, kk, groups, resolution(r, float(np.max(np.abs(x)))))
        return may[:, i] & ~must[:, i]

    n = s.shape[0]
    x0 = selection_scores(p, b0, mode)
    must0, may0, _, _ = tie_bounds(x0, kk, groups, resolution(r, float(np.max(np.abs(x0)))))
    tied0 = may0 & ~must0
    sample = set(range(e)) if e <= FACTOR_EXPERTS else set(rng.choice(e, FACTOR_EXPERTS, False))
    for i in range(e):
        for sign in (1.0, -1.0) if i in sample else ():
            b = _moved(b0, i, sign * small, mult)
            got = _sets(r.select(s, b)[0], e)
            wrong = (base[:, i] & ~got[:, i]) if sign > 0 else (~base[:, i] & got[:, i])
            wrong &= ~tied0[:, i]
            if wrong.any():
                wrong &= ~tied_on(b, i)
            if wrong.any():
                t = int(np.flatnonzero(wrong)[0])
                verb, how = ("raising", "dropped") if sign > 0 else ("lowering", "gained")
                step = f"x 2^{sign * small:g}" if mult else f"by {sign * small:+g}"
                raise _Fail(
                    f"{verb} the bias of expert {i} ({step}) {how} expert {i} for "
                    f"{int(wrong.sum())}/{n} tokens (token {t}: {_ids(base[t])} -> "
                    f"{_ids(got[t])}; load {int(base[:, i].sum())} -> {int(got[:, i].sum())}):"
                    f" the bias steers against its declared direction ({mode} s "
                    f"{'*' if mult else '+'} b)"
                )
        up = _sets(r.select(s, _moved(b0, i, big, mult))[0], e)[:, i]
        if not up.all():
            raise _Fail(
                f"raising the bias of expert {i} past the score range ({'x 2^' if mult else '+'}"
                f"{big:g}) sent only {int(up.sum())}/{n} tokens to it (expected all): the bias "
                f"of expert {i} does not reach its selection"
            )
        down = _sets(r.select(s, _moved(b0, i, -big, mult))[0], e)[:, i]
        if _avoidable(r) and down.any():
            raise _Fail(
                f"lowering the bias of expert {i} past the score range still sends "
                f"{int(down.sum())}/{n} tokens to it (expected none): the bias of expert {i} "
                "does not reach its selection"
            )
    return (
        f"{len(sample)} experts: load monotone in their own bias (step {small:g}); all {e}: "
        f"every token follows a bias raised past the score range ({big:g})"
    )


def _thresholds(
    p: NDArray[np.float64],
    b0: NDArray[np.float64],
    i: int,
    k: int,
    groups: tuple[int, int, int] | None,
    mult: bool,
    tol: float,
    big: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per token, the increments theta_may <= theta_must of b_i (as in :func:`_moved`) above
    which expert i is in ``may`` / in ``must`` of the exact oracle (:func:`tie_bounds`);
    +-inf beyond +-2 big. Membership is monotone in the increment (see
    :func:`steering_monotonicity`), so 48 bisection steps on [-2 big, 2 big] find both."""
    n = p.shape[0]

    def member(inc: NDArray[np.float64], which: int) -> NDArray[np.bool_]:
        b = np.repeat(b0[None, :], n, axis=0)
        b[:, i] = b[:, i] * 2.0**inc if mult else b[:, i] + inc
        x = p * b if mult else p + b
        return tie_bounds(x, k, groups, tol)[which][:, i]

    out = []
    for which in (1, 0):  # may, must
        lo, hi = np.full(n, -2.0 * big), np.full(n, 2.0 * big)
        at_lo, at_hi = member(lo, which), member(hi, which)
        for _ in range(48):
            mid = (lo + hi) / 2
            m = member(mid, which)
            hi, lo = np.where(m, mid, hi), np.where(m, lo, mid)
        th = np.where(at_lo, -np.inf, np.where(at_hi, hi, np.inf))
        out.append(th)
    return out[0], out[1]


def _factor_bounds(
    obs: list[tuple[float, NDArray[np.bool_]]],
    th_may: NDArray[np.float64],
    th_must: NDArray[np.float64],
) -> tuple[float, float]:
    """The interval [lo, hi] of factors a for which routing on (the bias with b_i raised by
    a beta) is consistent with every observation (beta, selected): a selected token needs
    a beta >= theta_may, an unselected one a beta <= theta_must."""
    lo, hi = -np.inf, np.inf
    with np.errstate(invalid="ignore", divide="ignore"):
        for beta, sel in obs:
            if beta == 0:
                continue
            a_may, a_must = th_may / beta, th_must / beta
            if beta > 0:
                lo = max(lo, float(np.max(a_may[sel], initial=-np.inf)))
                hi = min(hi, float(np.min(a_must[~sel], initial=np.inf)))
            else:
                hi = min(hi, float(np.min(a_may[sel], initial=np.inf)))
                lo = max(lo, float(np.max(a_must[~sel], initial=-np.inf)))
    return lo, hi


def steering_factor(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """The declared bias maps to the selection the router makes: measured, for up to
    FACTOR_EXPERTS experts i, the factor a for which the router's choices under b_i raised or
    lowered by beta match top-k of s + a beta e_i (multiplicative: s * b_i^a), must contain 1.

    From a zero bias (multiplicative: ones), the exact oracle (:func:`tie_bounds`,
    group-limited when declared) gives each token the increment theta_t above which i is
    selected; a router routing on s + a b selects i at
    increment beta iff a beta > theta_t, so each observation bounds a, and the increments
    beta (the quartiles of theta_t on either side of 0) pin it from both sides. A router
    selecting on s + 2 b measures a ~ 2, on s - b a < 0, on the raw scores a ~ 0; no a at all
    means its selection is not top-k of s + a b in the declared space."""
    _need_select(r)
    e = r.n_experts
    mult = _bias_mode(r) == "multiplicative"
    groups = _groups(r)
    s, p, b0, scale, big = _steering_instance(r, rng, 64)
    b0 = np.ones(e) if mult else np.zeros(e)  # a factor scales the whole bias: start from none
    base = _sets(r.select(s, b0)[0], e)
    kk = _k(r, base)
    mode = "multiplicative" if mult else "additive"
    tol = resolution(r, float(np.max(np.abs(selection_scores(p, b0, mode)))) + big)
    experts = np.arange(e) if e <= FACTOR_EXPERTS else rng.choice(e, FACTOR_EXPERTS, False)
    los, his = [], []
    for i in (int(x) for x in experts):
        th_may, th_must = _thresholds(p, b0, i, kk, groups, mult, tol, big)
        mid = (th_may + th_must) / 2
        obs = [(0.0, base[:, i])]
        pos = mid[np.isfinite(mid) & (mid > 0)]
        neg = mid[np.isfinite(mid) & (mid < 0)]
        for side in (pos, neg):
            for beta in np.quantile(side, [0.25, 0.5, 0.75]) if side.size else ():
                got = _sets(r.select(s, _moved(b0, i, float(beta), mult))[0], e)
                obs.append((float(beta), got[:, i]))
        lo, hi = _factor_bounds(obs, th_may, th_must)
        los.append(lo)
        his.append(hi)
        if not (lo <= 1.0 + 1e-9 and hi >= 1.0 - 1e-9):
            what = (
                f"in [{lo:.3g}, {hi:.3g}]"
                if lo <= hi
                else f"none: no factor reproduces its choices (bounds {lo:.3g} > {hi:.3g})"
            )
            decl = "s * b^a" if mult else "s + a b"
            raise _Fail(
                f"expert {i}: the router's selections under {len(obs) - 1} bias changes "
                f"measure the factor a of {decl} {what}; declared a = 1 ({mode} bias"
                f"{', group-limited' if groups else ''}). "
                + (
                    "the selection is not top-k of the declared biased scores"
                    if lo > hi
                    else "a ~ 0: the bias does not reach the selection"
                    if lo <= 0 <= hi
                    else "a < 0: the bias is subtracted"
                    if hi < 0
                    else "the bias is scaled"
                )
            )
    return (
        f"measured steering factor a in [{max(los):.3g}, {min(his):.3g}] over "
        f"{len(experts)} experts (declared 1)"
    )


CLOSED_LOOP_WINDOW = 16  # batches averaged into one MaxVio reading
CLOSED_LOOP_MEAN_LOAD = 16  # tokens per expert per batch (n = 16 E / k)


def _stream(seed: Any, e: int, n: int) -> Any:
    """The skewed stationary stream: scores sigmoid(N(0, 1) + pop_i), pop linear in [-1, 1]."""
    rng = np.random.default_rng(seed)
    while True:
        yield _gate_scores(rng, n, e, skew=1.0)


def closed_loop_balance(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """The router's own lifecycle (forward, then one optimizer step per batch) balances a skewed
    stationary stream: within T steps its MaxVio_batch (window mean of CLOSED_LOOP_WINDOW
    batches, (max load - mean) / mean, arXiv 2408.15664 Sec. 4.1) falls to the target, half
    way from the plain top-k level V0 to the level V* the declared rule reaches.

    Bound and its derivation: the reference (the exact numpy router of the declared design --
    scores, bias mode, groups -- updated by the declared rule, on the same stream) is run
    first, until its window MaxVio stops improving (after 8 windows: the last window no lower
    than the one four windows before, beyond one standard error; at most ``closed_loop_steps``
    steps); V* is its final window MaxVio and T_ref the first step at which its window mean is
    at the target. A router that routes and updates as declared follows the same trajectory up
    to tie-breaks, so T = 2 T_ref + CLOSED_LOOP_WINDOW is generous; for the sign rule with step
    u, T_ref is about the time a bias moving u per step needs to cover half the balancing
    price's spread. Constants (stated, not tuned): batches of
    CLOSED_LOOP_MEAN_LOAD tokens per expert, popularity skew +-1 in logit space, window 16.
    A router whose bias steers the wrong way, not at all, or is updated with the wrong sign
    stays at or above V0. If the reference itself does not get clear of the plain level
    (V0 - V* within 3 standard errors of a window mean: the declared rule does not balance
    this stream, e.g. a rule that stops updating), the property is N/A with that reason.
    The closed loop is part of the bias coverage otherwise."""
    rule = _need_rule(r)
    e, k = r.n_experts, _k(r)
    if not k:
        raise _Skip("needs the router's k (attribute `k`)")
    n = max(-(-CLOSED_LOOP_MEAN_LOAD * e // k), 2 * e)
    w, t_max = CLOSED_LOOP_WINDOW, cfg.closed_loop_steps
    seed = int(rng.integers(2**31))
    mode, groups = rule.bias_mode, _groups(r)
    gkw: dict[str, Any] = (
        {}
        if groups is None
        else dict(zip(("n_groups", "topk_groups", "group_score_topk"), groups, strict=True))
    )
    # the reference on the same stream, run until its window MaxVio stops improving
    from lfbtheory.routing import route

    st_ref = rule.init(e, None)
    plain: list[float] = []
    ref: list[float] = []
    for t, x in zip(range(t_max), _stream(seed, e, n), strict=False):
        p = router_scores(r, x)
        if t < w:
            plain.append(
                float(maxvio(expert_loads(route(p, k, None, normalize=False, **gkw).experts, e)))
            )
        ex = route(p, k, st_ref.bias, bias_mode=mode, normalize=False, **gkw).experts
        c = expert_loads(ex, e)
        ref.append(float(maxvio(c)))
        st_ref = rule.update(c, st_ref)
        if t + 1 >= 8 * w and (t + 1) % w == 0:
            last, before = np.mean(ref[-w:]), np.mean(ref[-5 * w : -4 * w])
            if last >= before - float(np.std(ref[-w:])) / np.sqrt(w):
                break  # plateau: no gain over four windows beyond one standard error
    v0 = float(np.mean(plain))
    roll = np.convolve(ref, np.ones(w) / w, mode="valid")  # roll[j] = mean of ref[j : j + w]
    v_star = float(roll[-1])
    target = (v0 + v_star) / 2
    noise = 3 * float(np.std(ref[-w:])) / np.sqrt(w)  # 3 standard errors of a window mean
    if v0 - v_star <= noise:
        raise _NotApplicable(
            f"the declared rule {rule.name!r} itself does not balance this stream within "
            f"{len(ref)} steps (plain MaxVio {v0:.3g}, exact reference {v_star:.3g}): there is "
            "no balance to hold the router to (update_oracle checks it follows that rule)"
        )
    t_ref = int(np.flatnonzero(roll <= target)[0]) + w
    bound = min(2 * t_ref + w, t_max)
    st = r.init()
    own: list[float] = []
    for t, x in zip(range(bound), _stream(seed, e, n), strict=False):
        ex, _, st = r.forward(x, st)
        own.append(float(maxvio(expert_loads(np.asarray(ex), e))))
        (st,) = r.step([st])
        if t + 1 >= w and np.mean(own[-w:]) <= target:
            return (
                f"MaxVio_batch {np.mean(own[-w:]):.3g} <= target {target:.3g} after {t + 1} "
                f"steps (bound {bound} = 2 x {t_ref} + {w}; plain top-k {v0:.3g}, "
                f"declared rule {rule.name!r} reaches {v_star:.3g})"
            )
    raise _Fail(
        f"after {bound} steps (2 x the {t_ref} the declared rule {rule.name!r} needs, + {w}) "
        f"MaxVio_batch is {np.mean(own[-w:]):.3g}, not below the target {target:.3g} (plain "
        f"top-k {v0:.3g}, declared rule {v_star:.3g}): the router's own forward/step does not "
        "balance a skewed stream"
    )


def _forced_balanced(e: int, k: int, n: int) -> NDArray[np.float64]:
    """Token t gets experts t*k .. t*k + k - 1 (mod E): balanced when n*k % E == 0, each token's
    experts consecutive (so they sit in as few groups as possible)."""
    s = np.zeros((n, e))
    idx = (np.arange(n)[:, None] * k + np.arange(k)[None, :]) % e
    np.put_along_axis(s, idx, 1.0, axis=1)
    return s


def _skewed_loads(e: int, k: int) -> NDArray[np.int64]:
    """Loads 4k each on n = 4E tokens, except expert 0 (+d) and expert 1 (-d): one over, one
    under, the rest exactly balanced (sign 0)."""
    loads = np.full(e, 4 * k, dtype=np.int64)
    if e > 1:
        d = max(0, min(2 * k, 4 * e - 4 * k))
        loads[0] += d
        loads[1] -= d
    return loads


def update_oracle(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """After each optimizer step the bias equals the declared rule applied to the loads the
    router itself produced: b_{t+1} = rule.update(loads_t, b_t) (the rule owns its step u_t)
    (arXiv 2408.15664 eq. 3 for the sign rule), within 1% of the step plus float32 round-off."""
    rule = _need_rule(r)
    e, k = r.n_experts, r.k
    st, oracle = r.init(), rule.init(e, None)
    if not np.allclose(np.asarray(r.bias(st), np.float64), oracle.bias):
        raise _Fail(f"initial bias {_f(r.bias(st))} differs from the rule's init {_f(oracle.bias)}")
    batches = [
        _gate_scores(rng, 48, e, skew=1.0),
        _forced_balanced(e, k, 4 * e),
        scores_for_loads(_skewed_loads(e, k), k),
        _gate_scores(rng, 48, e, skew=2.0),
        _gate_scores(rng, 48, e),
    ]
    for i, x in enumerate(batches):
        experts, _, st = r.forward(x, st)
        loads = expert_loads(np.asarray(experts), e)
        (st,) = r.step([st])
        new = rule.update(loads, oracle)
        step = float(np.max(np.abs(new.bias - oracle.bias)))
        oracle = new
        ok, err = _bias_close(r.bias(st), oracle.bias, step)
        if not ok:
            raise _Fail(
                f"after step {i + 1} (loads {loads.tolist()}) the bias is {_f(r.bias(st))} but "
                f"rule {rule.name!r} gives {_f(oracle.bias)} (max error {err:.3g})"
            )
    return (
        f"{len(batches)} steps match rule {rule.name!r} exactly "
        "(deterministic loads incl. balanced)"
    )


def no_update_when_balanced(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """From a fresh state, a batch with exactly balanced loads leaves the bias bit-identical
    (sign(c_bar - c_i) = 0 for every expert; arXiv 2408.15664 eq. 3)."""
    _need_lifecycle(r)
    e, k = r.n_experts, r.k
    st = r.init()
    b0 = np.array(r.bias(st), copy=True)
    experts, _, st = r.forward(_forced_balanced(e, k, 4 * e), st)
    loads = expert_loads(np.asarray(experts), e)
    if np.any(loads != loads[0]):
        raise _Skip(f"could not force balanced loads through this router (got {loads.tolist()})")
    (st,) = r.step([st])
    if not np.array_equal(np.asarray(r.bias(st)), b0):
        raise _Fail(f"balanced loads {loads.tolist()} moved the bias {_f(b0)} -> {_f(r.bias(st))}")
    return f"balanced loads ({loads[0]} per expert) leave the bias unchanged"


def count_scale_invariance(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """The update from counts m*c equals the update from c (m = 2, 3): double counting
    (tensor/expert-parallel duplicates summed twice) or counts in other units
    (FlyLoRA #1) cannot change the bias. Holds for the sign rule and every rule of
    :mod:`lfbtheory.online.updates` (they use sign(c_bar - c) or (c_bar - c)/c_bar); a rule on raw
    count differences is flagged."""
    _need_lifecycle(r)
    e = r.n_experts
    st0 = _warm(r, rng)
    x = _gate_scores(rng, 32, e, skew=1.5)
    biases = []
    for m in (1, 2, 3):
        _, _, st = r.forward(np.concatenate([x] * m), st0)
        (st,) = r.step([st])
        biases.append(np.asarray(r.bias(st), np.float64))
    b0 = np.asarray(r.bias(st0), np.float64)
    step = float(np.max(np.abs(biases[0] - b0)))
    for m, b in zip((2, 3), biases[1:], strict=True):
        ok, err = _bias_close(b, biases[0], step)
        if not ok:
            raise _Fail(
                f"the update from counts {m}*c differs from the update from c by {err:.3g} "
                f"(step {step:.3g}): the rule depends on the units of the counts, so double "
                "counting changes the bias (the sign rule is invariant)"
            )
    rule = getattr(r, "rule", None)
    if isinstance(rule, updates.Rule):
        c = rng.integers(0, 20, e).astype(float)
        s0 = rule.init(e, None)
        ref = rule.update(c, s0).bias
        for times in (2.0, 3.0):
            ok, err = _bias_close(
                rule.update(times * c, s0).bias, ref, float(np.max(np.abs(ref - s0.bias)))
            )
            if not ok:
                raise _Fail(
                    f"declared rule {rule.name!r} is not scale invariant: counts x{times:g} change "
                    f"its update by {err:.3g}"
                )
    return "updates from c, 2c and 3c agree"


def microbatch_accumulation(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Three micro-batches then one optimizer step give the same selections and the same bias
    as one step on the concatenated batch: the bias moves once per optimizer step, from the
    summed loads."""
    _need_lifecycle(r)
    e = r.n_experts
    st0 = _warm(r, rng)
    parts = [_gate_scores(rng, 16, e, skew=1.0) for _ in range(3)]
    st, sel_a = st0, []
    for p in parts:
        ex, _, st = r.forward(p, st)
        sel_a.append(_sets(ex, e))
    (st_a,) = r.step([st])
    ex, _, st = r.forward(np.concatenate(parts), st0)
    (st_b,) = r.step([st])
    sa, sb = np.concatenate(sel_a), _sets(ex, e)
    diff = np.flatnonzero(np.any(sa != sb, axis=1))
    if diff.size:
        raise _Fail(
            f"token {diff[0]} routes to {_ids(sa[diff[0]])} in micro-batches but "
            f"{_ids(sb[diff[0]])} in one batch: the bias moved between micro-batches"
        )
    b0 = np.asarray(r.bias(st0), np.float64)
    ok, err = _bias_close(
        r.bias(st_a), r.bias(st_b), float(np.max(np.abs(np.asarray(r.bias(st_b)) - b0)))
    )
    if not ok:
        raise _Fail(
            f"3 micro-batches + 1 step give bias {_f(r.bias(st_a))}, one concatenated batch "
            f"gives {_f(r.bias(st_b))} (max difference {err:.3g})"
        )
    return "3 micro-batches + 1 step == 1 step on the concatenated batch"


def data_parallel_reduction(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Two data-parallel replicas on two shards: the shard counts sum to the single-process
    counts, and after each step both replicas hold the same bias as one process that saw both
    shards (the all-reduce of the loads)."""
    _need_lifecycle(r)
    e = r.n_experts
    st0 = _warm(r, rng)
    reps, single = [st0, st0], st0
    for i in range(3):
        shards = [_gate_scores(rng, 24, e, skew=1.0) for _ in range(2)]
        reps = [r.forward(x, s)[2] for x, s in zip(shards, reps, strict=True)]
        for x in shards:
            _, _, single = r.forward(x, single)
        total = np.sum([np.asarray(r.counts(s), np.float64) for s in reps], axis=0)
        if not np.array_equal(total, np.asarray(r.counts(single), np.float64)):
            raise _Fail(
                f"step {i + 1}: shard counts sum to {total.tolist()} but one process counts "
                f"{np.asarray(r.counts(single)).tolist()}"
            )
        reps = list(r.step(reps))
        (single,) = r.step([single])
        b = [np.asarray(r.bias(s)) for s in reps]
        if not np.array_equal(b[0], b[1]):
            raise _Fail(
                f"step {i + 1}: replica biases diverged: {_f(b[0])} vs {_f(b[1])} "
                "(loads not all-reduced across data-parallel ranks)"
            )
        ok, err = _bias_close(b[0], r.bias(single), 1e-3)
        if not ok:
            raise _Fail(
                f"step {i + 1}: replica bias {_f(b[0])} differs from the single-process bias "
                f"{_f(r.bias(single))} (max {err:.3g})"
            )
    return "3 steps: summed shard counts == single-process counts; replicas identical"


COUNT_BUDGET = 2**25  # score-matrix entries (n * E) count_precision may route in total


def _precision_loads(e: int, k: int) -> tuple[int, NDArray[np.int64]]:
    """(mean M, loads M + d) for count_precision: M near 40k when n * E = M E^2 / k fits in
    COUNT_BUDGET, else the largest M that fits but at least 2560 (float16 spacing there is 2,
    bfloat16's 16); M is a multiple of k / gcd(E, k) so the loads sum to a multiple of k, and
    the offsets d (sum 0) stay below n - M so every token can take k distinct experts."""
    step = k // np.gcd(e, k)
    target = int(min(40000, max(2560, COUNT_BUDGET * k // (e * e))))
    mean = max(step, target - target % step)
    n = mean * e // k
    d = np.resize(np.array([3, -3, 1, -1, 200, -200, 60, -60]), e)
    d = np.clip(d, -(n - mean), n - mean)
    if e % 2:
        d[-1] = 0
    d[-1] -= d.sum()
    if d[-1] > n - mean or d[-1] < -mean:  # cannot rebalance (only when E == k): no offsets
        d[:] = 0
    return mean, mean + d


def count_precision(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Counts near 40k per expert (bf16 spacing there is 256, float16's is 32; at E^2 / k too
    large to route 40k per expert, the largest mean >= 2560 within COUNT_BUDGET), accumulated
    over >= 8 micro-batches: sign(c_bar - c_i) of the router's counts equals that of the exact
    integer counts, and the following update matches the rule on the exact counts. Any E and
    k <= E."""
    _need_lifecycle(r)
    e, k = r.n_experts, r.k
    mean, loads = _precision_loads(e, k)
    c = np.asarray(loads, dtype=np.int64)
    n = int(c.sum()) // k
    items = np.repeat(np.arange(e), c).reshape(k, n).T  # token t: items t, t + n, ... (distinct)
    parts = max(8, -(-n * e // 2**22))
    st = r.init()
    exact = np.zeros(e, dtype=np.int64)
    for rows in np.array_split(np.arange(n), parts):
        x = np.zeros((rows.size, e), dtype=np.float32)
        np.put_along_axis(x, items[rows], 1.0, axis=1)
        ex, _, st = r.forward(x, st)
        exact += expert_loads(np.asarray(ex), e)
    got = np.asarray(r.counts(st), np.float64)
    c_bar = exact.sum() / e
    flips = np.flatnonzero(np.sign(c_bar - got) != np.sign(c_bar - exact))
    if flips.size:
        i = int(flips[0])
        raise _Fail(
            f"expert {i}: counted {got[i]:.0f} vs exact {exact[i]} (mean {c_bar:g}); "
            f"sign(mean - load) flipped for experts {flips.tolist()} -- counts accumulated "
            "in low precision"
        )
    max_err = float(np.max(np.abs(got - exact)))
    rule = getattr(r, "rule", None)
    if isinstance(rule, updates.Rule):
        (st,) = r.step([st])
        oracle = rule.update(exact, rule.init(e, None))
        ok, err = _bias_close(r.bias(st), oracle.bias, 1e-3)
        if not ok:
            raise _Fail(
                f"update on ~{mean} counts gives {_f(r.bias(st))}, the rule on the exact counts "
                f"{_f(oracle.bias)}"
            )
    return (
        f"counts at ~{mean} per expert over {parts} micro-batches: no sign flip "
        f"(max count error {max_err:g})"
    )


def passes_that_do_not_count(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Forward passes in mode "eval", "no_grad" or "recompute" (activation recomputation,
    replayed routing) route like training but add nothing to the counts and move no bias
    (the "passes that should not count" bug class)."""
    _need_lifecycle(r)
    e = r.n_experts
    st = _warm(r, rng)
    x = _gate_scores(rng, 32, e, skew=1.0)
    ex_train, _, st_train = r.forward(x, st, mode="train")
    for mode in ("eval", "no_grad", "recompute"):
        ex, _, st2 = r.forward(x, st, mode=mode)
        if not np.array_equal(np.asarray(r.counts(st2)), np.asarray(r.counts(st))):
            raise _Fail(
                f"the {mode!r} pass changed the pending counts {np.asarray(r.counts(st)).tolist()}"
                f" -> {np.asarray(r.counts(st2)).tolist()}"
            )
        if not np.array_equal(np.asarray(r.bias(st2)), np.asarray(r.bias(st))):
            raise _Fail(f"the {mode!r} pass moved the bias")
        if not np.array_equal(_sets(ex, e), _sets(ex_train, e)):
            raise _Fail(
                f"the {mode!r} pass routed differently from the train pass with the same bias"
            )
        _, _, st3 = r.forward(x, st2, mode="train")
        (a,), (b,) = r.step([st3]), r.step([st_train])
        if not np.array_equal(np.asarray(r.bias(a)), np.asarray(r.bias(b))):
            raise _Fail(f"the {mode!r} pass before a train pass changed the next update")
    return "eval, no_grad and recompute passes move neither counts nor bias"


def frozen_bias(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """After ``freeze``, training passes and optimizer steps leave the bias bit-identical
    (a frozen bias that still moves is a known bug class)."""
    _need_lifecycle(r)
    if not callable(getattr(r, "freeze", None)):
        raise _Skip("router has no freeze(state)")
    st = r.freeze(_warm(r, rng))
    b0 = np.array(r.bias(st), copy=True)
    for i in range(3):
        _, _, st = r.forward(_gate_scores(rng, 32, r.n_experts, skew=1.5), st)
        (st,) = r.step([st])
        if not np.array_equal(np.asarray(r.bias(st)), b0):
            raise _Fail(f"frozen bias moved at step {i + 1}: {_f(b0)} -> {_f(r.bias(st))}")
    return "3 steps after freeze: bias unchanged"


def one_update_per_step(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Forward passes do not move the bias; one optimizer step after 3 micro-batches applies
    exactly one update of the declared rule to the summed loads."""
    rule = _need_rule(r)
    e = r.n_experts
    st, oracle = r.init(), rule.init(e, None)
    for _ in range(2):  # warm up alongside the oracle
        ex, _, st = r.forward(_gate_scores(rng, 32, e, skew=1.0), st)
        (st,) = r.step([st])
        oracle = rule.update(expert_loads(np.asarray(ex), e), oracle)
    b_before = np.array(r.bias(st), copy=True)
    total = np.zeros(e, dtype=np.int64)
    for i in range(3):
        ex, _, st = r.forward(_gate_scores(rng, 16, e, skew=1.0), st)
        total += expert_loads(np.asarray(ex), e)
        if not np.array_equal(np.asarray(r.bias(st)), b_before):
            raise _Fail(
                f"the bias moved during forward pass {i + 1}, before the optimizer step "
                "(an update per micro-batch)"
            )
    (st,) = r.step([st])
    new = rule.update(total, oracle)
    ok, err = _bias_close(r.bias(st), new.bias, float(np.max(np.abs(new.bias - oracle.bias))))
    if not ok:
        raise _Fail(
            f"one step after 3 micro-batches gives {_f(r.bias(st))}; one update of "
            f"{rule.name!r} on the summed loads gives {_f(new.bias)} (max error {err:.3g})"
        )
    return "bias fixed during forward passes; one rule update per optimizer step"


def checkpoint_roundtrip(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """state_dict holds every floating array in >= float32 (a bf16 bias loses the small
    differences that matter), and a run resumed from it continues bit-identically to the
    uninterrupted run (an out-of-place update can leave the checkpoint holding the initial
    zeros)."""
    _need_lifecycle(r)
    e = r.n_experts
    st = r.init()
    stream = [_gate_scores(rng, 32, e, skew=1.0) for _ in range(6)]
    for x in stream[:3]:
        _, _, st = r.forward(x, st)
        (st,) = r.step([st])
    sd = r.state_dict(st)
    storage = getattr(sd, "storage_dtypes", {})  # e.g. torch dtypes, see lfbtheory.adapters.torch
    for key, v in sd.items():
        a = np.asarray(v)
        name = storage.get(key, str(a.dtype))
        if name in ("bfloat16", "float16") or (
            np.issubdtype(a.dtype, np.floating) and a.dtype.itemsize < 4
        ):
            raise _Fail(
                f"checkpoint entry {key!r} is stored as {name}; persist the bias in >= float32"
            )
    resumed = r.load_state_dict({key: np.array(v, copy=True) for key, v in sd.items()})
    if not np.array_equal(np.asarray(r.bias(resumed)), np.asarray(r.bias(st))):
        raise _Fail(
            f"the checkpoint restores bias {_f(r.bias(resumed))} but the live bias is "
            f"{_f(r.bias(st))} (the saved state is stale)"
        )
    for i, x in enumerate(stream[3:]):
        ea, _, st = r.forward(x, st)
        eb, _, resumed = r.forward(x, resumed)
        (st,), (resumed,) = r.step([st]), r.step([resumed])
        if not np.array_equal(_sets(ea, e), _sets(eb, e)) or not np.array_equal(
            np.asarray(r.bias(st)), np.asarray(r.bias(resumed))
        ):
            raise _Fail(f"resumed run diverged from the uninterrupted run at step {i + 1}")
    return "checkpoint restores the bias exactly; 3 resumed steps bit-identical"


def padding_excluded(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """With ``valid`` marking real tokens, the pending counts equal the loads of the real
    tokens only, for n == E (where broadcast bugs hide; Megatron-LM 723db5a) and n != E."""
    _need_lifecycle(r)
    e = r.n_experts
    for n in (e, 3 * e + 1):
        x = _gate_scores(rng, n, e, skew=1.0)
        valid = np.ones(n, dtype=bool)
        valid[rng.choice(n, size=max(1, n // 3), replace=False)] = False
        st = r.init()
        ex, _, st = r.forward(x, st, valid=valid)
        want = expert_loads(np.asarray(ex), e, valid=valid)
        got = np.asarray(r.counts(st))
        if not np.array_equal(got.astype(np.float64), want.astype(np.float64)):
            raise _Fail(
                f"n={n} tokens ({int((~valid).sum())} padding): counts {got.tolist()} but the "
                f"real tokens' loads are {want.tolist()} -- padding was counted"
            )
    return "padding excluded from the counts (n == E and n != E)"


def bias_drift(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """Measures how far the mean bias drifts over ``drift_steps`` steps of a skewed stream
    (uncentered sign updates drift; centred ones keep the mean). Then, for
    the final bias shifted by D in ``drift_offsets`` (biases of released models sit near 2-35),
    the router's own choice (at the precision it stores its bias) must equal the float32 choice
    ``select(s, float32(b + D))``; how often a bf16-rounded bias changes the top-k is reported
    (the "low-precision bias" bug class)."""
    _need_lifecycle(r)
    e = r.n_experts
    st = r.init()
    mean0 = float(np.mean(np.asarray(r.bias(st), np.float64)))
    for _ in range(cfg.drift_steps):
        _, _, st = r.forward(_gate_scores(rng, 32, e, skew=1.0), st)
        (st,) = r.step([st])
    b = np.asarray(r.bias(st), np.float64)
    drift = float(b.mean()) - mean0
    msg = f"mean bias drifted {drift:+.4g} in {cfg.drift_steps} steps"
    if _bias_mode(r) == "multiplicative":
        return msg + "; bf16 probe skipped (multiplicative bias)"
    x = _gate_scores(rng, 256, e, skew=1.0)
    rates = []
    for dshift in cfg.drift_offsets:
        b32 = np.asarray(np.float32(b + dshift), np.float64)
        want = _sets(r.select(x, b32)[0], e)
        own, _, _ = r.forward(x, r.init(b32), mode="eval")
        diff = np.flatnonzero(np.any(_sets(own, e) != want, axis=1))
        if diff.size:
            raise _Fail(
                f"with the bias drifted by {dshift:g} the router's own choice differs from the "
                f"float32 choice for {diff.size}/{x.shape[0]} tokens (token {diff[0]}: "
                f"{_ids(want[diff[0]])} -> {_ids(_sets(own, e)[diff[0]])}): the bias is "
                "stored in too low a precision"
            )
        bf = _sets(r.select(x, np.asarray(to_bfloat16(b32), np.float64))[0], e)
        rates.append(float(np.mean(np.any(bf != want, axis=1))))
    probe = ", ".join(
        f"D={d:g}: {100 * q:.1f}%" for d, q in zip(cfg.drift_offsets, rates, strict=True)
    )
    return (
        msg + f"; own choice == float32 choice; a bf16-rounded bias would change the top-k of "
        f"[{probe}] of tokens"
    )


def causality(r: Any, rng: np.random.Generator, cfg: Config) -> str:
    """No token's routing depends on later tokens of its batch or on later batches
    (Hypothesis search of :func:`lfbtheory.analysis.causality.check_causality`)."""
    from lfbtheory.analysis.causality import check_causality

    rep = check_causality(
        r, _n_experts(r, cfg), max_examples=cfg.causality_examples, trials=0, seed=cfg.seed
    )
    if rep.leak:
        raise _Fail("future tokens leak into earlier routing:\n" + str(rep.counterexample))
    return f"no leak in {cfg.causality_examples} Hypothesis examples"


PROPERTIES: dict[str, Callable[[Any, np.random.Generator, Config], str]] = {
    f.__name__: f
    for f in (
        selection_valid,
        gate_weights_bias_free,
        bias_shift_invariance,
        selected_in_selected_groups,
        steering_monotonicity,
        steering_factor,
        closed_loop_balance,
        update_oracle,
        no_update_when_balanced,
        count_scale_invariance,
        microbatch_accumulation,
        data_parallel_reduction,
        count_precision,
        passes_that_do_not_count,
        frozen_bias,
        one_update_per_step,
        checkpoint_roundtrip,
        padding_excluded,
        bias_drift,
        causality,
    )
}


#: the router methods each property calls (beyond the router's attributes)
USES: dict[str, tuple[str, ...]] = {
    "selection_valid": ("call",),
    "gate_weights_bias_free": ("select",),
    "bias_shift_invariance": ("select",),
    "selected_in_selected_groups": ("select",),
    "steering_monotonicity": ("select",),
    "steering_factor": ("select",),
    "closed_loop_balance": ("forward", "step"),
    "update_oracle": ("forward", "step"),
    "no_update_when_balanced": ("forward", "step"),
    "count_scale_invariance": ("forward", "step"),
    "microbatch_accumulation": ("forward", "step"),
    "data_parallel_reduction": ("forward", "step"),
    "count_precision": ("forward", "step"),
    "passes_that_do_not_count": ("forward", "step"),
    "frozen_bias": ("forward", "step"),
    "one_update_per_step": ("forward", "step"),
    "checkpoint_roundtrip": ("forward", "step", "state_dict"),
    "padding_excluded": ("forward",),
    "bias_drift": ("forward", "step", "select"),
    "causality": ("call",),
}


def exercised(router: Any, prop: str) -> str:
    """Whose code ``prop`` runs: from the router's ``provenance`` (an adapter maps each
    lifecycle piece to "your module's ..." or "the adapter ..."), else the router's own
    methods."""
    prov = getattr(router, "provenance", None)
    uses = USES.get(prop, ())
    if isinstance(prov, Mapping):
        parts = [prov.get(m, f"your {m}") for m in uses if m != "call"]
        if "call" in uses:
            parts.insert(0, prov.get("call", prov.get("select", "your router")))
        return "; ".join(dict.fromkeys(parts))
    return "the router's own " + ", ".join("__call__" if m == "call" else m for m in uses)


def run_conformance(
    router: Any,
    *,
    only: Iterable[str] | None = None,
    config: Config | None = None,
    name: str | None = None,
) -> ConformanceReport:
    """Run the named properties (all by default) on ``router``; each gets its own seeded rng.

    A property that raises anything other than its own failure is reported as failed with the
    exception (a crashing router does not conform).
    """
    cfg = config or Config()
    names = list(PROPERTIES) if only is None else list(only)
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise ValueError(f"unknown properties {unknown}; choose from {', '.join(PROPERTIES)}")
    results = []
    for i, pname in enumerate(PROPERTIES):
        if pname not in names:
            continue
        rng = np.random.default_rng([cfg.seed, i])
        ex = exercised(router, pname)
        try:
            msg = PROPERTIES[pname](router, rng, cfg)
            results.append(PropertyResult(pname, "pass", msg, exercised=ex))
        except _NotApplicable as exc:
            results.append(PropertyResult(pname, "skip", str(exc), applicable=False))
        except _Skip as exc:
            results.append(PropertyResult(pname, "skip", str(exc)))
        except _Fail as exc:
            results.append(PropertyResult(pname, "fail", str(exc), exercised=ex))
        except Exception as exc:  # noqa: BLE001 -- a crashing router fails the property
            results.append(
                PropertyResult(pname, "fail", f"raised {type(exc).__name__}: {exc}", exercised=ex)
            )
    return ConformanceReport(
        name or _describe(router),
        tuple(results),
        has_bias=has_bias(router) or callable(getattr(router, "bias", None)),
        group_limited=_groups(router) is not None,
        lifecycle=is_bias_router(router),
        design_gaps=tuple(getattr(router, "design_gaps", ()) or ()),
    )


def _describe(router: Any) -> str:
    if inspect.isfunction(router) or isinstance(getattr(router, "__name__", None), str):
        name = str(router.__name__)
    else:
        name = str(getattr(router, "name", None) or type(router).__name__)
    how = getattr(router, "describe", None)  # adapters say how they feed the router
    return f"{name} [{how()}]" if callable(how) and not inspect.isclass(router) else name


def reference_router(n_experts: int = 8, k: int = 2) -> TokenChoice:
    """The reference Loss-Free router for the suite: token choice, sign rule u = 1e-3, bias from
    past batches only, DeepSeek-V3 group-limited routing (E/2 groups, 2 kept; group score the
    top-2 sum)."""
    return TokenChoice(
        n_experts,
        k,
        rule=updates.sign(1e-3),
        n_groups=max(1, n_experts // 2),
        topk_groups=min(2, max(1, n_experts // 2)),
    )


__all__ += list(PROPERTIES)
