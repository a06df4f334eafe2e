# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Your own model: record its router scores, replay them, diagnose a training log
#
# Two questions from people who train MoE models:
#
# 1. *On my model's real router scores, which update rule and step size balances best, and how
#    far from the exact optimum am I?* — record the scores with forward hooks
#    (`lfbtheory.adapters.recording.record_router_scores`), then replay them with
#    `lfb regret --trace FILE` (E, k and the gate come from the file; every layer is its own
#    router).
# 2. *Is my run's bias healthy — drifting, cycling, converging — and what does its balance
#    cost?* — `lfb diagnose LOG [--trace FILE]` on the per-step expert loads (and bias).
#
# The model here is a small DeepSeek-V3-style MoE written in plain torch with random weights
# (sigmoid gate, a correction bias that enters only the choice, group-limited top-k;
# arXiv 2412.19437 Sec. 2.1.2), so the notebook needs no download and no `transformers`.
# The same call works on Hugging Face models (Mixtral, Qwen-MoE, OLMoE, DeepSeek-V3 built from
# configs are tested in `tests/test_recording.py` when `transformers` is installed); see
# `docs/your_own_model.md` for recipes. A random model's router is not a trained one: the
# numbers below show the workflow, not how a trained model balances.

# %%
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display
from torch import nn
from torch.nn import functional as F

from lfbtheory import simulate, updates
from lfbtheory.adapters.recording import check_reproduction, record_router_scores
from lfbtheory.analysis.diagnose import diagnose, read_load_log, synthetic_log, write_report
from lfbtheory.experiments.regret import RunSpec
from lfbtheory.experiments.trace import run_trace_regret
from lfbtheory.workloads.trace import TraceWorkload

SMALL = os.environ.get("LFB_NOTEBOOK_SMALL") == "1"  # "1" in CI: fewer tokens and steps
TOKENS = 2048 if SMALL else 8192  # recorded tokens per layer
STEPS = 100 if SMALL else 2000  # replayed batches
N = 256  # tokens per replayed batch: capacity n k / E = 256 * 4 / 16 = 64
# removed with its contents when the kernel ends (nothing is left in the temp folder)
_scratch = tempfile.TemporaryDirectory(prefix="lfb-nb06-")
OUT = Path(_scratch.name)
print(f"size: {'small' if SMALL else 'full'}; results in {OUT}")

# %% [markdown]
# ## A small DeepSeek-V3-style model (random weights)
#
# `Router.forward` returns `(logits, weights, experts)` like the routers of `transformers` >= 5,
# so the recorder takes the logits from the output and the model's own choice for the check.
# Its class name ends in `Router`, which is how `gates=None` finds it; `e_score_correction_bias`
# and `n_group`/`topk_group` are read from the module.


# %%
class Router(nn.Module):
    def __init__(self, hidden, n_experts=16, top_k=4, n_group=4, topk_group=2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_experts, hidden) / hidden**0.5)
        self.register_buffer("e_score_correction_bias", torch.zeros(n_experts))
        self.top_k, self.num_experts, self.n_group, self.topk_group = (
            top_k,
            n_experts,
            n_group,
            topk_group,
        )

    def forward(self, h):
        logits = F.linear(h.reshape(-1, h.shape[-1]), self.weight)
        s = logits.sigmoid()
        choice = s + self.e_score_correction_bias
        g = choice.view(-1, self.n_group, self.num_experts // self.n_group)
        best = g.topk(2, dim=-1)[0].sum(-1).topk(self.topk_group, dim=-1)[1]
        keep = torch.zeros(g.shape[:2]).scatter_(1, best, 1.0).bool()
        mask = keep.unsqueeze(-1).expand_as(g).reshape(choice.shape)
        experts = choice.masked_fill(~mask, float("-inf")).topk(self.top_k, dim=-1)[1]
        w = s.gather(1, experts)
        return logits, w / w.sum(-1, keepdim=True), experts


class Layer(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.mix = nn.Linear(hidden, hidden)
        self.gate = Router(hidden)
        self.experts = nn.Linear(hidden, 16 * hidden)  # all experts in one matmul (tiny model)

    def forward(self, x):
        x = x + torch.tanh(self.mix(x))
        _, w, experts = self.gate(x)
        out = self.experts(x.reshape(-1, x.shape[-1])).view(-1, 16, x.shape[-1])
        picked = out.gather(1, experts[..., None].expand(-1, -1, x.shape[-1]))
        return x + (w[..., None] * picked).sum(1).view_as(x)


torch.manual_seed(0)
model = nn.Sequential(nn.Embedding(1000, 64), *[Layer(64) for _ in range(3)])
gen = torch.Generator().manual_seed(1)
# Zipf-distributed token ids: a crude stand-in for text (frequent tokens repeat)
ranks = torch.arange(1, 1001, dtype=torch.float)
batches = [
    torch.multinomial(1 / ranks, 8 * 128, True, generator=gen).view(8, 128)
    for _ in range(TOKENS // (8 * 128))
]

# %% [markdown]
# ## Record the router scores
#
# One call: hooks on every gate, a seeded subsample (here every token, `max_tokens=TOKENS`),
# sequence positions, and the file. Then the check that matters: top-k of the recorded scores
# plus the recorded bias (group-limited) is exactly what the model chose.

# %%
trace_path = OUT / "my_model_trace.npz"
trace = record_router_scores(model, batches, max_tokens=TOKENS, seed=0, path=trace_path)
print(trace.describe())
rep = check_reproduction(trace)
print(
    f"tokens whose recorded routing differs from the model's: {rep.mismatched} per layer "
    f"(near-ties among them: {rep.near_ties}) of {rep.tokens}"
)
with np.load(trace_path) as f:  # plain numpy reads it
    print("file entries:", ", ".join(sorted(f.files)))

# %% [markdown]
# ## Which rule balances best on these scores? `lfb regret --trace`
#
# Two rules per layer: the published sign rule (u = 1e-3) and the proportional rule with the
# calibrated c/sqrt(t) step (the documented rule of `lfbtheory.experiments.calibrate`: constants
# measured on the first batches of the same stream — in-sample for a trace). The command line
# equivalent is `lfb regret --trace my_model_trace.npz --run sign:published
# --run proportional:inverse_sqrt`.

# %%
runs = (
    RunSpec("sign u=1e-3 (published)", "sign", "published"),
    RunSpec("proportional c/sqrt(t)", "proportional", "inverse_sqrt"),
)
summary, root = run_trace_regret(
    trace_path,
    n=N,
    steps=STEPS,
    runs=runs,
    out=OUT / "regret",
    progress=False,
    layers=(0, 1) if SMALL else None,
)
print(f"\n{summary['epochs']:.1f} passes over the {summary['tokens_per_layer']} recorded tokens")

# %%
fig, axes = plt.subplots(
    1, len(summary["layers"]), figsize=(4.2 * len(summary["layers"]), 3.2), squeeze=False
)
for ax, lay in zip(axes[0], summary["layers"], strict=True):
    for path in sorted(Path(lay["folder"], "runs").glob("*.npz")):
        with np.load(path) as r:
            ax.semilogy(np.maximum(r["maxvio_global"], 1e-4), label=path.stem)
    ax.set(title=lay["name"], xlabel="batch t", ylabel="MaxVio_global")
    ax.title.set_fontsize(8)
axes[0][0].legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Diagnose a training log
#
# A real run would log, per optimizer step and layer, the tokens per expert and the bias
# (`LoadLogger` reads torchtitan's / Megatron-core's buffers; any CSV/JSONL/npz in the layout of
# `lfbtheory.analysis.diagnose` works). Here the "run" is the sign rule replayed on the
# recorded scores; we write it as a CSV in the long layout `step,layer,expert,load,bias` and
# diagnose it together with the trace (gap of the final bias to the exact optima).

# %%
log_path = OUT / "train_log.csv"
with open(log_path, "w") as f:
    f.write("step,layer,expert,load,bias\n")
    for j, name in enumerate(trace.layer_names):
        wl = TraceWorkload(str(trace_path), n=N, layer=j)
        tr = simulate(list(wl.batches(STEPS, 0)), trace.k, updates.sign(1e-3))
        for t in range(STEPS):
            for i in range(trace.n_experts):
                f.write(f"{t},{name},{i},{tr.loads[t, i]:.0f},{float(tr.bias[t, i])!r}\n")
log = read_load_log(log_path)
diags = diagnose(log, trace=trace, n=N)
print(write_report(log, diags, OUT / "diagnose", config={"log": str(log_path)}))
display(Image(str(sorted((OUT / "diagnose").glob("*.png"))[0])))

# %% [markdown]
# ## What unhealthy looks like
#
# `synthetic_log` plants three pathologies in a four-layer log (multinomial loads, sign-rule
# bias): a common-mode drift, a limit cycle of the bias, and a dead expert. `lfb diagnose`
# names each one; the exit status is 1 when anything is found.

# %%
bad = synthetic_log(steps=300 if SMALL else 1000, seed=0)
bad_diags = diagnose(bad)
print(write_report(bad, bad_diags, OUT / "diagnose_planted"))
print(json.dumps({d.name: sorted({f.kind for f in d.findings}) for d in bad_diags}))
display(Image(str(OUT / "diagnose_planted" / "layer02_cycle.png")))

# %%
_scratch.cleanup()  # the scratch folder and every result written into it
