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
(c) is checked EXHAUSTIVELY on all integer score matrices with entries in {0,1,2} for
(n, E, k) = (2,2,1) and in {0,1} for (4,2,1), (2,4,2), (3,3,1); (b) is proved symbolically
(the identity below) and, with (a), checked exhaustively on the instances (2,2,1) {0,1,2},
(4,2,1) and (3,3,1) {0,1} for every pair p, q of the grid {0} x {-1,0,1}^(E-1) plus the point
(0, 1/2, ..., 1/2).

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
from _certify import check, identity

from lfbtheory import dual_objective, dual_subgradient, optimal_prices, route, tie_margin

INSTANCES = ((2, 2, 1, 3), (4, 2, 1, 2), (2, 4, 2, 2), (3, 3, 1, 2))
SUBGRADIENT_INSTANCES = ((2, 2, 1, 3), (4, 2, 1, 2), (3, 3, 1, 2))


def _instances(configs=INSTANCES):
    for n, n_experts, k, values in configs:
        for flat in itertools.product(range(values), repeat=n * n_experts):
            yield n, n_experts, k, np.array(flat, dtype=np.float64).reshape(n, n_experts)


def lagrangian_affine_in_prices(n: int = 2, n_experts: int = 3, k: int = 1) -> None:
    """(b) symbolic: L(x, q) - L(x, p) = (cols(x) - L).(q - p)."""
    p = sp.symbols(f"p0:{n_experts}", real=True)
    q = sp.symbols(f"q0:{n_experts}", real=True)
    cap = sp.Rational(n * k, n_experts)
    x = sp.Matrix(n, n_experts, lambda t, i: sp.Symbol(f"x{t}{i}", real=True))
    s = sp.Matrix(n, n_experts, lambda t, i: sp.Symbol(f"s{t}{i}", real=True))

    def lagr(prices):
        return sum(
            (s[t, i] + prices[i]) * x[t, i] for t in range(n) for i in range(n_experts)
        ) - cap * sum(prices)

    g = [sum(x[t, i] for t in range(n)) - cap for i in range(n_experts)]
    identity(
        lagr(q) - lagr(p),
        sum(g[i] * (q[i] - p[i]) for i in range(n_experts)),
        "L(x,q) - L(x,p) = (load - L).(q - p)",
    )


def best_response_and_subgradient() -> int:
    """(a) route attains D(p); (b) D(q) >= D(p) + g(p).(q - p) for every p, q on a grid."""
    pairs = 0
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
            check(lag == dvals[j], "L(x(p), p) == D(p): route is a best response")
            check(np.array_equal(r.loads - cap, subg[j]), "dual_subgradient == load(route) - L")
        gp = np.stack(grid)
        # lhs[a, b] = D(q_b) - D(p_a) - g(p_a).(q_b - p_a), exact on this dyadic grid
        lhs = dvals[None, :] - dvals[:, None] - (subg @ gp.T - np.sum(subg * gp, axis=1)[:, None])
        check(np.all(lhs >= 0), f"subgradient inequality on s={s.tolist()}")
        pairs += lhs.size
    return pairs


def complementary_slackness() -> int:
    """(c) exhaustively: x*_t is a top-k set of s_t + p*; route(p*) loads within the tie bounds."""
    checked = 0
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
        check(p is not None, "optimal assignment has prices")
        p = np.round(p - p.min())  # integral shortest-path prices (exact; see Lemma 1)
        r = s + p
        worst_on = np.where(best == 1, r, np.inf).min(axis=1)
        best_off = np.where(best == 1, -np.inf, r).max(axis=1, initial=-np.inf)
        check(np.all(worst_on >= best_off), "every x*_t is a top-k set of s_t + p*")
        check(
            dual_objective(s, k=k, bias=p) == float(np.sum(s * best)), "p* minimises D (D(p*) == P)"
        )
        routed = route(s, k, p, normalize=False)
        tied = tie_margin(s, k, p) == 0
        untied_same = all(
            set(routed.experts[t]) == set(np.flatnonzero(best[t])) for t in range(n) if not tied[t]
        )
        check(untied_same, "untied tokens are routed to their x* experts")
        dev = np.abs(routed.loads - cap)
        check(dev.max() <= tied.sum(), "max |load - L| <= #tied")
        check(dev.sum() <= 2 * k * tied.sum(), "sum |load - L| <= 2k #tied")
        checked += 1
    return checked


def main() -> None:
    lagrangian_affine_in_prices()
    lagrangian_affine_in_prices(2, 2, 1)
    pairs = best_response_and_subgradient()
    inst = complementary_slackness()
    print(f"subgradient inequality on {pairs} (p, q) pairs; slackness on {inst} instances")


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
