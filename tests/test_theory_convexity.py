"""Lemma 14 (proofs/proof_14_local_convexity.py) measured: the expected dual of sigmoid scores is
strongly convex only near its optimum (the tie-Laplacian modulus collapses half a unit away),
the quadrature behind that number agrees with the package's routing, and a c/t step gives
logarithmic regret only when c mu >= 1 (0.02/t-type steps grow polynomially)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from lfbtheory import route, simulate
from lfbtheory.analysis.regret import compute_comparators, regret_report
from lfbtheory.online import schedules as S
from lfbtheory.online import updates as U
from lfbtheory.workloads import make_workload, materialize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "proofs"))
import measurements as M  # noqa: E402
import proof_14_local_convexity as P14  # noqa: E402

E = 8
THETA = np.asarray(make_workload("stationary", n=256, n_experts=E).offsets(0))


def LAP(p):  # noqa: N802 - quadrature on 40001 points (measurements.py uses 200001)
    return M.sigmoid_tie_laplacian(THETA, p, 40001)


@pytest.fixture(scope="module")
def optimum():
    return M.sigmoid_optimum(THETA)


def test_the_quadrature_win_probabilities_are_the_packages_routing(optimum):
    rng = np.random.default_rng(3)
    p = optimum + rng.normal(scale=0.1, size=E)
    pi, _ = LAP(p)
    n = 50_000
    scores = 1 / (1 + np.exp(-(THETA + rng.standard_normal((n, E)))))
    loads = route(scores, 1, p, normalize=False).loads
    se = np.sqrt(n * pi * (1 - pi))
    assert np.all(np.abs(loads - n * pi) <= 5 * se), (loads, n * pi)
    np.testing.assert_allclose(LAP(optimum)[0], 1 / E, atol=1e-9)


def test_the_hessian_is_n_times_the_tie_laplacian(optimum):
    # Lemma 14 (a): d pi / d p = Lambda (d pi_i / d p_j = -w_ij off the diagonal), by central
    # differences of the quadrature; Hess F = n d pi / d p
    h = 1e-4
    _, lap = LAP(optimum)
    for j in (0, 3):
        step = np.zeros(E)
        step[j] = h
        dpi = (LAP(optimum + step)[0] - LAP(optimum - step)[0]) / (2 * h)
        np.testing.assert_allclose(dpi, lap[:, j], rtol=2e-3, atol=1e-6)


def test_the_modulus_is_local_it_collapses_half_a_unit_from_the_optimum(optimum):
    d = np.zeros(E)
    d[int(np.argmax(THETA))] = 1.0
    d -= d.mean()
    d /= np.linalg.norm(d)
    lam_star = np.linalg.eigvalsh(LAP(optimum)[1])[1]
    lam_far = np.linalg.eigvalsh(LAP(optimum - 0.5 * d)[1])[1]
    assert lam_star > 0.5  # measured 0.93 per token
    assert lam_far < 1e-3 * lam_star  # measured 2.8e-7: no strong convexity there


@pytest.fixture(scope="module")
def runs(optimum):
    n, k, steps = 256, 1, 2000
    batches = materialize(make_workload("stationary", n=n, n_experts=E), steps, 0)
    comp = compute_comparators(batches, k, num_checkpoints=30)
    lam2 = float(np.linalg.eigvalsh(LAP(optimum)[1])[1])  # the modulus per token at p*
    out = {}
    for c_mu in (0.15, 2.0):
        c_u = c_mu * k / (E * lam2)  # c mu = (c_u / L) (n lambda_2) = c_u E lambda_2 / k
        tr = simulate(batches, k, U.proportional(S.inverse(c_u)))
        out[c_mu] = (c_u, tr, regret_report(tr, batches, k, comparators=comp))
    return out


def _exponent(rep) -> float:
    r, t = rep.dual_regret, rep.t
    i = int(np.searchsorted(t, t[-1] // 4))
    return float(np.log(r[-1] / r[i]) / np.log(t[-1] / t[i]))


def test_a_c_over_t_step_with_c_mu_below_one_grows_polynomially(runs):
    # Lemma 14 (d): on the quadratic model the regret grows like T^(1 - 2 c mu) = T^0.7 here;
    # measured on the package's proportional rule with u_t = c_u/t (c_u = 0.02)
    _, _, rep = runs[0.15]
    assert _exponent(rep) > 0.5
    assert rep.growth["dual_regret"].cls in ("undetermined", "linear", "sqrt-like")


def test_a_c_over_t_step_with_c_mu_above_one_stays_logarithmic_and_below_its_bound(runs):
    c_u, tr, rep = runs[2.0]
    assert _exponent(rep) < 0.1
    cap = 256 // E
    g2 = float(np.max(np.sum((tr.loads - cap) ** 2, axis=1)))  # the run's G^2
    bound = sp.lambdify((P14.c_, P14.G_, P14.T_), P14.bound_c_over_t())
    assert rep.dual_regret[-1] <= bound(c_u / cap, np.sqrt(g2), rep.t[-1])
