"""Results folders as tables: :func:`load_results` (pandas) and :func:`load_curves` (xarray).

A regret folder (``summary.json`` + ``runs/*_curves.csv``), a folder of such folders (the
layers of ``lfb regret --workload replay`` or ``--trace FILE``) and a sweep folder
(``results.csv``) all load the same way:

    load_results(folder)   tidy DataFrame, one row per run x metric: ``run`` (the run's label,
                           prefixed by its layer folder, or ``<point>/<rule>`` in a sweep),
                           the run's identifying columns (rule, schedule, ...), ``metric``,
                           ``value`` (float; a JSON null is NaN: no finite value)
    load_curves(folder)    xarray Dataset of the regret curves, dims (run, t), one variable per
                           curve column, the identifying columns as run coordinates

pandas and xarray are optional (``pip install lfbtheory[results]``); a clear ImportError
names the extra when one is missing.
"""

from __future__ import annotations

import csv
import math
import numbers
from pathlib import Path
from typing import Any

from lfbtheory import fileio

__all__ = ["load_results", "load_curves", "result_folders"]

# Columns of a run that identify it (kept as columns / coordinates, not melted into metrics).
RUN_FIELDS = ("run", "layer", "label", "rule", "schedule", "step")


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as exc:  # optional: the package itself does not need it
        raise ImportError(
            f"load_results needs pandas ({exc}); pip install 'lfbtheory[results]'"
        ) from None
    return pd


def _xarray() -> Any:
    try:
        import xarray as xr
    except ImportError as exc:
        raise ImportError(
            f"load_curves needs xarray ({exc}); pip install 'lfbtheory[results]'"
        ) from None
    return xr


def result_folders(folder: str | Path) -> list[tuple[str, Path]]:
    """The regret folders under ``folder``: [("", folder)] for one regret folder, or one
    (layer folder name, path) per sub-folder holding a summary.json (sorted by name)."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"folder {root} is not a folder")
    if (root / "summary.json").is_file():
        return [("", root)]
    subs = sorted(p for p in root.iterdir() if p.is_dir() and (p / "summary.json").is_file())
    if not subs:
        raise ValueError(
            f"folder {root} holds no lfb results (no summary.json, no results.csv of a sweep, "
            "no sub-folders with a summary.json)"
        )
    return [(p.name, p) for p in subs]


def _is_sweep(root: Path) -> bool:
    return (root / "results.csv").is_file() and (root / "sweep.json").is_file()


def _is_testbed(root: Path) -> bool:
    """An ``lfb testbed`` folder: its per-setting table beside the paired verdicts."""
    return (root / "results.csv").is_file() and (root / "verdicts.json").is_file()


def _number(v: Any) -> float | None:
    """A metric's value as float, or None when it is not a number (a class name, a dict)."""
    if isinstance(v, bool) or v is None:
        return math.nan if v is None else None
    if isinstance(v, numbers.Real):
        return float(v)
    return None


def _regret_rows(folder: Path, layer: str) -> list[dict[str, Any]]:
    rows = fileio.read_json(folder / "summary.json", what="summary")
    if not isinstance(rows, list):
        raise ValueError(f"{folder / 'summary.json'} is not a list of runs")
    out = []
    for r in rows:
        ident: dict[str, Any] = {
            "run": f"{layer}/{r['label']}" if layer else str(r["label"]),
            "layer": layer,
            "label": r["label"],
            "rule": r.get("rule"),
            "schedule": r.get("schedule"),
            "step": r.get("step", math.nan),
        }
        # a class name (e.g. the growth class) is a property of the run, not a metric
        ident.update({k: v for k, v in r.items() if k not in ident and isinstance(v, str)})
        for key, v in r.items():
            x = None if key in ident else _number(v)
            if x is not None:
                out.append({**ident, "metric": key, "value": x})
    return out


def load_results(folder: str | Path) -> Any:
    """A results folder as a tidy pandas DataFrame: one row per run x metric (module
    docstring). Works on a regret folder, a folder of layer folders, a sweep folder and an
    ``lfb testbed`` folder (one row per setting x metric, its seeds pooled as mean and std)."""
    pd = _pandas()
    root = Path(folder)
    if root.is_dir() and _is_sweep(root):
        table = pd.read_csv(root / "results.csv")
        table.insert(0, "run", table["point"].astype(str) + "/" + table["rule"].astype(str))
        numeric = [
            c
            for c in table.columns
            if c not in ("run", "point", "stream", "stream_seed", "seed", "n", "n_experts", "k")
            and c not in ("horizon", "step", "u0")
            and pd.api.types.is_numeric_dtype(table[c])
        ]
        ident = [c for c in table.columns if c not in numeric]
        return table.melt(id_vars=ident, value_vars=numeric, var_name="metric").reset_index(
            drop=True
        )
    if root.is_dir() and _is_testbed(root):
        # one row per setting (method and its constant) x metric; seeds pooled as the testbed's
        # table pools them (*_mean, *_std over the seeds; the paired verdicts are in
        # verdicts.json)
        table = pd.read_csv(root / "results.csv")
        table.insert(0, "run", table["setting"].astype(str))
        ident = ["run", "setting", "family", "seeds"]
        numeric = [c for c in table.columns if c not in ident]
        return table.melt(id_vars=ident, value_vars=numeric, var_name="metric").reset_index(
            drop=True
        )
    rows = [row for layer, f in result_folders(root) for row in _regret_rows(f, layer)]
    df = pd.DataFrame(rows)
    front = ["run", "layer", "label", "rule", "schedule", "step", "metric", "value"]
    return df[front + [c for c in df.columns if c not in front]]


def _read_curves(path: Path) -> tuple[list[str], list[list[str]]]:
    text = fileio.read_text(path, what="curves")
    reader = csv.reader(text.splitlines())
    head = next(reader)
    return head, list(reader)


def load_curves(folder: str | Path) -> Any:
    """The regret curves of a results folder as an xarray Dataset, dims (run, t): one variable
    per column of ``runs/*_curves.csv`` (dual_regret, primal_regret, violation, ...; NaN where
    a run has no such curve); coordinates ``layer``, ``label``, ``rule``, ``schedule`` per run.
    A sweep stores summaries only: ValueError."""
    pd, xr = _pandas(), _xarray()
    root = Path(folder)
    if root.is_dir() and _is_sweep(root):
        raise ValueError(
            f"folder {root} is a sweep: it stores per-point summaries (load_results), no curves"
        )
    frames = []
    for layer, f in result_folders(root):
        summary = fileio.read_json(f / "summary.json", what="summary")
        for r in summary:
            slug = "".join(c if c.isalnum() else "_" for c in r["label"]).strip("_").lower()
            head, body = _read_curves(f / "runs" / f"{slug}_curves.csv")
            df = pd.DataFrame(body, columns=head)
            df = df.drop(columns=[c for c in ("run",) if c in df.columns])
            df = df.apply(pd.to_numeric)
            df["run"] = f"{layer}/{r['label']}" if layer else str(r["label"])
            df["layer"], df["label"] = layer, r["label"]
            df["rule"], df["schedule"] = r.get("rule"), r.get("schedule")
            frames.append(df)
    long = pd.concat(frames, ignore_index=True)
    per_run = long.groupby("run", sort=False)[["layer", "label", "rule", "schedule"]].first()
    ds = xr.Dataset.from_dataframe(
        long.drop(columns=["layer", "label", "rule", "schedule"]).set_index(["run", "t"])
    )
    ds = ds.reindex(run=list(per_run.index))  # the folders' run order, not sorted labels
    return ds.assign_coords({c: ("run", per_run[c].values) for c in per_run})
