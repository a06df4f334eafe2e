"""lfbtheory: theory and verification of auxiliary-loss-free load balancing in MoE routing.

The bias of Loss-Free Balancing (arXiv 2408.15664) is the dual price of the expert-capacity
constraint of the batch assignment LP; this package routes with it, solves the LP exactly,
certifies optimality, and measures the online bias updates against exact comparators.
"""

from importlib.metadata import PackageNotFoundError as _NotInstalled
from importlib.metadata import version as _version

from lfbtheory.analysis.regret import RegretReport, regret_report
from lfbtheory.lp import (
    BalancedAssignment,
    Certificate,
    certify,
    dual_objective,
    dual_subgradient,
    optimal_prices,
    solve_balanced,
)
from lfbtheory.metrics import expert_loads, maxvio, maxvio_global, tie_margin
from lfbtheory.online import (
    LoopState,
    Trajectory,
    schedules,
    simulate,
    updates,
)
from lfbtheory.routing import Routing, route, sigmoid, softmax, topk_indices

try:
    __version__ = _version("lfbtheory")
except _NotInstalled:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

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
    "schedules",
    "sigmoid",
    "simulate",
    "softmax",
    "solve_balanced",
    "tie_margin",
    "topk_indices",
    "updates",
]
