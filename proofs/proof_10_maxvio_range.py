"""Lemma 10: 0 <= MaxVio <= E/k - 1; equality iff balanced / iff one expert gets every token.

Claim. Route n tokens to k distinct experts each among E (so 0 <= c_i <= n and sum c = nk, mean
L = nk/E) and let MaxVio = (max_i c_i - L)/L (arXiv 2408.15664 Sec. 4.1). Then
(a) MaxVio >= 0, with equality iff every c_i = L;
(b) MaxVio <= E/k - 1, with equality iff max_i c_i = n (some expert receives every token),
    e.g. when every token picks the same k experts;
(c) the same holds for MaxVio_global (loads summed over batches, n = all tokens so far).
Proved symbolically for every n, E, k; lfbtheory.maxvio is checked EXHAUSTIVELY on every load
vector with 0 <= c_i <= n, sum c = nk for n <= 4, E <= 4, and at the extremes for larger sizes.

Hypotheses (the equalities the certificates use). total: sum_i c_i = nk; top: w = n - max c
(w >= 0 since no expert gets a token twice).

Assumptions. k <= E distinct experts per token; n >= 1.
Source. MaxVio: arXiv 2408.15664 Sec. 4.1; the range is derived here (lfbtheory.metrics).

Proof. (a) max c - L = (1/E) sum_i (max c - c_i), a sum of non-negative terms, zero iff all c_i
equal max c (= L). (b) E/k - 1 - MaxVio = (n - max c)/L >= 0, zero iff max c = n.
(c) summing batches keeps 0 <= c_i <= n_total and sum c = n_total k.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from _certify import Lemma, check, identity

from lfbtheory import maxvio, maxvio_global, route

LEM = Lemma(__doc__)

n_, k_, E_ = sp.symbols("n k E", positive=True)


def maxvio_upper() -> sp.Expr:
    """E/k - 1."""
    return E_ / k_ - 1


def symbolic(n_experts: int) -> None:
    n, k = sp.symbols("n k", positive=True)
    cap = n * k / n_experts
    cmax = sp.Symbol("c_max", nonnegative=True)
    h = sp.symbols(f"h0:{n_experts}", nonnegative=True)  # c_i = c_max - h_i
    LEM.assume(n, k, meaning="n tokens, k experts per token")
    LEM.assume(cmax, meaning="max c >= 0 (counts)")
    LEM.assume(*h, meaning="h_i = max c - c_i >= 0")
    c = [cmax - hi for hi in h]
    # (a): c_max - L = (1/E) sum h_i on sum c = nk
    LEM.certify_nonneg(
        cmax - cap,
        [hi / n_experts for hi in h],
        f"(a) max c >= L (E={n_experts})",
        equalities=[
            (sp.Rational(1, n_experts), LEM.hypothesis(f"total [E={n_experts}]", sum(c) - n * k))
        ],
    )
    mv = (cmax - cap) / cap
    # (b): E/k - 1 - MaxVio = (n - c_max)/L with n - c_max = w >= 0
    w = sp.Symbol("w", nonnegative=True)
    LEM.assume(w, meaning="w = n - max c >= 0")
    LEM.certify_nonneg(
        maxvio_upper().subs({E_: n_experts, k_: k}) - mv,
        [w / cap],
        f"(b) MaxVio <= E/k - 1 (E={n_experts})",
        equalities=[(1 / cap, LEM.hypothesis(f"top [E={n_experts}]", n - cmax - w))],
    )
    # equality cases
    identity(
        mv.subs(cmax, n), maxvio_upper().subs({E_: n_experts, k_: k}), "(b) equality at max c = n"
    )
    identity(mv.subs(cmax, cap), 0, "(a) equality at c = L")


def exhaustive() -> int:
    count = 0
    for n in range(1, 5):
        for n_experts in range(1, 5):
            for k in range(1, n_experts + 1):
                up = n_experts / k - 1
                for c in itertools.product(range(n + 1), repeat=n_experts):
                    if sum(c) != n * k:
                        continue
                    v = maxvio(np.array(c))
                    check(-1e-12 <= v <= up + 1e-12, f"range for c={c}")
                    check(
                        (abs(v) <= 1e-12) == (len(set(c)) == 1), f"(a) equality iff balanced, c={c}"
                    )
                    check(
                        (abs(v - up) <= 1e-12) == (max(c) == n),
                        f"(b) equality iff max c = n, c={c}",
                    )
                    count += 1
    return count


def extremes(rng: np.random.Generator) -> None:
    for n, n_experts, k in ((64, 8, 2), (1000, 16, 1), (96, 32, 6)):
        s = np.tile(rng.random(n_experts), (n, 1))  # every token has the same scores
        r = route(s, k, normalize=False)
        check(
            abs(maxvio(r.loads) - (n_experts / k - 1)) <= 1e-12,
            "(b) same k experts for all: E/k - 1",
        )
        hist = np.stack(
            [route(rng.random((n, n_experts)), k, normalize=False).loads for _ in range(10)]
        )
        g = maxvio_global(hist)
        check(np.all((g >= 0) & (g <= n_experts / k - 1 + 1e-12)), "(c) MaxVio_global in range")


def main() -> None:
    for e in (2, 3, 5):
        symbolic(e)
    exhaustive()
    extremes(np.random.default_rng(10))


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
