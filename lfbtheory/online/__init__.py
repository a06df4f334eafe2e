"""The online bias loop: update rules, step-size schedules, the router-state machine, the loop."""

from lfbtheory.online import schedules, updates
from lfbtheory.online.loop import LoopState, Trajectory, simulate, simulate_runs
from lfbtheory.online.state import CheckpointError, RouterState, load_state, save_state

__all__ = [
    "CheckpointError",
    "LoopState",
    "RouterState",
    "Trajectory",
    "load_state",
    "save_state",
    "schedules",
    "simulate",
    "simulate_runs",
    "updates",
]
