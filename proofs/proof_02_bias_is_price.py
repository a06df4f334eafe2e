"""Lemma 2: top-k routing with bias p is the Lagrangian best response; load(p) - L is a subgradient.

Claim. With D(p) = sum_t topKsum(s_t + p) - L sum p (Lemma 1):
(a) best response: the routing x(p) of lfbtheory.route(s, k, bias=p) maximises the Lagrangian
    L(x, p) = sum_t (s_t + p).x_t - L sum p over {rows = k, 0 <= x <= 1}, and L(x(p), p) = D(p);
(b) subgradient: for all p, q,  D(q) >= D(p) + (load(p) - L).(q - p);
(c) complementary slackness: if x* is an optimal balanced assignment and p* a minimiser of D,
    every token's experts under x* form a top-k set of s_t + p*; hence top-k routing with bias
    p* gives every token with a unique top-k set (tie margin > 0) its x* experts, and
    max_i |load_i(p*) - L| <= #tied tokens,  sum_i |load_i(p*) - L| <= 2 k #tied tokens
    (so loads are exactly L when no token is tied).
(b) is a chain for every n, E, k from (a) and the maximum property of D (Lemma 1 (a)); (a) and
(b) are also checked exhaustively on the package on the instances (2,2,1) {0,1,2}, (4,2,1) and
(3,3,1) {0,1} for every pair p, q of the grid {0} x {-1,0,1}^(E-1) plus the point
(0, 1/2, ..., 1/2); (c) is checked EXHAUSTIVELY on all integer score matrices with entries in
{0,1,2} for (n, E, k) = (2,2,1) and in {0,1} for (4,2,1), (2,4,2), (3,3,1).

Hypotheses (named in the chain). maximum: L(x, q) <= D(q) for every x in the box with rows k
(D(q) is the maximum of the Lagrangian, Lemma 1 (a)); best-response: L(x(p), p) = D(p) (a)
(checked on the package in this file).

Assumptions. Real scores, integer L = nk/E; ties in route go to the lower index (any tie rule
gives a best response).
Source. Lagrangian relaxation and subgradients of dual functions (Bertsekas, Nonlinear
Programming, Sec. 6.1); the bias as dual price (arXiv 2408.15664 Sec. 3; docs/design.md Sec. 2).

Proof. (a) L(x, p) separates over tokens and each token's term is maximised by any top-k set
(Lemma 1(a)); route picks one. (b) Let x = x(p). The Lagrangian is affine in the prices:
L(x, q) - L(x, p) = sum_i (q_i - p_i)(sum_t x_ti - L) = (load(p) - L).(q - p), and D(q) >= L(x, q)
because D(q) is the maximum over x. So D(q) - D(p) - g.(q - p) = D(q) - L(x, q) >= 0.
(c) By strong duality s.x* = D(p*), and (Lemma 1(b)) D(p*) - s.x* is a sum of per-token
non-negative gaps topKsum(s_t + p*) - (s_t + p*).x*_t; a zero sum of non-negative terms has
every term zero, so each x*_t is a top-k set. A token with a unique top-k set is routed to
x*_t; a tied token's routed set differs from x*_t in at most k experts, moving at most k units
of load away and k to other experts (each expert gains or loses at most one unit per token).
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from _certify import Lemma, checked, cited

from lfbtheory import dual_objective, dual_subgradient, optimal_prices, route, tie_margin

INSTANCES = ((2, 2, 1, 3), (4, 2, 1, 2), (2, 4, 2, 2), (3, 3, 1, 2))
SUBGRADIENT_INSTANCES = ((2, 2, 1, 3), (4, 2, 1, 2), (3, 3, 1, 2))
D_P, D_Q, GD = sp.symbols("D_p D_q gdot", real=True)  # D(p), D(q), (load(p) - L).(q - p)


def _instances(configs=INSTANCES):
    for n, n_experts, k, values in configs:
        for flat in itertools.product(range(values), repeat=n * n_experts):
            yield n, n_experts, k, np.array(flat, dtype=np.float64).reshape(n, n_experts)


def subgradient_chain(lem: Lemma, best_response) -> None:
    """(b) for every n, E, k: the Lagrangian is affine in the prices (summed over experts),
    D(q) >= L(x(p), q) and L(x(p), p) = D(p)."""
    e_, n_, k_ = sp.symbols("E n k", positive=True)
    lem.assume(e_, n_, k_, meaning="experts, tokens, experts per token")
    cap = n_ * k_ / e_
    q = lem.coordinate("q", "q_i, a price", indexed=False)
    p = lem.coordinate("p", "p_i, a price", indexed=False)
    col = lem.coordinate(
        "col", "col_i = sum_t x_ti, the load of expert i under x(p)", indexed=False
    )
    sx, lq, lp, lag_q, lag_p = sp.symbols("SX LQ LP Lag_q Lag_p", real=True)
    lem.sum_of(lq, q * (col - cap))
    lem.sum_of(lp, p * (col - cap))
    lem.sum_of(GD, (col - cap) * (q - p))
    lem.define("Lagrangian at q", lag_q, sx + lq)
    lem.define("Lagrangian at p", lag_p, sx + lp)
    lem.identity("affine, one expert", q * (col - cap) - p * (col - cap), (col - cap) * (q - p))
    lem.summed(
        "affine",
        "affine, one expert",
        {q * (col - cap): lq, p * (col - cap): lp, (col - cap) * (q - p): GD},
        e_,
    )
    lem.hypothesis("maximum", lag_q, "<=", D_Q, status=cited("Lemma 1 (a)"))
    lem.hypothesis("best-response", lag_p, "==", D_P, status=checked(best_response))
    fact = lem.certify(
        "(b)",
        D_P + GD,
        "<=",
        D_Q,
        using=[(1, "maximum"), (-1, "best-response"), (-1, "affine")],
        subs=["Lagrangian at q", "Lagrangian at p"],
    )
    lem.theorem("(b)", fact, D_P + GD, "<=", D_Q)


def best_response_and_subgradient(lem: Lemma):
    """(a) route attains D(p); (b) D(q) >= D(p) + g(p).(q - p) for every p, q on a grid."""
    pairs, ok_a, ok_b = 0, True, True
    for n, n_experts, k, s in _instances(SUBGRADIENT_INSTANCES):
        cap = n * k // n_experts
        # p_0 = 0 on the grid (D and load are invariant under p + c 1, Lemma 3), the others in
        # {-1, 0, 1} and one half-integer point per instance.
        grid = [
            np.array((0.0,) + v) for v in itertools.product((-1.0, 0.0, 1.0), repeat=n_experts - 1)
        ]
        grid.append(np.array([0.0] + [0.5] * (n_experts - 1)))
        dvals = np.array([dual_objective(s, k=k, bias=p) for p in grid])
        subg = np.array([dual_subgradient(s, k=k, bias=p) for p in grid])
        for j, p in enumerate(grid):
            r = route(s, k, p, normalize=False)
            lag = float(np.take_along_axis(s + p, r.experts, axis=1).sum() - cap * p.sum())
            ok_a &= lag == dvals[j]  # L(x(p), p) == D(p): route is a best response
            ok_a &= np.array_equal(r.loads - cap, subg[j])  # dual_subgradient == load - L
        gp = np.stack(grid)
        # lhs[a, b] = D(q_b) - D(p_a) - g(p_a).(q_b - p_a), exact on this dyadic grid
        lhs = dvals[None, :] - dvals[:, None] - (subg @ gp.T - np.sum(subg * gp, axis=1)[:, None])
        ok_b &= bool(np.all(lhs >= 0))
        pairs += lhs.size
    a = lem.checked(
        "(a) on the package",
        "route(s, k, p) attains D(p) and dual_subgradient = load - L, exhaustively on small "
        "integer instances and a price grid",
        ok_a,
    )
    lem.theorem_checked("(a)", a)
    b = lem.checked(
        "(b) on the package", f"D(q) >= D(p) + g(p).(q - p) on {pairs} grid pairs (p, q)", ok_b
    )
    lem.theorem_checked("(b) on the package", b)
    return a


def complementary_slackness(lem: Lemma) -> None:
    """(c) exhaustively: x*_t is a top-k set of s_t + p*; route(p*) loads within the tie bounds."""
    count, ok = 0, True
    for n, n_experts, k, s in _instances():
        cap = n * k // n_experts
        opts = []
        for choice in itertools.product(itertools.combinations(range(n_experts), k), repeat=n):
            x = np.zeros((n, n_experts), dtype=np.int64)
            for t, c in enumerate(choice):
                x[t, list(c)] = 1
            if np.all(x.sum(axis=0) == cap):
                opts.append(x)
        best = max(opts, key=lambda x: float(np.sum(s * x)))
        p = optimal_prices(s, k, best)
        ok &= bool(p is not None)
        p = np.round(p - p.min())  # integral shortest-path prices (exact; see Lemma 1)
        r = s + p
        worst_on = np.where(best == 1, r, np.inf).min(axis=1)
        best_off = np.where(best == 1, -np.inf, r).max(axis=1, initial=-np.inf)
        ok &= bool(np.all(worst_on >= best_off))
        ok &= dual_objective(s, k=k, bias=p) == float(np.sum(s * best))  # D(p*) == P
        routed = route(s, k, p, normalize=False)
        tied = tie_margin(s, k, p) == 0
        untied_same = all(
            set(routed.experts[t]) == set(np.flatnonzero(best[t])) for t in range(n) if not tied[t]
        )
        ok &= bool(untied_same)
        dev = np.abs(routed.loads - cap)
        ok &= bool(dev.max() <= tied.sum())
        ok &= bool(dev.sum() <= 2 * k * tied.sum())
        count += 1
    f = lem.checked(
        "(c)",
        f"on all {count} small integer instances: every x*_t is a top-k set of s_t + p*, "
        "D(p*) = P, untied tokens are routed to x*, max |load - L| <= #tied, "
        "sum |load - L| <= 2k #tied",
        ok,
    )
    lem.theorem_checked("(c)", f)


def derive() -> Lemma:
    """(a) on the package (the hypothesis of the chain) and the chain of (b)."""
    lem = Lemma(__doc__)
    a = best_response_and_subgradient(lem)
    subgradient_chain(lem, a)
    return lem


def main() -> Lemma:
    lem = derive()
    complementary_slackness(lem)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
