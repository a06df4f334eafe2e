"""``lfb check MODULE:CALLABLE``: run the router conformance suite on any importable router.

CALLABLE (a dotted attribute path inside MODULE) may be a router object, a zero-argument
factory returning one (every parameter has a default), or a bare router function
``router(scores, state) -> (selection, state)``; wrap torch routers with
``lfbtheory.adapters.torch.from_torch``.

The report lists every property as PASS, FAIL, SKIP (it applies to this kind of router but a
capability is missing, with the reason) or N/A (it does not apply to the router's declared
design), and under each property that ran, whose code it exercised: the router's own methods,
or -- for a torch module wrapped by ``from_torch`` -- "your module's forward" versus the
adapter's counting and update (an inference-only gate such as a Hugging Face router has no
update of its own; with ``update="rule"`` the report says the adapter applied the declared
rule). Exit status: 0 when no property failed and coverage is complete; 1 when a property
failed, when a router with a bias was not checked by every bias property (coverage gap:
gate_weights_bias_free, bias_shift_invariance, steering_monotonicity, steering_factor, and
selected_in_selected_groups if group-limited, closed_loop_balance if it has a training
lifecycle), when the adapter could not read or measure the router's design (the message names
the keyword that supplies it), or, with --strict, when any property was skipped for a missing
capability; 2 for a bad specification or a module that cannot be imported. --json prints the
report as JSON (same exit status; each result carries "exercised").
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
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
    except Exception as exc:  # noqa: BLE001 -- user code failing at import: report, no traceback
        raise ValueError(
            f"importing module {mod_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
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
        try:
            return obj()
        except Exception as exc:  # noqa: BLE001 -- a failing factory: report, no traceback
            raise ValueError(
                f"calling the factory {getattr(obj, '__name__', obj)!r} raised "
                f"{type(exc).__name__}: {exc}"
            ) from None
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
    strict: bool = False,
    as_json: bool = False,
) -> tuple[int, str]:
    """(exit status, report text or JSON) of the suite on the router named by ``spec``."""
    from lfbtheory.testing.conformance import Config, run_conformance

    router = load_router(spec)
    cfg = Config(seed=seed, n_experts=n_experts, causality_examples=causality_examples)
    how = getattr(router, "describe", None)  # torch adapters say how they feed the router
    name = f"{spec} [{how()}]" if callable(how) and not inspect.isclass(router) else spec
    report = run_conformance(router, only=only, config=cfg, name=name)
    status = 0 if (report.strict_ok if strict else report.ok) else 1
    if as_json:
        return status, json.dumps(dict(report.to_dict(), strict=strict, exit=status), indent=1)
    text = str(report)
    if strict and report.missing and not report.failed:
        text += "\nSTRICT: properties skipped for a missing capability: " + ", ".join(
            report.missing
        )
    elif report.missing:
        text += (
            f"\nnote: {len(report.missing)} properties could not run (see SKIP above); "
            "--strict makes that an error"
        )
    return status, text


def _cmd(args: argparse.Namespace) -> int:
    status, text = run_check(
        args.router,
        only=args.only,
        seed=args.seed,
        n_experts=args.experts,
        causality_examples=args.examples,
        strict=args.strict,
        as_json=args.json,
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
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 also when a property was skipped for a missing capability",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    p.set_defaults(func=_cmd)
