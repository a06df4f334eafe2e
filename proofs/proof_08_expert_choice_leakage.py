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
the inequality is a chain for all T, E, K (a sum over the m factors of C(T, m)).

Hypotheses (named in the chains). binomial: log C(T, m) = sum_{j=1..m} log((T - m + j)/j)
(checked exactly for T <= 24 in this file); index: 1 <= j <= m for each factor index j;
fewer: m <= T; capacity: m = KT/E; ratio: R = K/E; interior: R = r/(1 + r) with
r = R/(1 - R) > 0 (as 0 < R < 1).

Assumptions. m = KT/E an integer; 0 < R < 1.
Source. Expert Choice routing, arXiv 2202.09368; the leakage count and the bound
K log2((1-R)/R) from arXiv 2408.15664 App. D (implemented as lfbtheory.analysis.causality.
expert_choice_leakage); the stronger bound K log2(1/R) is derived here.

Proof. Realisability: give expert e score 1 on its chosen m tokens and 0 elsewhere. Count:
C(T, m) = prod_{j=1}^{m} (T - m + j)/j and each factor is >= T/m (ln of the ratio is
ln(1 + z) with z = (T - m)(m - j)/(jT) >= 0); so C(T, m) >= (T/m)^m = R^{-m} and
(E/T) log2 C(T, m) >= (E m / T) log2(1/R) = K log2(1/R). Finally K log2(1/R) -
K log2((1-R)/R) = -K log2(1 - R) and -ln(1 - R) = R + int_0^R t/(1 - t) dt >= R > 0.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, check, checked

from lfbtheory.analysis.causality import expert_choice_leakage
from lfbtheory.routers import ExpertChoice

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


def product_check(lem: Lemma):
    ok = True
    for T in range(1, 25):
        for mm in range(1, T + 1):
            prod = sp.prod([sp.Rational(T - mm + j, j) for j in range(1, mm + 1)])
            ok &= prod == sp.binomial(T, mm)
    text = "C(T, m) = prod_{j=1..m} (T - m + j)/j exactly, for every T <= 24 and m <= T"
    return lem.checked("binomial product", text, ok)


def leakage_chain(lem: Lemma, product) -> None:
    """I >= K log2(1/R): each factor (T - m + j)/j of C(T, m) is >= T/m; logs summed over the m
    factors; then K log2(1/R) > K log2((1 - R)/R)."""
    m = sp.Symbol("m", positive=True)
    lem.assume(m, meaning="m = KT/E >= 1")
    lem.assume(T_, E_, K_, R_, meaning="T tokens, E experts, K per token, R = K/E")
    lem.hypothesis("fewer", m, "<=", T_, status=assumed("m <= T (R <= 1)"))
    g = sp.Symbol("g", real=True)
    lem.define("g", g, T_ - m)
    lem.certify("g >= 0", 0, "<=", g, using=[(1, "fewer")], subs=["g"])
    lem.nonneg(g, "g >= 0")
    lem.coordinate_set("factors", m)
    j = lem.coordinate(
        "j", "j = 1..m, the factor (T - m + j)/j of C(T, m)", "pos", indexed=False, over="factors"
    )
    lem.hypothesis("index", j, "<=", m, status=assumed("the factor indices are j = 1, ..., m"))
    # ln(1 + z) >= 0 for z >= 0, at z = g (m - j)/(j T): then ln((T - m + j)/j) >= ln(T/m)
    z = sp.Symbol("z", nonnegative=True)
    lem.assume(z, meaning="z >= 0")
    lem.certify("d/dz ln(1 + z) >= 0", 0, "<=", 1 / (1 + z), terms=[1 / (1 + z)])
    lem.monotone("ln(1 + z) >= 0", sp.log(1 + z), z, "d/dz ln(1 + z) >= 0")
    zj = g * (m - j) / (j * T_)
    lem.certify("z_j >= 0", 0, "<=", zj, using=[(g / (j * T_), "index")])
    lem.instance("ln(1 + z_j) >= 0", "ln(1 + z) >= 0", {z: zj}, signs={z: "z_j >= 0"})
    factor = sp.log((T_ - m + j) / j)
    lem.certify(
        "one factor", sp.log(T_ / m), "<=", factor, using=[(1, "ln(1 + z_j) >= 0")], subs=["g"]
    )
    lc = sp.Symbol("LC", real=True)
    lem.sum_of(lc, factor)
    lem.summed("all factors", "one factor", {factor: lc}, m)
    c = sp.Symbol("C", positive=True)
    leak = sp.Symbol("I", real=True)
    lem.define("leakage", leak, E_ / T_ * sp.log(c) / sp.log(2))
    lem.hypothesis("binomial", sp.log(c), "==", lc, status=checked(product))
    step = lem.certify(
        "I >= (E m/T) log2(T/m)",
        E_ * m / T_ * sp.log(T_ / m) / sp.log(2),
        "<=",
        leak,
        using=[(E_ / (T_ * sp.log(2)), "all factors"), (-E_ / (T_ * sp.log(2)), "binomial")],
        subs=["leakage"],
    )
    lem.hypothesis("capacity", m, "==", K_ * T_ / E_, status=assumed("m = KT/E"))
    lem.hypothesis("ratio", R_, "==", K_ / E_, status=assumed("R = K/E"))
    strong = lem.certify(
        "I >= K log2(1/R)",
        K_ * sp.log(1 / R_, 2),
        "<=",
        leak,
        using=[(1, step)],
        subs=["capacity", "ratio"],
    )
    lem.theorem("I >= K log2(1/R)", strong, bound_strong, "<=", leak)
    # K log2(1/R) - K log2((1 - R)/R) = K ln(1 + r)/ln 2 >= K R/ln 2 > 0 with R = r/(1 + r)
    r = lem.var("r", "r = R/(1 - R) > 0", positive=True)
    lem.certify(
        "d/dr [ln(1+r) - r/(1+r)] >= 0", 0, "<=", r / (1 + r) ** 2, terms=[r / (1 + r) ** 2]
    )
    lem.monotone(
        "ln(1+r) >= r/(1+r)", sp.log(1 + r) - r / (1 + r), r, "d/dr [ln(1+r) - r/(1+r)] >= 0"
    )
    lem.hypothesis(
        "interior", R_, "==", r / (1 + r), status=assumed("0 < R < 1, so R = r/(1 + r), r > 0")
    )
    gap = lem.certify(
        "K log2((1-R)/R) < K log2(1/R)",
        K_ * sp.log((1 - R_) / R_, 2),
        "<",
        K_ * sp.log(1 / R_, 2),
        using=[(K_ / sp.log(2), "ln(1+r) >= r/(1+r)")],
        terms=[K_ * r / ((1 + r) * sp.log(2))],
        subs=["interior"],
    )
    lem.theorem(
        "K log2((1-R)/R) < K log2(1/R)",
        gap,
        bound_app_d,
        "<",
        bound_strong(),
        bound=(bound_strong,),
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


def derive() -> Lemma:
    lem = Lemma(__doc__)
    leakage_chain(lem, product_check(lem))
    return lem


def main() -> Lemma:
    lem = derive()
    pattern_count()  # raises ProofError at the first failing count
    f = lem.checked(
        "pattern count",
        "on the package's ExpertChoice router, all 0/1 score matrices give exactly C(T, m)^E "
        "routings, (T, E, K) in {(2,2,1), (4,2,1), (3,3,1), (2,4,2), (6,2,1)}",
        True,
    )
    lem.theorem_checked("pattern count", f)
    strong, app_d = sp.lambdify((K_, R_), bound_strong()), sp.lambdify((K_, R_), bound_app_d())
    ok = True
    for T, e, k in ((8, 4, 1), (64, 8, 2), (1024, 64, 8)):
        val = leakage_exact(T, e, k)
        ok &= val >= strong(k, k / e) > app_d(k, k / e)
        pkg = expert_choice_leakage(T, e, k)
        ok &= abs(pkg.exact - val) <= 1e-9 * val and abs(pkg.lower - app_d(k, k / e)) <= 1e-12
    f = lem.checked(
        "values",
        "I >= K log2(1/R) > App. D bound at (T, E, K) = (8, 4, 1), (64, 8, 2), (1024, 64, 8); "
        "lfbtheory.analysis.causality.expert_choice_leakage agrees",
        ok,
    )
    lem.theorem_checked("values on the package", f)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
