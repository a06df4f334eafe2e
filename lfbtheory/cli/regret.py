"""Regret experiments: a frozen config -> run -> result files (the benchopt pattern).

``lfb regret``: build a :class:`~lfbtheory.experiments.config.RegretConfig` from the flags (or
an earlier run's config.json), run it with :func:`lfbtheory.experiments.regret.run_regret` and
print its table; ``--trace FILE`` runs every recorded layer of a trace
(:mod:`lfbtheory.experiments.trace`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lfbtheory.experiments.config import (
    DEFAULT_RUNS,
    SCHEDULE_CHOICES,
    SCHEDULE_STEP_OPTIONAL,
    RegretConfig,
    load_config_file,
    parse_run,
    replay_configs,
)
from lfbtheory.experiments.regret import run_regret
from lfbtheory.experiments.store import check_out_dir
from lfbtheory.experiments.table import format_table
from lfbtheory.experiments.trace import trace_regret_command
from lfbtheory.online.updates import RULES
from lfbtheory.workloads import WORKLOADS, trace_info
from lfbtheory.workloads.calibrated import HIST_K

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


# The flags that build a config; with --config the saved config is rerun exactly, so giving
# any of them as well is refused (never silently ignored). Their defaults are applied here
# (argparse's are None, so that a given flag is told from an absent one).
CONFIG_FLAGS: dict[str, tuple[str, Any]] = {
    "workload": ("--workload", "stationary"),
    "workload_option": ("--workload-option", None),
    "n": ("--n", 256),
    "experts": ("--experts", None),
    "k": ("--k", None),
    "steps": ("--steps", 2000),
    "seed": ("--seed", 0),
    "run": ("--run", None),
    "solver": ("--solver", "auto"),
    "burn_in": ("--burn-in", None),
    "checkpoints": ("--checkpoints", 40),
}
CONFIG_DEST = {flag: dest for dest, (flag, _) in CONFIG_FLAGS.items()}
DEFAULT_E, DEFAULT_K = 16, 2
# The histograms' models route with their own E and k (arXiv 2409.02060: OLMoE E = 64, top-8;
# Mixtral E = 8, top-2): a run of the olmoe workload adopts them unless told otherwise.
OLMOE_E = {"olmoe": 64, "olmoe-sft": 64, "olmoe-dpo": 64, "mistral": 8}


def _given(args: Any) -> list[str]:
    return [flag for dest, (flag, _) in CONFIG_FLAGS.items() if getattr(args, dest) is not None]


def _value(args: Any, dest: str) -> Any:
    v = getattr(args, dest)
    return CONFIG_FLAGS[dest][1] if v is None else v


def workload_shape(
    workload: str, options: dict[str, Any], n_experts: int | None, k: int | None
) -> tuple[int, int]:
    """(E, k) of a run: the workload's own where it has them (olmoe: the histogram's model),
    a given value that contradicts them refused; else the given values or the defaults."""
    if workload != "olmoe":
        return (DEFAULT_E if n_experts is None else n_experts, DEFAULT_K if k is None else k)
    model = options.get("model", "olmoe")
    if model not in OLMOE_E:
        raise ValueError(f"model must be one of {', '.join(OLMOE_E)}, got {model!r}")
    e = OLMOE_E[model]
    kind = options.get("kind", "expert_counts")
    own_k = options.get("fit_k", 1 if kind == "expert_counts_top1" else HIST_K[model])
    if n_experts is not None and n_experts != e:
        raise ValueError(
            f"--experts must be {e} for the olmoe workload's model {model!r} (its histogram "
            f"has E={e}), got {n_experts}"
        )
    if k is not None and k != own_k:
        raise ValueError(
            f"--k must be {own_k} for the olmoe workload (model {model!r} routes top-{own_k} and "
            f"its popularity is fitted for that k), got {k}; to run at another k give "
            f"--workload-option fit_k={k} as well"
        )
    return e, int(own_k)


def _jobs(args: Any) -> list[tuple[str, RegretConfig]]:
    if args.config:
        given = _given(args)
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot be combined with --config (it reruns the saved "
                "config exactly); edit a copy of the config.json instead, or drop --config"
            )
        return [("", load_config_file(args.config))]
    runs = tuple(parse_run(r) for r in args.run) if args.run else DEFAULT_RUNS
    options = dict(_parse_option(o) for o in (args.workload_option or []))
    common = dict(
        steps=_value(args, "steps"),
        seed=_value(args, "seed"),
        runs=runs,
        solver=_value(args, "solver"),
        burn_in=args.burn_in,
        num_checkpoints=_value(args, "checkpoints"),
    )
    workload, n = _value(args, "workload"), _value(args, "n")
    if workload == "replay":
        return replay_configs(options, n=n, n_experts=args.experts, k=args.k, common=common)
    e, k = workload_shape(workload, options, args.experts, args.k)
    config = RegretConfig(
        workload=workload, workload_options=options, n=n, n_experts=e, k=k, **common
    )
    return [("", config)]


class _Stopped(Exception):
    """SIGTERM, raised in the main thread so that the results folder's cleanup runs."""


def _stop(_signum: int, _frame: Any) -> None:
    raise _Stopped


def _command(args: Any) -> int:
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if main_thread else None
    try:
        return _run(args)
    except (_Stopped, KeyboardInterrupt) as exc:
        sig = "SIGTERM" if isinstance(exc, _Stopped) else "SIGINT"
        print(
            f"lfb regret: stopped by {sig}; the unfinished results folder was removed (no "
            "lock left); rerun the same command to start again",
            file=sys.stderr,
        )
        return 128 + (signal.SIGTERM if isinstance(exc, _Stopped) else signal.SIGINT)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _run(args: Any) -> int:
    if getattr(args, "trace", None):  # E, k, gate from the file; one run set per layer
        wrong = [
            f
            for f in ("--workload", "--workload-option", "--experts", "--k")
            if getattr(args, CONFIG_DEST[f]) is not None
        ]
        if args.config:
            wrong.append("--config")
        if wrong:
            raise ValueError(
                f"{', '.join(wrong)} cannot be combined with --trace (the trace gives the "
                "workload, E and k)"
            )
        resolved = argparse.Namespace(**vars(args))
        for dest in CONFIG_FLAGS:
            setattr(resolved, dest, _value(args, dest))
        return trace_regret_command(resolved)
    if args.out is not None:
        check_out_dir(Path(args.out))
    jobs = _jobs(args)
    t0 = time.perf_counter()
    root = Path(args.out) if args.out is not None else None
    if len(jobs) > 1:
        root = root or Path("results") / f"regret-replay-{jobs[0][1].digest()}"
        check_out_dir(root)
        print(f"replaying {len(jobs)} recorded layers as separate routers (one bias each)")
    if jobs[0][1].workload == "replay":
        print(replay_note(jobs[0][1]))
    written = []
    for j, (name, config) in enumerate(jobs):
        out = root if len(jobs) == 1 else root / f"layer-{name}"  # type: ignore[operator]
        results, out = run_regret(config, out, progress=not args.no_progress)
        calib = json.loads((out / "config.json").read_text())["calibration"]
        line = "calibrated: D={D:.3g} G={G:.3g} mu={mu:.3g} t0={t0:.3g}".format(**calib)
        if name:
            print(f"\n=== recorded layer {name} ===")
        print(format_table(results, config, line, legend=j == len(jobs) - 1))
        written.append(out)
    what = "config.json, summary.json, timings.json, runs/, regret.png, maxvio.png, bias.png"
    print(f"\nwrote {', '.join(map(str, written))} ({what}) in {time.perf_counter() - t0:.1f} s")
    return 0


def replay_note(config: RegretConfig) -> str:
    """What a replayed file holds and what the replay adds: the recorded top-k of E, the
    completed rest, and how often the recorded tokens are cycled."""
    opts = config.workload_options
    info = trace_info(opts.get("path"), key=opts.get("key"))
    cycles = config.steps * config.n / info.n_tokens
    if info.k is None:
        recorded = f"all {info.n_experts} scores per token recorded (nothing completed)"
    else:
        tail = opts.get("tail", "lognormal")
        recorded = (
            f"top {info.k} of {info.n_experts} scores per token recorded, the other "
            f"{info.n_experts - info.k} completed (synthetic, tail={tail!r}, seeded)"
        )
    return (
        f"replay: {recorded}; {info.n_tokens} recorded tokens per layer, cycled "
        f"{cycles:.3g} times (T={config.steps} batches of n={config.n})"
    )


def _help_list(names: Any) -> str:
    return ", ".join(sorted(names))


def add_parser(sub: Any) -> None:
    """Register ``lfb regret``."""
    p = sub.add_parser(
        "regret",
        help="run regret experiments on bias-update rules (the main job)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=(
            f"rules: {_help_list(RULES)}. schedules: {', '.join(SCHEDULE_CHOICES)} "
            f"(published: fixed u=1e-3, takes no STEP; {', '.join(SCHEDULE_STEP_OPTIONAL)}: "
            "STEP is the first step u_0, else the documented constant). workloads: "
            f"{_help_list(WORKLOADS)} (olmoe: E and k of its model, 64 and 8 by default; "
            "replay: E and k from the file)."
        ),
    )
    p.add_argument(
        "--workload",
        default=None,
        help="one of " + _help_list(WORKLOADS) + " (default stationary; replay: E and k from "
        "the file, each recorded layer a separate run unless layer=... is given; olmoe: E and "
        "k of the histogram's model)",
    )
    p.add_argument(
        "--workload-option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="a workload option (repeatable), e.g. gate=softmax, path=trace.npz, layer=3",
    )
    p.add_argument("--n", type=int, default=None, help="tokens per batch (default 256)")
    p.add_argument(
        "--experts",
        type=int,
        default=None,
        help="experts E (default 16; replay: from the file; olmoe: its model's)",
    )
    p.add_argument(
        "--k",
        type=int,
        default=None,
        help="experts per token (default 2; replay: from the file; olmoe: its model's)",
    )
    p.add_argument("--steps", type=int, default=None, help="batches T (default 2000)")
    p.add_argument("--seed", type=int, default=None, help="base seed (default 0)")
    p.add_argument(
        "--run",
        action="append",
        metavar="RULE:SCHEDULE[:STEP][:LABEL]",
        help="a run (repeatable); rules: "
        + _help_list(RULES)
        + "; schedules: "
        + ", ".join(SCHEDULE_CHOICES)
        + "; STEP (a number) fixes the first step u_0; default: the five runs of DEFAULT_RUNS",
    )
    p.add_argument("--solver", default=None, help="exact solver for the comparators (default auto)")
    p.add_argument("--burn-in", type=int, default=None, help="burn-in t0 (default T/10)")
    p.add_argument("--checkpoints", type=int, default=None, help="regret checkpoints (default 40)")
    p.add_argument("--out", default=None, help="results folder (default results/regret-<hash>)")
    p.add_argument(
        "--config",
        default=None,
        help="rerun the config.json of an earlier run exactly (the flags that build a config "
        "are refused with it)",
    )
    p.add_argument(
        "--trace",
        default=None,
        metavar="FILE",
        help="recorded router trace (.npz): E, k, gate from the file, each layer a separate run",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_command)
