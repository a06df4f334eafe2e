"""Real router designs in plain torch (DeepSeek-V3 gate, Megatron-style router, Mixtral/Qwen
softmax top-k) pass every applicable conformance property at E = 8, 64 and 256 -- no false
alarm from torch.topk's tie order or the gate's own float32 sigmoid -- and a released bug in
the same gate (masked groups filled with 0.0) is caught. The 30-seed sweep is
``python -m lfbtheory.adapters.torch_examples --seeds 30`` (docs/conformance.md)."""

import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is an optional extra: pip install torch==2.13.0 (CPU) to run these"
)

from lfbtheory.adapters import torch_examples as X  # noqa: E402
from lfbtheory.testing.conformance import PROPERTIES, Config, run_conformance  # noqa: E402

FAST = dict(causality_examples=10, drift_steps=20)  # CI budget; the sweep uses 30 / 50

# (router, E, seed): seeds spread over the shapes (CI time); every property runs.
CASES = [
    ("deepseek_v3", 8, 7),
    ("deepseek_v3", 64, 3),
    ("deepseek_v3", 256, 0),
    ("megatron", 8, 1),
    ("megatron", 64, 5),
    ("megatron", 256, 2),
]


@pytest.mark.parametrize(("name", "e", "seed"), CASES)
def test_bias_routers_pass_every_property_with_none_skipped(name, e, seed):
    rep = run_conformance(X.EXAMPLES[name](e), config=Config(seed=seed, **FAST))
    assert rep.strict_ok and not rep.skipped, str(rep)
    assert set(rep.passed) == set(PROPERTIES)


@pytest.mark.parametrize("e", sorted(X.SHAPES))
def test_softmax_router_passes_what_applies_and_nothing_is_missing(e):
    rep = run_conformance(X.softmax_topk(e), config=Config(seed=e, **FAST))
    assert rep.passed == ("selection_valid", "causality"), str(rep)
    assert rep.strict_ok and not rep.missing and not rep.has_bias


class ZeroMaskedGate(X.DeepSeekV3Gate):
    mask_value = 0.0  # masked groups filled with 0.0: with s + b < 0 a masked expert wins


@pytest.mark.parametrize("e", [8, 256])
def test_the_zero_masked_group_bug_is_caught_at_real_shapes(e):
    rep = run_conformance(
        X.deepseek_v3(e, gate_cls=ZeroMaskedGate),
        only=["bias_shift_invariance", "selected_in_selected_groups"],
    )
    assert rep.failed == ("bias_shift_invariance", "selected_in_selected_groups"), str(rep)
    assert "masked expert won" in rep["selected_in_selected_groups"].message


def test_the_gate_really_computes_its_own_sigmoid_of_the_suite_scores():
    r = X.deepseek_v3(8)
    assert r.original_projection is not None  # the identity replaced the random weight
    s = torch.tensor([[0.25, 0.5, 0.75, 1.0, 0.0, 0.125, 0.5, 0.875]], dtype=torch.float64)
    x = r.inputs(s.numpy())
    assert x.shape == (1, 16) and torch.isfinite(x).all()  # 0 and 1 clipped: no +-inf, no NaN
    got = torch.sigmoid(torch.nn.functional.linear(x, r.module.weight))
    torch.testing.assert_close(got.double(), s.clamp(2**-20, 1 - 2**-20), rtol=0, atol=1e-6)


@pytest.mark.parametrize("e", sorted(X.SHAPES))
def test_softmax_gates_with_a_selection_bias_raise_no_false_alarm(e):
    """Scores ~1/E: perturbations and shifts relative to the score scale (at E = 256 the
    absolute N(0, 0.03) perturbation used to be inconclusive on 19 of 20 seeds)."""
    only = None if e == 8 else list(BIAS_ONLY)
    rep = run_conformance(X.softmax_bias(e, seed=e), only=only, config=Config(seed=e, **FAST))
    assert rep.ok and not rep.failed, str(rep)
    assert rep["gate_weights_bias_free"].passed and rep["bias_shift_invariance"].passed


BIAS_ONLY = ("gate_weights_bias_free", "bias_shift_invariance", "steering_monotonicity")
