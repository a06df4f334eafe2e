"""The PyTorch adapter: numpy in, tensors to the torch router, numpy back -- so the causality
checker and the conformance suite run on torch routers written here, unchanged."""

import sys
from pathlib import Path

import numpy as np
import pytest

from lfbtheory.analysis.causality import check_causality
from lfbtheory.online import schedules, updates
from lfbtheory.testing.conformance import PROPERTIES, Config, run_conformance, to_bfloat16


def test_missing_torch_gives_a_clear_import_error(monkeypatch):
    from lfbtheory.adapters import torch as torch_adapter

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'lfbtheory\[torch\]'"):
        torch_adapter.from_torch(lambda s, st: (s, st))


torch = pytest.importorskip(
    "torch", reason="PyTorch is an optional extra: pip install torch==2.13.0 (CPU) to run these"
)

from lfbtheory.adapters.torch import from_torch, to_numpy  # noqa: E402


class TorchLossFree:
    """A small torch Loss-Free router (sign rule, bias from past batches, float32 bias)."""

    n_experts, k = 8, 2
    rule = updates.sign(schedules.constant(1e-3))
    n_groups = topk_groups = None

    def init(self, bias0=None):
        b = (
            torch.zeros(8, dtype=torch.float32)
            if bias0 is None
            else bias0.to(torch.float32).clone()
        )
        return (b, torch.zeros(8, dtype=torch.int64), 0, False)

    def select(self, scores, bias):
        idx = torch.topk(scores + bias, self.k, dim=1).indices
        w = scores.gather(1, idx)
        return idx, w / w.sum(dim=1, keepdim=True)

    def forward(self, scores, state, *, mode="train", valid=None):
        bias, counts, step, frozen = state
        idx, w = self.select(scores, bias)
        if mode == "train":
            keep = idx if valid is None else idx[valid]
            counts = counts + torch.bincount(keep.flatten(), minlength=8)
        return idx, w, (bias, counts, step, frozen)

    def step(self, states):
        total = sum(s[1] for s in states).to(torch.float64)
        out = []
        for bias, _, step, frozen in states:
            if not frozen:
                bias = bias + float(self.rule.step(step)) * torch.sign(total.mean() - total).to(
                    torch.float32
                )
                step += 1
            out.append((bias, torch.zeros(8, dtype=torch.int64), step, frozen))
        return tuple(out)

    def bias(self, state):
        return state[0]

    def counts(self, state):
        return state[1]

    def freeze(self, state):
        return (*state[:3], True)

    def state_dict(self, state):
        return {
            "bias": state[0].clone(),
            "counts": state[1].clone(),
            "step": torch.tensor(state[2]),
            "frozen": torch.tensor(state[3]),
        }

    def load_state_dict(self, d):
        return (d["bias"].clone(), d["counts"].clone(), int(d["step"]), bool(d["frozen"]))

    def __call__(self, scores, state):
        state = self.init() if state is None else state
        idx, _, state = self.forward(scores, state)
        return idx, self.step([state])[0]


class BiasBufferModule(torch.nn.Module):
    """nn.Module keeping its bias in a buffer, updated in place *after* routing (causal)."""

    n_experts = 6

    def __init__(self):
        super().__init__()
        self.register_buffer("bias", torch.zeros(6))

    def forward(self, scores):
        idx = torch.topk(scores + self.bias, 2, dim=1).indices
        loads = torch.bincount(idx.flatten(), minlength=6).to(scores.dtype)
        self.bias += 0.05 * torch.sign(loads.mean() - loads)
        return idx


def torch_expert_choice(scores, state):
    n, e = scores.shape
    cap = max(1, n * 2 // e)
    idx = torch.topk(scores.T, cap, dim=1).indices
    return torch.zeros(e, n, dtype=torch.bool).scatter(1, idx, True).T, state


def test_numpy_in_tensors_to_the_callable_numpy_back():
    seen = {}

    def router(scores, state):
        seen["type"], seen["dtype"] = type(scores), scores.dtype
        return torch.topk(scores, 2, dim=1).indices.to(torch.int32), state

    r = from_torch(router, n_experts=4)
    sel, st = r(np.random.default_rng(0).random((5, 4)), "opaque")
    assert seen == {"type": torch.Tensor, "dtype": torch.float32}
    assert isinstance(sel, np.ndarray) and sel.dtype == np.int64 and sel.shape == (5, 2)
    assert st == "opaque"
    mask, _ = from_torch(torch_expert_choice)(np.random.default_rng(1).random((4, 4)), None)
    assert mask.dtype == bool and mask.shape == (4, 4)
    with pytest.raises(ValueError, match="floating dtype"):
        from_torch(router, dtype="int32")


def test_torch_loss_free_router_passes_every_conformance_property():
    rep = run_conformance(from_torch(TorchLossFree()))
    skipped = {"selected_in_selected_groups"}  # this torch router is not group-limited
    assert rep.ok and set(rep.skipped) == skipped, str(rep)
    assert set(rep.passed) == set(PROPERTIES) - skipped


class TorchBf16Bias(TorchLossFree):
    """The bias cast to bfloat16 with the module (the low-precision bias bug class), in real
    torch bf16."""

    def init(self, bias0=None):
        b, *rest = super().init(bias0)
        return (b.to(torch.bfloat16), *rest)

    def step(self, states):
        return tuple((b.to(torch.bfloat16), *rest) for b, *rest in super().step(states))


def test_a_torch_bf16_bias_is_caught_by_the_drift_and_checkpoint_properties():
    rep = run_conformance(from_torch(TorchBf16Bias()), only=["bias_drift", "checkpoint_roundtrip"])
    assert rep.failed == ("checkpoint_roundtrip", "bias_drift"), str(rep)
    assert "stored as bfloat16" in rep["checkpoint_roundtrip"].message


def test_causality_on_torch_routers():
    assert not check_causality(from_torch(BiasBufferModule()), 6, trials=5).leak
    rep = check_causality(from_torch(torch_expert_choice), 4, trials=0)
    assert rep.leak and "minimal counterexample" in str(rep)


def test_stateful_module_state_is_snapshotted_so_streams_rerun_identically():
    m = BiasBufferModule()
    r = from_torch(m)
    s = np.random.default_rng(2).random((12, 6))
    a1, st = r(s, None)
    a2, st2 = r(s, st)
    b1, _ = r(s, None)  # back to the state at wrap time
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(to_numpy(st2["bias"]), to_numpy(st["bias"]))


def test_numpy_bfloat16_emulation_matches_torch():
    x = np.random.default_rng(3).normal(scale=50, size=10_000).astype(np.float32)
    ours = to_bfloat16(x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(ours, theirs)


# --- wrapping real routers: tuples, bias buffers, hidden-state gates --------------------------


class TupleGate(torch.nn.Module):
    """Returns (logits, weights, indices) like HF MoE gates; bias-free."""

    n_experts, top_k = 8, 2

    def forward(self, scores):
        w, idx = torch.topk(scores, 2, dim=1)
        return scores.log(), w / w.sum(dim=1, keepdim=True), idx


def test_tuple_outputs_are_read_by_dtype_and_shape_or_by_name():
    s = np.random.default_rng(4).random((6, 8))
    auto, _ = from_torch(TupleGate())(s, None)
    named, _ = from_torch(TupleGate(), indices=2, weights=1)(s, None)
    np.testing.assert_array_equal(auto, np.argsort(-s, axis=1)[:, :2])
    np.testing.assert_array_equal(auto, named)
    rep = run_conformance(from_torch(TupleGate()), only=["selection_valid"])
    assert rep.passed == ("selection_valid",), str(rep)

    def ambiguous(x):
        return torch.topk(x, 2).indices, torch.topk(x, 3).indices

    with pytest.raises(ValueError, match="indices="):
        from_torch(ambiguous, n_experts=8)(s, None)


class SelectOnlyZeroMasked:
    """A torch router with only select() and group attributes: the 0.0-masked-group bug."""

    n_experts, k, n_groups, topk_groups = 8, 2, 4, 2

    def select(self, scores, bias):
        sel = scores + bias
        groups = sel.view(-1, 4, 2).topk(2, dim=-1).values.sum(-1)
        keep = groups.topk(2, dim=-1).indices
        mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True)
        sel = sel.masked_fill(~mask.repeat_interleave(2, dim=1), 0.0)  # BUG: 0.0, not -inf
        idx = sel.topk(2, dim=-1).indices
        w = scores.gather(1, idx)
        return idx, w / w.sum(dim=1, keepdim=True)


def test_a_select_only_torch_router_gets_the_bias_properties_and_fails_lfb_check(
    tmp_path, monkeypatch, capsys
):
    from lfbtheory.cli import main

    rep = run_conformance(from_torch(SelectOnlyZeroMasked()))
    assert "bias_shift_invariance" in rep.failed and "selected_in_selected_groups" in rep.failed
    (tmp_path / "my_gate.py").write_text(
        "import torch\n"
        "from lfbtheory.adapters.torch import from_torch\n"
        "from test_torch_adapter import SelectOnlyZeroMasked\n"
        "def make():\n"
        "    return from_torch(SelectOnlyZeroMasked())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["check", "my_gate:make", "--examples", "5"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  bias_shift_invariance" in out and "FAILED: " in out


class BufferGate(torch.nn.Module):
    """Sigmoid gate on logits with an `expert_bias` buffer and an in-place sign update."""

    def __init__(self, bias_dtype=torch.float32, persistent=True):
        super().__init__()
        self.register_buffer("expert_bias", torch.zeros(8, dtype=bias_dtype), persistent)

    def forward(self, logits):
        s = torch.sigmoid(logits)
        idx = torch.topk(s + self.expert_bias, 2, dim=1).indices
        w = s.gather(1, idx)
        return w / w.sum(dim=1, keepdim=True), idx

    def update(self, loads):
        self.expert_bias += 1e-3 * torch.sign(loads.mean() - loads)


def test_a_bias_buffer_module_with_an_update_gets_the_whole_lifecycle():
    r = from_torch(BufferGate(), inputs="logits", update="update", rule=updates.sign(1e-3))
    rep = run_conformance(r, config=Config(causality_examples=20, drift_steps=30))
    assert rep.strict_ok, str(rep)
    assert set(rep.passed) == set(PROPERTIES) - {"selected_in_selected_groups"}
    assert rep.not_applicable == ("selected_in_selected_groups",)


def test_a_bias_buffer_found_without_an_update_is_checked_by_the_bias_properties():
    rep = run_conformance(
        from_torch(BufferGate(), inputs="logits"), config=Config(causality_examples=10)
    )
    assert {"gate_weights_bias_free", "bias_shift_invariance"} <= set(rep.passed), str(rep)
    assert rep.ok and not rep.strict_ok and "update_oracle" in rep.missing


def test_a_non_persistent_bias_buffer_is_caught_by_the_checkpoint_property():
    r = from_torch(
        BufferGate(persistent=False), inputs="logits", update="update", rule=updates.sign(1e-3)
    )
    rep = run_conformance(r, only=["checkpoint_roundtrip"])
    assert rep.failed == ("checkpoint_roundtrip",), str(rep)


def test_logit_inputs_clip_zero_and_one_scores_instead_of_nan():
    seen = {}

    def gate(logits):
        seen["x"] = logits
        return torch.topk(torch.sigmoid(logits), 2).indices

    sel, _ = from_torch(gate, inputs="logits", n_experts=4)(np.array([[0.0, 1.0, 0.5, 0.25]]), None)
    assert torch.isfinite(seen["x"]).all() and sel.tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="inputs must be one of"):
        from_torch(gate, inputs="probabilities")
    with pytest.raises(ValueError, match="d >= n_experts"):
        from_torch(torch.nn.Linear(4, 8, bias=False), inputs="hidden")


def test_dataclass_outputs_by_name_and_the_report_says_how_inputs_were_built():
    from dataclasses import dataclass

    @dataclass
    class RouterOutput:
        experts: torch.Tensor
        gates: torch.Tensor
        aux_loss: torch.Tensor

    def gate(logits):
        w, idx = torch.topk(torch.softmax(logits, dim=-1), 2)
        return RouterOutput(idx, w, torch.tensor(0.0))

    r = from_torch(gate, inputs="logits", indices="experts", weights="gates", n_experts=8)
    rep = run_conformance(r, only=["selection_valid"])
    assert rep.passed == ("selection_valid",) and "inputs: logits z = logit(" in rep.router


def test_a_gate_whose_bias_buffer_is_never_added_fails_steering():
    from lfbtheory.adapters import torch_examples as X

    class NeverAdded(X.DeepSeekV3Gate):
        def forward(self, x):
            saved = self.e_score_correction_bias.clone()
            self.e_score_correction_bias.zero_()  # BUG: routes as if the bias were 0
            try:
                return super().forward(x)
            finally:
                self.e_score_correction_bias.copy_(saved)

    rep = run_conformance(
        X.deepseek_v3(8, gate_cls=NeverAdded),
        only=["steering_monotonicity", "steering_factor", "closed_loop_balance"],
    )
    assert set(rep.failed) == {"steering_monotonicity", "steering_factor", "closed_loop_balance"}
    assert not rep.ok


def test_inference_only_gates_get_the_adapters_lifecycle_and_the_report_says_so():
    from lfbtheory.adapters import torch_examples as X

    gate = X.DeepSeekV3Gate(16, 8, 2, 4, 2)
    r = from_torch(gate, inputs="hidden", update="rule", rule=updates.sign(1e-3))
    rep = run_conformance(r, only=["update_oracle", "steering_factor"])
    assert rep.ok, str(rep)
    assert "the adapter applies the declared rule" in rep["update_oracle"].exercised
    assert "no update of its own" in rep["update_oracle"].exercised
    assert rep["steering_factor"].exercised == "your module's forward (selection and weights)"
