"""`lfb sweep`: hashed seeds, the per-point cache, executors that cannot change a result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lfbtheory.cli import main
from lfbtheory.experiments.executors import SerialExecutor
from lfbtheory.experiments.sweep import expand, load_sweep, parse_sweep, run_sweep, stream_seed

TINY = {
    "sweep": {
        "name": "tiny",
        "horizon": 30,
        "seeds": [0, 1],
        "num_checkpoints": 8,
        "calibration_batches": 4,
        "cycle_steps": 200,
    },
    "grid": {
        "workloads": ["stationary"],
        "n": [32],
        "n_experts": [4],
        "k": [2],
        "rules": ["sign", "proportional"],
        "schedules": ["constant", "published"],
        "step_sizes": [1e-3, 1e-2],
    },
}


def _spec(**grid):
    doc = json.loads(json.dumps(TINY))
    doc["grid"].update(grid)
    return parse_sweep(doc)


def test_seeds_hash_the_stream_parameters_not_the_order():
    pts = expand(_spec())
    # published takes no step: 2 seeds x (constant x 2 steps + published) = 6 points
    assert len(pts) == 6
    by_seed = {}
    for p in pts:
        by_seed.setdefault(p.params["seed"], set()).add(p.config.seed)
    assert all(len(s) == 1 for s in by_seed.values())  # one stream per seed label
    assert by_seed[0] != by_seed[1]
    assert stream_seed("stationary", {}, 32, 4, 0) == next(iter(by_seed[0]))
    reordered = expand(_spec(schedules=["published", "constant"], step_sizes=[1e-2, 1e-3]))
    assert {p.key: p.config for p in reordered} == {p.key: p.config for p in pts}


def test_a_changed_config_invalidates_exactly_the_points_it_affects():
    before = {p.key for p in expand(_spec())}
    after = {p.key for p in expand(_spec(step_sizes=[1e-3, 3e-2]))}
    removed, added = before - after, after - before
    assert len(removed) == len(added) == 2  # the 1e-2 points of both seeds
    assert len(before & after) == 4


def test_sweep_resumes_and_recomputes_only_what_is_missing(tmp_path):
    spec = _spec()

    def sweep():  # the same sweep into the same folder, serially
        return run_sweep(
            spec,
            executor=SerialExecutor(),
            out=tmp_path,
            progress=False,
            plots=False,
            log=lambda _: None,
        )

    first = sweep()
    assert (first.computed, first.cached, first.streams_computed) == (6, 0, 2)
    table = first.table.read_bytes()
    again = sweep()
    assert (again.computed, again.cached) == (0, 6)
    victim = sorted((tmp_path / "points").glob("*[0-9a-f].json"))[0]
    victim.unlink()
    third = sweep()
    assert (third.computed, third.cached, third.streams_computed) == (1, 5, 0)
    assert third.table.read_bytes() == table


def test_table_has_one_row_per_point_and_rule_and_loads_with_pandas(tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas reads the results table")
    res = run_sweep(
        _spec(), executor=SerialExecutor(), out=tmp_path, progress=False, log=lambda _: None
    )
    df = pd.read_csv(res.table)
    assert len(df) == 6 * 2
    assert set(df["rule"]) == {"sign", "proportional"}
    assert df.groupby(["point", "rule"]).size().max() == 1
    published = df[df["schedule"] == "published"]
    np.testing.assert_allclose(published["u0"], 1e-3)
    fixed = df[df["schedule"] == "constant"]
    np.testing.assert_allclose(fixed["u0"], fixed["step"].astype(float))
    for name in ("regret_vs_step.png", "growth_map.png", "pareto.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "seconds" not in df.columns and (tmp_path / "timings.json").exists()


def test_dask_local_cluster_gives_bit_identical_results(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the Dask executor needs distributed")
    from lfbtheory.experiments.executors import DaskExecutor, LocalExecutor

    spec = _spec(rules=["sign"], step_sizes=[1e-2])
    pool = LocalExecutor(2)  # the default executor: local worker processes
    try:
        local = run_sweep(
            spec,
            executor=pool,
            out=tmp_path / "local",
            progress=False,
            plots=False,
            log=lambda _: None,
        )
    finally:
        pool.close()
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        dask = run_sweep(
            spec,
            executor=DaskExecutor(client=client),
            out=tmp_path / "dask",
            progress=False,
            plots=False,
            log=lambda _: None,
        )
    assert dask.computed == local.computed == 4
    assert dask.table.read_bytes() == local.table.read_bytes()
    for p in (tmp_path / "local" / "points").glob("*[0-9a-f].json"):
        assert (tmp_path / "dask" / "points" / p.name).read_bytes() == p.read_bytes()


def _children(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_killed_worker_loses_no_finished_point_and_a_rerun_completes(tmp_path):
    doc = json.loads(json.dumps(TINY))
    # long enough points (~0.05 s each) that the kill lands mid-sweep, not after the last one
    doc["sweep"].update(horizon=1500, seeds=[0, 1, 2], workers=1)
    doc["grid"]["step_sizes"] = [1e-3, 3e-3, 1e-2, 3e-2]
    toml = "\n".join(
        f"[{table}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in doc[table].items())
        for table in ("sweep", "grid")
    )
    cfg = tmp_path / "s.toml"
    cfg.write_text(toml)
    out = tmp_path / "out"
    total = len(expand(load_sweep(cfg)))
    code = (
        "import sys; from lfbtheory.experiments.executors import LocalExecutor;"
        "from lfbtheory.experiments.sweep import load_sweep, run_sweep;"
        f"run_sweep(load_sweep({str(cfg)!r}), executor=LocalExecutor(1), out={str(out)!r},"
        " progress=False, plots=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    killed = False
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        done = list((out / "points").glob("*[0-9a-f].json")) if out.exists() else []
        if len(done) >= 2:
            # the pool's worker: a grandchild (the forkserver forks it)
            pids = [c for p in _children(proc.pid) for c in [p, *_children(p)]]
            workers = [p for p in pids if p not in _children(proc.pid)] or pids
            for w in workers:
                os.kill(w, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.05)
    proc.communicate(timeout=60)
    if not killed:
        pytest.skip(reason="the sweep finished before a worker could be killed")
    finished = {p.name: p.read_bytes() for p in (out / "points").glob("*[0-9a-f].json")}
    assert proc.returncode != 0 and 2 <= len(finished) < total
    for body in finished.values():
        assert json.loads(body)["rows"]  # every stored point is complete and readable
    res = run_sweep(
        load_sweep(cfg),
        executor=SerialExecutor(),
        out=out,
        progress=False,
        plots=False,
        log=lambda _: None,
    )
    assert res.cached == len(finished) and res.computed == total - len(finished)
    for name, body in finished.items():
        assert (out / "points" / name).read_bytes() == body  # untouched


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda d: None, "does not exist"),
        (lambda d: (d / "s.toml").mkdir(), "is a folder"),
        (lambda d: (d / "s.toml").write_text("[grid\n"), "not valid TOML"),
        (
            lambda d: (d / "s.toml").write_text("[grid]\nrules = ['sign']\nbogus = 1\n"),
            "unknown key",
        ),
        (
            lambda d: (d / "s.toml").write_text("[grid]\nschedules = ['hourly']\n"),
            "schedules entries must be one of",
        ),
        (
            lambda d: (d / "s.toml").write_text("[grid]\nworkloads = ['nope']\n"),
            "workload must be one of",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nhorizon = 5\n[grid]\n"),
            "sweep.horizon must be an integer >= 10",
        ),
    ],
)
def test_cli_user_mistakes_exit_2_with_a_clear_message(tmp_path, capsys, setup, match):
    setup(tmp_path)
    assert main(["sweep", str(tmp_path / "s.toml"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lfb sweep: error:") and match in err


def test_dask_reruns_the_tasks_of_a_killed_worker_and_keeps_finished_points(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the Dask executor needs distributed")
    import threading

    from lfbtheory.experiments.executors import DaskExecutor

    spec = _spec(step_sizes=[1e-3, 3e-3, 1e-2, 3e-2])
    out = tmp_path / "dask"
    total = len(expand(spec))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        box = {}

        def sweep():
            try:
                box["res"] = run_sweep(
                    spec,
                    executor=DaskExecutor(client=client),
                    out=out,
                    progress=False,
                    plots=False,
                    log=lambda _: None,
                )
            except Exception as exc:  # reported by the assertions below
                box["exc"] = exc

        thread = threading.Thread(target=sweep)
        thread.start()
        finished = {}
        deadline = time.time() + 90
        while time.time() < deadline and thread.is_alive():
            done = list((out / "points").glob("*[0-9a-f].json")) if out.exists() else []
            if len(done) >= 2:
                finished = {p.name: p.read_bytes() for p in done}
                os.kill(next(iter(pids.values())), signal.SIGKILL)
                break
            time.sleep(0.02)
        thread.join(timeout=120)
    if not finished or len(finished) == total:
        pytest.skip(reason="the sweep finished before a worker could be killed")
    assert "exc" not in box, box.get("exc")
    res = box["res"]
    assert res.computed + res.cached == total and res.computed == total
    for name, body in finished.items():
        assert (out / "points" / name).read_bytes() == body
    serial = run_sweep(
        spec,
        executor=SerialExecutor(),
        out=tmp_path / "serial",
        progress=False,
        plots=False,
        log=lambda _: None,
    )
    assert res.table.read_bytes() == serial.table.read_bytes()
