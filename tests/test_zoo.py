"""Every MoE family of the installed transformers is read right by both adapters: built from a
tiny config with random weights and random non-zero biases, its recorded scores replay the
router's own choices with 0 mismatched tokens, the design both adapters read (score function,
bias placement, group rule) is the one its modeling source states (``zoo.KNOWN``), and the
conformance suite run on it the documented way (``from_torch(router, inputs="hidden",
update="rule", rule=...)``) fails nothing -- except the released bug it must find. A family that
appears in a new transformers release fails ``test_every_family_is_tabulated`` until it is
read and tabulated; families that cannot be expressed are refused with their reason.

Time: the properties that run the family's own code (selection) run on every family; the
lifecycle properties of these inference-only routers run only the adapter's update, the same
code for every family, so the full suite runs on one family per place the bias lives."""

import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is an optional extra: pip install torch==2.13.0 (CPU) to run these"
)
transformers = pytest.importorskip(
    "transformers", reason="transformers is a test dependency: pip install -e '.[test]'"
)

from lfbtheory.adapters import zoo  # noqa: E402
from lfbtheory.adapters.recording import record_router_scores  # noqa: E402

FAMILIES = zoo.moe_families()
BUILT = [f for f in sorted(zoo.KNOWN) if not zoo.KNOWN[f].refused]
REFUSED = [f for f in sorted(zoo.KNOWN) if zoo.KNOWN[f].refused]
#: one family per place the bias lives (gate buffer, sub-module, forward argument, on the
#: logits, none) gets the whole suite, lifecycle included
FULL = ("deepseek_v3", "ernie4_5_moe", "minimax_m2", "kolibri1", "mixtral")


def test_every_family_is_tabulated():
    missing = sorted(set(FAMILIES) - set(zoo.KNOWN))
    gone = sorted(set(zoo.KNOWN) - set(FAMILIES))
    assert not missing, (
        f"transformers {transformers.__version__} has MoE families the adapters were never "
        f"checked on: {missing}; read their router and add them to lfbtheory.adapters.zoo.KNOWN"
    )
    assert not gone, f"tabulated families not in transformers {transformers.__version__}: {gone}"


def _expected_row(exp):
    bias = "none" if exp.bias is None else f"on {exp.bias_on}"
    groups = "-" if exp.group_score_topk is None else f"2/4, top-{exp.group_score_topk} sum"
    return exp.gate, bias, groups


@pytest.mark.parametrize("family", BUILT)
def test_recorded_scores_replay_and_the_suite_passes(family):
    exp = zoo.KNOWN[family]
    only = None if family in FULL else zoo.OWN_CODE
    row = zoo.check_family(family, seed=0, only=only)
    assert (row["gate"], row["bias"], row["groups"]) == _expected_row(exp), row
    assert row["mismatched"] == 0 and row["tokens"] == 256, row
    assert not row["suite_gaps"], row["report"]
    want = {"bias_shift_invariance", "selected_in_selected_groups"} if exp.bug else set()
    assert set(row["suite_failed"]) == want, row["report"]


@pytest.mark.parametrize("family", REFUSED)
def test_routers_that_cannot_be_expressed_are_refused_with_the_reason(family):
    row = zoo.check_family(family)
    assert row["refused"] == zoo.KNOWN[family].refused
    assert row.get("refused_by"), "a refused family must be refused by the adapters, not skipped"


def test_a_hash_router_is_refused_by_the_recording():
    from transformers.models.deepseek_v4 import modeling_deepseek_v4 as m

    cfg = zoo._tiny_config("deepseek_v4")
    router = m.DeepseekV4HashRouter(cfg)
    with torch.no_grad():
        router.weight.normal_()
        rows = torch.stack([torch.randperm(16)[: router.top_k] for _ in router.tid2eid])
        router.tid2eid.copy_(rows)  # each token id: k distinct experts, unrelated to the logits
    ids = torch.randint(0, cfg.vocab_size, (1, 64))

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.router = router

        def forward(self, input_ids):
            h = torch.randn(64, cfg.hidden_size)
            return self.router(h, input_ids)

    with pytest.raises(ValueError, match="cannot be expressed"):
        record_router_scores(Block(), [ids], max_tokens=64, gates=lambda n, mod: mod is router)


def test_a_group_score_bug_in_an_hf_router_is_caught():
    """DeepSeek-V3's router read under its HF names (num_group, topk_group) with the group
    score taken as the max instead of the top-2 sum: a failure and a design gap, never a
    PASS with the group property N/A."""
    import torch.nn.functional as F
    from transformers.models.deepseek_v3 import modeling_deepseek_v3 as m

    from lfbtheory.adapters.torch import from_torch
    from lfbtheory.testing.conformance import run_conformance

    class MaxGroup(m.DeepseekV3TopkRouter):
        def forward(self, h):
            h = h.view(-1, self.hidden_dim)
            logits = F.linear(h.float(), self.weight.float())
            s = logits.sigmoid()
            c = s + self.e_score_correction_bias
            g = c.view(-1, self.num_group, self.num_experts // self.num_group)
            keep = torch.topk(g.max(-1).values, self.topk_group, dim=-1)[1]  # BUG: max
            mask = torch.zeros(g.shape[:2]).scatter_(1, keep, 1).bool()
            c = g.masked_fill(~mask[..., None], float("-inf")).flatten(1)
            idx = torch.topk(c, self.top_k, dim=-1)[1]
            w = s.gather(1, idx)
            return logits, w / w.sum(-1, keepdim=True), idx

    router = MaxGroup(zoo._tiny_config("deepseek_v3"))
    with torch.no_grad():
        router.weight.normal_()
        router.e_score_correction_bias.normal_(0, 0.1)
    rep = run_conformance(from_torch(router, inputs="hidden"), only=["selected_in_selected_groups"])
    assert rep.failed == ("selected_in_selected_groups",) and not rep.ok, str(rep)
    assert any("groups 2/4 (max)" in g for g in rep.design_gaps)
