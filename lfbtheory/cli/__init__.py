"""The ``lfb`` command line. Each subcommand imports its machinery lazily."""

from __future__ import annotations

import argparse
import importlib
import sys


def _demo(args: argparse.Namespace) -> int:
    from lfbtheory.experiments.demo import format_demo, run_demo

    rows, info = run_demo(n=args.n, n_experts=args.experts, k=args.k, seed=args.seed)
    print(format_demo(rows, info))
    return 0 if info["certificate_ok"] else 1


# Subcommand modules: each defines ``add_parser(subparsers)`` that registers one subcommand
# and sets ``func``. Add one line per command here.
COMMANDS: list[str] = [
    "lfbtheory.cli.regret",
    "lfbtheory.cli.prove",
    "lfbtheory.cli.check",
    "lfbtheory.cli.bench",
    "lfbtheory.cli.sweep",
    "lfbtheory.cli.diagnose",
    "lfbtheory.cli.testbed",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lfb",
        description="lfbtheory: theory and verification of auxiliary-loss-free load balancing.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "demo", help="route one batch with/without bias vs its exact balanced optimum"
    )
    p.add_argument("--n", type=int, default=1024, help="tokens in the batch (default 1024)")
    p.add_argument("--experts", type=int, default=16, help="number of experts E (default 16)")
    p.add_argument("--k", type=int, default=2, help="experts per token (default 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=_demo)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (ValueError, TypeError) as exc:
        print(f"lfb {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
