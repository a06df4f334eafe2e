"""lfbtheory: theory and verification of auxiliary-loss-free load balancing in MoE routing.

The bias of Loss-Free Balancing (arXiv 2408.15664) is the dual price of the expert-capacity
constraint of the batch assignment LP; this package routes with it, solves the LP exactly,
certifies optimality, and measures the online bias updates against exact comparators.
"""

from lfbtheory.assignment import (
    BalancedAssignment,
    Certificate,
    certify,
    dual_objective,
    dual_subgradient,
    optimal_prices,
    solve_balanced,
)
from lfbtheory.metrics import expert_loads, maxvio, maxvio_global, tie_margin
from lfbtheory.online import LoopState, Trajectory, simulate
from lfbtheory.regret import RegretReport, regret_report
from lfbtheory.routing import Routing, route, select_experts, sigmoid, softmax, topk_indices

__version__ = "0.1.0"

__all__ = [
    "BalancedAssignment",
    "Certificate",
    "LoopState",
    "RegretReport",
    "Routing",
    "Trajectory",
    "certify",
    "dual_objective",
    "dual_subgradient",
    "expert_loads",
    "maxvio",
    "maxvio_global",
    "optimal_prices",
    "regret_report",
    "route",
    "select_experts",
    "sigmoid",
    "simulate",
    "softmax",
    "solve_balanced",
    "tie_margin",
    "topk_indices",
]
