"""``lfb sweep CONFIG.toml``: a grid of regret experiments, resumable, locally or on Dask."""

from __future__ import annotations

from typing import Any


def _command(args: Any) -> int:
    import dataclasses

    from lfbtheory.experiments.executors import make_executor
    from lfbtheory.experiments.sweep import load_sweep, run_sweep

    spec = load_sweep(args.config)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.scheduler is not None or args.workers is not None:
        spec = dataclasses.replace(
            spec,
            scheduler=args.scheduler if args.scheduler is not None else spec.scheduler,
            workers=args.workers if args.workers is not None else spec.workers,
        )
    executor = make_executor(spec.scheduler, spec.workers)
    try:
        res = run_sweep(
            spec,
            executor=executor,
            out=args.out,
            progress=not args.no_progress,
            plots=not args.no_plots,
        )
    finally:
        executor.close()
    print(
        f"{res.points} points: {res.computed} computed, {res.cached} already stored "
        f"({res.streams_computed} streams computed) on {executor.name}"
    )
    print(f"wrote {res.table}" + (f", {', '.join(p.name for p in res.plots)}" if res.plots else ""))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``lfb sweep``."""
    p = sub.add_parser(
        "sweep",
        help="run a grid of regret experiments from a TOML file (resumable; local or Dask)",
        description=__doc__,
    )
    p.add_argument("config", help="the sweep file (TOML, see examples/sweep.toml)")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run on this Dask scheduler (default: the file's [sweep] scheduler, else local "
        "processes)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: the file's, else all CPUs; 1 = in this process)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="sweep folder (default: the file's, else results/sweep-<name>-<hash>)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the summary plots")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_command)
