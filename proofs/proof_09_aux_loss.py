"""Lemma 9: aux-loss logit gradient is non-zero and not orthogonal to the task; LFB bias gets none.

Claim. n tokens, logits z_t in R^E, gate g_t = softmax(z_t) or normalised sigmoid
q_t = sigmoid(z_t)/sum_j sigmoid(z_tj); f_i = c_i/(nK) the fraction of routed slots of expert i
(a count: piecewise constant, treated as a constant as in Switch/GShard), P_i = (1/n) sum_t g_ti,
and l_aux = alpha E sum_i f_i P_i.
(a) at uniform routing (f_i = P_i = 1/E) l_aux = alpha;
(b) softmax: d l_aux / d z_tj = (alpha E/n) pi_tj (f_j - fbar_t), fbar_t = sum_i f_i pi_ti;
(c) sigmoid: d l_aux / d z_tj = (alpha E/n) (sigma'(z_tj)/S_t) (f_j - sum_i f_i q_ti),
    S_t = sum_j sigma(z_tj);
(d) the gradient is non-zero for EVERY token unless f is exactly uniform: for j* = argmax f,
    f_j* - fbar_t >= pi_t,min (max f - min f) > 0;
(e) it is not orthogonal to the task gradient in general: for a Switch layer (K = 1, output
    y = pi_t,j* h_j*) and any task loss with dl/dy . h_j* = delta != 0, the inner product of the
    two logit gradients is exactly (3/32) alpha E delta / n != 0 at z = (log 2, 0, 0);
(f) Loss-Free Balancing's bias b enters only the (piecewise constant) choice of experts; the
    gate weights are computed from the unbiased scores, so every loss has zero gradient in b
    wherever the choice is locally constant (all b off the tie set): checked on the package
    (route's weights are bit-identical under bias perturbations smaller than the tie margin).
(b), (c), (e) are identities for E = 3; (d) is a chain for every E (its strict form for E = 3);
(f) is checked on 200 seeded random batches.

Hypotheses (named in the chains). simplex: sum_i pi_i = 1 (softmax / normalised gate
probabilities); below-max: f_i <= f_max for every expert i; argmax-gap: f_0 = f_max - h with
h > 0 (f is not uniform; expert 0 is one below the maximum).

Assumptions. f detached (non-differentiable counts); softmax or normalised sigmoid gates.
Source. Switch Transformer, arXiv 2101.03961 Sec. 2.2 (the loss alpha N sum f_i P_i);
DeepSeek-V3, arXiv 2412.19437 Sec. 2.1.2 (normalised sigmoid gate, bias only in selection);
Loss-Free Balancing, arXiv 2408.15664 Sec. 2-3 (interference gradients of the auxiliary loss).

Proof. (a) alpha E sum (1/E)(1/E) = alpha. (b) d pi_ti / d z_tj = pi_ti (delta_ij - pi_tj).
(c) d q_ti / d z_tj = sigma'_j (delta_ij - q_ti)/S_t. (d) f_j* - fbar_t = sum_i pi_ti (f_j* - f_i),
a sum of non-negative terms, one of which is pi_t,argmin (max f - min f). (e) direct evaluation.
(f) w_tj = s_t,e_j / sum_{j'} s_t,e_j' does not contain b.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, check

from lfbtheory import route, tie_margin

alpha, n_ = sp.symbols("alpha n", positive=True)
E3 = 3


def _identity(lem: Lemma, label: str, lhs, rhs, text: str = "") -> None:
    f = lem.identity(label, lhs, rhs)
    lem.theorem(label, f, lhs, "==", rhs, text=text)


def _softmax(z):
    den = sum(sp.exp(zi) for zi in z)
    return [sp.exp(zi) / den for zi in z]


def aux_loss_softmax_token(z, f, n_tokens_other_p):
    """l_aux as a function of one token's logits z (the other tokens' P contribution fixed)."""
    pi = _softmax(z)
    big_p = [(pi[i] + n_tokens_other_p[i]) / n_ for i in range(len(z))]
    return alpha * len(z) * sum(fi * pi_ for fi, pi_ in zip(f, big_p, strict=True))


def uniform_value(lem: Lemma) -> None:
    e = sp.Symbol("E", positive=True, integer=True)
    _identity(lem, "(a)", alpha * e * e * (1 / e) * (1 / e), alpha)


def softmax_gradient(lem: Lemma) -> None:
    z = sp.symbols(f"z0:{E3}", real=True)
    f = sp.symbols(f"f0:{E3}", nonnegative=True)
    other = sp.symbols(f"P0:{E3}", nonnegative=True)
    loss = aux_loss_softmax_token(z, f, other)
    pi = _softmax(z)
    fbar = sum(fi * pii for fi, pii in zip(f, pi, strict=True))
    for j in range(E3):
        _identity(
            lem,
            f"(b) softmax gradient, j={j}",
            sp.diff(loss, z[j]),
            alpha * E3 / n_ * pi[j] * (f[j] - fbar),
            text=f"d l_aux/d z_t{j} = (alpha E/n) pi_t{j} (f_{j} - fbar_t) (E = 3)",
        )


def sigmoid_gradient(lem: Lemma) -> None:
    z = sp.symbols(f"z0:{E3}", real=True)
    f = sp.symbols(f"f0:{E3}", nonnegative=True)
    sig = [1 / (1 + sp.exp(-zi)) for zi in z]
    big_s = sum(sig)
    q = [si / big_s for si in sig]
    loss = alpha * E3 * sum(fi * qi / n_ for fi, qi in zip(f, q, strict=True))
    qbar = sum(fi * qi for fi, qi in zip(f, q, strict=True))
    for j in range(E3):
        dsig = sp.diff(sig[j], z[j])
        if j == 0:
            _identity(lem, "(c) sigma' = sigma (1 - sigma)", dsig, sig[j] * (1 - sig[j]))
        _identity(
            lem,
            f"(c) sigmoid gradient, j={j}",
            sp.diff(loss, z[j]),
            alpha * E3 / n_ * dsig / big_s * (f[j] - qbar),
            text=f"d l_aux/d z_t{j} = (alpha E/n)(sigma'_{j}/S_t)(f_{j} - sum_i f_i q_ti), E = 3",
        )


def nonzero_unless_uniform(lem: Lemma) -> None:
    """(d) f_max - fbar = sum_i pi_i (f_max - f_i) >= 0 for every E; > 0 if f is not uniform."""
    e_ = sp.Symbol("E", positive=True)
    lem.assume(e_, meaning="E experts")
    pi = lem.coordinate("pi", "pi_i > 0, a gate probability", "pos", indexed=False)
    f = lem.coordinate("f", "f_i, the load fraction of expert i", indexed=False)
    fmax = sp.Symbol("f_max", real=True)
    one, fbar = sp.symbols("Pi_sum fbar", real=True)
    lem.sum_of(one, pi)
    lem.sum_of(fbar, pi * f)
    lem.hypothesis("simplex", one, "==", 1, status=assumed("gate probabilities sum to 1"))
    lem.hypothesis("below-max", f, "<=", fmax, status=assumed("f_max is the largest f_i"))
    lem.certify("(d) one expert", 0, "<=", pi * (fmax - f), using=[(pi, "below-max")])
    lem.summed("(d) summed", "(d) one expert", {pi: one, pi * f: fbar}, e_)
    d = lem.certify("(d)", fbar, "<=", fmax, using=[(1, "(d) summed"), (fmax, "simplex")])
    lem.theorem("(d)", d, fbar, "<=", fmax)
    # strict, E = 3: expert 0 sits h > 0 below the maximum
    p = sp.symbols(f"pi0:{E3}", positive=True)
    gaps = sp.symbols(f"h1:{E3}", nonnegative=True)
    hpos = sp.Symbol("h", positive=True)
    lem.assume(*p, meaning="gate probabilities > 0 (E = 3)")
    lem.assume(*gaps, hpos, meaning="h_i = f_max - f_i >= 0; h = f_max - f_0 > 0 (f not uniform)")
    fs = [fmax - hpos] + [fmax - h for h in gaps]
    lem.hypothesis("simplex [E=3]", sum(p), "==", 1, status=assumed("gate probabilities sum to 1"))
    fbar3 = sum(pi_ * fi for pi_, fi in zip(p, fs, strict=True))
    strict = lem.certify(
        "(d) strict, E = 3",
        fbar3,
        "<",
        fmax,
        using=[(fmax, "simplex [E=3]")],
        terms=[p[0] * hpos] + [pi_ * h for pi_, h in zip(p[1:], gaps, strict=True)],
    )
    lem.theorem("(d) strict, E = 3", strict, fbar3, "<", fmax)


def interference_example(lem: Lemma) -> None:
    """(e) Switch layer at z = (log 2, 0, 0): <grad aux, grad task> = (3/32) alpha E delta / n."""
    z = sp.symbols(f"z0:{E3}", real=True)
    delta = sp.Symbol("delta", real=True)
    point = {z[0]: sp.log(2), z[1]: 0, z[2]: 0}
    pi = _softmax(z)
    f = [sp.Integer(1), sp.Integer(0), sp.Integer(0)]  # the single token goes to expert 0
    loss = aux_loss_softmax_token(z, f, [0, 0, 0])
    g_aux = [sp.simplify(sp.diff(loss, zj).subs(point)) for zj in z]
    # task: l_task(y), y = pi_0(z) h_0, dl/dy . h_0 = delta  =>  grad_z = delta * grad pi_0
    g_task = [sp.simplify(delta * sp.diff(pi[0], zj).subs(point)) for zj in z]
    _identity(lem, "(e) pi_0 = 1/2 at the point", pi[0].subs(point), sp.Rational(1, 2))
    inner = sp.expand(sum(a * b for a, b in zip(g_aux, g_task, strict=True)))
    _identity(lem, "(e) inner product", inner, sp.Rational(3, 32) * alpha * E3 * delta / n_)
    lem.assume(alpha, n_, meaning="the loss weight alpha > 0 and n tokens")
    coef = sp.Rational(3, 32) * alpha * E3 / n_
    pos = lem.certify("(e) coefficient > 0", 0, "<", coef, terms=[coef])
    lem.theorem("(e) coefficient > 0", pos, 0, "<", coef)


def _by_expert(r, n_experts: int) -> np.ndarray:
    dense = np.zeros((r.experts.shape[0], n_experts))
    np.put_along_axis(dense, r.experts, r.weights, axis=1)
    return dense


def bias_gets_no_gradient(lem: Lemma, rng: np.random.Generator, trials: int = 200) -> None:
    """(f) symbolic: weights do not contain b; package: weights unchanged by small bias moves."""
    s = sp.symbols("s0:3", positive=True)
    b = sp.symbols("b0:3", real=True)
    w = [s[0] / (s[0] + s[1]), s[1] / (s[0] + s[1])]  # selection {0, 1} fixed
    for a_, wi in enumerate(w):
        for j_, bj in enumerate(b):
            _identity(lem, f"(f) dw_{a_}/db_{j_} = 0", sp.diff(wi, bj), 0)
    moved = 0
    for _ in range(trials):
        n, e, k = 16, 6, 2
        scores = 1.0 / (1.0 + np.exp(-rng.normal(size=(n, e))))
        bias = rng.normal(scale=0.1, size=e)
        base = route(scores, k, bias)
        eps = 0.25 * float(tie_margin(scores, k, bias).min())
        for i in range(e):
            for sgn in (-1.0, 1.0):
                pert = bias.copy()
                pert[i] += sgn * eps
                r = route(scores, k, pert)
                # compare per expert id (the rank order inside the top-k may change)
                check(
                    np.array_equal(_by_expert(r, e), _by_expert(base, e)),
                    "(f) weights bit-identical under a bias move below the tie margin",
                )
        big = bias.copy()
        big[int(np.argmin(base.loads))] += 1.0
        moved += not np.array_equal(route(scores, k, big).experts, base.experts)
    check(moved > 0, "(f) large bias moves do change the choice (the test is not vacuous)")
    f = lem.checked(
        "(f)",
        f"route's weights bit-identical under bias moves below the tie margin on {trials} random "
        "batches; large moves change the choice",
        True,
    )
    lem.theorem_checked("(f) on the package", f)


def derive() -> Lemma:
    lem = Lemma(__doc__)
    uniform_value(lem)
    softmax_gradient(lem)
    sigmoid_gradient(lem)
    nonzero_unless_uniform(lem)
    interference_example(lem)
    return lem


def main() -> Lemma:
    lem = derive()
    bias_gets_no_gradient(lem, np.random.default_rng(9))
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
