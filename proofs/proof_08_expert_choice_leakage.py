"""Lemma 8: Expert Choice leaks (1/T) log2 C(T,KT/E)^E >= K log2(1/R) > K log2((1-R)/R) bits/token.

Claim. In Expert Choice routing (Zhou et al. 2022) each of E experts takes its top m = KT/E
tokens of a batch of T tokens (capacity factor 1, R = m/T = K/E). Every E-tuple of m-subsets is
realised by some score matrix, so the routing of a batch is one of exactly C(T, m)^E patterns
and can encode
    I(T, E, K) = (1/T) log2 C(T, m)^E  bits per token
about the whole batch (including tokens later in the sequence). For 1 <= K < E:
    I(T, E, K) >= K log2(1/R) > K log2((1 - R)/R),
the second being the bound of arXiv 2408.15664 App. D (so that bound holds, and the first is
stronger by K log2(1/(1 - R)) >= K R / ln 2). The pattern count is checked EXHAUSTIVELY on the
package (all 0/1 score matrices, (T, E, K) in {(2,2,1), (4,2,1), (3,3,1), (2,4,2), (6,2,1)});
the inequality is proved for all T, E, K.

Assumptions. m = KT/E an integer; 0 < R < 1.
Source. Expert Choice routing, arXiv 2202.09368; the leakage count and the bound
K log2((1-R)/R) from arXiv 2408.15664 App. D (implemented as lfbtheory.analysis.causality.
expert_choice_leakage); the stronger bound K log2(1/R) is derived here.

Proof. Realisability: give expert e score 1 on its chosen m tokens and 0 elsewhere. Count:
C(T, m) = prod_{i=0}^{m-1} (T - i)/(m - i) and each factor is >= T/m because
(T - i) m - T (m - i) = i (T - m) >= 0; so C(T, m) >= (T/m)^m = R^{-m} and
(E/T) log2 C(T, m) >= (E m / T) log2(1/R) = K log2(1/R). Finally K log2(1/R) -
K log2((1-R)/R) = -K log2(1 - R) and -ln(1 - R) = R + int_0^R t/(1 - t) dt >= R > 0.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from _certify import Lemma, check, identity

from lfbtheory.analysis.causality import expert_choice_leakage
from lfbtheory.routers import ExpertChoice

LEM = Lemma(__doc__)

T_, E_, K_, R_ = sp.symbols("T E K R", positive=True)


def leakage_exact(T: int, n_experts: int, k: int) -> float:
    """I(T, E, K) = (E/T) log2 C(T, KT/E), exactly from the integer binomial."""
    m = k * T // n_experts
    if m * n_experts != k * T:
        raise ValueError(f"KT/E must be an integer, got K={k}, T={T}, E={n_experts}")
    return n_experts * math.log2(math.comb(T, m)) / T


def bound_strong() -> sp.Expr:
    """K log2(1/R), R = K/E."""
    return K_ * sp.log(1 / R_, 2)


def bound_app_d() -> sp.Expr:
    """K log2((1 - R)/R) (the bound as stated in arXiv 2408.15664 App. D)."""
    return K_ * sp.log((1 - R_) / R_, 2)


def factor_bound() -> None:
    i = sp.Symbol("i", nonnegative=True)
    m = sp.Symbol("m", positive=True)
    gap = sp.Symbol("g", nonnegative=True)  # T - m >= 0
    LEM.assume(i, meaning="the factor index i >= 0")
    LEM.assume(m, meaning="m = KT/E >= 1")
    LEM.assume(gap, meaning="T - m >= 0")
    tt = m + gap
    LEM.certify_nonneg((tt - i) * m - tt * (m - i), [i * gap], "(T - i) m >= T (m - i)")
    # exact product identity and the bound C(T, m) >= (T/m)^m for T <= 24
    for T in range(1, 25):
        for mm in range(1, T + 1):
            prod = sp.prod([sp.Rational(T - j, mm - j) for j in range(mm)])
            identity(prod, sp.binomial(T, mm), f"C({T},{mm}) as a product")
            check(sp.binomial(T, mm) >= sp.Rational(T, mm) ** mm, f"C({T},{mm}) >= (T/m)^m")


def log_steps() -> None:
    m_expr = K_ * T_ / E_
    identity(E_ * m_expr / T_, K_, "E m / T = K")
    identity(
        sp.expand_log(bound_strong() - bound_app_d(), force=True),
        -K_ * sp.log(1 - R_) / sp.log(2),
        "strong - app_d = -K log2(1 - R)",
    )
    # -ln(1 - R) - R = int_0^R t/(1 - t) dt with 0 < R < 1
    t = sp.Symbol("t", positive=True)
    r = sp.Symbol("r", positive=True)
    rr = r / (1 + r)  # any R in (0, 1) is r/(1 + r) with r > 0
    identity(sp.integrate(t / (1 - t), (t, 0, rr)), -sp.log(1 - rr) - rr, "int_0^R t/(1-t) dt")
    q = sp.Symbol("q", positive=True)  # 1 - t >= 1 - R > 0 on [0, R]
    tau = sp.Symbol("tau", nonnegative=True)
    LEM.assume(q, meaning="1 - t >= 1 - R > 0 on [0, R]")
    LEM.assume(tau, meaning="the integration variable t >= 0")
    LEM.assume(r, meaning="R = r/(1 + r) with r > 0")
    LEM.certify_nonneg(tau / q, [tau / q], "integrand t/(1 - t) >= 0 on [0, R]")
    LEM.certify_pos(rr, [rr], "R > 0")
    # hence K log2(1/R) - K log2((1-R)/R) >= K R / ln 2 > 0
    ln2 = sp.log(2)
    integral = sp.Symbol("J", nonnegative=True)
    LEM.assume(integral, meaning="J = int_0^R t/(1-t) dt >= 0: its integrand is certified >= 0")
    LEM.assume(K_, meaning="K >= 1 experts per token")
    LEM.certify_pos(
        K_ * (rr + integral) / ln2, [K_ * rr / ln2, K_ * integral / ln2], "strict gap > 0"
    )


def mask_cols(router, T: int, n_experts: int) -> np.ndarray:
    mask, _ = router(np.random.default_rng(0).random((T, n_experts)))
    return mask.sum(axis=0)


def pattern_count() -> None:
    """All 0/1 score matrices: the number of distinct Expert Choice routings is C(T, m)^E."""
    for T, n_experts, k in ((2, 2, 1), (4, 2, 1), (3, 3, 1), (2, 4, 2), (6, 2, 1)):
        m = k * T // n_experts
        if not 0 < m < T:
            continue
        router = ExpertChoice(n_experts, k)
        check(int(mask_cols(router, T, n_experts).max()) == m, "each expert takes m = KT/E tokens")
        patterns = set()
        for flat in itertools.product((0.0, 1.0), repeat=T * n_experts):
            mask, _ = router(np.array(flat).reshape(T, n_experts))
            patterns.add(mask.tobytes())
        check(
            len(patterns) == math.comb(T, m) ** n_experts,
            f"{len(patterns)} patterns == C({T},{m})^{n_experts}",
        )


def main() -> None:
    factor_bound()
    log_steps()
    pattern_count()
    strong, app_d = sp.lambdify((K_, R_), bound_strong()), sp.lambdify((K_, R_), bound_app_d())
    for T, e, k in ((8, 4, 1), (64, 8, 2), (1024, 64, 8)):
        val = leakage_exact(T, e, k)
        check(
            val >= strong(k, k / e) > app_d(k, k / e),
            f"I >= K log2(1/R) > App. D bound at {(T, e, k)}",
        )
        pkg = expert_choice_leakage(T, e, k)
        check(
            abs(pkg.exact - val) <= 1e-9 * val and abs(pkg.lower - app_d(k, k / e)) <= 1e-12,
            "causality.expert_choice_leakage agrees (exact value and App. D bound)",
        )


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
