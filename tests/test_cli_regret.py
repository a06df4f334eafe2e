"""`lfb regret` / `lfb diagnose` command line: no flag silently ignored, the step used recorded,
strict JSON, folders named by their inputs, a clean stop on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lfbtheory.cli import build_parser, main
from lfbtheory.experiments.config import RegretConfig, RunSpec, parse_run
from lfbtheory.experiments.store import _slug
from lfbtheory.online.updates import RULES
from lfbtheory.workloads import WORKLOADS

TINY = ["--n", "32", "--experts", "4", "--steps", "12", "--checkpoints", "5", "--no-progress"]


def _strict(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_flags_given_with_config_are_refused_not_ignored(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"config": RegretConfig(n=32, n_experts=4).to_json()}))
    assert main(["regret", "--config", str(cfg), "--steps", "100"]) == 2
    err = capsys.readouterr().err
    assert "--steps" in err and "--config" in err
    assert main(["regret", "--config", str(cfg), "--seed", "3", "--k", "1"]) == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "--k" in err


def test_a_step_in_run_is_honoured_and_the_step_used_is_recorded(tmp_path):
    assert parse_run("sign:constant:0.01") == RunSpec(
        "sign constant u0=0.01", "sign", "constant", 0.01
    )
    assert parse_run("sign:constant:0.01:mine") == RunSpec("mine", "sign", "constant", 0.01)
    assert parse_run("sign:constant:mine") == RunSpec("mine", "sign", "constant", None)
    with pytest.raises(ValueError, match="STEP must be a number"):
        parse_run("sign:constant:x:mine")
    out = tmp_path / "r"
    argv = ["regret", *TINY, "--run", "sign:constant:0.01", "--run", "proportional:constant"]
    assert main([*argv, "--out", str(out)]) == 0
    rows = _strict((out / "summary.json").read_text())
    meta = _strict((out / "config.json").read_text())
    given, calibrated = rows
    assert given["step"] == 0.01 and given["schedule_used"] == {
        "schedule": "constant",
        "rate": 0.01,
    }
    assert "step" not in calibrated
    rate = calibrated["schedule_used"]["rate"]
    c = meta["calibration"]
    assert rate == pytest.approx(c["D"] / (c["G"] * np.sqrt(12)), rel=1e-12)
    assert meta["schedules"] == {r["label"]: r["schedule_used"] for r in rows}
    for row in rows:  # the trajectory's steps are the recorded schedule's
        with np.load(out / "runs" / f"{_slug(row['label'])}.npz") as z:
            np.testing.assert_array_equal(z["step"], row["schedule_used"]["rate"])
    # a step on the fixed published schedule is refused (it was once silently a label)
    assert main(["regret", *TINY, "--run", "sign:published:0.01", "--out", str(out)]) == 2


def test_summary_json_is_strict_json_with_null_for_no_finite_value(tmp_path):
    # A stream at exact balance from the start: the dynamic gap is 0 at every checkpoint, so its
    # log-log slope has no finite value.
    out = tmp_path / "r"
    assert main(["regret", *TINY, "--run", "sign:published", "--out", str(out)]) == 0
    text = (out / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    rows = _strict(text)
    slopes = [r[k] for r in rows for k in r if k.endswith("loglog_slope")]
    assert slopes and any(s is None for s in slopes), slopes
    for name in ("config.json", "timings.json"):
        _strict((out / name).read_text())


def test_help_lists_rules_schedules_and_workloads(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["regret", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in [*RULES, *WORKLOADS, "published", "deepseek_v3", "inverse_sqrt"]:
        assert name in text, name


def test_the_olmoe_workload_runs_at_its_own_e_and_k_or_refuses(tmp_path, capsys):
    from lfbtheory.cli.regret import workload_shape

    assert workload_shape("olmoe", {}, None, None) == (64, 8)
    assert workload_shape("olmoe", {"model": "mistral"}, None, None) == (8, 2)
    assert workload_shape("olmoe", {"fit_k": 2}, None, 2) == (64, 2)
    assert workload_shape("stationary", {}, None, None) == (16, 2)
    with pytest.raises(ValueError, match="--k must be 8"):
        workload_shape("olmoe", {}, None, 2)
    with pytest.raises(ValueError, match="--experts must be 64"):
        workload_shape("olmoe", {}, 16, None)
    assert main(["regret", "--workload", "olmoe", "--k", "2", "--steps", "12"]) == 2
    assert "--k must be 8" in capsys.readouterr().err


def test_replay_prints_one_legend_and_what_is_recorded_and_completed(tmp_path, capsys):
    argv = ["regret", "--workload", "replay", "--n", "64", "--steps", "12", "--checkpoints", "5"]
    argv += ["--run", "sign:published", "--no-progress", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("Columns (sums over") == 1
    assert out.count("=== recorded layer") == 8
    assert "top 6 of 64 scores per token recorded, the other 58 completed" in out
    assert "2048 recorded tokens per layer, cycled 0.375 times" in out


def _trace_args(path, tmp_path, steps):
    return [
        "regret",
        "--trace",
        str(path),
        "--n",
        "64",
        "--steps",
        str(steps),
        "--checkpoints",
        "5",
        "--run",
        "sign:published",
        "--no-progress",
    ]


def test_trace_folders_are_named_by_the_file_and_flags_and_never_replace_another_run(
    tmp_path, monkeypatch, capsys
):
    from lfbtheory.traces import Trace, write_trace

    rng = np.random.default_rng(0)

    def trace():
        return Trace(
            values=rng.normal(size=(1, 64, 8)),
            kind="logits",
            gate="softmax",
            k=2,
            layer_names=("layers.0.mlp.gate",),
            dtype="float64",
        )

    a = write_trace(trace(), tmp_path / "t.npz")
    monkeypatch.chdir(tmp_path)
    assert main(_trace_args(a, tmp_path, 12)) == 0
    assert main(_trace_args(a, tmp_path, 14)) == 0
    first = sorted((tmp_path / "results").iterdir())
    assert len(first) == 2 and all(p.name.startswith("regret-trace-t-") for p in first)
    write_trace(trace(), a)  # another file under the same name
    assert main(_trace_args(a, tmp_path, 12)) == 0
    assert len(list((tmp_path / "results").iterdir())) == 3  # another file: another folder
    capsys.readouterr()
    # an explicit --out holding another trace run is refused, not replaced
    assert main([*_trace_args(a, tmp_path, 16), "--out", str(first[0])]) == 2
    assert "another trace run" in capsys.readouterr().err
    _strict((first[0] / "trace_summary.json").read_text())
    assert main([*_trace_args(a, tmp_path, 12), "--k", "3"]) == 2  # not applicable: refused


def test_diagnose_folders_are_named_by_the_log_and_replaced_whole(tmp_path, monkeypatch):
    def log(path, layers):
        rows = ["step,layer,expert,load"]
        for s in range(40):
            for layer in range(layers):
                rows += [f"{s},{layer},{e},{10 + (e == 0) * (s % 3)}" for e in range(4)]
        path.write_text("\n".join(rows) + "\n")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    log(tmp_path / "a" / "run.csv", 2)
    log(tmp_path / "b" / "run.csv", 1)
    main(["diagnose", "a/run.csv"])
    main(["diagnose", "b/run.csv"])
    folders = sorted((tmp_path / "results").iterdir())
    assert len(folders) == 2 and all(f.name.startswith("diagnose-run-") for f in folders)
    out = tmp_path / "given"
    main(["diagnose", "a/run.csv", "--out", str(out)])
    assert len(list(out.glob("*.png"))) == 2
    main(["diagnose", "b/run.csv", "--out", str(out)])
    assert len(list(out.glob("*.png"))) == 1  # no PNG of the earlier log is left
    assert not list(tmp_path.glob(".given.*"))


STOPPER = """
import os, signal, sys
import lfbtheory.experiments.regret as R

def stop(*_a, **_k):  # the fault: SIGTERM arrives while the folder is being written
    os.kill(os.getpid(), signal.SIGTERM)

R.plot_results = stop
from lfbtheory.cli import main
sys.exit(main(["regret", "--n", "32", "--experts", "4", "--steps", "12", "--checkpoints", "5",
               "--no-progress", "--out", sys.argv[1]]))
"""


def test_sigterm_ends_lfb_regret_with_one_line_and_no_lock_or_partial_folder(tmp_path):
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", STOPPER, str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("lfb regret: stopped by SIGTERM;"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no lock, no temp


def test_ctrl_c_ends_lfb_regret_with_one_line(tmp_path, monkeypatch, capsys):
    import lfbtheory.cli.regret as cli

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_regret", interrupted)
    assert main(["regret", *TINY, "--out", str(tmp_path / "r")]) == 128 + signal.SIGINT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lfb regret: stopped by SIGINT;")


def test_bias_plot_colours_tell_apart_every_expert_up_to_e_256():
    from lfbtheory.experiments.plots import expert_colors

    for e in (16, 64, 256):
        c = expert_colors(e)
        assert c.shape == (e, 4)
        assert len({tuple(np.round(row, 6)) for row in c}) == e  # no colour shared
