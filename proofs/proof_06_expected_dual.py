"""Lemma 6: the expected dual is strongly convex on the mean-zero subspace (Gumbel scores, k = 1).

Claim. Let k = 1 and scores s_ti = theta_i + beta G_ti with G_ti i.i.d. standard Gumbel, beta > 0,
n tokens, L = n/E. With a = theta + p and pi = softmax(a / beta):
(a) E max_i(a_i + beta G_i) = beta log sum_i exp(a_i/beta) + gamma beta (gamma = Euler's
    constant) and P(token picks i) = pi_i, so E[load_i(p)] = n pi_i;
(b) F(p) = E D(p) = n beta log sum_i exp(a_i/beta) + n gamma beta - L sum_i p_i, with gradient
    n pi - L 1 = E[load(p)] - L and Hessian H = (n/beta)(diag(pi) - pi pi^T);
(c) F(p + c 1) = F(p) and H 1 = 0: F is NOT strongly convex on R^E, only on 1-perp;
(d) for v in 1-perp: v^T H v >= (n/beta) pi_min ||v||^2, so on the region
    {p: max_i a_i - min_i a_i <= beta Delta}, F is mu-strongly convex on 1-perp with
        mu = n / (beta (1 + (E - 1) e^Delta));
(e) at the minimiser p* = -theta + c 1 (uniform pi, balanced expected loads) H restricted to
    1-perp is exactly (n/(beta E)) I: mu* = n/(beta E) is the best constant near p*, and
    F(p*) = n beta (log E + gamma) + L sum theta (for p* = -theta);
(f) a single batch's D is piecewise linear, hence not strongly convex for any mu > 0: an
    explicit batch and direction with D affine on a segment (checked on the package).
Symbolic for E = 3 (E = 2..4 for (d)); the general-E argument is the same algebra.

Hypotheses (the equalities the certificates use). mean-zero: sum_i v_i = 0 (v in 1-perp);
ratio: z_j = e^{(a_j - a_i)/beta} = e^Delta - y_j with y_j >= 0 (the spread is at most beta Delta).

Assumptions. Gumbel noise (the tractable family: the max of Gumbels is Gumbel); k = 1.
Along the proportional rule sum(p_t) is constant, so p_t - p* stays in 1-perp when p* is chosen
with the same sum; the spread max a - min a is convex in p, so on a segment [p_t, p*] it is at
most its value at the endpoints, which fixes Delta.
Source. McFadden's multinomial logit (the Gumbel-max trick); Hazan, Introduction to Online
Convex Optimization, Sec. 3.3 (strong convexity -> log regret). arXiv 2512.03915 is said to
use strong convexity of an expected ALF-LB objective; its theorem bodies are not available
here, so this lemma is derived independently and not attributed to it.

Proof. (a) P(max <= x) = prod_i exp(-e^{-(x - a_i)/beta}) = exp(-e^{-(x - A)/beta}) with
A = beta log sum e^{a_i/beta}, a Gumbel law with location A, whose mean is A + gamma beta
(E G = int -log(v) e^{-v} dv = -Gamma'(1) = gamma). The density of "i wins at x" is
e^{(a_i - A)/beta} times the Gumbel(A) density, so P(i wins) = pi_i. (b) differentiate.
(c) the shift adds n c - L E c = 0. (d) v^T (diag pi - pi pi^T) v = sum pi_i (v_i - m)^2 with
m = pi.v, and sum pi_i (v_i - m)^2 - pi_min ||v||^2 = sum (pi_i - pi_min)(v_i - m)^2 +
pi_min E m^2 - 2 pi_min m sum v >= 0 on sum v = 0; pi_i = 1 / sum_j e^{(a_j - a_i)/beta} >=
1/(1 + (E-1) e^Delta). (e) pi = 1/E and m = mean v = 0.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _certify import Lemma, check, identity

from lfbtheory import dual_objective

LEM = Lemma(__doc__)

beta, n_, Delta = sp.symbols("beta n Delta", positive=True)


def expected_dual(n_experts: int):
    """Sympy F(p) for scores theta + beta Gumbel, k = 1 (returned with its symbols)."""
    theta = sp.symbols(f"theta0:{n_experts}", real=True)
    p = sp.symbols(f"p0:{n_experts}", real=True)
    a = [th + pi for th, pi in zip(theta, p, strict=True)]
    lse = beta * sp.log(sum(sp.exp(ai / beta) for ai in a))
    cap = n_ / n_experts
    f = n_ * (lse + sp.EulerGamma * beta) - cap * sum(p)
    return f, theta, p


def gumbel_max(n_experts: int = 3) -> None:
    """(a) the law of the max, its mean, and the argmax probabilities."""
    x = sp.Symbol("x", real=True)
    a = sp.symbols(f"a0:{n_experts}", real=True)
    big_a = beta * sp.log(sum(sp.exp(ai / beta) for ai in a))
    identity(
        sum(sp.exp(-(x - ai) / beta) for ai in a),
        sp.exp(-(x - big_a) / beta),
        "(a) sum_i e^{-(x-a_i)/beta} = e^{-(x-A)/beta}: the max is Gumbel(A, beta)",
    )
    # mean of a standard Gumbel: substitute v = e^{-x}: x e^{-x} e^{-e^{-x}} dx -> -log(v) e^{-v} dv
    v, z = sp.Symbol("v", positive=True), sp.Symbol("z", positive=True)
    xs = sp.Symbol("xs", real=True)
    dens = xs * sp.exp(-xs) * sp.exp(-sp.exp(-xs))
    identity(
        sp.expand_log(dens.subs(xs, -sp.log(v)) / v, force=True),
        -sp.log(v) * sp.exp(-v),
        "(a) substitution v = e^{-x}",
    )
    # int log(v) v^{z-1} e^{-v} dv = Gamma'(z) (differentiate Gamma under the integral); at z = 1:
    identity(sp.diff(sp.gamma(z), z).subs(z, 1), -sp.EulerGamma, "(a) Gamma'(1) = -gamma")
    identity(sp.integrate(sp.exp(-v), (v, 0, sp.oo)), 1, "(a) the Gumbel density integrates to 1")
    # argmax: f_i(x) prod_{j != i} F_j(x) = e^{(a_i - A)/beta} * Gumbel(A, beta) density
    cdf = [sp.exp(-sp.exp(-(x - ai) / beta)) for ai in a]
    for i in range(n_experts):
        integrand = sp.diff(cdf[i], x) * sp.prod([cdf[j] for j in range(n_experts) if j != i])
        gumbel_a = sp.exp(-(x - big_a) / beta) / beta * sp.exp(-sp.exp(-(x - big_a) / beta))
        ratio = sp.simplify(sp.powsimp(sp.expand(integrand / gumbel_a), combine="exp"))
        soft = sp.exp(a[i] / beta) / sum(sp.exp(aj / beta) for aj in a)
        identity(ratio, soft, f"(a) P(argmax = {i}) = softmax(a/beta)_{i}")


def gradient_hessian(n_experts: int = 3) -> None:
    """(b), (c), (d) quadratic-form identity, (e) at the optimum."""
    f, theta, p = expected_dual(n_experts)
    a = [th + pi for th, pi in zip(theta, p, strict=True)]
    den = sum(sp.exp(ai / beta) for ai in a)
    pi = [sp.exp(ai / beta) / den for ai in a]
    cap = n_ / n_experts
    grad = [sp.diff(f, pj) for pj in p]
    for i in range(n_experts):
        identity(grad[i], n_ * pi[i] - cap, f"(b) dF/dp_{i} = n pi_{i} - L")
    hess = sp.Matrix(n_experts, n_experts, lambda i, j: sp.diff(grad[i], p[j]))
    target = (n_ / beta) * (sp.diag(*pi) - sp.Matrix(pi) * sp.Matrix(pi).T)
    for i in range(n_experts):
        for j in range(n_experts):
            identity(hess[i, j], target[i, j], f"(b) Hessian entry ({i},{j})")
    cshift = sp.Symbol("c", real=True)
    identity(f.subs({pj: pj + cshift for pj in p}, simultaneous=True), f, "(c) F(p + c1) = F(p)")
    ones = sp.Matrix([1] * n_experts)
    for i, hi in enumerate(target * ones):
        identity(hi, 0, f"(c) (H 1)_{i} = 0")
    # (d) v^T (diag pi - pi pi^T) v = sum pi_i (v_i - m)^2, m = pi.v, for generic pi with sum pi = 1
    q = sp.symbols(f"q0:{n_experts}", positive=True)
    qs = list(q[:-1]) + [1 - sum(q[:-1])]
    vv = sp.symbols(f"v0:{n_experts}", real=True)
    m = sum(qi * vi for qi, vi in zip(qs, vv, strict=True))
    quad = sum(qs[i] * vv[i] ** 2 for i in range(n_experts)) - m**2
    identity(quad, sum(qs[i] * (vv[i] - m) ** 2 for i in range(n_experts)), "(d) quadratic form")
    # (e) at a = 0 (p* = -theta): pi = 1/E, F(p*) closed form, Hessian on 1-perp = n/(beta E)
    at_opt = {pj: -th for pj, th in zip(p, theta, strict=True)}
    for i in range(n_experts):
        identity(pi[i].subs(at_opt), sp.Rational(1, n_experts), f"(e) pi_{i}(p*) = 1/E")
        identity(grad[i].subs(at_opt), 0, f"(e) grad F(p*)_{i} = 0")
    identity(
        f.subs(at_opt),
        n_ * beta * (sp.log(n_experts) + sp.EulerGamma) + cap * sum(theta),
        "(e) F(p*) = n beta (log E + gamma) + L sum theta",
    )
    v0 = list(vv[:-1]) + [-sum(vv[:-1])]  # v in 1-perp
    h_opt = target.subs(at_opt)
    vm = sp.Matrix(v0)
    identity(
        (vm.T * h_opt * vm)[0, 0],
        n_ / (beta * n_experts) * vm.dot(vm),
        "(e) H(p*) = n/(beta E) I on 1-perp",
    )


def strong_convexity_constant(n_experts: int) -> None:
    """(d) sum pi_i (v_i - m)^2 >= pi_min ||v||^2 on sum v = 0; pi_min >= 1/(1 + (E-1)e^Delta)."""
    pmin = sp.Symbol("pi_min", positive=True)
    d = sp.symbols(f"d0:{n_experts}", nonnegative=True)
    vv = sp.symbols(f"v0:{n_experts}", real=True)
    m = sp.Symbol("m", real=True)
    LEM.assume(pmin, meaning="pi_min > 0, the smallest softmax probability")
    LEM.assume(*d, meaning="d_i = pi_i - pi_min >= 0")
    lhs = sum((pmin + di) * (vi - m) ** 2 for di, vi in zip(d, vv, strict=True)) - pmin * sum(
        vi**2 for vi in vv
    )
    terms = [di * (vi - m) ** 2 for di, vi in zip(d, vv, strict=True)] + [pmin * n_experts * m**2]
    LEM.certify_nonneg(
        lhs,
        terms,
        f"(d) Var_pi(v) >= pi_min ||v||^2 (E={n_experts})",
        equalities=[(-2 * pmin * m, LEM.hypothesis(f"mean-zero [E={n_experts}]", sum(vv)))],
    )
    # pi_i = 1/(1 + sum_{j != i} z_j), z_j = e^{(a_j - a_i)/beta} <= e^Delta =: M, z_j = M - y_j
    big_m = sp.exp(Delta)
    y = sp.symbols(f"y0:{n_experts - 1}", nonnegative=True)
    zz = sp.symbols(f"z0:{n_experts - 1}", positive=True)
    LEM.assume(*y, meaning="y_j = e^Delta - z_j >= 0")
    LEM.assume(*zz, meaning="z_j = exp(.) > 0")
    gap = 1 / (1 + sum(zz)) - 1 / (1 + (n_experts - 1) * big_m)
    den = (1 + sum(zz)) * (1 + (n_experts - 1) * big_m)
    LEM.certify_nonneg(
        gap,
        [yj / den for yj in y],
        f"(d) pi_min >= 1/(1 + (E-1) e^Delta) (E={n_experts})",
        equalities=[
            (-1 / den, LEM.hypothesis(f"ratio [j={j}, E={n_experts}]", zj - big_m + yj))
            for j, (zj, yj) in enumerate(zip(zz, y, strict=True))
        ],
    )
    # mu(Delta) is positive and equals the optimum value n/(beta E) at Delta = 0
    LEM.assume(n_, beta, meaning="n tokens and the Gumbel scale beta are > 0")
    mu = strong_convexity_bound().subs(sp.Symbol("E", positive=True), n_experts)
    # the claimed mu(Delta) is exactly n/beta times the pi_min lower bound certified above
    identity(
        mu,
        n_ / beta / (1 + (n_experts - 1) * big_m),
        "(d) mu(Delta) = (n/beta) / (1 + (E-1) e^Delta)",
    )
    LEM.certify_pos(mu, [mu], "(d) mu > 0")
    identity(mu.subs(Delta, 0), n_ / (beta * n_experts), "(d) mu(0) = n/(beta E)")


def strong_convexity_bound() -> sp.Expr:
    """mu(Delta) = n / (beta (1 + (E - 1) e^Delta)) (exported for the numerical test)."""
    e_ = sp.Symbol("E", positive=True)
    return n_ / (beta * (1 + (e_ - 1) * sp.exp(Delta)))


def batch_dual_not_strongly_convex() -> None:
    """(f) D of one batch is affine on a segment: midpoint gap exactly 0 on the package."""
    s = np.array([[0.5, 0.25, 0.0], [0.0, 0.75, 0.25], [0.25, 0.0, 1.0]])
    p = np.zeros(3)
    v = np.array([1.0, -0.5, -0.5])  # in 1-perp
    eps = 1.0 / 16.0
    d0, d1, d2 = (dual_objective(s, k=1, bias=p + j * eps * v) for j in (0, 1, 2))
    check(d1 - (d0 + d2) / 2 == 0.0, "(f) D(p + eps v) == midpoint of D(p), D(p + 2 eps v)")
    # strong convexity with any mu > 0 would need the midpoint gap >= mu eps^2 ||v||^2 / 2 > 0
    check(float(eps**2 * v @ v) > 0, "(f) the required gap would be positive")


def main() -> None:
    gumbel_max(3)
    gradient_hessian(3)
    for e in (2, 3, 4):
        strong_convexity_constant(e)
    batch_dual_not_strongly_convex()


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
