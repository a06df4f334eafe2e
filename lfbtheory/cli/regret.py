"""Regret experiments: a frozen config -> run -> result files (the benchopt pattern).

``lfb regret``: build a :class:`~lfbtheory.experiments.config.RegretConfig` from the flags (or
an earlier run's config.json), run it with :func:`lfbtheory.experiments.regret.run_regret` and
print its table; ``--trace FILE`` runs every recorded layer of a trace
(:mod:`lfbtheory.experiments.trace`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from lfbtheory.experiments.config import (
    DEFAULT_RUNS,
    SCHEDULE_CHOICES,
    RegretConfig,
    load_config_file,
    parse_run,
    replay_configs,
)
from lfbtheory.experiments.regret import run_regret
from lfbtheory.experiments.store import check_out_dir
from lfbtheory.experiments.table import format_table
from lfbtheory.experiments.trace import trace_regret_command

__all__ = ["add_parser"]


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"--workload-option must look like key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _command(args: Any) -> int:
    if getattr(args, "trace", None):  # E, k, gate from the file; one run set per layer
        return trace_regret_command(args)
    if args.out is not None:
        check_out_dir(Path(args.out))
    if args.config:
        jobs = [("", load_config_file(args.config))]
    else:
        runs = tuple(parse_run(r) for r in args.run) if args.run else DEFAULT_RUNS
        options = dict(_parse_option(o) for o in args.workload_option)
        common = dict(
            steps=args.steps,
            seed=args.seed,
            runs=runs,
            solver=args.solver,
            burn_in=args.burn_in,
            num_checkpoints=args.checkpoints,
        )
        if args.workload == "replay":
            jobs = replay_configs(
                options, n=args.n, n_experts=args.experts, k=args.k, common=common
            )
        else:
            jobs = [
                (
                    "",
                    RegretConfig(
                        workload=args.workload,
                        workload_options=options,
                        n=args.n,
                        n_experts=16 if args.experts is None else args.experts,
                        k=2 if args.k is None else args.k,
                        **common,
                    ),
                )
            ]
    t0 = time.perf_counter()
    root = Path(args.out) if args.out is not None else None
    if len(jobs) > 1:
        root = root or Path("results") / f"regret-replay-{jobs[0][1].digest()}"
        check_out_dir(root)
        print(f"replaying {len(jobs)} recorded layers as separate routers (one bias each)")
    written = []
    for name, config in jobs:
        out = root if len(jobs) == 1 else root / f"layer-{name}"  # type: ignore[operator]
        results, out = run_regret(config, out, progress=not args.no_progress)
        calib = json.loads((out / "config.json").read_text())["calibration"]
        line = "calibrated: D={D:.3g} G={G:.3g} mu={mu:.3g} t0={t0:.3g}".format(**calib)
        if name:
            print(f"\n=== recorded layer {name} ===")
        print(format_table(results, config, line))
        written.append(out)
    what = "config.json, summary.json, timings.json, runs/, regret.png, maxvio.png, bias.png"
    print(f"\nwrote {', '.join(map(str, written))} ({what}) in {time.perf_counter() - t0:.1f} s")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``lfb regret``."""
    p = sub.add_parser(
        "regret",
        help="run regret experiments on bias-update rules (the main job)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--workload",
        default="stationary",
        help="stationary, zipf, olmoe, drifting, clustered, adversarial, replay (replay: E and "
        "k from the file, each recorded layer a separate run unless layer=... is given)",
    )
    p.add_argument(
        "--workload-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workload option (repeatable), e.g. gate=softmax, path=trace.npz, layer=3",
    )
    p.add_argument("--n", type=int, default=256, help="tokens per batch (default 256)")
    p.add_argument(
        "--experts", type=int, default=None, help="experts E (default 16; replay: from the file)"
    )
    p.add_argument(
        "--k", type=int, default=None, help="experts per token (default 2; replay: from the file)"
    )
    p.add_argument("--steps", type=int, default=2000, help="batches T (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--run",
        action="append",
        metavar="RULE:SCHEDULE[:LABEL]",
        help="a run (repeatable); schedules: "
        + ", ".join(SCHEDULE_CHOICES)
        + "; default: the five runs of DEFAULT_RUNS",
    )
    p.add_argument(
        "--solver", default="auto", help="exact solver for the comparators (default auto)"
    )
    p.add_argument("--burn-in", type=int, default=None, help="burn-in t0 (default T/10)")
    p.add_argument("--checkpoints", type=int, default=40, help="regret checkpoints (default 40)")
    p.add_argument("--out", default=None, help="results folder (default results/regret-<hash>)")
    p.add_argument("--config", default=None, help="rerun the config.json of an earlier run")
    p.add_argument(
        "--trace",
        default=None,
        metavar="FILE",
        help="recorded router trace (.npz): E, k, gate from the file, each layer a separate run",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_command)
