"""Recording router scores with forward hooks: the recorded scores reproduce the model's own
routing decisions (top-k of scores [+ bias], group-limited where the model is), the seeded
subsample is reproducible and its token indices point at the tokens that were scored, and a
recorded trace runs through ``lfb regret --trace`` with no other options."""

import json

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is an optional extra: pip install torch==2.13.0 (CPU) to run these"
)
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from lfbtheory.adapters.recording import (  # noqa: E402
    LoadLogger,
    check_reproduction,
    find_gates,
    record_router_scores,
)
from lfbtheory.analysis.diagnose import read_load_log  # noqa: E402
from lfbtheory.cli import main  # noqa: E402
from lfbtheory.traces import read_trace  # noqa: E402


class SoftmaxTopKRouter(nn.Module):
    """Mixtral / Qwen-MoE / OLMoE gate: probs = softmax(W h), experts = top-k(probs)."""

    def __init__(self, hidden, n_experts, top_k):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_experts, hidden))
        self.top_k, self.num_experts = top_k, n_experts

    def forward(self, h):
        logits = F.linear(h.reshape(-1, h.shape[-1]), self.weight)
        probs = torch.softmax(logits.float(), dim=-1)
        top, idx = torch.topk(probs, self.top_k, dim=-1)
        return logits, top / top.sum(-1, keepdim=True), idx


class SigmoidGroupTopkRouter(nn.Module):
    """DeepSeek-V3 gate (arXiv 2412.19437 eq. 13-16): s = sigmoid(W h); choose top-k of s + b
    among the best topk_group of n_group groups (group score: sum of its top-2 of s + b)."""

    def __init__(self, hidden, n_experts, top_k, n_group, topk_group):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_experts, hidden))
        self.register_buffer("e_score_correction_bias", 0.3 * torch.randn(n_experts))
        self.top_k, self.num_experts = top_k, n_experts
        self.n_group, self.topk_group = n_group, topk_group

    def forward(self, h):
        logits = F.linear(h.reshape(-1, h.shape[-1]), self.weight)
        s = logits.sigmoid()
        choice = s + self.e_score_correction_bias
        g = choice.view(-1, self.n_group, self.num_experts // self.n_group)
        group_scores = g.topk(2, dim=-1)[0].sum(-1)
        keep = torch.zeros_like(group_scores).scatter_(
            1, group_scores.topk(self.topk_group, dim=-1)[1], 1.0
        )
        mask = keep.unsqueeze(-1).expand_as(g).reshape(-1, self.num_experts).bool()
        idx = choice.masked_fill(~mask, float("-inf")).topk(self.top_k, dim=-1)[1]
        return logits, s.gather(1, idx), idx


class Block(nn.Module):
    def __init__(self, router, hidden, n_experts):
        super().__init__()
        self.gate = router
        self.experts = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_experts))

    def forward(self, x):
        b, s, h = x.shape
        _, w, idx = self.gate(x)
        flat = x.reshape(-1, h)
        out = torch.zeros_like(flat)
        for j in range(idx.shape[1]):
            for e in idx[:, j].unique().tolist():
                rows = idx[:, j] == e
                out[rows] += w[rows, j, None] * self.experts[e](flat[rows])
        return x + out.reshape(b, s, h)


class TinyMoE(nn.Module):
    def __init__(self, make_router, n_layers=2, vocab=50, hidden=16, n_experts=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(
            Block(make_router(), hidden, n_experts) for _ in range(n_layers)
        )

    def forward(self, ids):
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return x


def _batches(n=4, shape=(3, 20), vocab=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, shape, generator=g) for _ in range(n)]


def _softmax_model(seed=0):
    torch.manual_seed(seed)
    return TinyMoE(lambda: SoftmaxTopKRouter(16, 8, 2))


def _deepseek_model(seed=0):
    torch.manual_seed(seed)
    return TinyMoE(lambda: SigmoidGroupTopkRouter(16, 16, 4, 4, 2), n_experts=16)


@pytest.mark.parametrize("make", [_softmax_model, _deepseek_model])
def test_recorded_scores_reproduce_the_models_routing(make):
    model = make()
    trace = record_router_scores(model, _batches(), max_tokens=10_000, seed=0)
    rep = check_reproduction(trace)
    assert rep.tokens == 4 * 3 * 20
    assert rep.exact_up_to_ties and sum(rep.mismatched) == 0
    # the check is not vacuous: a wrong bias changes the DeepSeek routing, a wrong k any routing
    assert min(np.min(np.ptp(trace.scores(j), axis=1)) for j in range(trace.n_layers)) > 0


def test_inferred_settings_follow_the_gate_equations():
    soft = record_router_scores(_softmax_model(), _batches(1), max_tokens=100)
    assert (soft.gate, soft.k, soft.n_experts, soft.n_groups, soft.bias) == (
        "softmax",
        2,
        8,
        0,
        None,
    )
    ds_model = _deepseek_model()
    ds = record_router_scores(ds_model, _batches(1), max_tokens=100)
    assert (ds.gate, ds.k, ds.n_experts, ds.n_groups, ds.topk_groups) == ("sigmoid", 4, 16, 4, 2)
    np.testing.assert_allclose(
        ds.bias[1], ds_model.layers[1].gate.e_score_correction_bias.numpy(), rtol=0, atol=0
    )
    assert ds.layer_names == ("layers.0.gate", "layers.1.gate")


def test_wrong_bias_breaks_the_reproduction():
    trace = record_router_scores(_deepseek_model(), _batches(), max_tokens=10_000)
    from lfbtheory.traces import Trace

    wrong = Trace(
        **{
            **{
                f: getattr(trace, f)
                for f in (
                    "values",
                    "kind",
                    "gate",
                    "k",
                    "layer_names",
                    "n_groups",
                    "topk_groups",
                    "experts",
                )
            },
            "bias": np.zeros_like(trace.bias),
        }
    )
    assert sum(check_reproduction(wrong).mismatched) > 0


def test_subsample_is_seeded_capped_and_its_indices_locate_the_tokens():
    model = _softmax_model()
    batches = _batches()
    a = record_router_scores(model, batches, max_tokens=50, seed=3)
    b = record_router_scores(model, batches, max_tokens=50, seed=3)
    c = record_router_scores(model, batches, max_tokens=50, seed=4)
    assert a.n_tokens == 50
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.position, c.position)
    # layer 0's gate sees the embeddings: recompute its logits from the recorded indices
    ids = torch.stack(
        [
            batches[i][s, p]
            for i, s, p in zip(a.batch_index, a.sequence_index, a.position, strict=True)
        ]
    )
    with torch.no_grad():
        want = F.linear(model.embed(ids), model.layers[0].gate.weight).numpy()
    np.testing.assert_allclose(a.values[0], want, rtol=1e-6, atol=1e-6)


def test_gate_selection_by_regex_type_and_predicate():
    model = _softmax_model()
    auto = [n for n, _ in find_gates(model)]
    assert auto == ["layers.0.gate", "layers.1.gate"]
    assert [n for n, _ in find_gates(model, r"layers\.1\.gate$")] == ["layers.1.gate"]
    assert [n for n, _ in find_gates(model, SoftmaxTopKRouter)] == auto
    assert [n for n, _ in find_gates(model, lambda n, m: n.endswith("0.gate"))] == ["layers.0.gate"]
    with pytest.raises(ValueError, match="gates matched no module"):
        find_gates(model, r"no_such_module")
    with pytest.raises(TypeError, match="gates must be None, a module-name regex"):
        find_gates(model, 3)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        find_gates(object())


class LinearGateBlock(nn.Module):
    """transformers 4.x style: ``self.gate = nn.Linear(hidden, E)``, top_k on the block."""

    def __init__(self, hidden=16, n_experts=8, top_k=2):
        super().__init__()
        self.gate = nn.Linear(hidden, n_experts, bias=False)
        self.top_k = top_k

    def forward(self, x):
        probs = torch.softmax(self.gate(x), dim=-1)
        return x * torch.topk(probs, self.top_k, dim=-1)[0].sum(-1, keepdim=True)


def test_linear_gates_take_k_from_the_parent_and_record_logits():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 16), LinearGateBlock(), LinearGateBlock(top_k=3))
    # a bare Linear returns no choice: its score function can be neither read nor measured
    with pytest.raises(ValueError, match="pass gate="):
        record_router_scores(model, _batches(1), gates=r"^1\.gate$", max_tokens=10)
    with pytest.raises(ValueError, match="k could not be inferred"):  # 2 vs 3: ambiguous
        record_router_scores(model, _batches(1), gates=r"\.gate$", gate="softmax", max_tokens=10)
    t = record_router_scores(model, _batches(1), gates=r"^1\.gate$", gate="softmax", max_tokens=10)
    assert (t.kind, t.gate, t.k, t.values.shape, t.experts) == (
        "logits",
        "softmax",
        2,
        (1, 10, 8),
        None,
    )
    t = record_router_scores(
        model, _batches(1), gates=nn.Linear, k=2, gate="softmax", max_tokens=10
    )
    assert t.n_layers == 2


def test_layers_seeing_different_tokens_are_refused():
    with pytest.raises(ValueError, match="different token counts"):
        record_router_scores(
            _softmax_model(),
            _batches(1),
            gates=r"layers\.0\.(gate|experts\.0)$",
            k=2,
            max_tokens=10,
        )


def test_bad_arguments_are_named():
    model = _softmax_model()
    with pytest.raises(ValueError, match="max_tokens must be a positive integer"):
        record_router_scores(model, _batches(1), max_tokens=0)
    with pytest.raises(ValueError, match="gate must be one of"):
        record_router_scores(model, _batches(1), gate="relu")
    with pytest.raises(ValueError, match="at least one token"):
        record_router_scores(model, [], max_tokens=10)


def test_record_then_lfb_regret_trace_runs_end_to_end(tmp_path, capsys):
    path = tmp_path / "tiny.npz"
    record_router_scores(_softmax_model(), _batches(4, (4, 32)), max_tokens=512, path=path)
    assert read_trace(path).n_tokens == 512
    out = tmp_path / "regret"
    code = main(
        [
            "regret",
            "--trace",
            str(path),
            "--steps",
            "20",
            "--n",
            "64",
            "--run",
            "sign:deepseek_v3",
            "--run",
            "proportional:inverse_sqrt",
            "--checkpoints",
            "5",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    summary = json.loads((out / "trace_summary.json").read_text())
    assert (summary["n_experts"], summary["k"], summary["gate"], summary["n"]) == (
        8,
        2,
        "softmax",
        64,
    )
    assert [lay["name"] for lay in summary["layers"]] == ["layers.0.gate", "layers.1.gate"]
    assert all(len(lay["runs"]) == 2 for lay in summary["layers"])
    assert "=== layer 1: layers.1.gate" in capsys.readouterr().out


class TitanLikeMoE(nn.Module):
    """A module with torchtitan's public MoE buffer names (tokens_per_expert, expert_bias)."""

    def __init__(self, n_experts):
        super().__init__()
        self.register_buffer("tokens_per_expert", torch.zeros(n_experts))
        self.register_buffer("expert_bias", torch.zeros(n_experts))


def test_load_logger_writes_the_diagnose_layout(tmp_path):
    model = nn.ModuleDict({"a": TitanLikeMoE(4), "b": TitanLikeMoE(4)})
    logger = LoadLogger(model)
    rng = np.random.default_rng(0)
    want = rng.integers(1, 9, size=(3, 2, 4)).astype(np.float64)
    for t in range(3):
        for j, name in enumerate(("a", "b")):
            model[name].tokens_per_expert.copy_(torch.as_tensor(want[t, j]))
            model[name].expert_bias.fill_(0.001 * t)
        logger.log(step=10 * t)
    logger.save(tmp_path / "log.npz")
    log = read_load_log(tmp_path / "log.npz")
    np.testing.assert_array_equal(log.loads, want)
    np.testing.assert_array_equal(log.steps, [0, 10, 20])
    assert log.layer_names == ("a", "b")
    np.testing.assert_allclose(log.bias[2], 0.002, rtol=1e-6)


transformers = None
try:  # optional, test-time only: pip install transformers
    import transformers  # noqa: F811
except ImportError:  # pragma: no cover - depends on the environment
    pass


def _hf_models():
    t = transformers
    common = dict(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return {
        "mixtral": lambda: t.MixtralForCausalLM(
            t.MixtralConfig(**common, num_local_experts=8, num_experts_per_tok=2)
        ),
        "qwen2_moe": lambda: t.Qwen2MoeForCausalLM(
            t.Qwen2MoeConfig(
                **common,
                num_experts=8,
                num_experts_per_tok=2,
                moe_intermediate_size=16,
                shared_expert_intermediate_size=16,
            )
        ),
        "qwen3_moe": lambda: t.Qwen3MoeForCausalLM(
            t.Qwen3MoeConfig(
                **common, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16
            )
        ),
        "olmoe": lambda: t.OlmoeForCausalLM(
            t.OlmoeConfig(**common, num_experts=8, num_experts_per_tok=2)
        ),
        "deepseek_v3": lambda: t.DeepseekV3ForCausalLM(
            t.DeepseekV3Config(
                vocab_size=64,
                hidden_size=32,
                intermediate_size=32,
                moe_intermediate_size=16,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=4,
                n_routed_experts=16,
                num_experts_per_tok=4,
                n_group=4,
                topk_group=2,
                first_k_dense_replace=1,
                n_shared_experts=1,
                q_lora_rank=16,
                kv_lora_rank=16,
                qk_rope_head_dim=8,
                qk_nope_head_dim=8,
                v_head_dim=8,
                max_position_embeddings=64,
            )
        ),
    }


@pytest.mark.skipif(
    transformers is None,
    reason="transformers not installed (optional, test-time only: pip install transformers)",
)
@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe", "qwen3_moe", "olmoe", "deepseek_v3"])
def test_hugging_face_families_built_from_configs_reproduce_exactly(family):
    torch.manual_seed(0)
    model = _hf_models()[family]()
    if family == "deepseek_v3":  # a trained-looking correction bias, so the bias matters
        for m in model.modules():
            if hasattr(m, "e_score_correction_bias"):
                m.e_score_correction_bias.copy_(0.05 * torch.randn(16))
    trace = record_router_scores(model, _batches(3, (2, 16), vocab=64), max_tokens=96)
    rep = check_reproduction(trace)
    assert rep.exact_up_to_ties and sum(rep.mismatched) == 0
    assert min(np.min(np.ptp(trace.scores(j), axis=1)) for j in range(trace.n_layers)) > 0
    assert trace.gate == ("sigmoid" if family == "deepseek_v3" else "softmax")
    assert trace.n_groups == (4 if family == "deepseek_v3" else 0)
    assert family.split("_")[0] in trace.model.lower()


class TokenChoiceTopKRouter(nn.Module):
    """torchtitan's router structure (public source): ``gate = nn.Linear(dim, E)``,
    ``forward(x, expert_bias) -> (top_scores, selected_experts_indices, num_tokens_per_expert)``,
    the bias only in the choice."""

    def __init__(self, dim, num_experts, top_k, score_func="sigmoid"):
        super().__init__()
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.num_experts, self.top_k, self.score_func = num_experts, top_k, score_func

    def forward(self, x, expert_bias=None):
        scores = self.gate(x)
        scores = (
            torch.sigmoid(scores.float())
            if self.score_func == "sigmoid"
            else F.softmax(scores.float(), dim=1)
        )
        idx = torch.topk(scores + expert_bias, k=self.top_k, dim=1)[1]
        counts = torch.histc(
            idx.view(-1).float(), bins=self.num_experts, min=0, max=self.num_experts
        )
        return scores.gather(1, idx), idx, counts


class TitanMoE(nn.Module):
    def __init__(self, dim=16, num_experts=8, top_k=2):
        super().__init__()
        self.router = TokenChoiceTopKRouter(dim, num_experts, top_k)
        self.register_buffer("expert_bias", 0.2 * torch.randn(num_experts))
        self.register_buffer("tokens_per_expert", torch.zeros(num_experts))

    def forward(self, x):
        b, s, d = x.shape
        top, idx, counts = self.router(x.view(-1, d), self.expert_bias)
        self.tokens_per_expert.add_(counts)
        return x + top.sum(-1).view(b, s, 1)


class MegatronLikeRouter(nn.Module):
    """Megatron-core TopKRouter's interface as described in its public source: weight (E,
    hidden), ``topk``, ``score_function``, ``expert_bias``; forward returns (probs,
    routing_map)."""

    def __init__(self, hidden=16, n_experts=8, topk=2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_experts, hidden))
        self.topk, self.score_function = topk, "sigmoid"
        self.register_buffer("expert_bias", 0.2 * torch.randn(n_experts))

    def forward(self, x):
        scores = torch.sigmoid(F.linear(x.reshape(-1, x.shape[-1]), self.weight))
        idx = torch.topk(scores + self.expert_bias, self.topk, dim=-1)[1]
        routing_map = torch.zeros_like(scores, dtype=torch.bool).scatter(1, idx, True)
        return scores * routing_map, routing_map


class MegatronLikeMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.router = MegatronLikeRouter()

    def forward(self, x):
        probs, _ = self.router(x)
        return x + probs.sum(-1).view(*x.shape[:2], 1)


@pytest.mark.parametrize("framework", ["torchtitan", "megatron"])
def test_framework_router_interfaces_reproduce_their_routing(framework):
    torch.manual_seed(0)
    block = TitanMoE if framework == "torchtitan" else MegatronLikeMoE
    model = nn.Sequential(nn.Embedding(50, 16), block(), block())
    trace = record_router_scores(model, _batches(), max_tokens=10_000)
    assert (trace.gate, trace.k, trace.n_experts) == ("sigmoid", 2, 8)
    assert trace.bias is not None and trace.experts is not None
    rep = check_reproduction(trace)
    assert rep.exact_up_to_ties and sum(rep.mismatched) == 0
