"""The conformance suite has teeth: the reference routers pass every property, each mutant fails
the property named for its bug class -- as a function, as a pytest fixture and via `lfb check`."""

import numpy as np
import pytest

import lfbtheory as lfb
from lfbtheory import routers as R
from lfbtheory.cli import main
from lfbtheory.online import schedules, updates
from lfbtheory.testing.conformance import (
    PROPERTIES,
    Config,
    reference_router,
    run_conformance,
    scores_for_loads,
    to_bfloat16,
    to_float16,
)
from lfbtheory.testing.mutants import MUTANTS


def test_reference_router_passes_every_property_with_none_skipped():
    rep = run_conformance(reference_router())
    assert rep.ok and not rep.skipped, str(rep)
    assert set(rep.passed) == set(PROPERTIES)


@pytest.mark.parametrize(
    "rule", ["centered_sign", "proportional", "momentum", "adagrad", "multiplicative"]
)
def test_reference_router_with_other_update_rules_passes(rule):
    r = R.TokenChoice(
        8,
        2,
        rule=updates.make_rule(rule, schedules.inverse_sqrt(0.01)),
        n_groups=4,
        topk_groups=2,
    )
    rep = run_conformance(r, config=Config(causality_examples=30, drift_steps=50))
    assert rep.ok and not rep.skipped, str(rep)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_every_mutant_is_caught_by_its_named_property(name):
    factory, expected = MUTANTS[name]
    rep = run_conformance(factory())
    assert set(expected) <= set(rep.failed), str(rep)
    for prop in expected:
        assert rep[prop].message  # a stated reason, not just a flag


def test_bare_router_gets_the_properties_that_apply():
    rep = run_conformance(R.PlainTopK(8, 2))
    assert rep.passed == ("selection_valid", "causality") and rep.ok
    assert all("needs" in rep[p].message for p in rep.skipped)
    ec = run_conformance(R.ExpertChoice(8, 2), only=["selection_valid", "causality"])
    assert ec.failed == ("causality",)
    assert "minimal counterexample" in ec["causality"].message


def test_a_crashing_router_fails_instead_of_erroring():
    def broken(scores, state):
        raise RuntimeError("boom")

    rep = run_conformance(broken, only=["selection_valid"])
    assert (
        rep.failed == ("selection_valid",)
        and "RuntimeError: boom" in rep["selection_valid"].message
    )


def test_unknown_property_raises():
    with pytest.raises(ValueError, match="unknown properties"):
        run_conformance(reference_router(), only=["nope"])


def test_bfloat16_rounding_is_nearest_even_on_the_top_16_bits():
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-7, 40001.0, 40000 + 128, -3.14159, 1e-3])
    got = to_bfloat16(x)
    want = [1.0, 1.0, 1 + 2**-6, 1 + 2**-7, 39936.0, 40192.0, -3.140625, 0.00099945068359375]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float32))
    assert np.all(got.view(np.uint32) & 0xFFFF == 0)
    assert to_float16(40003.0) == 40000.0  # float16 spacing at 40k is 32


def test_scores_for_loads_force_exactly_those_loads():
    loads = np.array([5, 1, 3, 3])
    s = scores_for_loads(loads, 2)
    np.testing.assert_array_equal(lfb.route(s, 2).loads, loads)
    np.testing.assert_array_equal(lfb.route(s, 2, np.full(4, 0.3) * [1, -1, 1, -1]).loads, loads)
    with pytest.raises(ValueError, match="<= n"):
        scores_for_loads([6, 0], 1 + 1)


def test_uncentred_sign_updates_drift_and_centred_ones_do_not():
    rng = np.random.default_rng(0)
    stream = [lfb.sigmoid(rng.normal(size=(64, 8)) + np.linspace(-1, 1, 8)) for _ in range(300)]
    means = {}
    for rule in (updates.sign(1e-3), updates.centered(updates.sign(1e-3))):
        r, st = R.TokenChoice(8, 2, rule=rule), None
        for s in stream:
            _, st = r(s, st)
        means[rule.name] = float(np.mean(r.bias(st)))
    assert abs(means["sign"]) > 1e-3  # 300 steps of u = 1e-3: the mean moved
    assert abs(means["centered_sign"]) < 1e-12


def test_pytest_fixture_passes_the_reference_and_fails_a_mutant(lfb_conformance):
    rep = lfb_conformance(reference_router(), only=["update_oracle", "causality"])
    assert rep.passed == ("update_oracle", "causality")
    with pytest.raises(pytest.fail.Exception, match="FAILED: padding_excluded"):
        lfb_conformance(MUTANTS["padding_counted"][0](), only=["padding_excluded"])
    with pytest.raises(pytest.fail.Exception, match="skipped"):
        lfb_conformance(R.PlainTopK(8, 2), only=["frozen_bias"], allow_skips=False)


def test_lfb_check_passes_the_reference_router(capsys):
    assert main(["check", "lfbtheory.testing.conformance:reference_router"]) == 0
    out = capsys.readouterr().out
    assert f"{len(PROPERTIES)} passed, 0 failed" in out


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_lfb_check_fails_each_mutant_naming_the_property(name, capsys):
    prop = MUTANTS[name][1][0]
    assert main(["check", f"lfbtheory.testing.mutants:{name}", "--only", prop]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {prop}:" in out and f"FAILED: {prop}" in out


def test_lfb_check_full_run_on_a_mutant_names_only_real_failures(capsys):
    assert main(["check", "lfbtheory.testing.mutants:bf16_counts"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: count_precision" in out and "16 passed, 1 failed" in out


def test_lfb_check_bad_specs_exit_2(capsys):
    assert main(["check", "no_colon"]) == 2
    assert main(["check", "lfbtheory.testing.mutants:nope"]) == 2
    assert main(["check", "lfbtheory.routers:TokenChoice"]) == 2  # needs constructor arguments
    err = capsys.readouterr().err
    assert "MODULE:CALLABLE" in err and "no attribute" in err and "zero-argument factory" in err
