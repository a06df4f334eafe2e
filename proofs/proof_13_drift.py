"""Lemma 13: under drift, R_dyn(T) <= R^2/(2 eta) + R P_T/eta + eta G^2 T/2; eta* and its value.

Claim. Let f_t be convex (here f_t = D_t), p_{t+1} = p_t - eta g_t with g_t a subgradient of
f_t at p_t (the proportional rule with constant u: eta = u/L, Lemma 3), and let q_1, ..., q_T be
any comparators (here the per-batch optimal prices p*_t, centred), q_{T+1} := q_T,
P_T = sum_{t<T} ||q_{t+1} - q_t|| (the path length), ||g_t|| <= G and ||p_t - q_t|| <= R for
t <= T+1. Then
(a) g.(p - q) = (||p - q||^2 - ||p' - q||^2)/(2 eta) + eta ||g||^2/2 with p' = p - eta g;
(b) -||p' - q||^2 <= -||p' - q'||^2 + 2 R ||q' - q||  (by Cauchy-Schwarz and ||p' - q'|| <= R);
(c) the dynamic regret sum_t f_t(p_t) - f_t(q_t) <= R^2/(2 eta) + R P_T/eta + eta G^2 T/2;
(d) the bound is minimised by eta* = sqrt((R^2 + 2 R P_T)/(G^2 T)) with value
    G sqrt((R^2 + 2 R P_T) T) (AM-GM certificate); for the proportional rule u* = L eta*.
With P_T = 0 this is Lemma 5(b). The step identities are proved symbolically for E = 3 (the
algebra is the same for every E), the Cauchy-Schwarz step by a certificate with the norms as
named hypotheses, the sum by telescoping; lfbtheory.analysis.drift's bound and step agree with
these expressions, and the bound is checked on the package on a drifting stream.

Hypotheses (named equalities and slacks of the certificates). norm: nx^2 = ||x||^2 and
nd^2 = ||d||^2 with nx, nd > 0 (x = p' - q', d = q' - q); radius: ||p_t - q_t|| <= R;
gradient: ||g_t||^2 <= G^2.

Assumptions. Convex f_t with subgradients (Lemmas 1-2), unconstrained steps, p_t and q_t
centred (D_t and the routing are shift invariant and sum g_t = 0, so g.(p - q) does not change).
Source. Zinkevich, ICML 2003, Thm 2 (dynamic regret with path length, there with projections);
Hall & Willett, arXiv 1307.5944. The unconstrained form and its constants are derived here.

Proof. (a) expand ||p - eta g - q||^2. (b) ||p' - q||^2 = ||x + d||^2 with x = p' - q',
d = q' - q, = ||x||^2 + 2 x.d + ||d||^2 >= ||x||^2 - 2 ||x|| ||d|| since
||x|| ||d|| + x.d = (||x|| ||d||/2) ||x/||x|| + d/||d|| ||^2 >= 0; and ||x|| <= R. (c) f_t(p_t)
- f_t(q_t) <= g_t.(p_t - q_t) (Lemma 2); by (a), (b) and ||g_t|| <= G this is at most
(a_t - a_{t+1})/(2 eta) + R ||q_{t+1} - q_t||/eta + eta G^2/2 with a_t = ||p_t - q_t||^2;
telescope and drop -a_{T+1}. (d) bound - G sqrt(X T) = (sqrt X - eta G sqrt T)^2/(2 eta) with
X = R^2 + 2 R P_T.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _certify import Lemma, check, identity

from lfbtheory import dual_objective, route
from lfbtheory.analysis import drift as DR
from lfbtheory.online import updates as U
from lfbtheory.workloads import make_workload, materialize

LEM = Lemma(__doc__)
R, G, P, T, eta = sp.symbols("R G P T eta", positive=True)
LEM.assume(R, G, P, T, eta, meaning="radius, gradient bound, path length, horizon, step")


def dynamic_bound() -> sp.Expr:
    """(c): R^2/(2 eta) + R P/eta + eta G^2 T/2."""
    return R**2 / (2 * eta) + R * P / eta + eta * G**2 * T / 2


def optimal_step() -> sp.Expr:
    """(d): eta* = sqrt((R^2 + 2 R P)/(G^2 T))."""
    return sp.sqrt((R**2 + 2 * R * P) / (G**2 * T))


def optimal_value() -> sp.Expr:
    """(d): G sqrt((R^2 + 2 R P) T)."""
    return G * sp.sqrt((R**2 + 2 * R * P) * T)


def steps(n_experts: int = 3) -> None:
    p = sp.Matrix(sp.symbols(f"p0:{n_experts}", real=True))
    q = sp.Matrix(sp.symbols(f"q0:{n_experts}", real=True))
    q1 = sp.Matrix(sp.symbols(f"r0:{n_experts}", real=True))  # q' = q_{t+1}
    g = sp.Matrix(sp.symbols(f"g0:{n_experts}", real=True))
    p1 = p - eta * g
    identity(
        g.dot(p - q),
        ((p - q).dot(p - q) - (p1 - q).dot(p1 - q)) / (2 * eta) + eta * g.dot(g) / 2,
        "(a) one step against a moving comparator",
    )
    x, d = p1 - q1, q1 - q
    identity((p1 - q).dot(p1 - q), x.dot(x) + 2 * x.dot(d) + d.dot(d), "(b) expansion")
    # Cauchy-Schwarz: ||x|| ||d|| + x.d >= 0 with nx = ||x||, nd = ||d|| (named hypotheses)
    xs = sp.Matrix(sp.symbols(f"x0:{n_experts}", real=True))
    ds = sp.Matrix(sp.symbols(f"d0:{n_experts}", real=True))
    nx, nd = sp.symbols("n_x n_d", positive=True)
    LEM.assume(nx, nd, meaning="the norms ||x||, ||d|| (> 0; the case 0 is trivial)")
    hx = LEM.hypothesis("norm [x]", xs.dot(xs) - nx**2)
    hd = LEM.hypothesis("norm [d]", ds.dot(ds) - nd**2)
    LEM.certify_nonneg(
        nx * nd + xs.dot(ds),
        [nx * nd / 2 * sum((xs[i] / nx + ds[i] / nd) ** 2 for i in range(n_experts))],
        "(b) ||x|| ||d|| + x.d >= 0",
        equalities=[(-nd / (2 * nx), hx), (-nx / (2 * nd), hd)],
    )
    # hence -(||x||^2 + 2 x.d + ||d||^2) <= -||x||^2 + 2 ||x|| ||d|| <= -||x||^2 + 2 R ||d||
    xd = xs.dot(ds)
    cs = LEM.slack("c", nx * nd + xd, by="(b) ||x|| ||d|| + x.d >= 0")
    rad = LEM.slack("rho", R - nx, by="radius")
    LEM.certify_nonneg(
        (-(nx**2) + 2 * R * nd) - (-(nx**2 + 2 * xd + nd**2)),
        [2 * cs, 2 * rad * nd, nd**2],
        "(b) -||p' - q||^2 <= -||p' - q'||^2 + 2 R ||q' - q||",
        equalities=[(2, LEM.slack_of("c")), (2 * nd, LEM.slack_of("rho"))],
    )


def summed() -> None:
    """(c) telescoping for T = 4, the general induction step, and (d)."""
    a = sp.symbols("a1:6", nonnegative=True)  # a_1 .. a_5
    dd = sp.symbols("d1:5", nonnegative=True)  # ||q_{t+1} - q_t||, d_T = 0
    g2 = sp.symbols("G1:5", nonnegative=True)  # ||g_t||^2
    LEM.assume(*a, *dd, *g2, meaning="squared distances, comparator moves, squared gradients")
    per_step = [(a[t] - a[t + 1]) / (2 * eta) + R * dd[t] / eta + eta * g2[t] / 2 for t in range(4)]
    total = sum(per_step)
    path = sum(dd[:3])  # P_T = sum_{t<T}; d_T = ||q_{T+1} - q_T|| = 0
    slacks = [LEM.slack(f"gam{t}", G**2 - g2[t], by="gradient") for t in range(4)]
    LEM.certify_nonneg(
        dynamic_bound().subs({T: 4, P: path}) - total.subs(dd[3], 0),
        [a[4] / (2 * eta)]
        + [eta * sl / 2 for sl in slacks]
        + [LEM.slack("al1", R**2 - a[0], by="radius") / (2 * eta)],
        "(c) dynamic regret bound, T = 4",
        equalities=[(eta / 2, LEM.slack_of(f"gam{t}")) for t in range(4)]
        + [(1 / (2 * eta), LEM.slack_of("al1"))],
    )
    # induction: B_{T+1} - B_T = the per-step bound with P_{T+1} - P_T = d_T (telescoping)
    a_t1, a_t2, d_t = sp.symbols("a_T1 a_T2 d_T", real=True)
    acc = sp.Symbol("Acc", real=True)
    identity(
        (acc - a_t1 / (2 * eta)) + (a_t1 - a_t2) / (2 * eta) + R * d_t / eta + eta * G**2 / 2,
        acc - a_t2 / (2 * eta) + R * d_t / eta + eta * G**2 / 2,
        "(c) telescoping induction step",
    )
    # (d) AM-GM
    big_x = R**2 + 2 * R * P
    LEM.certify_nonneg(
        dynamic_bound() - optimal_value(),
        [(sp.sqrt(big_x) - eta * G * sp.sqrt(T)) ** 2 / (2 * eta)],
        "(d) bound >= G sqrt((R^2 + 2RP) T)",
    )
    identity(dynamic_bound().subs(eta, optimal_step()), optimal_value(), "(d) value at eta*")
    identity(dynamic_bound().subs(P, 0), R**2 / (2 * eta) + eta * G**2 * T / 2, "P = 0: Lemma 5")


def package(rng: np.random.Generator) -> None:
    """drift.py agrees with (c), (d); the bound holds on a drifting stream."""
    f_bound = sp.lambdify((R, G, P, T, eta), dynamic_bound())
    f_step = sp.lambdify((R, G, P, T), optimal_step())
    for _ in range(20):
        r, gg, pp, tt, ee = rng.uniform(0.1, 5.0, size=5)
        check(
            abs(DR.dynamic_regret_bound(r, gg, pp, tt, ee) - f_bound(r, gg, pp, tt, ee))
            <= 1e-12 * f_bound(r, gg, pp, tt, ee),
            "drift.dynamic_regret_bound == (c)",
        )
        check(
            abs(DR.bound_optimal_step(r, gg, pp, tt) - f_step(r, gg, pp, tt))
            <= 1e-12 * f_step(r, gg, pp, tt),
            "drift.bound_optimal_step == (d)",
        )
    n, e, k, horizon = 32, 4, 1, 40
    w = make_workload("drifting", n=n, n_experts=e, drift=0.2)
    batches = list(materialize(w, horizon, 3))
    star = DR.per_batch_prices(batches, k)
    cap = n * k // e
    for u in (0.02, 0.2):
        rule = U.proportional(u)
        st = rule.init(e)
        dyn, dist, gn = 0.0, [], []
        for t, s in enumerate(batches):
            dyn += dual_objective(s, k=k, bias=st.bias) - star.optimum[t]
            dist.append(float(np.linalg.norm(st.bias - star.prices[t])))
            loads = route(s, k, st.bias, normalize=False).loads
            gn.append(float(np.linalg.norm(loads - cap)))
            st = rule.update(loads, st)
        dist.append(float(np.linalg.norm(st.bias - star.prices[-1])))  # q_{T+1} = q_T
        bound = DR.dynamic_regret_bound(
            max(dist), max(gn), DR.price_path_length(star.prices), horizon, u / cap
        )
        check(dyn <= bound, f"(c) measured dynamic regret <= bound (u = {u})")


def main() -> None:
    steps()
    summed()
    package(np.random.default_rng(13))


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
