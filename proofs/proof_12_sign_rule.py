"""Lemma 12: the sign rule balances sign counts (E = 2: the median), not loads; linear dual regret.

Claim. The sign rule b_i += u sign(L - c_i) (arXiv 2408.15664 eq. 3; DeepSeek-V3) with
constant u, from b_1 = 0, on any stream with scores in [a, b], w = b - a. Let U_i(T), O_i(T)
be the numbers of batches t <= T with c_{t,i} < L (under) and c_{t,i} > L (over).
(a) sign count: b_{T+1,i} - b_{1,i} = u (U_i(T) - O_i(T)) exactly;
(b) sign balance up to a common offset: for all i, j and every E,
        |(U_i - O_i) - (U_j - O_j)| <= w/u + 2   (Lemma 7(a)),
    so every expert's net count N_i = U_i - O_i is within (1 - 1/E)(w/u + 2) of the common
    offset Nbar = (1/E) sum_j N_j = (mean b_{T+1} - mean b_1)/u, the drift of the mean bias.
    For E = 2, Nbar = 0 (c_0 + c_1 = 2L: one expert is under exactly when the other is over),
    so |U_i - O_i| <= (w/u + 2)/2: each expert is over capacity in half of the unbalanced
    batches, the per-batch MEDIAN load is balanced. For E > 2 the offset need not vanish and
    the median need not be balanced: on a stream with E = 4 (n = 8, k = 1; each batch sends 5
    tokens to one expert and 1 to each other, in turn) every expert is over capacity in 1/4 of
    the batches and under in 3/4, N_i = T/2, its median load is 1 < L = 2, its mean load is L;
    so "the sign rule balances the median" is a statement for E = 2 only;
(c) where that puts L: if |O_i - U_i| <= Delta, L lies between the order statistics
    X_(j_lo) and X_(j_hi) of expert i's loads X_t = c_{t,i}, j_hi = floor((T + Delta)/2) + 1,
    j_lo = T - j_hi + 1 (a central quantile band of width W_Delta = X_(j_hi) - X_(j_lo);
    X_(j) = +inf for j > T and -inf for j < 1, so the band is finite iff Delta <= T - 2);
(d) mean vs median: |mean X - med X| <= sd X (Hotelling & Solomons 1932); with (c),
        |mean_t c_{t,i} - L| <= |mean - med| + W_Delta = (|gamma_P|/3) sd + W_Delta
                                <= sd + W_Delta,
    gamma_P = 3 (mean - med)/sd being Pearson's second skewness: the gap between median and
    mean balance is the skew of the per-batch load distribution (zero when it is symmetric);
(e) counterexample family (E = 2, k = 1, n = 8, L = 4; the batches A, A, B repeated, A with
    s_1 - s_0 in {10, 10, -1, -2, -3, -10, -10, -10}, B with s_1 - s_0 = 10 for all 8 tokens):
    for every u with 1/(2u) an integer >= 2, at T = 3N,
        sign rule:          R_D(T) >= (2 + 8u)(T/3 - 1/u), i.e. slope >= 2/3 per batch for
                            EVERY u (it locks onto the median price 2, the hindsight price set
                            is [-10, 1]), with MaxVio_global -> 1/4;
        proportional rule:  R_D(T) = 2 u T exactly (<= Lemma 5(b)'s 4 u T), MaxVio_global -> 0;
    so no constant step gives the sign rule sublinear dual regret on this stream, while the
    proportional rule's slope is O(u);
(f) MaxVio from tie margins: for an optimal price p* of a batch and any p with
    delta = ||p - p*||_inf, max_i load_i(p) - L <= #{t : margin_t(p*) <= 2 delta}, so
    MaxVio_batch(p) <= #{t : margin_t(p*) <= 2 delta}/L (margin = k-th minus (k+1)-th largest
    of s_t + p*; routing depends on p up to a common shift, so delta may be taken as
    ptp(p - p*)/2).
(a), (b), (f) are chains for every u, n, E (sums over experts by coordinates, counts by
induction on T); (e)'s period pieces are identities and certificates for every admissible u,
its count a chain by induction on N from the per-period excesses, which are checked EXACTLY on
the package (dyadic u = 1/4 ... 1/128) together with the E = 4 stream of (b); (f) is also
checked on 40 random batches with the exact solver's prices; (c) and (d) are checked
EXHAUSTIVELY on every sample of size <= 6 with entries in {0, ..., 4} (exact rationals), with
the Cauchy-Schwarz step of (d) a chain for every sample size.

Hypotheses (named in the chains). update: b_{t+1,i} = b_{t,i} + u sigma_{t,i} with sigma =
sign(L - c); start: b_1 = 0; spread: b_i - b_j <= w + 2u at T + 1 (Lemma 7 (a) from b = 0);
two-experts: for E = 2, sigma_{t,0} = -sigma_{t,1}; experts: E >= 2; pairwise: the bound of
(b) for expert i and every other expert l (the same chain with l for j); meanabs: sum_t a_t = T A
(A the mean absolute deviation); excess: the per-period dual excess X_j >= 0 of the sign rule;
cycle: X_j = 2 + 8u once j > K = 1/u; proportional-cycle: the proportional rule's per-period
excess is 6u; admissible: K = 1/u is an even integer >= 4 (1/(2u) an integer >= 2);
optimum: F3(p) >= min F3 = 120 (the period's dual at its minimiser); subgradient:
D_A(p + 2u) - D_A(p) >= (c_A(p) - L) 2u >= -4u (Lemma 2, c_A >= 2); margin: r*_i - r*_j >=
m for i in the top-k set at p*, j not; shift: |p_l - p*_l| <= delta; wide: 2 delta < m;
lattice: K = 1/u.

Assumptions. Additive bias; ties to the lower index (lfbtheory.route); (e) and (f) for the
deterministic batches given.
Source. The sign rule: arXiv 2408.15664 Sec. 3; DeepSeek-V3 (arXiv 2412.19437 Sec. 2.1.2).
|mean - median| <= sd: Hotelling & Solomons, Ann. Math. Stat. 1932. Everything else is derived
here; arXiv 2512.03915 analyses ALF-LB as dual descent, but its theorem bodies are not
reproduced here, so no statement of this lemma is attributed to it.

Proof. (a) b_{t+1,i} - b_{t,i} = u sign(L - c_{t,i}); sum. (b) subtract (a) for i and j:
u((U_i - O_i) - (U_j - O_j)) = d_{T+1} - d_1 with d = b_i - b_j, |d| <= B (Lemma 7(a)); from
b = 0, d_1 = 0. For E = 2, c_0 = 2L - c_1, so U_0 = O_1, O_0 = U_1. (c) U <= (T + Delta)/2 and
O <= (T + Delta)/2, so fewer than j_hi loads are < L and fewer than j_hi are > L. (d)
|mean - m| <= (1/T) sum |x - m| <= (1/T) sum |x - mean| <= sd (the median minimises the mean
absolute deviation; then Cauchy-Schwarz: sd^2 - A^2 = (1/T) sum (a_t - A)^2). (e) With
p = b_1 - b_0, c_1 = #{tokens with s_1 - s_0 + p > 0}: D_A(p) = 20 - 2p on [-10, 1], 19 - p on
[1, 2], 17 on [2, 3]; D_B(p) = 80 + 4p; F3 = 2 D_A + D_B = 120 on [-10, 1] (the hindsight
prices) and 118 + 2p on [1, 2]. Sign: a period (A, A, B) from p <= 2 - 2u adds +2u, +2u, -2u,
so p climbs the lattice 2u Z from 0 to 2 in 1/u periods and then cycles through 2, 2 + 2u,
2 + 2u with dual excess D_A(2) + D_A(2 + 2u) + D_B(2 + 2u) - 120 = 2 + 8u per period; every
earlier period has excess >= 0 + (-4u) + 16u > 0 (optimum, subgradient, D_B's slope 4).
Proportional: the steps u(4 - c_1)/2 are +u, +u, -2u, so p cycles through 0, u, 2u with excess
(20) + (20 - 2u) + (80 + 8u) - 120 = 6u per period. Loads of expert 1 per period: sign 3, 4, 8
(mean 5 = L + 1, median-balanced: one under, one over); proportional 2, 2, 8 (mean L). (f) a
token with margin > 2 delta keeps its top-k set: r_i - r_j = (r*_i - r*_j) + (p_i - p*_i) -
(p_j - p*_j) >= m - 2 delta > 0; its set at p* is the optimum's (complementary slackness,
Lemma 2), so load(p) - L = sum over the other tokens of (x(p) - x*) <= their number.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, check, checked, cited

from lfbtheory import dual_objective, maxvio, route, sigmoid, solve_balanced, tie_margin
from lfbtheory.online import updates as U

u_, w_, N_, T_ = sp.symbols("u w N T", positive=True)
E_ = sp.Symbol("E", positive=True)

# The counterexample stream of (e): s_1 - s_0 per token (s_0 = 0).
DELTA_A = (10.0, 10.0, -1.0, -2.0, -3.0, -10.0, -10.0, -10.0)
DELTA_B = (10.0,) * 8


def median_balance_bound() -> sp.Expr:
    """(b): |(U_i - O_i) - (U_j - O_j)| <= w/u + 2 (from b_1 = 0)."""
    return w_ / u_ + 2


def sign_regret_lower_bound() -> sp.Expr:
    """(e): R_D(3N) >= (2 + 8u)(N - 1/u) for the sign rule on the (A, A, B) stream."""
    return (2 + 8 * u_) * (N_ - 1 / u_)


def proportional_regret() -> sp.Expr:
    """(e): R_D(3N) = 6 u N = 2 u T for the proportional rule on the same stream."""
    return 6 * u_ * N_


def counterexample_batches(periods: int) -> list[np.ndarray]:
    """(e)'s stream: (A, A, B) repeated ``periods`` times; scores (0, s_1 - s_0)."""
    a = np.column_stack([np.zeros(8), np.array(DELTA_A)])
    b = np.column_stack([np.zeros(8), np.array(DELTA_B)])
    return [a, a, b] * periods


def median_counterexample_batches(periods: int) -> list[np.ndarray]:
    """(b)'s E = 4 stream (n = 8, k = 1): batch j sends 5 tokens to expert j mod 4 and one to
    each other expert (score 1 on the preferred expert, 0 elsewhere)."""
    out = []
    for t in range(4 * periods):
        j = t % 4
        s = np.zeros((8, 4))
        s[:5, j] = 1.0
        for r, other in enumerate(e for e in range(4) if e != j):
            s[5 + r, other] = 1.0
        out.append(s)
    return out


def sign_counts(lem: Lemma, t, tt) -> None:
    """(a) for experts i and j; (b) pairwise, the common offset for every E, and E = 2."""
    lem.assume(u_, w_, E_, meaning="the step, the score range, E experts")
    facts = {}
    for x in ("i", "j"):
        b = lem.sequence(f"b_{x}", f"b_{x}(t), the bias of expert {x}")
        sig = lem.sequence(f"sigma_{x}", f"sign(L - c_{x}(t))")
        net = lem.sequence(f"N_{x}", f"N_{x}(T) = U_{x}(T) - O_{x}(T)")
        lem.sequence_recursion(f"count [{x}]", net, t, sig(1), net(t) + sig(t + 1))
        lem.hypothesis(
            f"update [{x}]", b(t + 1), "==", b(t) + u_ * sig(t), status=assumed("the sign rule")
        )
        lem.instance(f"update [{x}] 1", f"update [{x}]", {t: 1})
        lem.instance(f"update [{x}] T+1", f"update [{x}]", {t: tt + 1})
        lem.instance(f"count [{x}] T+1", f"count [{x}] [t+1]", {t: tt})
        tmpl = u_ * net(tt)
        base = lem.identity(
            f"(a) base [{x}]",
            b(2) - b(1),
            tmpl.subs(tt, 1),
            using=[(1, f"update [{x}] 1")],
            subs=[f"count [{x}] [1]"],
        )
        ih = lem.induction_hypothesis(f"(a) [{x}]", b(tt + 1) - b(1), "==", tmpl, tt)
        step = lem.identity(
            f"(a) step [{x}]",
            b(tt + 2) - b(1),
            tmpl.subs(tt, tt + 1),
            using=[(1, ih), (1, f"update [{x}] T+1")],
            subs=[f"count [{x}] T+1"],
        )
        facts[x] = (lem.induction(f"(a) [{x}]", ih, base, step), b, net)
        if x == "i":
            lem.theorem("(a)", facts[x][0], b(tt + 1) - b(1), "==", tmpl)
    (fi, bi, ni), (fj, bj, nj) = facts["i"], facts["j"]
    for x, bb in (("i", bi), ("j", bj)):
        lem.hypothesis(f"start [{x}]", bb(1), "==", 0, status=assumed("b_1 = 0"))
    lem.hypothesis(
        "spread", bi(tt + 1) - bj(tt + 1), "<=", w_ + 2 * u_, status=cited("Lemma 7 (a)")
    )
    pair = lem.certify(
        "(b) pairwise",
        ni(tt) - nj(tt),
        "<=",
        w_ / u_ + 2,
        using=[(-1 / u_, fi), (1 / u_, fj), (1 / u_, "spread")],
        subs=["start [i]", "start [j]"],
    )
    lem.theorem("(b) pairwise", pair, ni(tt) - nj(tt), "<=", median_balance_bound)
    # E = 2: sigma_0 = -sigma_1, so N_j = -N_i and |N_i| <= (w/u + 2)/2
    lem.hypothesis("two-experts", nj(tt), "==", -ni(tt), status=checked(lem._get("E = 2 signs")))
    e2 = lem.certify(
        "(b) E = 2",
        ni(tt),
        "<=",
        (w_ / u_ + 2) / 2,
        using=[(sp.Rational(1, 2), pair), (sp.Rational(1, 2), "two-experts")],
    )
    lem.theorem(
        "(b) E = 2", e2, ni(tt), "<=", median_balance_bound() / 2, bound=median_balance_bound
    )
    # every E: N_i - Nbar <= (1 - 1/E)(w/u + 2), Nbar the mean of N over the experts
    others = sp.Symbol("J", real=True)
    lem.define("others", others, E_ - 1)
    lem.hypothesis("experts", 2, "<=", E_, status=assumed("at least two experts"))
    lem.certify(
        "(b) J >= 0",
        0,
        "<=",
        others,
        using=[(1, "experts")],
        terms=[sp.Integer(1)],
        subs=["others"],
    )
    lem.nonneg(others, "(b) J >= 0")
    lem.coordinate_set("other experts", others)
    nl = lem.coordinate(
        "N_l", "N_l(T) for the E - 1 experts l != i", indexed=False, over="other experts"
    )
    tot, nbar = sp.symbols("N_others Nbar", real=True)
    lem.sum_of(tot, nl)
    lem.define("offset", nbar, (ni(tt) + tot) / E_)
    lem.hypothesis(
        "pairwise [l]", ni(tt) - nl, "<=", w_ / u_ + 2, status=cited("Lemma 12 (b) pairwise")
    )
    lem.summed("(b) pairwise, summed", "pairwise [l]", {nl: tot}, others)
    off = lem.certify(
        "(b) common offset",
        ni(tt) - nbar,
        "<=",
        (1 - 1 / E_) * (w_ / u_ + 2),
        using=[(1 / E_, "(b) pairwise, summed")],
        subs=["offset", "others"],
    )
    lem.theorem(
        "(b) common offset",
        off,
        ni(tt) - nbar,
        "<=",
        (1 - 1 / E_) * median_balance_bound(),
        bound=median_balance_bound,
    )


def e2_signs(lem: Lemma) -> None:
    ok = True
    for n in range(2, 17, 2):
        cap = n // 2
        for c1 in range(n + 1):
            ok &= np.sign(cap - (n - c1)) == -np.sign(cap - c1)
    lem.checked(
        "E = 2 signs", "sign(L - (2L - c)) = -sign(L - c) for every integer load, n <= 16", ok
    )


def median_counterexample(lem: Lemma, u: float = 2.0**-6, periods: int = 50) -> None:
    """(b) E = 4: the sign rule keeps the offset N_i = T/2 for every expert: median load 1 < L."""
    batches = median_counterexample_batches(periods)
    rule = U.sign(u)
    st = rule.init(4)
    loads = []
    for s in batches:
        r = route(s, 1, st.bias, normalize=False)
        loads.append(r.loads)
        st = rule.update(r.loads, st)
    c = np.array(loads, dtype=np.float64)
    cap = 2.0
    net = (c < cap).sum(0) - (c > cap).sum(0)
    ok = bool(np.all(net == len(batches) // 2))
    ok &= bool(np.all((c > cap).mean(0) == 0.25) and np.all((c < cap).mean(0) == 0.75))
    ok &= bool(np.all(np.median(c, axis=0) == 1.0) and np.all(c.mean(0) == cap))
    ok &= float(np.ptp(st.bias - st.bias.mean())) <= 2 * u + 1e-15
    f = lem.checked(
        "(b) E = 4 counterexample",
        f"on the E = 4 stream (n = 8, k = 1, u = 2^-6, T = {len(batches)}) the sign rule has "
        "N_i = T/2, P(over) = 1/4, P(under) = 3/4, median load 1 < L = 2 and mean load L for "
        "every expert",
        ok,
    )
    lem.theorem_checked("(b) E = 4: no median balance", f)


def _sorted_band(x: list[Fraction], delta: int) -> tuple[float | Fraction, float | Fraction]:
    """(X_(j_lo), X_(j_hi)) with X_(j) = -inf for j < 1 and +inf for j > T."""
    t = len(x)
    xs = sorted(x)
    j_hi = (t + delta) // 2 + 1
    j_lo = t - j_hi + 1
    lo = xs[j_lo - 1] if j_lo >= 1 else -np.inf
    hi = xs[j_hi - 1] if j_hi <= t else np.inf
    return lo, hi


def _median(x: list[Fraction]) -> Fraction:
    xs, t = sorted(x), len(x)
    return xs[t // 2] if t % 2 else (xs[t // 2 - 1] + xs[t // 2]) / 2


def cauchy_schwarz(lem: Lemma) -> None:
    """(d)'s last step for every sample size T: sd^2 >= A^2, A the mean absolute deviation."""
    tn = sp.Symbol("T_s", positive=True)
    lem.assume(tn, meaning="the sample size")
    lem.coordinate_set("sample", tn)
    at = lem.coordinate("a", "a_t = |x_t - mean| >= 0", "nonneg", indexed=False, over="sample")
    big_a = sp.Symbol("A", real=True)
    s1, s2 = sp.symbols("S1 S2", real=True)
    lem.sum_of(s1, at)
    lem.sum_of(s2, at**2)
    lem.hypothesis("meanabs", s1, "==", tn * big_a, status=assumed("A = (1/T) sum_t a_t"))
    lem.certify("(d) one sample", 0, "<=", (at - big_a) ** 2, terms=[(at - big_a) ** 2])
    lem.summed("(d) summed", "(d) one sample", {at**2: s2, at: s1}, tn)
    f = lem.certify(
        "(d) sd^2 >= A^2",
        big_a**2,
        "<=",
        s2 / tn,
        using=[(1 / tn, "(d) summed"), (-2 * big_a / tn, "meanabs")],
    )
    lem.theorem("(d) sd^2 >= A^2", f, big_a**2, "<=", s2 / tn)


def quantile_band_and_gap(lem: Lemma, max_t: int = 6, top: int = 4) -> None:
    """(c), (d) exhaustively."""
    count = 0
    for t in range(1, max_t + 1):
        for xs in itertools.product(range(top + 1), repeat=t):
            if list(xs) != sorted(xs):
                continue  # the statements are symmetric in the order of the sample
            x = [Fraction(v) for v in xs]
            mean = sum(x) / t
            med = _median(x)
            var = sum((v - mean) ** 2 for v in x) / t
            check((mean - med) ** 2 <= var, "(d) |mean - median| <= sd")
            for cap2 in range(0, 2 * top + 1):
                cap = Fraction(cap2, 2)
                over = sum(v > cap for v in x)
                under = sum(v < cap for v in x)
                delta = abs(over - under)
                lo, hi = _sorted_band(x, delta)
                check(lo <= cap <= hi, "(c) L lies in the central band")
                check(lo <= med <= hi, "(c) so does the median")
                gap = abs(mean - cap)
                check(
                    gap <= abs(mean - med) + (hi - lo),
                    "(d) |mean - L| <= |mean - med| + W_Delta",
                )
                count += 1
    f = lem.checked(
        "(c)-(d)",
        f"on all {count} (sample, L) pairs of size <= {max_t} with entries in 0..{top} (exact): L "
        "and the median lie in the central band; |mean - median| <= sd; |mean - L| <= "
        "|mean - median| + W_Delta",
        True,
    )
    lem.theorem_checked("(c)-(d)", f)


def _d_a(p: sp.Expr) -> sp.Expr:
    """D_A at b = (0, p): sum_t max(0, delta_t + p) - L p (top-1 sum of (0, delta_t + p))."""
    return sum(sp.Max(0, sp.Integer(int(d)) + p) for d in DELTA_A) - 4 * p


def _d_b(p: sp.Expr) -> sp.Expr:
    return sum(sp.Max(0, sp.Integer(int(d)) + p) for d in DELTA_B) - 4 * p


def counterexample_symbolic(lem: Lemma, excess_checked) -> None:
    """(e) the pieces of D_A, D_B, F3 and the period excesses for every admissible u; the count
    R_D(3N) >= (2 + 8u)(N - 1/u) by induction on N from the per-period excesses."""
    ok = sorted({-int(d) for d in DELTA_A}) == [-10, 1, 2, 3, 10]
    lem.checked("(e) breakpoints of D_A", "the breakpoints of D_A are -10, 1, 2, 3, 10", ok)
    # D_A is affine between its breakpoints: two points fix each piece, a third confirms it
    for lo, hi, piece in ((-10, 1, 20 - 2 * u_), (1, 2, 19 - u_), (2, 3, sp.Integer(17))):
        for frac in (sp.Rational(0), sp.Rational(1, 3), sp.Rational(1)):
            at = lo + (hi - lo) * frac
            lem.identity(f"(e) D_A on [{lo}, {hi}] at {at}", _d_a(at), piece.subs(u_, at))
    lem.identity("(e) D_B(0) = 80", _d_b(sp.Integer(0)), 80)
    lem.identity(
        "(e) D_B slope 4", _d_b(sp.Rational(7, 3)) - _d_b(sp.Integer(0)), 4 * sp.Rational(7, 3)
    )
    sign_x = lem.identity(
        "(e) sign cycle excess", 17 + 17 + (80 + 4 * (2 + 2 * u_)) - 120, 2 + 8 * u_
    )
    lem.theorem(
        "(e) sign cycle excess", sign_x, 17 + 17 + (80 + 4 * (2 + 2 * u_)) - 120, "==", 2 + 8 * u_
    )
    prop_x = lem.identity(
        "(e) proportional excess", 20 + (20 - 2 * u_) + (80 + 4 * (2 * u_)) - 120, 6 * u_
    )
    lem.theorem(
        "(e) proportional excess",
        prop_x,
        20 + (20 - 2 * u_) + (80 + 4 * (2 * u_)) - 120,
        "==",
        6 * u_,
    )
    # a transient period has positive excess: optimum + subgradient + D_B's slope
    f3p, dda = sp.symbols("F3p dDA", real=True)  # F3(p) and D_A(p + 2u) - D_A(p)
    lem.hypothesis(
        "optimum", 120, "<=", f3p, status=assumed("min F3 = 120, by the pieces of D_A and D_B")
    )
    lem.hypothesis("subgradient", -4 * u_, "<=", dda, status=cited("Lemma 2 (b)"))
    trans = lem.certify(
        "(e) a transient period has excess > 0",
        0,
        "<",
        (f3p - 120) + dda + 4 * (4 * u_),
        using=[(1, "optimum"), (1, "subgradient")],
        terms=[12 * u_],
    )
    lem.theorem("(e) a transient period has excess > 0", trans, 0, "<", (f3p - 120) + dda + 16 * u_)
    # the count, by induction on the number N of periods; K = 1/u
    j = lem.index("j", "a period (A, A, B)")
    big_n = sp.Symbol("N", positive=True, integer=True)
    lem.index(big_n, "the number of periods")
    big_k = sp.Symbol("K", positive=True, integer=True)
    lem.assume(big_k, meaning="K = 1/u, the number of transient periods")
    x = lem.sequence("X", "X_j, the sign rule's dual excess in period j")
    y = lem.sequence("Y", "Y_j, the proportional rule's dual excess in period j")
    r = lem.sequence("Rs", "R_D(3N) of the sign rule")
    rp = lem.sequence("Rp", "R_D(3N) of the proportional rule")
    lem.sequence_recursion("sign regret", r, j, x(1), r(j) + x(j + 1))
    lem.sequence_recursion("proportional regret", rp, j, y(1), rp(j) + y(j + 1))
    lem.hypothesis("excess", 0, "<=", x(j), status=checked(excess_checked))
    lem.implication(
        "cycle", (big_k, "<", j), (x(j), "==", 2 + 8 * u_), status=checked(excess_checked)
    )
    lem.hypothesis("proportional-cycle", y(j), "==", 6 * u_, status=checked(excess_checked))
    lem.hypothesis("admissible", 4, "<=", big_k, status=assumed("1/(2u) is an integer >= 2"))
    for name, src, mp in (
        ("excess 1", "excess", {j: 1}),
        ("excess N+1", "excess", {j: big_n + 1}),
        ("cycle N+1", "cycle", {j: big_n + 1}),
        ("sign regret N+1", "sign regret [t+1]", {j: big_n}),
        ("proportional 1", "proportional-cycle", {j: 1}),
        ("proportional N+1", "proportional-cycle", {j: big_n + 1}),
        ("proportional regret N+1", "proportional regret [t+1]", {j: big_n}),
    ):
        lem.instance(name, src, mp)
    base = lem.certify(
        "(e) R >= 0 base", 0, "<=", r(1), using=[(1, "excess 1")], subs=["sign regret [1]"]
    )
    ih = lem.induction_hypothesis("(e) R >= 0", 0, "<=", r(big_n), big_n)
    step = lem.certify(
        "(e) R >= 0 step",
        0,
        "<=",
        r(big_n + 1),
        using=[(1, ih), (1, "excess N+1")],
        subs=["sign regret N+1"],
    )
    nonneg = lem.induction("(e) R >= 0", ih, base, step)
    lem.instance("(e) R >= 0 at N+1", nonneg, {big_n: big_n + 1})
    tmpl = (2 + 8 * u_) * (big_n - big_k)
    base = lem.certify(
        "(e) count base",
        tmpl.subs(big_n, 1),
        "<=",
        r(1),
        using=[(1, base), ((2 + 8 * u_), "admissible")],
        terms=[3 * (2 + 8 * u_)],
    )
    ih = lem.induction_hypothesis("(e) count", tmpl, "<=", r(big_n), big_n)
    ca = lem.case_hypothesis("(e) still climbing", big_n + 1, "<=", big_k)
    cb = lem.case_hypothesis("(e) cycling", big_k, "<", big_n + 1)
    in_a = lem.certify(
        "(e) count, climbing",
        tmpl.subs(big_n, big_n + 1),
        "<=",
        r(big_n + 1),
        using=[((2 + 8 * u_), ca), (1, "(e) R >= 0 at N+1")],
    )
    cyc = lem.modus_ponens("(e) a cycle period", "cycle N+1", cb)
    in_b = lem.certify(
        "(e) count, cycling",
        tmpl.subs(big_n, big_n + 1),
        "<=",
        r(big_n + 1),
        using=[(1, ih), (-1, cyc)],
        subs=["sign regret N+1"],
    )
    step = lem.cases("(e) count step", ca, cb, in_a, in_b)
    count = lem.induction("(e) count", ih, base, step)
    lem.hypothesis("lattice", big_k, "==", 1 / u_, status=assumed("K = 1/u"))
    low = lem.certify(
        "(e) sign",
        (2 + 8 * u_) * (big_n - 1 / u_),
        "<=",
        r(big_n),
        using=[(1, count)],
        subs=["lattice"],
    )
    lem.theorem(
        "(e) sign",
        low,
        sign_regret_lower_bound().subs(N_, big_n),
        "<=",
        r(big_n),
        bound=sign_regret_lower_bound,
    )
    tmpl = 6 * u_ * big_n
    base = lem.identity(
        "(e) proportional base",
        rp(1),
        tmpl.subs(big_n, 1),
        using=[(1, "proportional 1")],
        subs=["proportional regret [1]"],
    )
    ih = lem.induction_hypothesis("(e) proportional", rp(big_n), "==", tmpl, big_n)
    step = lem.identity(
        "(e) proportional step",
        rp(big_n + 1),
        tmpl.subs(big_n, big_n + 1),
        using=[(1, ih), (1, "proportional N+1")],
        subs=["proportional regret N+1"],
    )
    prop = lem.induction("(e) proportional", ih, base, step)
    lem.theorem(
        "(e) proportional",
        prop,
        rp(big_n),
        "==",
        proportional_regret().subs(N_, big_n),
        bound=proportional_regret,
    )


def counterexample_package(lem: Lemma, ms: tuple[int, ...] = (2, 4, 8, 16, 64)):
    """(e) on the package: the exact per-period excesses of both rules for u = 1/(2m)."""
    results = {}
    for m in ms:
        u = 1.0 / (2 * m)
        periods = 2 * m + 40  # 1/u = 2m periods of transient, then 40 of the cycle
        batches = counterexample_batches(periods)
        curves = {}
        for name, rule in (("sign", U.sign(u)), ("proportional", U.proportional(u))):
            st = rule.init(2)
            dual, loads = [], []
            for s in batches:
                dual.append(dual_objective(s, k=1, bias=st.bias))
                r = route(s, 1, st.bias, normalize=False)
                loads.append(r.loads)
                st = rule.update(r.loads, st)
            per_period = np.add.reduceat(np.array(dual), np.arange(0, len(dual), 3)) - 120.0
            curves[name] = (per_period, np.array(loads))
        x_sign, loads_sign = curves["sign"]
        x_prop, loads_prop = curves["proportional"]
        k_tr = 2 * m  # K = 1/u transient periods
        check(np.all(x_sign >= 0), f"(e) every period's excess X_j >= 0, u = {u}")
        check(np.all(x_sign[k_tr:] == 2 + 8 * u), f"(e) X_j = 2 + 8u for j > 1/u, u = {u}")
        check(np.all(x_prop == 6 * u), f"(e) proportional Y_j = 6u, u = {u}")
        r_sign, r_prop = np.cumsum(x_sign), np.cumsum(x_prop)
        nn = np.arange(1, periods + 1)
        lower = sp.lambdify((u_, N_), sign_regret_lower_bound())(u, nn)
        check(np.all(r_sign >= lower), f"(e) sign R_D(3N) >= (2 + 8u)(N - 1/u), u = {u}")
        check(np.all(np.diff(r_sign[2 * m :]) == 2 + 8 * u), f"(e) sign cycle adds 2 + 8u, u = {u}")
        exact = sp.lambdify((u_, N_), proportional_regret())(u, nn)
        check(np.array_equal(r_prop, exact), f"(e) proportional R_D(3N) == 6uN, u = {u}")
        tail = slice(3 * 2 * m + 3, None)
        c1 = loads_sign[tail, 1]
        check(np.sum(c1 > 4) == np.sum(c1 < 4), "(e) the sign rule's cycle is median-balanced")
        check(np.mean(c1) == 5.0, "(e) ... with mean load L + 1 (MaxVio_global -> 1/4)")
        check(np.mean(loads_prop[:, 1]) == 4.0, "(e) proportional: mean load L exactly")
        results[m] = (float(r_sign[-1]), float(r_prop[-1]), 3 * periods)
    text = (
        "exact per-period dual excesses on the (A, A, B) stream for u = 1/(2m), m in "
        f"{list(ms)}: sign X_j >= 0 for every j and X_j = 2 + 8u for j > 1/u; proportional "
        "Y_j = 6u; the sign cycle is median-balanced with mean load L + 1"
    )
    return lem.checked("(e) on the package", text, True), results


def tie_margin_bound(lem: Lemma, rng: np.random.Generator, trials: int = 40) -> None:
    """(f) the margin certificate, and the bound on the package with the solver's prices."""
    m, delta = sp.Symbol("m", real=True), sp.Symbol("delta", real=True)
    ri, rj, pi, pj, qi, qj = sp.symbols("rs_i rs_j p_i p_j q_i q_j", real=True)  # q = p*
    lem.hypothesis(
        "margin", m, "<=", ri - rj, status=assumed("i in the top-k set of s + p*, j not")
    )
    lem.hypothesis("shift [i]", -delta, "<=", pi - qi, status=assumed("delta = ||p - p*||_inf"))
    lem.hypothesis("shift [j]", pj - qj, "<=", delta, status=assumed("delta = ||p - p*||_inf"))
    lem.hypothesis("wide", 2 * delta, "<", m, status=assumed("the token's margin exceeds 2 delta"))
    diff = (ri + (pi - qi)) - (rj + (pj - qj))  # (s_i + p_i) - (s_j + p_j), rs = s + p*
    f = lem.certify(
        "(f) a wide margin keeps the top-k set",
        0,
        "<",
        diff,
        using=[(1, "margin"), (1, "shift [i]"), (1, "shift [j]"), (1, "wide")],
    )
    lem.theorem("(f) a wide margin keeps the top-k set", f, 0, "<", diff)
    checked = 0
    for _ in range(trials):
        n, e, k = 64, 8, int(rng.integers(1, 3))
        s = sigmoid(rng.normal(size=(n, e)) + rng.normal(size=e))
        opt = solve_balanced(s, k)
        margin = tie_margin(s, k, opt.bias)
        cap = n * k // e
        for scale in (1e-3, 1e-2, 5e-2, 2e-1):
            p = opt.bias + rng.uniform(-scale, scale, size=e)
            dlt = float(np.ptp(p - opt.bias)) / 2
            wide = margin > 2 * dlt + 1e-12
            r = route(s, k, p, normalize=False)
            same = np.all(np.sort(r.experts, 1) == np.sort(opt.experts, 1), axis=1)
            check(np.all(same[wide]), "(f) wide-margin tokens are routed as in the optimum")
            n_close = int(np.sum(~wide))
            check(np.max(r.loads) - cap <= n_close, "(f) max load - L <= #{margin <= 2 delta}")
            check(maxvio(r.loads) <= n_close / cap + 1e-12, "(f) MaxVio <= N(delta)/L")
            checked += 1
    f = lem.checked(
        "(f) on the package",
        f"on {checked} (batch, p) pairs with the exact solver's prices: wide-margin tokens keep "
        "the optimum's experts and MaxVio_batch(p) <= #{margin <= 2 delta}/L",
        True,
    )
    lem.theorem_checked("(f) on the package", f)


def derive() -> Lemma:
    lem = Lemma(__doc__)
    t = lem.index("t", "a batch")
    big_t = sp.Symbol("T", positive=True, integer=True)
    lem.index(big_t, "the horizon")
    e2_signs(lem)
    sign_counts(lem, t, big_t)
    median_counterexample(lem)
    cauchy_schwarz(lem)
    excess, _ = counterexample_package(lem)
    counterexample_symbolic(lem, excess)
    return lem


def main() -> Lemma:
    lem = derive()
    quantile_band_and_gap(lem)
    tie_margin_bound(lem, np.random.default_rng(12))
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
