"""Update rules move the bias by exactly their formula; schedules follow theirs (updates.py)."""

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
    st0 = U.sign().init(len(c), None)
    new = U.sign().update(c, st0, u)
    np.testing.assert_array_equal(new.bias, u * np.sign(c.mean() - c))
    assert new.count == 1


@given(loads_st, step_st)
def test_proportional_rule_oracle_and_sum_preservation(c, u):
    b0 = np.linspace(-1, 1, len(c))
    new = U.proportional().update(c, U.proportional().init(len(c), b0), u)
    np.testing.assert_allclose(new.bias, b0 + u * (c.mean() - c) / c.mean(), rtol=0, atol=1e-12)
    assert math.isclose(new.bias.sum(), b0.sum(), abs_tol=1e-9)


@given(loads_st, step_st)
def test_centered_rules_keep_the_mean_and_differ_from_the_raw_step_by_a_constant(c, u):
    for rule in (U.sign(), U.proportional()):
        b0 = np.arange(len(c), dtype=float)
        raw = rule.update(c, rule.init(len(c), b0), u).bias
        cen = U.centered(rule).update(c, rule.init(len(c), b0), u).bias
        assert math.isclose(cen.mean(), b0.mean(), abs_tol=1e-9)
        d = raw - cen
        np.testing.assert_allclose(d, d.mean(), atol=1e-12)


@given(loads_st, st.floats(0.0, 0.5))
def test_multiplicative_rule_stays_positive_and_follows_its_formula(c, u):
    r = U.multiplicative()
    new = r.update(c, r.init(len(c), None), u)
    assert r.bias_mode == "multiplicative" and np.all(new.bias > 0)
    np.testing.assert_allclose(new.bias, np.exp(u * (c.mean() - c) / c.mean()), rtol=1e-12)


@given(loads_st, step_st, st.floats(0.0, 0.99))
def test_momentum_and_adagrad_oracles(c, u, beta):
    e = (c.mean() - c) / c.mean()
    m = U.momentum(beta=beta)
    s1 = m.update(c, m.init(len(c), None), u)
    np.testing.assert_allclose(s1.buffers[0], (1 - beta) * e, atol=1e-12)
    s2 = m.update(c, s1, u)
    np.testing.assert_allclose(
        s2.bias, u * ((1 - beta) * e + beta * (1 - beta) * e + (1 - beta) * e), atol=1e-12
    )
    a = U.adagrad()
    s = a.update(c, a.init(len(c), None), u)
    np.testing.assert_allclose(s.bias, u * e / (np.abs(e) + 1e-8), atol=1e-12)


@given(st.integers(1, 10), st.integers(1, 100), step_st)
def test_balanced_loads_do_not_move_any_rule(e, per, u):
    c = np.full(e, per)
    for name in U.RULES:
        rule = U.make_rule(name)
        s0 = rule.init(e, None)
        np.testing.assert_array_equal(rule.update(c, s0, u).bias, s0.bias)


@given(loads_st, step_st, st.integers(2, 64))
def test_sign_rule_is_invariant_under_double_counting(c, u, factor):
    r = U.sign()
    np.testing.assert_array_equal(
        r.update(c, r.init(len(c), None), u).bias,
        r.update(c * factor, r.init(len(c), None), u).bias,
    )


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
        (lambda: U.make_rule("signum"), "rule must be one of"),
        (lambda: U.momentum(beta=1.0), r"beta must be in \[0, 1\)"),
        (
            lambda: U.sign().update(np.ones(3), U.sign().init(4, None), 0.1),
            r"loads must have shape \(E,\)",
        ),
        (lambda: U.sign().update(np.ones(4), U.sign().init(4, None), -0.1), "step size u must be"),
        (lambda: U.multiplicative().init(3, np.array([1.0, 0.0, 1.0])), "must be > 0"),
    ],
)
def test_bad_arguments_raise_at_construction(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()
