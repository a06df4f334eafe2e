"""The growth classifier: each class on curves of known growth, and "undetermined" (or the
right class) on the curves that misled the R^2-only classifier."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lfbtheory.analysis.growth import GROWTH_CLASSES, Growth, classify_growth
from lfbtheory.analysis.regret import checkpoints
from lfbtheory.analysis.regret import classify_growth as classify_from_regret

T = 20_000
TT = np.arange(1, T + 1, dtype=np.float64)
GRID = checkpoints(T)
T0 = 1000


def _on_grid(curve: np.ndarray) -> Growth:
    return classify_growth(GRID, curve[GRID - 1], T0)


BASES = {
    "linear": lambda t: t,
    "sqrt-like": np.sqrt,
    "logarithmic": np.log,
    "bounded": lambda t: -1.0 / t,
}


@settings(max_examples=25, deadline=None)
@given(
    cls=st.sampled_from(sorted(BASES)),
    a=st.floats(-1e3, 1e3),
    b=st.floats(0.01, 100.0),
)
def test_an_exact_curve_of_each_class_is_recognised_with_its_coefficient(cls, a, b):
    g = _on_grid(a + b * BASES[cls](TT))
    assert g.cls == cls
    if cls != "bounded":
        assert g.interval[0] <= b * (1 + 1e-9) and b * (1 - 1e-9) <= g.interval[1]
        np.testing.assert_allclose(g.coef, b, rtol=1e-6)


def test_linear_plus_transient_is_linear_or_undetermined_never_logarithmic():
    g = _on_grid(0.01 * TT + 50.0 * (1.0 - np.exp(-TT / 2000.0)))
    assert g.cls in ("linear", "undetermined"), g


def test_flat_noise_is_bounded():
    g = _on_grid(np.random.default_rng(0).normal(size=T))
    assert g.cls == "bounded", g
    assert g.fits["linear"].b_low <= 0.0 <= g.fits["linear"].b_high  # no significant trend


def test_bounded_period_seven_sawtooth_is_bounded_with_its_period():
    saw = (np.arange(1, T + 1) % 7).astype(np.float64)
    assert _on_grid(saw).cls == "bounded"
    per_step = classify_growth(TT, saw, T0)
    assert per_step.cls == "bounded" and per_step.period == 7 and per_step.coef == 0.0


def test_a_periodic_curve_with_drift_is_linear_with_the_exact_drift():
    curve = (np.arange(1, T + 1) % 7) + 0.25 * TT
    g = classify_growth(TT, curve, T0)
    assert g.cls == "linear" and g.period == 7
    np.testing.assert_allclose(g.coef, 0.25, rtol=1e-9)


def test_decreasing_regret_is_its_own_class():
    g = _on_grid(-0.1 * TT)
    assert g.cls == "decreasing"
    assert g.interval[1] < 0


@pytest.mark.parametrize("curve", [TT**0.75, TT * np.log(TT)], ids=["t^0.75", "t log t"])
def test_growth_between_the_classes_is_undetermined_with_its_exponent(curve):
    g = _on_grid(curve)
    assert g.cls == "undetermined", g
    assert 0.6 < g.exponent < 1.3


def test_constant_step_proportional_run_at_600_is_not_called_sqrt_like():
    from lfbtheory import simulate
    from lfbtheory.analysis.regret import regret_report
    from lfbtheory.online import updates as U
    from lfbtheory.workloads import make_workload, materialize

    batches = list(materialize(make_workload("stationary", n=32, n_experts=8), 600, 0))
    rep = regret_report(simulate(batches, 2, U.proportional(0.05)), batches, 2)
    g = rep.growth["dual_regret"]
    assert g.cls in ("linear", "undetermined"), g
    assert rep.summary()["dual_regret_growth"] == g.cls


def test_result_is_readable_and_the_old_call_works():
    g = classify_from_regret(GRID, 3.0 * GRID.astype(float), T0)  # positional (t, regret, t0)
    assert g.cls in GROWTH_CLASSES
    assert set(g.r2) >= {"bounded", "logarithmic", "sqrt-like", "linear", g.cls}
    assert set(g.fits) >= {"constant", "inverse", "logarithmic", "sqrt-like", "linear", "power"}
    assert "linear" in str(g) and g.t0 >= T0


def test_too_few_points_are_undetermined_and_bad_input_is_rejected():
    t = np.array([1.0, 2, 3, 4, 5, 6, 7])
    assert classify_growth(t, t**2, 2).cls == "undetermined"
    with pytest.raises(ValueError, match="at least 3 checkpoints"):
        classify_growth(t, t, 6)
    with pytest.raises(ValueError, match="strictly increasing"):
        classify_growth(t[::-1], t, 1)
    with pytest.raises(ValueError, match="equal length"):
        classify_growth(t, t[:-1], 1)
    with pytest.raises(ValueError, match="r2_floor"):
        classify_growth(t, t, 1, r2_floor=1.5)
