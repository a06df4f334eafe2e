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

from lfbtheory import fileio
from lfbtheory.experiments.config import DEFAULT_RUNS, RegretConfig, parse_run
from lfbtheory.experiments.regret import run_regret
from lfbtheory.experiments.store import content_digest
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
    chosen = range(len(info.layer_names)) if layers is None else layers
    configs = [
        RegretConfig(
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
        for j in chosen
    ]
    digest = trace_digest(path, configs)
    root = (
        Path(out)
        if out is not None
        else Path("results") / f"regret-trace-{Path(path).stem}-{digest}"
    )
    _check_trace_root(root, digest)
    root.mkdir(parents=True, exist_ok=True)
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
        "digest": digest,
        "layers": [],
    }
    for i, (j, config) in enumerate(zip(chosen, configs, strict=True)):
        name = info.layer_names[j]
        folder = root / f"layer{j:02d}-{''.join(c if c.isalnum() else '_' for c in name)}"
        results, folder = run_regret(config, folder, progress=progress)
        log(f"\n=== layer {j}: {name} ({info.gate} gate, E={info.n_experts}, k={info.k}) ===")
        log(format_table(results, config, legend=i == len(configs) - 1))
        summary["layers"].append(
            {
                "layer": int(j),
                "name": name,
                "folder": str(folder),
                "runs": json.loads((folder / "summary.json").read_text()),
            }
        )
    fileio.write_json(root / "trace_summary.json", summary)
    return summary, root


def trace_digest(path: str | Path, configs: list[RegretConfig]) -> str:
    """The name of a trace run's folder: a hash of the trace file's bytes and of every layer's
    config without the file's path (so another file with the same name, or other flags,
    never share a folder, and a moved file keeps its name)."""
    body = [
        {**c.to_json(), "workload_options": {"layer": c.workload_options["layer"]}} for c in configs
    ]
    return content_digest([path], body)


def _check_trace_root(root: Path, digest: str) -> None:
    """ValueError if ``root`` holds another trace run (another file or other flags)."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"--out {root} is an existing file; give a folder path")
    summary = root / "trace_summary.json"
    if summary.exists():
        held = fileio.read_json(summary, what="trace summary")
        if not isinstance(held, dict) or held.get("digest") != digest:
            raise ValueError(
                f"--out {root} holds the results of another trace run (another file or other "
                "flags); give another --out or delete it"
            )
    elif root.exists() and any(root.iterdir()):
        raise ValueError(
            f"--out {root} is a non-empty folder that is not a trace run's folder; refusing to "
            "write into it"
        )


def trace_regret_command(args: Any) -> int:
    """``lfb regret --trace FILE``: E, k and gate from the file, one run set per layer
    (``args``: the command's flags with their defaults applied)."""
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
