"""One-off: read a testbed result folder written before the paired statistics (the long run:
training code as at commit 56eda23) and recompute tables, verdicts and curves with the
current code. Usage: python post_long.py RESULT_FOLDER OUT (PYTHONPATH = the repository)."""

import json
import sys
from pathlib import Path

import numpy as np

from lfbtheory.fileio import write_json
from lfbtheory.testbed.report import RUN_ARRAYS, _write_csv, verdict_markdown, write_maxvio_curves
from lfbtheory.testbed.run import _nan_for_null, summarize, verdicts

src, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
cfg = json.loads((src / "config.json").read_text())
scal = _nan_for_null(json.loads((src / "runs.json").read_text()))
meta = json.loads((src / "results.json").read_text())["meta"]
arr = np.load(src / "runs.npz", allow_pickle=False)
runs = []
for r in scal:
    key = f"{r['label']}__seed{r['seed']}"
    run = dict(r)
    run["family"] = {"aux": f"aux_{r['method']['scope']}"}.get(
        r["method"]["kind"], r["method"]["kind"]
    )
    for n in RUN_ARRAYS:
        if f"{key}__{n}" in arr.files:
            run[n] = arr[f"{key}__{n}"]
    runs.append(run)
res = {"config": cfg, "corpus": meta["corpus"], "runs": runs}
table = summarize(res)
ver = verdicts(res)
write_json(out / "results.json", {"meta": meta, "table": table})
_write_csv(out / "results.csv", table)
write_json(out / "verdicts.json", ver)
(out / "verdicts.md").write_text(verdict_markdown(ver) + "\n")
write_maxvio_curves(res, out)
write_json(out / "config.json", cfg)
for f in ("regret.json", "summary.txt"):
    if (src / f).exists():
        (out / f).write_text((src / f).read_text())
print(json.dumps(table, indent=1)[:3000])
print(verdict_markdown(ver))
