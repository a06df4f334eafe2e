"""``lfb regret --trace FILE``: the regret experiment on every layer of a recorded trace.

Each recorded layer is a separate router with its own bias: the experiment of
:mod:`lfbtheory.experiments.regret` runs once per layer on a
:class:`lfbtheory.workloads.trace.TraceWorkload`, with E, k and the gate read from the file, and
writes one results folder per layer plus ``trace_summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lfbtheory.experiments.config import DEFAULT_RUNS, RegretConfig, parse_run
from lfbtheory.experiments.regret import run_regret
from lfbtheory.experiments.table import format_table
from lfbtheory.traces import inspect_trace
from lfbtheory.workloads.trace import batch_size_for

__all__ = ["run_trace_regret", "trace_regret_command"]


def run_trace_regret(
    path: str | Path,
    *,
    n: int = 256,
    steps: int = 2000,
    seed: int = 0,
    runs: tuple[Any, ...] | None = None,
    solver: str = "auto",
    burn_in: int | None = None,
    num_checkpoints: int = 40,
    out: str | Path | None = None,
    progress: bool = True,
    layers: tuple[int, ...] | None = None,
    log: Any = print,
) -> tuple[dict[str, Any], Path]:
    """Run ``lfb regret`` on every recorded layer of a trace; return (summary, folder).

    n is lowered to the largest size <= min(n, N) with n k divisible by E (reported).
    """

    info = inspect_trace(path)
    m = batch_size_for(n, info.k, info.n_experts, info.n_tokens)
    if m != n:
        log(
            f"batch size n={n} -> {m} (n k divisible by E={info.n_experts}, n <= "
            f"{info.n_tokens} recorded tokens per layer)"
        )
    notes = ["each layer's rules start from bias 0 (a recorded bias is not used)"]
    if info.n_groups:
        notes.append(
            f"the model routes group-limited ({info.topk_groups} of {info.n_groups} "
            "groups); the replay and its exact comparators use plain top-k"
        )
    for note in notes:
        log(f"note: {note}")
    digest = Path(path).stem
    root = Path(out) if out is not None else Path("results") / f"regret-trace-{digest}"
    root.mkdir(parents=True, exist_ok=True)
    chosen = range(len(info.layer_names)) if layers is None else layers
    summary: dict[str, Any] = {
        "trace": str(path),
        "layout": info.layout,
        "n_experts": info.n_experts,
        "k": info.k,
        "gate": info.gate,
        "tokens_per_layer": info.n_tokens,
        "n": m,
        "steps": steps,
        "epochs": steps * m / info.n_tokens,
        "notes": notes,
        "layers": [],
    }
    for j in chosen:
        name = info.layer_names[j]
        config = RegretConfig(
            workload="trace",
            workload_options={"path": str(path), "layer": int(j)},
            n=m,
            n_experts=info.n_experts,
            k=info.k,
            steps=steps,
            seed=seed,
            runs=tuple(runs) if runs else DEFAULT_RUNS,
            solver=solver,
            burn_in=burn_in,
            num_checkpoints=num_checkpoints,
        )
        folder = root / f"layer{j:02d}-{''.join(c if c.isalnum() else '_' for c in name)}"
        results, folder = run_regret(config, folder, progress=progress)
        log(f"\n=== layer {j}: {name} ({info.gate} gate, E={info.n_experts}, k={info.k}) ===")
        log(format_table(results, config))
        summary["layers"].append(
            {
                "layer": int(j),
                "name": name,
                "folder": str(folder),
                "runs": json.loads((folder / "summary.json").read_text()),
            }
        )
    (root / "trace_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary, root


def trace_regret_command(args: Any) -> int:
    """``lfb regret --trace FILE``: E, k and gate from the file, one run set per layer."""
    runs = tuple(parse_run(r) for r in args.run) if getattr(args, "run", None) else None
    _, root = run_trace_regret(
        args.trace,
        n=args.n,
        steps=args.steps,
        seed=args.seed,
        runs=runs,
        solver=args.solver,
        burn_in=args.burn_in,
        num_checkpoints=args.checkpoints,
        out=args.out,
        progress=not args.no_progress,
    )
    print(f"\nwrote {root}/ (one folder per layer, trace_summary.json)")
    return 0
