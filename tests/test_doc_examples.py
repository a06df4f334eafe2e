"""Every docstring Example in the package runs and prints what it says (numpydoc sections)."""

import doctest
import importlib
import inspect
from pathlib import Path

import pytest

import lfbtheory

# modules whose source holds an Example, found by reading the sources (not a hand-kept list)
ROOT = Path(lfbtheory.__file__).parent
MODULES = sorted(
    ".".join(("lfbtheory", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
    for p in ROOT.rglob("*.py")
    if ">>> " in p.read_text() and "_engine" not in p.parts
)

# the functions of the top-level API every user meets first
CORE = [
    name
    for name in lfbtheory.__all__
    if inspect.isfunction(getattr(lfbtheory, name)) and name != "regret_report"
]


def test_examples_were_found():
    assert "lfbtheory.routing" in MODULES and "lfbtheory.lp.solve" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.parametrize("name", CORE)
def test_core_function_has_examples(name):
    doc = inspect.getdoc(getattr(lfbtheory, name)) or ""
    assert "Examples\n--------" in doc and ">>> " in doc
