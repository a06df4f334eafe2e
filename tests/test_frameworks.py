"""Megatron-core and torchtitan routers, the frameworks' own code on CPU: recorded scores replay
their choices with 0 mismatched tokens under the design both adapters read (torchtitan's
``expert_bias_E`` forward argument and ``num_expert_groups``/``num_limited_groups``,
Megatron's top-(k // kept groups) group score), ``LoadLogger`` finds torchtitan's ``_E``
buffers, and the suite fails exactly the frameworks' real bugs: Megatron-core 0.16's padding
mask broadcast along the expert axis (it only lines up when tokens == experts), torchtitan's
counting of no-grad passes and its counts that cannot exclude padding.

Needs the ``frameworks`` extra (a separate environment: ``bash .ci/frameworks``, a slow job,
not part of ``.ci/run``); skipped with that reason without it."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra")
pytest.importorskip(
    "megatron.core", reason="Megatron-core is the optional 'frameworks' extra (bash .ci/frameworks)"
)
pytest.importorskip(
    "torchtitan", reason="torchtitan is the optional 'frameworks' extra (bash .ci/frameworks)"
)

from lfbtheory.adapters import frameworks as F  # noqa: E402
from lfbtheory.adapters.recording import (  # noqa: E402
    LoadLogger,
    check_reproduction,
    record_router_scores,
)
from lfbtheory.testing.conformance import Config, run_conformance  # noqa: E402

FAST = Config(causality_examples=10, drift_steps=20)


def _hidden(n=256, d=32, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_torchtitan_moe_is_recorded_and_replayed_exactly():
    moe = F.torchtitan_moe()
    model = torch.nn.Sequential(moe)
    trace = record_router_scores(model, [_hidden().view(4, 64, 32)], max_tokens=256)
    rep = check_reproduction(trace)
    assert sum(rep.mismatched) == 0 and rep.tokens == 256
    assert (trace.gate, trace.bias_on, trace.n_groups, trace.topk_groups) == (
        "sigmoid",
        "scores",
        4,
        2,
    )
    assert trace.group_score_topk == 2
    np.testing.assert_array_equal(trace.bias[0], moe.expert_bias_E.numpy())


def test_load_logger_finds_torchtitans_buffers(tmp_path):
    moe = F.torchtitan_moe()
    moe.train()
    logger = LoadLogger(torch.nn.Sequential(moe))
    with torch.no_grad():
        moe(_hidden().view(4, 64, 32))
    logger.log(step=1)
    assert logger.loads[0].sum() == 256 * 4
    np.testing.assert_allclose(logger.bias[0][0], moe.expert_bias_E.numpy())


def test_megatron_router_is_recorded_and_replayed_exactly():
    with F.megatron_on_cpu():
        router = F.megatron_router(n_experts=16, k=6, n_groups=4, topk_groups=2)
        model = torch.nn.Sequential(router)
        trace = record_router_scores(model, [_hidden().view(256, 1, 32)], max_tokens=256)
    rep = check_reproduction(trace)
    assert sum(rep.mismatched) == 0 and rep.tokens == 256
    # Megatron's group score is the top-(k // kept groups) = top-3 sum, not DeepSeek's top-2
    assert (trace.gate, trace.k, trace.n_groups, trace.group_score_topk) == ("sigmoid", 6, 4, 3)


def test_torchtitan_router_passes_with_the_adapters_update():
    rep = run_conformance(F.torchtitan_gate(16), config=FAST)
    assert rep.ok and not rep.failed and not rep.missing, str(rep)


def test_torchtitan_moe_counting_bugs_are_caught():
    rep = run_conformance(
        F.torchtitan_moe_gate(16),
        only=["passes_that_do_not_count", "padding_excluded", "steering_factor"],
        config=FAST,
    )
    assert set(rep.failed) == {"passes_that_do_not_count", "padding_excluded"}, str(rep)
    assert "no_grad" in rep["passes_that_do_not_count"].message


def test_megatron_padding_bug_is_caught_and_nothing_else():
    with F.megatron_on_cpu():
        rep = run_conformance(F.megatron_gate(16), config=FAST)
    assert rep.failed == ("padding_excluded",), str(rep)
    assert "n=16 tokens" in rep["padding_excluded"].message  # n == E: the broadcast lines up
