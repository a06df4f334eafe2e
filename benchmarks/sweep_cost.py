"""The sweep's cost model, measured: seconds per score entry (T x n x E) of a stream task and
of one rule in a point task, and the peak memory of a stream task against its estimate.

    python benchmarks/sweep_cost.py [--quick]

Each size runs in a fresh child process (numba compiled first, on a 20-batch point, and not
timed); peak memory is the child's VmHWM after resetting it. The constants
``STREAM_SECONDS_PER_ENTRY`` and ``RULE_SECONDS_PER_ENTRY`` of
:mod:`lfbtheory.experiments.sweep` are these measurements to one significant digit, and its
memory estimate must stay below the measured peak (it is a lower bound).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
from pathlib import Path
from lfbtheory.experiments.regret import RegretConfig, RunSpec, prepare_stream, run_point
from lfbtheory.experiments import sweep

t, n, e, rules = (int(x) for x in sys.argv[1:5])
runs = tuple(RunSpec(f"r{i}", "sign", "constant", 1e-3 * (i + 1)) for i in range(rules))
warm = RegretConfig(n=n, n_experts=e, k=2, steps=20, runs=runs, num_checkpoints=10)
run_point(warm)
Path("/proc/self/clear_refs").write_text("5")
cfg = RegretConfig(n=n, n_experts=e, k=2, steps=t, runs=runs, num_checkpoints=40)
t0 = time.perf_counter()
ctx = prepare_stream(cfg)
t1 = time.perf_counter()
run_point(cfg, ctx)
t2 = time.perf_counter()
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM")]
spec = sweep.SweepSpec(workloads=(("stationary", {}),), rules=tuple(map(str, range(rules))),
                       schedules=("constant",), n=(n,), n_experts=(e,), horizon=t)
est = sweep.estimate(spec)
print(json.dumps({"T": t, "n": n, "E": e, "rules": rules, "stream_s": t1 - t0,
                  "point_s": t2 - t1, "vmhwm_kib": int(hwm[0].split()[1]),
                  "estimate_bytes": est.task_bytes}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="two small sizes only")
    args = ap.parse_args()
    sizes = [(500, 256, 16), (2000, 256, 16)]
    if not args.quick:
        sizes += [(2000, 1024, 64), (8000, 256, 16)]
    rules = 2
    print(f"{'T':>6} {'n':>5} {'E':>4}  stream s/entry  rule s/entry   peak MiB  estimate MiB")
    for t, n, e in sizes:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(t), str(n), str(e), str(rules)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        entries = t * n * e
        print(
            f"{t:>6} {n:>5} {e:>4}  {r['stream_s'] / entries:14.3g}  "
            f"{r['point_s'] / entries / rules:12.3g}  {r['vmhwm_kib'] / 1024:9.0f}  "
            f"{r['estimate_bytes'] / 2**20:12.0f}"
        )


if __name__ == "__main__":
    main()
