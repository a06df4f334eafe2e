"""Build the shipped full-score trace from the long run's runs.npz (lfb_sign_0.001 seed 0)."""

import json
import sys
from pathlib import Path

import numpy as np

from lfbtheory import __version__
from lfbtheory.fileio import write_json
from lfbtheory.testbed.balancing import make_rule
from lfbtheory.testbed.trace import training_trace, two_timescale
from lfbtheory.traces import read_trace, write_trace

src, dst, every = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
cfg = json.loads((src / "config.json").read_text())
arr = np.load(src / "runs.npz", allow_pickle=False)
key = "lfb_sign_0.001__seed0"
s, b = arr[f"{key}__recorded_scores"], arr[f"{key}__recorded_bias"]
print(s.shape, b.shape, s.dtype)
m = cfg["model"]
model = (
    f"lfbtheory.testbed MoELM d_model={m['d_model']} layers={m['n_layers']} E={m['n_experts']} "
    f"k={m['k']} gate={m['gate']} seq_len={m['seq_len']}; trained with lfb_sign_0.001, seed 0, "
    f"{cfg['train']['steps']} steps (preset {cfg['name']!r}), lfbtheory {__version__}"
)
tr = training_trace(s, b, k=m["k"], every=every, model=model, seed=0)
p = write_trace(tr, dst)
print(p, p.stat().st_size)
back = read_trace(p)
out = {}
# the bias rule the run used (sign, u = 1e-3 per optimizer step); one snapshot stands for
# `every` steps, so the replay uses u = every * 1e-3 per snapshot (the same travel per step
# of training) -- stated in docs
for u in (1e-3 * every, 1e-3):
    out[f"sign_u{u:g}"] = two_timescale(back, make_rule("sign", u))
write_json(Path(sys.argv[4]), {"trace": str(dst.name), "every": every, "views": out})
print(json.dumps(out, indent=1)[:4000])
