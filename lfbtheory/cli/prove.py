"""``lfb prove``: run the proofs in ``proofs/proof_*.py``, print each stated theorem with the
hypotheses its chain rests on, and (``--mutants``) run the mutation battery.

Each proof file states its claim in the first line of its module docstring and defines
``main()``, which derives every chain (the kernel in ``proofs/_certify.py`` raises on any step
that does not hold) and returns its ``Lemma``; ``derive()``, if present, is the symbolic part
alone. Each file is compiled with ``optimize=0``, so ``python -O`` cannot strip a proof's
``assert``s. A file passes when ``main()`` returns and every hypothesis status is honoured:

- ``checked: tests/x.py::test_y`` -- that test function exists in the checkout;
- ``cited: Lemma k (label)`` -- lemma k has a theorem with that label in this run, and it
  passed (a citation of a lemma outside the run is printed as not verified).

The mutation battery changes every numeric constant of every stated bound (halved, doubled)
and reverses every stated inequality; each mutant must fail. When the bound comes from a module
function that the derivation also calls, the file is re-derived with the function edited (as a
text edit of the file would do); otherwise the mutated statement is checked against the chain
directly, which is what the re-derivation would reach. It also mutates every step of every
chain the same way and re-runs the kernel's rules (a surviving step would be one that is not
really checked). The exit status is non-zero if any proof fails or any mutant survives.

``proofs/`` lives in the source checkout next to the package, so ``lfb prove`` needs an
editable install (``pip install -e .``) from a clone.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import io
import re
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from lfbtheory.cli._checkout import checkout_dir

__all__ = [
    "ProofResult",
    "TheoremLine",
    "MutationReport",
    "find_proofs_dir",
    "discover",
    "run_proof",
    "run_all",
    "mutation_battery",
    "add_parser",
]


@dataclass(frozen=True)
class TheoremLine:
    """One stated theorem: label, statement, and (name, status) of each hypothesis it rests on."""

    label: str
    statement: str
    hypotheses: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ProofResult:
    """One proof file's outcome: its claim (first docstring line), pass/fail, error, seconds,
    and its theorems."""

    name: str
    claim: str
    ok: bool
    error: str
    seconds: float
    theorems: tuple[TheoremLine, ...] = ()

    @property
    def lemma(self) -> str | None:
        """ "Lemma k" from the claim, or None."""
        m = re.match(r"(Lemma \d+)", self.claim)
        return m.group(1) if m else None


def find_proofs_dir(path: str | Path | None = None) -> Path:
    """The ``proofs/`` directory of the source checkout (or ``path``); see ``checkout_dir``."""
    return checkout_dir("proofs", path, "lfb prove")


def discover(proofs_dir: Path) -> list[Path]:
    """The proof files ``proof_*.py`` in ``proofs_dir``, sorted by name."""
    return sorted(p for p in proofs_dir.glob("proof_*.py") if p.is_file())


def _claim_of(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else "(no claim stated)"


def _load(path: Path) -> ModuleType:
    """Execute a proof file as a fresh module (compiled with optimize=0)."""
    spec = importlib.util.spec_from_file_location(f"_lfb_proof_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # optimize=0: ``assert`` statements of a proof file stay in force under ``python -O``
    # (the helpers in proofs/_certify.py raise explicit ProofErrors)
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec", optimize=0)
    exec(code, module.__dict__)
    return module


@contextlib.contextmanager
def _on_path(directory: Path):
    inserted = str(directory) not in sys.path
    if inserted:
        sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        if inserted:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(directory))


def _test_exists(root: Path, ref: str) -> bool:
    """The test function exists in ``root`` (the checkout of the proofs), or, for a copy of
    the proofs outside a checkout, in the checkout this package is installed from."""
    file, _, func = ref.partition("::")
    p = root / file
    if not (root / "tests").is_dir():
        p = Path(__file__).resolve().parents[2] / file
    if not p.is_file():
        return False
    tree = ast.parse(p.read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == func for n in ast.walk(tree))


def _theorem_lines(lem: Any, root: Path) -> tuple[TheoremLine, ...]:
    lines = []
    for th in lem.theorems:
        hyps = []
        for h in lem.hypotheses_of(th):
            if h.status.startswith("checked: "):
                ref = h.status[len("checked: ") :]
                if not ref.startswith("in this file") and not _test_exists(root, ref):
                    raise LookupError(
                        f"hypothesis {h.name!r} is checked by {ref}, which does not exist"
                    )
            hyps.append((h.name, h.status))
        for d in lem.definitions_of(th):
            hyps.append(("", f"defined: {d}"))
        stmt = th.statement() if th.lhs is not None else f"checked: {th.text}"
        lines.append(TheoremLine(th.label, stmt, tuple(hyps)))
    return tuple(lines)


def _where(exc: BaseException, path: Path) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return next(
        (
            f"{path.name}:{f.lineno}"
            for f in reversed(tb)
            if Path(f.filename).resolve() == path.resolve()
        ),
        "",
    )


def run_proof(path: Path) -> ProofResult:
    """Execute one proof file and run its ``main()``; any exception is a FAIL with its message."""
    claim = _claim_of(path)
    start = time.perf_counter()
    theorems: tuple[TheoremLine, ...] = ()
    try:
        with _on_path(path.parent), contextlib.redirect_stdout(io.StringIO()):
            module = _load(path)
            main = getattr(module, "main", None)
            if not callable(main):
                raise AttributeError(f"{path.name} defines no main()")
            lem = main()
        if lem is not None and hasattr(lem, "theorems"):
            theorems = _theorem_lines(lem, path.parent.parent)
        ok, error = True, ""
    except Exception as exc:  # a failing step of any kind is a failed proof
        ok = False
        where = _where(exc, path)
        error = f"{type(exc).__name__}: {exc}".strip() + (f" (at {where})" if where else "")
    return ProofResult(path.stem, claim, ok, error, time.perf_counter() - start, theorems)


def _verify_citations(results: list[ProofResult]) -> list[ProofResult]:
    """Fail a result whose cited theorem is missing or failed among ``results``; a citation of
    a lemma that is not in the run stays (printed as not verified)."""
    by_lemma = {r.lemma: r for r in results if r.lemma}
    out = []
    for r in results:
        problems = []
        for th in r.theorems:
            for name, status in th.hypotheses:
                if not status.startswith("cited: "):
                    continue
                ref = status[len("cited: ") :]
                m = re.match(r"(Lemma \d+) (\(.+)$", ref)
                if not m:
                    problems.append(f"{name}: malformed citation {ref!r}")
                    continue
                target = by_lemma.get(m.group(1))
                if target is None:
                    continue
                labels = {t.label for t in target.theorems}
                if not target.ok or m.group(2) not in labels:
                    problems.append(f"{name}: {ref} is not a passing theorem")
        if problems and r.ok:
            r = replace(r, ok=False, error="citation: " + "; ".join(sorted(set(problems))))
        out.append(r)
    return out


def run_all(proofs_dir: Path, only: str | None = None) -> list[ProofResult]:
    """Run every proof file (those whose name contains ``only``, if given)."""
    files = [p for p in discover(proofs_dir) if only is None or only in p.stem]
    return _verify_citations([run_proof(p) for p in files])


# ---------------------------------------------------------------- the mutation battery


@dataclass
class MutationReport:
    """Mutants killed / total per proof file, for theorem statements and for chain steps."""

    statements: dict[str, tuple[int, int]] = field(default_factory=dict)
    steps: dict[str, tuple[int, int]] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rederived: int = 0
    rederived_by: set[str] = field(default_factory=set)

    @property
    def killed(self) -> int:
        return sum(k for k, _ in self.statements.values()) + sum(k for k, _ in self.steps.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.statements.values()) + sum(t for _, t in self.steps.values())

    def score(self) -> str:
        pct = 100.0 * self.killed / self.total if self.total else float("nan")
        return f"{self.killed}/{self.total} ({pct:.1f}%)"


def _derive(module: ModuleType):
    fn = getattr(module, "derive", None) or module.main
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def _derive_counting(module: ModuleType) -> tuple[Any, dict[str, int]]:
    """Derive once with every function of the module wrapped by a call counter, so the battery
    knows which bound functions the derivation calls outside theorem statements."""
    counts: dict[str, int] = {}
    originals = {
        name: f
        for name, f in vars(module).items()
        if callable(f)
        and getattr(f, "__module__", None) == module.__name__
        and name not in ("derive", "main")
        and not isinstance(f, type)
    }

    def counting(n):
        def f(*a, **kw):
            counts[n] = counts.get(n, 0) + 1
            return originals[n](*a, **kw)

        f.__name__ = n
        return f

    try:
        for n in originals:
            setattr(module, n, counting(n))
        lem = _derive(module)
    finally:
        for n, f in originals.items():
            setattr(module, n, f)
    return lem, counts


def _statement_battery(
    module: ModuleType, lem: Any, calls: dict[str, int], report: MutationReport, name: str
) -> None:
    """Every stated theorem mutated against its chain; and every bound function the derivation
    also calls elsewhere edited in the module (each constant halved and doubled) and the file
    re-derived, as a text edit would be."""
    from _certify import ProofError, number_mutants, statement_mutants

    killed = total = 0
    for th in lem.theorems:
        if th.lhs is None:
            continue
        for desc, lhs, rel, rhs in statement_mutants(th):
            total += 1
            try:
                lem.check_theorem(replace(th, lhs=lhs, rel=rel, rhs=rhs))
                report.survivors.append(f"{name} {th.label}: {desc}")
            except ProofError:
                killed += 1
    bounds = {b for th in lem.theorems for b in th.bound}
    in_statements = {
        b[0]: sum(1 for th in lem.theorems for c in th.bound if c[0] == b[0]) for b in bounds
    }
    for fn_name, args in sorted(bounds, key=str):
        if calls.get(fn_name, 0) <= in_statements[fn_name]:
            continue  # used only in statements: the mutants above are what a re-derivation meets
        original = getattr(module, fn_name)
        for desc, mutated in number_mutants(original(*args)):
            total += 1

            def edited(*a, _o=original, _args=args, _m=mutated, **kw):
                return _m if a == _args and not kw else _o(*a, **kw)

            setattr(module, fn_name, edited)
            report.rederived += 1
            report.rederived_by.add(f"{name}:{fn_name}")
            try:
                _derive(module)
                report.survivors.append(f"{name} {fn_name}{args}: {desc} (re-derived)")
            except Exception:  # any failure of the file is a kill, as in lfb prove
                killed += 1
            finally:
                setattr(module, fn_name, original)
    report.statements[name] = (killed, total)


def mutation_battery(
    proofs_dir: Path, only: str | None = None, *, steps: bool = True, per_step: int | None = None
) -> MutationReport:
    """Mutate every stated bound (and, with ``steps``, every step of every chain; at most
    ``per_step`` mutants of each step, the reversal and a spread over its constants, if given)
    of every proof file and count the mutants the kernel rejects."""
    report = MutationReport()
    with _on_path(proofs_dir):
        from _certify import step_mutants

        for path in discover(proofs_dir):
            if only is not None and only not in path.stem:
                continue
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    module = _load(path)
                lem, calls = _derive_counting(module)
            except Exception as exc:  # a failing proof has no chain to mutate: reported
                report.errors.append(f"{path.stem}: {type(exc).__name__}: {exc}")
                continue
            if lem is None or not hasattr(lem, "theorems"):
                continue
            _statement_battery(module, lem, calls, report, path.stem)
            if steps:
                sm = step_mutants(lem, per_step)
                report.steps[path.stem] = (sm.killed, sm.total)
                report.survivors.extend(f"{path.stem} {s}" for s in sm.survivors)
    return report


# ---------------------------------------------------------------- the command


def _print_result(r: ProofResult, quiet: bool, verbose: bool = False) -> None:
    status = "PASS" if r.ok else "FAIL"
    print(f"{status}  {r.name:<32} {r.claim}  [{r.seconds:.1f}s]")
    if not r.ok:
        print(f"      {r.error}")
        return
    if quiet:
        return
    if not r.theorems:
        print("      (no theorem stated)")
    for th in r.theorems:
        print(f"      {th.label}: {th.statement}")
        groups: dict[str, list[str]] = {}
        for name, status in th.hypotheses:
            kind, _, detail = status.partition(": ")
            if kind == "defined" and not verbose:
                continue
            short = kind in ("assumed", "defined")
            groups.setdefault(kind, []).append(
                detail if kind == "defined" else name if short else f"{name} ({detail})"
            )
        if groups:
            parts = [f"{k}: {', '.join(v)}" for k, v in groups.items()]
            print(f"          rests on -- {'; '.join(parts)}")


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
        _print_result(r, args.quiet, args.verbose)
    passed = sum(r.ok for r in results)
    n_th = sum(len(r.theorems) for r in results)
    print(f"\n{passed}/{len(results)} proofs pass ({n_th} theorems)")
    code = 0 if passed == len(results) else 1
    if args.mutants:
        rep = mutation_battery(proofs_dir, args.only)
        for name in rep.statements:
            ks, ts = rep.statements[name]
            kp, tp = rep.steps.get(name, (0, 0))
            print(f"mutants  {name:<32} statements {ks}/{ts}, chain steps {kp}/{tp}")
        for s in rep.survivors:
            print(f"SURVIVED {s}")
        for e in rep.errors:
            print(f"NOT MUTATED (the proof fails) {e}")
        print(f"mutation score: {rep.score()} (re-derived with an edited bound: {rep.rederived})")
        if rep.killed != rep.total or rep.errors:
            code = 1
    return code


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``lfb prove``."""
    p = subparsers.add_parser(
        "prove", help="run the proofs in proofs/, print each theorem and what it rests on"
    )
    p.add_argument("--dir", default=None, help="proofs directory (default: <repo>/proofs)")
    p.add_argument("--only", default=None, help="run only proof files whose name contains this")
    p.add_argument("--quiet", action="store_true", help="one line per proof file")
    p.add_argument(
        "--verbose", action="store_true", help="also print the definitions each theorem uses"
    )
    p.add_argument(
        "--mutants",
        action="store_true",
        help="also run the mutation battery (every bound constant halved and doubled, every "
        "inequality reversed, every chain step mutated) and print the mutation score",
    )
    p.set_defaults(func=_cmd)
