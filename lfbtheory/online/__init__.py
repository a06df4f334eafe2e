"""The online bias loop: update rules, step-size schedules, the router-state machine, the loop."""

from lfbtheory.online import schedules, updates
from lfbtheory.online.loop import LoopState, Trajectory, simulate
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
    "updates",
]
