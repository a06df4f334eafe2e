"""Save small workload streams as reference fixtures (tests/data/workloads_v01.npz).

Generated from the v0.1 single-module workloads code (commit 809e878, before the split into
lfbtheory/workloads/*.py) with ``PYTHONPATH=<export of that commit> python
tests/data/make_workloads_v01.py``; tests/test_workloads.py checks that today's code gives
bit-identical streams. Each case records its make_workload arguments in the ``cases`` entry.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from lfbtheory.workloads import Adversarial, make_workload, materialize

CASES = []


def add(key, name, n, e, steps, seed, **opts):
    CASES.append(dict(key=key, name=name, n=n, n_experts=e, steps=steps, seed=seed, options=opts))


for gate in ("sigmoid", "softmax"):
    add(f"stationary_{gate}", "stationary", 8, 6, 3, 7, gate=gate)
    add(f"zipf_{gate}", "zipf", 8, 6, 3, 7, gate=gate)
    add(f"clustered_{gate}", "clustered", 8, 6, 3, 7, gate=gate)
    add(f"adversarial_{gate}", "adversarial", 8, 6, 3, 7, gate=gate)
    for mode in ("random_walk", "mean_reverting", "rotation"):
        add(f"drifting_{mode}_{gate}", "drifting", 8, 6, 3, 7, gate=gate, mode=mode, drift=0.3)
add("drifting_default", "drifting", 8, 6, 3, 7)
add(
    "stationary_offset_seed",
    "stationary",
    5,
    4,
    2,
    3,
    offset_seed=11,
    popularity_scale=2.0,
    noise_scale=0.5,
)
add("zipf_exponent", "zipf", 5, 9, 2, 1, exponent=1.7)
add(
    "clustered_token_weights",
    "clustered",
    9,
    5,
    3,
    2,
    per="token",
    n_topics=3,
    topic_weights=[3, 1, 2],
    popularity_scale=0.5,
)
add("adversarial_targets", "adversarial", 6, 8, 3, 4, n_targets=3, strength=4.0)
add("olmoe_default", "olmoe", 4, 64, 2, 5)
add("olmoe_mistral", "olmoe", 6, 8, 2, 5, model="mistral", domain="arxiv", layer=15)
add(
    "olmoe_top1_softmax",
    "olmoe",
    4,
    64,
    2,
    5,
    kind="expert_counts_top1",
    domain="github",
    layer=7,
    gate="softmax",
)
# replay: FLAME trace, one layer (the new default) and all layers cycled (the old default)
add("replay_layer2", "replay", 16, 64, 3, 3, layers=[2])
add("replay_layer5_dirichlet", "replay", 16, 64, 2, 3, layers=[5], tail="dirichlet")
add("replay_uniform", "replay", 16, 64, 2, 0, layers=[9], tail="uniform")

arrays = {}
for c in CASES:
    w = make_workload(c["name"], n=c["n"], n_experts=c["n_experts"], **c["options"])
    arrays[c["key"]] = materialize(w, c["steps"], c["seed"])
# all 8 layers cycled (the v0.1 default): n=1000 does not divide 2048, so batch 2 straddles
# layers 2 and 3; kept: the sha256 of the whole (3, 1000, 64) stream and rows 2040..2059
big = materialize(
    make_workload("replay", n=1000, n_experts=64, layers=[2, 3, 4, 5, 6, 7, 8, 9]), 3, 3
)
arrays["replay_all_layers_rows2040"] = big.reshape(-1, 64)[2040:2060]
arrays["replay_all_layers_sha256"] = np.array(hashlib.sha256(big.tobytes()).hexdigest())
# the adversary answering a recorded bias trajectory
w = Adversarial(n=6, n_experts=8)
biases = np.random.default_rng(0).normal(size=(3, 8))
arrays["adversarial_biases_in"] = biases
arrays["adversarial_biases_out"] = np.stack(list(w.batches(3, 4, biases=biases)))
np.savez_compressed(
    Path(__file__).with_name("workloads_v01.npz"), cases=np.array(json.dumps(CASES)), **arrays
)
print({k: v.shape for k, v in arrays.items()})
