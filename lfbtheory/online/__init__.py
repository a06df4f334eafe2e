"""The online bias loop: update rules, step-size schedules, the router-state machine, the loop."""

from lfbtheory.online import schedules, updates
from lfbtheory.online.loop import LoopState, Trajectory, load_state, save_state, simulate

__all__ = [
    "LoopState",
    "Trajectory",
    "load_state",
    "save_state",
    "schedules",
    "simulate",
    "updates",
]
