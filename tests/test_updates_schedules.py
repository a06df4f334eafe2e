"""Update rules move the bias by exactly their formula with their own step; schedules follow
theirs; rules compose (centring, momentum, adaptive scaling) and refuse foreign states."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lfbtheory.online import schedules as S
from lfbtheory.online import updates as U

loads_st = st.integers(2, 10).flatmap(
    lambda e: hnp.arrays(np.int64, (e,), elements=st.integers(0, 1000)).filter(
        lambda c: c.sum() > 0
    )
)
step_st = st.floats(0.0, 1.0)


@given(loads_st, step_st)
def test_sign_rule_oracle(c, u):
    st0 = U.sign(u).init(len(c))
    new = U.sign(u).update(c, st0)
    np.testing.assert_array_equal(new.bias, u * np.sign(c.mean() - c))
    assert new.count == 1


@given(loads_st, step_st)
def test_proportional_rule_oracle_and_sum_preservation(c, u):
    b0 = np.linspace(-1, 1, len(c))
    new = U.proportional(u).update(c, U.proportional(u).init(len(c), b0))
    np.testing.assert_allclose(new.bias, b0 + u * (c.mean() - c) / c.mean(), rtol=0, atol=1e-12)
    assert math.isclose(new.bias.sum(), b0.sum(), abs_tol=1e-9)


@given(loads_st, step_st)
def test_centered_rules_keep_the_mean_and_differ_from_the_raw_step_by_a_constant(c, u):
    for rule in (U.sign(u), U.proportional(u)):
        b0 = np.arange(len(c), dtype=float)
        raw = rule.update(c, rule.init(len(c), b0)).bias
        cen = U.centered(rule).update(c, rule.init(len(c), b0)).bias
        assert math.isclose(cen.mean(), b0.mean(), abs_tol=1e-9)
        d = raw - cen
        np.testing.assert_allclose(d, d.mean(), atol=1e-12)


@given(loads_st, st.floats(0.0, 0.5))
def test_multiplicative_rule_stays_positive_and_follows_its_formula(c, u):
    r = U.multiplicative(u)
    new = r.update(c, r.init(len(c)))
    assert r.bias_mode == "multiplicative" and np.all(new.bias > 0)
    np.testing.assert_allclose(new.bias, np.exp(u * (c.mean() - c) / c.mean()), rtol=1e-12)


@given(loads_st, step_st, st.floats(0.0, 0.99))
def test_momentum_and_adagrad_oracles(c, u, beta):
    e = (c.mean() - c) / c.mean()
    m = U.momentum(u, beta=beta)
    s1 = m.update(c, m.init(len(c)))
    np.testing.assert_allclose(s1.velocity, (1 - beta) * e, atol=1e-12)
    s2 = m.update(c, s1)
    np.testing.assert_allclose(
        s2.bias, u * ((1 - beta) * e + beta * (1 - beta) * e + (1 - beta) * e), atol=1e-12
    )
    a = U.adagrad(u)
    s = a.update(c, a.init(len(c)))
    np.testing.assert_allclose(s.bias, u * e / (np.abs(e) + 1e-8), atol=1e-12)


@given(st.integers(1, 10), st.integers(1, 100), step_st)
def test_balanced_loads_do_not_move_any_rule(e, per, u):
    c = np.full(e, per)
    for name in U.RULES:
        rule = U.make_rule(name, u)
        s0 = rule.init(e)
        np.testing.assert_array_equal(rule.update(c, s0).bias, s0.bias)


@given(loads_st, step_st, st.integers(2, 64))
def test_sign_rule_is_invariant_under_double_counting(c, u, factor):
    r = U.sign(u)
    np.testing.assert_array_equal(
        r.update(c, r.init(len(c))).bias, r.update(c * factor, r.init(len(c))).bias
    )


@given(loads_st, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6))
def test_a_rule_takes_its_step_from_its_own_schedule(c, us):
    rule = U.proportional(lambda t: us[t % len(us)])
    state, manual = rule.init(len(c)), np.zeros(len(c))
    for t in range(2 * len(us)):
        state = rule.update(c, state)
        manual = manual + us[t % len(us)] * (c.mean() - c) / c.mean()
        assert state.count == t + 1
    np.testing.assert_allclose(state.bias, manual, atol=1e-12)


def test_deepseek_v3_is_a_join_of_two_constants_inside_the_rule():
    rule = U.sign(S.deepseek_v3(1e-3, stop_step=2))
    c = np.array([4, 0, 2, 2])
    state = rule.init(4)
    biases = []
    for _ in range(4):
        state = rule.update(c, state)
        biases.append(state.bias.copy())
    np.testing.assert_array_equal(biases[1], 2e-3 * np.sign(c.mean() - c))
    np.testing.assert_array_equal(biases[3], biases[1])  # u = 0 after stop_step


@given(loads_st, st.floats(0.01, 1.0))
def test_centring_composes_with_momentum_and_adagrad(c, u):
    for rule in (U.momentum(u, signal="sign"), U.adagrad(u)):
        cen = U.centered(rule)
        s_raw, s_cen = rule.init(len(c)), cen.init(len(c))
        for _ in range(3):
            s_raw, s_cen = rule.update(c, s_raw), cen.update(c, s_cen)
        assert math.isclose(s_cen.bias.mean(), 0.0, abs_tol=1e-12)
        d = s_raw.bias - s_cen.bias
        np.testing.assert_allclose(d, d.mean(), atol=1e-12)
        np.testing.assert_array_equal(s_raw[2], s_cen[2])  # same buffers: centring is last


def test_schedules_follow_their_formulas():
    assert S.constant(0.1)(7) == 0.1
    assert S.inverse(2.0, 3.0)(5) == pytest.approx(2.0 / 8.0)
    assert S.inverse_sqrt(2.0)(3) == pytest.approx(1.0)
    assert S.polynomial(1.0, 0.75)(15) == pytest.approx(16**-0.75)
    c = S.cosine(1.0, 10)
    assert (
        c(0) == pytest.approx(1.0) and c(10) == pytest.approx(0.0) and c(20) == pytest.approx(0.0)
    )
    w = S.warmup(1.0, 4)
    assert [w(t) for t in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    d = S.deepseek_v3(1e-3, stop_step=3)
    assert [d(t) for t in range(5)] == [1e-3, 1e-3, 1e-3, 0.0, 0.0]
    j = S.join([S.constant(1.0), S.inverse(1.0)], [2])
    assert [j(t) for t in range(4)] == pytest.approx([1.0, 1.0, 1.0, 0.5])


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: S.constant(-1.0), "rate must be finite and >= 0"),
        (lambda: S.inverse(0.0), "c must be finite and > 0"),
        (lambda: S.inverse_sqrt(1.0, t0=0), "t0 must be finite and > 0"),
        (lambda: S.polynomial(1.0, 1.5), r"power must be in \(0, 1\]"),
        (lambda: S.cosine(1.0, 0), "decay_steps must be an integer >= 1"),
        (lambda: S.join([S.constant(1.0)], [3]), "len\\(schedules\\) == len\\(boundaries\\) \\+ 1"),
        (lambda: S.join([S.constant(1.0)] * 3, [5, 2]), "strictly increasing"),
        (lambda: S.deepseek_v3(stop_step=0), "stop_step must be an integer >= 1"),
        (lambda: S.make_schedule("linear_warmup"), "schedule must be one of"),
        (lambda: U.make_rule("signum", 0.1), "rule must be one of"),
        (lambda: U.momentum(0.1, beta=1.0), r"beta must be in \[0, 1\)"),
        (
            lambda: U.sign(0.1).update(np.ones(3), U.sign(0.1).init(4)),
            r"loads must have shape \(E,\)",
        ),
        (lambda: U.sign(-0.1).update(np.ones(4), U.sign(0.1).init(4)), "rate must be finite"),
        (lambda: U.sign(lambda t: -0.1).update(np.ones(4), U.sign(0.1).init(4)), "u=-0.1"),
        (lambda: U.sign("fast"), "step must be a non-negative float or a schedule"),
        (lambda: U.multiplicative(0.1).init(3, np.array([1.0, 0.0, 1.0])), "must be > 0"),
        (lambda: U.sign(0.1).update(np.ones(4), U.adagrad(0.1).init(4)), "state must be a"),
        (lambda: U.adagrad(0.1).update(np.ones(4), U.sign(0.1).init(4)), "state must be a"),
        (
            lambda: U.proportional(1e308).update([9, 0, 0, 0], U.proportional(1.0).init(4)),
            "overflowed",
        ),
        (
            lambda: U.multiplicative(1e3).update([9, 0, 0, 0], U.multiplicative(1.0).init(4)),
            "overflowed",
        ),
        (lambda: S.constant(0.1)(2.5), "schedule step t must be an integer"),
        (lambda: S.inverse(0.1)(True), "schedule step t must be an integer"),
    ],
)
def test_bad_arguments_raise_at_construction(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()
