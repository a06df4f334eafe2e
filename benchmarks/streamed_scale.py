"""Streamed regret points at the DeepSeek-V3 size: peak memory against T, time by part, and a
Dask LocalCluster against one process on the pooled comparator's passes.

    python benchmarks/streamed_scale.py [--steps 500,5000] [--n 4096] [--dask]

Each point runs in a fresh child process (numba compiled first on a 4-batch point, not timed);
peak memory is the child's ru_maxrss after that warm-up is subtracted from nothing (it is the
whole child's peak: the warm-up is tiny). Times: wall and CPU of the child, by part
(stream generation, per-batch optima, pooled comparator passes, runs). The stream is the
random-access seeded stationary workload (lfbtheory.experiments.streamed.SeededSource).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import numpy as np
import lfbtheory as lfb
from lfbtheory.experiments import streamed as S
from lfbtheory.workloads import make_workload

t, n, e, k, chunk, per_batch = (int(x) for x in sys.argv[1:7])
w = make_workload("stationary", n=n, n_experts=e)
rules = [lfb.updates.sign(1e-3), lfb.updates.sign(1e-2)]
S.streamed_point(S.SeededSource(w, 4, 1, 2), k, rules, n_devices=8)  # compile, untimed
w0, c0 = time.perf_counter(), time.process_time()
pt = S.streamed_point(S.SeededSource(w, t, 0, chunk), k, rules,
                      labels=["sign u=1e-3 (published)", "sign u=1e-2"], n_devices=8,
                      per_batch=bool(per_batch))
out = {"T": t, "n": n, "E": e, "k": k, "chunk": chunk,
       "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
       "timings": pt.timings, "comparator_rel_gap": pt.comparator.rel_gap,
       "comparator_passes": pt.comparator.passes, "undecided_tokens": pt.comparator.undecided,
       "summary": pt.summary}
print(json.dumps(out))
"""

DASK_CHILD = r"""
import json, sys, time
import numpy as np
from lfbtheory.experiments import streamed as S
from lfbtheory.workloads import make_workload

t, n, e, k, chunk = (int(x) for x in sys.argv[1:6])
src = S.SeededSource(make_workload("stationary", n=n, n_experts=e), t, 0, chunk)
p = np.linspace(-0.05, 0.05, e)
S.map_chunks(S.chunk_dual, S.SeededSource(src.workload, 2, 0, 1), (k, p))  # warm-up
w0, c0 = time.perf_counter(), time.process_time()
local = S.pooled_value(src, k, p)
single = (time.perf_counter() - w0, time.process_time() - c0)
import distributed
from lfbtheory.experiments.executors import DaskExecutor
with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, distributed.Client(cluster) as c:
    ex = DaskExecutor(client=c)
    S.pooled_value(S.SeededSource(src.workload, 2, 0, 1), k, p, ex)  # warm-up on the workers
    w0 = time.perf_counter()
    remote = S.pooled_value(src, k, p, ex)
    dask_wall = time.perf_counter() - w0
print(json.dumps({"T": t, "n": n, "E": e, "single_wall": single[0], "single_cpu": single[1],
                  "dask_wall": dask_wall, "speedup": single[0] / dask_wall,
                  "identical": local == remote, "value": local}))
"""


def _child(code: str, args: list[str], timeout: float) -> dict:
    try:
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                             text=True, timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_target(
    steps: tuple[int, ...] = (500, 5000),
    n: int = 4096,
    e: int = 256,
    k: int = 8,
    chunk: int = 10,
    dask: bool = True,
    timeout: float = 7200.0,
    log=print,  # type: ignore[no-untyped-def]
) -> dict:
    rows = []
    for t in steps:
        log(f"streamed point T={t} n={n} E={e} k={k} ...")
        w0 = time.perf_counter()
        rows.append(_child(CHILD, [str(t), str(n), str(e), str(k), str(chunk), "1"], timeout))
        log(f"  done in {time.perf_counter() - w0:.0f} s: {rows[-1].get('peak_rss_MiB')} MiB")
    table = {"name": "streamed regret points (DeepSeek-V3 size)", "rows": rows}
    if dask:
        log("Dask LocalCluster (2 workers) vs one process on a comparator pass ...")
        table["dask"] = _child(DASK_CHILD, [str(steps[0]), str(n), str(e), str(k), str(chunk)],
                               timeout)  # fmt: skip
    return table


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="500,5000")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--dask", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    res = run_target(tuple(int(x) for x in a.steps.split(",")), n=a.n, chunk=a.chunk,
                     dask=a.dask)  # fmt: skip
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)
