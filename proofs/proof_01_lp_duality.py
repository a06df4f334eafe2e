"""Lemma 1: D(p) = sum_t topKsum(s_t+p) - L sum p is the Lagrangian dual; weak + strong duality; TU.

Claim. For scores s (n x E), k experts per token and capacity L = nk/E, the balanced assignment
LP  P = max s.x  s.t.  sum_i x_ti = k,  sum_t x_ti = L,  0 <= x <= 1  has, after dualising the
expert constraints with prices p, the dual function
    D(p) = max_{x: rows = k, 0<=x<=1} s.x + sum_i p_i (sum_t x_ti - L)
         = sum_t topKsum_i(s_ti + p_i) - L sum_i p_i,
(a) max{r.x : sum x = k, 0 <= x <= 1} = topKsum(r)  [a chain for every E and k: the sum over the
    top-k set S and over its complement of per-coordinate certificates];
(b) weak duality s.x <= D(p) for every feasible x and every p  [Lagrangian certificate, symbolic
    for n = 2, E = 3, k in {1, 2}; the certificate is the sum of the per-token certificates of
    (a), so the same identity holds for every n, E, k];
(c) strong duality min_p D(p) = P: symbolically for n = E = 2, k = 1 (an explicit optimal p),
    and EXHAUSTIVELY for all integer score matrices with entries in {0,1,2} for
    (n, E, k) in {(2,2,1), (2,4,2), (4,2,1)} and entries in {0,1} for (3,3,1) (checked, not proved
    for general n, E);
(d) the constraint matrix (token rows over expert rows) is totally unimodular: every square
    minor is in {-1, 0, 1}, checked EXHAUSTIVELY for (n, E) in {(2,2),(2,3),(3,2),(3,3),(2,4),
    (4,2)}; the general argument (below) holds for every n, E.

Hypotheses (named in the chains). row: sum_i x_ti = k for every token t; col: sum_t x_ti = L
for every expert i; box: x_i <= 1 (and x_i >= 0, a registered sign). Non-negative by
definition: the gaps d, e of the entries of r to its k-th largest entry theta.

Assumptions. Real scores; L = nk/E an integer (equality case of lfbtheory.lp.solve).
Source. Lagrangian duality (Boyd & Vandenberghe, Convex Optimization, Ch. 5); the bias-as-dual
reading of Loss-Free Balancing (arXiv 2408.15664 Sec. 3, docs/design.md Sec. 2); total unimodularity
of bipartite incidence matrices (Heller & Tompkins 1956; Schrijver, Theory of Linear and
Integer Programming, Thm 19.3 / Cor. 19.2a).

Proof. (a) Let S be a top-k set of r and theta its k-th largest entry; write r_i = theta + d_i
(i in S, d_i >= 0) and r_i = theta - e_i (i not in S, e_i >= 0), and x_i = 1 - y_i on S. Then
topKsum(r) - r.x = sum_S d_i y_i + sum_notS e_i x_i - theta (sum_i x_i - k), a sum of
non-negative terms on the feasible set; x = 1_S attains it. (b) D(p) - s.x
= sum_t [topKsum(s_t+p) - (s_t+p).x_t] + sum_i p_i (sum_t x_ti - L): the brackets are (a), the
last sum vanishes on feasible x. (c) With s11 + s22 >= s12 + s21, p = (s12 - s11, 0) gives
D(p) = s11 + s22 = P (the other case by relabelling). (d) Negate the expert rows: every column
of the matrix has exactly one +1 (its token row) and one -1 (its expert row). For a square
submatrix B, induct on its size: a zero column gives det 0; a column with one non-zero entry
gives det = +-(a smaller minor); if every column has two non-zeros, the rows sum to zero and
det B = 0. Negating rows changes minors only by sign, and appending the identity rows of
0 <= x <= 1 keeps total unimodularity, so every vertex of the LP is integral.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, identity

from lfbtheory import dual_objective, optimal_prices

K_ = sp.Symbol("k", positive=True, integer=True)
E_ = sp.Symbol("E", positive=True, integer=True)
TOPK, RX = sp.symbols("topK rx", real=True)  # topKsum(r) and r.x


def topk_chain(lem: Lemma) -> None:
    """(a) for every E and k: per coordinate of the top-k set S, r - r x = theta (1 - x) +
    d (1 - x) with r = theta + d; off S, -r x = -theta x + e x with r = theta - e; summed over S
    (k coordinates) and its complement (E - k), with sum_i x_i = k."""
    lem.assume(K_, E_, meaning="k experts per token, E experts")
    lem.coordinate_set("S", K_)
    lem.coordinate_set("not S", E_ - K_)
    theta = sp.Symbol("theta", real=True)
    d = lem.coordinate(
        "d", "d_i = r_i - theta >= 0 on the top-k set S", "nonneg", indexed=False, over="S"
    )
    x = lem.coordinate("x", "x_i >= 0 on S", "nonneg", indexed=False, over="S")
    e = lem.coordinate("e", "e_i = theta - r_i >= 0 off S", "nonneg", indexed=False, over="not S")
    xo = lem.coordinate("xo", "x_i >= 0 off S", "nonneg", indexed=False, over="not S")
    sd, rxs, xs, dx, rxn, xn, ex = sp.symbols("SD RX_S X_S DX RX_N X_N EX", real=True)
    lem.sum_of(sd, d)
    lem.sum_of(rxs, (theta + d) * x)
    lem.sum_of(xs, x)
    lem.sum_of(dx, d * (1 - x))
    lem.sum_of(rxn, (theta - e) * xo)
    lem.sum_of(xn, xo)
    lem.sum_of(ex, e * xo)
    lem.define("topK", TOPK, K_ * theta + sd)
    lem.define("r.x", RX, rxs + rxn)
    lem.hypothesis("box", x, "<=", 1, status=assumed("the box x <= 1 of the LP"))
    lem.hypothesis("row", xs + xn, "==", K_, status=assumed("sum_i x_i = k, the row constraint"))
    lem.identity("(a) on S", (theta + d) - (theta + d) * x, theta - theta * x + d * (1 - x))
    lem.summed(
        "(a) summed on S", "(a) on S", {d: sd, (theta + d) * x: rxs, x: xs, d * (1 - x): dx}, K_
    )
    lem.identity("(a) off S", -(theta - e) * xo, -theta * xo + e * xo)
    lem.summed(
        "(a) summed off S", "(a) off S", {(theta - e) * xo: rxn, xo: xn, e * xo: ex}, E_ - K_
    )
    lem.certify("(a) d (1 - x) >= 0", 0, "<=", d * (1 - x), using=[(d, "box")])
    lem.summed("(a) DX >= 0", "(a) d (1 - x) >= 0", {d * (1 - x): dx}, K_)
    lem.certify("(a) e x >= 0", 0, "<=", e * xo, terms=[e * xo])
    lem.summed("(a) EX >= 0", "(a) e x >= 0", {e * xo: ex}, E_ - K_)
    fact = lem.certify(
        "(a)",
        RX,
        "<=",
        TOPK,
        using=[
            (-1, "(a) summed on S"),
            (-1, "(a) summed off S"),
            (theta, "row"),
            (1, "(a) DX >= 0"),
            (1, "(a) EX >= 0"),
        ],
        subs=["topK", "r.x"],
    )
    lem.theorem("(a)", fact, RX, "<=", TOPK)
    # x = 1_S attains it (r.1_S = topKsum(r)), so the maximum is exactly topKsum(r)


def lagrangian_and_weak_duality(lem: Lemma, n: int, n_experts: int, k: int) -> None:
    """(b): the Lagrangian identity and the weak-duality certificate, fully symbolic."""
    p = sp.symbols(f"p0:{n_experts}", real=True)
    cap = sp.Rational(n * k, n_experts)
    x = sp.Matrix(n, n_experts, lambda t, i: sp.Symbol(f"x{t}{i}", real=True))
    s = sp.Matrix(n, n_experts, lambda t, i: sp.Symbol(f"s{t}{i}", real=True))
    cols = [sum(x[t, i] for t in range(n)) for i in range(n_experts)]
    sx = sum(s[t, i] * x[t, i] for t in range(n) for i in range(n_experts))
    lagr = sx + sum(p[i] * (cols[i] - cap) for i in range(n_experts))
    separated = sum(
        (s[t, i] + p[i]) * x[t, i] for t in range(n) for i in range(n_experts)
    ) - cap * sum(p)
    identity(lagr, separated, "Lagrangian separates over tokens: sum_t (s_t+p).x_t - L sum p")

    # Weak duality: parametrise each token's biased scores r_t = s_t + p around its own top-k set
    # S_t (any choice: relabelling experts), with x_t in the box via x = 1 - y on S_t.
    pieces, terms, equalities = [], [], []
    for t in range(n):
        theta = sp.Symbol(f"theta{t}", real=True)
        order = [(t + j) % n_experts for j in range(n_experts)]  # S_t = first k of this order
        r_t = [None] * n_experts
        x_t = [None] * n_experts
        for pos, i in enumerate(order):
            if pos < k:
                di, yi = (
                    sp.Symbol(f"d{t}{i}", nonnegative=True),
                    sp.Symbol(f"y{t}{i}", nonnegative=True),
                )
                lem.assume(di, yi, meaning="gap to theta_t; box slack y = 1 - x")
                r_t[i], x_t[i] = theta + di, 1 - yi
                terms.append(di * yi)
            else:
                ei, xi = (
                    sp.Symbol(f"e{t}{i}", nonnegative=True),
                    sp.Symbol(f"xo{t}{i}", nonnegative=True),
                )
                lem.assume(ei, xi, meaning="gap to theta_t; x >= 0")
                r_t[i], x_t[i] = theta - ei, xi
                terms.append(ei * xi)
        row = lem.hypothesis(
            f"row [t={t}, n={n}, E={n_experts}, k={k}]",
            sum(x_t) - k,
            status=assumed("sum_i x_ti = k, the row constraint"),
        )
        equalities.append((-theta, row))
        pieces.append((r_t, x_t, sum(r_t[i] for i in order[:k])))
    sub = {}
    for t, (r_t, x_t, _) in enumerate(pieces):
        for i in range(n_experts):
            sub[s[t, i]] = r_t[i] - p[i]
            sub[x[t, i]] = x_t[i]
    dual = sum(topk for _, _, topk in pieces) - cap * sum(p)
    primal = sx.subs(sub)
    cols_sub = [c.subs(sub) for c in cols]
    for i in range(n_experts):
        col = lem.hypothesis(
            f"col [i={i}, n={n}, E={n_experts}, k={k}]",
            cols_sub[i] - cap,
            status=assumed("sum_t x_ti = L, the column constraint"),
        )
        equalities.append((p[i], col))
    label = f"(b) [n={n}, E={n_experts}, k={k}]"
    fact = lem.certify(label, primal, "<=", dual, using=equalities, terms=terms)
    lem.theorem(label, fact, primal, "<=", dual)


def strong_duality_symbolic(lem: Lemma) -> None:
    """(c) n = E = 2, k = 1: an explicit p with D(p) = P, in the case where the diagonal is the
    primal maximum (the other case is the same after swapping the two experts)."""
    s11, s12, s21 = sp.symbols("s11 s12 s21", real=True)
    delta = lem.var("delta", "the excess s11 + s22 - (s12 + s21) >= 0 of the diagonal case")
    s22 = s12 + s21 - s11 + delta
    q = s12 - s11  # p = (q, 0): token 1 is tied, max(s11 + q, s12) = s12
    lem.identity("(c) token 1 tied", s11 + q, s12)
    lem.certify("(c) token 2 prefers expert 2", s21 + q, "<=", s22, terms=[delta])
    value = lem.identity("(c) D(p) = P", s12 + s22 - (q + 0), s11 + s22)
    lem.theorem("(c) D(p) = P", value, s12 + s22 - (q + 0), "==", s11 + s22)
    opt = lem.certify("(c) the diagonal is optimal", s12 + s21, "<=", s11 + s22, terms=[delta])
    lem.theorem("(c) the diagonal is optimal", opt, s12 + s21, "<=", s11 + s22)


def _assignments(n: int, n_experts: int, k: int, cap: int):
    rows = [np.array(c) for c in itertools.combinations(range(n_experts), k)]
    for choice in itertools.product(rows, repeat=n):
        x = np.zeros((n, n_experts), dtype=np.int64)
        for t, c in enumerate(choice):
            x[t, c] = 1
        if np.all(x.sum(axis=0) == cap):
            yield x


def strong_duality_exhaustive(lem: Lemma) -> None:
    """(c) every small integer instance: max over assignments == D(p) for an integral p."""
    count, ok = 0, True
    for n, n_experts, k, values in ((2, 2, 1, 3), (2, 4, 2, 3), (4, 2, 1, 3), (3, 3, 1, 2)):
        cap = n * k // n_experts
        feas = np.array(list(_assignments(n, n_experts, k, cap)))  # (m, n, E)
        for flat in itertools.product(range(values), repeat=n * n_experts):
            s = np.array(flat, dtype=np.float64).reshape(n, n_experts)
            objs = np.einsum("mte,te->m", feas, s)
            best = int(np.argmax(objs))
            primal = float(objs[best])
            p = optimal_prices(s, k, feas[best])
            ok &= p is not None  # the best assignment has certifying prices
            # Prices are shortest-path distances over integer edge weights: integral after a shift.
            q = p - p.min()
            qi = np.round(q)
            ok &= bool(np.max(np.abs(q - qi)) < 1e-9)  # integral up to a shift
            ok &= dual_objective(s, k=k, bias=qi) == primal  # D(p*) == P exactly
            count += 1
    f = lem.checked(
        "(c) exhaustive",
        f"D(p*) = P exactly with integral shortest-path prices on all {count} integer instances "
        "(n, E, k) in {(2,2,1), (2,4,2), (4,2,1)} {0,1,2} and (3,3,1) {0,1}",
        ok,
    )
    lem.theorem_checked("(c) exhaustive", f)


def _det(m: list[list[int]]) -> int:
    """Exact integer determinant (Bareiss fraction-free elimination)."""
    a = [row[:] for row in m]
    size, sign, prev = len(a), 1, 1
    for c in range(size):
        piv = next((r for r in range(c, size) if a[r][c] != 0), None)
        if piv is None:
            return 0
        if piv != c:
            a[c], a[piv] = a[piv], a[c]
            sign = -sign
        for r in range(c + 1, size):
            for j in range(c + 1, size):
                a[r][j] = (a[r][j] * a[c][c] - a[r][c] * a[c][j]) // prev
        prev = a[c][c]
    return sign * a[-1][-1]


def constraint_matrix(n: int, n_experts: int) -> np.ndarray:
    """Rows: n token rows then E expert rows; column t*E + i is the variable x_ti."""
    tok = np.kron(np.eye(n, dtype=np.int64), np.ones((1, n_experts), dtype=np.int64))
    exp = np.kron(np.ones((1, n), dtype=np.int64), np.eye(n_experts, dtype=np.int64))
    return np.vstack([tok, exp])


def total_unimodularity(lem: Lemma) -> None:
    """(d) every square minor in {-1, 0, 1}, exhaustively, plus the column structure."""
    minors, ok = 0, True
    for n, n_experts in ((2, 2), (2, 3), (3, 2), (3, 3), (2, 4), (4, 2)):
        a = constraint_matrix(n, n_experts)
        signed = a.copy()
        signed[n:] *= -1
        ok &= bool(np.all(signed.sum(axis=0) == 0) and np.all((a != 0).sum(axis=0) == 2))
        rows, cols = a.shape
        al = a.tolist()
        for size in range(1, min(rows, cols) + 1):
            for rsel in itertools.combinations(range(rows), size):
                sub_rows = [al[r] for r in rsel]
                for csel in itertools.combinations(range(cols), size):
                    d = _det([[row[c] for c in csel] for row in sub_rows])
                    ok &= d in (-1, 0, 1)
                    minors += 1
    f = lem.checked(
        "(d)",
        f"all {minors} square minors of the constraint matrices (n, E) in {{(2,2), (2,3), (3,2), "
        "(3,3), (2,4), (4,2)} are in {-1, 0, 1}; every column has one token and one expert entry",
        ok,
    )
    lem.theorem_checked("(d)", f)


def derive() -> Lemma:
    lem = Lemma(__doc__)
    topk_chain(lem)
    for k in (1, 2):
        lagrangian_and_weak_duality(lem, 2, 3, k)
    strong_duality_symbolic(lem)
    return lem


def main() -> Lemma:
    lem = derive()
    strong_duality_exhaustive(lem)
    total_unimodularity(lem)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
