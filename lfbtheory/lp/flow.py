"""The balanced assignment as an OR-tools min-cost flow (method "flow", needs the ``flow`` extra).

Nodes: one per token (supply k), one per expert, one sink (demand n*k); arcs token -> expert
(capacity 1, cost -round(s * scale)) and expert -> sink (capacity L). OR-tools needs integer
costs: the scores, rescaled by a power of two to max |s| < 1, are multiplied by
min(2^40, 2^60 / (n k + 1)), so every path cost fits in int64 and the integer optimum is within
about n k 2^-40 max|s| of the float optimum; prices and the certificate are computed in
floating point afterwards (:func:`lfbtheory.lp.optimal_prices`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["flow_assignment"]


def flow_assignment(s: NDArray[np.float64], k: int, cap: int) -> NDArray[np.uint8]:
    """(n, E) 0/1 min-cost-flow optimum (inputs validated; rescaled here to max |s| < 1)."""
    try:
        from ortools.graph.python import min_cost_flow
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "method='flow' needs OR-tools: pip install 'lfbtheory[flow]' (or pip install ortools)"
        ) from None
    n, e = s.shape
    smax = float(np.max(np.abs(s)))
    if smax > 0:
        s = np.ldexp(s, -int(np.frexp(smax)[1]))  # exact power-of-two rescaling to max|s| < 1
    scale = min(2.0**40, 2.0**60 / (n * k + 1))
    cost = -np.rint(s * scale).astype(np.int64).ravel()
    tok = np.repeat(np.arange(n, dtype=np.int64), e)
    exp = np.tile(np.arange(n, n + e, dtype=np.int64), n)
    sink = n + e
    smcf = min_cost_flow.SimpleMinCostFlow()
    arcs = smcf.add_arcs_with_capacity_and_unit_cost(tok, exp, np.ones(n * e, dtype=np.int64), cost)
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.arange(n, n + e, dtype=np.int64),
        np.full(e, sink, dtype=np.int64),
        np.full(e, min(cap, n), dtype=np.int64),
        np.zeros(e, dtype=np.int64),
    )
    supplies = np.zeros(n + e + 1, dtype=np.int64)
    supplies[:n] = k
    supplies[sink] = -n * k
    smcf.set_nodes_supplies(np.arange(n + e + 1, dtype=np.int64), supplies)
    status = smcf.solve()
    if status != smcf.OPTIMAL:
        raise RuntimeError(f"OR-tools min-cost flow returned status {status}")
    return smcf.flows(arcs).reshape(n, e).astype(np.uint8)
