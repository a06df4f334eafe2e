"""``lfb check MODULE:CALLABLE``: run the router conformance suite on any importable router.

CALLABLE (a dotted attribute path inside MODULE) may be a router object, a zero-argument
factory returning one (every parameter has a default), or a bare router function
``router(scores, state) -> (selection, state)``. Exit status 0 when no property fails, 1 when
any does (the failing properties are named), 2 for a bad specification.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from typing import Any

__all__ = ["add_parser", "load_router", "run_check"]


def load_router(spec: str) -> Any:
    """Import ``MODULE:CALLABLE`` and return the router (calling it if it is a factory)."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(
            "router must be given as MODULE:CALLABLE "
            f"(e.g. lfbtheory.testing.mutants:bf16_bias), got {spec!r}"
        )
    mod_name, attr = spec.split(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, let users name modules in the cwd
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {mod_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(
            f"{spec} is not callable (expected a router, a router factory or a router function)"
        )
    return _instantiate(obj)


def _instantiate(obj: Any) -> Any:
    from lfbtheory.testing.conformance import is_bias_router

    if is_bias_router(obj) and not inspect.isclass(obj):
        return obj
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return obj
    required = [
        p
        for p in sig.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if not required:  # a factory
        return obj()
    if inspect.isclass(obj):
        raise TypeError(
            f"{obj.__name__} needs constructor arguments {[p.name for p in required]}; "
            "point lfb check at a zero-argument factory instead"
        )
    return obj


def run_check(
    spec: str,
    *,
    only: list[str] | None = None,
    seed: int = 0,
    n_experts: int = 8,
    causality_examples: int = 100,
) -> tuple[int, str]:
    """(exit status, report text) of the suite on the router named by ``spec``."""
    from lfbtheory.testing.conformance import Config, run_conformance

    router = load_router(spec)
    cfg = Config(seed=seed, n_experts=n_experts, causality_examples=causality_examples)
    report = run_conformance(router, only=only, config=cfg, name=spec)
    return (0 if report.ok else 1), str(report)


def _cmd(args: argparse.Namespace) -> int:
    status, text = run_check(
        args.router,
        only=args.only,
        seed=args.seed,
        n_experts=args.experts,
        causality_examples=args.examples,
    )
    print(text)
    return status


def add_parser(subparsers: Any) -> None:
    """Register ``lfb check``."""
    p = subparsers.add_parser(
        "check",
        help="run the router conformance suite on MODULE:CALLABLE (exit 1 names failures)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "router", help="MODULE:CALLABLE, e.g. lfbtheory.testing.conformance:reference_router"
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="PROPERTY",
        help="run only this property (repeatable; default: all)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the generated instances (default 0)"
    )
    p.add_argument(
        "--experts",
        type=int,
        default=8,
        help="E for a bare router function without an n_experts attribute (default 8)",
    )
    p.add_argument(
        "--examples",
        type=int,
        default=100,
        help="Hypothesis examples for the causality search (default 100)",
    )
    p.set_defaults(func=_cmd)
