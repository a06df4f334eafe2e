"""Re-solving price rules: the bias of a step is an exact optimal price of past batches.

The online-LP rules of the literature that re-solve instead of stepping (Agrawal, Wang & Ye,
Oper. Res. 2014; Li & Ye, arXiv 1901.04124; Gao, Sun, Xue, Ge & Ye, arXiv 2402.07108):

    p_{t+1} in argmin_p  sum_{s in S_t} D_s(p),   D_s(p) = sum_tokens topk(s + p) - L sum(p)

with S_t = {1..t} (follow the leader: the pooled hindsight price of the past, which the
balanced assignment of the pooled tokens certifies, capacity |S_t| L), S_t = {t-W+1..t}
(a sliding window of W steps) or S_t = {t} (lag-1: the previous step's own optimal price).
p_1 = bias0 (default 0). The price routing step t depends on the batches of steps < t only.

A :class:`Resolve` step is an exact LP solve, not arithmetic on a load signal: it needs the
scores of the step's tokens (not only its loads), so :func:`lfbtheory.simulate` runs it in the
reference loop, which hands it the scores of every training micro-batch of the step; the
compiled loop cannot run it and refuses to be forced to. Follow the leader keeps an
incremental prefix solver in its state (:class:`PrefixSolver`: the successive-shortest-path
chain of :func:`lfbtheory.lp.solve_prefixes`, each prefix certified), so a step costs the new
tokens and the contested band rather than a solve of the whole pool; a window re-solves its
W batches warm-started from the last price.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["PrefixSolver", "Resolve", "ResolveState"]


class PrefixSolver:
    """Certified optimal prices of the growing pool batches[:1], batches[:2], ... fed one
    batch at a time (:meth:`push`), each an optimal price of the pooled balanced LP
    (capacity t n k / E). Incremental: the chain of :func:`lfbtheory._engine.ssp.ssp_prefixes`
    on a buffer that doubles when full (the chain then restarts, warm-started from the last
    price), every prefix certified by :class:`lfbtheory.lp.certificate.GrowingVerdicts`; a
    failed certificate, scores outside the chain's range, or batches of different sizes fall
    back to :func:`lfbtheory.lp.solve_balanced` of the pool, warm-started. Every batch needs
    n k divisible by E (:meth:`Resolve.observe` checks it). Mutable; it reads only the
    batches pushed so far (the buffer rows after them are zeros, never read as data)."""

    def __init__(self, n_experts: int, k: int, capacity: int = 64) -> None:
        self.e, self.k = int(n_experts), int(k)
        self._cap_batches = max(1, int(capacity))
        self._buf: NDArray[np.float64] | None = None
        self._parts: list[NDArray[np.float64]] = []  # the fallback's pool (any n per batch)
        self.t = 0
        self.bias: NDArray[np.float64] | None = None
        self._chain: Any = None
        self._verdicts: Any = None
        self._smax = 0.0
        self._incremental = True

    def push(self, batch: NDArray[np.float64]) -> NDArray[np.float64]:
        """Add one (n, E) batch (validated float64) and return an optimal price of the pool."""
        from lfbtheory.lp.solve import _SSP_RANGE, solve_balanced

        n = batch.shape[0]
        self._smax = max(self._smax, float(np.max(np.abs(batch))))
        if self._incremental and (
            (self._buf is not None and self._buf.shape[1] != n)
            or not (2.0**-_SSP_RANGE <= self._smax < 2.0**_SSP_RANGE)
        ):
            self._incremental = False  # from here on: pool solves
            if self._buf is not None:
                self._parts = [self._buf[i] for i in range(self.t)]
            self._buf = self._chain = None
        if not self._incremental:
            self._parts.append(batch)
            self.t += 1
            pool = np.concatenate(self._parts)
            self.bias = solve_balanced(pool, self.k, warm_start=self.bias).bias
            return self.bias
        if self._buf is None:
            self._buf = np.zeros((self._cap_batches, n, self.e))
        elif self.t == self._buf.shape[0]:
            grown = np.zeros((2 * self._buf.shape[0], n, self.e))
            grown[: self.t] = self._buf
            self._buf, self._chain = grown, None
        self._buf[self.t] = batch
        self.t += 1
        tokens = self._buf[: self.t].reshape(-1, self.e)
        cap = tokens.shape[0] * self.k // self.e
        if self._chain is None:
            self._start_chain()
        _, asg, bias, _ = next(self._chain)
        cert = self._verdicts.certify(tokens, asg, bias, cap, self._smax)
        if cert.ok:
            self.bias = np.array(bias, dtype=np.float64)
        else:  # never expected: solve this prefix anew, restart the chain after it
            self.bias = solve_balanced(tokens, self.k, warm_start=self.bias).bias
            self._chain = None
        return self.bias

    def _start_chain(self) -> None:
        from lfbtheory._engine.ssp import ssp_prefixes
        from lfbtheory.lp.certificate import GrowingVerdicts

        assert self._buf is not None
        cap_b, n, e = self._buf.shape
        lengths = np.arange(self.t, cap_b + 1, dtype=np.int64)
        flat = self._buf.reshape(-1, e)  # a view: later pushes are seen by the chain
        self._chain = ssp_prefixes(flat, n, self.k, lengths, warm_start=self.bias)
        self._verdicts = GrowingVerdicts(cap_b * n, e, self.k)


class ResolveState(NamedTuple):
    """bias (E,): the price routing the next step; count: steps observed; past: the scores of
    the last min(count, W) steps (all of them for follow the leader), oldest first, copies;
    solver: follow the leader's incremental :class:`PrefixSolver` (None for a window), valid
    while its ``t`` equals ``count`` (a state advanced twice rebuilds it from ``past``)."""

    bias: NDArray[np.float64]
    count: int  # type: ignore[assignment]  # shadows tuple.count: the field's public name
    past: tuple[NDArray[np.float64], ...] = ()
    solver: PrefixSolver | None = None


class Resolve(NamedTuple):
    """A re-solving rule (module docstring): ``window`` = None (follow the leader) or W >= 1
    (the last W steps; W = 1 is the lag-1 exact price). Interface of the other rules
    (``init``, ``name``, ``to_json``, ``check_state``) plus :meth:`observe`, which takes the
    step's scores; it has no step size."""

    window: int | None = None

    @property
    def bias_mode(self) -> str:
        """Additive: the price is added to the scores."""
        return "additive"

    @property
    def state_type(self) -> Any:  # a NamedTuple class
        return ResolveState

    @property
    def name(self) -> str:
        if self.window is None:
            return "follow_the_leader"
        return "lag1" if self.window == 1 else f"window_{self.window}"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.name, "kind": "resolve", "window": self.window}

    def init(self, n_experts: int, bias0: ArrayLike | None = None) -> ResolveState:
        from lfbtheory.online.updates import _as_bias

        if isinstance(n_experts, bool) or not isinstance(n_experts, (int, np.integer)):
            raise TypeError(f"n_experts must be an integer >= 1, got {n_experts!r}")
        if int(n_experts) < 1:
            raise ValueError(f"n_experts must be >= 1, got {n_experts}")
        e = int(n_experts)
        b = np.zeros(e) if bias0 is None else _as_bias(bias0, e, "bias0")
        return ResolveState(b, 0, (), None)

    def check_state(self, state: Any) -> None:
        if type(state) is not ResolveState:
            raise TypeError(
                f"state must be a ResolveState (the state of rule {self.name!r}), "
                f"got {type(state).__name__}"
            )
        b = np.asarray(state.bias)
        if b.ndim != 1 or b.size < 1 or not np.all(np.isfinite(b)):
            raise ValueError(f"state.bias must be a finite 1-D array, got {b!r}")
        if isinstance(state.count, bool) or not isinstance(state.count, (int, np.integer)):
            raise TypeError(f"state.count must be an integer >= 0, got {state.count!r}")
        want = state.count if self.window is None else min(state.count, self.window)
        if state.count < 0 or len(state.past) != want:
            raise ValueError(
                f"state of {self.name!r} with count {state.count} must hold {want} past "
                f"batches, holds {len(state.past)}"
            )

    def observe(self, scores: ArrayLike, state: ResolveState, k: int) -> ResolveState:
        """The state after one step whose tokens had ``scores`` (n, E), routed top-k: the
        new price is an optimal price of the pooled batches of S_t (module docstring)."""
        from lfbtheory.lp.solve import solve_balanced
        from lfbtheory.validation import as_scores

        self.check_state(state)
        s = np.array(as_scores(scores, name="scores"), dtype=np.float64)  # a copy
        e = state.bias.shape[0]
        if s.shape[1] != e:
            raise ValueError(f"scores have E={s.shape[1]} experts, the state has E={e}")
        if (s.shape[0] * k) % e:
            raise ValueError(
                f"rule {self.name!r} re-solves the balanced LP with L = n k / E per step: a "
                f"step's n*k must be divisible by E, got n={s.shape[0]}, k={k}, E={e}"
            )
        past = (*state.past, s)
        if self.window is None:
            solver = state.solver
            if solver is None or solver.t != state.count:  # fresh, or a reused old state
                solver = PrefixSolver(e, k)
                for b in state.past:
                    solver.push(b)
            bias = solver.push(s).copy()
            return ResolveState(bias, state.count + 1, past, solver)
        past = past[-self.window :]
        pool = past[0] if len(past) == 1 else np.concatenate(past)
        bias = solve_balanced(pool, k, warm_start=state.bias).bias
        return ResolveState(np.array(bias, dtype=np.float64), state.count + 1, past, None)
