"""``lfb diagnose LOG``: is a training run's load balancing healthy?

Reads per-step expert loads (and bias) per layer (layouts in
:mod:`lfbtheory.analysis.diagnose`), writes summary.json, summary.txt and one PNG per layer to
``--out``, and prints the plain-language summary. With ``--trace FILE`` (recorded router
scores, :mod:`lfbtheory.traces`) it also measures the run's final bias against the exact
per-batch and hindsight balanced optima on those scores.

Exit status: 0 = no findings, 1 = at least one finding (dead expert, drift, limit cycle,
precision, persistent overload, median-not-mean), 2 = the input could not be read.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from lfbtheory.experiments.store import content_digest, results_folder

__all__ = ["add_parser"]


def _command(args: Any) -> int:
    from lfbtheory.analysis.diagnose import Thresholds, diagnose, read_load_log, write_report

    t0 = time.perf_counter()
    log = read_load_log(args.log, args.format)
    trace = None
    if args.trace:
        from lfbtheory.traces import read_trace

        trace = read_trace(args.trace)
    th = Thresholds(late=args.late)
    diags = diagnose(log, thresholds=th, trace=trace, n=args.n)
    config = {
        "log": str(args.log),
        "trace": args.trace,
        "n": args.n,
        "thresholds": dataclasses.asdict(th),
    }
    # The default folder is named by the inputs' bytes and the options (another log with the
    # same name gets another folder); any folder is replaced whole, so no PNG of an earlier
    # log is left beside the new summary.
    inputs = [args.log, *([args.trace] if args.trace else [])]
    digest = content_digest(inputs, {**config, "log": None, "trace": None})
    out = (
        Path(args.out) if args.out else Path("results") / f"diagnose-{Path(args.log).stem}-{digest}"
    )
    try:
        with results_folder(out) as tmp:
            text = write_report(log, diags, tmp, config=config, plots=not args.no_plots)
    except OSError as exc:  # a full disk, an --out that is a file, no permission, ...
        raise ValueError(f"cannot write the results folder {out}: {exc}") from None
    print(
        f"{args.log}: {log.loads.shape[0]} steps x {log.loads.shape[1]} layer(s) x "
        f"E={log.loads.shape[2]}" + (" with bias" if log.bias is not None else " (no bias)")
    )
    print(text)
    print(
        f"\nwrote {out}/ (summary.json, summary.txt"
        + (", one PNG per layer" if not args.no_plots else "")
        + f") in {time.perf_counter() - t0:.1f} s"
    )
    return 1 if any(d.findings for d in diags) else 0


def add_parser(sub: Any) -> None:
    """Register ``lfb diagnose``."""
    p = sub.add_parser(
        "diagnose",
        help="diagnose a training run's expert loads / bias log (exit 1 if anything looks off)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("log", help="load log: .csv (step,layer,expert,load[,bias]), .npz, .jsonl")
    p.add_argument(
        "--format",
        default=None,
        choices=("csv", "npz", "jsonl"),
        help="log layout (default: from the suffix)",
    )
    p.add_argument(
        "--trace",
        default=None,
        metavar="FILE",
        help="recorded router scores (.npz) for the gap to the exact optima",
    )
    p.add_argument(
        "--n",
        type=int,
        default=256,
        help="tokens per batch for the per-batch optimum on the trace (default 256)",
    )
    p.add_argument(
        "--late",
        type=float,
        default=0.5,
        help="trailing fraction of steps analysed as late (default 0.5)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="results folder (default results/diagnose-<log>-<hash of inputs and options>)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    p.set_defaults(func=_command)
