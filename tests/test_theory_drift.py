"""Lemma 13 (proofs/proof_13_drift.py) measured on a drifting stream: the dynamic regret of the
proportional rule against its path-length bound on a grid of steps and at the bound-optimal
step; and the contract of lfbtheory.analysis.drift.price_path_length."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from lfbtheory import dual_objective, simulate
from lfbtheory.analysis import drift as DR
from lfbtheory.online import updates as U
from lfbtheory.workloads import make_workload, materialize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "proofs"))
import proof_13_drift as P13  # noqa: E402

BOUND = sp.lambdify((P13.R, P13.G, P13.P, P13.T, P13.eta), P13.dynamic_bound())
N, E, K, STEPS = 32, 4, 1, 150
CAP = N * K // E


def test_price_path_length_is_shift_invariant_and_a_sum_of_centred_steps():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(6, 4))
    shifted = p + rng.normal(size=(6, 1))  # a common shift per row changes nothing
    assert DR.price_path_length(shifted) == pytest.approx(DR.price_path_length(p), rel=1e-12)
    c = p - p.mean(axis=1, keepdims=True)
    expected = sum(np.linalg.norm(c[t + 1] - c[t]) for t in range(5))
    assert DR.price_path_length(p) == pytest.approx(expected, rel=1e-12)
    assert DR.price_path_length(np.tile(p[0], (5, 1))) == 0.0
    cumulative = DR.price_path(p)
    assert cumulative[0] == 0.0 and cumulative[-1] == DR.price_path_length(p)
    assert np.all(np.diff(cumulative) >= 0)
    assert DR.price_path_length(p) >= np.linalg.norm(c[-1] - c[0]) - 1e-12  # triangle
    with pytest.raises(ValueError, match="prices must be"):
        DR.price_path_length(np.ones(4))
    with pytest.raises(ValueError, match="radius must be finite and > 0"):
        DR.dynamic_regret_bound(0.0, 1.0, 1.0, 10, 0.1)


def _dynamic(batches, star, u):
    tr = simulate(batches, K, U.proportional(u))
    dual = np.array([dual_objective(s, k=K, bias=p) for s, p in zip(batches, tr.bias, strict=True)])
    p_all = np.vstack([tr.bias, tr.state.bias])
    q_all = np.vstack([star.prices, star.prices[-1]])  # q_{T+1} = q_T
    radius = float(np.max(np.linalg.norm(p_all - q_all, axis=1)))
    grad = float(np.max(np.linalg.norm(tr.loads - CAP, axis=1)))
    return float(np.sum(dual - star.optimum)), radius, grad


def test_dynamic_regret_below_the_path_length_bound_and_the_bound_optimal_step():
    w = make_workload("drifting", n=N, n_experts=E, drift=0.1)
    batches = list(materialize(w, STEPS, 1))
    star = DR.per_batch_prices(batches, K)
    path = DR.price_path_length(star.prices)
    grid = np.geomspace(0.005, 1.0, 9)
    runs = [_dynamic(batches, star, u) for u in grid]
    for u, (measured, radius, grad) in zip(grid, runs, strict=True):
        assert 0.0 <= measured <= BOUND(radius, grad, path, STEPS, u / CAP)  # (measured, bound)
    r_bar = max(r for _, r, _ in runs)
    g_bar = max(g for _, _, g in runs)
    u_star = CAP * DR.bound_optimal_step(r_bar, g_bar, path, STEPS)
    at_star = BOUND(r_bar, g_bar, path, STEPS, u_star / CAP)
    assert all(at_star <= BOUND(r_bar, g_bar, path, STEPS, u / CAP) for u in grid)  # minimal
    measured, radius, grad = _dynamic(batches, star, u_star)
    assert radius <= r_bar * 1.5  # the a-priori radius is of the right size at u*
    assert measured <= BOUND(radius, grad, path, STEPS, u_star / CAP)
