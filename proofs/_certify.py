"""Shared checking helpers for the proof files: identities, certificates, steps.

An identity ``lhs == rhs`` is checked by ``sp.simplify(lhs - rhs) == 0`` (and, cheaper first,
``sp.expand``). An inequality ``expr >= 0`` is *never* checked by asking sympy whether it is
non-negative: the caller supplies a certificate, a list of terms, and (optionally) equality
constraints g == 0 with multipliers m, and we check

    expr == sum(terms) + sum(m * g)        (an identity, by expansion / simplification)

and that every term is *structurally* non-negative: a product, sum or power built only from
non-negative numbers and closed constants (log 2, sqrt 2), symbols declared
``nonnegative=True``/``positive=True``, even powers,
``exp`` and ``Abs``. :func:`is_nonneg` inspects the expression tree itself; it does not call
sympy's assumption system on compound expressions, so it cannot be fooled by a simplification.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sympy as sp

__all__ = [
    "is_nonneg",
    "is_pos",
    "identity",
    "certify_nonneg",
    "certify_pos",
    "check",
]


def _is_even_integer(e: sp.Expr) -> bool:
    return bool(e.is_Integer and int(e) % 2 == 0)


def is_nonneg(expr: sp.Expr) -> bool:
    """Structural test: ``expr`` is built from non-negative pieces only (see module docstring)."""
    expr = sp.sympify(expr)
    if expr.is_Number:
        return bool(expr >= 0)
    if expr.is_number and not expr.free_symbols:  # a closed constant such as log(2) or sqrt(2)
        return expr.is_nonnegative is True
    if expr.is_Symbol:
        return bool(expr.is_nonnegative)
    if expr.is_Add or expr.is_Mul:
        return all(is_nonneg(a) for a in expr.args)
    if expr.is_Pow:
        base, ex = expr.args
        if _is_even_integer(ex) and base.is_real:
            return True
        if ex.is_negative or not ex.is_Integer:
            return is_pos(base) and bool(ex.is_real)
        return is_nonneg(base)
    if isinstance(expr, sp.exp):
        return bool(expr.args[0].is_real)
    if isinstance(expr, sp.Abs):
        return True
    return False


def is_pos(expr: sp.Expr) -> bool:
    """Structural test: ``expr`` is built from positive pieces (a sum needs one positive term)."""
    expr = sp.sympify(expr)
    if expr.is_Number:
        return bool(expr > 0)
    if expr.is_number and not expr.free_symbols:
        return expr.is_positive is True
    if expr.is_Symbol:
        return bool(expr.is_positive)
    if expr.is_Add:
        return all(is_nonneg(a) for a in expr.args) and any(is_pos(a) for a in expr.args)
    if expr.is_Mul:
        return all(is_pos(a) for a in expr.args)
    if expr.is_Pow:
        base, ex = expr.args
        return is_pos(base) and bool(ex.is_real)
    if isinstance(expr, sp.exp):
        return bool(expr.args[0].is_real)
    return False


def _zero(expr: sp.Expr) -> bool:
    e = sp.expand(expr)
    if e == 0 or sp.cancel(sp.together(e)) == 0:
        return True
    return sp.simplify(e) == 0


def identity(lhs: sp.Expr, rhs: sp.Expr, what: str) -> None:
    """Assert the identity lhs == rhs (``simplify(lhs - rhs) == 0``)."""
    assert _zero(sp.sympify(lhs) - sp.sympify(rhs)), f"identity fails: {what}: {lhs} != {rhs}"


def _certify(
    expr: sp.Expr,
    terms: Sequence[sp.Expr],
    equalities: Iterable[tuple[sp.Expr, sp.Expr]],
    what: str,
) -> None:
    terms = [sp.sympify(t) for t in terms]
    lagr = sum((sp.sympify(m) * sp.sympify(g) for m, g in equalities), sp.Integer(0))
    residual = sp.sympify(expr) - sum(terms, sp.Integer(0)) - lagr
    assert _zero(residual), (
        f"certificate identity fails: {what}: "
        f"expr - sum(terms) - sum(m*g) = {sp.simplify(residual)}"
    )


def certify_nonneg(
    expr: sp.Expr,
    terms: Sequence[sp.Expr],
    what: str,
    equalities: Iterable[tuple[sp.Expr, sp.Expr]] = (),
) -> None:
    """Prove ``expr >= 0`` on {g = 0 for (m, g) in equalities}: expr = sum(terms) + sum(m g),
    each term structurally non-negative."""
    _certify(expr, terms, equalities, what)
    for t in terms:
        assert is_nonneg(t), f"certificate term is not manifestly >= 0: {what}: {t}"


def certify_pos(
    expr: sp.Expr,
    terms: Sequence[sp.Expr],
    what: str,
    equalities: Iterable[tuple[sp.Expr, sp.Expr]] = (),
) -> None:
    """Prove ``expr > 0``: as :func:`certify_nonneg`, with at least one term manifestly > 0."""
    certify_nonneg(expr, terms, what, equalities)
    assert any(is_pos(t) for t in terms), f"no certificate term is manifestly > 0: {what}"


def check(condition: bool, what: str) -> None:
    """Assert a finite (exhaustive or numeric-exact) fact with a readable message."""
    assert bool(condition), f"check fails: {what}"
