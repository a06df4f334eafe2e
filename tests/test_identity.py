"""Code identity changes with every edit that can change a result, and only with the tree."""

import shutil
from pathlib import Path

import pytest

import lfbtheory
from lfbtheory.identity import code_identity, source_hash

PACKAGE = Path(lfbtheory.__file__).resolve().parent


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "lfbtheory"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_a_copy_hashes_like_the_package(tree: Path) -> None:
    assert source_hash(tree) == source_hash()


def test_derived_files_do_not_count(tree: Path) -> None:
    before = source_hash(tree)
    (tree / "__pycache__").mkdir(exist_ok=True)
    (tree / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (tree / "_engine" / "topk.row_top-1.py311.nbi").write_bytes(b"junk")
    assert source_hash(tree) == before


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: (t / "routing.py").write_text((t / "routing.py").read_text() + "\n# edit\n"),
        lambda t: (t / "metrics.py").rename(t / "metrics2.py"),
        lambda t: (t / "new_module.py").write_text(""),
        lambda t: (t / "data" / "README.md").unlink(),
        lambda t: (t / "_engine" / "tuning.json").write_text("{}"),
    ],
    ids=["edit", "rename", "add", "remove", "data"],
)
def test_every_edit_changes_the_hash(tree: Path, edit) -> None:  # type: ignore[no-untyped-def]
    before = source_hash(tree)
    edit(tree)
    assert source_hash(tree) != before


def test_identity_names_version_and_source() -> None:
    ident = code_identity()
    assert ident == {"version": lfbtheory.__version__, "source": source_hash()}


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root"):
        source_hash(tmp_path / "missing")
