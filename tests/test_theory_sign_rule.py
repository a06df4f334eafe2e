"""Lemma 12 (proofs/proof_12_sign_rule.py) measured: the sign rule's linear dual regret on the
counterexample family at the published u = 1e-3 against the proportional rule's 2uT, median
balance on a stream, the mean-median gap on a FLAME-MoE layer, and MaxVio from tie margins."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from lfbtheory import dual_objective, maxvio, simulate, solve_balanced, tie_margin
from lfbtheory.online import updates as U
from lfbtheory.workloads import make_workload, materialize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "proofs"))
import proof_05_regret as P5  # noqa: E402
import proof_12_sign_rule as P12  # noqa: E402

SIGN_LOWER = sp.lambdify((P12.u_, P12.N_), P12.sign_regret_lower_bound())
PROP_EXACT = sp.lambdify((P12.u_, P12.N_), P12.proportional_regret())
MEDIAN = sp.lambdify((P12.w_, P12.u_), P12.median_balance_bound())
LEMMA5_CONST = sp.lambdify((P5.R, P5.G, P5.T, P5.eta), P5.bound_constant())


def _dual_regret_per_period(rule, periods: int) -> np.ndarray:
    batches = P12.counterexample_batches(periods)
    tr = simulate(batches, 1, rule)
    dual = np.array([dual_objective(s, k=1, bias=p) for s, p in zip(batches, tr.bias, strict=True)])
    return np.cumsum(dual.reshape(-1, 3).sum(axis=1) - 120.0)  # min_p sum D = 120 per period


@pytest.mark.parametrize("u", [2.0**-10, 1e-3], ids=["dyadic", "published"])
def test_sign_rule_regret_is_linear_while_proportional_is_2uT(u):
    # 1/(2u) is an integer for both (admissible); 2^-10 keeps float64 exact, so the lattice
    # prices 1, 2, 3 are hit exactly; at 1e-3 rounding moves the sign rule's cycle slightly
    periods = 2 * int(round(1 / u))  # 1/u periods reach the median price, then 1/u cycles
    n_periods = np.arange(1, periods + 1)
    sign = _dual_regret_per_period(U.sign(u), periods)
    prop = _dual_regret_per_period(U.proportional(u), periods)
    assert np.all(sign >= SIGN_LOWER(u, n_periods) - 1e-6)  # (measured, lower bound)
    np.testing.assert_allclose(prop, PROP_EXACT(u, n_periods), rtol=1e-6, atol=1e-6)  # exact
    horizon = 3 * periods
    # Lemma 5(b) for the proportional rule: a_1 = 0 (p* = 0 is a hindsight price), G^2 = 32
    assert prop[-1] <= LEMMA5_CONST(0.0, np.sqrt(32.0), horizon, u / 4) * (1 + 1e-9)
    late_slope = (sign[-1] - sign[periods // 2]) / (3 * (periods - periods // 2 - 1))
    assert late_slope >= 2 / 3 - 1e-6  # per batch, independent of u
    if u == 2.0**-10:
        np.testing.assert_array_equal(np.diff(sign[periods // 2 :]), 2 + 8 * u)  # exact cycle
    assert sign[-1] / prop[-1] > 50  # 2/3 T against 2 u T


@pytest.mark.parametrize("u", [1 / 20, 1 / 200])
def test_the_sign_rule_slope_does_not_shrink_with_u(u):
    periods = int(round(1 / u)) + 200
    sign = _dual_regret_per_period(U.sign(u), periods)
    assert (sign[-1] - sign[-101]) / 300 >= 2 / 3


def test_sign_counts_telescope_and_are_median_balanced_pairwise():
    u = 0.01
    w = make_workload("stationary", n=64, n_experts=8)
    batches = materialize(w, 600, 4)
    tr = simulate(list(batches), 2, U.sign(u))
    cap = 64 * 2 / 8
    under = np.cumsum(tr.loads < cap, axis=0)
    over = np.cumsum(tr.loads > cap, axis=0)
    b_next = np.vstack([tr.bias[1:], tr.state.bias])
    np.testing.assert_allclose(b_next - tr.bias[0], u * (under - over), atol=1e-9)  # (a)
    net = under - over
    spread = net.max(axis=1) - net.min(axis=1)
    width = float(batches.max() - batches.min())
    assert np.all(spread <= MEDIAN(width, u))  # (b), every T


def _band(x: np.ndarray, delta: int) -> tuple[float, float]:
    t, xs = len(x), np.sort(x)
    j_hi = (t + delta) // 2 + 1
    j_lo = t - j_hi + 1
    return (xs[j_lo - 1] if j_lo >= 1 else -np.inf, xs[j_hi - 1] if j_hi <= t else np.inf)


def test_flame_layer_mean_median_gap_and_tie_margin_maxvio():
    n, e, k = 256, 64, 6
    cap = n * k // e
    w = make_workload("replay", n=n, n_experts=e, layer=5)
    epoch = list(materialize(w, 8, 0))  # one layer = 8 batches of 256 tokens, cycled
    u = 1e-3
    tr = simulate(epoch * 150, k, U.sign(u))
    late = tr.loads[600:].astype(np.float64)  # after the bias has reached its band
    gaps, bounds = [], []
    for i in range(e):
        x = late[:, i]
        delta = int(abs(np.sum(x > cap) - np.sum(x < cap)))
        lo, hi = _band(x, delta)
        assert lo <= cap <= hi  # (c)
        mean, med, sd = x.mean(), np.median(x), x.std()
        assert abs(mean - med) <= sd + 1e-12  # (d) Hotelling-Solomons
        gaps.append(abs(mean - cap))
        bounds.append(abs(mean - med) + (hi - lo))
    assert np.all(np.array(gaps) <= np.array(bounds) + 1e-9)  # (d) measured <= bound
    # (f) MaxVio_batch(p_t) <= #{margin_t(p*) <= 2 delta}/L along the trajectory
    stars = [solve_balanced(s, k) for s in epoch]
    margins = [tie_margin(s, k, opt.bias) for s, opt in zip(epoch, stars, strict=True)]
    for t in range(1192, 1200):
        j = t % 8
        delta = float(np.ptp(tr.bias[t] - stars[j].bias)) / 2
        n_close = int(np.sum(margins[j] <= 2 * delta + 1e-12))
        assert maxvio(tr.loads[t]) <= n_close / cap + 1e-12


@settings(max_examples=25, deadline=None)
@given(
    e=st.integers(2, 6),
    u_exp=st.integers(2, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_median_balance_holds_on_any_stream(e, u_exp, seed):
    # Lemma 12(a)-(b): exact sign counts (dyadic steps) and the pairwise bound w/u + 2; for
    # E = 2 each expert's U - O is within (w/u + 2)/2 of 0
    n, k, u = 4 * e, 1, 2.0**-u_exp
    cap = n * k / e
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, 8, size=(n, e)) / 8.0 for _ in range(80)]
    tr = simulate(batches, k, U.sign(u))
    net = np.cumsum(tr.loads < cap, axis=0) - np.cumsum(tr.loads > cap, axis=0)
    b_next = np.vstack([tr.bias[1:], tr.state.bias])
    np.testing.assert_array_equal(b_next - tr.bias[0], u * net)
    width = float(max(b.max() for b in batches) - min(b.min() for b in batches))
    assert np.all(net.max(axis=1) - net.min(axis=1) <= MEDIAN(width, u))
    if e == 2:
        assert np.all(np.abs(net) <= MEDIAN(width, u) / 2)


def test_for_E_4_the_sign_rule_balances_sign_counts_only_up_to_a_common_offset():
    # Lemma 12 (b): every expert over capacity 1/4 of the time, under 3/4: N_i = T/2 for all
    # i (the common offset), median load 1 < L = 2, mean load L. Median balance is E = 2 only.
    batches = P12.median_counterexample_batches(100)
    tr = simulate(batches, 1, U.sign(2.0**-6))
    c = tr.loads.astype(np.float64)
    net = (c < 2).sum(0) - (c > 2).sum(0)
    np.testing.assert_array_equal(net, len(batches) // 2)
    np.testing.assert_array_equal(np.median(c, axis=0), 1.0)
    np.testing.assert_array_equal(c.mean(axis=0), 2.0)
    offset = net.mean()
    w = 1.0
    assert np.all(np.abs(net - offset) <= (1 - 1 / 4) * MEDIAN(w, 2.0**-6))  # trivially 0 here


@settings(max_examples=25, deadline=None)
@given(e=st.integers(3, 6), u_exp=st.integers(2, 8), seed=st.integers(0, 2**32 - 1))
def test_sign_counts_stay_within_the_common_offset_bound_for_every_E(e, u_exp, seed):
    # Lemma 12 (b) common offset: |N_i - Nbar| <= (1 - 1/E)(w/u + 2) at every T, any stream
    n, k, u = 4 * e, 1, 2.0**-u_exp
    cap = n * k / e
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, 8, size=(n, e)) / 8.0 for _ in range(80)]
    tr = simulate(batches, k, U.sign(u))
    net = np.cumsum(tr.loads < cap, axis=0) - np.cumsum(tr.loads > cap, axis=0)
    width = float(max(b.max() for b in batches) - min(b.min() for b in batches))
    dev = np.abs(net - net.mean(axis=1, keepdims=True))
    assert np.all(dev <= (1 - 1 / e) * MEDIAN(width, u) + 1e-12)
