"""Lemma 11: proportional rule: |C_i(T) - TL| <= Lw/u + n on any stream; R_D + R_P = sum p.g.

Claim. Route batches s_1, s_2, ... (n tokens, E experts, k per token, L = nk/E, scores of
every batch in [a, b], w = b - a; any sequence, chosen adaptively or not) by top-k of s_t + p_t
and update with the proportional rule p_{t+1} = p_t + u_t (L - c_t)/L (Lemma 3: a step u_t/L
on D_t), from p_1 = 0. Let g_t = c_t - L and C(T) = sum_{t<=T} c_t.
(a) constant u: C(T) - T L = (L/u)(p_1 - p_{T+1}) exactly;
(b) with Lemma 7(b) (spread <= w + uE/k) and sum p_t = 0 (Lemma 3(c)),
    |C_i(T) - T L| <= (L/u)(1 - 1/E)(w + uE/k) <= L w/u + n, so
    MaxVio_global(T) <= (w/u + E/k)/T, for every T and every stream (adversarial included);
(c) non-increasing u_t (Abel summation): |C_i(T) - T L| <= 2 L M/u_T with
    M = max_{t<=T+1} max_i |p_{t,i}| <= (1 - 1/E)(w + u_1 E/k); for u_t = c/sqrt(t) this is
    O(sqrt T), so MaxVio_global(T) = O(1/sqrt T);
(d) bridge (any additive-bias rule): with reward_s = sum_t s_t.x_t(p_s) (unbiased scores of
    the routing), R_D(T) = sum_s D_s(p_s) - OPT_pool(T) and R_P(T) = OPT_pool(T) - sum_s reward_s,
        R_D(T) = -R_P(T) + sum_s p_s.(c_s - L);
(e) trade-off, proportional rule with constant u from p_1 = 0:
        R_P(T) + R_D(T) = (u/(2L)) sum_s ||g_s||^2 - (L/(2u)) ||p_{T+1}||^2 <= u n (E - k) T/2,
    and R_D(T) >= -(OPT_pool(T) - sum_s OPT_s) (weak duality per batch), so a small u makes
    the primal regret small while the violation bound Lw/u + n of (b) grows, and u = c/sqrt T
    makes both O(sqrt T).
(a), (c)'s Abel identity, (d), (e) are proved symbolically (identities and certificates; the
Abel form for T <= 5 and by an induction step for every T); (b) and (c)'s bounds by
certificates for every n, E, k (the centring step for E = 4); all are checked EXACTLY on the
package (dyadic scores and steps, so float64 is exact) on streams of 300 batches.

Hypotheses (named equalities and slacks of the certificates). bounded: |q_{t,i}| <= M for the
centred prices q_t = p_t - mean(p_t) (Lemma 7(b) and the bound on the spread); steps:
w_t = 1/u_t non-decreasing; gradient: ||g_s||^2 <= n^2 k (1 - k/E) (Lemma 5(f)); spread:
p_max - p_j <= S for every j (S = the spread); mean: the mean of p is m.

Assumptions. Additive bias, c_bar = L (sum c = nk), unconstrained steps; Lemma 7(b) needs
k < E and u_t <= u (= u_1 for non-increasing steps).
Source. The dual-descent reading of Loss-Free Balancing (arXiv 2408.15664 Sec. 3; arXiv
2512.03915 frames ALF-LB as online dual descent, its theorem bodies are not reproduced here);
the telescoping balance identity and the bridge are standard for online primal-dual
(Mahdavi, Jin & Yang, JMLR 2012, Sec. 3); the statements and proofs here are derived for this
rule.

Proof. (a) p_{t+1} - p_t = -(u/L) g_t; sum over t. (b) p_1 = 0 and sum p_t = 0, so
p_1 - p_{T+1} = -q_{T+1} with |q_i| <= max p - mean p = (1/E) sum_j (max p - p_j)
<= (1 - 1/E) spread; then (L/u)(1 - 1/E)(w + uE/k) = L w/u + n - (L w/(uE) + n/E) since
L E/k = n. (c) sum_t g_t = L sum_t (q_t - q_{t+1}) w_t = L [q_1 w_1 - q_{T+1} w_T +
sum_{t=2}^T q_t (w_t - w_{t-1})] (Abel) and 2 M w_T - (that bracket) = (M - q_1) w_1 +
(M + q_{T+1}) w_T + sum_{t=2}^T (M - q_t)(w_t - w_{t-1}) >= 0 (and the same for -q).
(d) D_s(p_s) = reward_s + p_s.(c_s - L) (Lemma 2: routing maximises the Lagrangian). (e) with
p_{s+1} = p_s - (u/L) g_s, p_s.g_s = (L/(2u))(||p_s||^2 - ||p_{s+1}||^2) + (u/(2L))||g_s||^2;
telescope, and (u/(2L)) n^2 k (1 - k/E) = u n (E - k)/2; D_s(p_s) >= OPT_s.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _certify import Lemma, check, identity

from lfbtheory import dual_objective, route
from lfbtheory.online import schedules as S
from lfbtheory.online import updates as U

LEM = Lemma(__doc__)
# Symbols of the bounds (exported for tests/test_theory_balance.py, which lambdifies them).
L_, w_, u_, n_, E_, k_, T_, M_, uT_, u1_ = sp.symbols("L w u n E k T M u_T u_1", positive=True)
LEM.assume(L_, w_, u_, n_, E_, k_, T_, M_, uT_, u1_, meaning="sizes, score range, steps, bound")


def balance_bound() -> sp.Expr:
    """(b): max_i |C_i(T) - T L| <= L w/u + n (constant u, from p_1 = 0)."""
    return L_ * w_ / u_ + n_


def maxvio_global_bound() -> sp.Expr:
    """(b): MaxVio_global(T) <= (w/u + E/k)/T."""
    return (w_ / u_ + E_ / k_) / T_


def balance_bound_decreasing() -> sp.Expr:
    """(c): max_i |C_i(T) - T L| <= 2 L M / u_T, M = max |centred price|."""
    return 2 * L_ * M_ / uT_


def centred_price_bound() -> sp.Expr:
    """(b), (c): M <= (1 - 1/E)(w + u_1 E/k) (Lemma 7(b) with steps <= u_1)."""
    return (1 - 1 / E_) * (w_ + u1_ * E_ / k_)


def tradeoff_bound() -> sp.Expr:
    """(e): R_P(T) + R_D(T) <= u n (E - k) T / 2 (constant u, p_1 = 0)."""
    return u_ * n_ * (E_ - k_) * T_ / 2


def telescoping(n_experts: int = 3, horizon: int = 4) -> None:
    """(a) C(T) - T L = (L/u)(p_1 - p_{T+1}) for T <= horizon, and the induction step."""
    g = [sp.symbols(f"g{t}_0:{n_experts}", real=True) for t in range(horizon)]
    p = [sp.Matrix(sp.symbols(f"p1_0:{n_experts}", real=True))]
    for t in range(horizon):
        p.append(p[-1] - (u_ / L_) * sp.Matrix(g[t]))
        total = sum((sp.Matrix(g[s]) for s in range(t + 1)), sp.zeros(n_experts, 1))
        for i in range(n_experts):
            identity(total[i], (L_ / u_) * (p[0][i] - p[-1][i]), f"(a) T = {t + 1}, i = {i}")
    c_t, p_t, p_next, g_next = sp.symbols("C_T p_T1 p_T2 g_T1", real=True)
    # induction: C_T = (L/u)(p_1 - p_{T+1}) and p_{T+2} = p_{T+1} - (u/L) g_{T+1}
    p1 = sp.Symbol("p_1", real=True)
    identity(
        (L_ / u_) * (p1 - p_t) + g_next,
        (L_ / u_) * (p1 - (p_t - (u_ / L_) * g_next)),
        "(a) induction step",
    )
    del c_t, p_next


def centring_bound(n_experts: int = 4) -> None:
    """(b) max p - mean p <= (1 - 1/E) spread (the expert 0 holds the maximum, WLOG)."""
    spread = sp.Symbol("S", nonnegative=True)
    LEM.assume(spread, meaning="the spread max p - min p")
    p = sp.symbols(f"p0:{n_experts}", real=True)
    mean = sum(p) / n_experts
    slacks = []
    eqs = []
    for j in range(1, n_experts):
        sl = sp.Symbol(f"r{j}", nonnegative=True)
        LEM.assume(sl, meaning="r_j = S - (p_max - p_j) >= 0 (the spread bounds every gap)")
        slacks.append(sl)
        eqs.append(
            (
                sp.Rational(1, n_experts),
                LEM.hypothesis(f"spread [j={j}]", spread - (p[0] - p[j]) - sl),
            )
        )
    LEM.certify_nonneg(
        (1 - sp.Rational(1, n_experts)) * spread - (p[0] - mean),
        [sl / n_experts for sl in slacks],
        f"(b) max p - mean p <= (1 - 1/E) spread (E={n_experts})",
        equalities=eqs,
    )
    # and the symbolic bound chain: (L/u)(1 - 1/E)(w + uE/k) <= L w/u + n with n = L E/k
    lhs = (L_ / u_) * centred_price_bound().subs(u1_, u_)
    identity(
        (balance_bound() - lhs).subs(n_, L_ * E_ / k_),
        L_ * w_ / (u_ * E_) + L_ / k_,
        "(b) L w/u + n - (L/u)(1 - 1/E)(w + uE/k) = L w/(uE) + n/E",
    )
    LEM.certify_nonneg(
        (balance_bound() - lhs).subs(n_, L_ * E_ / k_),
        [L_ * w_ / (u_ * E_), L_ / k_],
        "(b) (L/u)(1 - 1/E)(w + uE/k) <= L w/u + n",
    )
    identity(
        (balance_bound() / (T_ * L_)).subs(n_, L_ * E_ / k_),
        maxvio_global_bound(),
        "(b) (L w/u + n)/(T L) = (w/u + E/k)/T",
    )


def abel(horizon: int = 5) -> None:
    """(c) Abel summation and 2 M w_T - sum (q_t - q_{t+1}) w_t >= 0 for T <= horizon."""
    for big_t in range(1, horizon + 1):
        q = sp.symbols(f"q1:{big_t + 2}", real=True)  # q_1 .. q_{T+1}
        w = sp.symbols(f"w1:{big_t + 1}", positive=True)  # w_1 .. w_T
        LEM.assume(*w, meaning="w_t = 1/u_t > 0")
        lhs = sum((q[t] - q[t + 1]) * w[t] for t in range(big_t))
        rhs = q[0] * w[0] - q[big_t] * w[big_t - 1]
        rhs += sum(q[t] * (w[t] - w[t - 1]) for t in range(1, big_t))
        identity(lhs, rhs, f"(c) Abel summation, T = {big_t}")
        for sign in (1, -1):
            # slacks: M - sign q_t >= 0 (bounded), w_t - w_{t-1} >= 0 (steps)
            lo = [
                LEM.slack(f"m{sign}_{big_t}_{t}", M_ - sign * q[t], by="bounded")
                for t in range(big_t + 1)
            ]
            dw = [
                LEM.slack(f"dw{sign}_{big_t}_{t}", w[t] - w[t - 1], by="steps")
                for t in range(1, big_t)
            ]
            hi_last = LEM.slack(f"mp{sign}_{big_t}", M_ + sign * q[big_t], by="bounded")
            terms = [lo[0] * w[0], hi_last * w[big_t - 1]]
            terms += [lo[t] * dw[t - 1] for t in range(1, big_t)]
            eqs = [(w[0], LEM.slack_of(f"m{sign}_{big_t}_0"))]
            eqs += [(w[big_t - 1], LEM.slack_of(f"mp{sign}_{big_t}"))]
            for t in range(1, big_t):
                # lo_t dw_t = (M - s q_t)(w_t - w_{t-1}): expand both slacks
                eqs += [(dw[t - 1], LEM.slack_of(f"m{sign}_{big_t}_{t}"))]
                eqs += [(M_ - sign * q[t], LEM.slack_of(f"dw{sign}_{big_t}_{t}"))]
            LEM.certify_nonneg(
                2 * M_ * w[big_t - 1] - sign * lhs,
                terms,
                f"(c) 2 M w_T - {sign} sum (q_t - q_(t+1)) w_t >= 0, T = {big_t}",
                equalities=eqs,
            )
    # induction step of the Abel form for every T: A_{T+1} - A_T equals the change of the RHS
    q_t1, q_t2 = sp.symbols("q_T1 q_T2", real=True)
    w_t, w_t1 = sp.symbols("w_T w_T1", positive=True)
    a_t, rest = sp.symbols("A_T Q_T", real=True)
    q_1w_1 = sp.Symbol("q1w1", real=True)
    rhs_t = q_1w_1 - q_t1 * w_t + rest
    rhs_t1 = q_1w_1 - q_t2 * w_t1 + rest + q_t1 * (w_t1 - w_t)
    identity(rhs_t1 - rhs_t, (q_t1 - q_t2) * w_t1, "(c) Abel induction step")
    del a_t
    identity(
        balance_bound_decreasing().subs({M_: centred_price_bound(), uT_: u_}).subs(u1_, u_),
        2 * L_ * (1 - 1 / E_) * (w_ + u_ * E_ / k_) / u_,
        "(c) with constant steps (c) is twice (b)'s first form",
    )


def bridge_and_tradeoff(n_experts: int = 3) -> None:
    """(d) R_D = -R_P + sum p.g; (e) the telescoped trade-off and its bound."""
    dvals, rewards, pg = sp.symbols("D r pg", real=True)
    opt_pool = sp.Symbol("OPT", real=True)
    # one batch: D = reward + p.g (Lemma 2), summed: sum D = sum reward + sum p.g
    identity((dvals - opt_pool), -(opt_pool - (dvals - pg)) + pg, "(d) R_D = -R_P + sum p.g")
    del rewards
    p = sp.Matrix(sp.symbols(f"p0:{n_experts}", real=True))
    g = sp.Matrix(sp.symbols(f"g0:{n_experts}", real=True))
    p_next = p - (u_ / L_) * g
    identity(
        p.dot(g),
        (L_ / (2 * u_)) * (p.dot(p) - p_next.dot(p_next)) + (u_ / (2 * L_)) * g.dot(g),
        "(e) one step: p.g = (L/2u)(|p|^2 - |p'|^2) + (u/2L)|g|^2",
    )
    identity(
        ((u_ / (2 * L_)) * n_**2 * k_ * (1 - k_ / E_)).subs(L_, n_ * k_ / E_),
        u_ * n_ * (E_ - k_) / 2,
        "(e) (u/2L) n^2 k (1 - k/E) = u n (E - k)/2 at L = nk/E",
    )
    # bound: with sum ||g||^2 = T G^2 - sigma (gradient) and ||p_{T+1}||^2 = P >= 0
    big_p = sp.Symbol("P", nonnegative=True)
    LEM.assume(big_p, meaning="||p_{T+1}||^2")
    sum_g2 = sp.Symbol("Sg", nonnegative=True)
    g2 = n_**2 * k_ * (1 - k_ / E_)
    sigma = LEM.slack("sigma_g", T_ * g2 - sum_g2, by="gradient")
    value = (u_ / (2 * L_)) * sum_g2 - (L_ / (2 * u_)) * big_p
    LEM.certify_nonneg(
        ((u_ / (2 * L_)) * T_ * g2 - value),
        [(u_ / (2 * L_)) * sigma, (L_ / (2 * u_)) * big_p],
        "(e) R_P + R_D <= (u/2L) T n^2 k (1 - k/E)",
        equalities=[(u_ / (2 * L_), LEM.slack_of("sigma_g"))],
    )
    identity(
        ((u_ / (2 * L_)) * T_ * g2).subs(L_, n_ * k_ / E_),
        tradeoff_bound(),
        "(e) (u/2L) T n^2 k (1 - k/E) = u n (E - k) T/2",
    )


def package_exact(rng: np.random.Generator, steps: int = 300) -> None:
    """(a)-(e) on the package with dyadic scores and steps (exact float64 arithmetic)."""
    n, e, k = 8, 4, 2
    cap = n * k // e  # L = 4
    for trial, step in enumerate(
        (S.constant(1 / 8), S.join([S.constant(1 / 8), S.constant(1 / 32)], [steps // 3]))
    ):
        rule = U.proportional(step)
        st = rule.init(e)
        biases, loads, rewards, duals = [], [], [], []
        lo, hi = np.inf, -np.inf
        for _ in range(steps):
            s = rng.integers(0, 16, size=(n, e)) / 16.0
            lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
            r = route(s, k, st.bias, normalize=False)
            biases.append(st.bias.copy())
            loads.append(r.loads)
            rewards.append(float(np.take_along_axis(s, r.experts, 1).sum()))
            duals.append(dual_objective(s, k=k, bias=st.bias))
            st = rule.update(r.loads, st)
        biases.append(st.bias.copy())
        b, c = np.array(biases), np.array(loads, dtype=np.float64)
        g = c - cap
        w = hi - lo
        dev = np.cumsum(g, axis=0)
        u1 = float(rule.step(0))
        check(np.all(np.abs(b.sum(axis=1)) == 0), "Lemma 3(c): sum p_t stays 0 exactly")
        mbound = float(centred_price_bound().subs({E_: e, k_: k, w_: w, u1_: u1}))
        check(np.max(np.abs(b)) <= mbound, "(b)/(c) M <= (1 - 1/E)(w + u_1 E/k)")
        if trial == 0:
            for t in range(steps):
                check(
                    np.array_equal(dev[t], (cap / u1) * (b[0] - b[t + 1])),
                    "(a) C(T) - T L == (L/u)(p_1 - p_{T+1}) exactly",
                )
            bb = float(balance_bound().subs({L_: cap, w_: w, u_: u1, n_: n}))
            check(np.max(np.abs(dev)) <= bb, "(b) |C_i(T) - T L| <= L w/u + n")
            pg = np.einsum("te,te->t", b[:-1], g)
            identity(
                sp.nsimplify(float(pg.sum())),
                sp.nsimplify(
                    float((u1 / (2 * cap)) * np.sum(g**2) - (cap / (2 * u1)) * np.sum(b[-1] ** 2))
                ),
                "(e) sum p.g = (u/2L) sum |g|^2 - (L/2u)|p_(T+1)|^2 (exact dyadics)",
            )
            check(
                pg.sum() <= float(tradeoff_bound().subs({u_: u1, n_: n, E_: e, k_: k, T_: steps})),
                "(e) sum p.g <= u n (E - k) T / 2",
            )
            check(
                np.max(np.abs(np.array(duals) - (np.array(rewards) + pg))) <= 1e-12,
                "(d) D_s(p_s) == reward_s + p_s.(c_s - L) (Lemma 2; float rounding only)",
            )
        else:
            u_t = np.array([rule.step(t) for t in range(steps)])
            check(np.all(np.diff(u_t) <= 0), "(c) the steps are non-increasing")
            big_m = float(np.max(np.abs(b)))
            for t in range(steps):
                bound = float(balance_bound_decreasing().subs({L_: cap, M_: big_m, uT_: u_t[t]}))
                check(np.max(np.abs(dev[t])) <= bound, "(c) |C_i(T) - T L| <= 2 L M / u_T")


def main() -> None:
    telescoping()
    centring_bound()
    abel()
    bridge_and_tradeoff()
    package_exact(np.random.default_rng(11))


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
