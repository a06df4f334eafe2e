"""Shared checking helpers for the proof files: identities, certificates, a lemma's hypotheses.

An identity ``lhs == rhs`` is checked by ``sp.simplify(lhs - rhs) == 0`` (and, cheaper first,
``sp.expand``). An inequality ``expr >= 0`` is *never* checked by asking sympy whether it is
non-negative: the caller supplies a certificate, a list of terms, and (optionally) equality
hypotheses g == 0 with multipliers m, and we check

    expr == sum(terms) + sum(m * g)        (an identity, by expansion / simplification)

and that every term is *structurally* non-negative: a product, sum or power built only from
non-negative numbers and closed constants (log 2, sqrt 2), symbols registered with the lemma as
non-negative, even powers, ``exp`` and ``Abs``. :func:`is_nonneg` inspects the expression tree
itself; it does not call sympy's assumption system on compound expressions.

The caller cannot fool the checker:

- every failure raises :class:`ProofError` (never ``assert``, so ``python -O`` cannot skip a
  step);
- equalities are not free: a certificate may only use the equality hypotheses its
  :class:`Lemma` declared once, by name, and every name must be defined (``name:``) in the
  "Hypotheses" paragraph of the lemma's docstring, so a reader sees every hypothesis a proof
  rests on;
- a symbol counts as non-negative only if the lemma registered it: a domain variable with
  :meth:`Lemma.var` (a load, a step size), or a slack with :meth:`Lemma.slack`, whose defining
  constraint ``slack == definition`` becomes a hypothesis and whose non-negativity must come
  from a certificate proved earlier in the same lemma or from a hypothesis named in the claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sympy as sp

__all__ = [
    "ProofError",
    "Lemma",
    "is_nonneg",
    "is_pos",
    "identity",
    "check",
]


class ProofError(Exception):
    """A step of a proof failed (an identity, a certificate, or a finite check)."""


def _fail(message: str) -> None:
    raise ProofError(message)


def _is_even_integer(e: sp.Expr) -> bool:
    return bool(e.is_Integer and int(e) % 2 == 0)


def _symbol_sign(sym: sp.Symbol, registered: dict[sp.Symbol, str] | None) -> str:
    """'pos', 'nonneg' or '' for a symbol: only a registered symbol carries a sign."""
    if registered is None or sym not in registered:
        return ""
    return registered[sym]


def is_nonneg(expr: sp.Expr, registered: dict[sp.Symbol, str] | None = None) -> bool:
    """Structural test: ``expr`` is built from non-negative pieces only (see module docstring).

    ``registered`` maps the symbols a lemma declared to 'pos' or 'nonneg'; any other symbol is
    of unknown sign (even one created with ``nonnegative=True``)."""
    expr = sp.sympify(expr)
    if expr.is_Number:
        return bool(expr >= 0)
    if expr.is_number and not expr.free_symbols:  # a closed constant such as log(2) or sqrt(2)
        return expr.is_nonnegative is True
    if expr.is_Symbol:
        return _symbol_sign(expr, registered) in ("pos", "nonneg")
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


def is_pos(expr: sp.Expr, registered: dict[sp.Symbol, str] | None = None) -> bool:
    """Structural test: ``expr`` is built from positive pieces (a sum needs one positive term)."""
    expr = sp.sympify(expr)
    if expr.is_Number:
        return bool(expr > 0)
    if expr.is_number and not expr.free_symbols:
        return expr.is_positive is True
    if expr.is_Symbol:
        return _symbol_sign(expr, registered) == "pos"
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


def _zero(expr: sp.Expr) -> bool:
    e = sp.expand(expr)
    if e == 0 or sp.cancel(sp.together(e)) == 0:
        return True
    return sp.simplify(e) == 0


def identity(lhs: sp.Expr, rhs: sp.Expr, what: str) -> None:
    """Check the identity lhs == rhs (``simplify(lhs - rhs) == 0``); ProofError if it fails."""
    if not _zero(sp.sympify(lhs) - sp.sympify(rhs)):
        _fail(f"identity fails: {what}: {lhs} != {rhs}")


def check(condition: object, what: str) -> None:
    """Check a finite (exhaustive or numeric-exact) fact; ProofError with ``what`` if false."""
    if not bool(condition):
        _fail(f"check fails: {what}")


class Lemma:
    """The ledger of one lemma: its docstring, declared hypotheses and non-negative symbols.

    ``Lemma(__doc__)`` in a proof file; then ``var`` / ``slack`` / ``hypothesis`` declare what
    the proof assumes, and ``certify_nonneg`` / ``certify_pos`` prove inequalities using only
    those declarations. ``ledger()`` lists them (``lfb prove`` does not need it; it is for a
    reader)."""

    def __init__(self, doc: str | None) -> None:
        if not doc or not doc.strip():
            _fail("a Lemma needs its docstring (the claim names its hypotheses)")
        self.doc = doc
        self._hyp: dict[str, sp.Expr] = {}
        self._sign: dict[sp.Symbol, str] = {}
        self._proved: dict[str, sp.Expr] = {}
        self._vars: list[tuple[str, str]] = []

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

    def _hypotheses_paragraph(self) -> str:
        """The docstring's paragraph that starts with "Hypotheses" ('' if there is none)."""
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

    def hypothesis(self, name: str, g: sp.Expr) -> str:
        """Declare the equality hypothesis ``g == 0`` once, under ``name`` = ``tag`` or
        ``tag [instance]`` (one lemma can use one hypothesis on several instances) where the
        docstring defines ``tag:``. Returns ``name`` for ``equalities=[(m, name)]``."""
        self._named_in_doc(name)
        if name in self._hyp:
            _fail(f"hypothesis {name!r} declared twice")
        self._hyp[name] = sp.sympify(g)
        return name

    def slack(self, name: str, definition: sp.Expr, by: str, *, positive: bool = False):
        """A symbol sigma >= 0 (or > 0) standing for ``definition``; the defining constraint
        ``definition - sigma == 0`` becomes the hypothesis ``name``. Its sign must come from
        ``by``: the ``what`` of a certificate of ``definition >= 0`` proved earlier in this
        lemma (checked to be the same expression), or a hypothesis named in the docstring."""
        definition = sp.sympify(definition)
        if by in self._proved:
            if not _zero(self._proved[by] - definition):
                _fail(
                    f"slack {name!r}: certificate {by!r} proved {self._proved[by]} >= 0, "
                    f"not {definition} >= 0"
                )
        else:
            self._named_in_doc(by)
        sym = sp.Symbol(
            name, real=True, **({"positive": True} if positive else {"nonnegative": True})
        )
        if sym in self._sign:
            _fail(f"slack {name!r} declared twice")
        self._sign[sym] = "pos" if positive else "nonneg"
        key = f"{name} := {definition}"
        self._hyp[key] = definition - sym
        return sym

    # -- certificates --------------------------------------------------------------------
    def _lagrangian(self, equalities: Iterable[tuple[sp.Expr, str]], what: str) -> sp.Expr:
        total = sp.Integer(0)
        for item in equalities:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str)):
                _fail(f"{what}: an equality must be (multiplier, hypothesis name), got {item!r}")
            m, name = item
            if name not in self._hyp:
                known = ", ".join(sorted(self._hyp)) or "none"
                _fail(f"{what}: {name!r} is not a declared hypothesis (declared: {known})")
            total += sp.sympify(m) * self._hyp[name]
        return total

    def slack_of(self, name: str) -> str:
        """The hypothesis key of the slack ``name`` (for ``equalities=[(m, key)]``)."""
        for key in self._hyp:
            if key.startswith(f"{name} := "):
                return key
        _fail(f"no slack named {name!r}")
        return ""

    def certify_nonneg(
        self,
        expr: sp.Expr,
        terms: Sequence[sp.Expr],
        what: str,
        equalities: Iterable[tuple[sp.Expr, str]] = (),
    ) -> None:
        """Prove ``expr >= 0`` under the named hypotheses: expr = sum(terms) + sum(m g), each
        term structurally non-negative. ``what`` labels the result (usable by ``slack``)."""
        terms = [sp.sympify(t) for t in terms]
        lagr = self._lagrangian(equalities, what)
        residual = sp.sympify(expr) - sum(terms, sp.Integer(0)) - lagr
        if not _zero(residual):
            _fail(
                f"certificate identity fails: {what}: expr - sum(terms) - sum(m*g) = "
                f"{sp.simplify(residual)}"
            )
        for t in terms:
            if not is_nonneg(t, self._sign):
                _fail(
                    f"certificate term is not manifestly >= 0: {what}: {t} (non-negative "
                    "symbols must be registered with Lemma.var/assume/slack)"
                )
        self._proved[what] = sp.sympify(expr)

    def certify_pos(
        self,
        expr: sp.Expr,
        terms: Sequence[sp.Expr],
        what: str,
        equalities: Iterable[tuple[sp.Expr, str]] = (),
    ) -> None:
        """Prove ``expr > 0``: as :meth:`certify_nonneg`, with one term manifestly > 0."""
        self.certify_nonneg(expr, terms, what, equalities)
        if not any(is_pos(t, self._sign) for t in terms):
            _fail(f"no certificate term is manifestly > 0: {what}")

    def ledger(self) -> dict[str, list[str]]:
        """What the proof assumed: hypotheses (name: g == 0), variables, proved certificates."""
        return {
            "hypotheses": [f"{k}: {v} == 0" for k, v in self._hyp.items()],
            "variables": [f"{n}: {m}" for n, m in self._vars],
            "proved": list(self._proved),
        }
