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
# # 04 · Check your own router
#
# You wrote a DeepSeek-V3-style gate in torch (sigmoid affinities, an additive correction
# bias that enters only the choice, group-limited top-$K$, an in-place sign update of the
# bias; DeepSeek-V3, arXiv 2412.19437 Sec. 2.1.2; Loss-Free Balancing, arXiv 2408.15664).
# This notebook puts it through the conformance suite with a one-line wrap, finds a subtle
# bug, shrinks it to a minimal counterexample with Hypothesis, fixes it and checks again.
#
# The suite's instances are exact: scores on the grid $\{1..256\}/256$, biases in
# $\mathbb{Z}/256$, so every sum is exact in float32 and the suite knows where exact ties
# are; a token tied at the $K$-th place or at the group boundary accepts any tie-break
# (`torch.topk` promises no order among equal values). The gate computes its own sigmoid:
# the adapter feeds hidden states $h = [\mathrm{logit}(s), 0]$ and sets the projection to the
# identity, so the gate sees the suite's scores up to float32 round-off ($\sim 10^{-7}$, far
# below the grid spacing $2^{-8}$).

# %%
import os
import time

import numpy as np
import torch
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st

from lfbtheory.adapters.torch import from_torch
from lfbtheory.online import updates
from lfbtheory.testing.conformance import Config, run_conformance, tie_bounds

SMALL = os.environ.get("LFB_NOTEBOOK_SMALL") == "1"
torch.set_num_threads(1)
# Full size: the DeepSeek-V3 shape (E = 256, top-8, 8 groups, 4 kept); small: E = 8.
E, K, GROUPS, KEPT = (8, 2, 4, 2) if SMALL else (256, 8, 8, 4)
CFG = Config(causality_examples=10 if SMALL else 100, drift_steps=20 if SMALL else 200)
print(f"size: {'small' if SMALL else 'full'}; E={E}, k={K}, {GROUPS} groups, {KEPT} kept")


# %% [markdown]
# ## Your gate
#
# Looks right: weights from the unbiased scores, bias only in the choice, groups scored by
# the sum of their two best biased scores. The bug is one line: the unselected groups are
# *multiplied* by the mask (0.0) instead of being filled with $-\infty$.


# %%
class MyGate(torch.nn.Module):
    def __init__(self, dim, n_experts, k, n_groups, topk_groups, fill=None):
        super().__init__()
        self.n_experts, self.k = n_experts, k
        self.n_groups, self.topk_groups = n_groups, topk_groups
        self.fill = fill  # None: multiply by the mask (the bug); float: masked_fill value
        self.weight = torch.nn.Parameter(torch.randn(n_experts, dim) / dim**0.5)
        self.register_buffer("e_score_correction_bias", torch.zeros(n_experts))

    def forward(self, x):
        scores = torch.sigmoid(x @ self.weight.T)
        biased = scores + self.e_score_correction_bias
        grouped = biased.view(x.shape[0], self.n_groups, -1)
        keep = grouped.topk(2, dim=-1).values.sum(-1).topk(self.topk_groups, dim=-1).indices
        mask = torch.zeros(x.shape[0], self.n_groups).scatter_(1, keep, 1.0)
        if self.fill is None:
            biased = (grouped * mask.unsqueeze(-1)).flatten(1)  # masked groups become 0.0
        else:
            biased = grouped.masked_fill(mask.unsqueeze(-1) == 0, self.fill).flatten(1)
        idx = biased.topk(self.k, dim=-1).indices
        w = scores.gather(1, idx)
        return w / w.sum(-1, keepdim=True), idx

    @torch.no_grad()
    def update_bias(self, tokens_per_expert):
        self.e_score_correction_bias += 1e-3 * torch.sign(
            tokens_per_expert.mean() - tokens_per_expert
        )


# %% [markdown]
# ## The one-line wrap, and the report
#
# `from_torch` finds the bias buffer by name, reads (weights, indices) from the output by
# dtype and shape, and with `update=` and `rule=` plays the trainer (counts, one update per
# optimizer step, replicas summed), so all 20 properties apply. Under each property the
# report says whose code it ran (`exercised:`): your forward, your update, or the adapter's.


# %%
def wrap(gate):
    return from_torch(gate, inputs="hidden", update="update_bias", rule=updates.sign(1e-3))


t0 = time.perf_counter()
buggy = wrap(MyGate(E + 8, E, K, GROUPS, KEPT))
report = run_conformance(buggy, config=CFG)
print(report)
print(f"{time.perf_counter() - t0:.1f} s")
assert "selected_in_selected_groups" in report.failed and not report.ok

# %% [markdown]
# ## Shrink it to a minimal counterexample
#
# The property is: the selection lies within the tie-aware oracle (`tie_bounds`: every
# expert in `must` chosen, nothing outside `may`). Hypothesis searches one token of scores
# on a coarse grid and a bias, then shrinks to the simplest failing pair. We search at
# E = 8 (4 groups of 2, 2 kept, top-2): the bug does not depend on the size.

# %%
small = wrap(MyGate(16, 8, 2, 4, 2))


def violates(example):
    s_levels, b_levels = example
    s = np.array([s_levels], dtype=np.float64) / 8  # scores in {1..8}/8
    b = np.array(b_levels, dtype=np.float64) / 8  # biases in {-16..16}/8
    must, may, _, _ = tie_bounds(s + b, 2, (4, 2, 2))
    got = np.zeros(8, dtype=bool)
    got[small.select(s, b)[0][0]] = True
    return bool(np.any(must[0] & ~got) or np.any(got & ~may[0]))


cells = st.lists(st.integers(1, 8), min_size=8, max_size=8)
biases = st.lists(st.integers(-16, 16), min_size=8, max_size=8)
cfg = settings(derandomize=True, database=None, suppress_health_check=list(HealthCheck))
s_min, b_min = find(st.tuples(cells, biases), violates, settings=cfg)
s, b = np.array([s_min]) / 8, np.array(b_min) / 8
print("scores:", s[0].tolist(), "\nbias:  ", b.tolist())
print("biased:", (s + b)[0].tolist())
must, may, gmust, gmay = tie_bounds(s + b, 2, (4, 2, 2))
print("eligible (top-2 groups):", np.flatnonzero(gmay[0]).tolist())
print("correct top-2: all of", np.flatnonzero(must[0]).tolist())
print("               only from", np.flatnonzero(may[0]).tolist())
print("the gate picks:", sorted(small.select(s, b)[0][0].tolist()))

# %% [markdown]
# The minimal counterexample: once the biased scores of the eligible groups are negative or
# zero (a negative bias is normal: selection depends on the bias only up to a constant, and
# biases of released models drift by tens), the zeros written into the masked groups rank
# with or above them, and an expert of a group that lost the group vote is selected. With
# $-\infty$ in the masked groups that cannot happen.
#
# ## The fix, and the check again

# %%
t0 = time.perf_counter()
fixed = wrap(MyGate(E + 8, E, K, GROUPS, KEPT, fill=float("-inf")))
report = run_conformance(fixed, config=CFG)
print(report)
print(f"{time.perf_counter() - t0:.1f} s")
assert report.strict_ok and not report.skipped
small = wrap(MyGate(16, 8, 2, 4, 2, fill=float("-inf")))  # `violates` now checks the fix
print("fixed gate picks:", sorted(small.select(s, b)[0][0].tolist()))
assert not violates((s_min, b_min))

# %% [markdown]
# ## Does the bias steer at all?
#
# A second slip, as common and worse: the bias is computed and updated, but the selection
# subtracts it. Every bias-invariance property still passes (a constant shift of $-b$ is still
# a constant shift); the steering properties measure the factor $a$ in top-$K$ of $s + a\,b$
# and run the gate's own forward/update loop on a skewed stream.


# %%
class MinusGate(MyGate):
    def forward(self, x):
        self.e_score_correction_bias.neg_()  # the slip: the choice sees -b
        try:
            return super().forward(x)
        finally:
            self.e_score_correction_bias.neg_()


minus = wrap(MinusGate(E + 8, E, K, GROUPS, KEPT, fill=float("-inf")))
steer = run_conformance(
    minus, only=["bias_shift_invariance", "steering_factor", "closed_loop_balance"], config=CFG
)
print(steer)
assert steer.failed == ("steering_factor", "closed_loop_balance")

# %% [markdown]
# In your CI: `lfb check mymodule:make --strict --json` (exit 1 names the failing property,
# or the bias properties that could not run), or the `lfb_conformance` pytest fixture
# (strict by default). See docs/conformance.md.
