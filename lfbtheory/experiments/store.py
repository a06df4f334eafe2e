"""Results folders: a lock per folder, atomic completion, and what a regret point writes.

A folder is written under a temporary name next to the target and renamed into place only
when complete (:func:`lfbtheory.fileio.atomic_folder`), so a folder with a summary.json is
always a finished run; while a run is in progress the lock file ``.<folder>.lock``
(:func:`lfbtheory.fileio.folder_lock`, holding its pid and host) makes a second run on the
same folder fail with a clear error instead of mixing results. A regret folder holds

    config.json    the config, the calibrated constants, seeds, package versions
    summary.json   one entry per run: final regrets, violations, MaxVio, growth classes,
                   the step schedule actually used (``schedule_used``, e.g. the calibrated
                   constant step; config.json's ``schedules`` holds the same)
                   (reproducible: identical runs give a bit-identical file)

Every JSON file is strict JSON (:func:`lfbtheory.fileio.dumps_json`): a figure that has no
finite value -- e.g. a log-log slope of a curve that is zero or negative somewhere, or a
metric a run does not define -- is ``null``, never a bare ``NaN``.
    timings.json   wall-clock seconds per phase and run (kept out of summary.json)
    runs/<label>.npz, runs/<label>_curves.csv   trajectories and regret curves
    comparators.npz, regret.png, maxvio.png, bias.png
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lfbtheory import fileio
from lfbtheory.experiments.config import RegretConfig
from lfbtheory.experiments.run import RunResult, StreamContext

__all__ = [
    "ResultsLockedError",
    "check_out_dir",
    "content_digest",
    "results_folder",
    "package_versions",
    "summary_rows",
    "write_results",
]

ResultsLockedError = fileio.LockedError  # another live run holds the folder's lock


def _looks_like_results(path: Path) -> bool:
    return path.is_dir() and (
        not any(path.iterdir())
        or (path / "summary.json").exists()
        or (path / "config.json").exists()
        or (path / "sweep.json").exists()
    )


def check_out_dir(out: Path) -> None:
    """ValueError unless ``out`` can become a results folder (absent, empty, or a previous
    results folder, which is replaced)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file; give a folder path")
    if out.exists() and not _looks_like_results(out):
        raise ValueError(
            f"--out {out} is a non-empty folder that is not an lfb results folder; refusing to "
            "replace it"
        )


@contextlib.contextmanager
def results_folder(out: str | Path) -> Iterator[Path]:
    """Lock ``out``, yield a fresh temporary folder next to it, and on success rename it to
    ``out`` (replacing an earlier results folder); on failure remove it, ``out`` untouched."""
    out = Path(out)
    check_out_dir(out)
    with fileio.folder_lock(out), fileio.atomic_folder(out) as tmp:
        yield tmp
        check_out_dir(out)  # a non-results folder created meanwhile is never replaced


def content_digest(files: list[str | Path], config: Any) -> str:
    """A results folder's name for a run over user files: a hash of the files' bytes and of
    the run's JSON config (another file under the same name, or other flags, never share a
    folder; the same inputs always give the same name)."""
    h = hashlib.sha256()
    for path in files:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()[:10]


def package_versions() -> dict[str, str | None]:
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for pkg in ("lfbtheory", "numpy", "scipy", "cvxpy", "numba"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return versions


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()


def summary_rows(results: list[RunResult]) -> list[dict[str, Any]]:
    """summary.json's entries: one per run (no timings: those go to timings.json)."""
    rows = []
    for r in results:
        s: dict[str, Any] = {
            "label": r.spec.label,
            "rule": r.spec.rule,
            "schedule": r.spec.schedule,
            **({"step": r.spec.step} if r.spec.step is not None else {}),
            **({"schedule_used": r.schedule} if r.schedule is not None else {}),
            **r.report.summary(),
        }
        if r.cycle is not None:
            s["fixed_batch_cycle"] = dataclasses.asdict(r.cycle)
        rows.append(s)
    return rows


def write_results(
    out: Path,
    final: Path,
    config: RegretConfig,
    context: StreamContext,
    results: list[RunResult],
) -> None:
    """Write ``config.json``, ``summary.json``, ``runs/`` and ``comparators.npz`` of a regret
    point into ``out`` (the temporary folder that becomes ``final``)."""
    meta = {
        "config": config.to_json(),
        "digest": config.digest(),
        "calibration": dataclasses.asdict(context.calibration),
        "workload": context.workload,
        "seeds": {"stream": [config.seed, 0], "calibration": [config.seed, 1]},
        "schedules": {r.spec.label: r.schedule for r in results},
        "versions": package_versions(),
        "python": platform.python_version(),
        "reproduce": f"lfb regret --config {final / 'config.json'}",
    }
    fileio.write_json(out / "config.json", meta, fsync=False)
    (out / "runs").mkdir(exist_ok=True)
    for r in results:
        slug = _slug(r.spec.label)
        tr, rep = r.trajectory, r.report
        np.savez_compressed(
            out / "runs" / f"{slug}.npz",
            bias=tr.bias,
            loads=tr.loads,
            reward=tr.reward,
            step=tr.step,
            dual_value=rep.dual_value,
            maxvio_batch=rep.maxvio_batch,
            maxvio_global=rep.maxvio_global,
        )
        with open(out / "runs" / f"{slug}_curves.csv", "w", newline="") as f:
            w = csv.writer(f)
            cols = [
                "dual_regret",
                "dual_dynamic_regret",
                "primal_regret",
                "violation",
                "dynamic_gap",
                "batch_violation",
                "price_path",
            ]
            w.writerow(["run", "t", *cols])  # run: the run's label (tables of many runs)
            curves = [getattr(rep, c) for c in cols]
            curves = [np.full(len(rep.t), np.nan) if c is None else c for c in curves]
            for i, t in enumerate(rep.t):
                w.writerow([r.spec.label, int(t), *(float(c[i]) for c in curves)])
    fileio.write_json(out / "summary.json", summary_rows(results), fsync=False)
    comp = context.comparators
    if comp is not None:
        arrays = {
            "batch_optimum": comp.batch_optimum,
            "t": comp.t,
            "pooled_optimum": comp.pooled_optimum,
            "hindsight_bias": comp.hindsight_bias,
        }
        if comp.batch_prices is not None:
            arrays["batch_prices"] = comp.batch_prices
        fileio.write_npz(out / "comparators.npz", arrays, compress=True, fsync=False)
