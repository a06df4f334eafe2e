"""Lemma 18: against adversarial drift no causal rule has sublinear regret plus violation.

Claim. Against the best fixed price in hindsight (the pooled optimum OPT_pool(T), attained by
one price, Lemma 1), no causal rule -- one whose routing of batch t depends only on batches
1, ..., t -- can keep R_P(T) + 3 V(T) sublinear on every stream, where V(T) = sum_i max(0,
C_i(T) - T L) is the cumulative violation. The two streams (E = 2, k = 1, n = 2, L = 1, T even)
share their first T/2 batches X (both tokens score (1, 0)); then
    stream 1 continues with Y (both tokens (0, 1)):  OPT_pool = 2T,
    stream 2 continues with Z (both tokens (3, 0)):  OPT_pool = 3T.
The two tokens of a batch are identical, so top-k routing with any bias sends both to one
expert. Let alpha be the fraction of the X batches the rule sends to expert 0 (the same on both
streams: causality), beta the fraction of the Y batches it sends to expert 1, gamma the
fraction of the Z batches it sends to expert 0. Then
    stream 1: R_P = T (2 - alpha - beta), V = T |alpha - beta|,
    stream 2: R_P = T (3 - alpha - 3 gamma), V = T |alpha + gamma - 1|,
and (a) R_P + 3V >= T (2 - 2 alpha) on stream 1 and >= 2 alpha T on stream 2, so
(b) the two costs sum to at least 2T: on one of the streams R_P(T) + 3 V(T) >= T, for every
causal rule and every T. Sublinear regret against a fixed price is possible for the DUAL
regret (Lemma 5 (c), any stream), not for the primal regret with bounded violation under
drift; under i.i.d. inputs it is (Lemma 15). Randomised rules: the same holds in expectation
(alpha, beta, gamma become expected fractions).
(a), (b) are chains; the accounting of the two streams and their pooled optima are checked on
the package (every routing of T = 4, the exact solver) in this file; the rules' costs on the
streams are measured by proofs/measurements.py.

Hypotheses (named in the chains). stream-1: R_P = T (2 - alpha - beta) and V = T |alpha - beta|
on stream 1; stream-2: R_P = T (3 - alpha - 3 gamma) and V = T |alpha + gamma - 1| on
stream 2 (both checked on the package); causal: the same alpha on both streams.
Source. The two-scenario argument for online allocation with adversarial inputs (cf.
Mannor, Tsitsiklis & Yu, "Online learning with sample path constraints", JMLR 2009;
Balseiro, Lu & Mirrokni 2023, adversarial lower bound); this instance and its constants are
derived here.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, checked

from lfbtheory import route, solve_balanced

T_ = sp.Symbol("T", positive=True)
ALPHA, BETA, GAMMA = sp.symbols("alpha beta gamma", real=True)


def streams(periods: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two streams of the claim with T = 2 * periods batches."""
    x = np.array([[1.0, 0.0], [1.0, 0.0]])
    y = np.array([[0.0, 1.0], [0.0, 1.0]])
    z = np.array([[3.0, 0.0], [3.0, 0.0]])
    return [x] * periods + [y] * periods, [x] * periods + [z] * periods


def cost(batches: list[np.ndarray], experts: list[int]) -> tuple[float, float]:
    """(R_P, V) of a routing that sends both tokens of batch t to ``experts[t]``."""
    t = len(batches)
    reward = sum(2 * b[0, e] for b, e in zip(batches, experts, strict=True))
    loads = np.zeros(2)
    for e in experts:
        loads[e] += 2
    opt = solve_balanced(np.vstack(batches), 1, capacity=t).objective
    return float(opt - reward), float(np.maximum(loads - t, 0).sum())


def accounting_check(lem: Lemma, periods: int = 2):
    """Every routing of the T = 2 * periods batches: R_P and V match the formulas."""
    s1, s2 = streams(periods)
    t = 2 * periods
    ok = True
    for choice in itertools.product((0, 1), repeat=t):
        alpha = sum(c == 0 for c in choice[:periods]) / periods
        beta = sum(c == 1 for c in choice[periods:]) / periods
        gamma = sum(c == 0 for c in choice[periods:]) / periods
        rp1, v1 = cost(s1, list(choice))
        rp2, v2 = cost(s2, list(choice))
        ok &= abs(rp1 - t * (2 - alpha - beta)) < 1e-9 and abs(v1 - t * abs(alpha - beta)) < 1e-9
        ok &= abs(rp2 - t * (3 - alpha - 3 * gamma)) < 1e-9
        ok &= abs(v2 - t * abs(alpha + gamma - 1)) < 1e-9
    for b in (np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[3.0, 0.0], [3.0, 0.0]])):
        for p in np.linspace(-4, 4, 33):
            ok &= len(set(route(b, 1, np.array([0.0, p]), normalize=False).experts[:, 0])) == 1
    text = (
        f"on the package, for all {2**t} routings of T = {t}: R_P, V of both streams match the "
        "formulas (pooled optimum from the exact solver); identical tokens route to one expert"
    )
    return lem.checked("accounting", text, ok)


def chain(lem: Lemma, accounting) -> None:
    lem.assume(T_, meaning="the horizon")
    rp1, v1, rp2, v2 = sp.symbols("R_P1 V_1 R_P2 V_2", real=True)
    lem.hypothesis("stream-1 [R_P]", rp1, "==", T_ * (2 - ALPHA - BETA), status=checked(accounting))
    lem.hypothesis("stream-1 [V]", v1, "==", T_ * sp.Abs(ALPHA - BETA), status=checked(accounting))
    alpha2 = sp.Symbol("alpha_2", real=True)  # the first-half fraction on stream 2
    lem.hypothesis(
        "stream-2 [R_P]", rp2, "==", T_ * (3 - alpha2 - 3 * GAMMA), status=checked(accounting)
    )
    lem.hypothesis(
        "stream-2 [V]", v2, "==", T_ * sp.Abs(alpha2 + GAMMA - 1), status=checked(accounting)
    )
    lem.hypothesis(
        "causal", alpha2, "==", ALPHA, status=assumed("the streams share the first half")
    )
    lem.abs_bounds("|alpha - beta|", ALPHA - BETA)
    lem.abs_bounds("|alpha + gamma - 1|", alpha2 + GAMMA - 1)
    one = lem.certify(
        "(a) stream 1",
        T_ * (2 - 2 * ALPHA),
        "<=",
        rp1 + 3 * v1,
        using=[(-1, "stream-1 [R_P]"), (-3, "stream-1 [V]"), (T_, "|alpha - beta| [-]")],
        terms=[2 * T_ * sp.Abs(ALPHA - BETA)],
    )
    lem.theorem("(a) stream 1", one, T_ * (2 - 2 * ALPHA), "<=", rp1 + 3 * v1)
    two = lem.certify(
        "(a) stream 2",
        2 * ALPHA * T_,
        "<=",
        rp2 + 3 * v2,
        using=[(-1, "stream-2 [R_P]"), (-3, "stream-2 [V]"), (3 * T_, "|alpha + gamma - 1| [+]")],
        subs=["causal"],
    )
    lem.theorem("(a) stream 2", two, 2 * ALPHA * T_, "<=", rp2 + 3 * v2)
    both = lem.certify(
        "(b)", 2 * T_, "<=", (rp1 + 3 * v1) + (rp2 + 3 * v2), using=[(1, one), (1, two)]
    )
    lem.theorem("(b)", both, 2 * T_, "<=", (rp1 + 3 * v1) + (rp2 + 3 * v2))


def derive() -> Lemma:
    lem = Lemma(__doc__)
    chain(lem, accounting_check(lem))
    return lem


def main() -> Lemma:
    return derive()


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
