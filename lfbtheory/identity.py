"""Code identity: what a cached result was computed by.

A cache key (sweep points, testbed runs, compiled stream caches) must change whenever the code
or data that produced the result can have changed, or an edit silently reuses stale results.
:func:`code_identity` is the package version plus a SHA-256 over every file of the installed
package (sources and shipped data, in sorted relative-path order, each as path and bytes;
``__pycache__`` and compiled caches excluded, since they are derived from the sources).

Decision: one hash over the whole package, not a per-module dependency graph. Any edit
invalidates every cached result, which can recompute something that did not change but can
never reuse something that did -- the cheap direction of the trade for a verification toolkit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["code_identity", "source_hash"]

_DERIVED = {"__pycache__"}
_DERIVED_SUFFIXES = (".pyc", ".pyo", ".nbi", ".nbc")


def source_hash(root: str | Path | None = None) -> str:
    """SHA-256 (hex) of the package tree at ``root`` (default: this installed package).

    Each file contributes its relative POSIX path, a NUL, its byte length, a NUL and its bytes,
    in sorted path order, so renaming, moving, adding or removing a file changes the hash too.
    """
    base = Path(__file__).resolve().parent if root is None else Path(root)
    if not base.is_dir():
        raise ValueError(f"root: {str(base)!r} is not a folder")
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in base.rglob("*")
        if p.is_file()
        and not _DERIVED.intersection(p.relative_to(base).parts)
        and not p.name.endswith(_DERIVED_SUFFIXES)
    )
    for path in files:
        data = path.read_bytes()
        digest.update(path.relative_to(base).as_posix().encode())
        digest.update(b"\0%d\0" % len(data))
        digest.update(data)
    return digest.hexdigest()


def code_identity() -> dict[str, str]:
    """``{"version": <package version>, "source": <source_hash()>}`` for cache keys."""
    from lfbtheory import __version__

    return {"version": str(__version__), "source": source_hash()}
