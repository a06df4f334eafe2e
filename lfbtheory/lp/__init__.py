"""The batch assignment LP: its model and duality, and exact methods behind one front door.

    max sum s[t,i] x[t,i]  s.t.  sum_i x[t,i] = k,  sum_t x[t,i] = L (or <= L),  0 <= x <= 1

The constraint matrix is totally unimodular, so the LP has a 0/1 optimum (the exact balanced
assignment). Dualising the expert constraints gives D(p) = sum_t topk_i(s[t,i] + p_i) - L sum p:
routing with bias p is the Lagrangian best response and the bias is the dual price.
"""

from lfbtheory.lp.solve import (
    BalancedAssignment,
    Certificate,
    certify,
    dual_objective,
    dual_subgradient,
    optimal_prices,
    resolve_capacity,
    solve_balanced,
)

__all__ = [
    "BalancedAssignment",
    "Certificate",
    "certify",
    "dual_objective",
    "dual_subgradient",
    "optimal_prices",
    "resolve_capacity",
    "solve_balanced",
]
