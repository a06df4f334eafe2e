"""Step-size constants of the documented schedules, measured on calibration batches.

Step-size constants are not tuned by hand. The published sign rule keeps u = 1e-3 (arXiv
2408.15664 Sec. 3); the DeepSeek-V3 schedule keeps 1e-3 for the first 14.3/14.8 of the
horizon, then 0 (arXiv 2412.19437 Sec. 4.2). The proportional rule is online gradient
descent on f_t(p) = D_t(p) / L, whose gradient is -e with e = (c_bar - c)/c_bar
(lfbtheory.online.updates), and its constants come from the textbook rules (Hazan, Intro. to
OCO, Thm 3.1 and 3.3), measured on ``calibration_batches`` batches drawn from the same
workload (same per-expert popularity, ``offset_seed = seed``) with independent noise (seed
[seed, 1]; the stream uses [seed, 0]):

    D  = ||p*||_2, p* the (mean-zero) exact hindsight price of the calibration batches
         (distance from the initial bias 0 to the comparator);
    G  = root-mean-square of ||e_s(0)||_2 over the calibration batches (gradient norm at 0);
    mu = smallest eigenvalue on the mean-zero subspace of the symmetrised Jacobian of the
         expected relative load d(c/c_bar)/dp at p*, by central differences with
         h = 0.25 * rms(p*) on the pooled calibration tokens (strong convexity of E f_t).

    constant       u   = D / (G sqrt(T))            (optimal fixed step for horizon T)
    inverse_sqrt   u_t = (D / G) / sqrt(t + 1)
    inverse        u_t = 1 / (mu (t + t0)), t0 = max(1, G / (mu D)) so that u_0 <= D / G

A run may instead fix its first step u_0 (``RunSpec.step``, what a sweep varies): constant
u_t = u_0, inverse_sqrt u_t = u_0 / sqrt(t + 1), inverse u_t = u_0 / (t + 1), deepseek_v3
u_t = u_0 until 14.3/14.8 of the horizon, then 0. "published" is the fixed 1e-3 and takes no
step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from lfbtheory.experiments.config import DEEPSEEK_STOP_FRACTION, PUBLISHED_RATE, SCHEDULE_CHOICES
from lfbtheory.lp.solve import solve_balanced
from lfbtheory.online import schedules as sched
from lfbtheory.online.updates import load_error
from lfbtheory.routing import route

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """Measured constants of the documented step rules (module docstring)."""

    D: float
    G: float
    mu: float
    t0: float

    def schedule(self, name: str, steps: int, step: float | None = None) -> sched.Schedule:
        """The schedule ``name`` with its documented constant, or first step ``step``."""
        if name == "published":
            if step is not None:
                raise ValueError("step must be None for schedule 'published'")
            return sched.constant(PUBLISHED_RATE)
        if name == "deepseek_v3":
            return sched.deepseek_v3(
                PUBLISHED_RATE if step is None else step,
                stop_step=max(1, round(DEEPSEEK_STOP_FRACTION * steps)),
            )
        if name == "constant":
            return sched.constant(self.D / (self.G * math.sqrt(steps)) if step is None else step)
        if name == "inverse_sqrt":
            return sched.inverse_sqrt(self.D / self.G if step is None else step, 1.0)
        if name == "inverse":
            return (
                sched.inverse(1.0 / self.mu, self.t0) if step is None else sched.inverse(step, 1.0)
            )
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULE_CHOICES)}; got {name!r}")


def calibrate(batches: list[NDArray[np.float64]], k: int, solver: str = "auto") -> Calibration:
    """Measure D, G, mu on calibration batches (rules in the module docstring)."""
    pooled = np.concatenate(batches)
    e = pooled.shape[1]
    p_star = solve_balanced(pooled, k, method=solver).bias  # type: ignore[arg-type]
    p_star = p_star - p_star.mean()
    d = float(np.linalg.norm(p_star))
    g = float(
        np.sqrt(np.mean([np.sum(load_error(_loads(b, k, np.zeros(e))) ** 2) for b in batches]))
    )
    h = 0.25 * float(np.sqrt(np.mean(p_star**2))) or 1e-3
    jac = np.empty((e, e))
    for j in range(e):
        step = np.zeros(e)
        step[j] = h
        up = _loads(pooled, k, p_star + step)
        down = _loads(pooled, k, p_star - step)
        mean = pooled.shape[0] * k / e
        jac[:, j] = (up - down) / (2 * h * mean)
    sym = 0.5 * (jac + jac.T)
    basis = np.linalg.qr(np.eye(e) - 1.0 / e, mode="reduced")[0][:, : e - 1]
    mu = float(np.linalg.eigvalsh(basis.T @ sym @ basis).min())
    if not (mu > 0 and d > 0 and g > 0):
        raise ValueError(
            f"calibration failed (D={d:.3g}, G={g:.3g}, mu={mu:.3g}): the workload is already "
            "balanced at bias 0 or too discrete to estimate a curvature; use larger n"
        )
    return Calibration(d, g, mu, max(1.0, g / (mu * d)))


def _loads(scores: NDArray[np.float64], k: int, bias: NDArray[np.float64]) -> NDArray[np.float64]:
    ex = route(scores, k, bias, weights=False).experts
    return np.bincount(ex.ravel(), minlength=scores.shape[1]).astype(np.float64)
