"""Write a testbed result folder: config.json, results.json/csv, leakage.json/csv,
verdicts.json, regret.json, runs.npz (per-run curves) and PNG plots (matplotlib Figure API)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from lfbtheory.fileio import write_json, write_npz
from lfbtheory.testbed.run import leakage_table, recorded_regret, summarize, verdicts

__all__ = ["write_results", "format_tables"]

COLORS = {
    "none": "k",
    "aux_batch": "tab:red",
    "aux_sequence": "tab:orange",
    "lfb": "tab:blue",
    "expert_choice": "tab:green",
}


def _json_default(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    raise TypeError(type(x).__name__)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    keys = list(rows[0])
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in keys})


def _pm(m: float, s: float, nd: int = 3) -> str:
    return f"{m:.{nd}f} ± {s:.{nd}f}" if math.isfinite(s) else f"{m:.{nd}f}"


def format_tables(table: list[dict], leak: list[dict], verdict: list[dict]) -> str:
    """Plain-text results table, leakage table and verdicts."""
    lines = [
        f"{'setting':24} {'val bits/byte':>18} {'MaxVio_global':>18} {'entropy':>8} "
        f"{'cos(aux,LM)':>12}"
    ]
    for r in table:
        lines.append(
            f"{r['setting']:24} {_pm(r['val_bpb_mean'], r['val_bpb_std']):>18} "
            f"{_pm(r['maxvio_global_mean'], r['maxvio_global_std']):>18} "
            f"{r['entropy_mean']:8.3f} {r['interference_cos_mean']:12.3f}"
        )
    if leak:
        lines.append("")
        lines.append(
            f"{'EC chunk':>8} {'train bpb':>16} {'val non-causal':>16} "
            f"{'val causal':>16} {'gap':>16} {'bound/tok/layer':>15}"
        )
        for r in leak:
            gap = _pm(r["gap_causal_minus_noncausal_mean"], r["gap_causal_minus_noncausal_std"])
            lines.append(
                f"{r['chunk']:8d} {_pm(r['train_bpb_late_mean'], r['train_bpb_late_std']):>16} "
                f"{_pm(r['val_bpb_noncausal_mean'], r['val_bpb_noncausal_std']):>16} "
                f"{_pm(r['val_bpb_causal_mean'], r['val_bpb_causal_std']):>16} "
                f"{gap:>16} "
                f"{r['bound_bits_per_token_layer_exact']:15.2f}"
            )
    lines.append("")
    lines.append(verdict_markdown(verdict))
    return "\n".join(lines)


def _g(v: Any, fmt: str = "+.4f") -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def verdict_markdown(verdict: list[dict]) -> str:
    """The paired results table (markdown): per claim the paired mean difference, its t
    interval, the sign-flip p, the MDE (alpha, power stated), the unpaired Welch half-width
    for contrast, and the verdict."""
    lines = [
        "| claim | comparison | n | mean diff | paired 95% t interval | sign-flip p | "
        "MDE (α=0.05, power 0.8) | Welch ± | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdict:
        ci = f"[{_g(v.get('ci_low'))}, {_g(v.get('ci_high'))}]" if "ci_low" in v else "—"
        lines.append(
            f"| {v['claim']} | {v['compare']} | {v.get('n', '—')} | {_g(v.get('mean'))} | {ci} "
            f"| {_g(v.get('p_sign_flip'), '.3g')} | {_g(v.get('mde'), '.4f')} "
            f"| {_g(v.get('welch_half_width'), '.4f')} | {v['verdict']} |"
        )
    return "\n".join(lines)


def _plots(out: Path, results: dict, table: list[dict], regret: dict | None) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    for r in table:
        if r["family"] == "expert_choice":
            continue
        ax.errorbar(
            r["maxvio_global_mean"],
            r["val_bpb_mean"],
            xerr=r["maxvio_global_std"],
            yerr=r["val_bpb_std"],
            fmt="o",
            color=COLORS.get(r["family"], "gray"),
            capsize=3,
        )
        ax.annotate(
            r["setting"],
            (r["maxvio_global_mean"], r["val_bpb_mean"]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("MaxVio_global (validation, mean over MoE layers)")
    ax.set_ylabel("validation bits per byte")
    ax.set_title("quality vs balance (mean ± std over seeds)")
    fig.savefig(out / "pareto.png", dpi=130, bbox_inches="tight")

    by: dict[str, list[dict]] = {}
    for r in results["runs"]:
        by.setdefault(r["label"], []).append(r)
    fig = Figure(figsize=(12, 4))
    a1, a2, a3 = fig.subplots(1, 3)
    for label, runs in by.items():
        c = COLORS.get(runs[0]["family"], "gray")
        tb = np.mean([r["train_bpb"] for r in runs], axis=0)
        w = max(1, len(tb) // 40)
        a1.plot(np.convolve(tb, np.ones(w) / w, mode="valid"), color=c, lw=0.8, label=label)
        a2.plot(
            np.mean([r["curve_steps"] for r in runs], axis=0),
            np.mean([r["curve_val_bpb"] for r in runs], axis=0),
            color=c,
            lw=0.8,
        )
        mv = np.mean([r["maxvio_batch"].mean(axis=1) for r in runs], axis=0)
        a3.plot(np.convolve(mv, np.ones(w) / w, mode="valid"), color=c, lw=0.8)
    a1.set(xlabel="step", ylabel="train bits/byte (smoothed)")
    a2.set(xlabel="step", ylabel="validation bits/byte (subset)")
    a3.set(xlabel="step", ylabel="MaxVio_batch (smoothed)", yscale="log")
    a1.legend(fontsize=5, ncol=2)
    fig.savefig(out / "training_curves.png", dpi=130, bbox_inches="tight")

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for label, runs in by.items():
        if not len(runs[0]["interference_cos"]):
            continue
        steps = runs[0]["interference_steps"]
        vals = np.array([r["interference_cos"] for r in runs])
        ax.errorbar(
            steps,
            vals.mean(axis=0),
            yerr=vals.std(axis=0, ddof=1) if len(runs) > 1 else None,
            color=COLORS.get(runs[0]["family"], "gray"),
            lw=0.8,
            capsize=2,
            label=label,
        )
    ax.axhline(0, color="gray", lw=0.5)
    ax.set(
        xlabel="step",
        ylabel="cos(grad aux, grad LM) on router weights",
        title="interference (aux term measured for every method)",
    )
    ax.legend(fontsize=5, ncol=2)
    fig.savefig(out / "interference.png", dpi=130, bbox_inches="tight")

    if regret is not None:
        fig = Figure(figsize=(11, 4))
        a1, a2 = fig.subplots(1, 2)
        a1.plot(regret["t"], regret["dual_regret_real"], label="training-run bias")
        a1.plot(regret["t"], regret["dual_regret_replay"], label="loop replay (same rule)")
        a1.set(
            xlabel="step t",
            ylabel="dual regret R_D(t)",
            xscale="log",
            title=f"{regret['label']} seed {regret['seed']}, layer 0",
        )
        a1.legend(fontsize=7)
        b = np.array(regret["bias_real"])
        p = np.array(regret["hindsight_bias"])
        a2.plot(b - b.mean(axis=1, keepdims=True), lw=0.6)
        a2.set_prop_cycle(None)
        steps = b.shape[0]
        for v in p - p.mean():
            a2.plot([steps, steps * 1.05], [v, v], lw=2)
        a2.set(xlabel="step", ylabel="bias - mean (lines at right: hindsight price)")
        fig.savefig(out / "regret.png", dpi=130, bbox_inches="tight")


def write_results(results: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Write the folder ``out``; return {"table", "leakage", "verdicts", "regret", "text"}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(results)
    leak = leakage_table(results)
    verdict = verdicts(results)
    try:
        regret = recorded_regret(results)
        regret_error = None
    except Exception as exc:  # noqa: BLE001 -- the tables must still be written
        regret, regret_error = None, f"{type(exc).__name__}: {exc}"
    write_json(out / "config.json", results["config"])
    meta = {
        "corpus": results["corpus"],
        "torch": results.get("torch"),
        "python": results.get("python"),
        "wall_seconds": results.get("wall_seconds"),
    }
    write_json(out / "results.json", {"meta": meta, "table": table})
    _write_csv(out / "results.csv", table)
    write_json(out / "leakage.json", leak, indent=2)
    _write_csv(out / "leakage.csv", leak)
    write_json(out / "verdicts.json", verdict, indent=2)
    if regret is not None:
        write_json(out / "regret.json", regret, indent=2)
    scalars = [
        {
            key: r[key]
            for key in (
                "label",
                "seed",
                "method",
                "val",
                "val_causal",
                "tokens_per_second",
                "train_seconds",
                "init_digest",
                "batch_digest",
                "eval_digest",
                "leak_intervention",
            )
            if key in r
        }
        for r in results["runs"]
    ]
    write_json(out / "runs.json", scalars, indent=1)
    arrays: dict[str, np.ndarray] = {}
    for r in results["runs"]:
        key = f"{r['label']}__seed{r['seed']}"
        for name in RUN_ARRAYS:
            if name in r:
                arrays[f"{key}__{name}"] = np.asarray(r[name])
    write_npz(out / "runs.npz", arrays, compress=True)  # atomic; never a pickle
    _plots(out, results, table, regret)
    write_maxvio_curves(results, out)
    (out / "verdicts.md").write_text(verdict_markdown(verdict) + "\n")
    text = format_tables(table, leak, verdict)
    if regret is not None:
        s, q = regret["summary_real"], regret["summary_replay"]
        text += (
            f"\n\nregret of the bias on recorded scores ({regret['label']} seed {regret['seed']},"
            f" layer 0, {regret['tokens_per_step']} tokens x {regret['steps']} steps):\n"
            f"  training-run bias: dual regret {s['dual_regret']:.4g}, MaxVio_global "
            f"{s['maxvio_global_final']:.3f}, |b - p*|_inf (mod shift) "
            f"{regret['distance_to_hindsight_real']:.4f}\n"
            f"  loop replay:       dual regret {q['dual_regret']:.4g}, MaxVio_global "
            f"{q['maxvio_global_final']:.3f}, |b - p*|_inf (mod shift) "
            f"{regret['distance_to_hindsight_replay']:.4f}"
        )
    if regret_error is not None:
        text += f"\n\nregret of the recorded bias: NOT computed ({regret_error})"
        (out / "regret_error.txt").write_text(regret_error + "\n")
    (out / "summary.txt").write_text(text + "\n")
    return {"table": table, "leakage": leak, "verdicts": verdict, "regret": regret, "text": text}


RUN_ARRAYS = (
    "train_bpb",
    "maxvio_batch",
    "bias",
    "interference_steps",
    "interference_cos",
    "curve_steps",
    "curve_val_bpb",
    "curve_val_maxvio_global",
    "recorded_scores",
    "recorded_bias",
)


def load_results(folder: str | Path) -> dict[str, Any]:
    """The results dict of a written result folder (config.json, runs.json, runs.npz, through
    the checked readers of :mod:`lfbtheory.fileio`), enough to recompute every table, verdict
    and curve (the per-step gradients of the permuted-batch null are not in the folder)."""
    from lfbtheory.fileio import read_json, read_npz
    from lfbtheory.testbed.run import _nan_for_null

    folder = Path(folder)
    cfg = read_json(folder / "config.json", what="testbed config")
    scalars = _nan_for_null(read_json(folder / "runs.json", what="testbed run scalars"))
    arrays = read_npz(folder / "runs.npz", what="testbed run arrays")
    runs = []
    for r in scalars:
        key = f"{r['label']}__seed{r['seed']}"
        run = dict(r)
        run["family"] = {"aux": f"aux_{r['method']['scope']}"}.get(
            r["method"]["kind"], r["method"]["kind"]
        )
        for name in RUN_ARRAYS:
            if f"{key}__{name}" in arrays:
                run[name] = arrays[f"{key}__{name}"]
        runs.append(run)
    meta = read_json(folder / "results.json", what="testbed results")["meta"]
    return {
        "config": cfg,
        "corpus": meta["corpus"],
        "runs": runs,
        **{k: meta.get(k) for k in ("torch", "python", "wall_seconds")},
    }


def write_maxvio_curves(results: dict[str, Any], out: str | Path) -> None:
    """maxvio_curves.csv (setting, seed, step, MaxVio_batch of that step (mean over layers),
    MaxVio_global on the curve windows at the curve steps, empty elsewhere) and
    maxvio_curves.png (both, mean over seeds per setting)."""
    from matplotlib.figure import Figure

    out = Path(out)
    rows = []
    for r in results["runs"]:
        mvb = np.asarray(r["maxvio_batch"]).mean(axis=1)
        glob = dict(
            zip(
                np.asarray(r["curve_steps"]).tolist(),
                np.asarray(r["curve_val_maxvio_global"]).tolist(),
                strict=True,
            )
        )
        for i, v in enumerate(mvb.tolist()):
            rows.append(
                {
                    "setting": r["label"],
                    "seed": r["seed"],
                    "step": i + 1,
                    "maxvio_batch": v,
                    "maxvio_global": glob.get(i + 1, ""),
                }
            )
    _write_csv(out / "maxvio_curves.csv", rows)
    fig = Figure(figsize=(11, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    by: dict[str, list[dict]] = {}
    for r in results["runs"]:
        by.setdefault(r["label"], []).append(r)
    for label, runs in by.items():
        mvb = np.mean([np.asarray(r["maxvio_batch"]).mean(axis=1) for r in runs], axis=0)
        w = max(1, len(mvb) // 100)
        smooth = np.convolve(mvb, np.ones(w) / w, mode="valid")
        ax1.plot(np.arange(w, len(mvb) + 1), smooth, label=label, lw=1)
        steps = np.asarray(runs[0]["curve_steps"])
        ax2.plot(
            steps,
            np.mean([r["curve_val_maxvio_global"] for r in runs], axis=0),
            marker="o",
            ms=3,
            label=label,
        )
    ax1.set(xlabel="step", ylabel="MaxVio_batch (mean of layers, moving mean)", yscale="log")
    ax2.set(xlabel="step", ylabel="MaxVio_global (curve windows)", yscale="log")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "maxvio_curves.png", dpi=110)
