"""The package's own arithmetic for the sums and exponentials both loops take.

The online loop runs on two paths, the reference loop in Python and the compiled loop of
:mod:`lfbtheory._engine.loop`, and their trajectories must agree bit for bit. Rather than
replay some library's private summation order, the package defines its own and both paths
call these functions:

- :func:`total`: a float64 sum in eight interleaved running sums (entry i goes to lane i mod 8
  over the first n - n mod 8 entries), combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) +
  (r6 + r7)), then the remaining entries added in order; fewer than 8 entries are added in
  order from +0.0. Error O(n u / 8); deterministic for a given array whatever the platform;
- :func:`exp`: the elementwise exponential by the C library's ``exp`` (the compiled code and
  the reference path make the same calls).
"""

from __future__ import annotations

import math

import numpy as np

from lfbtheory._engine.jit import compiled, inline_compiled

__all__ = ["exp", "exp_into", "total"]


@inline_compiled
def lanes(a, lo, n):  # type: ignore[no-untyped-def]
    """:func:`total` of a[lo:lo + n] (a contiguous float64 1-D array)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    m = n - n % 8
    i = 8
    while i < m:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return 0.0 + res  # +0.0 for a sum of signed zeros, as the n < 8 case


@compiled
def _total(a):  # type: ignore[no-untyped-def]
    return lanes(a, 0, a.shape[0])


def total(a: np.ndarray) -> float:
    """The package's sum of a float64 array (module docstring), as a Python float."""
    return float(_total(np.ascontiguousarray(a, dtype=np.float64).reshape(-1)))


@inline_compiled
def exp_into(x, out):  # type: ignore[no-untyped-def]
    """out[i] = exp(x[i]) by the C library's exp."""
    for i in range(x.shape[0]):
        out[i] = math.exp(x[i])


@compiled
def _exp(x):  # type: ignore[no-untyped-def]
    out = np.empty(x.shape[0])
    exp_into(x, out)
    return out


def exp(x: np.ndarray) -> np.ndarray:
    """exp of a float64 1-D array, elementwise (module docstring)."""
    return _exp(np.ascontiguousarray(x, dtype=np.float64))  # type: ignore[no-any-return]
