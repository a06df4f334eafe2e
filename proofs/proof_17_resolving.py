"""Lemma 17: re-solving (follow-the-leader) prices: O(log T) under non-degeneracy; lag-1 is linear.

Claim (the re-solving results of online LP, Agrawal, Wang & Ye 2014; Li & Ye 2019; Gao, Sun,
Xue, Ge & Ye 2024, in this setting). Batches i.i.d., F = E D_t with minimiser p*, F* = F(p*);
a causal price rule p_t (a function of s_1, ..., s_{t-1}); e_t = E||p_t - p*||^2.
(a) follow the leader (p_t = a minimiser of sum_{s<t} D_s, the pooled optimum of the past
    batches; re-solving): if F is beta-smooth near p* (F(p) - F* <= (beta/2)||p - p*||^2),
    the prices converge as e_t <= C/t (non-degeneracy: F is strongly convex near p*, Lemma 14),
    and the hindsight gain E[T F* - min_p sum_t D_t(p)] is at most C_h, then
        E R_D(T) <= (beta C/2)(1 + ln T) + C_h   -- logarithmic;
(b) a rule whose prices keep an error e_t >= c_1 > 0 (lag-1: p_t = the exact optimal price of
    batch t - 1; a sliding window of fixed length W) has, if F is mu-strongly convex near p*
    (F(p) - F* >= (mu/2)||p - p*||^2),
        E R_D(T) >= (mu c_1/2) T   -- linear, whatever the window;
(c) so exact per-batch prices (lag-1) are the worst causal choice under i.i.d. inputs, and the
    re-solving rules need the window to grow (the pooled past) to reach log T; under drift
    the pooled past is stale and Lemma 13 (a moving comparator) is the relevant bound.
What this says about the package's re-solving rules (``updates.follow_the_leader``,
``updates.sliding_window``, ``updates.lag1``): (a) for follow-the-leader, (b) for lag-1 and
for a fixed window. Their hypotheses are measured without the rules (proofs/measurements.py,
resolving): the pooled prefix optima converge to p* (computed exactly from the expected dual)
with t e_t roughly constant, beta and C_h; the rules' regret is in proofs/online_rules.py.
(a), (b) are chains by induction on T.

Hypotheses (named in the chains). causal: E[D_t(p_t)] = E[F(p_t)]; smooth: E F(p_t) - F* <=
(beta/2) e_t; dual-convergence: e_t <= C/t (non-degenerate F; Li & Ye 2019, Gao et al. 2024,
measured here); hindsight-gain: E[T F* - min_p sum_t D_t(p)] <= C_h; harmonic: sum_{t<=T} 1/t
<= 1 + ln T (Lemma 5 (e)); curvature: (mu/2) e_t <= E F(p_t) - F*; persistent-error: e_t >=
c_1; lower-hindsight: E R_D(T) >= sum_t E[F(p_t) - F*] (Lemma 15 (a)).
Source. S. Agrawal, Z. Wang, Y. Ye, "A dynamic near-optimal algorithm for online linear
programming", Oper. Res. 62 (2014); X. Li, Y. Ye, "Online linear programming: dual convergence,
new algorithms, and regret bounds", arXiv 1909.05499 (Oper. Res. 2022); W. Gao, C. Sun, C. Xue,
D. Ge, Y. Ye, arXiv 2402.07108 (2024, log T-type regret of re-solving under non-degeneracy).
The chains are derived here; the constants C, C_h, beta are measured, not proved.
"""

from __future__ import annotations

import sympy as sp
from _certify import Lemma, assumed, cited

beta_, C_, Ch_, mu_, c1_ = sp.symbols("beta C C_h mu c_1", positive=True)
T_ = sp.Symbol("T", positive=True, integer=True)


def bound_ftl() -> sp.Expr:
    """(a): (beta C/2)(1 + ln T) + C_h."""
    return beta_ * C_ / 2 * (1 + sp.log(T_)) + Ch_


def lower_persistent() -> sp.Expr:
    """(b): (mu c_1/2) T."""
    return mu_ * c1_ * T_ / 2


def chain(lem: Lemma) -> None:
    t = lem.index("t", "a batch")
    lem.index(T_, "the horizon")
    lem.assume(beta_, C_, Ch_, mu_, c1_, meaning="smoothness, convergence and gain constants")
    ef = lem.sequence("EF", "E F(p_t)")
    ed = lem.sequence("ED", "E D_t(p_t)")
    err = lem.sequence("e", "e_t = E||p_t - p*||^2", "nonneg")
    gap = lem.sequence("Gap", "sum_{t<=T} E[F(p_t)] - F*")
    h = lem.sequence("H", "sum_{t<=T} 1/t")
    sd = lem.sequence("SD", "sum_{t<=T} E D_t(p_t)")
    fstar, emin = sp.symbols("F_star E_min", real=True)
    lem.sequence_recursion("gap sum", gap, t, ef(1) - fstar, gap(t) + ef(t + 1) - fstar)
    lem.sequence_recursion("harmonic sum", h, t, sp.Integer(1), h(t) + 1 / (t + 1))
    lem.sequence_recursion("dual sum", sd, t, ed(1), sd(t) + ed(t + 1))
    lem.hypothesis("causal", ed(t), "==", ef(t), status=assumed("i.i.d. batches, a causal rule"))
    lem.hypothesis(
        "smooth", ef(t) - fstar, "<=", beta_ * err(t) / 2, status=assumed("F beta-smooth near p*")
    )
    lem.hypothesis(
        "dual-convergence",
        err(t),
        "<=",
        C_ / t,
        status=assumed("re-solving prices converge at rate 1/t (Li & Ye; Gao et al.)"),
    )
    per = lem.certify(
        "(a) per step",
        ef(t) - fstar,
        "<=",
        beta_ * C_ / (2 * t),
        using=[(1, "smooth"), (beta_ / 2, "dual-convergence")],
    )
    for name, src, mp in (
        ("per step 1", per.name, {t: 1}),
        ("per step T+1", per.name, {t: T_ + 1}),
        ("gap sum T+1", "gap sum [t+1]", {t: T_}),
        ("harmonic T+1", "harmonic sum [t+1]", {t: T_}),
        ("causal 1", "causal", {t: 1}),
        ("causal T+1", "causal", {t: T_ + 1}),
        ("dual sum T+1", "dual sum [t+1]", {t: T_}),
    ):
        lem.instance(name, src, mp)
    base = lem.certify(
        "(a) gap base",
        gap(1),
        "<=",
        beta_ * C_ / 2 * h(1),
        using=[(1, "per step 1")],
        subs=["gap sum [1]", "harmonic sum [1]"],
    )
    ih = lem.induction_hypothesis("(a) gap", gap(T_), "<=", beta_ * C_ / 2 * h(T_), T_)
    step = lem.certify(
        "(a) gap step",
        gap(T_ + 1),
        "<=",
        beta_ * C_ / 2 * h(T_ + 1),
        using=[(1, ih), (1, "per step T+1")],
        subs=["gap sum T+1", "harmonic T+1"],
    )
    gsum = lem.induction("(a) gap", ih, base, step)
    # E R_D(T) = sum_t E D_t(p_t) - E min = Gap(T) + (T F* - E min)
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
    rd = sp.Symbol("ER_D", real=True)
    lem.define("expected dual regret", rd, sd(T_) - emin)
    lem.hypothesis(
        "hindsight-gain",
        T_ * fstar - emin,
        "<=",
        Ch_,
        status=assumed("E[T F* - min_p sum_t D_t(p)] <= C_h (measured)"),
    )
    lem.hypothesis("harmonic", h(T_), "<=", 1 + sp.log(T_), status=cited("Lemma 5 (e) harmonic"))
    a = lem.certify(
        "(a)",
        rd,
        "<=",
        beta_ * C_ / 2 * (1 + sp.log(T_)) + Ch_,
        using=[(1, sums), (1, gsum), (1, "hindsight-gain"), (beta_ * C_ / 2, "harmonic")],
        subs=["expected dual regret"],
    )
    lem.theorem("(a)", a, rd, "<=", bound_ftl)
    # (b) a persistent error
    lem.hypothesis(
        "curvature",
        mu_ * err(t) / 2,
        "<=",
        ef(t) - fstar,
        status=assumed("F mu-strongly convex near p* (Lemma 14)"),
    )
    lem.hypothesis(
        "persistent-error",
        c1_,
        "<=",
        err(t),
        status=assumed("lag-1 / fixed window: the price error does not vanish"),
    )
    low = lem.certify(
        "(b) per step",
        mu_ * c1_ / 2,
        "<=",
        ef(t) - fstar,
        using=[(1, "curvature"), (mu_ / 2, "persistent-error")],
    )
    lem.instance("low 1", low, {t: 1})
    lem.instance("low T+1", low, {t: T_ + 1})
    base = lem.certify(
        "(b) base", mu_ * c1_ / 2, "<=", gap(1), using=[(1, "low 1")], subs=["gap sum [1]"]
    )
    ih = lem.induction_hypothesis("(b) gap", mu_ * c1_ * T_ / 2, "<=", gap(T_), T_)
    step = lem.certify(
        "(b) step",
        mu_ * c1_ * (T_ + 1) / 2,
        "<=",
        gap(T_ + 1),
        using=[(1, ih), (1, "low T+1")],
        subs=["gap sum T+1"],
    )
    glow = lem.induction("(b) gap", ih, base, step)
    lem.hypothesis("lower-hindsight", gap(T_), "<=", rd, status=cited("Lemma 15 (a)"))
    b = lem.certify("(b)", mu_ * c1_ * T_ / 2, "<=", rd, using=[(1, glow), (1, "lower-hindsight")])
    lem.theorem("(b)", b, lower_persistent, "<=", rd)


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
