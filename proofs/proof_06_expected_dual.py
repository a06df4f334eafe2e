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
(a)-(c), (e) are identities for E = 3; (d) is a chain for every E (sums over experts by
coordinates); (f) is checked on the package.

Hypotheses (named in the chains). simplex: sum_i pi_i = 1; mean-zero: sum_i v_i = 0 (v in
1-perp); ratio: z_j = e^{(a_j - a_i)/beta} <= e^Delta for the E - 1 experts j != i (the spread
of a = theta + p is at most beta Delta); argmin: pi_min = 1/(1 + sum_{j != i} z_j) for the
expert i of least probability; above-min: pi_i >= pi_min for every i; experts: E >= 2.

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
from _certify import Lemma, assumed

from lfbtheory import dual_objective

beta, n_, Delta = sp.symbols("beta n Delta", positive=True)
E_ = sp.Symbol("E", positive=True)


def _identity(lem: Lemma, lhs, rhs, label: str) -> None:
    """An identity stated as a theorem (the check is the kernel's identity rule)."""
    f = lem.identity(label, lhs, rhs)
    lem.theorem(label, f, lhs, "==", rhs, text="an identity of explicit E = 3 expressions")


def expected_dual(n_experts: int):
    """Sympy F(p) for scores theta + beta Gumbel, k = 1 (returned with its symbols)."""
    theta = sp.symbols(f"theta0:{n_experts}", real=True)
    p = sp.symbols(f"p0:{n_experts}", real=True)
    a = [th + pi for th, pi in zip(theta, p, strict=True)]
    lse = beta * sp.log(sum(sp.exp(ai / beta) for ai in a))
    cap = n_ / n_experts
    f = n_ * (lse + sp.EulerGamma * beta) - cap * sum(p)
    return f, theta, p


def gumbel_max(lem: Lemma, n_experts: int = 3) -> None:
    """(a) the law of the max, its mean, and the argmax probabilities."""
    x = sp.Symbol("x", real=True)
    a = sp.symbols(f"a0:{n_experts}", real=True)
    big_a = beta * sp.log(sum(sp.exp(ai / beta) for ai in a))
    _identity(
        lem,
        sum(sp.exp(-(x - ai) / beta) for ai in a),
        sp.exp(-(x - big_a) / beta),
        "(a) sum_i e^{-(x-a_i)/beta} = e^{-(x-A)/beta}: the max is Gumbel(A, beta)",
    )
    # mean of a standard Gumbel: substitute v = e^{-x}: x e^{-x} e^{-e^{-x}} dx -> -log(v) e^{-v} dv
    v, z = sp.Symbol("v", positive=True), sp.Symbol("z", positive=True)
    xs = sp.Symbol("xs", real=True)
    dens = xs * sp.exp(-xs) * sp.exp(-sp.exp(-xs))
    _identity(
        lem,
        sp.expand_log(dens.subs(xs, -sp.log(v)) / v, force=True),
        -sp.log(v) * sp.exp(-v),
        "(a) substitution v = e^{-x}",
    )
    # int log(v) v^{z-1} e^{-v} dv = Gamma'(z) (differentiate Gamma under the integral); at z = 1:
    _identity(lem, sp.diff(sp.gamma(z), z).subs(z, 1), -sp.EulerGamma, "(a) Gamma'(1) = -gamma")
    _identity(
        lem, sp.integrate(sp.exp(-v), (v, 0, sp.oo)), 1, "(a) the Gumbel density integrates to 1"
    )
    # argmax: f_i(x) prod_{j != i} F_j(x) = e^{(a_i - A)/beta} * Gumbel(A, beta) density
    cdf = [sp.exp(-sp.exp(-(x - ai) / beta)) for ai in a]
    for i in range(n_experts):
        integrand = sp.diff(cdf[i], x) * sp.prod([cdf[j] for j in range(n_experts) if j != i])
        gumbel_a = sp.exp(-(x - big_a) / beta) / beta * sp.exp(-sp.exp(-(x - big_a) / beta))
        ratio = sp.simplify(sp.powsimp(sp.expand(integrand / gumbel_a), combine="exp"))
        soft = sp.exp(a[i] / beta) / sum(sp.exp(aj / beta) for aj in a)
        _identity(lem, ratio, soft, f"(a) P(argmax = {i}) = softmax(a/beta)_{i}")


def gradient_hessian(lem: Lemma, n_experts: int = 3) -> None:
    """(b), (c), (d) quadratic-form identity, (e) at the optimum."""
    f, theta, p = expected_dual(n_experts)
    a = [th + pi for th, pi in zip(theta, p, strict=True)]
    den = sum(sp.exp(ai / beta) for ai in a)
    pi = [sp.exp(ai / beta) / den for ai in a]
    cap = n_ / n_experts
    grad = [sp.diff(f, pj) for pj in p]
    for i in range(n_experts):
        _identity(lem, grad[i], n_ * pi[i] - cap, f"(b) dF/dp_{i} = n pi_{i} - L")
    hess = sp.Matrix(n_experts, n_experts, lambda i, j: sp.diff(grad[i], p[j]))
    target = (n_ / beta) * (sp.diag(*pi) - sp.Matrix(pi) * sp.Matrix(pi).T)
    for i in range(n_experts):
        for j in range(n_experts):
            _identity(lem, hess[i, j], target[i, j], f"(b) Hessian entry ({i},{j})")
    cshift = sp.Symbol("c", real=True)
    _identity(
        lem, f.subs({pj: pj + cshift for pj in p}, simultaneous=True), f, "(c) F(p + c1) = F(p)"
    )
    ones = sp.Matrix([1] * n_experts)
    for i, hi in enumerate(target * ones):
        _identity(lem, hi, 0, f"(c) (H 1)_{i} = 0")
    # (d) v^T (diag pi - pi pi^T) v = sum pi_i (v_i - m)^2, m = pi.v, for generic pi with sum pi = 1
    q = sp.symbols(f"q0:{n_experts}", positive=True)
    qs = list(q[:-1]) + [1 - sum(q[:-1])]
    vv = sp.symbols(f"v0:{n_experts}", real=True)
    m = sum(qi * vi for qi, vi in zip(qs, vv, strict=True))
    quad = sum(qs[i] * vv[i] ** 2 for i in range(n_experts)) - m**2
    _identity(
        lem, quad, sum(qs[i] * (vv[i] - m) ** 2 for i in range(n_experts)), "(d) quadratic form"
    )
    # (e) at a = 0 (p* = -theta): pi = 1/E, F(p*) closed form, Hessian on 1-perp = n/(beta E)
    at_opt = {pj: -th for pj, th in zip(p, theta, strict=True)}
    for i in range(n_experts):
        _identity(lem, pi[i].subs(at_opt), sp.Rational(1, n_experts), f"(e) pi_{i}(p*) = 1/E")
        _identity(lem, grad[i].subs(at_opt), 0, f"(e) grad F(p*)_{i} = 0")
    _identity(
        lem,
        f.subs(at_opt),
        n_ * beta * (sp.log(n_experts) + sp.EulerGamma) + cap * sum(theta),
        "(e) F(p*) = n beta (log E + gamma) + L sum theta",
    )
    v0 = list(vv[:-1]) + [-sum(vv[:-1])]  # v in 1-perp
    h_opt = target.subs(at_opt)
    vm = sp.Matrix(v0)
    _identity(
        lem,
        (vm.T * h_opt * vm)[0, 0],
        n_ / (beta * n_experts) * vm.dot(vm),
        "(e) H(p*) = n/(beta E) I on 1-perp",
    )


def strong_convexity_bound() -> sp.Expr:
    """mu(Delta) = n / (beta (1 + (E - 1) e^Delta)) (exported for the numerical test)."""
    return n_ / (beta * (1 + (E_ - 1) * sp.exp(Delta)))


def strong_convexity_chain(lem: Lemma) -> None:
    """(d) for every E: v^T H v = (n/beta) sum pi_i (v_i - m)^2 >= mu(Delta) ||v||^2 on 1-perp."""
    lem.assume(n_, beta, Delta, E_, meaning="n tokens, Gumbel scale, spread bound, E experts")
    pi = lem.coordinate("pi", "pi_i = softmax((theta + p)/beta)_i > 0", "pos", indexed=False)
    v = lem.coordinate("v", "v_i, a direction", indexed=False)
    one, m, vv, quad, var, dvar = sp.symbols("Pi_sum m VV Q Var DV", real=True)
    pmin = lem.var("pi_min", "the smallest probability pi_min > 0", positive=True)
    lem.sum_of(one, pi)
    lem.sum_of(m, pi * v)
    lem.sum_of(vv, v**2)
    lem.sum_of(quad, pi * v**2)
    lem.sum_of(var, pi * (v - m) ** 2)
    lem.sum_of(dvar, (pi - pmin) * (v - m) ** 2)
    vsum = sp.Symbol("V1", real=True)
    lem.sum_of(vsum, v)
    lem.hypothesis("simplex", one, "==", 1, status=assumed("softmax probabilities sum to 1"))
    lem.hypothesis("mean-zero", vsum, "==", 0, status=assumed("v in 1-perp"))
    lem.hypothesis("above-min", pmin, "<=", pi, status=assumed("pi_min is the least probability"))
    # v^T (diag pi - pi pi^T) v = sum pi v^2 - m^2 = sum pi (v - m)^2 (Hessian (b) times beta/n)
    lem.identity("(d) one coordinate", pi * (v - m) ** 2, pi * v**2 - 2 * m * pi * v + m**2 * pi)
    lem.summed(
        "(d) summed",
        "(d) one coordinate",
        {pi * (v - m) ** 2: var, pi * v**2: quad, pi * v: m, pi: one},
        E_,
    )
    form = lem.identity(
        "(d) Hessian form, every E",
        quad - m**2,
        var,
        using=[(-1, "(d) summed"), (-(m**2), "simplex")],
    )
    lem.theorem("(d) Hessian form, every E", form, quad - m**2, "==", var)
    # sum pi (v - m)^2 >= pi_min ||v||^2 on sum v = 0
    lem.certify(
        "(d) (pi - pi_min)(v - m)^2 >= 0",
        0,
        "<=",
        (pi - pmin) * (v - m) ** 2,
        using=[((v - m) ** 2, "above-min")],
    )
    lem.summed(
        "(d) DV >= 0", "(d) (pi - pi_min)(v - m)^2 >= 0", {(pi - pmin) * (v - m) ** 2: dvar}, E_
    )
    lem.identity(
        "(d) split, one coordinate",
        pi * (v - m) ** 2,
        (pi - pmin) * (v - m) ** 2 + pmin * v**2 - 2 * pmin * m * v + pmin * m**2,
    )
    lem.summed(
        "(d) split",
        "(d) split, one coordinate",
        {pi * (v - m) ** 2: var, (pi - pmin) * (v - m) ** 2: dvar, v**2: vv, v: vsum},
        E_,
    )
    lem.certify(
        "(d) Var_pi(v) >= pi_min ||v||^2",
        pmin * vv,
        "<=",
        var,
        using=[(-1, "(d) split"), (1, "(d) DV >= 0"), (2 * pmin * m, "mean-zero")],
        terms=[pmin * E_ * m**2],
    )
    # pi_min = 1/(1 + Z) with Z = sum_{j != i} z_j <= (E - 1) e^Delta
    others = sp.Symbol("J", real=True)
    lem.define("others", others, E_ - 1)
    lem.hypothesis("experts", 2, "<=", E_, status=assumed("at least two experts"))
    lem.certify("(d) J >= 1", 1, "<=", others, using=[(1, "experts")], subs=["others"])
    lem.certify("(d) J > 0", 0, "<", others, using=[(1, "(d) J >= 1")], terms=[sp.Integer(1)])
    lem.nonneg(others, "(d) J > 0")
    lem.coordinate_set("others", others)
    z = lem.coordinate(
        "z", "z_j = exp((a_j - a_i)/beta) > 0, j != i", "pos", indexed=False, over="others"
    )
    big_z = sp.Symbol("Z", real=True)
    lem.sum_of(big_z, z)
    lem.hypothesis(
        "ratio", z, "<=", sp.exp(Delta), status=assumed("the spread of theta + p is <= beta Delta")
    )
    lem.summed("(d) Z <= (E - 1) e^Delta", "ratio", {z: big_z}, others)
    lem.certify("(d) z > 0", 0, "<", z, terms=[z])
    lem.summed("(d) Z > 0", "(d) z > 0", {z: big_z}, others)
    lem.nonneg(big_z, "(d) Z > 0")
    lem.hypothesis(
        "argmin",
        pmin,
        "==",
        1 / (1 + big_z),
        status=assumed("pi_min = pi_i = 1/(1 + sum_{j != i} z_j) for the least likely i"),
    )
    den = (1 + big_z) * (1 + others * sp.exp(Delta))
    lem.certify(
        "(d) pi_min >= 1/(1 + (E - 1) e^Delta)",
        1 / (1 + (E_ - 1) * sp.exp(Delta)),
        "<=",
        pmin,
        using=[(1 / den, "(d) Z <= (E - 1) e^Delta")],
        subs=["argmin", "others"],
    )
    lem.certify("(d) ||v||^2 >= 0, one coordinate", 0, "<=", v**2, terms=[v**2])
    lem.summed("(d) ||v||^2 >= 0", "(d) ||v||^2 >= 0, one coordinate", {v**2: vv}, E_)
    lem.nonneg(vv, "(d) ||v||^2 >= 0")
    mu = n_ / (beta * (1 + (E_ - 1) * sp.exp(Delta)))
    fact = lem.certify(
        "(d)",
        mu * vv,
        "<=",
        n_ / beta * var,
        using=[
            (n_ / beta, "(d) Var_pi(v) >= pi_min ||v||^2"),
            (n_ / beta * vv, "(d) pi_min >= 1/(1 + (E - 1) e^Delta)"),
        ],
    )
    lem.theorem(
        "(d)",
        fact,
        strong_convexity_bound() * vv,
        "<=",
        n_ / beta * var,
        bound=strong_convexity_bound,
    )
    at0 = lem.identity("(d) mu(0) = n/(beta E)", mu.subs(Delta, 0), n_ / (beta * E_))
    lem.theorem("(d) mu(0) = n/(beta E)", at0, mu.subs(Delta, 0), "==", n_ / (beta * E_))


def batch_dual_not_strongly_convex(lem: Lemma) -> None:
    """(f) D of one batch is affine on a segment: midpoint gap exactly 0 on the package."""
    s = np.array([[0.5, 0.25, 0.0], [0.0, 0.75, 0.25], [0.25, 0.0, 1.0]])
    p = np.zeros(3)
    v = np.array([1.0, -0.5, -0.5])  # in 1-perp
    eps = 1.0 / 16.0
    d0, d1, d2 = (dual_objective(s, k=1, bias=p + j * eps * v) for j in (0, 1, 2))
    # strong convexity with any mu > 0 would need the midpoint gap >= mu eps^2 ||v||^2 / 2 > 0
    f = lem.checked(
        "(f)",
        "a batch's D is affine on a segment in 1-perp (midpoint gap exactly 0 on the package), "
        "so D_t is not mu-strongly convex for any mu > 0",
        d1 - (d0 + d2) / 2 == 0.0 and float(eps**2 * v @ v) > 0,
    )
    lem.theorem_checked("(f)", f)


def derive() -> Lemma:
    lem = Lemma(__doc__)
    gumbel_max(lem, 3)
    gradient_hessian(lem, 3)
    strong_convexity_chain(lem)
    return lem


def main() -> Lemma:
    lem = derive()
    batch_dual_not_strongly_convex(lem)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
