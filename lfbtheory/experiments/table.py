"""The printed table of a regret point: final figures per run, with a legend per column."""

from __future__ import annotations

from lfbtheory.experiments.config import PUBLISHED_RATE, RegretConfig
from lfbtheory.experiments.run import RunResult

__all__ = ["format_table"]


def format_table(
    results: list[RunResult], config: RegretConfig, calib_line: str = "", *, legend: bool = True
) -> str:
    """A readable table of the final figures of each run, with a legend defining every
    column (``legend=False``: without it, for all but one of several tables)."""
    head = (
        f"{'run':<28}{'dual regret':>12}{'(at burn-in)':>13}{'growth':>14}{'dual dyn.':>11}"
        f"{'primal regret':>15}{'violation':>11}{'dyn. gap':>10}{'batch viol.':>12}"
        f"{'MaxVio_b':>10}{'MaxVio_g':>10}"
    )
    lines = [
        f"workload={config.workload} n={config.n} E={config.n_experts} k={config.k} "
        f"T={config.steps} seed={config.seed}" + (f"  {calib_line}" if calib_line else ""),
        "",
        head,
        "-" * len(head),
    ]
    for r in results:
        s = r.report.summary()
        g = s.get("dual_regret_growth", "n/a")
        lines.append(
            f"{r.spec.label[:27]:<28}{s['dual_regret']:>12.3f}{s['dual_regret_at_burn_in']:>13.3f}"
            f"{g:>14}{s.get('dual_dynamic_regret', float('nan')):>11.2f}"
            f"{s['primal_regret']:>15.3f}{s['violation_tokens']:>11.0f}"
            f"{s['dynamic_gap']:>10.2f}{s.get('batch_violation_tokens', float('nan')):>12.0f}"
            f"{s['maxvio_batch_mean_late']:>10.3f}{s['maxvio_global_final']:>10.4f}"
        )
    for r in results:
        c = r.cycle
        if c is None:
            continue
        if c.found and c.period == 1:
            what = f"reaches a fixed point (exact balance) at step {c.start}"
        elif c.found:
            what = (
                f"enters a limit cycle at step {c.start}: period {c.period}, band width "
                f"{c.band_width:.3g} ({c.band_width / PUBLISHED_RATE:.2g} steps of u), common "
                f"drift {c.drift:+.3g} per period"
            )
        else:
            what = f"did not repeat within {config.cycle_steps} steps"
        lines.append(f"{r.spec.label}: on a fixed batch (batch 0 repeated) the bias {what}")
    rep = results[0].report
    burn = rep.burn_in
    if rep.price_path is not None:
        lines.append(
            f"stream: path length of the per-batch optimal prices (centred) = "
            f"{float(rep.price_path[-1]):.4g} over T={int(rep.t[-1])} batches"
        )
    if any(r.report.eval_excluded for r in results):
        lines.append(f"evaluation batches excluded from every sum: {rep.eval_excluded}")
    if any(r.report.group_limited for r in results):
        lines.append(
            "GROUP-LIMITED routing: load - L is not a subgradient of D; the dual "
            "columns are labelled values, not dual descent"
        )
    if not legend:
        return "\n".join(lines)
    lines += [
        "",
        "Columns (sums over training batches s <= T; D_s(p) = sum_tokens topk(s + p) - L sum p,",
        "OPT_s = max over balanced assignments of batch s, L = n k / E):",
        "  dual regret   sum_s D_s(p_s) - min_p sum_s D_s(p) (pooled hindsight price); "
        "(at burn-in): its value at t0",
        f"  growth        class of R(t) - R(t0) after burn-in t0={burn} "
        "(lfbtheory.analysis.growth)",
        "  dual dyn.     sum_s D_s(p_s) - sum_s OPT_s >= 0 (each batch's own optimal price)",
        "  primal regret OPT_pool(T) - sum_s reward_s (< 0 possible when capacity is violated)",
        "  violation     sum_i max(0, C_i(T) - T L): tokens over capacity in the cumulative loads",
        "  dyn. gap      sum_s (OPT_s - reward_s): primal gap to each batch's optimum",
        "  batch viol.   sum_s sum_i max(0, c_{s,i} - L): per-batch tokens over capacity",
        "  MaxVio_b      mean over batches after t0 of (max_i c_{s,i} - L) / L",
        "  MaxVio_g      (max_i C_i(T) - T L) / (T L) of the cumulative loads",
    ]
    return "\n".join(lines)
