"""The proof kernel of ``proofs/``: facts, the rules that derive them, and stated theorems.

A proof file builds one :class:`Lemma` and derives :class:`Fact` s, each a relation
``lhs <= rhs``, ``lhs < rhs`` or ``lhs == rhs`` between sympy expressions, by one of a few rules.
Every derived fact records the facts it uses, so a theorem is a chain that ends in its stated
bound and starts from named hypotheses, never from prose:

- ``hypothesis`` (a named assumption with a status: ``assumed``, ``checked`` by a named test, or
  ``cited`` from another lemma; its name must be defined in the docstring's "Hypotheses"
  paragraph), ``define`` / ``sequence_recursion`` (a fresh symbol or sequence and its
  definition) and ``slack`` (a fresh non-negative symbol for an expression whose sign a fact
  proves);
- ``certify`` (the one inference rule): ``rhs - lhs == sum(m_j * (rhs_j - lhs_j)) + sum(terms)``
  as an identity, where each used fact j is an inequality with a multiplier m_j that is
  manifestly >= 0 or an equality with any multiplier, and each term is manifestly >= 0;
  ``subs`` may rewrite a symbol by an equality fact first. ``identity`` is the case with no
  inequality;
- ``instance`` (a fact holds for all values of a universally quantified symbol: substitute one
  that respects its sign, if no hypothesis or definition it rests on fixes the symbol);
- ``induction`` over an index T >= 1 (a base case at T = 1 and a step that uses the induction
  hypothesis at T to prove the statement at T + 1), and ``monotone`` (f(0+) = 0 and f' >= 0
  certified on x > 0 give f >= 0 there);
- ``checked`` (a finite, exact check in the file: an exhaustive enumeration or a computation on
  the package), which carries a sentence, not a formula.

``theorem(label, fact, lhs, rel, rhs)`` states a claim: the fact must be closed (no open
induction hypothesis) and its relation must BE the stated one (same relation, lhs and rhs equal
as expressions): a weaker or stronger bound than the one derived fails, so the printed bound is
exactly the derived one. ``lfb prove`` prints each theorem with the hypotheses its chain rests
on and their status.

An identity is checked by expansion, ``cancel`` and ``simplify`` (after a numeric probe at two
rational points, which can only reject). An inequality is never checked by asking sympy about
the sign of an expression: :func:`is_nonneg` inspects the expression tree (products and sums of
non-negative numbers, registered non-negative symbols and sequences, even powers, ``exp``,
``Abs``), so a symbol counts as non-negative only if the lemma registered it with its meaning.
Every failure raises :class:`ProofError` (never ``assert``), so ``python -O`` cannot skip one.

Each derived fact keeps its justification, so the mutation battery (``mutants``) can change any
constant of any statement, or reverse any inequality, and re-run the rule: a mutant that still
passes is a step that is not really checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import mpmath
import sympy as sp
from sympy.core.function import AppliedUndef

__all__ = [
    "ProofError",
    "Fact",
    "Theorem",
    "Lemma",
    "assumed",
    "checked",
    "cited",
    "is_nonneg",
    "is_pos",
    "identity",
    "check",
    "number_mutants",
]

RELATIONS = ("<=", "<", "==")


class ProofError(Exception):
    """A step of a proof failed (an identity, a certificate, a rule's side condition)."""


def _fail(message: str) -> None:
    raise ProofError(message)


# ------------------------------------------------------------------- statuses of hypotheses


def assumed(why: str) -> str:
    """Status of a hypothesis the claim assumes (printed with the claim)."""
    if not why.strip():
        _fail("assumed() needs the reason the claim may assume it")
    return f"assumed: {why.strip()}"


def checked(test: str | Fact) -> str:
    """Status of a hypothesis checked numerically: by a named test, ``tests/x.py::test_y``
    (``lfb prove`` checks that the test exists), or by a ``checked`` fact of this lemma (an
    exhaustive or exact check run in the proof file)."""
    if isinstance(test, Fact):
        if test.rule != "checked":
            _fail(f"checked(): {test.name!r} is not a checked fact")
        return f"checked: in this file, {test.name!r}"
    if "::" not in test or not test.split("::")[0].endswith(".py"):
        _fail(f"checked() takes 'tests/file.py::test_name' or a checked Fact, got {test!r}")
    return f"checked: {test.strip()}"


def cited(ref: str) -> str:
    """Status of a hypothesis proved by another lemma's theorem, ``"Lemma 7 (a)"`` (``lfb prove``
    checks that the theorem exists and passes)."""
    if not ref.startswith("Lemma "):
        _fail(f"cited() takes 'Lemma N (label)', got {ref!r}")
    return f"cited: {ref.strip()}"


# ------------------------------------------------------------------- structural signs


def _is_even_integer(e: sp.Expr) -> bool:
    return bool(e.is_Integer and int(e) % 2 == 0)


def _sign_of(expr: sp.Expr, registered: dict | None) -> str:
    """'pos', 'nonneg' or '' for a registered symbol or an applied registered sequence."""
    if registered is None:
        return ""
    if isinstance(expr, AppliedUndef):
        return registered.get(expr.func, "")
    return registered.get(expr, "")


def is_nonneg(expr: sp.Expr, registered: dict | None = None) -> bool:
    """Structural test: ``expr`` is built from non-negative pieces only (see module docstring).

    ``registered`` maps the symbols (and sequence heads) a lemma declared to 'pos' or 'nonneg';
    any other symbol is of unknown sign (even one created with ``nonnegative=True``)."""
    expr = sp.sympify(expr)
    if expr.is_Number:
        return bool(expr >= 0)
    if expr.is_number and not expr.free_symbols:  # a closed constant such as log(2) or sqrt(2)
        return expr.is_nonnegative is True
    if expr.is_Symbol or isinstance(expr, AppliedUndef):
        return _sign_of(expr, registered) in ("pos", "nonneg")
    if expr.is_Add or expr.is_Mul:
        return all(is_nonneg(a, registered) for a in expr.args)
    if expr.is_Pow:
        base, ex = expr.args
        if _is_even_integer(ex) and base.is_real:
            return True
        if ex.is_negative or not ex.is_Integer:
            return is_pos(base, registered) and bool(ex.is_real)
        return is_nonneg(base, registered)
    if isinstance(expr, sp.exp):
        return bool(expr.args[0].is_real)
    if isinstance(expr, sp.Abs):
        return True
    return False


def is_pos(expr: sp.Expr, registered: dict | None = None) -> bool:
    """Structural test: ``expr`` is built from positive pieces (a sum needs one positive term)."""
    expr = sp.sympify(expr)
    if expr.is_Number:
        return bool(expr > 0)
    if expr.is_number and not expr.free_symbols:
        return expr.is_positive is True
    if expr.is_Symbol or isinstance(expr, AppliedUndef):
        return _sign_of(expr, registered) == "pos"
    if expr.is_Add:
        return all(is_nonneg(a, registered) for a in expr.args) and any(
            is_pos(a, registered) for a in expr.args
        )
    if expr.is_Mul:
        return all(is_pos(a, registered) for a in expr.args)
    if expr.is_Pow:
        base, ex = expr.args
        return is_pos(base, registered) and bool(ex.is_real)
    if isinstance(expr, sp.exp):
        return bool(expr.args[0].is_real)
    return False


# ------------------------------------------------------------------- zero test


def _probe_values(e: sp.Expr, salt: int) -> dict:
    """Deterministic sample point (40-digit floats; integers for integer symbols) for the free
    symbols of ``e``."""
    vals = {}
    for s in sorted(e.free_symbols, key=str):
        h = int(hashlib.sha256(f"{s}:{salt}".encode()).hexdigest()[:8], 16)
        if s.is_integer:
            vals[s] = sp.Integer(2 + h % 7)
        else:
            vals[s] = sp.Float(sp.Rational(7 + h % 31, 3 + (h >> 8) % 11), 40)
    return vals


def _probe(e: sp.Expr) -> str:
    """'nonzero' if e is certainly not identically zero (real, finite, clearly non-zero at a
    rational sample point), 'zero' if it is real and ~0 at both sample points, else 'unknown'."""
    apps = sorted(e.atoms(AppliedUndef), key=str)
    if apps:
        e = e.xreplace({a: sp.Dummy(f"app{i}", real=True) for i, a in enumerate(apps)})
    small = 0
    for salt in (1, 2, 3, 4):
        vals = _probe_values(e, salt)
        try:
            with mpmath.workdps(40):
                v = sp.N(e.xreplace(vals) if vals else e, 35)
        except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
            return "unknown"
        if not v.is_Number or v.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or not v.is_real:
            return "unknown"
        if abs(float(v)) > 1e-18:
            return "nonzero"
        small += 1
        if salt == 2 and not e.has(sp.Max, sp.Min, sp.Abs, sp.sign):
            return "zero"  # smooth: two points suffice as evidence; piecewise needs four
    return "zero" if small == 4 else "unknown"


def _zero(expr: sp.Expr) -> bool:
    """Is ``expr`` identically zero? Only a successful simplification says yes; a sympy error
    inside a simplification counts as "not shown" (never as zero)."""
    e = sp.sympify(expr)
    if e == 0:
        return True
    probe = _probe(e)
    if probe == "nonzero":
        return False
    steps = [
        lambda x: sp.expand(x),
        lambda x: sp.cancel(sp.together(sp.expand(x))),
        lambda x: sp.simplify(sp.expand(x)),
    ]
    if probe == "zero":
        # the log rules with force=True assume positive arguments; used only when the
        # expression vanishes numerically at the (positive) sample points
        steps += [
            lambda x: sp.simplify(sp.expand_log(sp.expand(x, force=True), force=True)),
            lambda x: sp.simplify(sp.logcombine(x, force=True)),
        ]
    for step in steps:
        try:
            if step(e) == 0:
                return True
        except Exception:  # sympy failed to simplify: not shown to be zero
            continue
    return False


def _short(e: sp.Expr, limit: int = 60) -> str:
    """``e`` as text for an error message, or its size when printing it would be slow."""
    e = sp.sympify(e)
    n = sum(1 for _ in zip(range(limit), sp.preorder_traversal(e), strict=False))
    return sp.sstr(e) if n < limit else f"(an expression of more than {limit} nodes)"


def identity(lhs: sp.Expr, rhs: sp.Expr, what: str) -> None:
    """Check the identity lhs == rhs outside a chain; ProofError if it fails."""
    if not _zero(sp.sympify(lhs) - sp.sympify(rhs)):
        _fail(f"identity fails: {what}: {lhs} != {rhs}")


def check(condition: object, what: str) -> None:
    """Check a finite (exhaustive or numeric-exact) fact; ProofError with ``what`` if false."""
    if not bool(condition):
        _fail(f"check fails: {what}")


# ------------------------------------------------------------------- facts and theorems


@dataclass(frozen=True)
class Fact:
    """``lhs rel rhs`` (rel in "<=", "<", "==") with the rule that derived it.

    uses: names of the facts the rule used; status: of a hypothesis ("assumed: ...",
    "checked: tests/...::test", "cited: Lemma k (x)"); open: induction hypotheses it still rests
    on; just: the rule's data (multipliers, terms, substitutions), for re-checking."""

    name: str
    lhs: sp.Expr
    rel: str
    rhs: sp.Expr
    rule: str
    uses: tuple[str, ...] = ()
    status: str = ""
    open: frozenset[str] = frozenset()
    just: tuple = ()
    text: str = ""
    premise: tuple | None = None  # (lhs, rel, rhs) of an implication "premise => this"

    def __str__(self) -> str:
        if self.rule == "checked":
            return self.text
        return f"{sp.sstr(self.lhs)} {self.rel} {sp.sstr(self.rhs)}"

    @property
    def gap(self) -> sp.Expr:
        """rhs - lhs (>= 0, > 0 or == 0 by the relation)."""
        return self.rhs - self.lhs


@dataclass(frozen=True)
class Theorem:
    """A stated claim and the closed fact that proves it (or, for a checked claim, its
    sentence). bound: (function name, args) of each module function the statement is built
    from."""

    label: str
    fact: str
    lhs: sp.Expr | None
    rel: str
    rhs: sp.Expr | None
    text: str = ""
    bound: tuple[tuple[str, tuple], ...] = ()

    def statement(self) -> str:
        if self.lhs is None or self.text:
            return self.text
        return f"{sp.sstr(self.lhs)} {self.rel} {sp.sstr(self.rhs)}"


def _rel(rel: str) -> str:
    if rel not in RELATIONS:
        _fail(f"relation must be one of {RELATIONS}, got {rel!r}")
    return rel


def _is_index_expr(img: sp.Expr, indices: set) -> bool:
    """A positive integer literal, or index + a non-negative integer."""
    img = sp.sympify(img)
    if img.is_Integer:
        return int(img) >= 1
    for s in img.free_symbols & indices:
        off = sp.simplify(img - s)
        if off.is_Integer and int(off) >= 0:
            return True
    return False


class Lemma:
    """The ledger of one lemma: declarations, derived facts and stated theorems.

    ``Lemma(__doc__)`` in a proof file, then ``var`` / ``index`` / ``sequence`` declare the
    setting, ``hypothesis`` / ``define`` / ``slack`` what the proof rests on, the rules derive
    facts and ``theorem`` states the claims (module docstring)."""

    def __init__(self, doc: str | None) -> None:
        if not doc or not doc.strip():
            _fail("a Lemma needs its docstring (the claim names its hypotheses)")
        self.doc = doc
        self.facts: dict[str, Fact] = {}
        self.theorems: list[Theorem] = []
        self._sign: dict = {}
        self._index: set[sp.Symbol] = set()
        self._vars: list[tuple[str, str]] = []
        self._defined: set = set()
        self._coords: set = set()
        self._sums: dict = {}
        self._sets: dict = {}
        self._coord_set: dict = {}
        self._sign_by: dict = {}

    # -- declarations --------------------------------------------------------------------
    def var(self, names: str, meaning: str, *, positive: bool = False, **assumptions: bool):
        """Domain variables that are non-negative (or positive) by the claim's setting, e.g.
        loads or step sizes: ``var("c0:4", "loads (token counts)")``. Returns like
        ``sp.symbols``."""
        if not meaning.strip():
            _fail(f"var({names!r}) needs the meaning that makes it non-negative")
        kw = {"positive": True} if positive else {"nonnegative": True}
        syms = sp.symbols(names, real=True, **kw, **assumptions)
        for s in syms if isinstance(syms, tuple) else (syms,):
            self._sign[s] = "pos" if positive else "nonneg"
        self._vars.append((names, meaning))
        return syms

    def assume(self, *syms: sp.Symbol, meaning: str) -> None:
        """Register existing symbols (created with ``positive=True``/``nonnegative=True``) as
        domain variables, with the meaning that makes them non-negative."""
        if not meaning.strip():
            _fail("assume() needs the meaning that makes the symbols non-negative")
        for s in syms:
            if not isinstance(s, sp.Symbol):
                _fail(f"assume() takes symbols, got {s!r}")
            if s.is_positive:
                self._sign[s] = "pos"
            elif s.is_nonnegative:
                self._sign[s] = "nonneg"
            else:
                _fail(f"assume(): {s} was not created non-negative")
            self._vars.append((str(s), meaning))

    def index(self, name: str | sp.Symbol, meaning: str) -> sp.Symbol:
        """A universally quantified index t >= 1 (a positive integer): facts hold for every t,
        ``instance`` may set it to another index expression, ``induction`` runs over it."""
        s = name if isinstance(name, sp.Symbol) else sp.Symbol(name, positive=True, integer=True)
        if not (s.is_positive and s.is_integer):
            _fail(f"index {s} must be created positive=True, integer=True")
        self.assume(s, meaning=meaning)
        self._index.add(s)
        return s

    def sequence(self, name: str, meaning: str, sign: str = "real"):
        """A sequence a(t) (an undefined function), of sign 'real', 'nonneg' or 'pos' for every
        argument (e.g. squared distances, step sizes)."""
        if sign not in ("real", "nonneg", "pos"):
            _fail(f"sequence sign must be real, nonneg or pos, got {sign!r}")
        kw = (
            {"positive": True}
            if sign == "pos"
            else {"nonnegative": True}
            if sign == "nonneg"
            else {}
        )
        f = sp.Function(name, real=True, **kw)
        if sign != "real":
            self._sign[f] = sign
        self._vars.append((f"{name}(t)", meaning))
        return f

    def coordinate_set(self, name: str, size: sp.Expr) -> None:
        """A named set of coordinates of the given size (e.g. a top-k set S of size k)."""
        if name in self._sets:
            _fail(f"coordinate set {name!r} declared twice")
        self._sets[name] = sp.sympify(size)

    def coordinate(
        self, name: str, meaning: str, sign: str = "real", *, indexed: bool = True, over: str = ""
    ):
        """A per-coordinate quantity x_i (or x_i(t) if ``indexed``): a fact that mentions it
        holds for each coordinate i (of the set ``over``, if named), and :meth:`summed` adds
        such a fact over the coordinates."""
        if over and over not in self._sets:
            _fail(f"coordinate {name!r}: no coordinate set {over!r}")
        if indexed:
            head = self.sequence(name, meaning, sign)
        else:
            kw = {"positive": True} if sign == "pos" else {}
            kw = {"nonnegative": True} if sign == "nonneg" else kw
            head = sp.Symbol(name, real=True, **kw)
            if sign != "real":
                self._sign[head] = sign
            self._vars.append((name, meaning))
        self._coords.add(head)
        self._coord_set[head] = over
        return head

    def sum_of(self, total, pattern: sp.Expr, t: sp.Symbol | None = None) -> None:
        """Register ``total`` (a symbol, or a sequence head with index ``t``) as the sum over
        the coordinates of ``pattern`` (an expression in coordinates): total(t) = sum_i
        pattern_i(t) for every t. Only :meth:`summed` uses it."""
        if total in self._sums:
            _fail(f"sum_of: {total} is already the sum of {self._sums[total][0]}")
        self._fresh(f"sum_of {total}", total)
        self._sums[total] = (sp.sympify(pattern), t)

    def _is_coord_atom(self, a) -> bool:
        return a in self._coords or (isinstance(a, AppliedUndef) and a.func in self._coords)

    def _coord_atoms(self, e: sp.Expr) -> set:
        e = sp.sympify(e)
        atoms = {a for a in e.free_symbols if a in self._coords}
        return atoms | {a for a in e.atoms(AppliedUndef) if a.func in self._coords}

    def _sum_expr(self, e: sp.Expr, mapping: dict, count: sp.Expr) -> sp.Expr:
        """sum_i e_i for a per-coordinate expression e, by linearity: a term c * key (c free of
        coordinates, key one of ``mapping`` as written) becomes c * (the key's sum), a
        coordinate-free term c becomes count * c. The whole of e is tried first, then its terms
        as written, then the terms of its expansion."""
        e = sp.sympify(e)

        def match(term):
            atoms = self._coord_atoms(term)
            if not atoms:
                return count * term
            coef, dep = term.as_independent(*atoms, as_Add=False)
            for key in mapping:
                if dep == key:
                    return coef * mapping[key]
                key_atoms = self._coord_atoms(key)
                kc, kd = sp.sympify(key).as_independent(*key_atoms, as_Add=False)
                if kc == 0:
                    continue
                if kd == dep:
                    return coef / kc * mapping[key]
                if not dep.is_Add:  # the same product up to a constant factor (a sign, ...)
                    ratio = sp.cancel(dep / kd)
                    if not self._coord_atoms(ratio):
                        return coef * ratio / kc * mapping[key]
            return None

        whole = match(e)
        if whole is not None:
            return whole
        for form in (e, sp.expand(e)):
            parts = [match(t) for t in sp.Add.make_args(form)]
            if all(p is not None for p in parts):
                return sum(parts, sp.Integer(0))
        _fail(
            f"summed: {e} is not a linear combination of {list(mapping)} and coordinate-free terms"
        )
        return e

    def summed(self, name: str, fact: Fact | str, mapping: dict, count: sp.Expr) -> Fact:
        """Sum a per-coordinate fact over the ``count`` coordinates: each key of ``mapping``
        (an expression in coordinates) becomes the registered sum it maps to (checked against
        :meth:`sum_of`), a coordinate-free term c becomes count * c; the relation is kept."""
        src = self._get(fact)
        if src.rule == "checked" or src.open:
            _fail(f"summed {name!r}: {src.name!r} is not a closed formula")
        atoms = self._coord_atoms(src.lhs) | self._coord_atoms(src.rhs)
        for key in mapping:
            atoms |= self._coord_atoms(key)
        heads = {a.func if isinstance(a, AppliedUndef) else a for a in atoms}
        sets = {self._coord_set[h] for h in heads}
        if len(sets) > 1:
            _fail(f"summed {name!r}: coordinates of different sets {sorted(sets)}")
        (cset,) = sets or {""}
        if cset and not _zero(self._sets[cset] - sp.sympify(count)):
            _fail(
                f"summed {name!r}: the set {cset!r} has {self._sets[cset]} coordinates, not {count}"
            )
        for key, total in mapping.items():
            head = total.func if isinstance(total, AppliedUndef) else total
            if head not in self._sums:
                _fail(f"summed {name!r}: {total} is not registered with sum_of")
            pattern, t = self._sums[head]
            expect = pattern if t is None else pattern.subs(t, total.args[0])
            if not _zero(sp.sympify(key) - expect):
                _fail(f"summed {name!r}: {total} is the sum of {expect}, not of {key}")
        lhs = self._sum_expr(src.lhs, mapping, count)
        rhs = self._sum_expr(src.rhs, mapping, count)
        just = (tuple(mapping.items()), sp.sympify(count))
        return self._add(Fact(name, lhs, src.rel, rhs, "summed", (src.name,), just=just))

    # -- the store -----------------------------------------------------------------------
    def _get(self, ref: Fact | str) -> Fact:
        name = ref.name if isinstance(ref, Fact) else ref
        if name not in self.facts:
            known = ", ".join(sorted(self.facts)[:12]) or "none"
            _fail(f"{name!r} is not a fact of this lemma (known: {known}, ...)")
        return self.facts[name]

    def _add(self, fact: Fact) -> Fact:
        if fact.name in self.facts:
            _fail(f"fact {fact.name!r} declared twice")
        self.facts[fact.name] = fact
        return fact

    def _hypotheses_paragraph(self) -> str:
        for para in self.doc.split("\n\n"):
            if para.strip().startswith("Hypotheses"):
                return para
        return ""

    def _named_in_doc(self, name: str) -> None:
        """``name`` is ``tag`` or ``tag [instance]``; the docstring's "Hypotheses" paragraph
        must define ``tag:``."""
        tag = name.split(" [")[0].strip()
        if not tag or f"{tag}:" not in self._hypotheses_paragraph():
            _fail(
                f"hypothesis {name!r} is not named in the lemma's docstring (as '{tag}:' in "
                "its Hypotheses paragraph)"
            )

    def _symbols_of(self, *exprs: sp.Expr) -> set:
        out = set()
        for e in exprs:
            e = sp.sympify(e)
            out |= e.free_symbols
            out |= {a.func for a in e.atoms(AppliedUndef)}
        return out

    def _fresh(self, what: str, *heads) -> None:
        used = set()
        for f in self.facts.values():
            if f.rule != "checked":
                used |= self._symbols_of(f.lhs, f.rhs)
        for h in heads:
            if h in used or h in self._defined:
                _fail(f"{what}: {h} already occurs in a fact, so it cannot be defined here")
            self._defined.add(h)

    # -- the roots of a chain ------------------------------------------------------------
    def hypothesis(self, name: str, *statement, status: str = "") -> str:
        """A named hypothesis ``lhs rel rhs`` (or ``g`` meaning ``g == 0``), with its status
        (:func:`assumed`, :func:`checked`, :func:`cited`); index symbols in it are universally
        quantified. ``name`` is ``tag`` or ``tag [instance]`` and the docstring's "Hypotheses"
        paragraph must define ``tag:``. Returns the name."""
        self._named_in_doc(name)
        if status.split(":")[0] not in ("assumed", "checked", "cited"):
            _fail(f"hypothesis {name!r} needs a status: assumed(...), checked(...) or cited(...)")
        if len(statement) == 1:
            lhs, rel, rhs = sp.Integer(0), "==", sp.sympify(statement[0])
        elif len(statement) == 3:
            lhs, rel, rhs = sp.sympify(statement[0]), _rel(statement[1]), sp.sympify(statement[2])
        else:
            _fail(f"hypothesis {name!r}: give g (for g == 0) or lhs, rel, rhs")
        self._add(Fact(name, lhs, rel, rhs, "hypothesis", status=status))
        return name

    def define(self, name: str, head: sp.Expr, expr: sp.Expr) -> Fact:
        """``head == expr`` for a fresh symbol ``head`` (a name for an expression)."""
        head = sp.sympify(head)
        if not head.is_Symbol:
            _fail(f"define {name!r}: the defined object must be a symbol, got {head}")
        if head in sp.sympify(expr).free_symbols:
            _fail(f"define {name!r}: {head} occurs in its own definition")
        self._fresh(f"define {name!r}", head)
        return self._add(Fact(name, head, "==", sp.sympify(expr), "definition"))

    def sequence_recursion(
        self, name: str, seq, t: sp.Symbol, first: sp.Expr, step: sp.Expr
    ) -> tuple[Fact, Fact]:
        """A fresh sequence S by S(1) == first and S(t + 1) == step (an expression in S(t), t):
        two definition facts ``name [1]`` and ``name [t+1]``."""
        if t not in self._index:
            _fail(f"sequence_recursion {name!r}: {t} is not an index")
        step = sp.sympify(step)
        for a in step.atoms(AppliedUndef):
            if a.func == seq and a != seq(t):
                _fail(f"sequence_recursion {name!r}: the step may use {seq}({t}) only, got {a}")
        self._fresh(f"sequence_recursion {name!r}", seq)
        first = sp.sympify(first)
        if seq in self._symbols_of(first):
            _fail(f"sequence_recursion {name!r}: {seq} occurs in its first value")
        f1 = self._add(Fact(f"{name} [1]", seq(1), "==", first, "definition"))
        f2 = self._add(Fact(f"{name} [t+1]", seq(t + 1), "==", step, "definition"))
        return f1, f2

    def slack(self, name: str, definition: sp.Expr, by: Fact | str, *, positive: bool = False):
        """A fresh symbol sigma >= 0 (> 0 with ``positive``) standing for ``definition``; the fact
        ``0 == definition - sigma`` is recorded under :meth:`slack_of` (name). Its sign comes from
        ``by``, a fact whose rhs - lhs is ``definition`` (strict if ``positive``)."""
        definition = sp.sympify(definition)
        src = self._get(by)
        if src.rule == "checked" or src.rel == "==":
            _fail(f"slack {name!r}: {src.name!r} is not an inequality")
        if positive and src.rel != "<":
            _fail(f"slack {name!r}: a positive slack needs a strict fact, {src.name!r} is not")
        if not _zero(src.gap - definition):
            _fail(f"slack {name!r}: {src.name!r} proves {src.gap} >= 0, not {definition} >= 0")
        kw = {"positive": True} if positive else {"nonnegative": True}
        sym = sp.Symbol(name, real=True, **kw)
        self._fresh(f"slack {name!r}", sym)
        self._sign[sym] = "pos" if positive else "nonneg"
        key = f"{name} := {definition}"
        fact = Fact(
            key,
            sp.Integer(0),
            "==",
            definition - sym,
            "slack",
            (src.name,),
            open=src.open,
            just=(sym,),
        )
        self._add(fact)
        return sym

    def slack_of(self, name: str) -> str:
        """The fact name of the slack ``name`` (for ``using=[(m, key)]``)."""
        for key in self.facts:
            if key.startswith(f"{name} := "):
                return key
        _fail(f"no slack named {name!r}")
        return ""

    # -- the inference rule --------------------------------------------------------------
    def _certify_residual(self, lhs, rel, rhs, using, terms, subs) -> tuple[sp.Expr, bool]:
        """(residual that must vanish, whether a strict ingredient is present); raises on a
        malformed ingredient."""
        residual = sp.sympify(rhs) - sp.sympify(lhs)
        strict = False
        for m, ref in using:
            f = self._get(ref)
            m = sp.sympify(m)
            if f.rule == "checked":
                _fail(f"{f.name!r} is a checked sentence, not a formula: it cannot be combined")
            if f.rel != "==":
                if rel == "==":
                    _fail(f"an identity cannot use the inequality {f.name!r}")
                if not is_nonneg(m, self._sign):
                    _fail(f"multiplier of {f.name!r} is not manifestly >= 0: {m}")
                if f.rel == "<" and is_pos(m, self._sign):
                    strict = True
            residual -= m * f.gap
        terms = [sp.sympify(t) for t in terms]
        if terms and rel == "==":
            _fail("an identity takes no non-negative terms")
        for t in terms:
            if not is_nonneg(t, self._sign):
                _fail(
                    f"certificate term is not manifestly >= 0: {t} (non-negative symbols must be "
                    "registered with Lemma.var/assume/index/sequence/slack)"
                )
            if is_pos(t, self._sign):
                strict = True
        residual -= sum(terms, sp.Integer(0))
        for ref in subs:
            f = self._get(ref)
            if f.rel != "==" or not (f.lhs.is_Symbol or isinstance(f.lhs, AppliedUndef)):
                _fail(f"subs needs an equality 'atom == expr', {f.name!r} is not one")
            residual = residual.xreplace({f.lhs: f.rhs})
        return residual, strict

    def certify(
        self,
        name: str,
        lhs: sp.Expr,
        rel: str,
        rhs: sp.Expr,
        *,
        using: Iterable[tuple[sp.Expr, Fact | str]] = (),
        terms: Sequence[sp.Expr] = (),
        subs: Iterable[Fact | str] = (),
    ) -> Fact:
        """Derive ``lhs rel rhs``: rhs - lhs == sum(m * gap of each used fact) + sum(terms)
        (after rewriting by ``subs``), an identity; inequality facts need multipliers that are
        manifestly >= 0, and ``<`` needs a manifestly positive term or a strict fact with a
        manifestly positive multiplier."""
        rel = _rel(rel)
        using = [(sp.sympify(m), self._get(r).name) for m, r in using]
        subs = [self._get(r).name for r in subs]
        lhs, rhs = sp.sympify(lhs), sp.sympify(rhs)
        residual, strict = self._certify_residual(lhs, rel, rhs, using, terms, subs)
        if not _zero(residual):
            _fail(
                f"certificate fails: {name}: rhs - lhs - sum(m*gap) - sum(terms) = "
                f"{_short(residual)}"
            )
        if rel == "<" and not strict:
            _fail(f"{name}: a strict inequality needs a manifestly positive ingredient")
        signs = set()
        for m, _ in using:
            signs |= sp.sympify(m).free_symbols
        for t in terms:
            signs |= sp.sympify(t).free_symbols
        by_sign = sorted(self._sign_by[x] for x in signs if x in self._sign_by)
        used = tuple(dict.fromkeys([n for _, n in using] + subs + by_sign))
        opened = frozenset().union(*(self.facts[n].open for n in used)) if used else frozenset()
        just = (tuple(using), tuple(sp.sympify(t) for t in terms), tuple(subs))
        return self._add(Fact(name, lhs, rel, rhs, "certificate", used, open=opened, just=just))

    def identity(self, name: str, lhs: sp.Expr, rhs: sp.Expr, **kw) -> Fact:
        """``lhs == rhs`` by :meth:`certify` (equalities in ``using`` / ``subs`` only)."""
        return self.certify(name, lhs, "==", rhs, **kw)

    # legacy spellings (a fact 0 <= expr / 0 < expr)
    def certify_nonneg(self, expr, terms, what, equalities=()) -> Fact:
        """``0 <= expr`` with ``terms`` and equality facts ``(m, name)``; see :meth:`certify`."""
        return self.certify(what, sp.Integer(0), "<=", expr, using=equalities, terms=terms)

    def certify_pos(self, expr, terms, what, equalities=()) -> Fact:
        """``0 < expr``; see :meth:`certify`."""
        return self.certify(what, sp.Integer(0), "<", expr, using=equalities, terms=terms)

    # -- quantifiers ---------------------------------------------------------------------
    def _closure(self, name: str) -> list[Fact]:
        seen, out, todo = set(), [], [name]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            f = self.facts[n]
            out.append(f)
            todo.extend(f.uses)
        return out

    def _roots(self, name: str) -> list[Fact]:
        return [f for f in self._closure(name) if f.rule in ("hypothesis", "definition", "slack")]

    def instance(
        self, name: str, fact: Fact | str, mapping: dict, signs: dict | None = None
    ) -> Fact:
        """Substitute values for universally quantified symbols of a closed fact: an index may
        become another index expression (t -> T + 1, t -> 1); any other symbol a value of its
        sign, provided no hypothesis, definition or slack of the fact's chain mentions it."""
        src = self._get(fact)
        if src.rule == "checked":
            _fail(f"instance {name!r}: {src.name!r} is a sentence")
        if src.open:
            _fail(f"instance {name!r}: {src.name!r} rests on an open induction hypothesis")
        roots = self._roots(src.name)
        mapping = {sp.sympify(k): sp.sympify(v) for k, v in mapping.items()}
        signs = dict(signs or {})
        evidence = []
        for s_, ref in signs.items():
            ev = self._get(ref)
            if ev.rule == "checked" or ev.rel == "==" or ev.open or not _zero(ev.gap - mapping[s_]):
                _fail(f"instance {name!r}: {ev.name!r} does not prove 0 <= {mapping[s_]}")
            evidence.append((s_, ev))
        for s, img in mapping.items():
            if not s.is_Symbol:
                _fail(f"instance {name!r}: only symbols can be instantiated, got {s}")
            if s in self._index:
                if not _is_index_expr(img, self._index):
                    _fail(f"instance {name!r}: index {s} -> {img} is not an index expression")
                continue
            for r in roots:
                if s in self._symbols_of(r.lhs, r.rhs):
                    _fail(f"instance {name!r}: {s} is fixed by {r.rule} {r.name!r}")
            sign = self._sign.get(s, "")
            ev = next((e for x, e in evidence if x == s), None)
            pos_ok = is_pos(img, self._sign) or (ev is not None and ev.rel == "<")
            nonneg_ok = is_nonneg(img, self._sign) or ev is not None
            if (sign == "pos" or s.is_positive) and not pos_ok:
                _fail(f"instance {name!r}: {s} > 0 but {img} is not manifestly > 0")
            if (sign == "nonneg" or s.is_nonnegative) and not nonneg_ok:
                _fail(f"instance {name!r}: {s} >= 0 but {img} is not manifestly >= 0")
            if s.is_integer and not img.is_integer:
                _fail(f"instance {name!r}: {s} is an integer but {img} is not")
        lhs = src.lhs.subs(mapping, simultaneous=True)
        rhs = src.rhs.subs(mapping, simultaneous=True)
        just = (tuple(mapping.items()),)
        uses = (src.name, *[e.name for _, e in evidence])
        premise = None
        if src.premise is not None:
            pl, pr, pp = src.premise
            premise = (pl.subs(mapping, simultaneous=True), pr, pp.subs(mapping, simultaneous=True))
        fact = Fact(name, lhs, src.rel, rhs, "instance", uses, just=just, premise=premise)
        return self._add(fact)

    def induction_hypothesis(self, name: str, lhs, rel, rhs, var: sp.Symbol) -> Fact:
        """The statement at ``var`` (an index), open until :meth:`induction` discharges it."""
        if var not in self._index:
            _fail(f"induction {name!r}: {var} is not an index")
        f = Fact(f"{name} [IH]", sp.sympify(lhs), _rel(rel), sp.sympify(rhs), "ih")
        return self._add(replace(f, open=frozenset({f.name}), just=(var,)))

    def _same_statement(self, a_lhs, a_rel, a_rhs, b: Fact) -> bool:
        return a_rel == b.rel and _zero(a_lhs - b.lhs) and _zero(a_rhs - b.rhs)

    def induction(self, name: str, ih: Fact | str, base: Fact | str, step: Fact | str) -> Fact:
        """For every index value >= 1: ``base`` is the statement at 1, ``step`` the statement
        at var + 1 derived with the open hypothesis ``ih`` (the statement at var)."""
        h, b, s = self._get(ih), self._get(base), self._get(step)
        if h.rule != "ih" or not h.name.endswith("[IH]"):
            _fail(f"induction {name!r}: {h.name!r} is not an induction hypothesis")
        (var,) = h.just
        if not self._same_statement(h.lhs.subs(var, 1), h.rel, h.rhs.subs(var, 1), b):
            _fail(f"induction {name!r}: the base {b} is not the statement at {var} = 1")
        if not self._same_statement(h.lhs.subs(var, var + 1), h.rel, h.rhs.subs(var, var + 1), s):
            _fail(f"induction {name!r}: the step {s} is not the statement at {var} + 1")
        if h.name not in s.open:
            _fail(f"induction {name!r}: the step does not use the induction hypothesis")
        if h.name in b.open:
            _fail(f"induction {name!r}: the base uses the induction hypothesis")
        opened = (s.open - {h.name}) | b.open
        just = (h.name,)
        return self._add(
            Fact(name, h.lhs, h.rel, h.rhs, "induction", (b.name, s.name), open=opened, just=just)
        )

    def monotone(self, name: str, f: sp.Expr, x: sp.Symbol, derivative: Fact | str) -> Fact:
        """``0 <= f`` on the domain of x (x > 0 for a registered positive symbol, x >= 0 for a
        registered non-negative one) from f(0) = 0 (f(0+) for x > 0) and a closed fact proving
        f'(x) >= 0 there, f continuous on the domain, no root of the derivative's chain fixing x."""
        from sympy.calculus.util import continuous_domain

        d = self._get(derivative)
        if d.rule == "checked" or d.rel == "==" or d.open:
            _fail(f"monotone {name!r}: {d.name!r} is not a closed inequality")
        sign = self._sign.get(x)
        if sign not in ("pos", "nonneg"):
            _fail(f"monotone {name!r}: {x} must be a registered positive or non-negative symbol")
        for r in self._roots(d.name):
            if x in self._symbols_of(r.lhs, r.rhs):
                _fail(f"monotone {name!r}: {x} is fixed by {r.name!r}")
        f = sp.sympify(f)
        if not _zero(d.gap - sp.diff(f, x)):
            _fail(f"monotone {name!r}: {d.name!r} proves {d.gap} >= 0, not f' = {sp.diff(f, x)}")
        at0 = sp.limit(f, x, 0, "+") if sign == "pos" else f.subs(x, 0)
        if at0 != 0:
            _fail(f"monotone {name!r}: f(0) = {at0} != 0")
        dom = sp.Interval.open(0, sp.oo) if sign == "pos" else sp.Interval(0, sp.oo)
        if continuous_domain(f, x, dom) != dom:
            _fail(f"monotone {name!r}: f is not continuous on {dom}")
        just = (f, x)
        return self._add(Fact(name, sp.Integer(0), "<=", f, "monotone", (d.name,), just=just))

    def product(self, name: str, first: Fact | str, second: Fact | str) -> Fact:
        """``0 <= gap1 * gap2`` (``<`` if both are strict) from two inequality facts."""
        a, b = self._get(first), self._get(second)
        for f in (a, b):
            if f.rule == "checked" or f.rel == "==":
                _fail(f"product {name!r}: {f.name!r} is not an inequality")
        rel = "<" if a.rel == b.rel == "<" else "<="
        opened = a.open | b.open
        fact = Fact(
            name, sp.Integer(0), rel, a.gap * b.gap, "product", (a.name, b.name), open=opened
        )
        return self._add(fact)

    def abs_bounds(self, name: str, x: sp.Expr) -> tuple[Fact, Fact]:
        """``x <= |x|`` and ``-x <= |x|`` for a real expression x (facts ``name [+]``, ``[-]``)."""
        x = sp.sympify(x)
        if x.is_real is False:
            _fail(f"abs_bounds {name!r}: {x} is not real")
        f1 = self._add(Fact(f"{name} [+]", x, "<=", sp.Abs(x), "abs", just=(x, 1)))
        f2 = self._add(Fact(f"{name} [-]", -x, "<=", sp.Abs(x), "abs", just=(x, -1)))
        return f1, f2

    def implication(self, name: str, premise: tuple, conclusion: tuple, *, status: str) -> str:
        """A named hypothesis "premise => conclusion" (each (lhs, rel, rhs)), with a status as
        for :meth:`hypothesis`; use it with :meth:`modus_ponens`."""
        self._named_in_doc(name)
        if status.split(":")[0] not in ("assumed", "checked", "cited"):
            _fail(f"implication {name!r} needs a status")
        pl, pr, pp = premise
        cl, cr, cc = conclusion
        f = Fact(
            name,
            sp.sympify(cl),
            _rel(cr),
            sp.sympify(cc),
            "hypothesis",
            status=status,
            premise=(sp.sympify(pl), _rel(pr), sp.sympify(pp)),
        )
        self._add(f)
        return name

    def modus_ponens(self, name: str, implication: Fact | str, premise: Fact | str) -> Fact:
        """The conclusion of ``implication`` from a fact that is its premise."""
        imp, pre = self._get(implication), self._get(premise)
        if imp.premise is None:
            _fail(f"modus_ponens {name!r}: {imp.name!r} is not an implication")
        pl, pr, pp = imp.premise
        if not self._same_statement(pl, pr, pp, pre):
            _fail(f"modus_ponens {name!r}: {pre} is not the premise {pl} {pr} {pp}")
        fact = Fact(
            name, imp.lhs, imp.rel, imp.rhs, "mp", (imp.name, pre.name), open=pre.open | imp.open
        )
        return self._add(fact)

    def case_hypothesis(self, name: str, lhs, rel, rhs) -> Fact:
        """An open case assumption, discharged by :meth:`cases`."""
        f = Fact(f"{name} [case]", sp.sympify(lhs), _rel(rel), sp.sympify(rhs), "case")
        return self._add(replace(f, open=frozenset({f.name})))

    def cases(
        self, name: str, first: Fact | str, second: Fact | str, a: Fact | str, b: Fact | str
    ) -> Fact:
        """The common statement of ``a`` (derived under case ``first``: x <= y) and ``b``
        (under ``second``: y < x, its complement)."""
        c1, c2, fa, fb = (self._get(x) for x in (first, second, a, b))
        if c1.rule != "case" or c2.rule != "case":
            _fail(f"cases {name!r}: the cases must be case hypotheses")
        if not (
            c1.rel == "<=" and c2.rel == "<" and _zero(c1.lhs - c2.rhs) and _zero(c1.rhs - c2.lhs)
        ):
            _fail(f"cases {name!r}: {c1} and {c2} are not complementary (x <= y, y < x)")
        if not self._same_statement(fa.lhs, fa.rel, fa.rhs, fb):
            _fail(f"cases {name!r}: the two cases prove different statements")
        opened = (fa.open - {c1.name}) | (fb.open - {c2.name})
        just = (c1.name, c2.name)
        fact = Fact(
            name, fa.lhs, fa.rel, fa.rhs, "cases", (fa.name, fb.name), open=opened, just=just
        )
        return self._add(fact)

    def max_bounds(self, name: str, *args: sp.Expr) -> list[Fact]:
        """``a <= Max(a, b, ...)`` for each argument (facts ``name [j]``)."""
        m = sp.Max(*args)
        out = []
        for j, a in enumerate(args):
            f = Fact(f"{name} [{j}]", sp.sympify(a), "<=", m, "max", just=(tuple(args), j))
            out.append(self._add(f))
        return out

    def nonneg(self, sym: sp.Symbol, by: Fact | str) -> None:
        """Register ``sym`` as non-negative because the closed fact ``by`` proves 0 <= sym."""
        f = self._get(by)
        if f.rule == "checked" or f.rel == "==" or f.open or not _zero(f.gap - sym):
            _fail(f"nonneg: {f.name!r} does not prove 0 <= {sym}")
        self._sign[sym] = "pos" if f.rel == "<" else "nonneg"
        self._sign_by[sym] = f.name

    def checked(self, name: str, text: str, condition: object) -> Fact:
        """A finite exact check (``condition`` true), kept as a sentence (not combinable)."""
        check(condition, f"{name}: {text}")
        return self._add(Fact(name, sp.Integer(0), "==", sp.Integer(0), "checked", text=text))

    # -- theorems ------------------------------------------------------------------------
    def theorem(
        self,
        label: str,
        fact: Fact | str,
        lhs: sp.Expr | Callable[..., sp.Expr],
        rel: str,
        rhs: sp.Expr | Callable[..., sp.Expr],
        *args,
        bound: Callable[..., sp.Expr] | tuple | None = None,
        text: str = "",
    ) -> Theorem:
        """State the claim ``lhs rel rhs`` proved by ``fact``. A side may be the module function
        giving the bound (called with ``args``); ``bound`` names such a function when a side is
        built from its value; the mutation battery edits that function. The fact must be closed
        and its relation must be exactly the stated one."""
        if callable(lhs) and callable(rhs):
            _fail(f"theorem {label}: only one side may be a bound function")
        fns = list(bound) if isinstance(bound, tuple) else [] if bound is None else [bound]
        for side in (lhs, rhs):
            if callable(side):
                fns.append(side)
        rhs = rhs(*args) if callable(rhs) else rhs
        lhs = lhs(*args) if callable(lhs) else lhs
        th = Theorem(label, self._get(fact).name, sp.sympify(lhs), _rel(rel), sp.sympify(rhs))
        th = replace(th, bound=tuple((f.__name__, args) for f in fns), text=text)
        self.check_theorem(th)
        if any(t.label == label for t in self.theorems):
            _fail(f"theorem {label!r} stated twice")
        self.theorems.append(th)
        return th

    def check_theorem(self, th: Theorem) -> None:
        """The theorem's fact is closed and IS its statement (ProofError otherwise)."""
        f = self._get(th.fact)
        if th.lhs is None:
            if f.rule != "checked":
                _fail(f"theorem {th.label}: {f.name!r} is not a checked sentence")
            return
        if f.rule == "checked" or f.rule == "ih":
            _fail(f"theorem {th.label}: {f.name!r} is not a derived formula")
        if f.open:
            _fail(f"theorem {th.label}: {f.name!r} rests on open {sorted(f.open)}")
        if not self._same_statement(th.lhs, th.rel, th.rhs, f):
            _fail(
                f"theorem {th.label}: its chain ends in the fact {f.name!r} ({_short(f.lhs)} "
                f"{f.rel} {_short(f.rhs)}), which is not the stated claim"
            )

    def theorem_checked(self, label: str, fact: Fact | str) -> Theorem:
        """State a claim established by a finite check in this file (printed as such)."""
        f = self._get(fact)
        th = Theorem(label, f.name, None, "checked", None, text=f.text)
        self.check_theorem(th)
        self.theorems.append(th)
        return th

    def hypotheses_of(self, th: Theorem) -> list[Fact]:
        """The hypotheses (with their status) the theorem's chain rests on."""
        return [f for f in self._closure(th.fact) if f.rule == "hypothesis"]

    def definitions_of(self, th: Theorem) -> list[str]:
        """The definitions (of symbols, sequences, sums over coordinates) the chain uses."""
        out = []
        for f in self._closure(th.fact):
            if f.rule == "definition":
                out.append(str(f))
            if f.rule == "summed":
                for _key, total in f.just[0]:
                    head = total.func if isinstance(total, AppliedUndef) else total
                    pattern, t = self._sums[head]
                    arg = "" if t is None else f"({t})"
                    out.append(f"{head}{arg} = sum_i {sp.sstr(pattern)}")
        return list(dict.fromkeys(out))

    def ledger(self) -> dict[str, list[str]]:
        """What the proof assumed and derived (for a reader)."""
        return {
            "hypotheses": [
                f"{f.name}: {f} [{f.status}]" for f in self.facts.values() if f.rule == "hypothesis"
            ],
            "variables": [f"{n}: {m}" for n, m in self._vars],
            "theorems": [f"{t.label}: {t.statement()}" for t in self.theorems],
        }

    # -- re-checking (the mutation battery) ----------------------------------------------
    def recheck(self, fact: Fact, store: dict[str, Fact] | None = None) -> None:
        """Re-run the rule that derived ``fact`` on its recorded justification, reading the
        facts it uses from ``store`` (default: this lemma's); ProofError if it does not hold."""
        saved = self.facts
        if store is not None:
            self.facts = store
        try:
            self._recheck(fact)
        finally:
            self.facts = saved

    def _recheck(self, f: Fact) -> None:
        if f.rule in ("hypothesis", "definition", "ih", "checked", "case"):
            return
        if f.rule == "slack":
            src = self.facts[f.uses[0]]
            (sym,) = f.just
            if src.rel == "==" or f.rel != "==" or not _zero(src.gap - (f.gap + sym)):
                _fail(f"slack {f.name!r} does not match {src.name!r}")
            return
        if f.rule == "certificate":
            using, terms, subs = f.just
            named = {n for _, n in using} | set(subs)
            for n in f.uses:
                if n in named:
                    continue
                g = self.facts[n]  # a fact that registered the sign of a multiplier's symbol
                syms = [x for x, by in self._sign_by.items() if by == n]
                if g.rel == "==" or not any(_zero(g.gap - x) for x in syms):
                    _fail(f"{f.name}: the sign fact {n!r} no longer proves its symbol >= 0")
            residual, strict = self._certify_residual(f.lhs, f.rel, f.rhs, using, terms, subs)
            if not _zero(residual):
                _fail(f"certificate fails: {f.name}")
            if f.rel == "<" and not strict:
                _fail(f"{f.name}: no strict ingredient")
            return
        if f.rule == "instance":
            (items,) = f.just
            src = self.facts[f.uses[0]]
            m = dict(items)
            for n in f.uses[1:]:  # sign evidence for an image
                ev = self.facts[n]
                if ev.rel == "==" or not any(_zero(ev.gap - v) for v in m.values()):
                    _fail(f"instance {f.name!r}: {n!r} no longer proves an image >= 0")
            if src.rel != f.rel or not self._same_statement(
                src.lhs.subs(m, simultaneous=True), src.rel, src.rhs.subs(m, simultaneous=True), f
            ):
                _fail(f"instance {f.name!r} does not match {src.name!r}")
            if (src.premise is None) != (f.premise is None):
                _fail(f"instance {f.name!r}: premise mismatch")
            if src.premise is not None:
                pl, pr, pp = src.premise
                ql, qr, qq = f.premise
                if (
                    pr != qr
                    or not _zero(pl.subs(m, simultaneous=True) - ql)
                    or not _zero(pp.subs(m, simultaneous=True) - qq)
                ):
                    _fail(f"instance {f.name!r}: premise does not match")
            return
        if f.rule == "induction":
            (ih,) = f.just
            h, b, s = self.facts[ih], self.facts[f.uses[0]], self.facts[f.uses[1]]
            (var,) = h.just
            same_h = self._same_statement(f.lhs, f.rel, f.rhs, h)
            ok_b = self._same_statement(f.lhs.subs(var, 1), f.rel, f.rhs.subs(var, 1), b)
            ok_s = self._same_statement(
                f.lhs.subs(var, var + 1), f.rel, f.rhs.subs(var, var + 1), s
            )
            if not (same_h and ok_b and ok_s):
                _fail(f"induction {f.name!r} does not match its base/step/hypothesis")
            return
        if f.rule == "monotone":
            fn, x = f.just
            d = self.facts[f.uses[0]]
            if f.rel != "<=" or not _zero(f.lhs) or not _zero(f.rhs - fn):
                _fail(f"monotone {f.name!r}: statement is not 0 <= f")
            if d.rel == "==" or not _zero(d.gap - sp.diff(fn, x)):
                _fail(f"monotone {f.name!r}: derivative fact does not match")
            return
        if f.rule == "product":
            a, b = self.facts[f.uses[0]], self.facts[f.uses[1]]
            rel = "<" if a.rel == b.rel == "<" else "<="
            if (
                a.rel == "=="
                or b.rel == "=="
                or f.rel != rel
                or not _zero(f.lhs)
                or not _zero(f.rhs - a.gap * b.gap)
            ):
                _fail(f"product {f.name!r} does not match")
            return
        if f.rule == "max":
            args, j = f.just
            if f.rel != "<=" or not _zero(f.lhs - args[j]) or not _zero(f.rhs - sp.Max(*args)):
                _fail(f"max {f.name!r} does not match")
            return
        if f.rule == "abs":
            x, sgn = f.just
            if f.rel != "<=" or not _zero(f.lhs - sgn * x) or not _zero(f.rhs - sp.Abs(x)):
                _fail(f"abs {f.name!r} does not match")
            return
        if f.rule == "mp":
            imp, pre = self.facts[f.uses[0]], self.facts[f.uses[1]]
            if imp.premise is None:
                _fail(f"modus ponens {f.name!r}: {imp.name!r} is no implication")
            pl, pr, pp = imp.premise
            if not self._same_statement(pl, pr, pp, pre) or not self._same_statement(
                imp.lhs, imp.rel, imp.rhs, f
            ):
                _fail(f"modus ponens {f.name!r} does not match")
            return
        if f.rule == "cases":
            fa, fb = self.facts[f.uses[0]], self.facts[f.uses[1]]
            c1, c2 = self.facts[f.just[0]], self.facts[f.just[1]]
            ok = c1.rel == "<=" and c2.rel == "<" and _zero(c1.lhs - c2.rhs)
            ok = ok and _zero(c1.rhs - c2.lhs)
            ok = ok and self._same_statement(fa.lhs, fa.rel, fa.rhs, f)
            ok = ok and self._same_statement(fb.lhs, fb.rel, fb.rhs, f)
            if not ok:
                _fail(f"cases {f.name!r} does not match")
            return
        if f.rule == "summed":
            items, count = f.just
            src = self.facts[f.uses[0]]
            m = dict(items)
            lhs = self._sum_expr(src.lhs, m, count)
            rhs = self._sum_expr(src.rhs, m, count)
            if not self._same_statement(lhs, src.rel, rhs, f):
                _fail(f"summed {f.name!r} does not match {src.name!r}")
            return
        _fail(f"unknown rule {f.rule!r}")

    def users(self) -> dict[str, list[str]]:
        """fact name -> names of the facts that use it (directly), plus IH -> its induction."""
        out: dict[str, list[str]] = {n: [] for n in self.facts}
        for f in self.facts.values():
            for u in f.uses:
                out[u].append(f.name)
            if f.rule == "induction":
                out[f.just[0]].append(f.name)
            if f.rule == "cases":
                out[f.just[0]].append(f.name)
                out[f.just[1]].append(f.name)
        return out


# ------------------------------------------------------------------- the mutation battery


def _number_paths(e: sp.Expr, path=()) -> Iterator[tuple[tuple[int, ...], sp.Number]]:
    if e.is_Number:
        yield path, e
        return
    if isinstance(e, AppliedUndef):  # the argument of a sequence: its index, mutated too
        pass
    for i, a in enumerate(e.args):
        yield from _number_paths(a, (*path, i))


def _replace_at(e: sp.Expr, path: tuple[int, ...], new: sp.Expr) -> sp.Expr:
    if not path:
        return new
    args = list(e.args)
    args[path[0]] = _replace_at(args[path[0]], path[1:], new)
    return e.func(*args)


def number_mutants(e: sp.Expr) -> Iterator[tuple[str, sp.Expr]]:
    """Every numeric constant of ``e`` (each occurrence, exponents and coefficients included)
    halved and doubled, as (description, mutated expression); zeros are skipped (halving 0
    changes nothing)."""
    e = sp.sympify(e)
    for path, num in _number_paths(e):
        if num == 0:
            continue
        for factor, word in ((sp.Rational(1, 2), "halved"), (sp.Integer(2), "doubled")):
            yield f"{num} {word}", _replace_at(e, path, num * factor)


def statement_mutants(fact_like) -> Iterator[tuple[str, sp.Expr, str, sp.Expr]]:
    """(description, lhs', rel', rhs'): every constant of the lhs and the rhs halved and
    doubled; every inequality reversed (lhs >= rhs, i.e. rhs <= lhs)."""
    lhs, rel, rhs = fact_like.lhs, fact_like.rel, fact_like.rhs
    for d, m in number_mutants(lhs):
        yield f"lhs: {d}", m, rel, rhs
    for d, m in number_mutants(rhs):
        yield f"rhs: {d}", lhs, rel, m
    if rel in ("<=", "<"):
        yield "reversed", rhs, rel, lhs


@dataclass
class MutationScore:
    """killed / total mutants, and the survivors (each a description)."""

    killed: int = 0
    total: int = 0
    survivors: list[str] = field(default_factory=list)

    def add(self, other: MutationScore) -> None:
        self.killed += other.killed
        self.total += other.total
        self.survivors.extend(other.survivors)


def step_mutants(lem: Lemma, limit_per_fact: int | None = None) -> MutationScore:
    """Mutate every derived fact on the chain of some theorem (each constant halved and
    doubled, each inequality reversed) and re-run the rules: the mutant is killed if the fact's
    own rule, or the rule of a fact that uses it, rejects it."""
    for f in lem.facts.values():  # controls: every unmutated fact passes its own rule
        lem.recheck(f)
    score = MutationScore()
    users = lem.users()
    on_chain: set[str] = set()
    for th in lem.theorems:
        on_chain |= {f.name for f in lem._closure(th.fact)}
    for name in lem.facts:
        f = lem.facts[name]
        if name not in on_chain or f.rule in ("checked",):
            continue
        muts = [(d, lhs, rel, rhs, f.premise) for d, lhs, rel, rhs in statement_mutants(f)]
        if f.premise is not None:
            pl, pr, pp = f.premise
            for d, ml, mr, mp in statement_mutants(Fact("", pl, pr, pp, "")):
                muts.append((f"premise {d}", f.lhs, f.rel, f.rhs, (ml, mr, mp)))
        if limit_per_fact is not None and len(muts) > limit_per_fact:
            # a deterministic spread over the constants, and the reversal if there is one
            keep = [m for m in muts if m[0] == "reversed"]
            rest = [m for m in muts if m[0] != "reversed"]
            stride = max(1, len(rest) // max(1, limit_per_fact - len(keep)))
            muts = keep + rest[::stride][: limit_per_fact - len(keep)]
        for desc, lhs, rel, rhs, prem in muts:
            mutant = replace(f, lhs=lhs, rel=rel, rhs=rhs, premise=prem)
            store = dict(lem.facts)
            store[name] = mutant
            score.total += 1
            killed = False
            for target in [mutant] + [store[u] for u in users[name]]:
                try:
                    lem.recheck(target, store)
                except ProofError:
                    killed = True
                    break
            if not killed:
                for th in lem.theorems:  # a mutated final fact must break its theorem
                    if th.fact == name:
                        try:
                            saved = lem.facts
                            lem.facts = store
                            try:
                                lem.check_theorem(th)
                            finally:
                                lem.facts = saved
                        except ProofError:
                            killed = True
            if killed:
                score.killed += 1
            else:
                score.survivors.append(f"step {name!r}: {desc}")
    return score
