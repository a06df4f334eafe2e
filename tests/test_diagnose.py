"""``lfb diagnose``: a log with a planted drift, a planted limit cycle and a planted dead expert
gets all three named (and the healthy layer none); the three layouts read the same log; the
precision rule is exactly where float32/bfloat16 start dropping updates; the sign rule's
median-vs-mean signature is reported."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lfbtheory.analysis.diagnose import (
    LoadLog,
    Thresholds,
    diagnose,
    lost_update_magnitude,
    read_load_log,
    synthetic_log,
)
from lfbtheory.cli import main
from lfbtheory.traces import Trace, write_trace


def _kinds(diag):
    return {f.kind for f in diag.findings}


def test_planted_drift_cycle_and_dead_expert_are_each_named():
    log = synthetic_log(seed=0)
    by_name = {d.name: d for d in diagnose(log)}
    assert not by_name["healthy"].findings
    assert "drift" in _kinds(by_name["drift"])
    assert "limit_cycle" not in _kinds(by_name["drift"])
    assert "limit_cycle" in _kinds(by_name["cycle"])
    assert by_name["cycle"].stats["cycle"]["period"] == pytest.approx(40, abs=2)
    assert "dead_expert" in _kinds(by_name["dead"])
    assert by_name["dead"].dead == (3,)
    assert {"dead_expert", "limit_cycle"}.isdisjoint(_kinds(by_name["drift"]))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_planted_pathology_no_cycle_or_death(seed):
    """The healthy layer (sign rule on multinomial loads) is clean for other seeds too."""
    healthy = diagnose(synthetic_log(seed=seed, steps=400))[0]
    assert _kinds(healthy).isdisjoint({"limit_cycle", "dead_expert", "drift"})


def test_cli_reports_findings_with_exit_1_and_writes_results(tmp_path, capsys):
    log = synthetic_log(seed=0)
    path = tmp_path / "log.npz"
    np.savez(
        path, loads=log.loads, bias=log.bias, step=log.steps, layer_names=np.array(log.layer_names)
    )
    out = tmp_path / "out"
    assert main(["diagnose", str(path), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    for word in ("[drift]", "[limit_cycle]", "[dead_expert]", "expert(s) [3]"):
        assert word in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["healthy"] is False
    assert [lay["layer"] for lay in summary["layers"]] == ["healthy", "drift", "cycle", "dead"]
    assert len(list(out.glob("*.png"))) == 4
    healthy = tmp_path / "healthy.npz"
    np.savez(healthy, loads=log.loads[:, :1], bias=log.bias[:, :1])
    assert main(["diagnose", str(healthy), "--out", str(tmp_path / "h"), "--no-plots"]) == 0
    assert main(["diagnose", str(tmp_path / "missing.csv")]) == 2


def _write_all(log, tmp_path):
    t_len, n_layers, e = log.loads.shape
    with open(tmp_path / "log.csv", "w") as f:
        f.write("step,layer,expert,load,bias\n")
        for t in range(t_len):
            for j in range(n_layers):
                for i in range(e):
                    f.write(
                        f"{log.steps[t]},{log.layer_names[j]},{i},{log.loads[t, j, i]:.0f},"
                        f"{float(log.bias[t, j, i])!r}\n"
                    )
    with open(tmp_path / "log.jsonl", "w") as f:
        for t in range(t_len):
            for j in range(n_layers):
                f.write(
                    json.dumps(
                        {
                            "step": int(log.steps[t]),
                            "layer": log.layer_names[j],
                            "loads": log.loads[t, j].tolist(),
                            "bias": log.bias[t, j].tolist(),
                        }
                    )
                    + "\n"
                )
    np.savez(
        tmp_path / "log.npz",
        loads=log.loads,
        bias=log.bias,
        step=log.steps,
        layer_names=np.array(log.layer_names),
    )


def test_the_three_layouts_read_the_same_log(tmp_path):
    log = synthetic_log(steps=30, n_experts=4, tokens=64)
    _write_all(log, tmp_path)
    for suffix in ("csv", "jsonl", "npz"):
        back = read_load_log(tmp_path / f"log.{suffix}")
        np.testing.assert_array_equal(back.loads, log.loads)
        np.testing.assert_array_equal(back.bias, log.bias)
        np.testing.assert_array_equal(back.steps, log.steps)
        assert back.layer_names == log.layer_names


def test_bad_logs_are_rejected_with_the_reason(tmp_path):
    (tmp_path / "gap.csv").write_text("step,layer,expert,load\n0,a,0,3\n0,a,1,4\n1,a,0,5\n")
    with pytest.raises(ValueError, match="no row for step 1, layer 'a', expert 1"):
        read_load_log(tmp_path / "gap.csv")
    (tmp_path / "hdr.csv").write_text("t,layer,expert,load\n")
    with pytest.raises(ValueError, match="header must contain step,layer,expert,load"):
        read_load_log(tmp_path / "hdr.csv")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="format must be one of"):
        read_load_log(tmp_path / "x.txt")
    with pytest.raises(ValueError, match="positive total per step"):
        LoadLog(np.zeros((2, 1, 4)), np.arange(2), ("a",))
    with pytest.raises(ValueError, match="non-negative"):
        LoadLog(-np.ones((2, 1, 4)), np.arange(2), ("a",))
    (tmp_path / "bad.jsonl").write_text('{"step": 0}\n')
    with pytest.raises(ValueError, match="line 1: needs step, loads"):
        read_load_log(tmp_path / "bad.jsonl")


@settings(max_examples=40, deadline=None)
@given(mantissa=st.floats(1.01, 1.99), exponent=st.integers(-20, -2))
def test_float32_drops_an_update_exactly_from_the_lost_update_magnitude_on(mantissa, exponent):
    """An update u (not a power of two) survives below B = lost_update_magnitude(u) and is
    rounded away at B (round to nearest, p = 23)."""
    u = float(np.float32(mantissa * 2.0**exponent))
    big = lost_update_magnitude(u, "float32")
    f = np.float32
    assert f(big) + f(u) == f(big)
    assert f(big / 2) + f(u) != f(big / 2)


def test_bfloat16_rule_matches_torch():
    torch = pytest.importorskip("torch", reason="bfloat16 arithmetic comes from torch here")
    u = 1e-3
    big = lost_update_magnitude(u, "bfloat16")
    assert big == 0.5
    b = torch.tensor(big, dtype=torch.bfloat16)
    assert (b + u) == b
    half = torch.tensor(big / 2, dtype=torch.bfloat16)
    assert (half + u) != half


def test_median_balanced_but_mean_overloaded_expert_is_reported():
    """Expert 0 is below capacity 55% of the time (0.98 L) and far above it otherwise (1.30 L):
    its median load is at capacity, its mean is not -- what the sign rule leaves behind."""
    rng = np.random.default_rng(0)
    t_len, e, cap = 400, 8, 1000.0
    loads = np.full((t_len, 1, e), cap)
    high = rng.random(t_len) < 0.45
    loads[:, 0, 0] = np.where(high, 1.30 * cap, 0.98 * cap)
    # keep the per-step total at E * cap by taking the excess from the others evenly
    loads[:, 0, 1:] -= ((loads[:, 0, 0] - cap) / (e - 1))[:, None]
    d = diagnose(LoadLog(loads, np.arange(t_len), ("l",)))[0]
    assert "median_not_mean" in _kinds(d)
    f = next(f for f in d.findings if f.kind == "median_not_mean")
    assert f.experts == (0,)
    assert d.over_capacity[0] == pytest.approx(np.mean(high[t_len // 2 :]))


def test_load_only_logs_detect_oscillating_loads():
    t = np.arange(300)
    e = 6
    phase = np.linspace(0, 2 * np.pi, e, endpoint=False)
    loads = 1000 * (1 + 0.3 * np.sin(2 * np.pi * t[:, None] / 25 + phase))[:, None, :]
    d = diagnose(LoadLog(loads, t, ("l",)))[0]
    assert "limit_cycle" in _kinds(d)
    assert d.stats["cycle"]["period"] == 25
    flat = diagnose(
        LoadLog(
            np.full((300, 1, e), 1000.0) + np.random.default_rng(0).poisson(30, (300, 1, e)),
            t,
            ("l",),
        )
    )[0]
    assert not flat.findings


def test_gap_to_the_exact_optima_on_a_trace(tmp_path):
    rng = np.random.default_rng(0)
    e, k, n_tok = 8, 2, 512
    trace = Trace(
        values=rng.normal(size=(1, n_tok, e)).astype(np.float32),
        kind="logits",
        gate="softmax",
        k=k,
        layer_names=("gate0",),
    )
    from lfbtheory import solve_balanced

    pooled = trace.scores(0)
    p_star = solve_balanced(pooled, k).bias
    steps = 50
    loads = np.full((steps, 1, e), 100.0) + rng.integers(0, 5, (steps, 1, e))
    bias = np.broadcast_to(p_star, (steps, 1, e)).copy()
    d = diagnose(LoadLog(loads, np.arange(steps), ("gate0",), bias), trace=trace, n=128)[0]
    gap = d.stats["optimum_gap"]
    assert gap["batches"] == 4 and gap["n"] == 128
    assert gap["bias_distance_to_hindsight_price"] == pytest.approx(0.0, abs=1e-9)
    # routing with the exact hindsight price: top-k of s + p* at a dual optimum reaches the
    # pooled optimum's score up to the tokens tied at the price (here at most a few)
    assert abs(gap["score_gap_per_token_pooled"]) < 0.01
    write_trace(trace, tmp_path / "t.npz")
    np.savez(tmp_path / "log.npz", loads=loads, bias=bias, layer_names=np.array(["gate0"]))
    assert main(
        [
            "diagnose",
            str(tmp_path / "log.npz"),
            "--trace",
            str(tmp_path / "t.npz"),
            "--n",
            "128",
            "--no-plots",
            "--out",
            str(tmp_path / "o"),
        ]
    ) in (0, 1)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "optimum_gap" in summary["layers"][0]


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match=r"thresholds.late must be in \(0, 1\]"):
        diagnose(synthetic_log(steps=20), thresholds=Thresholds(late=0.0))


def test_a_full_disk_keeps_the_earlier_report_and_says_so(tmp_path, monkeypatch, capsys):
    import errno
    import os

    log = synthetic_log(seed=0, steps=200)
    path = tmp_path / "log.npz"
    np.savez(path, loads=log.loads, bias=log.bias)
    out = tmp_path / "out"
    assert main(["diagnose", str(path), "--out", str(out), "--no-plots"]) == 1
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", no_space)
    assert main(["diagnose", str(path), "--out", str(out), "--no-plots"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lfb diagnose: error: cannot write the results folder")
    assert "No space left on device" in err[-1]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing lost or left
