"""The router interface and reference routers behind it.

A *router* is any callable ``router(scores, state) -> (selection, next_state)``:

- ``scores`` (n, E) float64, one row per token, rows **in sequence order** (row t is token t);
- ``state`` whatever the router carries between batches; ``None`` means "fresh";
- ``selection`` either (n, k) integer expert ids, or an (n, E) **bool** mask for routers whose
  per-token expert count varies (Expert Choice). Integer arrays are always read as ids.

Reference routers (uniform constructor ``Router(n_experts, k, **options)``):

- :class:`TokenChoice` top-k of s + b with a Loss-Free bias b computed from **past batches only**
  (arXiv 2408.15664 Sec. 3): causal. It also implements the training lifecycle the conformance
  suite checks (``forward`` per micro-batch, ``step`` per optimizer step across data-parallel
  replicas, eval passes, freezing, checkpoints; see :class:`BiasRouter`).
- :class:`ExpertChoice` each expert takes its top C = ceil(f n k / E) tokens (Zhou et al.,
  arXiv 2202.09368): balanced by construction, leaks future tokens.
- :class:`BASE` the exact balanced assignment of the batch (Lewis et al., arXiv 2103.16716),
  via :func:`lfbtheory.solve_balanced`: leaks.
- :class:`Sinkhorn` log-domain Sinkhorn balancing with an iteration cap, then top-k of the
  balanced plan (S-BASE, Clark et al., arXiv 2202.01169 Sec. 2): leaks.
- :class:`QuantilePricing` the bias fitted on the *current* batch (its exact balancing price,
  the dual optimum of the batch LP), then top-k of s + p: leaks.
- :class:`PlainTopK` top-k of s, no balancing: causal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory.lp import solve_balanced
from lfbtheory.lp.model import Method
from lfbtheory.metrics import expert_loads
from lfbtheory.online import state as _state
from lfbtheory.online import updates as _updates
from lfbtheory.online.state import RouterState
from lfbtheory.routing import route, route_options, topk_indices
from lfbtheory.validation import as_k, as_positive_int, as_scores, choice

__all__ = [
    "Router",
    "BiasRouter",
    "Selection",
    "TokenChoice",
    "TokenChoiceState",
    "ExpertChoice",
    "BASE",
    "Sinkhorn",
    "QuantilePricing",
    "PlainTopK",
    "ROUTERS",
    "MODES",
    "make_router",
    "selection_mask",
    "check_batch",
]

Selection = NDArray[np.int64] | NDArray[np.bool_]
MODES = ("train", "eval", "no_grad", "recompute")


@runtime_checkable
class Router(Protocol):
    """``router(scores (n, E) in sequence order, state) -> (selection, next_state)``."""

    def __call__(self, scores: NDArray[np.float64], state: Any) -> tuple[Selection, Any]: ...


@runtime_checkable
class BiasRouter(Protocol):
    """A token-choice router with a load-balancing bias and a training lifecycle.

    Attributes ``n_experts``, ``k``, ``n_groups``/``topk_groups``/``group_score_topk`` (None
    when not group-limited) and ``rule`` (the :class:`lfbtheory.updates.Rule` it claims to
    implement, owning its step size u_t). Methods:

    - ``init(bias0=None) -> state``;
    - ``select(scores, bias) -> (experts (n, k), weights (n, k))`` pure routing with an explicit
      bias;
    - ``forward(scores, state, *, mode="train", valid=None) -> (experts, weights, state)`` one
      micro-batch; only ``mode="train"`` may add to the pending counts, ``valid`` (n,) bool marks
      real (non-padding) tokens;
    - ``step(states) -> tuple of states`` one optimizer step over all data-parallel replicas
      (reduce the pending counts, apply one bias update, reset the counts);
    - ``bias(state)``, ``counts(state)`` (pending counts), ``freeze(state)``;
    - ``state_dict(state) -> dict[str, ndarray]`` and ``load_state_dict(d) -> state``;
    - ``__call__(scores, state)`` = one ``forward`` in train mode then one ``step``.
    """

    n_experts: int
    k: int

    def __call__(self, scores: NDArray[np.float64], state: Any) -> tuple[Selection, Any]: ...
    def init(self, bias0: ArrayLike | None = None) -> Any: ...
    def select(
        self, scores: ArrayLike, bias: ArrayLike
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]: ...
    def forward(
        self, scores: ArrayLike, state: Any, *, mode: str = "train", valid: ArrayLike | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], Any]: ...
    def step(self, states: Sequence[Any]) -> tuple[Any, ...]: ...
    def bias(self, state: Any) -> NDArray[np.floating]: ...
    def counts(self, state: Any) -> NDArray[np.number]: ...
    def freeze(self, state: Any) -> Any: ...
    def state_dict(self, state: Any) -> dict[str, NDArray[Any]]: ...
    def load_state_dict(self, d: Mapping[str, ArrayLike]) -> Any: ...


def check_batch(scores: ArrayLike, n_experts: int) -> NDArray[np.float64]:
    """Validate one batch: finite (n, E) with E == ``n_experts``."""
    s = as_scores(scores)
    if s.shape[1] != n_experts:
        raise ValueError(
            f"scores must have E={n_experts} columns (the router's n_experts), got {s.shape[1]}"
        )
    return s


def selection_mask(selection: ArrayLike, n_experts: int) -> NDArray[np.bool_]:
    """(n, E) bool mask of a selection: ids (n, k) -> one-hot rows; a bool (n, E) mask as is."""
    sel = np.asarray(selection)
    if sel.ndim != 2:
        raise ValueError(
            f"selection must be 2-D ((n, k) ids or (n, E) bool mask), got shape {sel.shape}"
        )
    if sel.dtype == bool:
        if sel.shape[1] != n_experts:
            raise ValueError(
                f"a bool selection mask must have E={n_experts} columns, got {sel.shape}"
            )
        return sel.copy()
    if not np.issubdtype(sel.dtype, np.integer):
        raise TypeError(f"selection must hold integer expert ids or bools, got dtype {sel.dtype}")
    if sel.size and (sel.min() < 0 or sel.max() >= n_experts):
        raise ValueError(
            f"selected expert ids must lie in [0, {n_experts}), got [{sel.min()}, {sel.max()}]"
        )
    mask = np.zeros((sel.shape[0], n_experts), dtype=bool)
    np.put_along_axis(mask, sel.astype(np.int64), True, axis=1)
    return mask


def _check_sizes(n_experts: int, k: int) -> tuple[int, int]:
    e = as_positive_int(n_experts, "n_experts")
    return e, as_k(k, e)


# ---------------------------------------------------------------------------------------------
# Token choice with a past-only bias (the Loss-Free Balancing router)


TokenChoiceState = RouterState  # one state type for every Loss-Free bias (online.state)


@dataclass(frozen=True)
class TokenChoice:
    """Top-k of s + b (or s * b) with a bias updated once per optimizer step from past loads.

    Token t of batch m is routed with b_m, which depends on the loads of batches < m only, so
    no token's routing can depend on a later token (causal). The lifecycle is the router-state
    machine of :mod:`lfbtheory.online.state` (the same one :func:`lfbtheory.simulate` runs);
    the update is ``rule.update(loads, state)`` with the rule owning its step size (default:
    the published sign rule with u = 1e-3, arXiv 2408.15664 eq. 3). Selection and gate weights
    are :func:`lfbtheory.route` (weights from the unbiased scores; optional DeepSeek-V3
    group-limited routing, arXiv 2412.19437 Sec. 2.1.2).
    """

    n_experts: int
    k: int
    rule: _updates.Rule = field(default_factory=lambda: _updates.sign(1e-3))
    n_groups: int | None = None
    topk_groups: int | None = None
    group_score_topk: int = 2
    normalize: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.rule, _updates.Rule):
            raise TypeError("rule must be an lfbtheory.updates.Rule (e.g. updates.sign(1e-3))")
        # Validate sizes and group arguments at construction, not at the first batch.
        route_options(
            self.n_experts,
            self.k,
            self.rule.bias_mode,
            self.n_groups,
            self.topk_groups,
            self.group_score_topk,
        )

    # -- pure routing ---------------------------------------------------------------------
    def select(
        self, scores: ArrayLike, bias: ArrayLike
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """(experts, weights) of :func:`lfbtheory.route` with this router's options."""
        r = route(
            check_batch(scores, self.n_experts),
            self.k,
            bias,
            bias_mode=self.rule.bias_mode,
            n_groups=self.n_groups,
            topk_groups=self.topk_groups,
            group_score_topk=self.group_score_topk,
            normalize=self.normalize,
        )
        assert r.weights is not None  # route's default weights=True
        return r.experts, r.weights

    # -- lifecycle --------------------------------------------------------------------------
    def init(self, bias0: ArrayLike | None = None) -> RouterState:
        return _state.init_state(self.rule, self.n_experts, bias0)

    def forward(
        self,
        scores: ArrayLike,
        state: RouterState,
        *,
        mode: str = "train",
        valid: ArrayLike | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], RouterState]:
        """Route one micro-batch with the current bias; train mode adds real tokens' counts."""
        choice(mode, "mode", MODES)
        experts, weights = self.select(scores, state.bias)
        if mode != "train":
            return experts, weights, state
        return (
            experts,
            weights,
            _state.accumulate(state, expert_loads(experts, self.n_experts, valid=valid)),
        )

    def step(self, states: Sequence[RouterState]) -> tuple[RouterState, ...]:
        """One optimizer step on every data-parallel replica: all-reduce (sum) the pending
        counts, apply one update of the rule to each replica's bias, reset the counts."""
        return _state.optimizer_step(self.rule, states)

    def bias(self, state: RouterState) -> NDArray[np.float64]:
        return state.bias

    def counts(self, state: RouterState) -> NDArray[np.int64]:
        return state.pending

    def freeze(self, state: RouterState) -> RouterState:
        return _state.freeze(state)

    def state_dict(self, state: RouterState) -> dict[str, NDArray[Any]]:
        """The checkpoint format of :func:`lfbtheory.online.state.state_dict` (float64 bias)."""
        return _state.state_dict(self.rule, state)

    def load_state_dict(self, d: Mapping[str, ArrayLike]) -> RouterState:
        return _state.load_state_dict(self.rule, d, n_experts=self.n_experts)

    def __call__(
        self, scores: ArrayLike, state: RouterState | None
    ) -> tuple[NDArray[np.int64], RouterState]:
        """Route the batch with the bias from past batches, then update it from these loads."""
        state = self.init() if state is None else state
        experts, _, pending = self.forward(scores, state, mode="train")
        return experts, self.step([pending])[0]


# ---------------------------------------------------------------------------------------------
# Batch-level balancers: balanced, but each token's choice depends on the whole batch


@dataclass(frozen=True)
class PlainTopK:
    """Top-k of the scores, no balancing (causal; the unbalanced baseline)."""

    n_experts: int
    k: int

    def __post_init__(self) -> None:
        _check_sizes(self.n_experts, self.k)

    def __call__(self, scores: ArrayLike, state: Any = None) -> tuple[NDArray[np.int64], None]:
        return route(check_batch(scores, self.n_experts), self.k, weights=False).experts, None


@dataclass(frozen=True)
class ExpertChoice:
    """Each expert takes its top C = min(n, ceil(f n k / E)) tokens (Zhou et al., arXiv 2202.09368).

    Returns an (n, E) bool mask (a token may get 0..E experts). Ties go to the earlier token.
    """

    n_experts: int
    k: int
    capacity_factor: float = 1.0

    def __post_init__(self) -> None:
        _check_sizes(self.n_experts, self.k)
        if not (math.isfinite(self.capacity_factor) and self.capacity_factor > 0):
            raise ValueError(f"capacity_factor must be finite and > 0, got {self.capacity_factor}")

    def __call__(self, scores: ArrayLike, state: Any = None) -> tuple[NDArray[np.bool_], None]:
        s = check_batch(scores, self.n_experts)
        n = s.shape[0]
        cap = min(n, max(1, math.ceil(self.capacity_factor * n * self.k / self.n_experts)))
        tokens = topk_indices(s.T, cap)  # (E, C) token ids per expert
        mask = np.zeros(s.shape, dtype=bool)
        np.put_along_axis(mask.T, tokens, True, axis=1)
        return mask, None


def _lse(x: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """log-sum-exp along ``axis``, max-shifted; cheaper than scipy's on tiny arrays."""
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _capacity(n: int, k: int, e: int) -> int:
    return -(-n * k // e)


@dataclass(frozen=True)
class BASE:
    """Exact balanced assignment of the batch (BASE layers, Lewis et al., arXiv 2103.16716):
    the LP optimum with capacity ceil(n k / E) per expert, from :func:`lfbtheory.solve_balanced`."""

    n_experts: int
    k: int
    solver: Method = "linprog"

    def __post_init__(self) -> None:
        _check_sizes(self.n_experts, self.k)

    def __call__(self, scores: ArrayLike, state: Any = None) -> tuple[NDArray[np.int64], None]:
        s = check_batch(scores, self.n_experts)
        opt = solve_balanced(
            s, self.k, capacity=_capacity(s.shape[0], self.k, self.n_experts), method=self.solver
        )
        return opt.experts, None


@dataclass(frozen=True)
class QuantilePricing:
    """Bias fitted on the *current* batch: p = the exact balancing price of this batch (the dual
    optimum of its assignment LP, capacity ceil(n k / E)), then top-k of s + p. Balanced up to
    ties, and non-causal: p depends on every token of the batch."""

    n_experts: int
    k: int

    def __post_init__(self) -> None:
        _check_sizes(self.n_experts, self.k)

    def prices(self, scores: ArrayLike) -> NDArray[np.float64]:
        """The balancing price of this batch (dual optimum of its assignment LP)."""
        s = check_batch(scores, self.n_experts)
        return solve_balanced(
            s, self.k, capacity=_capacity(s.shape[0], self.k, self.n_experts), method="linprog"
        ).bias

    def __call__(self, scores: ArrayLike, state: Any = None) -> tuple[NDArray[np.int64], None]:
        s = check_batch(scores, self.n_experts)
        return route(s, self.k, self.prices(s), weights=False).experts, None


@dataclass(frozen=True)
class Sinkhorn:
    """Sinkhorn balancing in the log domain, then top-k of the balanced plan (S-BASE).

    Plan P = exp(s/tau + f_t + g_i) with row sums k and column sums n k / E; f, g by alternating
    log-sum-exp updates (no exp overflow), stopped at ``tol`` on the row sums or after
    ``max_iter`` iterations -- never unbounded (an uncapped Sinkhorn loop is a known bug
    class). Top-k of a row
    of P is top-k of s/tau + g: a price g fitted on the current batch (Clark et al.,
    arXiv 2202.01169 Sec. 2; Cuturi 2013).
    """

    n_experts: int
    k: int
    temperature: float = 0.05
    max_iter: int = 100
    tol: float = 1e-6

    def __post_init__(self) -> None:
        _check_sizes(self.n_experts, self.k)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be finite and > 0, got {self.temperature}")
        as_positive_int(self.max_iter, "max_iter")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol}")

    def potentials(self, scores: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        """(f, g, iterations) of the log-domain Sinkhorn iteration."""
        s = check_batch(scores, self.n_experts)
        n, e = s.shape
        logk = s / self.temperature
        log_row, log_col = math.log(self.k), math.log(n * self.k / e)
        f, g = np.zeros(n), np.zeros(e)
        it = 0
        for it in range(1, self.max_iter + 1):  # noqa: B007 -- `it` is reported
            f = log_row - _lse(logk + g, axis=1)
            g = log_col - _lse(logk + f[:, None], axis=0)
            rows = np.exp(_lse(logk + f[:, None] + g, axis=1))
            if np.max(np.abs(rows - self.k)) <= self.tol * self.k:
                break
        return f, g, it

    def __call__(self, scores: ArrayLike, state: Any = None) -> tuple[NDArray[np.int64], None]:
        s = check_batch(scores, self.n_experts)
        _, g, _ = self.potentials(s)
        return topk_indices(s / self.temperature + g, self.k), None


ROUTERS: dict[str, type] = {
    "token_choice": TokenChoice,
    "expert_choice": ExpertChoice,
    "base": BASE,
    "sinkhorn": Sinkhorn,
    "quantile_pricing": QuantilePricing,
    "plain_topk": PlainTopK,
}


def make_router(name: str, n_experts: int, k: int, **options: Any) -> Router:
    """Build a reference router by name (``ROUTERS``) with the uniform constructor."""
    if name not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(sorted(ROUTERS))}; got {name!r}")
    return ROUTERS[name](n_experts, k, **options)  # type: ignore[no-any-return]
