"""The batch assignment LP: its model and duality, and exact methods behind one front door.

    max sum s[t,i] x[t,i]  s.t.  sum_i x[t,i] = k,  sum_t x[t,i] = L (or <= L),  0 <= x <= 1

The constraint matrix is totally unimodular, so the LP has a 0/1 optimum (the exact balanced
assignment). Dualising the expert constraints gives D(p) = sum_t topk_i(s[t,i] + p_i) - L sum p:
routing with bias p is the Lagrangian best response and the bias is the dual price
(arXiv 2408.15664 Sec. 3). Modules: :mod:`~lfbtheory.lp.model` (capacity, result types, the
numeric domain), :mod:`~lfbtheory.lp.duality` (D, its subgradient, the certificate, exact
prices), :mod:`~lfbtheory.lp.solve` (the front door :func:`solve_balanced`; for streams
:func:`solve_stream` and :func:`solve_prefixes`, each with ``output="optima"`` for the values only),
and the methods :mod:`~lfbtheory._engine.ssp` (with :mod:`~lfbtheory._engine.dense` for one batch),
:mod:`~lfbtheory.lp.flow`, :mod:`~lfbtheory.lp.oracle`.
"""

from lfbtheory.lp.certificate import certify, exchange_graph, optimal_prices
from lfbtheory.lp.duality import dual_objective, dual_subgradient
from lfbtheory.lp.model import (
    METHODS,
    RTOL,
    BalancedAssignment,
    Certificate,
    CertificationError,
    Method,
    resolve_capacity,
)
from lfbtheory.lp.solve import (
    solve_balanced,
    solve_prefixes,
    solve_stream,
)

__all__ = [
    "METHODS",
    "RTOL",
    "BalancedAssignment",
    "Certificate",
    "CertificationError",
    "Method",
    "certify",
    "dual_objective",
    "dual_subgradient",
    "exchange_graph",
    "optimal_prices",
    "resolve_capacity",
    "solve_balanced",
    "solve_prefixes",
    "solve_stream",
]
