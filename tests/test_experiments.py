"""`lfb regret`: the results folder, reproducibility from config.json, growth classes."""

import json

import numpy as np
import pytest

from lfbtheory.cli import main
from lfbtheory.experiments.regret import RegretConfig, RunSpec, run_regret

SMALL = dict(n=64, n_experts=8, k=2, steps=60, num_checkpoints=12, calibration_batches=4)


def test_results_folder_holds_config_summary_trajectories_and_plots(tmp_path):
    results, out = run_regret(RegretConfig(**SMALL), tmp_path / "r", progress=False)
    for name in (
        "config.json",
        "summary.json",
        "regret.png",
        "maxvio.png",
        "bias.png",
        "comparators.npz",
        "timings.json",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert [s["label"] for s in summary] == [r.spec.label for r in results]
    for s in summary:
        assert {
            "dual_regret",
            "primal_regret",
            "violation_tokens",
            "maxvio_global_final",
            "dual_regret_growth",
        } <= set(s)
    run = np.load(out / "runs" / "sign_u_1e_3__published.npz")
    assert run["bias"].shape == (60, 8) and run["loads"].shape == (60, 8)


def test_rerunning_config_json_reproduces_every_number(tmp_path, capsys):
    config = RegretConfig(**SMALL, runs=(RunSpec("p", "proportional", "inverse_sqrt"),))
    _, out = run_regret(config, tmp_path / "a", progress=False)
    assert (
        main(
            [
                "regret",
                "--config",
                str(out / "config.json"),
                "--out",
                str(tmp_path / "b"),
                "--no-progress",
            ]
        )
        == 0
    )
    # timings live in timings.json, so identical runs give a bit-identical summary.json
    assert (tmp_path / "b" / "summary.json").read_bytes() == (out / "summary.json").read_bytes()
    assert "seconds" not in (out / "summary.json").read_text()
    assert "total" in json.loads((out / "timings.json").read_text())
    text = capsys.readouterr().out
    for column in ("dual regret", "dual dyn.", "batch viol.", "MaxVio_g"):
        assert text.count(column) >= 2, column  # in the header and defined in the legend


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 9}, r"k must be in \[1, E=8\]"),
        ({"n": 63}, "n\\*k must be divisible by E"),
        ({"steps": 5}, "steps must be >= 10"),
        ({"runs": (RunSpec("x", "sign", "hourly"),)}, "schedule must be one of"),
        ({"runs": (RunSpec("x", "signum", "published"),)}, "rule must be one of"),
        ({"runs": (RunSpec("x", "sign", "published", 0.1),)}, "step must be None"),
        ({"runs": (RunSpec("x", "sign", "constant", -1.0),)}, "step must be a finite number"),
    ],
)
def test_bad_configs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RegretConfig(**{**SMALL, **kwargs})


def test_cli_rejects_unknown_workloads(capsys):
    assert main(["regret", "--workload", "nope", "--steps", "20", "--no-progress"]) == 2
    assert "workload must be one of" in capsys.readouterr().err


@pytest.mark.slow
def test_growth_classes_follow_the_textbook_rates(tmp_path):
    # Stationary sigmoid workload, n=128, E=8, k=2, T = 20000, burn-in 1000: the horizon and
    # burn-in long enough (docs/design.md Sec. 3) to separate log from sqrt from linear (at
    # T = 3000 the c/t increments are ~1 and seed 1 reads sqrt-like: too short to tell).
    # Constants from the documented calibration rule (experiments.py). Theory (Hazan, Intro.
    # to OCO, Sec. 3): a fixed step is linear, c/sqrt(t) is O(sqrt T), c/(mu t) is O(log T).
    seed = 0
    runs = (
        RunSpec("const", "proportional", "constant"),
        RunSpec("sqrt", "proportional", "inverse_sqrt"),
        RunSpec("inv", "proportional", "inverse"),
    )
    config = RegretConfig(n=128, n_experts=8, k=2, steps=20000, seed=seed, runs=runs, burn_in=1000)
    results, _ = run_regret(config, tmp_path, progress=False)
    got = {r.spec.label: r.report.growth["dual_regret"] for r in results}
    assert got["const"].cls == "linear", got["const"]
    assert got["sqrt"].cls == "sqrt-like", got["sqrt"]
    # The classifier (lfbtheory.analysis.growth) may decline the label when the later half of
    # the checkpoints selects another class; the evidence must still favour ln t over every
    # other trend model (smallest BIC), and never a faster class.
    inv = got["inv"]
    assert inv.cls in ("logarithmic", "undetermined"), inv
    trends = ("logarithmic", "sqrt-like", "linear")
    assert min(trends, key=lambda m: inv.fits[m].bic) == "logarithmic", inv


def test_one_stream_shared_by_every_rule_equals_separate_unshared_runs():
    from lfbtheory.analysis.regret import compute_comparators, regret_report
    from lfbtheory.experiments.regret import run_point
    from lfbtheory.online.loop import simulate
    from lfbtheory.online.updates import make_rule
    from lfbtheory.workloads import make_workload

    runs = (RunSpec("a", "sign", "published"), RunSpec("b", "proportional", "inverse_sqrt", 0.05))
    config = RegretConfig(**SMALL, runs=runs)
    shared, ctx = run_point(config)
    wl = make_workload("stationary", n=64, n_experts=8, offset_seed=config.seed)
    for r in shared:
        batches = list(wl.batches(config.steps, np.random.SeedSequence([config.seed, 0])))
        rule = make_rule(r.spec.rule, ctx.calibration.schedule(r.spec.schedule, 60, r.spec.step))
        tr = simulate(batches, 2, rule)
        comp = compute_comparators(batches, 2, num_checkpoints=12)
        rep = regret_report(tr, batches, 2, comparators=comp)
        np.testing.assert_array_equal(tr.bias, r.trajectory.bias)
        np.testing.assert_array_equal(tr.loads, r.trajectory.loads)
        np.testing.assert_array_equal(comp.pooled_optimum, ctx.comparators.pooled_optimum)
        np.testing.assert_allclose(rep.dual_regret, r.report.dual_regret, rtol=1e-12, atol=1e-9)


def test_a_failed_run_leaves_no_folder_and_no_lock(tmp_path, monkeypatch):
    import lfbtheory.experiments.regret as R

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(R, "plot_results", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        run_regret(RegretConfig(**SMALL), tmp_path / "r", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_folder_held_by_a_live_run_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    from lfbtheory.experiments.regret import ResultsLockedError

    lock = tmp_path / ".r.lock"
    # A live holder: a child that takes the folder's lock and says so on its stdout, then
    # waits for its stdin to close (no sleep, no race).
    code = (
        "import sys; from lfbtheory import fileio\n"
        f"with fileio.folder_lock({str(tmp_path / 'r')!r}):\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ResultsLockedError, match=f"pid {holder.pid}"):
            run_regret(RegretConfig(**SMALL), tmp_path / "r", progress=False)
        assert not (tmp_path / "r").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    _, out = run_regret(RegretConfig(**SMALL), tmp_path / "r", progress=False)
    assert (out / "summary.json").exists() and not lock.exists()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--out", "{file}"], "is an existing file"),
        (["--config", "{missing}"], "does not exist"),
        (["--config", "{dir}"], "is a folder"),
        (["--config", "{list}"], "holds a JSON list"),
        (["--config", "{bad}"], "not valid JSON"),
    ],
)
def test_cli_user_mistakes_exit_2_with_a_clear_message(tmp_path, capsys, args, match):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.json").write_text("{nope")
    paths = {
        "file": tmp_path / "file",
        "missing": tmp_path / "nope.json",
        "dir": tmp_path / "dir",
        "list": tmp_path / "list.json",
        "bad": tmp_path / "bad.json",
    }
    steps = [] if "--config" in args else ["--steps", "20"]  # --config takes no other flag
    argv = ["regret", *steps, "--no-progress", *(a.format(**paths) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("lfb regret: error:") and match in err


def test_replay_reads_e_and_k_from_the_trace_and_runs_each_layer_separately(tmp_path, capsys):
    from lfbtheory.experiments.regret import replay_configs
    from lfbtheory.workloads import trace_info

    info = trace_info()
    common = dict(steps=12, num_checkpoints=6, runs=(RunSpec("s", "sign", "published"),))
    jobs = replay_configs({}, n=64, n_experts=None, k=None, common=common)
    assert [name for name, _ in jobs] == [str(x) for x in info.layers]
    assert {(c.n_experts, c.k) for _, c in jobs} == {(info.n_experts, info.k)}
    assert [c.workload_options["layer"] for _, c in jobs] == list(info.layers)
    with pytest.raises(ValueError, match="--experts must match"):
        replay_configs({}, n=64, n_experts=16, k=None, common=common)
    layer = str(info.layers[1])
    argv = [
        "regret",
        "--workload",
        "replay",
        "--workload-option",
        f"layer={layer}",
        "--n",
        "64",
        "--steps",
        "12",
        "--checkpoints",
        "6",
        "--run",
        "sign:published",
        "--out",
        str(tmp_path / "r"),
        "--no-progress",
    ]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert (saved["n_experts"], saved["k"]) == (info.n_experts, info.k)
    assert saved["workload_options"] == {"layer": int(layer)}


def test_a_slow_first_point_is_announced_as_compiling_and_a_fast_one_is_not(monkeypatch):
    """The kernels are compiled on a 20-batch point before the run (so the progress bar's ETA
    is not hours); if that point has not returned within COMPILE_NOTICE_SECONDS the user is
    told why it waits, and when it returns how long it took; a fast point says nothing."""
    import threading

    from lfbtheory.experiments import run

    said: list[str] = []
    announced = threading.Event()
    points = []

    def slow_point(config):  # returns only once the notice has been given: no sleep
        points.append(config)
        assert announced.wait(timeout=60)

    def log(msg: str) -> None:
        said.append(msg)
        announced.set()

    monkeypatch.setattr(run, "COMPILE_NOTICE_SECONDS", 0.01)
    monkeypatch.setattr(run, "run_point", slow_point)
    run.warm_kernels(log)
    assert len(points) == 1 and points[0].steps <= 20
    assert said[0].startswith("compiling kernels") and "cached" in said[0]
    assert said[1].startswith("compiled in") and len(said) == 2

    said.clear()
    monkeypatch.setattr(run, "COMPILE_NOTICE_SECONDS", 600.0)
    monkeypatch.setattr(run, "run_point", lambda config: points.append(config))
    run.warm_kernels(said.append)
    assert said == [] and len(points) == 2
