"""Byte corpus: the Python standard library source of the running interpreter.

Files: every ``*.py`` under ``sysconfig.get_paths()["stdlib"]``, excluding any path with a
directory component in :data:`EXCLUDED_DIRS` (``site-packages``/``dist-packages``: third-party
code; ``test``/``tests``/``idlelib``/``lib2to3`` test data: large generated or deliberately
odd files). Read as raw bytes (no decoding).

Split BY FILE, fixed and documented: a file is in validation iff
``int(sha256(relpath)[:8], 16) % 100 < VAL_PERCENT`` (relpath in POSIX form relative to the
stdlib root), so no file is in both and the split does not depend on the file order or on the
other files present. The SHA-256 of the sorted list of (relpath, size) pairs identifies the
corpus (runs on different Pythons differ there).
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["Corpus", "EXCLUDED_DIRS", "VAL_PERCENT", "is_validation", "list_files", "load_corpus"]

EXCLUDED_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "lib2to3", "__pycache__"}
)
VAL_PERCENT = 10
SEPARATOR = b"\n\x00\n"  # between files; byte 0 never occurs in stdlib source


def is_validation(relpath: str, val_percent: int = VAL_PERCENT) -> bool:
    """True iff ``relpath`` belongs to the validation split (hash bucket < val_percent)."""
    h = int(hashlib.sha256(relpath.encode("utf-8")).hexdigest()[:8], 16)
    return h % 100 < val_percent


def list_files(root: str | Path | None = None) -> list[tuple[str, Path]]:
    """Sorted (relpath, path) of the corpus files under ``root`` (default: this stdlib)."""
    base = Path(sysconfig.get_paths()["stdlib"] if root is None else root)
    if not base.is_dir():
        raise ValueError(f"root must be an existing directory, got {str(base)!r}")
    out = []
    for p in base.rglob("*.py"):
        rel = p.relative_to(base)
        if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]) or not p.is_file():
            continue
        out.append((rel.as_posix(), p))
    out.sort()
    return out


@dataclass(frozen=True)
class Corpus:
    """train/val: uint8 byte arrays (files joined by SEPARATOR); files_hash identifies the list."""

    train: NDArray[np.uint8]
    val: NDArray[np.uint8]
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    files_hash: str
    root: str

    def summary(self) -> dict[str, object]:
        return {
            "root": self.root,
            "files_hash": self.files_hash,
            "train_files": len(self.train_files),
            "val_files": len(self.val_files),
            "train_bytes": int(self.train.size),
            "val_bytes": int(self.val.size),
            "val_percent": VAL_PERCENT,
            "excluded_dirs": sorted(EXCLUDED_DIRS),
        }


def load_corpus(
    root: str | Path | None = None, *, max_bytes: int | None = None, val_percent: int = VAL_PERCENT
) -> Corpus:
    """Read the corpus. ``max_bytes`` caps each split (files taken in sorted order, whole files
    only, at least one) to keep small runs fast; the split rule is unchanged by the cap."""
    if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")
    if not 0 < val_percent < 100:
        raise ValueError(f"val_percent must be in (0, 100), got {val_percent}")
    files = list_files(root)
    if not files:
        raise ValueError(f"no *.py files found under root={root!r}")
    ident = hashlib.sha256()
    parts: dict[bool, list[bytes]] = {False: [], True: []}
    names: dict[bool, list[str]] = {False: [], True: []}
    sizes = {False: 0, True: 0}
    for rel, path in files:
        data = path.read_bytes()
        ident.update(f"{rel}\t{len(data)}\n".encode())
        v = is_validation(rel, val_percent)
        if max_bytes is not None and sizes[v] >= max_bytes:
            continue
        parts[v].append(data)
        names[v].append(rel)
        sizes[v] += len(data) + len(SEPARATOR)
    if not parts[True] or not parts[False]:
        raise ValueError("the split left the train or the validation set empty")

    def join(chunks: list[bytes]) -> NDArray[np.uint8]:
        return np.frombuffer(SEPARATOR.join(chunks), dtype=np.uint8).copy()

    return Corpus(
        join(parts[False]),
        join(parts[True]),
        tuple(names[False]),
        tuple(names[True]),
        ident.hexdigest(),
        str(Path(sysconfig.get_paths()["stdlib"] if root is None else root)),
    )
