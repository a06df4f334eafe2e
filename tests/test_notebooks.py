"""The notebooks: paired with their jupytext sources, committed without outputs, and executed.

Each ``notebooks/NN_name.ipynb`` is generated from ``notebooks/NN_name.py`` (jupytext
py:percent) and committed without outputs (so they stay reviewable).
The execution test runs every notebook in a fresh python3 kernel with LFB_NOTEBOOK_SMALL=1
(each notebook shrinks its sizes) from the notebooks/ folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="jupytext is in the `test` extra")
nbformat = pytest.importorskip("nbformat", reason="nbformat is in the `test` extra")

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
SOURCES = sorted(NB_DIR.glob("[0-9]*.py"))
EXPECTED = (
    "01_bias_is_the_dual_price",
    "02_regret_of_bias_updates",
    "03_real_router_traces",
    "04_check_your_router",
    "05_loss_free_vs_aux_loss",
    "06_your_own_model",
    "07_choosing_rule_and_step",
    "08_causality_and_expert_choice",
)
CELL_TIMEOUT = 300
# Notebooks that train or wrap torch models: they need the optional extra `torch` (CI installs
# the CPU build; README's test command does not, and then these skip with the reason).
NEEDS_TORCH = {"04_check_your_router", "05_loss_free_vs_aux_loss", "06_your_own_model"}


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_there_are_notebooks_and_every_one_has_its_source_pair():
    stems = tuple(p.stem for p in NOTEBOOKS)
    assert stems == EXPECTED, f"notebooks in {NB_DIR}"
    assert tuple(p.stem for p in SOURCES) == stems, f"py:percent sources in {NB_DIR}"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_agrees_with_its_py_percent_source(ipynb):
    py = ipynb.with_suffix(".py")
    from_py = jupytext.read(py)
    from_ipynb = jupytext.read(ipynb)
    assert _cells(from_ipynb) == _cells(from_py), (
        f"{ipynb.name} drifted from {py.name}; regenerate it with "
        f"`jupytext --to ipynb {py.relative_to(NB_DIR.parent)}`"
    )
    assert from_ipynb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_ipynb_has_no_outputs_or_execution_counts(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{ipynb.name} has no code cells"
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    counted = [
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is not None
    ]
    assert not with_outputs, f"{ipynb.name}: cells {with_outputs} carry outputs; strip them"
    assert not counted, f"{ipynb.name}: cells {counted} carry execution counts; strip them"


def test_notebooks_readme_has_one_line_per_notebook():
    text = (NB_DIR / "README.md").read_text()
    for nb in NOTEBOOKS:
        assert sum(nb.name in line for line in text.splitlines()) == 1, nb.name


def _kernel_manager():  # type: ignore[no-untyped-def]
    """A python3 kernel run by *this* interpreter, whatever kernelspecs are installed.

    With no kernel directories, jupyter_client falls back to ipykernel's native spec, whose
    argv starts with sys.executable (the same venv as the tests; no `ipykernel install`).
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    return KernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
    )


@pytest.mark.slow
@pytest.mark.parametrize("ipynb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_small(ipynb, monkeypatch, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the `test` extra")
    pytest.importorskip("ipykernel", reason="ipykernel (the python3 kernel) is in the `test` extra")
    if ipynb.stem in NEEDS_TORCH:
        pytest.importorskip(
            "torch", reason="PyTorch is an optional extra: pip install torch==2.13.0 (CPU)"
        )
    if os.environ.get("LFB_DOCS_EXECUTED_NOTEBOOKS") == "1":
        # .ci/run sets this after `mkdocs build --strict` has executed every notebook the same
        # way (small mode, from notebooks/, every cell, 'size: small' printed: see
        # docs/_build/gen_pages.py), so CI does not execute them twice.
        pytest.skip(
            "LFB_DOCS_EXECUTED_NOTEBOOKS=1: this CI run's `mkdocs build --strict` already "
            "executed this notebook in the small mode and checked every cell"
        )
    monkeypatch.setenv("LFB_NOTEBOOK_SMALL", "1")
    scratch = tmp_path / "tmp"  # the kernel's temporary folder: what a notebook leaves there
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    nb = nbformat.read(ipynb, as_version=4)
    km = _kernel_manager()
    assert km.kernel_spec.argv[0] == sys.executable, km.kernel_spec.argv
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NB_DIR)}},
    )
    client.execute()  # raises CellExecutionError (with the traceback) if a cell fails
    left = sorted(p.name for p in scratch.glob("lfb-nb*"))
    assert not left, f"the notebook left its scratch folders in the temp folder: {left}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    printed = "".join(o.get("text", "") for c in code for o in c.outputs)
    assert "size: small" in printed, "the notebook did not see LFB_NOTEBOOK_SMALL=1"
