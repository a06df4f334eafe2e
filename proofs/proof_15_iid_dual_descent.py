"""Lemma 15: under i.i.d. batches E R_D >= 0 for every causal rule, so u = c/sqrt T gives O(sqrt T).

Claim (the dual subgradient result of online LP, Li, Sun & Ye, arXiv 2003.02513, in this
setting). Let the batches s_1, s_2, ... be i.i.d., F(p) = E D_t(p) the expected dual, p* a
minimiser of F, and let the rule be causal: p_t is a function of s_1, ..., s_{t-1} only (every
rule of lfbtheory.online.updates, and follow-the-leader / re-solving prices).
(a) E R_D(T) >= sum_{t<=T} E[F(p_t) - F(p*)] >= 0: against the hindsight price of the pooled
    batches, a causal rule cannot gain in expectation (R_D(T) >= sum_t D_t(p_t) - D_t(p*)
    pathwise, and E[D_t(p_t) | s_<t] = F(p_t) >= F(p*));
(b) for the proportional rule with constant u from p_1 = 0 (Lemma 11 (e)):
    E R_P(T) <= u n (E - k) T/2 - E R_D(T) <= u n (E - k) T/2;
(c) with u = c/sqrt(T): E R_P(T) <= c n (E - k) sqrt(T)/2 and, on every stream,
    max_i |C_i(T) - T L| <= L w sqrt(T)/c + n (Lemma 11 (b)): primal regret and violation are
    both O(sqrt T) -- the O(sqrt T) regret-plus-violation of Li, Sun & Ye for dual subgradient
    descent. The expectation in (a) is over the stream; on a drifting (non-i.i.d.) stream R_D
    is very negative and the primal regret is not O(sqrt T) (Lemma 11 (f)).
Measured beside the bounds by proofs/measurements.py (online_lp): the stationary (i.i.d.)
stream keeps R_P(T) far below (c), the drifting stream does not.
All parts are chains; the sum in (a) by induction on T.

Hypotheses (named in the chains). causal: E[D_t(p_t)] = E[F(p_t)] (batch t is independent of
p_t and has the law of every batch); minimiser: F(p*) <= E[F(p_t)]; hindsight: E[min_p sum_t
D_t(p)] <= T F(p*) (the minimum is at most the value at p*); tradeoff: R_P(T) + R_D(T) <=
u n (E - k) T/2 (Lemma 11 (e)), in expectation; violation: the bound of Lemma 11 (b);
horizon-step: u = c/sqrt(T).
Source. S. Li, X. Sun, Y. Ye, "Simple and fast algorithm for binary integer and online linear
programming", arXiv 2003.02513 (Thm: O(sqrt T) regret and constraint violation of the dual
subgradient method under i.i.d. inputs); Agrawal, Wang & Ye, Oper. Res. 2014 (online LP under
random input). The chain and its constants are derived here for this problem.
"""

from __future__ import annotations

import sympy as sp
from _certify import Lemma, assumed, cited

u_, c_, n_, E_, k_, L_, w_ = sp.symbols("u c n E k L w", positive=True)
T_ = sp.Symbol("T", positive=True, integer=True)


def primal_bound_iid() -> sp.Expr:
    """(c): E R_P(T) <= c n (E - k) sqrt(T)/2 for u = c/sqrt(T) under i.i.d. batches."""
    return c_ * n_ * (E_ - k_) * sp.sqrt(T_) / 2


def violation_bound() -> sp.Expr:
    """(c): max_i |C_i(T) - T L| <= L w sqrt(T)/c + n for u = c/sqrt(T) (any stream)."""
    return L_ * w_ * sp.sqrt(T_) / c_ + n_


def chain(lem: Lemma) -> None:
    t = lem.index("t", "a batch")
    lem.index(T_, "the horizon")
    lem.assume(u_, c_, n_, E_, k_, L_, w_, meaning="step, its constant, sizes, score range")
    ed = lem.sequence("ED", "E[D_t(p_t)]")
    ef = lem.sequence("EF", "E[F(p_t)]")
    sd = lem.sequence("SD", "E[sum_{t<=T} D_t(p_t)]")
    gap = lem.sequence("Gap", "sum_{t<=T} E[F(p_t) - F(p*)]")
    fstar, emin = sp.symbols("F_star E_min", real=True)
    lem.sequence_recursion("dual sum", sd, t, ed(1), sd(t) + ed(t + 1))
    lem.sequence_recursion("gap sum", gap, t, ef(1) - fstar, gap(t) + ef(t + 1) - fstar)
    lem.hypothesis(
        "causal", ed(t), "==", ef(t), status=assumed("i.i.d. batches, p_t a function of the past")
    )
    lem.hypothesis("minimiser", fstar, "<=", ef(t), status=assumed("p* minimises F"))
    for name, src, mp in (
        ("causal 1", "causal", {t: 1}),
        ("causal T+1", "causal", {t: T_ + 1}),
        ("minimiser 1", "minimiser", {t: 1}),
        ("minimiser T+1", "minimiser", {t: T_ + 1}),
        ("dual sum T+1", "dual sum [t+1]", {t: T_}),
        ("gap sum T+1", "gap sum [t+1]", {t: T_}),
    ):
        lem.instance(name, src, mp)
    # sum_t E D_t(p_t) = T F* + Gap(T), and Gap(T) >= 0
    base = lem.identity(
        "(a) sums base",
        sd(1),
        fstar + gap(1),
        using=[(1, "causal 1")],
        subs=["dual sum [1]", "gap sum [1]"],
    )
    ih = lem.induction_hypothesis("(a) sums", sd(T_), "==", T_ * fstar + gap(T_), T_)
    step = lem.identity(
        "(a) sums step",
        sd(T_ + 1),
        (T_ + 1) * fstar + gap(T_ + 1),
        using=[(1, ih), (1, "causal T+1")],
        subs=["dual sum T+1", "gap sum T+1"],
    )
    sums = lem.induction("(a) sums", ih, base, step)
    base = lem.certify(
        "(a) gap base", 0, "<=", gap(1), using=[(1, "minimiser 1")], subs=["gap sum [1]"]
    )
    ih = lem.induction_hypothesis("(a) gap >= 0", 0, "<=", gap(T_), T_)
    step = lem.certify(
        "(a) gap step",
        0,
        "<=",
        gap(T_ + 1),
        using=[(1, ih), (1, "minimiser T+1")],
        subs=["gap sum T+1"],
    )
    nonneg = lem.induction("(a) gap >= 0", ih, base, step)
    rd = sp.Symbol("ER_D", real=True)
    lem.define("expected dual regret", rd, sd(T_) - emin)
    lem.hypothesis(
        "hindsight",
        emin,
        "<=",
        T_ * fstar,
        status=assumed("min_p sum_t D_t(p) <= sum_t D_t(p*), in expectation"),
    )
    a = lem.certify(
        "(a)",
        gap(T_),
        "<=",
        rd,
        using=[(-1, sums), (1, "hindsight")],
        subs=["expected dual regret"],
    )
    lem.theorem("(a)", a, gap(T_), "<=", rd)
    a0 = lem.certify("(a) E R_D >= 0", 0, "<=", rd, using=[(1, a), (1, nonneg)])
    lem.theorem("(a) E R_D >= 0", a0, 0, "<=", rd)
    rp = sp.Symbol("ER_P", real=True)
    lem.hypothesis(
        "tradeoff", rp + rd, "<=", u_ * n_ * (E_ - k_) * T_ / 2, status=cited("Lemma 11 (e)")
    )
    b = lem.certify("(b)", rp, "<=", u_ * n_ * (E_ - k_) * T_ / 2, using=[(1, "tradeoff"), (1, a0)])
    lem.theorem("(b)", b, rp, "<=", u_ * n_ * (E_ - k_) * T_ / 2)
    lem.hypothesis("horizon-step", u_, "==", c_ / sp.sqrt(T_), status=assumed("u = c/sqrt(T)"))
    c = lem.certify(
        "(c) primal",
        rp,
        "<=",
        c_ * n_ * (E_ - k_) * sp.sqrt(T_) / 2,
        using=[(1, b)],
        subs=["horizon-step"],
    )
    lem.theorem("(c) primal", c, rp, "<=", primal_bound_iid)
    dev = sp.Symbol("V_i", real=True)  # max_i |C_i(T) - T L|
    lem.hypothesis("violation", dev, "<=", L_ * w_ / u_ + n_, status=cited("Lemma 11 (b) upper"))
    v = lem.certify(
        "(c) violation",
        dev,
        "<=",
        L_ * w_ * sp.sqrt(T_) / c_ + n_,
        using=[(1, "violation")],
        subs=["horizon-step"],
    )
    lem.theorem("(c) violation", v, dev, "<=", violation_bound)


def derive() -> Lemma:
    lem = Lemma(__doc__)
    chain(lem)
    return lem


def main() -> Lemma:
    return derive()


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
