"""The causality checker finds (and shrinks) the leak of every batch-level balancer, finds none in
past-only routing; the Expert Choice leakage bound is exact and dominates its lower bound."""

import math

import numpy as np
import pytest

from lfbtheory import routers as R
from lfbtheory import updates
from lfbtheory.analysis.causality import (
    _apply_perturbation,
    check_causality,
    expert_choice_leakage,
    perturbation_effect,
)

LEAKY = ["expert_choice", "base", "sinkhorn", "quantile_pricing"]


@pytest.mark.parametrize("name", LEAKY)
def test_leak_found_in_every_batch_level_balancer(name):
    r = R.make_router(name, 4, 2)
    rep = check_causality(r, 4, trials=5, trial_tokens=16)
    assert rep.leak, str(rep)
    cex = rep.counterexample
    # The counterexample is genuine: the two streams agree up to the cut, routing there differs.
    b, j = cex.cut
    for m in range(b):
        np.testing.assert_array_equal(cex.batches[m], cex.perturbed[m])
    np.testing.assert_array_equal(cex.batches[b][: j + 1], cex.perturbed[b][: j + 1])
    changed, first = perturbation_effect(r, cex.batches, cex.perturbed, cex.cut, 4)
    assert changed.any() and first == cex.first_changed
    assert not np.array_equal(cex.before, cex.after)
    assert 0 < rep.mean_affected_fraction <= 1


@pytest.mark.parametrize(
    "router",
    [
        R.TokenChoice(4, 2, n_groups=2, topk_groups=1),
        R.PlainTopK(4, 2),
        R.TokenChoice(4, 1, rule=updates.sign(0.5)),
    ],
)
def test_no_leak_in_past_only_routing(router):
    rep = check_causality(router, 4, trials=5, trial_tokens=16)
    assert not rep.leak and rep.counterexample is None
    assert rep.mean_affected_fraction == 0.0
    assert "no leak found" in str(rep)


def test_expert_choice_report_prints_a_minimal_counterexample():
    rep = check_causality(R.ExpertChoice(4, 2), 4, trials=0)
    text = str(rep)
    print(text)
    assert "minimal counterexample" in text and "LEAK" in text
    cex = rep.counterexample
    # Shrunk to the smallest stream: one batch of two tokens, cut after the first.
    assert len(cex.batches) == 1 and cex.batches[0].shape == (2, 4) and cex.cut == (0, 0)
    assert cex.first_changed == (0, 0) and cex.affected_fraction == 1.0
    # Derandomised: the same counterexample every run.
    again = check_causality(R.ExpertChoice(4, 2), 4, trials=0).counterexample
    np.testing.assert_array_equal(again.perturbed[0], cex.perturbed[0])


def test_perturbing_only_a_later_batch_leaves_a_stateless_router_unchanged():
    r = R.ExpertChoice(4, 2)
    x = [np.full((2, 4), 0.5), np.full((2, 4), 0.5)]
    y = [np.full((2, 4), 0.5), np.eye(2, 4)]
    pert = _apply_perturbation(x, y, (0, 1))
    changed, first = perturbation_effect(r, x, pert, (0, 1), 4)
    assert not changed.any() and first is None  # batch 1 cannot change batch 0


@pytest.mark.parametrize(
    ("t", "e", "k"), [(4, 2, 1), (8, 4, 1), (12, 6, 2), (64, 8, 2), (1000, 10, 3)]
)
def test_leakage_exact_value_matches_math_comb_and_dominates_the_lower_bound(t, e, k):
    b = expert_choice_leakage(t, e, k)
    m = k * t // e
    assert b.exact == pytest.approx(e * math.log2(math.comb(t, m)) / t, rel=1e-12)
    assert b.lower == pytest.approx(k * math.log2((e - k) / k), rel=1e-12)
    assert b.lower < b.lower_strong <= b.exact + 1e-12
    assert b.exact <= b.asymptote + 1e-12  # (1/T) log2 C(T, RT) <= H2(R)


def test_leakage_tends_to_the_entropy_asymptote():
    b = expert_choice_leakage(4096 * 256, 64, 8)
    assert b.exact == pytest.approx(b.asymptote, rel=1e-4)
    assert b.lower == pytest.approx(8 * math.log2(7), rel=1e-12)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="divisible"):
        expert_choice_leakage(5, 4, 1)
    with pytest.raises(ValueError, match="k must be in"):
        expert_choice_leakage(8, 4, 4)
    with pytest.raises(ValueError, match="max_tokens"):
        check_causality(R.PlainTopK(4, 1), 4, max_tokens=1)
