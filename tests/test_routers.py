"""Reference routers: valid selections, each balancer's defining invariant, the token-choice
router routes with the past-only bias and updates it with the rule of lfbtheory.online.updates."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory import routers as R
from lfbtheory.online import schedules, updates
from lfbtheory.testing.strategies import scores as score_arrays


def _scores(seed, n=24, e=6):
    return lfb.sigmoid(np.random.default_rng(seed).normal(size=(n, e)))


@pytest.mark.parametrize("name", sorted(R.ROUTERS))
def test_every_reference_router_returns_a_valid_deterministic_selection(name):
    r = R.make_router(name, 6, 2)
    s = _scores(0)
    sel, _ = r(s, None)
    mask = R.selection_mask(sel, 6)
    assert mask.shape == (24, 6)
    if sel.dtype != bool:
        assert sel.shape == (24, 2) and np.all(mask.sum(axis=1) == 2)
    again, _ = r(s.copy(), None)
    assert np.array_equal(R.selection_mask(again, 6), mask)
    assert isinstance(r, R.Router)


def test_expert_choice_gives_every_expert_exactly_its_capacity():
    sel, _ = R.ExpertChoice(6, 2)(_scores(1), None)
    assert sel.dtype == bool
    assert np.all(sel.sum(axis=0) == math.ceil(24 * 2 / 6))
    sel, _ = R.ExpertChoice(6, 2, capacity_factor=1.5)(_scores(1), None)
    assert np.all(sel.sum(axis=0) == 12)


def test_base_is_the_exact_balanced_optimum():
    s = _scores(2)
    sel, _ = R.BASE(6, 2)(s, None)
    opt = lfb.solve_balanced(s, 2)
    assert np.all(np.bincount(sel.ravel(), minlength=6) == 8)
    assert np.take_along_axis(s, sel, axis=1).sum() == pytest.approx(opt.objective, abs=1e-9)


def test_quantile_pricing_balances_up_to_tied_tokens():
    s = _scores(3, n=60)
    r = R.QuantilePricing(6, 2)
    p = r.prices(s)
    sel, _ = r(s, None)
    loads = np.bincount(sel.ravel(), minlength=6)
    ties = int(np.sum(lfb.tie_margin(s, 2, p) <= 1e-9))
    assert np.abs(loads - 20).sum() <= 2 * ties
    assert lfb.maxvio(loads) < lfb.maxvio(lfb.route(s, 2).loads)


def test_sinkhorn_converges_to_the_balanced_marginals_and_respects_its_cap():
    s = _scores(4)
    r = R.Sinkhorn(6, 2, temperature=0.1, max_iter=500, tol=1e-9)
    f, g, it = r.potentials(s)
    plan = np.exp(s / 0.1 + f[:, None] + g)
    assert it < 500
    np.testing.assert_allclose(plan.sum(axis=1), 2, rtol=1e-8)
    np.testing.assert_allclose(plan.sum(axis=0), 8, rtol=1e-6)
    assert R.Sinkhorn(6, 2, max_iter=3).potentials(s)[2] == 3


def test_sinkhorn_does_not_overflow_on_huge_scores():
    s = _scores(5) * 1e4
    f, g, _ = R.Sinkhorn(6, 2, temperature=1e-3).potentials(s)
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(g))
    sel, _ = R.Sinkhorn(6, 2, temperature=1e-3)(s, None)
    assert sel.shape == (24, 2)


def test_token_choice_routes_with_the_past_bias_then_applies_the_rule():
    rule = updates.sign(schedules.constant(1e-3))
    r = R.TokenChoice(6, 2, rule=rule)
    state, oracle = None, rule.init(6, None)
    for seed in range(4):
        s = _scores(seed) + np.linspace(0, 0.3, 6)
        sel, state = r(s, state)
        np.testing.assert_array_equal(sel, lfb.route(s, 2, oracle.bias, weights=False).experts)
        oracle = rule.update(np.bincount(sel.ravel(), minlength=6), oracle)
        np.testing.assert_array_equal(r.bias(state), oracle.bias)
        assert np.all(r.counts(state) == 0)


@settings(max_examples=25, deadline=None)
@given(
    s=score_arrays(n=st.integers(1, 12), n_experts=4),
    k=st.integers(1, 4),
    u=st.sampled_from([1e-3, 0.25]),
)
def test_token_choice_first_batch_is_plain_topk_and_second_uses_only_the_first(s, k, u):
    r = R.TokenChoice(4, k, rule=updates.sign(u), normalize=False)
    sel1, state = r(s, None)
    np.testing.assert_array_equal(sel1, lfb.route(s, k, weights=False).experts)
    sel2, _ = r(s[::-1].copy(), state)
    b = updates.sign(u).update(np.bincount(sel1.ravel(), minlength=4), updates.sign(u).init(4)).bias
    np.testing.assert_array_equal(sel2, lfb.route(s[::-1], k, b, weights=False).experts)


def test_token_choice_lifecycle_counts_and_checkpoint():
    r = R.TokenChoice(6, 2, rule=updates.momentum(0.1))
    st0 = r.init()
    ex, w, st1 = r.forward(_scores(0), st0, valid=np.arange(24) < 20)
    assert np.array_equal(r.counts(st1), lfb.expert_loads(ex, 6, valid=np.arange(24) < 20))
    _, _, same = r.forward(_scores(0), st1, mode="eval")
    assert same is st1
    (st2,) = r.step([st1])
    back = r.load_state_dict(r.state_dict(st2))
    np.testing.assert_array_equal(r.bias(back), r.bias(st2))
    np.testing.assert_array_equal(back.rule.velocity, st2.rule.velocity)
    assert back.rule.count == 1


def test_bad_arguments_raise_naming_them():
    with pytest.raises(ValueError, match="router must be one of"):
        R.make_router("nope", 4, 1)
    with pytest.raises(ValueError, match="k must be in"):
        R.TokenChoice(4, 5)
    with pytest.raises(ValueError, match="n_groups must divide"):
        R.TokenChoice(6, 2, n_groups=4, topk_groups=2)
    with pytest.raises(ValueError, match="E=4 columns"):
        R.PlainTopK(4, 1)(np.zeros((3, 5)), None)
    with pytest.raises(ValueError, match="capacity_factor"):
        R.ExpertChoice(4, 1, capacity_factor=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        r = R.TokenChoice(4, 1)
        r.forward(np.ones((2, 4)), r.init(), mode="inference")
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        R.selection_mask(np.array([[0, 4]]), 4)
    with pytest.raises(TypeError, match="integer expert ids or bools"):
        R.selection_mask(np.array([[0.0, 1.0]]), 4)
