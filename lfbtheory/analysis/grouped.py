"""Group-limited routing in the regret ledger: an exact dual, the router's heuristic, a bracket.

DeepSeek-V3 (arXiv 2412.19437, Sec. 2.1.2) splits the E experts into G equal groups and lets a
token use experts from M of them only. A token's feasible sets are
F = {X subset of experts : |X| = k, X inside the union of some M groups}. The group-limited
batch problem is the integer program

    OPT^G = max sum_t s_t . x_t  s.t.  x_t in F (as 0/1 vectors),  sum_t x_t = L 1,

and its Lagrangian dual over the expert constraints (L = n k / E)

    D^G(p) = sum_t max_{X in F} (s_t + p) . X  -  L sum p

is convex in p (a sum of maxima of affine functions). Weak duality: every feasible
group-limited assignment x has value s.x = sum_t (s_t + p).x_t - L sum p <= D^G(p), so
OPT^G <= min_p D^G(p) (the Lagrangian bound, equal to the LP over conv(F) per token) <=
OPT_LP (the plain balanced LP, which drops the group restriction). The exact best response
enumerates the C(G, M) group subsets: for each subset, the top-k of s_t + p over the union
of its experts; the best subset wins (ties: the first subset in lexicographic order, then
the routing tie rule of :mod:`lfbtheory.routing`).

The router's own rule (:func:`lfbtheory.routing.eligible_experts`) scores a group by the sum
of its 2 largest biased scores and routes top-k inside the M best groups: a heuristic best
response, H(p) <= D^G(p). Its loads minus L are then not a subgradient of D^G.

The bracket of the group-limited optimum: lower = the value of a feasible group-limited
assignment found (route with the minimising price, repair capacity by cheapest swaps inside
group-limited sets; None if repair fails) <= OPT^G <= min_p D^G(p) <= OPT_LP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from lfbtheory.analysis.cutting import CutResult, minimize_pieces
from lfbtheory.routing import route, route_options, topk_indices
from lfbtheory.validation import as_bias, as_scores

__all__ = [
    "GroupBracket",
    "GroupLedger",
    "best_response",
    "group_bracket",
    "group_dual",
    "group_ledger",
    "group_subsets",
    "heuristic_response",
    "minimize_group_dual",
    "repair_group_limited",
]


def group_subsets(n_experts: int, n_groups: int, topk_groups: int) -> NDArray[np.bool_]:
    """(C(G, M), E) masks: row c marks the experts of the c-th M-subset of the G groups
    (lexicographic order of the subsets; groups are contiguous blocks of E / G experts)."""
    opts = route_options(n_experts, 1, "additive", n_groups, topk_groups)
    g = n_experts // n_groups
    combos = list(combinations(range(n_groups), topk_groups))
    masks = np.zeros((len(combos), n_experts), dtype=bool)
    for c, groups in enumerate(combos):
        for grp in groups:
            masks[c, grp * g : (grp + 1) * g] = True
    del opts
    return masks


def _check(scores: ArrayLike, k: int, n_groups: int, topk_groups: int):  # type: ignore[no-untyped-def]
    s = as_scores(scores)
    opts = route_options(s.shape[1], k, "additive", n_groups, topk_groups)
    return s, opts


def best_response(
    scores: ArrayLike, k: int, bias: ArrayLike, n_groups: int, topk_groups: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Exact group-limited best response at price p: (experts (n, k), value_t (n,)) with
    value_t = max_{X in F} (s_t + p).X, by enumerating the C(G, M) group subsets.

    Per group the k largest of s_t + p are kept (sorted); the top-k over a union of M groups is
    the top-k of the union of those lists, so each subset costs O(M k) per token.
    """
    s, opts = _check(scores, k, n_groups, topk_groups)
    k = opts.k
    n, e = s.shape
    p = as_bias(bias, e)
    sel = s + p
    g = e // n_groups
    kk = min(k, g)
    grouped = sel.reshape(n, n_groups, g)
    top = -np.sort(-grouped, axis=2)[:, :, :kk]  # (n, G, kk) descending
    best_val = np.full(n, -np.inf)
    best_sub = np.zeros(n, dtype=np.int64)
    combos = list(combinations(range(n_groups), topk_groups))
    for c, groups in enumerate(combos):
        pool = top[:, list(groups), :].reshape(n, -1)
        val = -np.sort(-pool, axis=1)[:, :k].sum(axis=1)
        better = val > best_val  # strict: ties keep the first subset
        best_val = np.where(better, val, best_val)
        best_sub = np.where(better, c, best_sub)
    masks = group_subsets(e, n_groups, topk_groups)[best_sub]
    experts = topk_indices(np.where(masks, sel, -np.inf), k)
    return experts, best_val


def heuristic_response(
    scores: ArrayLike,
    k: int,
    bias: ArrayLike,
    n_groups: int,
    topk_groups: int,
    group_score_topk: int = 2,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The router's group-limited choice at p (:func:`lfbtheory.route`, groups scored by the sum
    of their ``group_score_topk`` largest biased scores): (experts (n, k), (s_t + p).X_t (n,))."""
    s = as_scores(scores)
    p = as_bias(bias, s.shape[1])
    ex = route(s, k, p, n_groups=n_groups, topk_groups=topk_groups,
               group_score_topk=group_score_topk, weights=False).experts  # fmt: skip
    return ex, np.take_along_axis(s + p, ex, axis=1).sum(axis=1)


def _capacity(n: int, k: int, e: int) -> int:
    if (n * k) % e:
        raise ValueError(f"n*k must be divisible by E for the capacity L = n k / E (n={n}, k={k}, "
                         f"E={e})")  # fmt: skip
    return n * k // e


def group_dual(
    scores: ArrayLike, k: int, bias: ArrayLike, n_groups: int, topk_groups: int
) -> tuple[float, NDArray[np.float64]]:
    """(D^G(p), a subgradient load^G(p) - L) with load^G the loads of the exact best response."""
    s = as_scores(scores)
    n, e = s.shape
    p = as_bias(bias, e)
    ex, val = best_response(s, k, p, n_groups, topk_groups)
    cap = _capacity(n, k, e)
    loads = np.bincount(ex.ravel(), minlength=e).astype(np.float64)
    return float(val.sum() - cap * p.sum()), loads - cap


TOKEN_CUTS_MAX = 20_000  # pooled tokens up to which cuts are per token (else one per batch)
REPAIR_MAX_TOKENS = 50_000  # the swap repair costs O(moves n k E): beyond this it is not run


def minimize_group_dual(
    batches: Sequence[ArrayLike] | NDArray[np.float64],
    k: int,
    n_groups: int,
    topk_groups: int,
    *,
    start: ArrayLike | None = None,
    rtol: float = 1e-9,
    max_calls: int = 300,
    cuts: str = "auto",
) -> CutResult:
    """min_p sum_t D^G_t(p) over the batches (pooled capacity), exactly up to the certified gap
    (:func:`lfbtheory.analysis.cutting.minimize_pieces`). ``cuts``: "token" (one cut per token
    per call: fewest calls), "batch" (one per batch: a small master LP), "auto" (token up to
    TOKEN_CUTS_MAX pooled tokens)."""
    bs = [as_scores(b, name=f"batches[{i}]") for i, b in enumerate(batches)]
    if not bs:
        raise ValueError("batches must hold at least one (n, E) array")
    choice_ = cuts if cuts in ("auto", "token", "batch") else None
    if choice_ is None:
        raise ValueError(f"cuts must be 'auto', 'token' or 'batch', got {cuts!r}")
    n_tok = sum(b.shape[0] for b in bs)
    per_token = cuts == "token" or (cuts == "auto" and n_tok <= TOKEN_CUTS_MAX)
    e = bs[0].shape[1]
    k_ = route_options(e, k, "additive", n_groups, topk_groups).k
    caps = [_capacity(b.shape[0], k_, e) for b in bs]
    total_cap = float(sum(caps))
    m = n_tok if per_token else len(bs)
    owner = np.concatenate([np.full(b.shape[0], i) for i, b in enumerate(bs)])

    def oracle(p: NDArray[np.float64]) -> tuple[NDArray[np.float64], sp.csr_matrix]:
        vals, rows = [], []
        for b in bs:
            ex, val = best_response(b, k_, p, n_groups, topk_groups)
            vals.append(val)
            rows.append(ex)
        ex_all = np.concatenate(rows)
        v_tok = np.concatenate(vals)
        piece = np.arange(n_tok) if per_token else owner
        g = sp.csr_matrix((np.ones(ex_all.size), (np.repeat(piece, k_), ex_all.ravel())),
                          shape=(m, e))  # fmt: skip
        v = np.bincount(piece, weights=v_tok, minlength=m)
        lin = sp.csr_matrix(np.full((1, e), -total_cap))
        return np.concatenate([v, [-total_cap * p.sum()]]), sp.vstack([g, lin]).tocsr()

    spread = max(float(max(b.max() for b in bs) - min(b.min() for b in bs)), 1e-12)
    p0 = None if start is None else as_bias(start, e)
    return minimize_pieces(oracle, e, m + 1, start=p0, box=2 * spread, rtol=rtol,
                           max_calls=max_calls)  # fmt: skip


def _token_groups(ex: NDArray[np.int64], g: int, n_groups: int) -> NDArray[np.bool_]:
    used = np.zeros((ex.shape[0], n_groups), dtype=bool)
    np.put_along_axis(used, ex // g, True, axis=1)
    return used


def repair_group_limited(
    scores: ArrayLike,
    experts: ArrayLike,
    n_groups: int,
    topk_groups: int,
    capacity: int,
    *,
    max_moves: int | None = None,
) -> NDArray[np.int64] | None:
    """Make a group-limited assignment balanced (every load = ``capacity``) by cheapest swaps.

    Each move replaces, for one token, an expert i with load > L by an expert j with load < L
    that the token does not hold, such that the token's set stays inside <= M groups; the move
    with the smallest loss s_ti - s_tj is taken. Returns the repaired (n, k) experts, or None
    when no admissible move remains (the repair abstains; it is a heuristic lower bound).
    """
    s = as_scores(scores)
    ex = np.array(experts, dtype=np.int64, copy=True)
    n, e = s.shape
    g = e // n_groups
    loads = np.bincount(ex.ravel(), minlength=e)
    budget = int(np.abs(loads - capacity).sum()) + 1 if max_moves is None else int(max_moves)
    for _ in range(budget):
        over = loads > capacity
        under = loads < capacity
        if not over.any():
            return ex
        used = _token_groups(ex, g, n_groups)  # (n, G)
        n_used = used.sum(axis=1)
        holds = np.zeros((n, e), dtype=bool)
        np.put_along_axis(holds, ex, True, axis=1)
        grp_of = np.arange(e) // g
        best = (np.inf, -1, -1, -1)
        for slot in range(ex.shape[1]):
            i = ex[:, slot]
            ok_tok = over[i]
            if not ok_tok.any():
                continue
            # groups left after removing i: i's group stays used iff another held expert shares it
            same = (ex // g == (i // g)[:, None]).sum(axis=1) > 1
            left = n_used - (~same)
            j_grp_used = used[:, grp_of]  # (n, E)
            feasible = under[None, :] & ~holds & ok_tok[:, None]
            feasible &= j_grp_used | (left[:, None] < topk_groups)
            # i's own group, if i leaves it empty, remains usable: counted via ``left``
            loss = np.where(feasible, s[np.arange(n), i][:, None] - s, np.inf)
            flat = int(np.argmin(loss))
            t, j = divmod(flat, e)
            if loss[t, j] < best[0]:
                best = (float(loss[t, j]), t, slot, j)
        if not np.isfinite(best[0]):
            return None
        _, t, slot, j = best
        loads[ex[t, slot]] -= 1
        loads[j] += 1
        ex[t, slot] = j
    return ex if not (loads > capacity).any() else None


@dataclass(frozen=True)
class GroupBracket:
    """lower <= OPT^G <= dual_min <= lp_bound (module docstring). lower is NaN when the repair
    abstained or was not run (more than REPAIR_MAX_TOKENS pooled tokens); dual_lower: the
    certificate's lower bound on min D^G (dual_min is its upper value, a true D^G
    value); price: the minimising price found (sum 0)."""

    lower: float
    dual_min: float
    dual_lower: float
    lp_bound: float
    price: NDArray[np.float64]
    calls: int
    converged: bool

    def summary(self) -> dict[str, float | int | bool]:
        return {
            "group_lower": self.lower,
            "group_dual_min": self.dual_min,
            "group_dual_lower": self.dual_lower,
            "group_dual_gap": self.dual_min - self.dual_lower,
            "lp_bound": self.lp_bound,
            "group_dual_calls": self.calls,
            "group_dual_converged": self.converged,
        }


def group_bracket(
    batches: Sequence[ArrayLike] | NDArray[np.float64],
    k: int,
    n_groups: int,
    topk_groups: int,
    *,
    rtol: float = 1e-9,
    max_calls: int = 300,
) -> GroupBracket:
    """The bracket of the pooled group-limited optimum of ``batches`` (pooled capacity T L)."""
    from lfbtheory.lp import solve_balanced

    bs = [as_scores(b, name=f"batches[{i}]") for i, b in enumerate(batches)]
    pooled = np.concatenate(bs)
    e = pooled.shape[1]
    res = minimize_group_dual(bs, k, n_groups, topk_groups, rtol=rtol, max_calls=max_calls)
    lp = solve_balanced(pooled, k)
    cap = _capacity(pooled.shape[0], k, e)
    fixed = None
    if pooled.shape[0] <= REPAIR_MAX_TOKENS:
        ex, _ = best_response(pooled, k, res.price, n_groups, topk_groups)
        fixed = repair_group_limited(pooled, ex, n_groups, topk_groups, cap)
    lower = float("nan") if fixed is None else float(np.take_along_axis(pooled, fixed, 1).sum())
    lp_value = float(np.sum(pooled * np.asarray(lp.assignment, dtype=np.float64)))
    return GroupBracket(lower, res.upper, res.lower, lp_value, res.price, res.calls, res.converged)


@dataclass(frozen=True)
class GroupLedger:
    """The group-limited ledger of a trajectory routed group-limited (the router's heuristic).

    dual_value (T,): D^G_t(p_t) exact; heuristic_value (T,): H_t(p_t) = (s+p_t).X_heur - L sum
    p_t (<= dual_value); dual_regret: sum_t D^G_t(p_t) - min_p sum_t D^G_t(p) (>= -gap);
    reward: sum_t s.X_heur (the routing's primal value, capacity NOT enforced); violation:
    sum_i max(0, C_i(T) - T L); bracket: the pooled :class:`GroupBracket`.
    """

    dual_value: NDArray[np.float64]
    heuristic_value: NDArray[np.float64]
    dual_regret: float
    reward: float
    violation: float
    bracket: GroupBracket

    def summary(self) -> dict[str, float | int | bool]:
        out: dict[str, float | int | bool] = {
            "T": int(len(self.dual_value)),
            "group_dual_regret": self.dual_regret,
            "heuristic_shortfall": float(np.sum(self.dual_value - self.heuristic_value)),
            "reward": self.reward,
            "violation_tokens": self.violation,
            "primal_gap_to_lower": self.bracket.lower - self.reward,
            "primal_gap_to_dual_min": self.bracket.dual_min - self.reward,
            "primal_gap_to_lp_bound": self.bracket.lp_bound - self.reward,
        }
        out.update(self.bracket.summary())
        return out


def group_ledger(
    trajectory: object,
    batches: Sequence[ArrayLike] | NDArray[np.float64],
    k: int,
    *,
    rtol: float = 1e-9,
    max_calls: int = 300,
) -> GroupLedger:
    """The group-limited ledger of ``trajectory`` (an :class:`lfbtheory.online.Trajectory`
    routed with ``n_groups``/``topk_groups``, additive bias) on its training batches."""
    opts = getattr(trajectory, "routing", None)
    if opts is None or not opts.group_limited:
        raise ValueError("trajectory was not routed group-limited (n_groups/topk_groups)")
    if trajectory.bias_mode != "additive":  # type: ignore[attr-defined]
        raise ValueError("the group-limited ledger needs an additive bias (a price)")
    keep = ~np.asarray(trajectory.is_eval, dtype=np.bool_)  # type: ignore[attr-defined]
    bs = [as_scores(b, name=f"batches[{i}]") for i, b in enumerate(batches)]
    if len(bs) != len(keep):
        raise ValueError(f"trajectory has {len(keep)} rows but batches has {len(bs)}")
    bs = [b for b, kept in zip(bs, keep, strict=True) if kept]
    bias = trajectory.bias[keep]  # type: ignore[attr-defined]
    loads = trajectory.loads[keep]  # type: ignore[attr-defined]
    ng, mg = opts.n_groups, opts.topk_groups
    dual, heur = [], []
    for b, p in zip(bs, bias, strict=True):
        cap = _capacity(b.shape[0], k, b.shape[1])
        dual.append(group_dual(b, k, p, ng, mg)[0])
        heur.append(float(heuristic_response(b, k, p, ng, mg, opts.group_score_topk)[1].sum()
                          - cap * p.sum()))  # fmt: skip
    bracket = group_bracket(bs, k, ng, mg, rtol=rtol, max_calls=max_calls)
    cap_t = sum(_capacity(b.shape[0], k, b.shape[1]) for b in bs)
    reward = float(np.sum(trajectory.reward[keep]))  # type: ignore[attr-defined]
    violation = float(np.maximum(loads.sum(axis=0) - cap_t, 0).sum())
    d = np.array(dual)
    return GroupLedger(d, np.array(heur), float(d.sum() - bracket.dual_min), reward, violation,
                       bracket)  # fmt: skip
