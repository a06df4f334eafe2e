"""``lfb prove``: run every sympy-checked proof in ``proofs/proof_*.py`` and report each claim.

Each proof file states its claim in the first line of its module docstring and defines
``main()``, which checks every step of the proof (it raises if any step is wrong). Each file
is compiled with ``optimize=0``, so ``python -O`` cannot strip a proof's ``assert``s. The runner
imports each file, runs ``main()``, and prints the claim with PASS or FAIL; the exit status is
non-zero if any proof fails. ``proofs/`` lives in the source checkout next to the package, so
``lfb prove`` needs an editable install (``pip install -e .``) from a clone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from lfbtheory.cli._checkout import checkout_dir

__all__ = ["ProofResult", "find_proofs_dir", "discover", "run_proof", "run_all", "add_parser"]


@dataclass(frozen=True)
class ProofResult:
    """One proof file's outcome: its claim (first docstring line), pass/fail, error, seconds."""

    name: str
    claim: str
    ok: bool
    error: str
    seconds: float


def find_proofs_dir(path: str | Path | None = None) -> Path:
    """The ``proofs/`` directory of the source checkout (or ``path``); see ``checkout_dir``."""
    return checkout_dir("proofs", path, "lfb prove")


def discover(proofs_dir: Path) -> list[Path]:
    """The proof files ``proof_*.py`` in ``proofs_dir``, sorted by name."""
    return sorted(p for p in proofs_dir.glob("proof_*.py") if p.is_file())


def _claim_of(path: Path) -> str:
    import ast

    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = doc.strip().splitlines()[0].strip() if doc.strip() else "(no claim stated)"
    return first


def run_proof(path: Path) -> ProofResult:
    """Import one proof file and run its ``main()``; any exception is a FAIL with its message."""
    claim = _claim_of(path)
    start = time.perf_counter()
    inserted = str(path.parent) not in sys.path
    if inserted:
        sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"_lfb_proof_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        # compiled with optimize=0: ``assert`` statements of a proof file stay in force under
        # ``python -O`` (the helpers in proofs/_certify.py raise explicit ProofErrors)
        code = compile(path.read_text(encoding="utf-8"), str(path), "exec", optimize=0)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(code, module.__dict__)
            main = getattr(module, "main", None)
            if not callable(main):
                raise AttributeError(f"{path.name} defines no main()")
            main()
        ok, error = True, ""
    except Exception as exc:  # a failing step of any kind is a failed proof
        ok = False
        tb = traceback.extract_tb(exc.__traceback__)
        # report the failing line of the proof file itself (not of a helper it calls)
        where = next(
            (
                f"{path.name}:{f.lineno}"
                for f in reversed(tb)
                if Path(f.filename).resolve() == path.resolve()
            ),
            "",
        )
        error = f"{type(exc).__name__}: {exc}".strip() + (f" (at {where})" if where else "")
    finally:
        if inserted:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(path.parent))
    return ProofResult(path.stem, claim, ok, error, time.perf_counter() - start)


def run_all(proofs_dir: Path, only: str | None = None) -> list[ProofResult]:
    """Run every proof file (those whose name contains ``only``, if given)."""
    files = [p for p in discover(proofs_dir) if only is None or only in p.stem]
    return [run_proof(p) for p in files]


def _cmd(args: argparse.Namespace) -> int:
    try:
        proofs_dir = find_proofs_dir(args.dir)
    except FileNotFoundError as exc:
        print(f"lfb prove: error: {exc}", file=sys.stderr)
        return 2
    results = run_all(proofs_dir, args.only)
    if not results:
        print(
            f"lfb prove: error: no proof_*.py files in {proofs_dir}"
            + (f" matching {args.only!r}" if args.only else ""),
            file=sys.stderr,
        )
        return 2
    for r in results:
        status = "PASS" if r.ok else "FAIL"
        print(f"{status}  {r.name:<32} {r.claim}  [{r.seconds:.1f}s]")
        if not r.ok:
            print(f"      {r.error}")
    passed = sum(r.ok for r in results)
    print(f"\n{passed}/{len(results)} proofs pass")
    return 0 if passed == len(results) else 1


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``lfb prove``."""
    p = subparsers.add_parser(
        "prove", help="run the sympy-checked proofs in proofs/ and report each claim"
    )
    p.add_argument("--dir", default=None, help="proofs directory (default: <repo>/proofs)")
    p.add_argument("--only", default=None, help="run only proof files whose name contains this")
    p.set_defaults(func=_cmd)
