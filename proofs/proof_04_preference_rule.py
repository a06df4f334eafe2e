"""Lemma 4: with a small step, a token that switches leaves an overloaded for an underloaded expert.

Claim. Route a batch with bias b (top-k of s + b, ties to the lower index), get loads c and
L = nk/E, update b' = b + Delta with
    sign:          Delta_i = u sign(L - c_i),
    proportional:  Delta_i = u (L - c_i)/L,
and route again. Let token t drop expert i and gain expert j (i in S_t \\ S'_t, j in S'_t \\ S_t),
and let m_t >= 0 be its tie margin before the update (k-th minus (k+1)-th largest s_t + b).
(i)  For every step u > 0: Delta_j > Delta_i strictly, i.e. c_j < c_i (proportional) or
     sign(L - c_j) > sign(L - c_i) (sign): the token always moves to a less loaded expert.
(ii) Small step: if u < m_t (sign) or u * max_l |c_l - L| / L < m_t (proportional), then
     c_i > L > c_j: the token leaves an OVERLOADED expert for an UNDERLOADED one.
(iii) The condition of (ii) is needed: with u >= m_t a token can move from an overloaded expert
     to a balanced one (c_j = L), shown by an explicit instance. Under sign, no token with
     2u < m_t moves at all.
(i)-(ii) are proved symbolically (certificates per case); they and (iii) are checked on the
package (lfbtheory.route + lfbtheory.online.updates) on 1132 seeded random small batches with
dyadic scores, biases and steps (so float64 arithmetic is exact).

Hypotheses (named in the chains). after: r'_i <= r'_j (j beats i after the update, r' = r +
Delta); before: r_j <= r_i (i beat j before); margin: r_i - r_j >= m_t (i in the top-k set, j
not); small-sign: u < m_t; small-prop: u V < m_t with V = max_l |c_l - L|/L; v-bound:
V >= (c_i - L)/L and V >= (L - c_j)/L; case-j: c_j >= L (resp. case-i: c_i <= L).

Assumptions. k distinct experts per token, real scores, route's tie rule; one update from
the loads of the same batch (a deterministic setting, as arXiv 2512.03915 calls it).
Source. The name "preference rule" follows arXiv 2512.03915 (Han & Zhong); that paper's theorem
bodies are not available here, so we cannot verify that its statement matches (i); the proof
above, the explicit step condition (ii) and its sharpness (iii) are derived here.

Proof. Write r = s_t + b, r' = r + Delta. Before: i in S_t, j not, so r_i >= r_j (and r_i - r_j
>= m_t, since r_i is at least the k-th and r_j at most the (k+1)-th largest value). After:
r'_j >= r'_i. Hence Delta_j - Delta_i = (r'_j - r'_i) + (r_i - r_j) >= r_i - r_j >= 0. If
Delta_j = Delta_i the two comparisons (value, then lower index) are between the same pairs
shifted by one constant, so they cannot disagree: Delta_j > Delta_i. For sign the nine pairs
(sign(L - c_i), sign(L - c_j)) give Delta_j - Delta_i = u (sigma_j - sigma_i), which is <= u < m_t
unless sigma_i = -1, sigma_j = +1; but it must be >= m_t. For proportional, Delta_j - Delta_i =
u (c_i - c_j)/L; if c_j >= L it is <= u (c_i - L)/L <= u V with V = max_l |c_l - L|/L, and if
c_i <= L it is <= u (L - c_j)/L <= u V; both < m_t, a contradiction, so c_i > L > c_j.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, check

from lfbtheory import route, tie_margin
from lfbtheory.online import updates as U

u_ = sp.Symbol("u", positive=True)
R_I, R_J, D_I, D_J, M_ = sp.symbols("r_i r_j Delta_i Delta_j m", real=True)


def symbolic_cases(lem: Lemma) -> None:
    lem.assume(u_, meaning="the step size u > 0")
    lem.hypothesis(
        "after", R_I + D_I, "<=", R_J + D_J, status=assumed("the token gained j, dropped i")
    )
    lem.hypothesis(
        "before", R_J, "<=", R_I, status=assumed("i was in the token's top-k set, j not")
    )
    i = lem.certify("(i)", D_I, "<=", D_J, using=[(1, "after"), (1, "before")])
    lem.theorem("(i)", i, D_I, "<=", D_J)
    lem.hypothesis("margin", M_, "<=", R_I - R_J, status=assumed("m_t is the token's tie margin"))
    need = lem.certify(
        "(ii) a move needs Delta_j - Delta_i >= m",
        M_,
        "<=",
        D_J - D_I,
        using=[(1, "after"), (1, "margin")],
    )
    lem.theorem("(ii) a move needs Delta_j - Delta_i >= m", need, M_, "<=", D_J - D_I)
    # sign rule: Delta = u sigma; every pair but (-1, +1) has u (sigma_j - sigma_i) <= u < m
    lem.hypothesis("small-sign", u_, "<", M_, status=assumed("the small-step condition u < m_t"))
    for sig_i in (-1, 0, 1):
        for sig_j in (-1, 0, 1):
            if (sig_i, sig_j) == (-1, 1):
                continue  # the allowed move: overloaded -> underloaded
            label = f"(ii) sign, pair ({sig_i}, {sig_j}): Delta_j - Delta_i < m"
            diff = u_ * (sig_j - sig_i)
            f = lem.certify(
                label, diff, "<", M_, using=[(1, "small-sign")], terms=[u_ * (1 - (sig_j - sig_i))]
            )
            lem.theorem(label, f, diff, "<", M_)
    # proportional rule: Delta_j - Delta_i = u (c_i - c_j)/L
    cap = lem.var("L", "L = nk/E > 0", positive=True)
    ci, cj, big_v = sp.symbols("c_i c_j V", real=True)
    lem.hypothesis(
        "small-prop", u_ * big_v, "<", M_, status=assumed("the small-step condition u V < m_t")
    )
    lem.hypothesis(
        "v-bound [i]", (ci - cap) / cap, "<=", big_v, status=assumed("V = max_l |c_l - L|/L")
    )
    lem.hypothesis(
        "v-bound [j]", (cap - cj) / cap, "<=", big_v, status=assumed("V = max_l |c_l - L|/L")
    )
    lem.hypothesis("case-j", cap, "<=", cj, status=assumed("the case c_j >= L"))
    lem.hypothesis("case-i", ci, "<=", cap, status=assumed("the case c_i <= L"))
    diff = u_ * (ci - cj) / cap
    for case, vb in (("case-j", "v-bound [i]"), ("case-i", "v-bound [j]")):
        label = f"(ii) proportional, {case}: Delta_j - Delta_i < m"
        f = lem.certify(label, diff, "<", M_, using=[(1, "small-prop"), (u_, vb), (u_ / cap, case)])
        lem.theorem(label, f, diff, "<", M_)


def _moves(s, k, b0, make_rule, u):
    """One update of the rule ``make_rule(u)`` from bias b0: loads, the step, the moves."""
    rule = make_rule(u)
    r0 = route(s, k, b0, normalize=False)
    st = rule.update(r0.loads, rule.init(s.shape[1], b0))
    r1 = route(s, k, st.bias, normalize=False)
    delta = st.bias - b0
    margin = tie_margin(s, k, b0)
    out = []
    for t in range(s.shape[0]):
        before, after = set(r0.experts[t]), set(r1.experts[t])
        for i in before - after:
            for j in after - before:
                out.append((t, i, j, margin[t]))
    return r0.loads, delta, out


def package_check(rng: np.random.Generator, trials: int = 1500) -> dict[str, int]:
    stats = {"batches": 0, "moves": 0, "small_step_moves": 0, "sharpness_examples": 0}
    for _ in range(trials):
        n_experts = int(rng.integers(2, 6))
        k = int(rng.integers(1, n_experts))
        cap_ = int(rng.choice([1, 2, 4]))
        if (cap_ * n_experts) % k:
            continue
        # L a power of two and dyadic scores/biases/steps: every update is exact in float64,
        # so exact ties survive the update (otherwise rounding could reorder tied experts).
        n = cap_ * n_experts // k
        stats["batches"] += 1
        s = rng.integers(0, 8, size=(n, n_experts)) / 8.0
        b0 = rng.integers(-4, 5, size=n_experts) / 8.0
        u = float(rng.choice([1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2]))
        cap = n * k / n_experts
        for name, rule in (("sign", U.sign), ("proportional", U.proportional)):
            loads, delta, moves = _moves(s, k, b0, rule, u)
            vmax = float(np.max(np.abs(loads - cap)) / cap)
            for _, i, j, m in moves:
                stats["moves"] += 1
                check(delta[j] > delta[i], f"(i) {name}: Delta_j > Delta_i")
                if name == "proportional":
                    check(loads[j] < loads[i], "(i) proportional: c_j < c_i")
                small = u < m if name == "sign" else u * vmax < m
                if small:
                    stats["small_step_moves"] += 1
                    check(loads[i] > cap > loads[j], f"(ii) {name}: overloaded -> underloaded")
                elif not (loads[i] > cap > loads[j]):
                    stats["sharpness_examples"] += 1
                if name == "sign":
                    check(2 * u >= m, "(iii) sign: a token with 2u < m_t never moves")
    return stats


def sharp_instance() -> None:
    """(iii) u >= m_t: a token moves from an overloaded expert to a balanced one (sign rule)."""
    # n = 3, E = 3, k = 1, L = 1. Tokens 0, 1 prefer expert 0 (load 2 > L); token 2 prefers
    # expert 1 (load 1 = L); expert 2 is empty. Token 1 is only 1/8 from expert 1.
    s = np.array([[1.0, 0.0, 0.0], [0.5, 0.375, 0.0], [0.0, 1.0, 0.0]])
    b0 = np.zeros(3)
    u = 0.25  # > m_1 = 1/8
    loads, delta, moves = _moves(s, 1, b0, U.sign, u)
    check(loads.tolist() == [2, 1, 0], "instance loads (2, 1, 0)")
    check(float(tie_margin(s, 1, b0)[1]) == 0.125 < u, "token 1 has margin m = 1/8 < u")
    check(
        [(t, i, j) for t, i, j, _ in moves] == [(1, 0, 1)],
        "token 1 moves from expert 0 (overloaded) to expert 1 (balanced, c = L)",
    )


def derive() -> Lemma:
    lem = Lemma(__doc__)
    symbolic_cases(lem)
    return lem


def main() -> Lemma:
    lem = derive()
    stats = package_check(np.random.default_rng(4))  # raises at the first failing move
    check(
        stats["small_step_moves"] > 0 and stats["sharpness_examples"] > 0,
        "both regimes occur in the random instances (the check is not vacuous)",
    )
    f = lem.checked(
        "(i)-(iii) on the package",
        f"{stats['moves']} moves on {stats['batches']} random dyadic batches: Delta_j > Delta_i "
        f"always; {stats['small_step_moves']} under the small-step condition go overloaded -> "
        f"underloaded; {stats['sharpness_examples']} outside it do not",
        True,
    )
    lem.theorem_checked("(i)-(iii) on the package", f)
    sharp_instance()
    f = lem.checked("(iii)", "u > m_t: a token moves from an overloaded to a balanced expert", True)
    lem.theorem_checked("(iii)", f)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
