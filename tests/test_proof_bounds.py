"""Numerical counterparts of the lemmas in proofs/: (measured, theoretical) pairs, PEPit style.

Each bound is the sympy expression derived in its proof file, evaluated with ``sympy.lambdify``;
the measured quantity comes from the package (routing, duals, rules, schedules, metrics).
Upper bounds are checked with ``measured <= bound``; where the lemma says the bound is attained,
the test checks equality. Step-size translation used throughout: the proportional rule
b += u (c_bar - c)/c_bar is a subgradient step on D/L with step u, i.e. on D with eta = u/L
(Lemma 3), so a schedule u_t gives eta_t = u_t / L in the regret bounds of Lemma 5.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy.special import logsumexp
from scipy.special import softmax as sp_softmax

from lfbtheory import (
    dual_objective,
    dual_subgradient,
    maxvio,
    maxvio_global,
    route,
    sigmoid,
    softmax,
    solve_balanced,
    tie_margin,
)
from lfbtheory.analysis.causality import expert_choice_leakage
from lfbtheory.online import schedules as S
from lfbtheory.online import updates as U

PROOFS = Path(__file__).resolve().parent.parent / "proofs"
sys.path.insert(0, str(PROOFS))

import proof_05_regret as P5  # noqa: E402
import proof_06_expected_dual as P6  # noqa: E402
import proof_07_bounded_bias as P7  # noqa: E402
import proof_08_expert_choice_leakage as P8  # noqa: E402
import proof_09_aux_loss as P9  # noqa: E402
import proof_10_maxvio_range as P10  # noqa: E402

REL = 1e-9  # slack for float rounding in measured sums (relative)


def _stream(seed: int, n: int, n_experts: int, batches: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    popularity = rng.normal(size=n_experts)
    return [sigmoid(rng.normal(size=(n, n_experts)) + popularity) for _ in range(batches)]


# ---------------------------------------------------------------- Lemma 1 and 2 (duality)


def test_weak_duality_and_tight_strong_duality_on_random_batches():
    rng = np.random.default_rng(11)
    for _ in range(3):
        s = sigmoid(rng.normal(size=(48, 4)))
        opt = solve_balanced(s, 2)
        # strong duality: D(p*) == P (tight)
        np.testing.assert_allclose(dual_objective(s, k=2, bias=opt.bias), opt.objective, rtol=1e-9)
        for _ in range(25):  # weak duality: D(p) >= P for every p
            p = rng.normal(scale=0.5, size=4)
            assert dual_objective(s, k=2, bias=p) >= opt.objective - 1e-9


def test_subgradient_inequality_on_random_prices():
    rng = np.random.default_rng(12)
    s = sigmoid(rng.normal(size=(40, 5)))
    for _ in range(200):
        p, q = rng.normal(size=5), rng.normal(size=5)
        g = dual_subgradient(s, k=1, bias=p)
        measured = dual_objective(s, k=1, bias=q)
        theoretical = dual_objective(s, k=1, bias=p) + g @ (q - p)
        assert measured >= theoretical - 1e-9


# ---------------------------------------------------------------- Lemma 4 (preference rule)


def test_preference_rule_on_a_realistic_batch():
    rng = np.random.default_rng(13)
    s = sigmoid(rng.normal(size=(256, 16)) + rng.normal(size=16))
    k, cap = 2, 256 * 2 // 16
    r0 = route(s, k)
    margin = tie_margin(s, k)
    for u in (1e-3, 1e-2, 5e-2):
        rule = U.sign(u)
        st = rule.update(r0.loads, rule.init(16, None))
        r1 = route(s, k, st.bias)
        small_moves = 0
        for t in range(256):
            for i in set(r0.experts[t]) - set(r1.experts[t]):
                for j in set(r1.experts[t]) - set(r0.experts[t]):
                    assert np.sign(cap - r0.loads[j]) > np.sign(cap - r0.loads[i])  # (i)
                    if u < margin[t]:
                        small_moves += 1
                        assert r0.loads[i] > cap > r0.loads[j]  # (ii)
        if u == 1e-2:
            assert small_moves > 0


# ---------------------------------------------------------------- Lemma 5 (regret)

BOUND_CONST = sp.lambdify((P5.R, P5.G, P5.T, P5.eta), P5.bound_constant())
BOUND_ISQRT = sp.lambdify((P5.R, P5.G, P5.T, P5.c), P5.bound_inverse_sqrt())
BOUND_SC = sp.lambdify((P5.G, P5.T, P5.mu), P5.bound_strongly_convex())
G2_WORST = sp.lambdify((P5.n_, P5.k_, P5.E_), P5.gradient_norm_sq_bound())


def _online(batches, k, schedule, p_star):
    """Proportional rule over the stream: per-batch D_t(p_t), ||g_t||^2, ||p_t - p*||."""
    n, e = batches[0].shape
    rule = U.proportional(schedule)
    st = rule.init(e, None)
    dual, g2, dist = [], [], []
    cap = n * k // e
    for s in batches:
        p = st.bias
        dual.append(dual_objective(s, k=k, bias=p))
        dist.append(float(np.linalg.norm(p - p_star)))
        r = route(s, k, p)
        g2.append(float(np.sum((r.loads - cap) ** 2)))
        st = rule.update(r.loads, st)
    dist.append(float(np.linalg.norm(st.bias - p_star)))
    return np.array(dual), np.array(g2), np.array(dist)


@pytest.fixture(scope="module")
def regret_setup():
    n, e, k, horizon = 32, 4, 1, 100
    batches = _stream(5, n, e, horizon)
    cap = n * k // e
    opt = solve_balanced(np.vstack(batches), k, capacity=horizon * cap)  # hindsight, capacity T*L
    return batches, k, cap, opt


def test_hindsight_price_attains_the_pooled_lp(regret_setup):
    batches, k, cap, opt = regret_setup
    measured = sum(dual_objective(s, k=k, bias=opt.bias) for s in batches)
    np.testing.assert_allclose(measured, opt.objective, rtol=1e-9)  # min_p sum_t D_t = pooled LP


def test_constant_step_regret_below_bound(regret_setup):
    batches, k, cap, opt = regret_setup
    n, e = batches[0].shape
    u = 0.05
    dual, g2, dist = _online(batches, k, S.constant(u), opt.bias)
    horizon = len(batches)
    regret = dual.sum() - opt.objective
    eta = u / cap  # step on D (Lemma 3)
    g2_worst = G2_WORST(n, k, e)
    assert g2.max() <= g2_worst
    bound_measured_g = BOUND_CONST(dist[0], math.sqrt(g2.max()), horizon, eta)
    assert regret <= bound_measured_g <= BOUND_CONST(dist[0], math.sqrt(g2_worst), horizon, eta)
    # the whole curve against the fixed comparator p*
    partial = np.cumsum(dual) - np.cumsum([dual_objective(s, k=k, bias=opt.bias) for s in batches])
    ts = np.arange(1, horizon + 1)
    assert np.all(partial <= BOUND_CONST(dist[0], math.sqrt(g2.max()), ts, eta) * (1 + REL))


def test_inverse_sqrt_step_regret_below_bound(regret_setup):
    batches, k, cap, opt = regret_setup
    c_u = 0.5  # u_t = 0.5 / sqrt(t + 1) (t from 0)  ->  eta_t = (0.5 / L) / sqrt(t), t from 1
    dual, g2, dist = _online(batches, k, S.inverse_sqrt(c_u), opt.bias)
    regret = dual.sum() - opt.objective
    bound = BOUND_ISQRT(dist.max(), math.sqrt(g2.max()), len(batches), c_u / cap)
    assert 0 <= regret <= bound


def test_constant_step_linear_regret_instance_is_tight():
    # n = E = 2, k = 1, s = 0: D(p) = |p_0 - p_1|; R_T = 2u floor(T/2); bound with R = 0 and
    # G^2 = n^2 k (1 - k/E) = 2, eta = u/L = u is u T: equality at every even T.
    u = 0.125
    s = np.zeros((2, 2))
    rule = U.proportional(S.constant(u))
    st = rule.init(2, None)
    total = 0.0
    for t in range(1, 101):
        total += dual_objective(s, k=1, bias=st.bias)
        st = rule.update(route(s, 1, st.bias, normalize=False).loads, st)
        theoretical = BOUND_CONST(0.0, math.sqrt(G2_WORST(2, 1, 2)), t, u)
        assert total == 2 * u * (t // 2) <= theoretical * (1 + 1e-12)
        if t % 2 == 0:
            assert math.isclose(total, theoretical, rel_tol=1e-12)  # the bound is attained


def test_summation_bounds_and_equality_at_one():
    ts = np.arange(1, 100_001, dtype=np.float64)
    harm = np.cumsum(1 / ts)
    roots = np.cumsum(1 / np.sqrt(ts))
    h_bound = sp.lambdify(P5.T, 1 + sp.log(P5.T))(ts)
    r_bound = sp.lambdify(P5.T, 2 * sp.sqrt(P5.T) - 1)(ts)
    assert np.all(harm <= h_bound + 1e-12) and np.all(roots <= r_bound + 1e-9)
    assert harm[0] == h_bound[0] and roots[0] == r_bound[0]


def test_gradient_norm_bound_and_its_equality_case():
    rng = np.random.default_rng(14)
    for n, e, k in ((64, 8, 2), (30, 5, 1), (48, 6, 3)):
        cap = n * k / e
        worst = G2_WORST(n, k, e)
        for _ in range(20):
            loads = route(rng.random((n, e)), k, normalize=False).loads
            assert np.sum((loads - cap) ** 2) <= worst
        same = route(
            np.tile(rng.random(e), (n, 1)), k, normalize=False
        ).loads  # all pick the same k
        np.testing.assert_allclose(np.sum((same - cap) ** 2), worst, rtol=1e-12)


# ------------------------------------------------- Lemma 5(d) + Lemma 6 (expected Gumbel dual)

E_G, N_G, BETA = 4, 1024, 1.0
THETA = np.linspace(-0.25, 0.25, E_G)
MU_OF_DELTA = sp.lambdify(
    (P6.n_, P6.beta, sp.Symbol("E", positive=True), P6.Delta), P6.strong_convexity_bound()
)


def _expected_dual():
    f, theta, p = P6.expected_dual(E_G)
    subs = {P6.n_: N_G, P6.beta: BETA}
    fn = sp.lambdify((theta, p), f.subs(subs))
    grad = sp.lambdify((theta, p), [sp.diff(f, pj).subs(subs) for pj in p])
    hess = sp.lambdify((theta, p), sp.hessian(f, p).subs(subs))
    return fn, grad, hess


def test_expected_loads_are_n_softmax():
    fn, grad, _ = _expected_dual()
    rng = np.random.default_rng(15)
    p = np.array([0.3, -0.1, 0.0, -0.2])
    reps = 400
    loads = np.stack(
        [
            route(THETA + BETA * rng.gumbel(size=(N_G, E_G)), 1, p, normalize=False).loads
            for _ in range(reps)
        ]
    )
    expected = np.asarray(grad(THETA, p)) + N_G / E_G  # grad F = E[load] - L
    pi = expected / N_G
    se = np.sqrt(N_G * pi * (1 - pi) / reps)
    assert np.all(np.abs(loads.mean(axis=0) - expected) <= 5 * se)
    np.testing.assert_allclose(expected, N_G * sp_softmax((THETA + p) / BETA), rtol=1e-12)


def test_hessian_on_mean_zero_subspace_is_at_least_mu_and_tight_at_optimum():
    _, _, hess = _expected_dual()
    rng = np.random.default_rng(16)
    basis = np.linalg.qr(np.vstack([np.ones(E_G), rng.normal(size=(E_G - 1, E_G))]).T)[0][:, 1:]
    for _ in range(50):
        p = rng.normal(size=E_G)
        h = basis.T @ np.asarray(hess(THETA, p), dtype=np.float64) @ basis
        measured = np.linalg.eigvalsh(h).min()
        delta = np.ptp(THETA + p) / BETA
        assert measured >= MU_OF_DELTA(N_G, BETA, E_G, delta) * (1 - 1e-12)
    h_opt = basis.T @ np.asarray(hess(THETA, -THETA), dtype=np.float64) @ basis
    np.testing.assert_allclose(np.linalg.eigvalsh(h_opt), N_G / (BETA * E_G), rtol=1e-12)  # tight


def _log_regret_run(mu_step, horizon, rng=None):
    """eta_t = 1/(mu t) on F: exact gradient (rng None) or the package's LFB on Gumbel batches."""
    fn, grad, _ = _expected_dual()
    f_star = fn(THETA, -THETA)
    cap = N_G // E_G
    sched = S.inverse(cap / mu_step, 1.0)  # u_t = (L/mu)/(t+1) -> eta_t = 1/(mu t), t from 1
    rule = U.proportional(sched)
    st = rule.init(E_G, None)
    regret, spreads, g2 = 0.0, [0.0], []
    for _ in range(horizon):
        p = st.bias
        regret += fn(THETA, p) - f_star
        spreads.append(np.ptp(THETA + p) / BETA)
        if rng is None:
            loads = np.asarray(grad(THETA, p)) + cap  # expected loads
        else:
            loads = route(THETA + BETA * rng.gumbel(size=(N_G, E_G)), 1, p, normalize=False).loads
        g2.append(float(np.sum((loads - cap) ** 2)))
        st = rule.update(loads, st)
    return regret, max(spreads), max(g2)


def test_one_over_mu_t_regret_on_the_expected_dual():
    delta = 1.0
    mu_step = MU_OF_DELTA(N_G, BETA, E_G, delta)
    horizon = 500
    regret, spread, g2 = _log_regret_run(mu_step, horizon)
    spread = max(spread, np.ptp(THETA - THETA))  # p* = -theta has spread 0
    assert spread <= delta  # hypothesis of Lemma 6(d): F is mu_step-strongly convex where we went
    assert 0 <= regret <= BOUND_SC(math.sqrt(g2), horizon, mu_step)


def test_one_over_mu_t_expected_regret_of_lfb_on_gumbel_batches():
    # Lemma 5(d) bounds the EXPECTED regret; we average 8 seeded runs of the package's
    # proportional rule on sampled batches, with G^2 the worst case n^2 k (1 - k/E) (so the
    # bound is loose, ~300x here). mu must hold where the iterates go: with n = 1024 the noisy
    # first steps keep the spread below delta = 1 in every run (at n = 256 they did not).
    delta = 1.0
    mu_step = MU_OF_DELTA(N_G, BETA, E_G, delta)
    horizon = 200
    runs = [_log_regret_run(mu_step, horizon, np.random.default_rng(100 + i)) for i in range(8)]
    assert all(spread <= delta for _, spread, _ in runs)
    mean_regret = float(np.mean([r for r, _, _ in runs]))
    assert 0 <= mean_regret <= BOUND_SC(math.sqrt(G2_WORST(N_G, 1, E_G)), horizon, mu_step)


# ---------------------------------------------------------------- Lemma 7 (bounded bias)


@pytest.mark.parametrize("rule_name", ["sign", "proportional"])
def test_bias_spread_stays_below_bound_on_streams(rule_name):
    bound = sp.lambdify(
        (P7.a_, P7.b_, P7.u_, sp.Symbol("E", positive=True), sp.Symbol("k", positive=True)),
        P7.bias_spread_bound(rule_name),
    )
    n, e, k, u = 64, 8, 2, 0.05
    rule = U.make_rule(rule_name, u)
    for seed in range(3):
        batches = _stream(20 + seed, n, e, 400)
        lo = min(float(s.min()) for s in batches)
        hi = max(float(s.max()) for s in batches)
        st = rule.init(e, None)
        worst = 0.0
        for s in batches:
            st = rule.update(route(s, k, st.bias).loads, st)
            worst = max(worst, float(np.ptp(st.bias)))
        assert worst <= bound(lo, hi, u, e, k) + 1e-12


def test_bias_spread_bound_is_attained():
    bound = sp.lambdify((P7.a_, P7.b_, P7.u_), P7.bias_spread_bound("sign"))
    s = np.array([[1.0, 0.0], [1.0, 0.0]])
    rule = U.sign(0.25)
    st = rule.init(2, None)
    worst = 0.0
    for _ in range(20):
        st = rule.update(route(s, 1, st.bias, normalize=False).loads, st)
        worst = max(worst, float(np.ptp(st.bias)))
    assert worst == bound(0.0, 1.0, 0.25)


# ---------------------------------------------------------------- Lemma 8 (Expert Choice)


def test_expert_choice_leakage_exact_value_above_bounds():
    strong = sp.lambdify((P8.K_, P8.R_), P8.bound_strong())
    app_d = sp.lambdify((P8.K_, P8.R_), P8.bound_app_d())
    for e in (2, 4, 8, 16, 64):
        for k in range(1, e):
            for T in (e, 4 * e, 64 * e):
                if (k * T) % e:
                    continue
                measured = expert_choice_leakage(T, e, k).exact
                exact = e * math.log2(math.comb(T, k * T // e)) / T  # independent computation
                assert abs(measured - exact) <= 1e-9 * max(1.0, exact)
                assert measured >= strong(k, k / e) * (1 - 1e-12) > app_d(k, k / e) - 1e-12


# ---------------------------------------------------------------- Lemma 9 (auxiliary loss)


def test_aux_loss_gradient_matches_closed_form_and_is_nonzero():
    z_sym = sp.symbols("z0:3", real=True)
    f_sym = sp.symbols("f0:3", nonnegative=True)
    o_sym = sp.symbols("P0:3", nonnegative=True)
    expr = P9.aux_loss_softmax_token(z_sym, f_sym, o_sym)
    grad_fn = sp.lambdify(
        (z_sym, f_sym, o_sym, P9.alpha, P9.n_), [sp.diff(expr, zj) for zj in z_sym]
    )
    rng = np.random.default_rng(17)
    n, e, k, alpha = 12, 3, 1, 0.01
    z = rng.normal(size=(n, e))
    f = route(softmax(z), k).loads / (n * k)  # detached counts

    def loss(zz):
        return alpha * e * float(np.sum(f * softmax(zz).mean(axis=0)))

    h = 1e-6
    for t in range(n):
        other = softmax(np.delete(z, t, axis=0)).sum(axis=0)
        closed = np.asarray(grad_fn(z[t], f, other, alpha, n), dtype=np.float64)
        fd = np.zeros(e)
        for j in range(e):
            zp, zm = z.copy(), z.copy()
            zp[t, j] += h
            zm[t, j] -= h
            fd[j] = (loss(zp) - loss(zm)) / (2 * h)
        np.testing.assert_allclose(fd, closed, atol=1e-9)
        assert np.max(np.abs(closed)) > 0  # f is not uniform here
    assert np.ptp(f) > 0
    # uniform routing: the loss equals alpha (Lemma 9(a))
    assert abs(alpha * e * np.sum(np.full(e, 1 / e) * np.full(e, 1 / e)) - alpha) < 1e-15


# ---------------------------------------------------------------- Lemma 10 (MaxVio)


def test_maxvio_range_extremes_and_random_loads():
    upper = sp.lambdify((P10.E_, P10.k_), P10.maxvio_upper())
    rng = np.random.default_rng(18)
    for n, e, k in ((64, 8, 2), (100, 10, 1), (90, 6, 3)):
        extreme = np.array([n] * k + [0] * (e - k))
        np.testing.assert_allclose(maxvio(extreme), upper(e, k), rtol=1e-12)  # equality case
        if (n * k) % e == 0:
            assert maxvio(np.full(e, n * k // e)) == 0.0  # the other equality case
        hist = np.stack(
            [route(rng.random((n, e)) ** 3, k, normalize=False).loads for _ in range(30)]
        )
        v = maxvio(hist)
        assert np.all((v >= 0) & (v <= upper(e, k)))
        g = maxvio_global(hist)
        assert np.all((g >= 0) & (g <= upper(e, k)))


def test_logsumexp_form_of_expected_dual_matches_sympy():
    fn, _, _ = _expected_dual()
    p = np.array([0.1, -0.3, 0.2, 0.0])
    closed = N_G * BETA * (logsumexp((THETA + p) / BETA) + np.euler_gamma) - (N_G / E_G) * p.sum()
    np.testing.assert_allclose(fn(THETA, p), closed, rtol=1e-12)


# ---------------------------------------------------------------- the `lfb prove` runner


def test_lfb_prove_reports_pass_and_exits_zero(capsys):
    from lfbtheory.cli import main

    assert main(["prove", "--only", "maxvio"]) == 0
    out = capsys.readouterr().out
    assert "PASS  proof_10_maxvio_range" in out and "Lemma 10:" in out and "1/1 proofs pass" in out


def test_lfb_prove_reports_a_failing_proof_and_exits_one(tmp_path, capsys):
    from lfbtheory.cli import main

    (tmp_path / "proof_wrong.py").write_text(
        '"""Claim: 1 + 1 == 3."""\n\ndef main():\n    assert 1 + 1 == 3, "arithmetic"\n'
    )
    (tmp_path / "proof_right.py").write_text(
        '"""Claim: 1 + 1 == 2."""\n\ndef main():\n    assert 1 + 1 == 2\n'
    )
    assert main(["prove", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  proof_wrong" in out and "AssertionError: arithmetic" in out
    assert "PASS  proof_right" in out and "1/2 proofs pass" in out


def test_lfb_prove_without_proofs_dir_gives_a_clear_error(tmp_path, capsys):
    from lfbtheory.cli import main

    assert main(["prove", "--dir", str(tmp_path / "nowhere")]) == 2
    assert "proofs/ not found" in capsys.readouterr().err
