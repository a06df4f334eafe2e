"""`lfb sweep`: hashed seeds, the per-point cache, executors that cannot change a result."""

import errno
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
    # `step` holds numbers only (empty where none is given); how the step is set is its own
    # column, and "published" is never filed under "calibrated"
    assert df["step"].dtype.kind == "f"
    assert set(published["step_setting"]) == {"published"} and published["step"].isna().all()
    assert set(fixed["step_setting"]) == {"given"}
    cal = pd.read_csv(
        run_sweep(
            _spec(schedules=["constant"], step_sizes=["calibrated"]),
            executor=SerialExecutor(),
            out=tmp_path / "cal",
            progress=False,
            plots=False,
            log=lambda _: None,
        ).table
    )
    assert set(cal["step_setting"]) == {"calibrated"} and cal["step"].isna().all()
    assert (cal["u0"] > 0).all()
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


def _toml(doc):
    return "\n".join(
        f"[{table}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in doc[table].items())
        for table in ("sweep", "grid")
    )


def _alive(pid, start):
    """Whether process ``pid`` (started at clock tick ``start``) still runs (not a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in "ZX" and fields[19] == start


def _survivors(workers, seconds=10.0):
    """The workers still alive after at most ``seconds``: each is waited for on a pidfd
    (readable exactly when the process ends; no polling), not racing a sweep: the sweep's
    process has already exited."""
    import select

    deadline = time.monotonic() + seconds
    alive = []
    for pid, start in workers:
        if not _alive(pid, start):
            continue
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if _alive(pid, start):  # the pid was not reused between the check and the open
                select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
        if _alive(pid, start):
            alive.append((pid, start))
    return alive


# The parent's fault: after its 2nd stored point it records its worker processes (pid and
# start time) and sends itself a signal. Deterministic: the signal comes at that point.
PARENT = """
import functools, json, multiprocessing, os, signal, sys
from pathlib import Path
import lfbtheory.experiments.sweep as sw

def hook(m):
    if m == 2:
        workers = []
        for p in multiprocessing.active_children():
            stat = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            workers.append([p.pid, stat[19]])
        Path(sys.argv[1]).write_text(json.dumps(workers))
        os.kill(os.getpid(), getattr(signal, sys.argv[2]))

sys.path.insert(0, sys.argv[5])
import slow_task
sw.point_task = slow_task.point_task
sw.run_sweep = functools.partial(sw.run_sweep, on_stored=hook)
from lfbtheory.cli import main
sys.exit(main(["sweep", sys.argv[3], "--workers", "2", "--out", sys.argv[4], "--no-plots",
               "--no-progress"]))
"""


# Points after the first two stand for long ones (a point can take hours): the task blocks
# until its process is ended (an Event nobody sets: no sleep, no timing), then would leave a
# mark. Killed workers never leave it; workers left to finish their task would hang the test.
SLOW = """
import os, threading
from pathlib import Path
from lfbtheory.experiments import sweep

HERE = Path(__file__).parent

def point_task(config_json, context):
    i = 0
    while True:  # this call's index, claimed atomically across workers
        try:
            os.close(os.open(HERE / f"call-{i}", os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            i += 1
    result = sweep.point_task(config_json, context)
    if i >= 2:
        threading.Event().wait()
        (HERE / f"finished-late-{i}").touch()
    return result
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_killing_the_sweep_ends_its_workers_and_keeps_its_points(tmp_path, sig):
    cfg, out, record = tmp_path / "s.toml", tmp_path / "out", tmp_path / "workers.json"
    cfg.write_text(_toml(TINY))
    (tmp_path / "slow_task.py").write_text(SLOW)
    log = tmp_path / "stderr.txt"
    with open(log, "w") as err:  # a file, not a pipe: a surviving worker cannot hold it open
        proc = subprocess.run(
            [sys.executable, "-c", PARENT, str(record), sig, str(cfg), str(out), str(tmp_path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=300,
        )
    proc.stderr = log.read_text()
    workers = [tuple(w) for w in json.loads(record.read_text())]
    assert len(workers) == 2  # the pool's two workers were running at the signal
    if sig == "SIGTERM":  # killed and reaped by the sweep itself before it exits
        assert _survivors(workers, seconds=0) == []
    assert _survivors(workers) == []
    assert not list(tmp_path.glob("finished-late-*"))  # in-flight tasks were stopped
    stored = list((out / "points").glob("*[0-9a-f].json"))
    assert len(stored) == 2
    for p in stored:
        assert json.loads(p.read_text())["rows"]
    assert not list(out.rglob(".*.tmp-*"))
    if sig == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:  # a clean stop: workers killed, lock removed, one line on how to resume
        assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("lfb sweep: stopped by SIGTERM;") and str(out) in last
        assert not (tmp_path / ".out.lock").exists()
    res = run_sweep(
        load_sweep(cfg),
        executor=SerialExecutor(),
        out=out,
        progress=False,
        plots=False,
        log=lambda _: None,
    )  # the lock of a SIGKILLed sweep is an flock: it died with its process
    assert res.cached == len(stored) and res.computed == res.points - len(stored)


# A worker's fault: the third point task kills its own process (a worker dying mid-task,
# e.g. by the OOM killer). With one worker the first two points are finished and sent back
# before it dies, so exactly two are stored. A file of its own: tasks are pickled by
# reference, and a spawned worker imports this module from the path the test adds.
FAULTY = """
import os, signal
from pathlib import Path
from lfbtheory.experiments import sweep

CALLS = Path(__file__).with_name("calls")

def point_task(config_json, context):
    CALLS.mkdir(exist_ok=True)
    n = len(list(CALLS.iterdir()))
    (CALLS / str(n)).touch()
    if n == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return sweep.point_task(config_json, context)
"""


def test_a_killed_worker_loses_no_finished_point_and_a_rerun_completes(tmp_path, monkeypatch):
    import lfbtheory.experiments.sweep as sw
    from lfbtheory.experiments.executors import LocalExecutor

    (tmp_path / "faulty_task.py").write_text(FAULTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    import faulty_task

    monkeypatch.setattr(sw, "point_task", faulty_task.point_task)
    spec, out = _spec(), tmp_path / "out"
    pool = LocalExecutor(1)
    try:
        with pytest.raises(sw.SweepError, match="2 of 6 points are stored"):
            run_sweep(spec, executor=pool, out=out, progress=False, plots=False, log=lambda _: 0)
    finally:
        pool.close(cancel=True)
    finished = {p.name: p.read_bytes() for p in (out / "points").glob("*[0-9a-f].json")}
    assert len(finished) == 2
    monkeypatch.undo()
    res = run_sweep(
        spec, executor=SerialExecutor(), out=out, progress=False, plots=False, log=lambda _: 0
    )
    assert (res.cached, res.computed) == (2, 4)
    for name, body in finished.items():
        assert (out / "points" / name).read_bytes() == body  # untouched


def _no_space(monkeypatch, when):
    """os.write fails as on a full disk whenever ``when(path)`` is true for the file."""
    real = os.write

    def write(fd, data):
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        if when(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
def test_a_full_disk_loses_no_file_and_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    spec, out = _spec(), tmp_path / "out"

    def sweep(**kw):
        return run_sweep(
            spec,
            executor=SerialExecutor(),
            out=out,
            progress=False,
            plots=False,
            log=lambda _: None,
            **kw,
        )

    full = [False]
    with monkeypatch.context() as m:
        _no_space(m, lambda path: full[0])
        with pytest.raises(OSError) as err:
            sweep(on_stored=lambda k: full.__setitem__(0, k == 3))  # the disk fills up
    assert err.value.errno == errno.ENOSPC
    stored = sorted((out / "points").glob("*[0-9a-f].json"))
    assert len(stored) == 3 and all(json.loads(p.read_text())["rows"] for p in stored)
    assert not list(tmp_path.rglob(".*.tmp-*")) and not (tmp_path / ".out.lock").exists()
    first = sweep()
    assert (first.cached, first.computed) == (3, 3)
    table, meta = first.table.read_bytes(), (out / "sweep.json").read_bytes()
    stored[0].unlink()
    with monkeypatch.context() as m:  # the table cannot be rewritten: the old one stays
        _no_space(m, lambda path: ".results.csv.tmp-" in path)
        with pytest.raises(OSError):
            sweep()
    assert first.table.read_bytes() == table and (out / "sweep.json").read_bytes() == meta
    assert not list(tmp_path.rglob(".*.tmp-*"))
    with monkeypatch.context() as m:  # lfb sweep says it in one line
        _no_space(m, lambda path: ".tmp-" in path)
        cfg = tmp_path / "s.toml"
        cfg.write_text(_toml(TINY))
        assert main(["sweep", str(cfg), "--workers", "1", "--out", str(out), "--no-progress"]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert first.table.read_bytes() == table


def test_an_edited_or_damaged_cache_file_is_recomputed_not_used(tmp_path):
    spec, lines = _spec(), []

    def sweep():
        return run_sweep(
            spec,
            executor=SerialExecutor(),
            out=tmp_path,
            progress=False,
            plots=False,
            log=lines.append,
        )

    table = sweep().table.read_bytes()
    victim = sorted((tmp_path / "points").glob("*[0-9a-f].json"))[0]
    rec = json.loads(victim.read_text())
    rec["rows"][0]["dual_regret"] = -1.0  # a "better" result under the same key
    victim.write_text(json.dumps(rec))
    lines.clear()
    res = sweep()
    assert (res.computed, res.streams_computed) == (1, 0)
    assert any("cannot be used" in line and "digest" in line for line in lines)
    assert res.table.read_bytes() == table
    skey = {p.key: p.stream for p in expand(spec)}[rec["key"]]
    stream = tmp_path / "streams" / f"{skey}.npz"
    stream.write_bytes(stream.read_bytes()[:200])  # truncated
    victim.unlink()
    lines.clear()
    res = sweep()
    assert (res.computed, res.streams_computed) == (1, 1)
    assert any("not a readable .npz" in line for line in lines)
    assert res.table.read_bytes() == table


def test_a_sweep_without_growth_classes_still_plots(tmp_path):
    pytest.importorskip("pandas", reason="the plots read the table with pandas")
    doc = json.loads(json.dumps(TINY))
    doc["sweep"].update(horizon=400, seeds=[0])
    doc["grid"].update(rules=["sign"], schedules=["constant", "inverse_sqrt"], step_sizes=[1e-2])
    res = run_sweep(
        parse_sweep(doc),
        executor=SerialExecutor(),
        out=tmp_path,
        progress=False,
        log=lambda _: None,
    )
    # 8 checkpoints leave 3 after the burn-in T/10: too few to classify a growth, so the
    # table has no growth column, and the growth map says "undetermined"
    assert "dual_regret_growth" not in res.table.read_text().splitlines()[0].split(",")
    assert sorted(p.name for p in res.plots) == [
        "growth_map.png",
        "pareto.png",
        "regret_vs_step.png",
    ]


def test_an_impossible_size_is_refused_before_anything_runs(tmp_path, monkeypatch):
    import dataclasses

    import lfbtheory.experiments.sweep as sw

    doc = json.loads(json.dumps(TINY))
    doc["sweep"]["horizon"] = 10**12
    with pytest.raises(ValueError, match="one task needs at least .* PiB of memory"):
        parse_sweep(doc)
    huge = parse_sweep(doc, allow_large=True)  # the explicit override
    assert huge.allow_large and sw.estimate(huge).task_bytes > sw._memory()
    with pytest.raises(ValueError, match="--allow-large"):
        run_sweep(dataclasses.replace(huge, allow_large=False), out=tmp_path / "x")
    assert not (tmp_path / "x").exists()
    monkeypatch.setattr(sw, "_memory", lambda: 2**80)  # a machine that holds it: 296 days
    with pytest.raises(
        ValueError, match=r"one task would take about 296 days on one core .* more than 24 hours"
    ):
        parse_sweep(doc)
    doc["sweep"]["horizon"] = 30
    doc["sweep"]["seeds"] = list(range(50_000))
    with pytest.raises(ValueError, match="the grid has 150000 points"):
        parse_sweep(doc)


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
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nhorizon = 1e12\n[grid]\n"),
            "sweep.horizon must be an integer >= 10",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nhorizon = 1000000000000\n[grid]\n"),
            "of memory",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nsolver = 3\n[grid]\n"),
            "sweep.solver must be one of auto",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nsolver = 'simplex'\n[grid]\n"),
            "sweep.solver must be one of auto",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nburn_in = '10'\n[grid]\n"),
            "sweep.burn_in must be an integer >= 0",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nburn_in = 2000\n[grid]\n"),
            "sweep.burn_in must be in [0, horizon=2000)",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nnum_checkpoints = 2.5\n[grid]\n"),
            "sweep.num_checkpoints must be an integer >= 1",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nworkers = 0\n[grid]\n"),
            "sweep.workers must be an integer >= 1",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nname = '../../etc'\n[grid]\n"),
            "sweep.name must be 1-64 letters",
        ),
        (
            lambda d: (d / "s.toml").write_text("[sweep]\nallow_large = 'yes'\n[grid]\n"),
            "sweep.allow_large must be true or false",
        ),
        (
            lambda d: (d / "s.toml").write_text("[grid]\nstep_sizes = [nan]\n"),
            "nan is not allowed",
        ),
        (lambda d: (d / "s.toml").write_text("[grid]\nn = [0]\n"), "grid.n entries must be"),
    ],
)
def test_cli_user_mistakes_exit_2_with_a_clear_message(tmp_path, capsys, setup, match):
    setup(tmp_path)
    assert main(["sweep", str(tmp_path / "s.toml"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lfb sweep: error:") and match in err
    assert len(err.strip().splitlines()) == 1


def test_dask_reruns_the_tasks_of_a_killed_worker_and_keeps_finished_points(tmp_path):
    distributed = pytest.importorskip("distributed", reason="the Dask executor needs distributed")
    from lfbtheory.experiments.executors import DaskExecutor

    spec = _spec(step_sizes=[1e-3, 3e-3, 1e-2, 3e-2])
    out = tmp_path / "dask"
    total = len(expand(spec))
    finished = {}
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        victim = next(iter(client.run(os.getpid).values()))

        def kill_a_worker(m):  # deterministic: right after the 2nd point is stored
            if m == 2:
                finished.update(
                    {p.name: p.read_bytes() for p in (out / "points").glob("*[0-9a-f].json")}
                )
                os.kill(victim, signal.SIGKILL)

        res = run_sweep(
            spec,
            executor=DaskExecutor(client=client),
            out=out,
            progress=False,
            plots=False,
            log=lambda _: None,
            on_stored=kill_a_worker,
        )
    assert len(finished) == 2
    assert res.computed == total
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


def test_an_edit_to_any_package_module_recomputes_the_points_and_no_edit_reuses_them(
    tmp_path, monkeypatch
):
    """Cache keys carry the code identity (version + hash of every package file): a copy of
    the package with one module edited must recompute every point; the unedited copy reuses
    them."""
    import shutil

    import lfbtheory
    from lfbtheory import identity

    copy = tmp_path / "pkg" / "lfbtheory"
    shutil.copytree(
        Path(lfbtheory.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    real = identity.source_hash
    monkeypatch.setattr(identity, "source_hash", lambda root=None: real(copy))
    spec, out = _spec(schedules=["published"]), tmp_path / "out"

    def sweep():
        return run_sweep(
            spec, executor=SerialExecutor(), out=out, progress=False, plots=False, log=lambda _: 0
        )

    first = sweep()
    assert (first.computed, first.cached) == (first.points, 0) and first.points >= 1
    again = sweep()
    assert (again.computed, again.cached) == (0, first.points)
    module = copy / "experiments" / "config.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    edited = sweep()
    assert (edited.computed, edited.cached) == (first.points, 0)


def test_the_growth_map_files_the_published_rule_apart_from_calibrated_steps():
    from lfbtheory.experiments.sweep import _step_column_order, step_column

    cols = [
        step_column("published", 1e-3),
        step_column("calibrated", 0.0123),
        step_column("given", 0.1),
        step_column("given", 0.01),
    ]
    assert cols == ["published (1e-3)", "calibrated", "0.1", "0.01"]
    assert sorted(cols, key=_step_column_order) == [
        "0.01",
        "0.1",
        "calibrated",
        "published (1e-3)",
    ]
    with pytest.raises(ValueError, match="step_setting"):
        step_column("tuned", 0.1)
