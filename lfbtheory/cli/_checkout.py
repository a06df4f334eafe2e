"""Locate a folder of the source checkout (``proofs/``, ``benchmarks/``) from the package."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = "the lfbtheory source repository"


def checkout_dir(name: str, path: str | Path | None, command: str) -> Path:
    """``path`` if given, else ``<folder holding the package>/<name>``.

    Raises FileNotFoundError naming the folder and how to get it: ``proofs/`` and
    ``benchmarks/`` belong to a source checkout and are not installed with the wheel.
    """
    if path is None:
        candidate = Path(__file__).resolve().parents[2] / name
    else:
        candidate = Path(path)
    if not candidate.is_dir():
        raise FileNotFoundError(
            f"{name}/ not found at {candidate}. `{command}` runs the {name}/ folder of a source "
            f"checkout, which a wheel does not install: clone {REPOSITORY}, `pip install -e .` "
            f"inside it and run `{command}` there, or pass --dir PATH/TO/{name}"
        )
    return candidate
