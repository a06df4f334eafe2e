"""The regret ledger: exact comparators, weak duality per batch, limit cycles (regret.py)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.analysis.regret import (
    checkpoints,
    classify_growth,
    compute_comparators,
    detect_limit_cycle,
    regret_report,
)
from lfbtheory.online.loop import simulate
from lfbtheory.online.updates import make_rule


def _stream(seed, T=10, n=8, e=4):
    rng = np.random.default_rng(seed)
    pop = rng.normal(size=e)
    return [lfb.sigmoid(rng.normal(size=(n, e)) + pop) for _ in range(T)]


def test_hindsight_price_matches_brute_force_on_a_small_pooled_problem():
    bs = _stream(1, T=3, n=2, e=2)  # 6 tokens, 2 experts, k=1: capacity 3 each
    comp = compute_comparators(bs, 1, solver="cvxpy", num_checkpoints=3)
    pooled = np.concatenate(bs)
    best = max(
        sum(pooled[t, c] for t, c in enumerate(choice))
        for choice in itertools.product(range(2), repeat=6)
        if np.bincount(choice, minlength=2).tolist() == [3, 3]
    )
    assert comp.pooled_optimum[-1] == pytest.approx(best, abs=1e-12)
    # the hindsight price attains min_p sum_s D_s(p)
    total = sum(lfb.dual_objective(b, k=1, bias=comp.hindsight_bias) for b in bs)
    assert total == pytest.approx(best, abs=1e-9)


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["sign", "proportional", "centered_sign"]))
def test_ledger_identities(seed, rule):
    bs = _stream(seed)
    tr = simulate(bs, 2, make_rule(rule, 0.05))
    comp = compute_comparators(bs, 2, solver="cvxpy", num_checkpoints=6)
    rep = regret_report(tr, bs, 2, comparators=comp, burn_in=1)
    # weak duality batch by batch: D_s(p_s) >= OPT_s
    assert np.all(rep.dual_value >= rep.batch_optimum - 1e-9)
    # the dual regret is at least minus the pooling gain sum_s OPT_s - OPT_pool
    idx = comp.t - 1
    pooling_gain = np.cumsum(comp.batch_optimum)[idx] - comp.pooled_optimum
    assert np.all(pooling_gain <= 1e-9)
    assert np.all(rep.dual_regret >= pooling_gain - 1e-9)
    # the dynamic gap, measured on rewards: OPT_s - reward_s summed
    np.testing.assert_allclose(rep.dynamic_gap[-1], comp.batch_optimum.sum() - tr.reward.sum())
    np.testing.assert_allclose(rep.maxvio_batch, lfb.maxvio(tr.loads))


def test_a_fixed_hindsight_price_has_zero_dual_regret_and_a_fixed_price_never_negative():
    bs = _stream(4)
    comp = compute_comparators(bs, 2, solver="cvxpy", num_checkpoints=5)
    frozen = simulate(bs, 2, make_rule("sign", 0.0), init_bias=comp.hindsight_bias)
    rep = regret_report(frozen, bs, 2, comparators=comp, burn_in=1)
    assert rep.dual_regret[-1] == pytest.approx(0.0, abs=1e-9)
    other = simulate(bs, 2, make_rule("sign", 0.0), init_bias=np.linspace(-0.2, 0.2, 4))
    assert np.all(regret_report(other, bs, 2, comparators=comp).dual_regret >= -1e-9)


def test_growth_classes_on_synthetic_curves():
    t = np.arange(1, 20001, dtype=float)
    cases = {
        "linear": 3.0 * t,
        "sqrt-like": 5.0 * np.sqrt(t),
        "logarithmic": 7.0 * np.log(t),
        "bounded": 10.0 - 50.0 / t,
    }
    grid = checkpoints(20000)
    for cls, curve in cases.items():
        g = classify_growth(grid, curve[grid - 1], t0=1000)
        assert g.cls == cls, (cls, g)


def test_limit_cycle_of_the_sign_rule_on_a_fixed_batch():
    batch = _stream(2, T=1, n=32, e=4)[0]
    u = 1e-2
    tr = simulate([batch] * 3000, 2, make_rule("sign", u))
    cyc = detect_limit_cycle(tr.bias, u)
    assert cyc.found and cyc.period >= 1
    z = np.rint(tr.bias / u)
    np.testing.assert_array_equal(z[cyc.start], z[cyc.start + cyc.period])
    assert cyc.band_width >= 0


def test_bad_ledger_input():
    bs = _stream(0, T=4)
    tr = simulate(bs, 2, make_rule("sign", 0.1))
    with pytest.raises(ValueError, match="trajectory has 4 rows but batches has 3"):
        regret_report(tr, bs[:3], 2, solver="cvxpy")
    with pytest.raises(ValueError, match="not on the lattice"):
        detect_limit_cycle(np.array([[0.0, 0.0], [0.3, 0.1]]), 1.0)


def test_fixed_batch_cycle_stops_at_the_first_repeat_and_agrees_with_a_long_run():
    from lfbtheory.analysis.regret import fixed_batch_cycle

    batch = _stream(5, T=1, n=30, e=5)[0]
    u = 5e-3
    cyc = fixed_batch_cycle(batch, 2, "sign", u, chunk=50)
    long = detect_limit_cycle(simulate([batch] * 4000, 2, make_rule("sign", u)).bias, u)
    assert cyc.found and (cyc.start, cyc.period) == (long.start, long.period)
    with pytest.raises(ValueError, match="lattice rules"):
        fixed_batch_cycle(batch, 2, "proportional", u)


def test_cycles_are_found_modulo_a_common_drift():
    u = 0.5
    pattern = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float) * u
    bias = np.array([pattern[t % 3] + (t // 3) * u for t in range(12)])
    exact = detect_limit_cycle(bias, u, modulo_shift=False)
    shifted = detect_limit_cycle(bias, u)
    assert not exact.found
    assert shifted.found and shifted.period == 3 and shifted.drift == pytest.approx(u)


def test_centered_sign_cycles_live_on_the_finer_lattice():
    from lfbtheory.analysis.regret import fixed_batch_cycle

    batch = _stream(6, T=1, n=30, e=5)[0]
    cyc = fixed_batch_cycle(batch, 2, "centered_sign", 5e-3, chunk=100)
    assert cyc.found and cyc.drift == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["sign", "proportional", "centered_sign"]))
def test_vectorised_dual_equals_the_dual_objective_at_each_routed_price(seed, rule):
    # D_s(p_s) = reward_s + <p_s, c_s - L> because the routed experts ARE top-k(s + p_s)
    bs = _stream(seed, T=8)
    tr = simulate(bs, 2, make_rule(rule, 0.05))
    rep = regret_report(tr, bs, 2, burn_in=1, solver="cvxpy")
    direct = [lfb.dual_objective(b, k=2, bias=p) for b, p in zip(bs, tr.bias, strict=True)]
    np.testing.assert_allclose(rep.dual_value, direct, rtol=1e-12, atol=1e-12)
    # dual dynamic regret: sum_s D_s(p_s) - sum_s OPT_s, >= 0 by weak duality per batch
    idx = rep.t - 1
    np.testing.assert_allclose(
        rep.dual_dynamic_regret, np.cumsum(direct)[idx] - np.cumsum(rep.batch_optimum)[idx]
    )
    assert np.all(np.diff(np.concatenate([[0.0], rep.dual_dynamic_regret])) >= -1e-9)


def test_evaluation_batches_are_excluded_from_every_sum():
    bs = _stream(7, T=10)
    evals = (2, 5, 6)
    tr = simulate(bs, 2, make_rule("proportional", 0.05), eval_batches=evals)
    rep = regret_report(tr, bs, 2, burn_in=1, solver="cvxpy")
    train = [b for i, b in enumerate(bs) if i not in evals]
    keep = ~tr.is_eval
    assert rep.eval_excluded == 3 and rep.t[-1] == len(train)
    comp = compute_comparators(train, 2, solver="cvxpy")
    np.testing.assert_allclose(rep.batch_optimum, comp.batch_optimum)
    gap = comp.batch_optimum.sum() - tr.reward[keep].sum()
    np.testing.assert_allclose(rep.dynamic_gap[-1], gap)
    np.testing.assert_allclose(rep.maxvio_global, lfb.maxvio_global(tr.loads[keep]))
    with pytest.raises(ValueError, match="computed for 10 batches"):
        regret_report(tr, bs, 2, comparators=compute_comparators(bs, 2, solver="cvxpy"))


def test_group_limited_routing_is_bracketed_refused_or_labelled():
    bs = _stream(8, T=6, e=4)
    tr = simulate(bs, 1, make_rule("sign", 0.05), n_groups=2, topk_groups=1)
    assert tr.group_limited
    with pytest.raises(ValueError, match="not a subgradient"):
        regret_report(tr, bs, 1, solver="cvxpy", group_limited="refuse")
    summ = regret_report(tr, bs, 1, solver="cvxpy").summary()  # default: the bracket
    keys = ("group_lower", "group_dual_lower", "group_dual_min", "lp_bound")
    lo, dlo, mid, hi = (summ[f"grouped_{key}"] for key in keys)
    tol = 1e-9 * abs(hi)  # the certificate's relative gap
    assert dlo <= mid and mid - dlo <= tol and dlo <= hi + tol
    assert not np.isfinite(lo) or lo <= mid + tol
    assert "grouped_group_dual_regret" in summ
    rep = regret_report(tr, bs, 1, solver="cvxpy", group_limited="label")
    assert rep.group_limited and rep.summary()["group_limited"] is True
    # labelled values are still D evaluated exactly at the routed prices (not reward-based)
    direct = [lfb.dual_objective(b, k=1, bias=p) for b, p in zip(bs, tr.bias, strict=True)]
    np.testing.assert_allclose(rep.dual_value, direct, rtol=1e-12)


def test_the_reported_price_path_sums_the_centred_steps_of_the_per_batch_optimal_prices():
    bs = _stream(9, T=5)
    comp = compute_comparators(bs, 2, solver="cvxpy", num_checkpoints=5)
    # each batch's price is that batch's exact optimal price, centred to mean 0
    for b, p in zip(bs, comp.batch_prices, strict=True):
        np.testing.assert_allclose(p.mean(), 0.0, atol=1e-12)
        total = lfb.dual_objective(b, k=2, bias=p)
        np.testing.assert_allclose(
            total, lfb.solve_balanced(b, 2, method="cvxpy").objective, rtol=1e-9
        )
    rep = regret_report(simulate(bs, 2, make_rule("sign", 0.05)), bs, 2, comparators=comp)
    manual = sum(np.linalg.norm(comp.batch_prices[i + 1] - comp.batch_prices[i]) for i in range(4))
    np.testing.assert_allclose(rep.price_path[-1], manual)
    assert rep.summary()["price_path_length"] == rep.price_path[-1]
