"""Lemma 3: proportional = dual subgradient step; sign = per-expert step; shift/scale invariance.

Claim. Let c be the loads of a batch routed with bias b (sum c = nk, so c_bar = sum c / E = L)
and g = c - L the subgradient of D at b (Lemma 2).
(a) proportional: b + u (c_bar - c)/c_bar = b - (u/L) g, a subgradient step on D with step
    eta = u/L (equivalently a step u on D/L);
(b) sign: b_i + u sign(c_bar - c_i) = b_i - eta_i g_i with per-expert step eta_i = u/|g_i|
    (any eta_i when g_i = 0);
(c) proportional preserves sum(b) exactly (the step sums to 0); sign changes sum(b) by exactly
    u (#{i: c_i < c_bar} - #{i: c_i > c_bar}), which is non-zero in general;
(d) D(b + t 1) = D(b) and top-k routing with b + t 1 equals routing with b, for every real t;
(e) multiplicative bias (select on s * b, s > 0, b > 0) is additive bias log b on log s; it is
    invariant under b -> lambda b (lambda > 0); b *= exp(u e) is the proportional step on log b,
    so it preserves prod(b).
(a)-(e) are chains for every n, E, k (sums over experts by coordinates); the package's rules are
checked against them EXHAUSTIVELY on every load vector of small batches ((n, E, k) with n <= 4,
E <= 4) and on seeded random instances.

Hypotheses (named in the chains). total: sum_i c_i = nk (each token takes k experts);
shifted: the entries of r + t 1 on a top-k set S of r (still a top-k set: the shift keeps
the order).

Assumptions. Loads come from routing n tokens to k distinct experts each (sum c = nk); scores
real (positive for (e)).
Source. arXiv 2408.15664 Sec. 3 eq. 3 (sign rule); docs/design.md Sec. 2 (the rules as dual
steps) and Sec. 4 (the sum drift of uncentred sign updates).

Proof. (a) c_bar = nk/E = L, so (c_bar - c)/c_bar = -(c - L)/L = -g/L. (b) For g_i != 0,
sign(-g_i) = -g_i/|g_i|. (c) sum_i (c_bar - c_i) = E c_bar - sum c = 0; sum_i sign(c_bar - c_i)
counts +1 per under-loaded and -1 per over-loaded expert. (d) Adding t to every entry of a row
preserves the order, so the top-k set is unchanged and topKsum grows by k t; then
D(b + t 1) - D(b) = n k t - L E t = 0 because L E = n k. (e) log is strictly increasing, so
s_i b_i > s_j b_j iff log s_i + log b_i > log s_j + log b_j; lambda b adds log lambda to every
entry (then (d)); log(b exp(u e)) = log b + u e with sum(e) = 0.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, check

from lfbtheory import dual_objective, dual_subgradient, route
from lfbtheory.online import updates as U

n_, k_, E_ = sp.symbols("n k E", positive=True)
u_ = sp.Symbol("u", positive=True)


def symbolic_steps(lem: Lemma) -> None:
    lem.assume(n_, k_, E_, u_, meaning="tokens, experts per token, experts, the step u > 0")
    cap = n_ * k_ / E_
    load = lem.coordinate("c", "c_i, the load of expert i", "nonneg", indexed=False)
    b = lem.coordinate("b", "b_i, the bias of expert i", indexed=False)
    step = lem.coordinate("Delta", "Delta_i, the proportional step of expert i", indexed=False)
    total, cbar, sum_step = sp.symbols("C c_bar Sum_Delta", real=True)
    lem.sum_of(total, load)
    lem.sum_of(sum_step, step)
    lem.hypothesis("total", total, "==", n_ * k_, status=assumed("each token takes k experts"))
    lem.define("mean load", cbar, total / E_)
    lem.certify("(a) c_bar = L", cbar, "==", cap, using=[(1 / E_, "total")], subs=["mean load"])
    a = lem.identity(
        "(a)", b + u_ * (cbar - load) / cbar, b - (u_ / cap) * (load - cap), subs=["(a) c_bar = L"]
    )
    lem.theorem("(a)", a, b + u_ * (cbar - load) / cbar, "==", b - (u_ / cap) * (load - cap))
    # (c) the proportional step sums to zero
    lem.define("proportional step", step, u_ * (cbar - load) / cbar)
    lem.identity("(c) step, one expert", step, u_ - u_ * load / cbar, subs=["proportional step"])
    lem.summed("(c) summed", "(c) step, one expert", {step: sum_step, load: total}, E_)
    c = lem.identity("(c)", sum_step, 0, using=[(1, "(c) summed")], subs=["mean load"])
    lem.theorem("(c)", c, sum_step, "==", 0)
    # (b) sign step as a per-expert subgradient step, both signs of g_i
    gpos = lem.var("gpos", "|g_i| > 0", positive=True)
    bi = sp.Symbol("bi", real=True)
    for gi, tag in ((gpos, "g_i > 0"), (-gpos, "g_i < 0")):
        f = lem.identity(f"(b) {tag}", bi + u_ * sp.sign(-gi), bi - (u_ / sp.Abs(gi)) * gi)
        lem.theorem(f"(b) {tag}", f, bi + u_ * sp.sign(-gi), "==", bi - (u_ / sp.Abs(gi)) * gi)
    # (d) topKsum(r + t 1) = topKsum(r) + k t (sum over a top-k set of k coordinates, whose
    # order the shift keeps), then D(b + t 1) - D(b) = n k t - L E t = 0
    t = sp.Symbol("t", real=True)
    lem.coordinate_set("S", k_)
    r = lem.coordinate("r", "r_i, an entry of a top-k set of s_t + b", indexed=False, over="S")
    rs = lem.coordinate(
        "r_t", "r_i + t, the same entry of the shifted row", indexed=False, over="S"
    )
    top, top_shift = sp.symbols("topK topK_shift", real=True)
    lem.sum_of(top, r)
    lem.sum_of(top_shift, rs)
    lem.hypothesis(
        "shifted", rs, "==", r + t, status=assumed("the row shifted by t 1 (same order)")
    )
    lem.summed("(d) topKsum(r + t1)", "shifted", {rs: top_shift, r: top}, k_)
    shift = lem.identity(
        "(d) per token", top_shift, top + k_ * t, using=[(1, "(d) topKsum(r + t1)")]
    )
    lem.theorem("(d) per token", shift, top_shift, "==", top + k_ * t)
    bsum, dsum = sp.symbols("B topK_all", real=True)
    d_shift = dsum + n_ * k_ * t - cap * (bsum + E_ * t)
    d_zero = lem.identity("(d)", d_shift, dsum - cap * bsum)
    lem.theorem("(d)", d_zero, d_shift, "==", dsum - cap * bsum)
    # (e) multiplicative = additive on logs; scale and the update on log b
    s_, bb, lam = sp.symbols("s b lambda", positive=True)
    ue = sp.Symbol("ue", real=True)
    for label, lhs, rhs in (
        ("(e) log(s b)", sp.log(s_ * bb), sp.log(s_) + sp.log(bb)),
        ("(e) lambda b", sp.log(s_ * lam * bb), sp.log(s_) + sp.log(bb) + sp.log(lam)),
        ("(e) log(b exp(u e))", sp.log(bb * sp.exp(ue)), sp.log(bb) + ue),
    ):
        f = lem.identity(label, lhs, rhs)
        lem.theorem(label, f, lhs, "==", rhs)


def _load_vectors(n: int, n_experts: int, k: int):
    for c in itertools.product(range(n + 1), repeat=n_experts):
        if sum(c) == n * k:
            yield np.array(c, dtype=np.float64)


def package_rules_exhaustive() -> int:
    u = 0.125
    prop, sgn = U.proportional(u), U.sign(u)
    checked = 0
    for n, n_experts, k in (
        (2, 2, 1),
        (4, 2, 1),
        (3, 3, 1),
        (4, 4, 1),
        (2, 4, 2),
        (4, 4, 2),
        (3, 3, 2),
    ):
        cap = n * k / n_experts
        b0 = np.linspace(-1.0, 1.0, n_experts)
        for c in _load_vectors(n, n_experts, k):
            g = c - cap
            st = prop.update(c, prop.init(n_experts, b0))
            np.testing.assert_allclose(st.bias, b0 - (u / cap) * g, rtol=0, atol=1e-14)
            check(abs(st.bias.sum() - b0.sum()) <= 1e-13, "(c) proportional preserves sum(b)")
            ss = sgn.update(c, sgn.init(n_experts, b0))
            nz = g != 0
            check(
                np.array_equal(ss.bias[nz], b0[nz] - (u / np.abs(g[nz])) * g[nz]), "(b) sign step"
            )
            check(np.array_equal(ss.bias[~nz], b0[~nz]), "(b) sign step is 0 where c_i = L")
            change = u * (np.sum(c < cap) - np.sum(c > cap))
            check(ss.bias.sum() - b0.sum() == change, "(c) exact change of sum(b) under sign")
            checked += 1
    c = np.array([3.0, 1.0, 0.0, 0.0])  # n = 4, k = 1, L = 1: one over, one balanced, two under
    ss = sgn.update(c, sgn.init(4, None))
    check(ss.bias.sum() == u * (2 - 1) != 0, "(c) sign does not preserve sum(b)")
    return checked


def package_invariances(rng: np.random.Generator) -> None:
    for n, n_experts, k in ((6, 3, 1), (8, 4, 2), (12, 6, 3), (16, 8, 2)):
        for _ in range(20):
            s = rng.integers(0, 4, size=(n, n_experts)).astype(np.float64)  # many ties on purpose
            b = rng.integers(-3, 4, size=n_experts) / 4.0
            base = route(s, k, b, normalize=False)
            d0, g0 = dual_objective(s, k=k, bias=b), dual_subgradient(s, k=k, bias=b)
            for t in (-2.5, 0.75, 1024.0, -(2.0**30)):
                sh = route(s, k, b + t, normalize=False)
                check(
                    np.array_equal(sh.experts, base.experts), "(d) routing invariant under b + t1"
                )
                check(
                    np.array_equal(dual_subgradient(s, k=k, bias=b + t), g0),
                    "(d) subgradient invariant",
                )
                check(
                    abs(dual_objective(s, k=k, bias=b + t) - d0) <= 1e-9 * max(1.0, abs(t)),
                    "(d) D invariant",
                )
            sp_ = rng.uniform(0.1, 1.0, size=(n, n_experts))  # continuous: no ties a.s.
            bm = rng.uniform(0.5, 2.0, size=n_experts)
            mult = route(sp_, k, bm, bias_mode="multiplicative")
            add = route(np.log(sp_), k, np.log(bm), normalize=False)
            check(
                np.array_equal(np.sort(mult.experts, 1), np.sort(add.experts, 1)),
                "(e) multiplicative bias == additive log-bias on log-scores",
            )
            for lam in (0.25, 3.0, 1024.0):
                sc = route(sp_, k, lam * bm, bias_mode="multiplicative")
                check(
                    np.array_equal(sc.experts, mult.experts), "(e) invariance under b -> lambda b"
                )
            m = U.multiplicative(0.3)
            st = m.update(mult.loads, m.init(n_experts, bm))
            check(abs(np.log(st.bias).sum() - np.log(bm).sum()) < 1e-12, "(e) prod(b) preserved")


def derive() -> Lemma:
    lem = Lemma(__doc__)
    symbolic_steps(lem)
    return lem


def main() -> Lemma:
    lem = derive()
    n = package_rules_exhaustive()  # raises ProofError at the first failing vector
    f = lem.checked(
        "(a)-(c) on the package",
        f"proportional and sign rules of lfbtheory.online.updates on all {n} load vectors of "
        "small batches: the steps (a), (b), sum(b) preserved / changed by u(#under - #over)",
        True,
    )
    lem.theorem_checked("(a)-(c) on the package", f)
    package_invariances(np.random.default_rng(3))  # raises at the first failing instance
    f = lem.checked(
        "(d)-(e) on the package",
        "routing, D and its subgradient invariant under b + t1 (t up to 2^30); multiplicative "
        "bias = additive log-bias, invariant under b -> lambda b, prod(b) preserved",
        True,
    )
    lem.theorem_checked("(d)-(e) on the package", f)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
