"""Lemma 7: bias spread <= (b-a) + 2u (sign, tight), (b-a) + uE/k (proportional); lattice: periodic.

Claim. Let every batch's scores lie in [a, b], w = b - a, k < E, start from a bias whose spread
max_i b_i - min_j b_j is at most B0, and update with step u_t <= u after routing each batch by
top-k of s + b (any n, any sequence of batches). Then for all t and all experts i, j:
(a) sign rule:          b_i - b_j <= max(B0, w + 2u);
(b) proportional rule:  b_i - b_j <= max(B0, w + u E/k)   (its pairwise step is at most u n/L);
(c) (a) is tight: from b = 0 the sign rule reaches b_1 - b_0 = w + 2u exactly (n = E = 2, k = 1,
    scores (1, 0), (1, 0), u = 1/4; checked on the package);
(d) on a FIXED batch with constant u, the sign rule's differences d_t = b_t - b_t[0] 1 live on
    the coset (b_0 - b_0[0] 1) + u Z^E within the bound of (a): each coordinate in [-Bmax, Bmax]
    on a coset x + u Z, which holds at most floor(2 Bmax/u) + 1 points (with equality for some
    offset x), so there are at most N = (floor(2 Bmax/u) + 1)^(E-1) states (any start, on or off
    the u-lattice; (2 floor(Bmax/u) + 1)^(E-1) is only right for starts on it), the routing is
    eventually periodic with pre-period + period <= N, and b_{t+P} = b_t + delta 1 (a common
    drift, delta in u Z); likewise for the proportional rule on the lattice (u/L) Z^E.
So the commonly quoted bound (b - a) + 2u is correct for the sign rule (from a start of
spread <= it) and attained; the proportional rule needs (b - a) + u E/k instead.
(a), (b) are proved for every n, E, k, T (certificates; the top-k monotonicity of step (ii) is
also checked exhaustively for E <= 5); the point count of (d) is checked exactly against
every offset on a grid (and the on-lattice formula is shown to undercount off the lattice);
(c), (d) are checked on the package.

Hypotheses (named equalities of the certificates). gap: d = b_i - b_j = w + z with z > 0;
cap: w_j = n - c_j >= 0; below: d_t = w - sigma (the case d_t <= w); within: Bmax = d_t + r
(the induction hypothesis d_t <= Bmax).

Assumptions. Additive bias; k < E (else every load is n = L and nothing moves); the rules of
lfbtheory.online.updates with c_bar = L (sum of loads = nk).
Source. arXiv 2408.15664 Sec. 3 (the sign rule); the bound and its proof are derived here.

Proof. Fix i, j and d = b_i - b_j. (i) If d > w, every token strictly prefers i to j:
(s_i + b_i) - (s_j + b_j) = (s_i - a) + (b - s_j) + (d - w) > 0. (ii) Then every top-k set that
contains j contains i, so c_i >= c_j. (iii) Both rules give expert l the step u phi(c_l) with
phi non-increasing, so Delta_i <= Delta_j and d does not increase. (iv) In one step d grows by
at most u (phi(0) - phi(n)) = 2u (sign) or u n/L = u E/k (proportional). (v) Induction on t: if
d_t <= w then d_{t+1} <= w + kappa u; if d_t > w then d_{t+1} <= d_t. (d) Routing depends only
on differences (Lemma 3(d)) and the update only on loads, so the differences evolve by a fixed
map on a finite set: by pigeonhole some state repeats, after which everything repeats.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import sympy as sp
from _certify import Lemma, check, identity

from lfbtheory import route, topk_indices
from lfbtheory.online import updates as U

a_, b_, u_ = sp.symbols("a b u", real=True)
LEM = Lemma(__doc__)


def bias_spread_bound(rule: str) -> sp.Expr:
    """(a)/(b): w + kappa u with kappa = 2 (sign) or E/k (proportional)."""
    e_, k_ = sp.symbols("E k", positive=True)
    kappa = 2 if rule == "sign" else e_ / k_
    return (b_ - a_) + kappa * u_


def kappa(rule: str) -> sp.Expr:
    """The per-step growth factor of a difference, read off the claimed bound: d/du of it."""
    return sp.diff(bias_spread_bound(rule), u_)


def steps_symbolic() -> None:
    a, b = sp.symbols("a b", real=True)
    u = sp.Symbol("u", positive=True)
    # (i) d > w => strict preference; s_i = a + x, s_j = b - y with x, y >= 0, d = w + z, z > 0
    x, y = sp.symbols("x y", nonnegative=True)
    z = sp.Symbol("z", positive=True)
    bi, bj = sp.symbols("b_i b_j", real=True)
    LEM.assume(u, meaning="step u > 0")
    LEM.assume(x, y, meaning="scores in [a, b]: s_i = a + x, s_j = b - y")
    LEM.assume(z, meaning="the case d > w: z = d - w > 0")
    s_i, s_j = a + x, b - y
    LEM.certify_pos(
        (s_i + bi) - (s_j + bj),
        [x, y, z],
        "(i) d > w => s_i + b_i > s_j + b_j",
        equalities=[(1, LEM.hypothesis("gap", (bi - bj) - (b - a) - z))],
    )
    # (iii) proportional: c_i = c_j + e (e >= 0) => Delta_j - Delta_i = u e / L >= 0
    cap = sp.Symbol("L", positive=True)
    cj = sp.Symbol("c_j", nonnegative=True)
    e = sp.Symbol("e", nonnegative=True)
    LEM.assume(cap, cj, e, meaning="L > 0, a load, e = c_i - c_j >= 0")
    ci = cj + e
    LEM.certify_nonneg(
        u * (cap - cj) / cap - u * (cap - ci) / cap,
        [u * e / cap],
        "(iii) proportional: c_i >= c_j => Delta_i <= Delta_j",
    )
    # (iv) proportional: Delta_i - Delta_j = u (c_j - c_i)/L <= u n / L = u E / k  (0 <= c <= n)
    n, k, big_e = sp.symbols("n k E", positive=True)
    ci2, cj2, wj = sp.symbols("c_i c_j w_j", nonnegative=True)  # w_j = n - c_j
    LEM.assume(n, k, big_e, ci2, cj2, wj, meaning="n, k, E; loads; w_j = n - c_j >= 0")
    incr = u * (cj2 - ci2) / cap
    LEM.certify_nonneg(
        u * n / cap - incr,
        [u * ci2 / cap, u * wj / cap],
        "(iv) proportional step <= u n/L",
        equalities=[(-u / cap, LEM.hypothesis("cap", cj2 + wj - n))],
    )
    identity(
        u * n / (n * k / big_e),
        kappa("proportional").subs(
            {sp.Symbol("E", positive=True): big_e, sp.Symbol("k", positive=True): k}
        )
        * u,
        "(iv) u n/L == kappa_proportional u",
    )
    # (v) induction for kappa in {2, E/k}: d_t <= w => d_{t+1} <= d_t + kappa u <= w + kappa u
    for kap in (kappa("sign"), kappa("proportional")):
        d_t, slack, grow = (
            sp.Symbol("d_t", real=True),
            sp.Symbol("sigma", nonnegative=True),
            sp.Symbol("g", nonnegative=True),
        )
        LEM.assume(slack, grow, meaning="w - d_t >= 0 (the case); the shortfall of the growth")
        d_next = d_t + kap * u - grow  # at most kappa u more
        LEM.certify_nonneg(
            (b - a) + kap * u - d_next,
            [slack, grow],
            f"(v) case d_t <= w, kappa = {kap}",
            equalities=[(1, LEM.hypothesis(f"below [kappa={kap}]", (b - a) - d_t - slack))],
        )
        bound, drop, under = (
            sp.Symbol("Bmax", real=True),
            sp.Symbol("h", nonnegative=True),
            sp.Symbol("r", nonnegative=True),
        )
        LEM.assume(drop, under, meaning="the decrease h >= 0 of d; r = Bmax - d_t >= 0")
        LEM.certify_nonneg(
            bound - (d_t - drop),
            [under, drop],
            f"(v) case d_t > w: no increase, kappa = {kap}",
            equalities=[(1, LEM.hypothesis(f"within [kappa={kap}]", bound - d_t - under))],
        )


def sign_rule_cases(n_max: int = 6) -> None:
    """(iii) + (iv) for sign, exhaustively: c_i >= c_j => Delta_i <= Delta_j; |.| <= 2u."""
    kap = float(kappa("sign"))
    for n in range(1, n_max + 1):
        for cap in range(0, n + 1):
            for ci, cj in itertools.product(range(n + 1), repeat=2):
                di, dj = np.sign(cap - ci), np.sign(cap - cj)
                if ci >= cj:
                    check(di <= dj, "(iii) sign: c_i >= c_j => Delta_i <= Delta_j")
                check(abs(di - dj) <= kap, "(iv) sign step of a difference <= kappa_sign u")


def topk_monotone(max_e: int = 5) -> None:
    """(ii) exhaustively: r_i > r_j => (j in topk => i in topk), on the package's topk_indices."""
    for n_experts in range(2, max_e + 1):
        perms = np.array(list(itertools.permutations(range(n_experts))), dtype=np.float64)
        for k in range(1, n_experts):
            top = topk_indices(perms, k)
            member = np.zeros_like(perms, dtype=bool)
            np.put_along_axis(member, top, True, axis=1)
            for i, j in itertools.permutations(range(n_experts), 2):
                pref = perms[:, i] > perms[:, j]
                check(np.all(~pref | ~member[:, j] | member[:, i]), f"(ii) E={n_experts} k={k}")


def tight_instance() -> None:
    """(c) the sign rule from 0 reaches w + 2u exactly and never exceeds it."""
    s = np.array([[1.0, 0.0], [1.0, 0.0]])
    u, w = 0.25, 1.0
    claimed = float(bias_spread_bound("sign").subs({a_: 0, b_: w, u_: u}))
    rule = U.sign(u)
    st = rule.init(2, None)
    seen = []
    for _ in range(40):
        st = rule.update(route(s, 1, st.bias, normalize=False).loads, st)
        seen.append(st.bias[1] - st.bias[0])
    check(max(seen) == claimed == w + 2 * u, "(c) max_t (b_1 - b_0) == the claimed bound == w + 2u")
    check(set(seen[3:]) == {1.0, 1.5}, "(c) then periodic between w and w + 2u")


def state_count(bmax: float, u: float, n_experts: int) -> int:
    """(d): N = (floor(2 Bmax/u) + 1)^(E-1), the number of difference states (any start)."""
    return (math.floor(2 * Fraction(bmax) / Fraction(u)) + 1) ** (n_experts - 1)


def coset_points(offset: Fraction, bmax: Fraction, u: Fraction) -> int:
    """#{z in Z : |offset + u z| <= Bmax}, exactly (rational arithmetic)."""
    lo = math.ceil((-bmax - offset) / u)
    hi = math.floor((bmax - offset) / u)
    return max(0, hi - lo + 1)


def count_is_exact() -> None:
    """(d) the per-coordinate count floor(2B/u) + 1 is an upper bound for every offset and is
    attained; the on-lattice count 2 floor(B/u) + 1 undercounts off the lattice."""
    u = Fraction(1)
    undercounts = 0
    for num in range(1, 41):
        bmax = Fraction(num, 8)  # B/u in {1/8, ..., 5}
        per_coord = state_count(float(bmax), float(u), 2)
        counts = [coset_points(Fraction(j, 24), bmax, u) for j in range(24)]
        check(max(counts) <= per_coord, f"(d) count <= floor(2B/u) + 1 at B/u = {bmax}")
        check(max(counts) == per_coord, f"(d) floor(2B/u) + 1 attained at B/u = {bmax}")
        check(
            coset_points(Fraction(0), bmax, u) == 2 * math.floor(bmax / u) + 1,
            "(d) on the lattice the count is 2 floor(B/u) + 1",
        )
        undercounts += max(counts) > 2 * math.floor(bmax / u) + 1
    check(undercounts > 0, "(d) off the lattice 2 floor(B/u) + 1 is too small")


def periodic_fixed_batch(rng: np.random.Generator, trials: int = 8) -> None:
    """(d) detect the period of the differences on fixed batches, from starts on and off the
    u-lattice; every visited state lies in the box of (a) on its coset, and pre + P <= N."""
    for trial in range(trials):
        n_experts = 3 + trial % 2
        k = 1 + trial % 2
        n = 4 * n_experts
        s = rng.integers(0, 16, size=(n, n_experts)) / 16.0  # in [0, 1]
        u = 1.0 / 16.0
        bmax = float(bias_spread_bound("sign").subs({a_: 0, b_: 1, u_: u}))
        n_states = state_count(bmax, u, n_experts)
        # half the starts off the lattice: offsets that are odd multiples of u/8 (exact in float)
        b0 = np.zeros(n_experts) if trial % 2 == 0 else rng.integers(0, 8, n_experts) * u / 8
        d0 = b0 - b0[0]
        rule = U.sign(u)
        st = rule.init(n_experts, b0)
        first_seen: dict[tuple[int, ...], int] = {}
        t = 0
        while True:
            d = st.bias - st.bias[0]
            z = (d - d0) / u
            check(np.array_equal(z, np.rint(z)), "(d) differences stay on the coset d_0 + u Z^E")
            check(np.ptp(st.bias) <= max(bmax, np.ptp(b0)), "(a) spread <= max(B0, w + 2u)")
            key = tuple(np.rint(z).astype(int).tolist())
            if key in first_seen:
                break
            first_seen[key] = t
            st = rule.update(route(s, k, st.bias, normalize=False).loads, st)
            t += 1
        pre, period = first_seen[key], t - first_seen[key]
        check(len(first_seen) <= n_states, "(d) distinct states <= N")
        check(pre + period <= n_states, "(d) pre-period + period <= N")
        # one more period reproduces the loads and shifts b by a common multiple of u
        b_start = st.bias.copy()
        loads_start = route(s, k, st.bias, normalize=False).loads
        for _ in range(period):
            st = rule.update(route(s, k, st.bias, normalize=False).loads, st)
        drift = st.bias - b_start
        check(
            np.all(drift == drift[0]) and (drift[0] / u) == np.rint(drift[0] / u),
            "(d) b_{t+P} = b_t + delta 1 with delta in u Z",
        )
        check(
            np.array_equal(route(s, k, st.bias, normalize=False).loads, loads_start),
            "(d) loads repeat",
        )


def main() -> None:
    steps_symbolic()
    sign_rule_cases()
    topk_monotone()
    tight_instance()
    count_is_exact()
    periodic_fixed_batch(np.random.default_rng(7))


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
