"""load_results / load_curves: results folders as a tidy DataFrame and an xarray Dataset."""

import csv
import json
import shutil
import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas", reason="load_results returns a pandas DataFrame")

from lfbtheory.experiments import load_curves, load_results  # noqa: E402
from lfbtheory.experiments.executors import SerialExecutor  # noqa: E402
from lfbtheory.experiments.regret import RegretConfig, RunSpec, run_regret  # noqa: E402
from lfbtheory.experiments.sweep import parse_sweep, run_sweep  # noqa: E402

RUNS = (RunSpec("sign", "sign", "published"), RunSpec("prop c", "proportional", "constant", 0.05))
SMALL = dict(n=32, n_experts=4, k=2, steps=20, num_checkpoints=6, calibration_batches=4)


@pytest.fixture(scope="module")
def regret_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("regret") / "r"
    run_regret(RegretConfig(**SMALL, runs=RUNS), out, progress=False, plots=False)
    return out


def test_a_regret_folder_loads_as_one_row_per_run_and_metric(regret_folder):
    df = load_results(regret_folder)
    summary = json.loads((regret_folder / "summary.json").read_text())
    assert list(df["run"].unique()) == ["sign", "prop c"]
    assert df.groupby(["run", "metric"]).size().max() == 1
    for row in summary:
        got = df[df["run"] == row["label"]].set_index("metric")["value"]
        for key, v in row.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and key != "step":
                assert got[key] == pytest.approx(v, rel=0, abs=0), key
            elif v is None:
                assert np.isnan(got[key]), key  # null: no finite value
    assert set(df.loc[df["run"] == "prop c", "step"]) == {0.05}


def test_curve_csvs_carry_the_run_label(regret_folder):
    for row in json.loads((regret_folder / "summary.json").read_text()):
        slug = "".join(c if c.isalnum() else "_" for c in row["label"]).strip("_").lower()
        with open(regret_folder / "runs" / f"{slug}_curves.csv") as f:
            body = list(csv.DictReader(f))
        assert body and {r["run"] for r in body} == {row["label"]}


def test_curves_load_as_an_xarray_dataset_with_runs_and_checkpoints(regret_folder):
    pytest.importorskip("xarray", reason="load_curves returns an xarray Dataset")
    ds = load_curves(regret_folder)
    assert list(ds["run"].values) == ["sign", "prop c"]
    assert list(ds["rule"].values) == ["sign", "proportional"]
    with open(regret_folder / "runs" / "prop_c_curves.csv") as f:
        body = list(csv.DictReader(f))
    np.testing.assert_array_equal(ds["t"].values, [int(r["t"]) for r in body])
    np.testing.assert_array_equal(
        ds["dual_regret"].sel(run="prop c").values, [float(r["dual_regret"]) for r in body]
    )


def test_a_folder_of_layer_folders_prefixes_each_run_with_its_layer(regret_folder, tmp_path):
    root = tmp_path / "layers"
    root.mkdir()
    for name in ("layer-2", "layer-3"):
        shutil.copytree(regret_folder, root / name)
    df = load_results(root)
    assert sorted(df["run"].unique()) == [
        "layer-2/prop c",
        "layer-2/sign",
        "layer-3/prop c",
        "layer-3/sign",
    ]
    assert set(df["layer"]) == {"layer-2", "layer-3"}


def test_a_sweep_folder_loads_one_row_per_point_rule_and_metric(tmp_path):
    spec = parse_sweep(
        {
            "sweep": {
                "name": "t",
                "horizon": 20,
                "seeds": [0],
                "num_checkpoints": 6,
                "calibration_batches": 4,
                "cycle_steps": 50,
            },
            "grid": {
                "workloads": ["stationary"],
                "n": [32],
                "n_experts": [4],
                "k": [2],
                "rules": ["sign", "proportional"],
                "schedules": ["constant"],
                "step_sizes": [1e-2, "calibrated"],
            },
        }
    )
    res = run_sweep(
        spec,
        out=tmp_path / "s",
        progress=False,
        plots=False,
        log=lambda _: 0,
        executor=SerialExecutor(),
    )
    df = load_results(res.out)
    table = pd.read_csv(res.table)
    assert df["run"].nunique() == len(table) == 4
    assert df.groupby(["run", "metric"]).size().max() == 1
    dr = df[df["metric"] == "dual_regret"].set_index("run")["value"]
    for _, row in table.iterrows():
        assert dr[f"{row['point']}/{row['rule']}"] == row["dual_regret"]
    assert set(df["step_setting"]) == {"given", "calibrated"}
    with pytest.raises(ValueError, match="no curves"):
        load_curves(res.out)


def test_missing_xarray_or_a_non_results_folder_is_a_clear_error(
    regret_folder, tmp_path, monkeypatch
):
    with pytest.raises(ValueError, match="holds no lfb results"):
        load_results(tmp_path)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"lfbtheory\[results\]"):
        load_curves(regret_folder)


def test_a_testbed_folder_loads_one_row_per_setting_and_metric(tmp_path):
    """The recorded quick-preset folder shipped in docs/ (written by ``lfb testbed``)."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "docs" / "testbed_results" / "quick"
    shutil.copytree(src, tmp_path / "tb")
    df = load_results(tmp_path / "tb")
    table = pd.read_csv(src / "results.csv")
    assert set(df["run"]) == set(table["setting"].astype(str))
    assert len(df) == len(table) * (len(table.columns) - 3)  # setting, family, seeds are ids
    lfb = table.set_index("setting").loc["lfb_sign_0.001", "val_bpb_mean"]
    row = df[(df.run == "lfb_sign_0.001") & (df.metric == "val_bpb_mean")]
    assert row["value"].item() == lfb
