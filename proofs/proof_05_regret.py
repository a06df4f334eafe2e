"""Lemma 5: regret of online dual subgradient descent: constant, c/sqrt(t) and 1/(mu t) steps.

Claim. Let f_1, ..., f_T be convex on R^E (here f_t = D_t, the dual of batch t), p_{t+1} = p_t -
eta_t g_t with g_t a subgradient of f_t at p_t, ||g_t|| <= G, any comparator p*, a_t =
||p_t - p*||^2 and R_T = sum_t f_t(p_t) - f_t(p*).
(a) one step: f_t(p_t) - f_t(p*) <= (a_t - a_{t+1})/(2 eta_t) + eta_t ||g_t||^2 / 2;
(b) constant eta: R_T <= a_1/(2 eta) + eta G^2 T/2; minimised by eta* = sqrt(a_1)/(G sqrt T), value
    sqrt(a_1) G sqrt(T); for eta fixed independently of T the bound grows linearly, and the
    regret really is linear: on the batch n = E = 2, k = 1, s = 0 the proportional rule with
    constant u has R_T = 2u floor(T/2) exactly (checked on the package);
(c) eta_t = c/sqrt(t) (non-increasing), with a_t <= Rmax^2 for t <= T+1:
    R_T <= Rmax^2 sqrt(T)/(2c) + (c G^2/2)(2 sqrt(T) - 1) <= (Rmax^2/(2c) + c G^2) sqrt(T),
    minimised by c = Rmax/(sqrt(2) G), value sqrt(2) Rmax G sqrt(T);
(d) if every f_t is mu-strongly convex (on a set containing the iterates and p*) and
    eta_t = 1/(mu t): R_T <= (G^2/(2 mu)) sum_t 1/t <= (G^2/(2 mu))(1 + ln T);
(e) sum_{t<=T} 1/t <= 1 + ln T and sum_{t<=T} 1/sqrt(t) <= 2 sqrt(T) - 1 for every T >= 1;
(f) G: for the dual of a batch, g = load - L with 0 <= load_i <= n, sum load = nk, and
    ||load - L||^2 <= n^2 k (1 - k/E), with equality when k experts take every token; for the
    proportional rule (a step u on D/L, i.e. eta = u/L on D) the normalised subgradient g/L has
    ||g/L||^2 <= E (E - k)/k.
All steps symbolic; the sums (c), (d), (e) are proved for every T by induction (base case and
induction step both checked symbolically).

Assumptions. Convex f_t (Lemma 1/2: D_t is convex with subgradient load - L); unconstrained
steps (equality capacity, p in R^E); in (c) the iterates stay within Rmax of p* (measured on the
trajectory in the numerical test; for the proportional rule Lemma 7(b) bounds the bias spread,
hence ||p_t - p*|| on the mean-zero subspace); in (d) strong convexity, which holds for the
EXPECTED dual only (Lemma 6), so (d) bounds the expected regret with stochastic subgradients
(E||g_t||^2 <= G^2). The lemma does NOT apply to the sign rule: by Lemma 3 it is a per-expert
step u/|g_i|, so -sign(g) is not a subgradient direction of D; Lemma 12 treats it.

Hypotheses (named equalities and slacks of the certificates). radius: a_t <= Rmax^2 for
t <= T+1; sqrt-sum: sum_{t<=T} 1/sqrt t <= 2 sqrt T - 1 (proved in (e)); harmonic:
sum_{t<=T} 1/t <= 1 + ln T (proved in (e)); unit: x = T + y in [T, T+1] with y + z = 1;
cap: w_i = n - c_i >= 0 (an expert takes each token at most once); total: sum_i c_i = nk.
Source. Zinkevich, ICML 2003 (Thm 1); Hazan, Introduction to Online Convex Optimization,
Thm 3.1 and 3.3; arXiv 2512.03915 states logarithmic expected regret for ALF-LB (its theorem
bodies are not reproduced or checked here; (d) is our statement of the standard result).

Proof. (a) ||p_t - eta g - p*||^2 = a_t - 2 eta g.(p_t - p*) + eta^2 ||g||^2 and
f_t(p_t) - f_t(p*) <= g.(p_t - p*). (b) telescope. (c) with w_t = 1/eta_t non-decreasing,
H_T = Rmax^2 w_T/2 - a_{T+1} w_T/2 - sum_{t<=T} (a_t - a_{t+1}) w_t/2 satisfies H_1 =
(Rmax^2 - a_1) w_1/2 >= 0 and H_{T+1} = H_T + (Rmax^2 - a_{T+1})(w_{T+1} - w_T)/2 >= H_T.
(d) strong convexity adds -mu a_t/2 to (a); with w_t = mu t the sum telescopes exactly to
-mu T a_{T+1}/2 <= 0. (e) 1 + ln T - H_T grows at each step by ln(T+1) - ln T - 1/(T+1) =
int_T^{T+1} (1/x - 1/(T+1)) dx >= 0; 2 sqrt T - 1 - sum 1/sqrt t grows by
2(b - a) - 1/b = 1/(b (a + b)^2) >= 0 with a = sqrt T, b = sqrt(T+1). (f) sum (c_i - L)^2 =
sum c_i^2 - n^2 k^2/E and n^2 k - sum c_i^2 = sum c_i (n - c_i) >= 0 on sum c = nk.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _certify import Lemma, check, identity

from lfbtheory import dual_objective, route
from lfbtheory.online import schedules as S
from lfbtheory.online import updates as U

# Symbols of the bounds (exported for tests/test_proof_bounds.py, which lambdifies them).
R, G, T, c, mu, eta = sp.symbols("R G T c mu eta", positive=True)
n_, k_, E_ = sp.symbols("n k E", positive=True)
LEM = Lemma(__doc__)
LEM.assume(R, G, T, c, mu, eta, meaning="radius, gradient bound, horizon, step constants > 0")
LEM.assume(n_, k_, E_, meaning="tokens, experts per token, experts")


def bound_constant() -> sp.Expr:
    """(b): R^2/(2 eta) + eta G^2 T / 2 (R = ||p_1 - p*||)."""
    return R**2 / (2 * eta) + eta * G**2 * T / 2


def bound_inverse_sqrt() -> sp.Expr:
    """(c): Rmax^2 sqrt(T)/(2c) + (c G^2/2)(2 sqrt(T) - 1) for eta_t = c/sqrt(t)."""
    return R**2 * sp.sqrt(T) / (2 * c) + c * G**2 * (2 * sp.sqrt(T) - 1) / 2


def bound_strongly_convex() -> sp.Expr:
    """(d): (G^2/(2 mu))(1 + ln T) for eta_t = 1/(mu t)."""
    return G**2 / (2 * mu) * (1 + sp.log(T))


def gradient_norm_sq_bound() -> sp.Expr:
    """(f): max ||load - L||^2 = n^2 k (1 - k/E)."""
    return n_**2 * k_ * (1 - k_ / E_)


def one_step(n_experts: int = 3) -> None:
    """(a) the expansion of the squared distance after one step."""
    p = sp.Matrix(sp.symbols(f"p0:{n_experts}", real=True))
    ps = sp.Matrix(sp.symbols(f"q0:{n_experts}", real=True))
    g = sp.Matrix(sp.symbols(f"g0:{n_experts}", real=True))
    a_t = (p - ps).dot(p - ps)
    a_next = (p - eta * g - ps).dot(p - eta * g - ps)
    lin = g.dot(p - ps)
    identity(lin, (a_t - a_next) / (2 * eta) + eta * g.dot(g) / 2, "(a) g.(p - p*) expansion")
    # f(p) - f(p*) <= g.(p - p*) is the subgradient inequality (Lemma 2(b)); with strong
    # convexity f(p) - f(p*) <= g.(p - p*) - mu/2 a_t, which gives (d) below.


def constant_step() -> None:
    a1 = sp.Symbol("a1", nonnegative=True)
    aT1 = sp.Symbol("a_T1", nonnegative=True)
    LEM.assume(a1, aT1, meaning="squared distances a_t = ||p_t - p*||^2")
    at = sp.symbols("a1:7", nonnegative=True)
    # telescoping: sum_{t<=T}(a_t - a_{t+1}) = a_1 - a_{T+1}, induction step
    s_t = sp.Symbol("S_T", real=True)
    a_next, a_next2 = sp.symbols("a_T1 a_T2", real=True)
    identity((a1 - a_next) + (a_next - a_next2), a1 - a_next2, "(b) telescoping induction step")
    identity(sum(at[i] - at[i + 1] for i in range(5)), at[0] - at[5], "(b) telescoping, T = 5")
    del s_t
    LEM.certify_nonneg(
        a1 / (2 * eta) - (a1 - aT1) / (2 * eta),
        [aT1 / (2 * eta)],
        "(b) (a_1 - a_{T+1})/(2 eta) <= a_1/(2 eta)",
    )
    # optimal eta and its value (AM-GM certificate); R = sqrt(a_1)
    LEM.certify_nonneg(
        bound_constant() - R * G * sp.sqrt(T),
        [(R - eta * G * sp.sqrt(T)) ** 2 / (2 * eta)],
        "(b) bound >= R G sqrt T",
    )
    eta_star = R / (G * sp.sqrt(T))
    identity(bound_constant().subs(eta, eta_star), R * G * sp.sqrt(T), "(b) value at eta*")
    # fixed eta: the bound is linear in T with slope eta G^2 / 2
    identity(sp.diff(bound_constant(), T, 2), 0, "(b) bound affine in T")
    identity(sp.diff(bound_constant(), T), eta * G**2 / 2, "(b) slope eta G^2/2")


def linear_regret_instance(u: float = 0.125, horizon: int = 41) -> None:
    """(b) proportional rule, constant u, s = 0 (n = E = 2, k = 1): R_T = 2u floor(T/2)."""
    s = np.zeros((2, 2))
    rule = U.proportional(S.constant(u))
    st = rule.init(2, None)
    total = 0.0
    for t in range(horizon):
        total += dual_objective(s, k=1, bias=st.bias)
        check(total == 2 * u * ((t + 1) // 2), f"R_{t + 1} == 2u floor((t+1)/2)")
        st = rule.update(route(s, 1, st.bias, normalize=False).loads, st)
    # hindsight minimum: D_t >= LP value 0 for every p (weak duality) and D(0) = 0
    check(dual_objective(s, k=1, bias=np.zeros(2)) == 0.0, "min_p sum_t D_t = 0")


def nonincreasing_steps() -> None:
    """(c) induction for H_T >= 0, and the c/sqrt(t) bound."""
    w1, wT, dw, h_t = sp.symbols("w1 w_T delta H_T", nonnegative=True)
    a1 = sp.Symbol("a1", nonnegative=True)
    aT1, aT2 = sp.symbols("a_T1 a_T2", real=True)
    LEM.assume(
        w1, wT, dw, h_t, meaning="w_t = 1/eta_t > 0 non-decreasing (dw >= 0); H_T >= 0 by induction"
    )
    rsq = R**2
    # base: H_1 = R^2 w1/2 - a2 w1/2 - (a1 - a2) w1/2 = (R^2 - a1) w1 / 2
    a2 = sp.Symbol("a2", real=True)
    h1 = rsq * w1 / 2 - a2 * w1 / 2 - (a1 - a2) * w1 / 2
    alpha1 = LEM.slack("alpha1", rsq - a1, by="radius")
    LEM.certify_nonneg(
        h1, [alpha1 * w1 / 2], "(c) base H_1 >= 0", equalities=[(w1 / 2, LEM.slack_of("alpha1"))]
    )
    # step: H_{T+1} - H_T where H_T = R^2 w_T/2 - a_{T+1} w_T/2 - F_T and
    # F_{T+1} = F_T + (a_{T+1} - a_{T+2}) w_{T+1}/2
    f_t = sp.Symbol("F_T", real=True)
    wT1 = wT + dw
    h_t_expr = rsq * wT / 2 - aT1 * wT / 2 - f_t
    h_t1_expr = rsq * wT1 / 2 - aT2 * wT1 / 2 - (f_t + (aT1 - aT2) * wT1 / 2)
    identity(h_t1_expr - h_t_expr, (rsq - aT1) * dw / 2, "(c) H_{T+1} - H_T = (R^2 - a_{T+1}) dw/2")
    # with H_T >= 0 (induction hypothesis) and a_{T+1} = R^2 - alpha, alpha >= 0:
    rsq_minus_a = LEM.slack("alpha", rsq - aT1, by="radius")
    LEM.certify_nonneg(
        h_t + (rsq - aT1) * dw / 2,
        [h_t, rsq_minus_a * dw / 2],
        "(c) H_{T+1} >= 0",
        equalities=[(dw / 2, LEM.slack_of("alpha"))],
    )
    # hence sum_t (a_t - a_{t+1})/(2 eta_t) <= R^2 / (2 eta_T); with eta_t = c/sqrt t and (e):
    sum_sqrt = sp.Symbol("Sigma", positive=True)  # sum_{t<=T} 1/sqrt(t) <= 2 sqrt T - 1 by (e)
    slack = LEM.slack("sigma", 2 * sp.sqrt(T) - 1 - sum_sqrt, by="sqrt-sum")
    regret_bd = R**2 * sp.sqrt(T) / (2 * c) + c * G**2 / 2 * sum_sqrt
    LEM.certify_nonneg(
        bound_inverse_sqrt() - regret_bd,
        [c * G**2 * slack / 2],
        "(c) insert sum 1/sqrt t <= 2 sqrt T - 1",
        equalities=[(c * G**2 / 2, LEM.slack_of("sigma"))],
    )
    simple = (R**2 / (2 * c) + c * G**2) * sp.sqrt(T)
    LEM.certify_nonneg(
        simple - bound_inverse_sqrt(), [c * G**2 / 2], "(c) <= (R^2/(2c) + c G^2) sqrt T"
    )
    LEM.certify_nonneg(
        simple - sp.sqrt(2) * R * G * sp.sqrt(T),
        [(R - sp.sqrt(2) * c * G) ** 2 / (2 * c) * sp.sqrt(T)],
        "(c) >= sqrt2 R G sqrt T",
    )
    identity(simple.subs(c, R / (sp.sqrt(2) * G)), sp.sqrt(2) * R * G * sp.sqrt(T), "(c) optimal c")


def strongly_convex_steps() -> None:
    """(d) with eta_t = 1/(mu t): sum_t [(a_t - a_{t+1}) mu t/2 - mu a_t/2] = -mu T a_{T+1}/2."""
    a1, a2 = sp.symbols("a1 a2", real=True)
    identity((a1 - a2) * mu / 2 - mu * a1 / 2, -mu * 1 * a2 / 2, "(d) base T = 1")
    tt = sp.Symbol("T", positive=True, integer=True)
    aT1, aT2 = sp.symbols("a_T1 a_T2", real=True)
    k_t = -mu * tt * aT1 / 2
    identity(
        k_t + (aT1 - aT2) * mu * (tt + 1) / 2 - mu * aT1 / 2,
        -mu * (tt + 1) * aT2 / 2,
        "(d) induction step",
    )
    a_last = sp.Symbol("a_last", nonnegative=True)
    LEM.assume(a_last, tt, meaning="a squared distance; the horizon T >= 1")
    LEM.certify_nonneg(0 - (-mu * tt * a_last / 2), [mu * tt * a_last / 2], "(d) distance sum <= 0")
    # remaining sum: sum eta_t G^2/2 = (G^2/(2 mu)) sum 1/t <= (G^2/(2 mu))(1 + ln T) by (e)
    harm = sp.Symbol("H", positive=True)
    slack = LEM.slack("sigma_h", 1 + sp.log(T) - harm, by="harmonic")
    LEM.certify_nonneg(
        bound_strongly_convex() - G**2 / (2 * mu) * harm,
        [G**2 / (2 * mu) * slack],
        "(d) insert sum 1/t <= 1 + ln T",
        equalities=[(G**2 / (2 * mu), LEM.slack_of("sigma_h"))],
    )


def summation_bounds() -> None:
    """(e) both sums, by induction on T with a certified increment."""
    tt = sp.Symbol("T", positive=True)
    x = sp.Symbol("x", positive=True)
    y, z = sp.symbols("y z", nonnegative=True)  # x = T + y, y in [0, 1], z = 1 - y
    LEM.assume(tt, y, z, meaning="T > 0 and the position x = T + y, y + z = 1, in [T, T+1]")
    inc = sp.log(tt + 1) - sp.log(tt) - 1 / (tt + 1)
    identity(
        sp.integrate(1 / x - 1 / (tt + 1), (x, tt, tt + 1)), inc, "(e) increment as an integral"
    )
    integrand = 1 / (tt + y) - 1 / (tt + 1)
    LEM.certify_nonneg(
        integrand,
        [z / ((tt + y) * (tt + 1))],
        "(e) 1/x - 1/(T+1) >= 0 on [T, T+1]",
        equalities=[(-1 / ((tt + y) * (tt + 1)), LEM.hypothesis("unit", y + z - 1))],
    )
    # induction: sigma_T = 1 + ln T - H_T; sigma_1 = 0; sigma_{T+1} = sigma_T + inc, inc >= 0
    identity(1 + sp.log(1) - 1, 0, "(e) base: sum_{t<=1} 1/t = 1 + ln 1")
    sig, inc_s = sp.symbols("sigma_T I_T", nonnegative=True)
    LEM.assume(sig, inc_s, meaning="sigma_T >= 0 (induction hypothesis), the certified increment")
    harm_t = sp.Symbol("H_T", real=True)
    identity(
        (1 + sp.log(tt + 1) - (harm_t + 1 / (tt + 1))) - (1 + sp.log(tt) - harm_t),
        inc,
        "(e) sigma_{T+1} - sigma_T = increment",
    )
    LEM.certify_nonneg(sig + inc_s, [sig, inc_s], "(e) sigma_{T+1} >= 0")
    # sqrt sum: increment 2 sqrt(T+1) - 2 sqrt(T) - 1/sqrt(T+1) = 1/(b (a+b)^2)
    a = sp.Symbol("a", positive=True)  # a = sqrt(T)
    LEM.assume(a, meaning="a = sqrt(T) > 0")
    b = sp.sqrt(a**2 + 1)  # b = sqrt(T + 1)
    LEM.certify_nonneg(2 * b - 2 * a - 1 / b, [1 / (b * (a + b) ** 2)], "(e) sqrt increment >= 0")
    identity(2 * sp.sqrt(1) - 1 - 1 / sp.sqrt(1), 0, "(e) base: sum_{t<=1} 1/sqrt t = 2 sqrt 1 - 1")
    root_t = sp.Symbol("Q_T", real=True)
    identity(
        (2 * sp.sqrt(tt + 1) - 1 - (root_t + 1 / sp.sqrt(tt + 1))) - (2 * sp.sqrt(tt) - 1 - root_t),
        2 * sp.sqrt(tt + 1) - 2 * sp.sqrt(tt) - 1 / sp.sqrt(tt + 1),
        "(e) sqrt slack increment",
    )
    # exact check of both sums for T <= 60 (rationals vs. the bounds)
    h, q = sp.Integer(0), sp.Integer(0)
    for t_ in range(1, 61):
        h += sp.Rational(1, t_)
        q += 1 / sp.sqrt(t_)
        check(
            float(1 + sp.log(t_) - h) >= 0 and float(2 * sp.sqrt(t_) - 1 - q) >= -1e-12,
            f"(e) T = {t_}",
        )


def gradient_bound(n_experts: int = 4) -> None:
    """(f) ||c - L||^2 <= n^2 k (1 - k/E) on {0 <= c_i <= n, sum c = nk}; tight; normalised."""
    n, k = sp.symbols("n k", positive=True)
    cs = sp.symbols(f"c0:{n_experts}", nonnegative=True)
    ws = sp.symbols(f"w0:{n_experts}", nonnegative=True)  # w_i = n - c_i >= 0
    LEM.assume(n, k, *cs, meaning="tokens, experts per token, loads (counts)")
    LEM.assume(*ws, meaning="w_i = n - c_i >= 0")
    cap = n * k / n_experts
    gap = gradient_norm_sq_bound().subs({n_: n, k_: k, E_: n_experts}) - sum(
        (ci - cap) ** 2 for ci in cs
    )
    eqs = [
        (-ci, LEM.hypothesis(f"cap [i={i}, E={n_experts}]", ci + wi - n))
        for i, (ci, wi) in enumerate(zip(cs, ws, strict=True))
    ]
    eqs.append(
        (2 * n * k / n_experts - n, LEM.hypothesis(f"total [E={n_experts}]", sum(cs) - n * k))
    )
    LEM.certify_nonneg(
        gap,
        [ci * wi for ci, wi in zip(cs, ws, strict=True)],
        f"(f) ||load - L||^2 <= n^2 k (1 - k/E), E = {n_experts}",
        equalities=eqs,
    )
    for kk in range(1, n_experts + 1):
        tight = [n] * kk + [0] * (n_experts - kk)
        identity(
            sum((ci - n * kk / n_experts) ** 2 for ci in tight),
            gradient_norm_sq_bound().subs({n_: n, k_: kk, E_: n_experts}),
            f"(f) tight, k = {kk}",
        )
    identity(
        gradient_norm_sq_bound() / (n_ * k_ / E_) ** 2, E_ * (E_ - k_) / k_, "(f) normalised by L"
    )


def main() -> None:
    one_step()
    constant_step()
    linear_regret_instance()
    nonincreasing_steps()
    strongly_convex_steps()
    summation_bounds()
    for e in (3, 4):
        gradient_bound(e)


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
