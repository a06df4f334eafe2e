"""The proof kernel cannot be fooled by its caller: every rule rejects a wrong step, a theorem
must be exactly the end of its chain, and ``lfb prove`` fails a false lemma -- the two false
variants of Lemma 5 that passed the old narrated proofs, text mutants of the bound constants,
``python -O`` -- and the mutation battery kills every mutant of every stated bound."""

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

from _certify import Lemma, ProofError, assumed, check, checked, identity  # noqa: E402

DOC = """Lemma X: a test lemma.

Hypotheses. h: x = 2; pos: y >= 0; small: x <= 1.
"""


def test_a_hypothesis_needs_its_name_in_the_docstring_a_status_and_one_declaration():
    lem = Lemma(DOC)
    x = sp.Symbol("x", real=True)
    with pytest.raises(ProofError, match="not named in the lemma's docstring"):
        lem.hypothesis("secret", x - 2, status=assumed("why not"))
    with pytest.raises(ProofError, match="needs a status"):
        lem.hypothesis("h", x - 2)
    lem.hypothesis("h", x, "==", 2, status=assumed("given"))
    with pytest.raises(ProofError, match="declared twice"):
        lem.hypothesis("h", x, "==", 3, status=assumed("given"))
    lem.hypothesis("h [second instance]", x, "==", 2, status=assumed("given"))
    with pytest.raises(ProofError, match="tests/file.py::test_name"):
        checked("a test somewhere")


def test_a_certificate_must_be_an_exact_identity_with_nonnegative_ingredients():
    lem = Lemma(DOC)
    x = sp.Symbol("x", real=True)
    lem.hypothesis("h", x, "==", 2, status=assumed("given"))
    lem.certify("x - 2 >= 0 on x = 2", 0, "<=", x - 2, using=[(-1, "h")])
    with pytest.raises(ProofError, match="certificate fails"):
        lem.certify("x - 3 >= 0 is false on x = 2", 0, "<=", x - 3, using=[(-1, "h")])
    with pytest.raises(ProofError, match="not manifestly >= 0"):
        lem.certify("a negative term", 0, "<=", x - 3, using=[(-1, "h")], terms=[sp.Integer(-1)])
    with pytest.raises(ProofError, match="not a fact"):
        lem.certify("an undeclared name", 0, "<=", x - 2, using=[(1, "nowhere")])
    lem.hypothesis("small", x, "<=", 1, status=assumed("given"))
    with pytest.raises(ProofError, match="multiplier .* not manifestly >= 0"):
        lem.certify("an inequality used with a negative weight", 1, "<=", x, using=[(-1, "small")])
    with pytest.raises(ProofError, match="strict"):
        lem.certify("no strict ingredient", x, "<", 1, using=[(1, "small")])
    with pytest.raises(ProofError, match="cannot use the inequality"):
        lem.identity("an identity from an inequality", x, 1, using=[(1, "small")])


def test_a_nonnegative_symbol_counts_only_when_registered():
    lem = Lemma(DOC)
    y = sp.Symbol("y", nonnegative=True)
    with pytest.raises(ProofError, match="registered"):
        lem.certify("y >= 0 by sympy's assumption alone", 0, "<=", y, terms=[y])
    with pytest.raises(ProofError, match="meaning"):
        lem.assume(y, meaning=" ")
    lem.assume(y, meaning="pos: y is a count")
    lem.certify("y >= 0 once registered", 0, "<=", y, terms=[y])
    z = sp.Symbol("z", real=True)
    with pytest.raises(ProofError, match="not created non-negative"):
        lem.assume(z, meaning="z is anything")


def test_a_theorem_is_exactly_the_end_of_its_chain():
    lem = Lemma(DOC)
    x = lem.var("x", "a non-negative number")
    lem.certify("x <= x + 1", x, "<=", x + 1, terms=[sp.Integer(1)])
    lem.theorem("true", "x <= x + 1", x, "<=", x + 1)
    for lhs, rel, rhs in ((x, "<=", x + 2), (x, "<=", x + sp.Rational(1, 2)), (x + 1, "<=", x)):
        with pytest.raises(ProofError, match="not the stated claim"):
            lem.theorem(f"{lhs} {rel} {rhs}", "x <= x + 1", lhs, rel, rhs)
    with pytest.raises(ProofError, match="not the stated claim"):
        lem.theorem("a strict claim from a weak fact", "x <= x + 1", x, "<", x + 1)


def test_induction_needs_its_base_its_step_and_the_hypothesis_in_the_step():
    lem = Lemma(DOC)
    t = lem.index("T", "the horizon")
    s = lem.sequence("S", "a partial sum")
    lem.sequence_recursion("sum", s, t, sp.Integer(1), s(t) + 1)
    lem.instance("sum T", "sum [t+1]", {t: t})
    base = lem.identity("base", s(1), 1, subs=["sum [1]"])
    ih = lem.induction_hypothesis("S(T) = T", s(t), "==", t, t)
    step = lem.identity("step", s(t + 1), t + 1, using=[(1, ih)], subs=["sum T"])
    fact = lem.induction("S(T) = T", ih, base, step)
    lem.theorem("S(T) = T", fact, s(t), "==", t)
    with pytest.raises(ProofError, match="open induction hypothesis"):
        lem.instance("instantiate the hypothesis", ih, {t: t + 1})
    with pytest.raises(ProofError, match="rests on open"):
        lem.theorem("the step alone", step, s(t + 1), "==", t + 1)
    bad_ih = lem.induction_hypothesis("S(T) = 2T", s(t), "==", 2 * t, t)
    with pytest.raises(ProofError, match="not the statement at"):
        lem.induction("S(T) = 2T", bad_ih, base, step)


def test_instance_cannot_move_a_symbol_a_hypothesis_fixes_or_break_its_sign():
    lem = Lemma(DOC)
    x = sp.Symbol("x", real=True)
    y = lem.var("y", "a non-negative number")
    lem.hypothesis("h", x, "==", 2, status=assumed("given"))
    lem.identity("x + y = 2 + y", x + y, 2 + y, using=[(1, "h")])
    with pytest.raises(ProofError, match="fixed by hypothesis"):
        lem.instance("move x", "x + y = 2 + y", {x: 3})
    with pytest.raises(ProofError, match="not manifestly >= 0"):
        lem.instance("negative y", "x + y = 2 + y", {y: -1})


def test_summed_and_monotone_check_their_side_conditions():
    lem = Lemma(DOC)
    lem.coordinate_set("S", 3)
    c = lem.coordinate("c", "a load", "nonneg", indexed=False, over="S")
    total = sp.Symbol("C", real=True)
    lem.sum_of(total, c)
    lem.certify("c >= 0", 0, "<=", c, terms=[c])
    with pytest.raises(ProofError, match="has 3 coordinates, not 4"):
        lem.summed("wrong count", "c >= 0", {c: total}, 4)
    lem.summed("C >= 0", "c >= 0", {c: total}, 3)
    x = lem.var("x", "a positive real", positive=True)
    lem.certify("1 >= 0", 0, "<=", 1 / (1 + x), terms=[1 / (1 + x)])
    with pytest.raises(ProofError, match="f' ="):
        lem.monotone("wrong derivative", sp.log(1 + x) - x, x, "1 >= 0")


@settings(max_examples=30, deadline=None)
@given(coefs=st.lists(st.integers(0, 5), min_size=1, max_size=4), offset=st.integers(-7, -1))
def test_any_false_constant_shift_is_rejected_and_the_true_form_accepted(coefs, offset):
    lem = Lemma(DOC)
    xs = sp.symbols(f"v0:{len(coefs)}", real=True)
    terms = [c * (v - 1) ** 2 for c, v in zip(coefs, xs, strict=True)]  # each >= 0
    expr = sum(terms)
    lem.certify("a sum of squares is >= 0", 0, "<=", expr, terms=terms)
    with pytest.raises(ProofError):  # expr + offset < 0 at v = 1: no certificate may pass
        lem.certify("shifted below zero", 0, "<=", expr + offset, terms=terms)
    with pytest.raises(ProofError):
        lem.certify("with a negative term", 0, "<=", expr + offset, terms=[*terms, offset])


def test_identity_and_check_raise_instead_of_asserting():
    x = sp.Symbol("x")
    with pytest.raises(ProofError):
        identity((x + 1) ** 2, x**2 + 1, "a false identity")
    with pytest.raises(ProofError):
        check(False, "a false fact")


# ---------------------------------------------------------------- lfb prove on edited files


@functools.cache
def _original(name: str):
    from lfbtheory.cli.prove import run_proof

    return run_proof(PROOFS / name)


def _mutant(tmp_path: Path, name: str, edits: list[tuple[str, str]]) -> Path:
    d = tmp_path / "proofs"
    d.mkdir()
    shutil.copy(PROOFS / "_certify.py", d)
    text = (PROOFS / name).read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, f"mutation site not found in {name}: {old}"
        text = text.replace(old, new)
    (d / name).write_text(text, encoding="utf-8")
    return d


def _prove(proof_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROOFS.parent)}
    return subprocess.run(
        [sys.executable, *flags, "-m", "lfbtheory", "prove", "--quiet", "--dir", str(proof_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_python_O_does_not_pass_a_mutated_false_lemma(tmp_path):
    d = _mutant(
        tmp_path, "proof_10_maxvio_range.py", [("return E_ / k_ - 1", "return E_ / k_ - 2")]
    )
    res = _prove(d, "-O")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAIL  proof_10_maxvio_range" in res.stdout and "ProofError" in res.stdout


MUTATIONS = {
    # the two false Lemma-5 variants that passed the narrated proofs: each halves a bound AND the
    # certificate line that fed it; both statements are false at T = 1
    "lemma 5 (d) halved with its certificate": (
        "proof_05_regret.py",
        [
            ("G**2 / (2 * mu) * (1 + sp.log(T))", "G**2 / (4 * mu) * (1 + sp.log(T))"),
            ('(G**2 / (2 * mu), "(e) harmonic")', '(G**2 / (4 * mu), "(e) harmonic")'),
        ],
    ),
    "lemma 5 (c) halved with its certificate": (
        "proof_05_regret.py",
        [
            (
                "R**2 * sp.sqrt(T) / (2 * c) + c * G**2 * (2 * sp.sqrt(T) - 1) / 2",
                "R**2 * sp.sqrt(T) / (4 * c) + c * G**2 * (2 * sp.sqrt(T) - 1) / 2",
            )
        ],
    ),
    "lemma 7 (d) on-lattice state count": (
        "proof_07_bounded_bias.py",
        [
            (
                "return (math.floor(2 * Fraction(bmax) / Fraction(u)) + 1) ** (n_experts - 1)",
                "return (2 * math.floor(Fraction(bmax) / Fraction(u)) + 1) ** (n_experts - 1)",
            )
        ],
    ),
    "lemma 11 (b) halved n": (
        "proof_11_balance.py",
        [("return L_ * w_ / u_ + n_", "return L_ * w_ / u_ + n_ / 2")],
    ),
    "lemma 11 (e) divided by 3": (
        "proof_11_balance.py",
        [("return u_ * n_ * (E_ - k_) * T_ / 2", "return u_ * n_ * (E_ - k_) * T_ / 3")],
    ),
    "lemma 12 (e) 9u": (
        "proof_12_sign_rule.py",
        [("return (2 + 8 * u_) * (N_ - 1 / u_)", "return (2 + 9 * u_) * (N_ - 1 / u_)")],
    ),
    "lemma 12 (e) 5u": ("proof_12_sign_rule.py", [("return 6 * u_ * N_", "return 5 * u_ * N_")]),
    "lemma 13 (c) half the path term": (
        "proof_13_drift.py",
        [
            (
                "return R**2 / (2 * eta) + R * P / eta +",
                "return R**2 / (2 * eta) + R * P / (2 * eta) +",
            )
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_an_edited_bound_fails_lfb_prove(tmp_path, case):
    from lfbtheory.cli.prove import run_proof

    name, edits = MUTATIONS[case]
    original = _original(name)
    assert original.ok, original.error
    mutated = run_proof(_mutant(tmp_path, name, edits) / name)
    assert not mutated.ok and "ProofError" in mutated.error, mutated


def test_a_missing_checking_test_or_a_broken_citation_fails_lfb_prove(tmp_path):
    from lfbtheory.cli.prove import run_all

    d = _mutant(
        tmp_path,
        "proof_05_regret.py",
        [("test_inverse_sqrt_step_regret_below_bound", "test_that_does_not_exist")],
    )
    (r,) = run_all(d)
    assert not r.ok and "does not exist" in r.error
    d2 = tmp_path / "two"
    d2.mkdir()
    shutil.copy(PROOFS / "_certify.py", d2)
    shutil.copy(PROOFS / "proof_10_maxvio_range.py", d2)
    text = (PROOFS / "proof_11_balance.py").read_text(encoding="utf-8")
    (d2 / "proof_11_balance.py").write_text(text, encoding="utf-8")
    text7 = (PROOFS / "proof_07_bounded_bias.py").read_text(encoding="utf-8")
    site = "lem.theorem(tag, fact,"
    assert site in text7
    text7 = text7.replace(site, 'lem.theorem(tag + " renamed", fact,')
    (d2 / "proof_07_bounded_bias.py").write_text(text7, encoding="utf-8")
    results = {r.name: r for r in run_all(d2)}
    assert results["proof_07_bounded_bias"].ok
    lemma11 = results["proof_11_balance"]
    assert not lemma11.ok and "Lemma 7 (b) is not a passing theorem" in lemma11.error


def test_the_mutation_battery_kills_every_mutant_of_every_bound_and_every_step(capsys):
    """Every constant of every stated theorem halved and doubled, every inequality reversed,
    and four mutants (the reversal and a spread over the constants) of every step of every
    chain: 100% must die. The full battery (every constant of every step) is
    ``lfb prove --mutants``, recorded by proofs/mutation_battery.py."""
    from lfbtheory.cli.prove import mutation_battery

    rep = mutation_battery(PROOFS, per_step=4)
    print(f"mutation score: {rep.score()}")
    assert not rep.errors, rep.errors
    assert rep.total > 3000 and not rep.survivors, rep.survivors[:10]
    assert set(rep.statements) == {p.stem for p in PROOFS.glob("proof_*.py")}
