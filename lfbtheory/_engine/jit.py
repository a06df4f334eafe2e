"""The engine's two compile decorators (numba when importable, else the plain Python function).

Every compiled function of the package is declared through one of these, so the whole compiled
surface is every ``@compiled`` and ``@inline_compiled`` under ``lfbtheory/_engine``.
"""

from __future__ import annotations

from types import ModuleType

numba: ModuleType | None
try:
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "compiled", "inline_compiled"]


def compiled(func):  # type: ignore[no-untyped-def]
    """numba.njit(cache=True, nogil=True)(func) when numba is importable, else func itself
    (the same code then runs as plain Python: exact, slow)."""
    if HAVE_NUMBA:
        return numba.njit(cache=True, nogil=True)(func)
    return func


def inline_compiled(func):  # type: ignore[no-untyped-def]
    """:func:`compiled`, inlined by LLVM into every numba caller (``forceinline``) and without
    numba's reference counting in ``func`` (``_nrt=False``): for a row routine that allocates
    nothing and only touches arrays its caller owns (a plain compiled call costs an incref and
    a decref per array argument per call). Both options exist in every numba this package
    supports (>= 0.59); ``_nrt`` is numba's own private spelling."""
    if HAVE_NUMBA:
        return numba.njit(cache=True, nogil=True, forceinline=True, _nrt=False)(func)
    return func
