"""The figures of a regret folder: regret.png, maxvio.png, bias.png."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lfbtheory.experiments.run import RunResult

__all__ = ["plot_results", "expert_colors", "EXPERT_CMAP"]

# A continuous map (not a 10-colour cycle): E experts get E distinct colours for any E up to
# 256 and beyond, read off one colour bar; "turbo" keeps neighbouring ids apart in hue.
EXPERT_CMAP = "turbo"


def expert_colors(n_experts: int) -> NDArray[np.float64]:
    """(E, 4) RGBA colours, expert i at position i / (E - 1) of :data:`EXPERT_CMAP`."""
    from matplotlib import colormaps

    return colormaps[EXPERT_CMAP](np.linspace(0.0, 1.0, n_experts))


_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)))
# Fixed margins of the two-panel figures: tight_layout measured every tick label of the log
# axes first, ~1 s of the ~2.9 s the plots of a replayed layer (E = 64) took.
_MARGINS = {"left": 0.06, "right": 0.99, "bottom": 0.12, "top": 0.92, "wspace": 0.2}


def plot_results(out: Path, results: list[RunResult]) -> None:
    """Write regret.png, maxvio.png and bias.png of ``results`` into ``out``."""
    # The object-oriented API (no pyplot): no global backend switch, no open figures left behind.
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    for i, r in enumerate(results):
        rep = r.report
        ls = _LINESTYLES[i % len(_LINESTYLES)]  # curves can coincide (sign vs DeepSeek-V3)
        ax1.loglog(rep.t, np.maximum(rep.dual_regret, 1e-12), linestyle=ls, label=r.spec.label)
        base = np.interp(rep.burn_in, rep.t, rep.dual_regret)
        late = rep.t > rep.burn_in
        ax2.loglog(
            rep.t[late],
            np.maximum(rep.dual_regret[late] - base, 1e-12),
            linestyle=ls,
            label=r.spec.label,
        )
    t = results[0].report.t.astype(float)
    t0 = results[0].report.burn_in
    ref = t[t > t0]
    scale = max(
        1e-12,
        float(
            np.median(
                [
                    max(
                        np.interp(ref[-1], r.report.t, r.report.dual_regret)
                        - np.interp(t0, r.report.t, r.report.dual_regret),
                        1e-12,
                    )
                    for r in results
                ]
            )
        ),
    )
    for f, name, style in (
        (lambda x: x - t0, "~ t", ":"),
        (lambda x: np.sqrt(x) - np.sqrt(t0), "~ sqrt t", "--"),
        (lambda x: np.log(x / t0), "~ log t", "-."),
    ):
        v = f(ref)
        ax2.loglog(ref, scale * v / v[-1], "k" + style, lw=0.8, label=f"reference {name}")
    ax1.set(xlabel="batches t", ylabel="dual regret R(t)", title="Dual regret (log-log)")
    ax2.set(xlabel="batches t", ylabel=f"R(t) - R({t0})", title=f"Growth after burn-in t0={t0}")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.subplots_adjust(**_MARGINS)
    fig.savefig(out / "regret.png", dpi=120)

    fig = Figure(figsize=(12, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for i, r in enumerate(results):
        ls = _LINESTYLES[i % len(_LINESTYLES)]
        steps = np.arange(1, len(r.report.maxvio_batch) + 1)
        w = max(1, len(steps) // 100)
        smooth = np.convolve(r.report.maxvio_batch, np.ones(w) / w, mode="valid")
        ax1.semilogx(steps[w - 1 :], smooth, linestyle=ls, label=r.spec.label)
        ax2.loglog(
            steps, np.maximum(r.report.maxvio_global, 1e-6), linestyle=ls, label=r.spec.label
        )
    ax1.set(xlabel="batches t", ylabel="MaxVio_batch (moving mean)", title="MaxVio per batch")
    ax2.set(xlabel="batches t", ylabel="MaxVio_global", title="MaxVio of cumulative loads")
    ax1.legend(fontsize=7)
    fig.subplots_adjust(**_MARGINS)
    fig.savefig(out / "maxvio.png", dpi=120)

    cols = min(3, len(results))
    rows = math.ceil(len(results) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    n_experts = results[0].trajectory.bias.shape[1]
    for ax, r in zip(axes.ravel(), results, strict=False):
        b = r.trajectory.bias
        ax.set_prop_cycle(color=expert_colors(b.shape[1]))
        ax.plot(
            b - b.mean(axis=1, keepdims=True) if r.trajectory.bias_mode == "additive" else b, lw=0.6
        )
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=r.spec.label, xlabel="batches t", ylabel="bias - mean(bias)")
        ax.title.set_fontsize(8)
    for ax in axes.ravel()[len(results) :]:
        ax.axis("off")
    h = 3.2 * rows  # figure height in inches: margins of fixed size
    fig.subplots_adjust(
        left=0.08, right=0.90, bottom=0.45 / h, top=1 - 0.3 / h, wspace=0.35, hspace=0.75 / 3.2 * 2
    )
    # one colour bar for every panel: expert i has the same colour everywhere
    bar = fig.add_axes((0.925, 0.45 / h, 0.012, 1 - 0.75 / h))
    fig.colorbar(
        ScalarMappable(norm=Normalize(-0.5, n_experts - 0.5), cmap=EXPERT_CMAP),
        cax=bar,
        label="expert id",
    )
    fig.savefig(out / "bias.png", dpi=120)
