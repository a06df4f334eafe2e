"""``lfb sweep CONFIG.toml``: a grid of regret experiments, resumable, locally or on Dask.

SIGTERM and SIGINT stop the sweep cleanly: its local workers are killed, the finished points
stay stored, the folder's lock is removed, and one line says how to resume (exit status 143
for SIGTERM, 130 for SIGINT). SIGKILL cannot be caught; the workers still end with the
sweep's process (:class:`lfbtheory.experiments.executors.LocalExecutor`) and the lock dies
with it (an flock), so a rerun resumes.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any


class _Stopped(BaseException):
    """Raised in the main thread by SIGTERM (a BaseException: no ``except Exception`` on the
    way out may swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise _Stopped(signum)


def _stored_points(out: Path, spec: Any) -> int:
    """How many of the sweep's points have a finished record in ``out``."""
    from lfbtheory.experiments.sweep import expand

    folder = out / "points"
    return sum((folder / f"{p.key}.json").is_file() for p in expand(spec))


def _command(args: Any) -> int:
    import dataclasses

    from lfbtheory.experiments.executors import make_executor
    from lfbtheory.experiments.sweep import expand, load_sweep, run_sweep

    spec = load_sweep(args.config, allow_large=args.allow_large)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.scheduler is not None or args.workers is not None:
        spec = dataclasses.replace(
            spec,
            scheduler=args.scheduler if args.scheduler is not None else spec.scheduler,
            workers=args.workers if args.workers is not None else spec.workers,
        )
    out = args.out if args.out is not None else (spec.out or str(spec.out_dir()))
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if main_thread else None
    executor = None
    try:
        executor = make_executor(spec.scheduler, spec.workers)
        name = executor.name
        res = run_sweep(
            spec,
            executor=executor,
            out=args.out,
            progress=not args.no_progress,
            plots=not args.no_plots,
        )
    except (_Stopped, KeyboardInterrupt) as exc:
        if executor is not None:
            executor.close(cancel=True)
            executor = None
        sig = "SIGTERM" if isinstance(exc, _Stopped) else "SIGINT"
        stored = _stored_points(Path(out), spec)
        print(
            f"lfb sweep: stopped by {sig}; {stored} of {len(expand(spec))} points are stored in "
            f"{out}; rerun the same command to compute the rest",
            file=sys.stderr,
        )
        return 128 + (signal.SIGTERM if isinstance(exc, _Stopped) else signal.SIGINT)
    except OSError as exc:  # a full disk, a folder without write permission, ...
        raise ValueError(f"cannot write the sweep folder {out}: {exc}") from None
    finally:
        if executor is not None:
            executor.close()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print(
        f"{res.points} points: {res.computed} computed, {res.cached} already stored "
        f"({res.streams_computed} streams computed) on {name}"
    )
    print(f"wrote {res.table}" + (f", {', '.join(p.name for p in res.plots)}" if res.plots else ""))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``lfb sweep``."""
    p = sub.add_parser(
        "sweep",
        help="run a grid of regret experiments from a TOML file (resumable; local or Dask)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
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
    p.add_argument(
        "--allow-large",
        action="store_true",
        help="run a sweep that the size check refuses (more memory than this machine has, "
        "more than a day per task, or more than 100000 points; docs/sweeps.md)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the summary plots")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_command)
