"""Generate the site's pages that come from elsewhere in the repository (mkdocs-gen-files).

- ``theory/proofs.md``: proofs/README.md;
- ``api/<module>.md``: one mkdocstrings page per public module (no import: griffe reads the
  sources, so optional extras such as torch need not be installed);
- ``cli.md``: the help of ``lfb`` and of every subcommand, printed by the argparse parser that
  ``lfb`` itself builds (``lfbtheory.cli.build_parser``), never copied by hand;
- ``notebooks/<name>.ipynb``: every notebook executed now in the small mode
  (LFB_NOTEBOOK_SMALL=1, from the notebooks/ folder, as tests/test_notebooks.py runs them),
  rendered with its outputs by mkdocs-jupyter. ``LFB_DOCS_EXECUTE=0`` skips the execution (a
  quick local preview; each notebook page then says that it was not executed).
"""

from __future__ import annotations

import argparse
import os
import pkgutil
import sys
import time
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = [
    "lfbtheory",
    "lfbtheory.routing",
    "lfbtheory.metrics",
    "lfbtheory.lp",
    "lfbtheory.online",
    "lfbtheory.analysis",
    "lfbtheory.testing.conformance",
    "lfbtheory.testing.solvers",
    "lfbtheory.testing.mutants",
    "lfbtheory.testing.strategies",
    "lfbtheory.adapters",
    "lfbtheory.traces",
    "lfbtheory.fileio",
    "lfbtheory.workloads",
    "lfbtheory.identity",
]
PACKAGES_WITH_SUBMODULES = {
    "lfbtheory.lp",
    "lfbtheory.online",
    "lfbtheory.analysis",
    "lfbtheory.adapters",
    "lfbtheory.workloads",
}
CELL_TIMEOUT = 600


def _submodules(package: str) -> list[str]:
    path = ROOT / Path(*package.split("."))
    return [
        f"{package}.{m.name}"
        for m in pkgutil.iter_modules([str(path)])
        if not m.name.startswith("_")
    ]


def api_pages() -> list[str]:
    modules: list[str] = []
    for name in PUBLIC:
        modules.append(name)
        if name in PACKAGES_WITH_SUBMODULES:
            modules += _submodules(name)
    for name in modules:
        with mkdocs_gen_files.open(f"api/{name}.md", "w") as fh:
            fh.write(f"# `{name}`\n\n::: {name}\n")
    with mkdocs_gen_files.open("api/index.md", "w") as fh:
        fh.write("# API reference\n\nGenerated from the docstrings (mkdocstrings). Modules:\n\n")
        fh.writelines(f"- [`{m}`]({m}.md)\n" for m in modules)
    return modules


def cli_page() -> None:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal width
    from lfbtheory.cli import build_parser

    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [
        "# Command line reference\n\n",
        "Printed by the parsers `lfb` builds (`lfbtheory.cli.build_parser`) when this site was "
        "built, so it is exactly what `lfb COMMAND --help` prints.\n\n",
        "## lfb\n\n```text\n",
        parser.format_help(),
        "```\n",
    ]
    for name, sub_parser in sub.choices.items():
        parts += [f"\n## lfb {name}\n\n```text\n", sub_parser.format_help(), "```\n"]
    with mkdocs_gen_files.open("cli.md", "w") as fh:
        fh.write("".join(parts))


def proofs_page() -> None:
    with mkdocs_gen_files.open("theory/proofs.md", "w") as fh:
        fh.write((ROOT / "proofs" / "README.md").read_text())
    mkdocs_gen_files.set_edit_path("theory/proofs.md", "../proofs/README.md")


def _kernel_manager():  # type: ignore[no-untyped-def]
    """A python3 kernel run by this interpreter (ipykernel's native spec; no kernelspec needed)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    return KernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
    )


def notebook_pages() -> None:
    import nbformat

    execute = os.environ.get("LFB_DOCS_EXECUTE", "1") != "0"
    nb_dir = ROOT / "notebooks"
    for ipynb in sorted(nb_dir.glob("[0-9]*.ipynb")):
        nb = nbformat.read(ipynb, as_version=4)
        if execute:
            import nbclient

            os.environ["LFB_NOTEBOOK_SMALL"] = "1"  # the kernel inherits this environment
            t0 = time.perf_counter()
            nbclient.NotebookClient(
                nb,
                km=_kernel_manager(),
                timeout=CELL_TIMEOUT,
                resources={"metadata": {"path": str(nb_dir)}},
            ).execute()  # a failing cell raises CellExecutionError: the build fails
            code = [c for c in nb.cells if c.cell_type == "code"]
            printed = "".join(o.get("text", "") for c in code for o in c.outputs)
            if not all(c.execution_count is not None for c in code) or "size: small" not in printed:
                raise RuntimeError(f"{ipynb.name}: not every cell ran in the small mode")
            print(
                f"docs: executed {ipynb.name} (small mode) in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )
            note = (
                "*Executed when this site was built, in the small mode "
                "(`LFB_NOTEBOOK_SMALL=1`); the source is "
                f"`notebooks/{ipynb.stem}.py`.*"
            )
        else:
            note = (
                "*Not executed in this build (`LFB_DOCS_EXECUTE=0`): no outputs. The source "
                f"is `notebooks/{ipynb.stem}.py`.*"
            )
        first = nb.cells[0] if nb.cells and nb.cells[0].cell_type == "markdown" else None
        banner = nbformat.v4.new_markdown_cell(note)
        nb.cells.insert(1 if first is not None else 0, banner)
        with mkdocs_gen_files.open(f"notebooks/{ipynb.name}", "w") as fh:
            nbformat.write(nb, fh)
    with mkdocs_gen_files.open("notebooks/index.md", "w") as fh:
        fh.write((nb_dir / "README.md").read_text())


api_pages()
cli_page()
proofs_page()
notebook_pages()
