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
(a), (b) are chains for every n, E, k and every t (induction on t with a case split on
d_t <= w); step (ii), the top-k monotonicity, is checked exhaustively for E <= 5 (the general
argument is below), and so is the monotonicity of the sign step; the point count of (d) is
checked exactly against every offset on a grid (and the on-lattice formula is shown to
undercount off the lattice); (c), (d) are checked on the package.

Hypotheses (named in the chains). range: every score lies in [a, b] (s_i = a + x, s_j = b - y
with x, y >= 0); start: d_1 <= B0; step-size: u_t <= u; update-prop: d_{t+1} - d_t =
u_t (c_j - c_i)/L (the
proportional rule with step u_t; c = loads at t); update-sign: d_{t+1} - d_t =
u_t (sigma_i - sigma_j) with
sigma = sign(L - c); cap: 0 <= c_i and c_j <= n; sign-range: sigma_i <= 1 and -1 <= sigma_j;
prefers: if d_t > w then c_j <= c_i (every token strictly prefers i, (i), and then top-k
monotonicity (ii)); sign-monotone: if c_j <= c_i then sigma_i <= sigma_j; kL: L = nk/E.

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
from _certify import Lemma, assumed, check, checked

from lfbtheory import route, topk_indices
from lfbtheory.online import updates as U

a_, b_, u_ = sp.symbols("a b u", real=True)


def bias_spread_bound(rule: str) -> sp.Expr:
    """(a)/(b): w + kappa u with kappa = 2 (sign) or E/k (proportional)."""
    e_, k_ = sp.symbols("E k", positive=True)
    kappa = 2 if rule == "sign" else e_ / k_
    return (b_ - a_) + kappa * u_


def kappa(rule: str) -> sp.Expr:
    """The per-step growth factor of a difference, read off the claimed bound: d/du of it."""
    return sp.diff(bias_spread_bound(rule), u_)


def preference(lem: Lemma) -> None:
    """(i) d > w => every token strictly prefers i to j."""
    x, y = sp.symbols("x y", nonnegative=True)
    lem.assume(x, y, meaning="scores in [a, b]: s_i = a + x, s_j = b - y")
    bi, bj = sp.symbols("b_i b_j", real=True)
    w = b_ - a_
    case = lem.case_hypothesis("(i) d > w", w, "<", bi - bj)
    s_i, s_j = a_ + x, b_ - y
    f = lem.certify("(i)", 0, "<", (s_i + bi) - (s_j + bj), using=[(1, case)], terms=[x, y])
    del f


def spread_chain(lem: Lemma, rule: str, ok_topk, ok_sign) -> None:
    """(a) or (b): d_t <= Max(B0, w + kappa u) for every t, by induction with two cases."""
    tag = "(a)" if rule == "sign" else "(b)"
    t = lem.index(f"t_{rule}", "a step")
    d = lem.sequence(f"d_{rule}", "d(t) = b_i(t) - b_j(t) for a fixed pair i, j")
    ci = lem.sequence(f"ci_{rule}", "c_i(t), the load of expert i", "nonneg")
    cj = lem.sequence(f"cj_{rule}", "c_j(t), the load of expert j", "nonneg")
    e_, k_ = sp.symbols("E k", positive=True)
    n_, cap = sp.symbols("n L", positive=True)
    b0 = sp.Symbol("B0", real=True)
    uu = sp.Symbol("u", positive=True)
    lem.assume(e_, k_, n_, cap, uu, meaning="E, k, n, L = nk/E, the step u > 0")
    w = b_ - a_
    bound = bias_spread_bound(rule).subs(u_, uu)
    m = sp.Max(b0, bound)
    lem.max_bounds(f"{tag} max", b0, bound)
    lem.hypothesis(f"start [{rule}]", d(1), "<=", b0, status=assumed("the start spread B0"))
    ut = lem.sequence(f"u_{rule}", "the step u_t > 0", "pos")
    lem.hypothesis(f"step-size [{rule}]", ut(t), "<=", uu, status=assumed("every step u_t <= u"))
    # one step grows d by at most kappa u
    if rule == "proportional":
        lem.hypothesis(
            "update-prop",
            d(t + 1) - d(t),
            "==",
            ut(t) * (cj(t) - ci(t)) / cap,
            status=assumed("the proportional rule b += u (L - c)/L"),
        )
        lem.hypothesis(
            "cap", cj(t), "<=", n_, status=assumed("an expert takes each token at most once")
        )
        lem.hypothesis("kL", cap, "==", n_ * k_ / e_, status=assumed("L = nk/E"))
        grow = lem.certify(
            f"{tag} one step grows d by at most u n/L",
            d(t + 1) - d(t),
            "<=",
            uu * n_ / cap,
            using=[(1, "update-prop"), (ut(t) / cap, "cap"), (n_ / cap, f"step-size [{rule}]")],
            terms=[ut(t) * ci(t) / cap],
        )
        grow = lem.certify(
            f"{tag} one step",
            d(t + 1),
            "<=",
            d(t) + e_ / k_ * uu,
            using=[(1, grow)],
            subs=["kL"],
        )
    else:
        sig_i = lem.sequence("sigma_i", "sign(L - c_i(t))")
        sig_j = lem.sequence("sigma_j", "sign(L - c_j(t))")
        lem.hypothesis(
            "update-sign",
            d(t + 1) - d(t),
            "==",
            ut(t) * (sig_i(t) - sig_j(t)),
            status=assumed("the sign rule b += u sign(L - c)"),
        )
        lem.hypothesis("sign-range [i]", sig_i(t), "<=", 1, status=assumed("a sign"))
        lem.hypothesis("sign-range [j]", -1, "<=", sig_j(t), status=assumed("a sign"))
        grow = lem.certify(
            f"{tag} one step",
            d(t + 1),
            "<=",
            d(t) + 2 * uu,
            using=[
                (1, "update-sign"),
                (ut(t), "sign-range [i]"),
                (ut(t), "sign-range [j]"),
                (2, f"step-size [{rule}]"),
            ],
        )
    lem.implication(
        f"prefers [{rule}]",
        (w, "<", d(t)),
        (cj(t), "<=", ci(t)),
        status=checked(ok_topk),
    )
    # induction on t with the cases d_t <= w and w < d_t
    ih = lem.induction_hypothesis(f"{tag} spread", d(t), "<=", m, t)
    ca = lem.case_hypothesis(f"{tag} d_t <= w", d(t), "<=", w)
    cb = lem.case_hypothesis(f"{tag} d_t > w", w, "<", d(t))
    kap = kappa(rule).subs(u_, uu)
    in_a = lem.certify(
        f"{tag} case d_t <= w",
        d(t + 1),
        "<=",
        m,
        using=[(1, grow), (1, ca), (1, f"{tag} max [1]")],
    )
    shrink = lem.modus_ponens(f"{tag} the pair is ordered", f"prefers [{rule}]", cb)
    if rule == "proportional":
        no_up = lem.certify(
            f"{tag} no increase",
            d(t + 1),
            "<=",
            d(t),
            using=[(1, "update-prop"), (ut(t) / cap, shrink)],
        )
    else:
        lem.implication(
            "sign-monotone",
            (cj(t), "<=", ci(t)),
            (sig_i(t), "<=", sig_j(t)),
            status=checked(ok_sign),
        )
        order = lem.modus_ponens(f"{tag} signs ordered", "sign-monotone", shrink)
        no_up = lem.certify(
            f"{tag} no increase", d(t + 1), "<=", d(t), using=[(1, "update-sign"), (ut(t), order)]
        )
    in_b = lem.certify(f"{tag} case d_t > w", d(t + 1), "<=", m, using=[(1, no_up), (1, ih)])
    step = lem.cases(f"{tag} step", ca, cb, in_a, in_b)
    base = lem.certify(
        f"{tag} base", d(1), "<=", m, using=[(1, f"start [{rule}]"), (1, f"{tag} max [0]")]
    )
    fact = lem.induction(f"{tag}", ih, base, step)
    lem.theorem(tag, fact, d(t), "<=", sp.Max(b0, bound), rule, bound=bias_spread_bound)
    del kap


def sign_rule_cases(lem: Lemma, n_max: int = 6):
    """(iii) + (iv) for sign, exhaustively: c_i >= c_j => Delta_i <= Delta_j; |.| <= 2u."""
    kap = float(kappa("sign"))
    for n in range(1, n_max + 1):
        for cap in range(0, n + 1):
            for ci, cj in itertools.product(range(n + 1), repeat=2):
                di, dj = np.sign(cap - ci), np.sign(cap - cj)
                if ci >= cj:
                    check(di <= dj, "(iii) sign: c_i >= c_j => Delta_i <= Delta_j")
                check(abs(di - dj) <= kap, "(iv) sign step of a difference <= kappa_sign u")
    return lem.checked(
        "sign steps",
        f"sign(L - c) is non-increasing in c and |sign(L - c_i) - sign(L - c_j)| <= 2, on every "
        f"integer load pair with n <= {n_max}",
        True,
    )


def topk_monotone(lem: Lemma, max_e: int = 5):
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
    return lem.checked(
        "(ii) top-k monotone",
        f"on lfbtheory.topk_indices, every row with r_i > r_j and j in the top-k set has i in it, "
        f"for every order of E <= {max_e} distinct entries and every k",
        True,
    )


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


def derive() -> Lemma:
    lem = Lemma(__doc__)
    preference(lem)
    ok_sign = sign_rule_cases(lem)
    ok_topk = topk_monotone(lem)
    for rule in ("sign", "proportional"):
        spread_chain(lem, rule, ok_topk, ok_sign)
    return lem


def main() -> Lemma:
    lem = derive()
    tight_instance()  # each raises ProofError at the first failing check
    f = lem.checked(
        "(c)", "the sign rule from b = 0 reaches w + 2u exactly (n = E = 2, u = 1/4)", True
    )
    lem.theorem_checked("(c)", f)
    count_is_exact()
    periodic_fixed_batch(np.random.default_rng(7))
    f = lem.checked(
        "(d)",
        "the state count (floor(2B/u) + 1)^(E-1) is exact for every offset on a grid (the "
        "on-lattice count undercounts off it); on 8 fixed batches the differences stay on their "
        "coset, repeat within N states, and b drifts by a common multiple of u per period",
        True,
    )
    lem.theorem_checked("(d)", f)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
