"""``lfb bench``: run the benchmark harness of a source checkout (``benchmarks/harness.py``).

The harness is not shipped in the wheel (benchmarks are a development tool); from an installed
package without a checkout this command says where the harness lives instead of failing.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from lfbtheory.cli._checkout import checkout_dir


def _load_harness(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("_lfb_bench_harness", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load the benchmark harness {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cmd(args: argparse.Namespace) -> int:
    harness = _load_harness(checkout_dir("benchmarks", args.dir, "lfb bench") / "harness.py")
    return int(harness._cli(args))


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench", help="speed and memory benchmarks (exact solver, streams, pooled, routing)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small shapes and short stream (about a minute) instead of the full run",
    )
    p.add_argument(
        "--targets",
        default="1,2,3,4,6",
        help="comma-separated subset of 1..7 (5: a regret point and 7: streamed DeepSeek-V3-size "
        "points, neither by default; 6: import time)",
    )
    p.add_argument(
        "--tune",
        action="store_true",
        help="measure the engine's path break-evens on this machine and rewrite its tuning "
        "table (lfbtheory/_engine/tuning.json, or --out); results never change, only speed",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per fast method")
    p.add_argument("--seed", type=int, default=0, help="instance seed (default 0)")
    p.add_argument("--out", default=None, help="JSON path (default results/bench/bench-*.json)")
    p.add_argument("--dir", default=None, help="benchmarks directory (default: <repo>/benchmarks)")
    p.set_defaults(func=_cmd)
