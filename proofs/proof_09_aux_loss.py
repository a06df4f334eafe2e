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
Symbolic for E = 3; (f) on 200 seeded random batches.

Hypotheses (the equality the certificates use). simplex: sum_i pi_i = 1 (softmax / normalised
gate probabilities).

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
from _certify import Lemma, check, identity

from lfbtheory import route, tie_margin

LEM = Lemma(__doc__)

alpha, n_ = sp.symbols("alpha n", positive=True)
E3 = 3


def _softmax(z):
    den = sum(sp.exp(zi) for zi in z)
    return [sp.exp(zi) / den for zi in z]


def aux_loss_softmax_token(z, f, n_tokens_other_p):
    """l_aux as a function of one token's logits z (the other tokens' P contribution fixed)."""
    pi = _softmax(z)
    big_p = [(pi[i] + n_tokens_other_p[i]) / n_ for i in range(len(z))]
    return alpha * len(z) * sum(fi * pi_ for fi, pi_ in zip(f, big_p, strict=True))


def uniform_value() -> None:
    e = sp.Symbol("E", positive=True, integer=True)
    identity(alpha * e * e * (1 / e) * (1 / e), alpha, "(a) l_aux = alpha at uniform routing")


def softmax_gradient() -> None:
    z = sp.symbols(f"z0:{E3}", real=True)
    f = sp.symbols(f"f0:{E3}", nonnegative=True)
    other = sp.symbols(f"P0:{E3}", nonnegative=True)
    loss = aux_loss_softmax_token(z, f, other)
    pi = _softmax(z)
    fbar = sum(fi * pii for fi, pii in zip(f, pi, strict=True))
    for j in range(E3):
        identity(
            sp.diff(loss, z[j]),
            alpha * E3 / n_ * pi[j] * (f[j] - fbar),
            f"(b) softmax gradient, j={j}",
        )


def sigmoid_gradient() -> None:
    z = sp.symbols(f"z0:{E3}", real=True)
    f = sp.symbols(f"f0:{E3}", nonnegative=True)
    sig = [1 / (1 + sp.exp(-zi)) for zi in z]
    big_s = sum(sig)
    q = [si / big_s for si in sig]
    loss = alpha * E3 * sum(fi * qi / n_ for fi, qi in zip(f, q, strict=True))
    qbar = sum(fi * qi for fi, qi in zip(f, q, strict=True))
    for j in range(E3):
        dsig = sp.diff(sig[j], z[j])
        identity(dsig, sig[j] * (1 - sig[j]), "(c) sigma' = sigma (1 - sigma)")
        identity(
            sp.diff(loss, z[j]),
            alpha * E3 / n_ * dsig / big_s * (f[j] - qbar),
            f"(c) sigmoid gradient, j={j}",
        )


def nonzero_unless_uniform() -> None:
    """(d) f_max - fbar = sum_i pi_i (f_max - f_i) >= pi_min (f_max - f_min) > 0."""
    pi = sp.symbols(f"pi0:{E3}", positive=True)
    fmax = sp.Symbol("f_max", real=True)
    gaps = sp.symbols(f"h0:{E3}", nonnegative=True)  # f_i = f_max - h_i
    LEM.assume(*pi, meaning="gate probabilities > 0")
    LEM.assume(*gaps, meaning="h_i = f_max - f_i >= 0")
    simplex = LEM.hypothesis("simplex", 1 - sum(pi))
    f = [fmax - h for h in gaps]
    fbar = sum(p * fi for p, fi in zip(pi, f, strict=True))
    # on sum pi = 1
    LEM.certify_nonneg(
        fmax - fbar,
        [p * h for p, h in zip(pi, gaps, strict=True)],
        "(d) f_max - fbar >= 0",
        equalities=[(fmax, simplex)],
    )
    # strictly: if some h_i > 0 (f not uniform), the term pi_i h_i > 0
    hpos = sp.Symbol("h_pos", positive=True)
    LEM.assume(hpos, meaning="f non-uniform: some h_i > 0")
    f2 = [fmax - hpos] + [fmax - h for h in gaps[1:]]
    fbar2 = sum(p * fi for p, fi in zip(pi, f2, strict=True))
    LEM.certify_pos(
        fmax - fbar2,
        [pi[0] * hpos] + [p * h for p, h in zip(pi[1:], gaps[1:], strict=True)],
        "(d) f non-uniform => f_max - fbar > 0",
        equalities=[(fmax, simplex)],
    )


def interference_example() -> None:
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
    identity(pi[0].subs(point), sp.Rational(1, 2), "(e) pi_0 = 1/2 at the point")
    inner = sp.expand(sum(a * b for a, b in zip(g_aux, g_task, strict=True)))
    identity(inner, sp.Rational(3, 32) * alpha * E3 * delta / n_, "(e) inner product")
    LEM.assume(alpha, n_, meaning="the loss weight alpha > 0 and n tokens")
    LEM.certify_pos(
        sp.Rational(3, 32) * alpha * E3 / n_,
        [sp.Rational(3, 32) * alpha * E3 / n_],
        "(e) its coefficient is > 0, so the product is 0 only if delta = 0",
    )


def _by_expert(r, n_experts: int) -> np.ndarray:
    dense = np.zeros((r.experts.shape[0], n_experts))
    np.put_along_axis(dense, r.experts, r.weights, axis=1)
    return dense


def bias_gets_no_gradient(rng: np.random.Generator, trials: int = 200) -> None:
    """(f) symbolic: weights do not contain b; package: weights unchanged by small bias moves."""
    s = sp.symbols("s0:3", positive=True)
    b = sp.symbols("b0:3", real=True)
    w = [s[0] / (s[0] + s[1]), s[1] / (s[0] + s[1])]  # selection {0, 1} fixed
    for wi in w:
        for bj in b:
            identity(sp.diff(wi, bj), 0, "(f) dw/db = 0 at a fixed selection")
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


def main() -> None:
    uniform_value()
    softmax_gradient()
    sigmoid_gradient()
    nonzero_unless_uniform()
    interference_example()
    bias_gets_no_gradient(np.random.default_rng(9))


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
