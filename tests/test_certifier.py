"""The proof certifier cannot be fooled by its caller, and ``lfb prove`` fails a false lemma
(also under ``python -O``, and when a bound constant of a new lemma is mutated)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

PROOFS = Path(__file__).resolve().parent.parent / "proofs"
sys.path.insert(0, str(PROOFS))

from _certify import Lemma, ProofError, check, identity  # noqa: E402

DOC = """Lemma X: a test lemma.

Hypotheses. h: x = 2; pos: y >= 0.
"""


def test_an_equality_must_be_a_declared_hypothesis():
    lem = Lemma(DOC)
    with pytest.raises(ProofError, match="multiplier, hypothesis name"):
        lem.certify_nonneg(-1, [], "the old bypass", equalities=[(1, -1)])  # type: ignore[list-item]
    with pytest.raises(ProofError, match="not a declared hypothesis"):
        lem.certify_nonneg(-1, [], "an undeclared name", equalities=[(1, "h")])


def test_a_hypothesis_must_be_named_in_the_docstring_and_declared_once():
    lem = Lemma(DOC)
    x = sp.Symbol("x", real=True)
    with pytest.raises(ProofError, match="not named in the lemma's docstring"):
        lem.hypothesis("secret", x - 2)
    lem.hypothesis("h", x - 2)
    with pytest.raises(ProofError, match="declared twice"):
        lem.hypothesis("h", x - 3)
    lem.hypothesis("h [second instance]", x - 2)  # instances of one named hypothesis


def test_a_declared_hypothesis_cannot_prove_a_false_inequality():
    lem = Lemma(DOC)
    x = sp.Symbol("x", real=True)
    h = lem.hypothesis("h", x - 2)
    lem.certify_nonneg(x - 2, [], "x - 2 >= 0 on x = 2", equalities=[(1, h)])
    with pytest.raises(ProofError, match="certificate identity fails"):
        lem.certify_nonneg(x - 3, [], "x - 3 >= 0 is false on x = 2", equalities=[(1, h)])
    with pytest.raises(ProofError, match="not manifestly >= 0"):
        lem.certify_nonneg(x - 3, [sp.Integer(-1)], "a negative term", equalities=[(1, h)])


def test_a_nonnegative_symbol_counts_only_when_registered():
    lem = Lemma(DOC)
    y = sp.Symbol("y", nonnegative=True)
    with pytest.raises(ProofError, match="registered"):
        lem.certify_nonneg(y, [y], "y >= 0 by sympy's assumption alone")
    with pytest.raises(ProofError, match="meaning"):
        lem.assume(y, meaning=" ")
    lem.assume(y, meaning="pos: y is a count")
    lem.certify_nonneg(y, [y], "y >= 0 once registered")
    z = sp.Symbol("z", real=True)
    with pytest.raises(ProofError, match="not created non-negative"):
        lem.assume(z, meaning="z is anything")


def test_a_slack_needs_its_defining_constraint_and_a_reason():
    lem = Lemma(DOC)
    x = sp.Symbol("x", real=True)
    with pytest.raises(ProofError, match="not named"):
        lem.slack("s", x - 5, by="wishful")
    y = lem.var("yv", "pos: a count")
    lem.certify_nonneg(y + 1, [y, sp.Integer(1)], "y + 1 >= 0")
    with pytest.raises(ProofError, match="proved"):
        lem.slack("s", y + 2 - x, by="y + 1 >= 0")  # that certificate proved y + 1, not this
    s = lem.slack("s", y + 1, by="y + 1 >= 0")
    lem.certify_nonneg(y + 1, [s], "y + 1 >= 0 via its slack", equalities=[(1, lem.slack_of("s"))])


@settings(max_examples=30, deadline=None)
@given(
    coefs=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    offset=st.integers(-7, -1),
)
def test_any_false_constant_shift_is_rejected_and_the_true_form_accepted(coefs, offset):
    lem = Lemma(DOC)
    xs = sp.symbols(f"v0:{len(coefs)}", real=True)
    terms = [c * (v - 1) ** 2 for c, v in zip(coefs, xs, strict=True)]  # each >= 0
    expr = sum(terms)
    lem.certify_nonneg(expr, terms, "a sum of squares is >= 0")
    with pytest.raises(ProofError):  # expr + offset < 0 at v = 1: no certificate may pass
        lem.certify_nonneg(expr + offset, terms, "shifted below zero")
    with pytest.raises(ProofError):
        lem.certify_nonneg(expr + offset, [*terms, sp.Integer(offset)], "with a negative term")


def test_identity_and_check_raise_instead_of_asserting():
    x = sp.Symbol("x")
    with pytest.raises(ProofError):
        identity((x + 1) ** 2, x**2 + 1, "a false identity")
    with pytest.raises(ProofError):
        check(False, "a false fact")


@functools.cache
def _original(name: str):
    from lfbtheory.cli.prove import run_proof

    return run_proof(PROOFS / name)


def _prove(proof_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROOFS.parent)}
    return subprocess.run(
        [sys.executable, *flags, "-m", "lfbtheory", "prove", "--dir", str(proof_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _mutant(tmp_path: Path, name: str, old: str, new: str) -> Path:
    d = tmp_path / "proofs"
    d.mkdir()
    shutil.copy(PROOFS / "_certify.py", d)
    text = (PROOFS / name).read_text(encoding="utf-8")
    assert old in text, f"mutation site not found in {name}: {old}"
    (d / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    return d


def test_python_O_does_not_pass_a_mutated_false_lemma(tmp_path):
    d = _mutant(tmp_path, "proof_10_maxvio_range.py", "return E_ / k_ - 1", "return E_ / k_ - 2")
    res = _prove(d, "-O")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL  proof_10_maxvio_range" in res.stdout and "ProofError" in res.stdout


MUTATIONS = [
    (  # Lemma 7(d): the on-lattice state count must fail the exact count check
        "proof_07_bounded_bias.py",
        "return (math.floor(2 * Fraction(bmax) / Fraction(u)) + 1) ** (n_experts - 1)",
        "return (2 * math.floor(Fraction(bmax) / Fraction(u)) + 1) ** (n_experts - 1)",
    ),
    ("proof_11_balance.py", "return L_ * w_ / u_ + n_", "return L_ * w_ / u_ + n_ / 2"),
    (
        "proof_11_balance.py",
        "return u_ * n_ * (E_ - k_) * T_ / 2",
        "return u_ * n_ * (E_ - k_) * T_ / 3",
    ),
    (
        "proof_12_sign_rule.py",
        "return (2 + 8 * u_) * (N_ - 1 / u_)",
        "return (2 + 9 * u_) * (N_ - 1 / u_)",
    ),
    ("proof_12_sign_rule.py", "return 6 * u_ * N_", "return 5 * u_ * N_"),
    (
        "proof_13_drift.py",
        "R**2 / (2 * eta) + R * P / eta +",
        "R**2 / (2 * eta) + R * P / (2 * eta) +",
    ),
]


@pytest.mark.parametrize(
    "name,old,new", MUTATIONS, ids=[f"{m[0][:8]}:{i}" for i, m in enumerate(MUTATIONS)]
)
def test_mutating_a_bound_constant_of_a_new_lemma_fails_lfb_prove(tmp_path, name, old, new, capsys):
    from lfbtheory.cli.prove import run_proof

    d = _mutant(tmp_path, name, old, new)
    original = _original(name)
    assert original.ok, original.error
    mutated = run_proof(d / name)
    assert not mutated.ok and "ProofError" in mutated.error, mutated
