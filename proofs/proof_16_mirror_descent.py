"""Lemma 16: dual mirror descent on prices (entropic: multiplicative weights) has O(sqrt T) regret.

Claim (dual mirror descent for online allocation, Balseiro, Lu & Mirrokni, in this setting).
Take capacities as upper bounds (sum_t x_ti <= L), so prices are >= 0, and
update them by mirror descent with the negative entropy: p_{t+1,i} = p_{t,i} exp(-eta g_{t,i}),
g_t = load_t - L (multiplicative weights on prices; the package's rule, see below). With q >= 0
any comparator price, KL(q, p) = sum_i q_i ln(q_i/p_i) - q_i + p_i,
r_t = D_t(p_t) - D_t(q), R_T = r_1 + ... + r_T:
(a) three-point identity, every E: eta g_t.(p_t - q) = KL(q, p_t) - KL(q, p_{t+1}) +
    sum_i p_{t,i} (eta g_{t,i} + exp(-eta g_{t,i}) - 1);
(b) if eta |g_{t,i}| <= 1: R_T <= KL(q, p_1)/eta + eta sum_t sum_i p_{t,i} g_{t,i}^2;
(c) with sum_i p_{t,i} g_{t,i}^2 <= V for every t: R_T <= KL(q, p_1)/eta + eta V T, which is at
    least 2 sqrt(KL(q, p_1) V T), with equality at eta = sqrt(KL(q, p_1)/(V T)): O(sqrt T);
(d) with the Euclidean mirror map (1/2)||p||^2 instead, mirror descent is the proportional rule
    and (b)-(c) are Lemma 5 (b)-(c).
What the rules of a training run would get from this: a multiplicative-weights price rule has
the O(sqrt T) regret of Lemma 5 with a KL radius instead of a Euclidean one (better when few
experts carry most of the price). The package's rule is ``updates.mirror_descent``: (a)-(c)
with p := -b, the price subtracted from the scores (Balseiro, Lu & Mirrokni's convention),
and g := L - load, the subgradient of the dual in -b; the comparator q = max(p*) - p* >= 0.
It is measured in proofs/online_rules.py. (The ``multiplicative`` rule multiplies the SCORES
by b, Lemma 3 (e), which is not this update.)
(a)-(c) are chains for every E (sums over coordinates) and every T (induction).

Hypotheses (named in the chains). update: p_{t+1,i} = p_{t,i} exp(-eta g_{t,i}); kl-term:
the summand of KL(q, p_t); rest-term: the summand of the remainder in (a);
subgradient: r_t <= g_t.(p_t - q) (Lemma 2, which holds for the <= capacity dual with p >= 0);
exp-bound: p (x + exp(-x) - 1) <= p x^2 for |x| = eta |g| <= 1 (checked in this file at 20001
points of
[-1, 1] in 50-digit arithmetic; the second-order Taylor bound); kl-nonneg: KL(q, p) >= 0
(x - 1 - ln x >= 0); variance: sum_i p_{t,i} g_{t,i}^2 <= V; start: KL(q, p_1) <= K.
Source. S. Balseiro, H. Lu, V. Mirrokni, "The best of many worlds: dual mirror descent for
online allocation problems", ICML 2020 / Oper. Res. 2023, Thm 1 (O(sqrt T) regret under
i.i.d. requests for any strongly convex reference function); Arora, Hazan & Kale, Theory of
Computing 2012 (multiplicative weights). The constants here are derived for this update.
"""

from __future__ import annotations

import mpmath
import sympy as sp
from _certify import Lemma, assumed, checked, cited

eta_, V_, K_ = sp.symbols("eta V K", positive=True)
T_ = sp.Symbol("T", positive=True, integer=True)


def bound_mirror() -> sp.Expr:
    """(c): KL(q, p_1)/eta + eta V T (KL(q, p_1) <= K)."""
    return K_ / eta_ + eta_ * V_ * T_


def exp_bound_check(lem: Lemma):
    """x + exp(-x) - 1 <= x^2 on [-1, 1], at 20001 grid points (50 digits)."""
    worst = mpmath.mpf(-1)
    with mpmath.workdps(50):
        for j in range(20001):
            x = mpmath.mpf(j - 10000) / 10000
            worst = max(worst, x + mpmath.exp(-x) - 1 - x**2)
    text = "x + exp(-x) - 1 - x^2 <= 0 at 20001 points of [-1, 1] (50 digits)"
    return lem.checked("exp-bound on a grid", text, worst <= 0)


def chain(lem: Lemma, grid) -> None:
    t = lem.index("t", "a batch")
    lem.index(T_, "the horizon")
    lem.assume(eta_, V_, K_, meaning="step, variance bound, KL radius")
    P = lem.coordinate("P", "p_i(t) > 0, a price", "pos")
    g = lem.coordinate("g", "g_i(t) = load_i - L")
    q = lem.coordinate("q", "q_i > 0, the comparator price", "pos", indexed=False)
    kl = lem.sequence("KL", "KL(q, p_t)")
    lin = lem.sequence("lin", "g_t.(p_t - q)")
    var = lem.sequence("Var", "sum_i p_{t,i} g_{t,i}^2", "nonneg")
    rest = lem.sequence("Rest", "sum_i p (eta g + exp(-eta g) - 1)")
    klc = lem.coordinate("kl", "q_i ln(q_i/p_i(t)) - q_i + p_i(t)")
    rc = lem.coordinate("rest", "p_i(t) (eta g_i(t) + exp(-eta g_i(t)) - 1)")
    lem.sum_of(kl, klc(t), t)
    lem.sum_of(lin, g(t) * (P(t) - q), t)
    lem.sum_of(var, P(t) * g(t) ** 2, t)
    lem.sum_of(rest, rc(t), t)
    lem.hypothesis(
        "update",
        P(t + 1),
        "==",
        P(t) * sp.exp(-eta_ * g(t)),
        status=assumed("the entropic mirror step"),
    )
    lem.hypothesis(
        "kl-term", klc(t), "==", q * sp.log(q / P(t)) - q + P(t), status=assumed("the KL summand")
    )
    lem.hypothesis(
        "rest-term",
        rc(t),
        "==",
        P(t) * (eta_ * g(t) + sp.exp(-eta_ * g(t)) - 1),
        status=assumed("the remainder summand"),
    )
    lem.instance("kl-term t+1", "kl-term", {t: t + 1})
    lem.identity(
        "(a) one coordinate",
        eta_ * g(t) * (P(t) - q),
        klc(t) - klc(t + 1) + rc(t),
        subs=["kl-term", "kl-term t+1", "rest-term", "update"],
    )
    fa = lem.summed(
        "(a)",
        "(a) one coordinate",
        {g(t) * (P(t) - q): lin(t), klc(t): kl(t), klc(t + 1): kl(t + 1), rc(t): rest(t)},
        sp.Symbol("E", positive=True),
    )
    lem.theorem("(a)", fa, eta_ * lin(t), "==", kl(t) - kl(t + 1) + rest(t))
    lem.hypothesis("exp-bound", rc(t), "<=", eta_**2 * g(t) ** 2 * P(t), status=checked(grid))
    lem.summed(
        "(b) second order",
        "exp-bound",
        {rc(t): rest(t), P(t) * g(t) ** 2: var(t)},
        sp.Symbol("E", positive=True),
    )
    r = lem.sequence("r", "D_t(p_t) - D_t(q)")
    s = lem.sequence("S", "R_T")
    sv = lem.sequence("SV", "sum_{t<=T} Var(t)")
    lem.sequence_recursion("regret", s, t, r(1), s(t) + r(t + 1))
    lem.sequence_recursion("variances", sv, t, var(1), sv(t) + var(t + 1))
    lem.hypothesis("subgradient", r(t), "<=", lin(t), status=cited("Lemma 2 (b)"))
    per = lem.certify(
        "(b) per step",
        eta_ * r(t),
        "<=",
        kl(t) - kl(t + 1) + eta_**2 * var(t),
        using=[(eta_, "subgradient"), (1, fa), (1, "(b) second order")],
    )
    for name, src, mp in (
        ("per step 1", per.name, {t: 1}),
        ("per step T+1", per.name, {t: T_ + 1}),
        ("regret T+1", "regret [t+1]", {t: T_}),
        ("variances T+1", "variances [t+1]", {t: T_}),
    ):
        lem.instance(name, src, mp)
    tmpl = kl(1) - kl(T_ + 1) + eta_**2 * sv(T_)
    base = lem.certify(
        "(b) base",
        eta_ * s(1),
        "<=",
        tmpl.subs(T_, 1),
        using=[(1, "per step 1")],
        subs=["regret [1]", "variances [1]"],
    )
    ih = lem.induction_hypothesis("(b) sum", eta_ * s(T_), "<=", tmpl, T_)
    step = lem.certify(
        "(b) step",
        eta_ * s(T_ + 1),
        "<=",
        tmpl.subs(T_, T_ + 1),
        using=[(1, ih), (1, "per step T+1")],
        subs=["regret T+1", "variances T+1"],
    )
    total = lem.induction("(b) sum", ih, base, step)
    lem.hypothesis("kl-nonneg", 0, "<=", kl(T_ + 1), status=assumed("Gibbs: KL(q, p) >= 0"))
    b = lem.certify(
        "(b)",
        s(T_),
        "<=",
        kl(1) / eta_ + eta_ * sv(T_),
        using=[(1 / eta_, total), (1 / eta_, "kl-nonneg")],
    )
    lem.theorem("(b)", b, s(T_), "<=", kl(1) / eta_ + eta_ * sv(T_))
    lem.hypothesis(
        "variance", var(t), "<=", V_, status=assumed("sum_i p_i g_i^2 <= V along the run")
    )
    lem.instance("variance 1", "variance", {t: 1})
    lem.instance("variance T+1", "variance", {t: T_ + 1})
    base = lem.certify(
        "(c) variances base", sv(1), "<=", V_, using=[(1, "variance 1")], subs=["variances [1]"]
    )
    ih = lem.induction_hypothesis("(c) variances", sv(T_), "<=", V_ * T_, T_)
    step = lem.certify(
        "(c) variances step",
        sv(T_ + 1),
        "<=",
        V_ * (T_ + 1),
        using=[(1, ih), (1, "variance T+1")],
        subs=["variances T+1"],
    )
    vsum = lem.induction("(c) variances", ih, base, step)
    lem.hypothesis("start", kl(1), "<=", K_, status=assumed("KL(q, p_1) <= K"))
    c = lem.certify(
        "(c)",
        s(T_),
        "<=",
        K_ / eta_ + eta_ * V_ * T_,
        using=[(1, b), (eta_, vsum), (1 / eta_, "start")],
    )
    lem.theorem("(c)", c, s(T_), "<=", bound_mirror)
    amgm = lem.certify(
        "(c) at least 2 sqrt(K V T)",
        2 * sp.sqrt(K_ * V_ * T_),
        "<=",
        K_ / eta_ + eta_ * V_ * T_,
        terms=[(sp.sqrt(K_) - eta_ * sp.sqrt(V_ * T_)) ** 2 / eta_],
    )
    lem.theorem("(c) at least 2 sqrt(K V T)", amgm, 2 * sp.sqrt(K_ * V_ * T_), "<=", bound_mirror)
    best = sp.sqrt(K_ / (V_ * T_))
    val = lem.identity(
        "(c) value at the best eta",
        (K_ / eta_ + eta_ * V_ * T_).subs(eta_, best),
        2 * sp.sqrt(K_ * V_ * T_),
    )
    lem.theorem(
        "(c) value at the best eta",
        val,
        bound_mirror().subs(eta_, best),
        "==",
        2 * sp.sqrt(K_ * V_ * T_),
        bound=bound_mirror,
    )


def derive() -> Lemma:
    lem = Lemma(__doc__)
    chain(lem, exp_bound_check(lem))
    return lem


def main() -> Lemma:
    return derive()


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
