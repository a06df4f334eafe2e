"""Replay one layer of a recorded router trace as a workload; ``lfb regret --trace FILE``.

:class:`TraceWorkload` reads E (and k, gate) from the file: an :mod:`lfbtheory.traces` file
(scores = gate(recorded logits), or the recorded scores) or a top-k-only trace
(``topk_scores``/``topk_ids``, e.g. the shipped FLAME-MoE file), which is completed to all E
experts by :class:`lfbtheory.workloads.Replay` (its documented completion; the recorded top-k
stays the top-k exactly). Batch t is tokens [t n, (t+1) n) of the layer's N recorded tokens,
cycled (an epoch is N / n batches); ``seed`` only affects a top-k completion.

:func:`run_trace_regret` runs the regret experiment (:mod:`lfbtheory.experiments.regret`) once
per recorded layer -- each layer is a separate router with its own bias -- with E and k from the
file, and writes one results folder per layer plus ``trace_summary.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from lfbtheory.traces import FORMAT, TraceInfo, inspect_trace, read_trace

__all__ = ["TraceWorkload", "batch_size_for", "run_trace_regret", "trace_regret_command"]


@dataclass(frozen=True)
class TraceWorkload:
    """Batches of n consecutive recorded tokens of trace layer ``layer`` (position in [0, L))."""

    name: ClassVar[str] = "trace"
    adaptive: ClassVar[bool] = False

    path: str
    n: int
    n_experts: int | None = None
    layer: int = 0
    info: TraceInfo | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        info = inspect_trace(self.path)
        object.__setattr__(self, "path", str(Path(self.path)))
        object.__setattr__(self, "info", info)
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if self.n_experts is not None and int(self.n_experts) != info.n_experts:
            raise ValueError(f"n_experts must equal the trace's E={info.n_experts} (it is read "
                             f"from the file), got {self.n_experts}")
        object.__setattr__(self, "n_experts", info.n_experts)
        n_layers = len(info.layer_names)
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or not (
            0 <= self.layer < n_layers
        ):
            raise ValueError(f"layer must be an integer in [0, {n_layers}) (the trace's layers "
                             f"{list(info.layer_names)}), got {self.layer!r}")

    @property
    def k(self) -> int:
        assert self.info is not None
        return self.info.k

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "n": self.n,
                "n_experts": self.n_experts, "layer": self.layer}

    def batches(self, steps: int, seed: Any = 0) -> Iterator[NDArray[np.float64]]:
        """``steps`` (n, E) float64 batches, cycling through the layer's tokens."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        assert self.info is not None
        if self.info.layout != FORMAT:
            from lfbtheory.workloads import replay

            name = int(self.info.layer_names[self.layer])
            return replay(self.path, n=self.n, n_experts=self.info.n_experts,
                          layer=name).batches(steps, seed)
        scores = read_trace(self.path).scores(self.layer)
        return _cycle(scores, self.n, steps)


def _cycle(scores: NDArray[np.float64], n: int, steps: int) -> Iterator[NDArray[np.float64]]:
    total = scores.shape[0]
    for t in range(steps):
        rows = (np.arange(t * n, (t + 1) * n) % total)
        yield scores[rows].copy()


def batch_size_for(n: int, k: int, n_experts: int, n_tokens: int) -> int:
    """The largest batch size <= min(n, n_tokens) with n k divisible by E (capacity n k / E)."""
    step = n_experts // math.gcd(n_experts, k)
    m = (min(n, n_tokens) // step) * step
    if m < 1:
        raise ValueError(f"the trace has {n_tokens} tokens per layer, fewer than the smallest "
                         f"batch with integral capacity (n = {step} for E={n_experts}, k={k}); "
                         "record more tokens")
    return m


def run_trace_regret(
    path: str | Path, *, n: int = 256, steps: int = 2000, seed: int = 0,
    runs: tuple[Any, ...] | None = None, solver: str = "auto", burn_in: int | None = None,
    num_checkpoints: int = 40, out: str | Path | None = None, progress: bool = True,
    layers: tuple[int, ...] | None = None, log: Any = print,
) -> tuple[dict[str, Any], Path]:
    """Run ``lfb regret`` on every recorded layer of a trace; return (summary, folder).

    n is lowered to the largest size <= min(n, N) with n k divisible by E (reported).
    """
    from lfbtheory.experiments.regret import DEFAULT_RUNS, RegretConfig, format_table, run_regret

    info = inspect_trace(path)
    m = batch_size_for(n, info.k, info.n_experts, info.n_tokens)
    if m != n:
        log(f"batch size n={n} -> {m} (n k divisible by E={info.n_experts}, n <= "
            f"{info.n_tokens} recorded tokens per layer)")
    notes = ["each layer's rules start from bias 0 (a recorded bias is not used)"]
    if info.n_groups:
        notes.append(f"the model routes group-limited ({info.topk_groups} of {info.n_groups} "
                     "groups); the replay and its exact comparators use plain top-k")
    for note in notes:
        log(f"note: {note}")
    digest = Path(path).stem
    root = Path(out) if out is not None else Path("results") / f"regret-trace-{digest}"
    root.mkdir(parents=True, exist_ok=True)
    chosen = range(len(info.layer_names)) if layers is None else layers
    summary: dict[str, Any] = {
        "trace": str(path), "layout": info.layout, "n_experts": info.n_experts, "k": info.k,
        "gate": info.gate, "tokens_per_layer": info.n_tokens, "n": m, "steps": steps,
        "epochs": steps * m / info.n_tokens, "notes": notes, "layers": [],
    }
    for j in chosen:
        name = info.layer_names[j]
        config = RegretConfig(
            workload="trace", workload_options={"path": str(path), "layer": int(j)}, n=m,
            n_experts=info.n_experts, k=info.k, steps=steps, seed=seed,
            runs=tuple(runs) if runs else DEFAULT_RUNS, solver=solver, burn_in=burn_in,
            num_checkpoints=num_checkpoints,
        )
        folder = root / f"layer{j:02d}-{''.join(c if c.isalnum() else '_' for c in name)}"
        results, folder = run_regret(config, folder, progress=progress)
        log(f"\n=== layer {j}: {name} ({info.gate} gate, E={info.n_experts}, k={info.k}) ===")
        log(format_table(results, config))
        summary["layers"].append({
            "layer": int(j), "name": name, "folder": str(folder),
            "runs": json.loads((folder / "summary.json").read_text()),
        })
    (root / "trace_summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary, root


def trace_regret_command(args: Any) -> int:
    """``lfb regret --trace FILE``: E, k and gate from the file, one run set per layer."""
    from lfbtheory.experiments.regret import _parse_run

    runs = tuple(_parse_run(r) for r in args.run) if getattr(args, "run", None) else None
    _, root = run_trace_regret(
        args.trace, n=args.n, steps=args.steps, seed=args.seed, runs=runs, solver=args.solver,
        burn_in=args.burn_in, num_checkpoints=args.checkpoints, out=args.out,
        progress=not args.no_progress,
    )
    print(f"\nwrote {root}/ (one folder per layer, trace_summary.json)")
    return 0

