"""The conformance suite has teeth: the reference routers pass every property, each mutant fails
the property named for its bug class -- as a function, as a pytest fixture and via `lfb check`."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    tie_bounds,
    to_bfloat16,
    to_float16,
)
from lfbtheory.testing.mutants import MUTANTS, detection_rates


class SelectOnly:
    """A router exposing only select(scores, bias) (and n_experts, k, groups) of another."""

    def __init__(self, inner, tie_break=None):
        self.inner, self.tie_break = inner, tie_break
        self.n_experts, self.k = inner.n_experts, inner.k
        self.n_groups, self.topk_groups = inner.n_groups, inner.topk_groups

    def select(self, scores, bias):
        s = np.asarray(scores, np.float64)
        if self.tie_break is None:
            return self.inner.select(s, bias)
        # break exact ties in an arbitrary order, new at each call; weights from s itself
        experts, _ = self.inner.select(s + self.tie_break.uniform(0, 2.0**-12, s.shape), bias)
        w = np.take_along_axis(s, experts, axis=1)
        return experts, w / w.sum(axis=1, keepdims=True)

    def __call__(self, scores, state):
        return self.select(scores, np.zeros(self.n_experts))[0], state


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
    assert rep.passed == ("selection_valid", "causality") and rep.strict_ok
    assert all("needs" in rep[p].message for p in rep.skipped)
    assert rep.not_applicable == rep.skipped and not rep.has_bias
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
    # strict (the default): a property skipped for a missing capability fails the test ...
    with pytest.raises(pytest.fail.Exception, match="missing capability"):
        lfb_conformance(SelectOnly(reference_router()), only=["frozen_bias"])
    assert lfb_conformance(SelectOnly(reference_router()), only=["frozen_bias"], strict=False)
    # ... but a property that does not apply to the router's design never does
    assert lfb_conformance(R.PlainTopK(8, 2), only=["frozen_bias"]).not_applicable == (
        "frozen_bias",
    )


def test_lfb_check_passes_the_reference_router(capsys):
    assert main(["check", "lfbtheory.testing.conformance:reference_router"]) == 0
    out = capsys.readouterr().out
    assert f"{len(PROPERTIES)} passed, 0 failed" in out


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_lfb_check_fails_each_mutant_naming_the_property(name, capsys):
    prop = MUTANTS[name][1][0]
    args = ["check", f"lfbtheory.testing.mutants:{name}", "--only", prop, "--examples", "30"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {prop}:" in out and f"FAILED: {prop}" in out


def test_lfb_check_full_run_on_a_mutant_names_only_real_failures(capsys):
    assert main(["check", "lfbtheory.testing.mutants:bf16_counts"]) == 1
    out = capsys.readouterr().out
    assert "FAILED: count_precision" in out and "19 passed, 1 failed" in out


def test_lfb_check_bad_specs_exit_2(capsys):
    assert main(["check", "no_colon"]) == 2
    assert main(["check", "lfbtheory.testing.mutants:nope"]) == 2
    assert main(["check", "lfbtheory.routers:TokenChoice"]) == 2  # needs constructor arguments
    err = capsys.readouterr().err
    assert "MODULE:CALLABLE" in err and "no attribute" in err and "zero-argument factory" in err


SHAPES = [(8, 2, (4, 2, 2)), (16, 3, (4, 2, 2)), (16, 1, None), (32, 6, (8, 4, 2))]


@given(data=st.data())
def test_tie_bounds_contain_every_tie_break_and_pin_untied_tokens(data):
    """On a coarse grid (many exact ties): every tie-break -- routing after adding a
    perturbation far below the grid spacing, in any order of the experts -- selects all of
    `must` and nothing outside `may`; an untied token (must == may) has exactly one answer."""
    e, k, groups = data.draw(st.sampled_from(SHAPES))
    n = data.draw(st.integers(1, 6))
    grid = st.lists(st.integers(0, 4), min_size=n * e, max_size=n * e)
    s = np.array(data.draw(grid), dtype=np.float64).reshape(n, e) / 4
    b = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=e, max_size=e))) / 4
    order = np.array(data.draw(st.permutations(range(e))), dtype=np.float64)
    must, may, gmust, gmay = tie_bounds(s + b, k, groups)
    assert np.all(must <= may) and np.all(gmust <= gmay)
    assert np.all(must.sum(axis=1) <= k) and np.all(may.sum(axis=1) >= k)
    kw = {} if groups is None else dict(n_groups=groups[0], topk_groups=groups[1])
    kw["normalize"] = False  # weights are not under test; zero scores are allowed here
    sel = R.selection_mask(lfb.route(s + order * 2.0**-20, k, b, **kw).experts, e)
    assert np.all(must <= sel) and np.all(sel <= may)
    untied = np.all(must == may, axis=1)
    exact = R.selection_mask(lfb.route(s, k, b, **kw).experts, e)
    np.testing.assert_array_equal(must[untied], exact[untied])


@pytest.mark.parametrize(("e", "k", "groups"), [(256, 8, (8, 4)), (64, 6, (8, 4)), (8, 2, (4, 2))])
def test_an_arbitrary_tie_break_is_no_false_alarm(e, k, groups):
    """torch.topk promises no order among equal values: a router breaking every exact tie
    at random (differently at every call) passes the bias properties on every seed."""
    inner = R.TokenChoice(e, k, n_groups=groups[0], topk_groups=groups[1])
    only = ["bias_shift_invariance", "selected_in_selected_groups", "gate_weights_bias_free"]
    for seed in range(3):
        r = SelectOnly(inner, np.random.default_rng(seed))
        rep = run_conformance(r, only=only, config=Config(seed=seed))
        assert rep.ok and set(rep.passed) == set(only), str(rep)


@pytest.mark.parametrize(("e", "k"), [(64, 6), (16, 8), (8, 8), (128, 1)])
def test_count_precision_runs_at_production_shapes_and_catches_bf16_counts(e, k):
    from lfbtheory.testing.mutants import _LowPrecisionCounts

    good = R.TokenChoice(e, k)
    bad = _LowPrecisionCounts(n_experts=e, k=k, dtype="bfloat16")
    assert run_conformance(good, only=["count_precision"]).passed == ("count_precision",)
    rep = run_conformance(bad, only=["count_precision"])
    assert rep.failed == ("count_precision",), str(rep)


def test_tie_aware_oracles_keep_full_power_on_the_group_mutants():
    rates = detection_rates(range(4), names=["masked_groups_zero", "group_score_max"])
    assert rates["masked_groups_zero"] == {
        "bias_shift_invariance": 1.0,
        "selected_in_selected_groups": 1.0,
    }
    assert rates["group_score_max"]["selected_in_selected_groups"] == 1.0


def test_a_router_with_a_bias_but_no_select_is_incomplete_not_passing(capsys):
    class BiasNoSelect(R.PlainTopK):
        def bias(self, state):
            return np.zeros(self.n_experts)

    rep = run_conformance(BiasNoSelect(8, 2), only=["selection_valid", "bias_shift_invariance"])
    assert not rep.failed and not rep.ok
    assert rep.coverage_gaps == ("bias_shift_invariance",)
    assert "INCOMPLETE" in str(rep)


def test_lfb_check_json_and_strict(capsys, tmp_path, monkeypatch):
    import json

    assert main(["check", "lfbtheory.testing.mutants:bf16_counts", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["failed"] == ["count_precision"] and d["exit"] == 1 and not d["ok"]
    assert {r["name"] for r in d["results"]} == set(PROPERTIES)
    (tmp_path / "selonly.py").write_text(
        "from lfbtheory.testing.conformance import reference_router\n"
        "class SelectOnly:\n"
        "    n_experts, k, n_groups, topk_groups = 8, 2, 4, 2\n"
        "    def select(self, scores, bias):\n"
        "        return reference_router().select(scores, bias)\n"
        "def make():\n"
        "    return SelectOnly()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["check", "selonly:make", "--only", "bias_shift_invariance", "--only", "frozen_bias"]
    assert main(args) == 0  # the bias property ran and passed; frozen_bias could not run
    out = capsys.readouterr().out
    assert "SKIP  frozen_bias" in out and "--strict" in out
    assert main([*args, "--strict"]) == 1
    assert "STRICT" in capsys.readouterr().out


def test_lfb_check_on_a_module_that_raises_on_import_exits_2_without_traceback(
    capsys, tmp_path, monkeypatch
):
    (tmp_path / "broken_router.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "broken_router:make"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lfb check: error: importing module 'broken_router' raised RuntimeError")
    assert "Traceback" not in err


def test_the_suite_runs_without_pytest_installed():
    """`pip install lfbtheory` alone: the causality property uses Hypothesis, never pytest."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from lfbtheory.testing.conformance import Config, reference_router, run_conformance\n"
        "rep = run_conformance(reference_router(), only=['causality', 'bias_shift_invariance'],"
        " config=Config(causality_examples=5))\n"
        "assert rep.passed == ('bias_shift_invariance', 'causality'), str(rep)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_steering_factor_is_measured_not_just_flagged():
    rep = run_conformance(MUTANTS["bias_scaled"][0](), only=["steering_factor"])
    msg = rep["steering_factor"].message
    lo, hi = (float(x) for x in msg.split("in [")[1].split("]")[0].split(", "))
    assert 1.9 < lo <= 2.0 <= hi < 2.1, msg  # s + 2 b measures a = 2
    ok = run_conformance(reference_router(), only=["steering_factor"])["steering_factor"]
    assert ok.passed and "a in [1, 1]" in ok.message


@pytest.mark.parametrize("e", [8, 64])
def test_a_router_that_never_adds_its_bias_fails_steering_at_any_e(e):
    class Ignores(R.TokenChoice):
        def select(self, scores, bias):
            return super().select(scores, np.zeros(self.n_experts))

    rep = run_conformance(Ignores(e, 2), only=["steering_monotonicity", "closed_loop_balance"])
    assert rep.failed == ("steering_monotonicity", "closed_loop_balance"), str(rep)


def test_a_design_the_router_cannot_state_is_a_coverage_gap(capsys):
    class Unread(R.TokenChoice):
        design_gaps = ("design: score function unknown; pass score_function=",)

    rep = run_conformance(Unread(8, 2), only=["selection_valid"])
    assert not rep.ok and "pass score_function=" in str(rep)


def test_the_report_says_whose_code_each_property_ran():
    rep = run_conformance(reference_router(), only=["steering_factor", "update_oracle"])
    assert rep["steering_factor"].exercised == "the router's own select"
    assert rep["update_oracle"].exercised == "the router's own forward, step"
