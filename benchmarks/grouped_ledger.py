"""The group-limited ledger of the published sign rule against its bracket on a small
DeepSeek-like instance (E=32, 8 groups, top-4, k=4), with the device table (8 devices).

    python benchmarks/grouped_ledger.py
"""

import json
import time

import lfbtheory as lfb
from lfbtheory.analysis import grouped
from lfbtheory.analysis.devices import device_table
from lfbtheory.workloads import make_workload, materialize

E, NG, M, K, N, T = 32, 8, 4, 4, 64, 10
batches = materialize(make_workload("stationary", n=N, n_experts=E, popularity_scale=2.0), T, 0)
out = {}
for name, rule in [("sign u=1e-3 (published)", lfb.updates.sign(1e-3)),
                   ("sign u=1e-2", lfb.updates.sign(1e-2))]:  # fmt: skip
    tr = lfb.simulate(batches, K, rule, n_groups=NG, topk_groups=M)
    c0 = time.process_time()
    row = grouped.group_ledger(tr, batches, K).summary()
    row["cpu_s"] = time.process_time() - c0
    row["devices"] = device_table(tr.loads, K, n_devices=8).summary(burn_in=T // 10)
    out[name] = row
print(json.dumps(out, indent=1))
