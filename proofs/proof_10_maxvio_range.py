"""Lemma 10: 0 <= MaxVio <= E/k - 1; equality iff balanced / iff one expert gets every token.

Claim. Route n tokens to k distinct experts each among E (so 0 <= c_i <= n and sum c = nk, mean
L = nk/E) and let MaxVio = (max_i c_i - L)/L (arXiv 2408.15664 Sec. 4.1). Then, for every E,
(a) MaxVio >= 0, with equality iff every c_i = L;
(b) MaxVio <= E/k - 1, with equality iff max_i c_i = n (some expert receives every token),
    e.g. when every token picks the same k experts;
(c) the same holds for MaxVio_global (loads summed over batches, n = all tokens so far).
(a), (b) are chains for every n, E, k (the sum over experts by coordinates); lfbtheory.maxvio
is checked EXHAUSTIVELY on every load vector with 0 <= c_i <= n, sum c = nk for n <= 4, E <= 4,
and at the extremes for larger sizes.

Hypotheses (named in the chains). total: sum_i c_i = nk; below-max: c_i <= max c for every
expert; top: max c <= n (no expert gets a token twice).

Assumptions. k <= E distinct experts per token; n >= 1.
Source. MaxVio: arXiv 2408.15664 Sec. 4.1; the range is derived here (lfbtheory.metrics).

Proof. (a) per expert max c - c_i >= 0; summed, E max c - sum c >= 0, and sum c = nk = E L.
(b) E/k - 1 - MaxVio = (n - max c)/L >= 0, zero iff max c = n.
(c) summing batches keeps 0 <= c_i <= n_total and sum c = n_total k.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from _certify import Lemma, assumed

from lfbtheory import maxvio, maxvio_global, route

n_, k_, E_ = sp.symbols("n k E", positive=True)
CMAX, MAXVIO = sp.symbols("c_max MaxVio", real=True)


def maxvio_upper() -> sp.Expr:
    """E/k - 1."""
    return E_ / k_ - 1


def symbolic(lem: Lemma) -> None:
    lem.assume(n_, k_, E_, meaning="n tokens, k experts per token, E experts")
    cap = n_ * k_ / E_
    load = lem.coordinate("c", "c_i, the load of expert i", "nonneg", indexed=False)
    total = sp.Symbol("C", real=True)
    lem.sum_of(total, load)
    lem.hypothesis("total", total, "==", n_ * k_, status=assumed("each token takes k experts"))
    lem.hypothesis("below-max", load, "<=", CMAX, status=assumed("c_max is the largest load"))
    lem.hypothesis("top", CMAX, "<=", n_, status=assumed("an expert takes each token at most once"))
    lem.define("maxvio", MAXVIO, (CMAX - cap) / cap)
    lem.summed("(a) summed", "below-max", {load: total}, E_)
    a = lem.certify(
        "(a)",
        0,
        "<=",
        MAXVIO,
        using=[(1 / (E_ * cap), "(a) summed"), (-1 / (E_ * cap), "total")],
        subs=["maxvio"],
    )
    lem.theorem("(a)", a, 0, "<=", MAXVIO)
    b = lem.certify("(b)", MAXVIO, "<=", E_ / k_ - 1, using=[(1 / cap, "top")], subs=["maxvio"])
    lem.theorem("(b)", b, MAXVIO, "<=", maxvio_upper)
    eq_b = lem.identity(
        "(b) equality at max c = n", ((CMAX - cap) / cap).subs(CMAX, n_), E_ / k_ - 1
    )
    lem.theorem(
        "(b) equality at max c = n", eq_b, ((CMAX - cap) / cap).subs(CMAX, n_), "==", E_ / k_ - 1
    )


def exhaustive(lem: Lemma) -> None:
    count, ok = 0, True
    for n in range(1, 5):
        for n_experts in range(1, 5):
            for k in range(1, n_experts + 1):
                up = n_experts / k - 1
                for c in itertools.product(range(n + 1), repeat=n_experts):
                    if sum(c) != n * k:
                        continue
                    v = maxvio(np.array(c))
                    ok &= -1e-12 <= v <= up + 1e-12
                    ok &= (abs(v) <= 1e-12) == (len(set(c)) == 1)
                    ok &= (abs(v - up) <= 1e-12) == (max(c) == n)
                    count += 1
    f = lem.checked(
        "exhaustive",
        f"lfbtheory.maxvio on all {count} load vectors with n, E <= 4: in [0, E/k - 1], 0 iff "
        "balanced, E/k - 1 iff max c = n",
        ok,
    )
    lem.theorem_checked("(a)-(b) on the package", f)


def extremes(lem: Lemma, rng: np.random.Generator) -> None:
    ok = True
    for n, n_experts, k in ((64, 8, 2), (1000, 16, 1), (96, 32, 6)):
        s = np.tile(rng.random(n_experts), (n, 1))  # every token has the same scores
        r = route(s, k, normalize=False)
        ok &= abs(maxvio(r.loads) - (n_experts / k - 1)) <= 1e-12
        hist = np.stack(
            [route(rng.random((n, n_experts)), k, normalize=False).loads for _ in range(10)]
        )
        g = maxvio_global(hist)
        ok &= bool(np.all((g >= 0) & (g <= n_experts / k - 1 + 1e-12)))
    f = lem.checked(
        "extremes", "same k experts for all tokens: E/k - 1; MaxVio_global in range", ok
    )
    lem.theorem_checked("(b), (c) at the extremes", f)


def derive() -> Lemma:
    lem = Lemma(__doc__)
    symbolic(lem)
    return lem


def main() -> Lemma:
    lem = derive()
    exhaustive(lem)
    extremes(lem, np.random.default_rng(10))
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
