"""``lfb testbed``: train the small MoE LM under every balancing setting and seed, write the
result folder (config, tables, verdicts, plots). torch is imported only when the command runs."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "testbed",
        help="learned-router testbed: Loss-Free Balancing vs aux loss vs Expert Choice "
        "(needs torch)",
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny model, 30 steps (under a minute; for CI)"
    )
    p.add_argument(
        "--preset",
        choices=("default", "quick", "long"),
        default=None,
        help="default: ~10 min grid on 2 cores; quick: = --quick; long: 2000 steps "
        "(steps fixed a priori from the bias travel, docs/testbed.md; outside CI)",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config.json of an earlier run to reproduce (overrides --quick)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("testbed_results"),
        help="output folder (default ./testbed_results); finished runs are cached in OUT/cache, "
        "so re-running the same command resumes an interrupted grid",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel single-threaded runs (default from the config: 2)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        print("lfb testbed needs PyTorch: pip install 'lfbtheory[testbed]'")
        return 2
    from dataclasses import replace

    from lfbtheory.testbed.report import write_results
    from lfbtheory.testbed.run import TestbedConfig, preset, run_testbed

    if args.config is not None:
        try:
            d = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--config must be a readable JSON file: {exc}") from None
        cfg = TestbedConfig.from_dict(d)
    else:
        if args.preset is not None and args.quick and args.preset != "quick":
            raise ValueError(f"--quick contradicts --preset {args.preset}; give one of them")
        cfg = preset(args.preset or ("quick" if args.quick else "default"))
    if args.workers is not None:
        cfg = replace(cfg, workers=args.workers)
    print(
        f"lfb testbed: preset {cfg.name!r}, {len(cfg.methods)} settings x {len(cfg.seeds)} "
        f"seeds, {cfg.train.steps} steps x {cfg.train.batch_size * cfg.model.seq_len} bytes, "
        f"{cfg.workers} worker(s) -> {args.out}"
    )
    t0 = time.perf_counter()
    results = run_testbed(cfg, tqdm_bar=True, cache_dir=Path(args.out) / "cache")
    results["wall_seconds"] = time.perf_counter() - t0
    results["torch"] = torch.__version__
    results["python"] = platform.python_version()
    rep = write_results(results, args.out)
    print(rep["text"])
    tps = [r["tokens_per_second"] for r in results["runs"]]
    print(
        f"\nwall time {results['wall_seconds']:.0f} s; training throughput per single-threaded "
        f"run: median {sorted(tps)[len(tps) // 2]:.0f} bytes/s; results in {args.out}"
    )
    return 0
