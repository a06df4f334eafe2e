"""The config of a regret experiment: which workload, stream size, seed and runs (rule +
step schedule + optional first step), validated on construction.

A :class:`RegretConfig` determines everything a regret point computes; its :meth:`digest`
names the results folder and :meth:`stream_json` the part shared by every rule run on one
stream. The step-size rules of the schedules are in :mod:`lfbtheory.experiments.calibrate`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfbtheory.online.updates import make_rule
from lfbtheory.workloads import trace_info

__all__ = [
    "PUBLISHED_RATE",
    "DEEPSEEK_STOP_FRACTION",
    "RunSpec",
    "RegretConfig",
    "DEFAULT_RUNS",
    "SCHEDULE_CHOICES",
    "SCHEDULE_STEP_OPTIONAL",
    "parse_run",
    "read_user_file",
    "load_config_file",
    "replay_configs",
]

PUBLISHED_RATE = 1e-3
DEEPSEEK_STOP_FRACTION = 14.3 / 14.8


@dataclass(frozen=True)
class RunSpec:
    """One run: a label, an update rule name, a step schedule, and optionally its first step.

    schedule: "published" (constant 1e-3), "deepseek_v3" (1e-3 then 0), or one of the
    calibrated proportional schedules "constant", "inverse_sqrt", "inverse". ``step`` (None:
    the documented constant) fixes the first step u_0 instead (module docstring).
    """

    label: str
    rule: str
    schedule: str
    step: float | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.label, "rule": self.rule, "schedule": self.schedule}
        if self.step is not None:  # omitted when None: configs without steps keep their digest
            d["step"] = self.step
        return d


DEFAULT_RUNS: tuple[RunSpec, ...] = (
    RunSpec("sign u=1e-3 (published)", "sign", "published"),
    RunSpec("sign DeepSeek-V3 schedule", "sign", "deepseek_v3"),
    RunSpec("proportional constant", "proportional", "constant"),
    RunSpec("proportional c/sqrt(t)", "proportional", "inverse_sqrt"),
    RunSpec("proportional c/t", "proportional", "inverse"),
)
SCHEDULE_CHOICES = ("published", "deepseek_v3", "constant", "inverse_sqrt", "inverse")
# The schedules whose first step a run may fix (``RunSpec.step``); "published" is the fixed 1e-3.
SCHEDULE_STEP_OPTIONAL = SCHEDULE_CHOICES[1:]


@dataclass(frozen=True)
class RegretConfig:
    """Everything that determines a regret experiment (and its results folder's name)."""

    workload: str = "stationary"
    workload_options: dict[str, Any] = field(default_factory=dict)
    n: int = 256
    n_experts: int = 16
    k: int = 2
    steps: int = 2000
    seed: int = 0
    runs: tuple[RunSpec, ...] = DEFAULT_RUNS
    solver: str = "auto"
    burn_in: int | None = None
    num_checkpoints: int = 40
    calibration_batches: int = 8
    cycle_steps: int = 20000

    def __post_init__(self) -> None:
        for name in (
            "n",
            "n_experts",
            "k",
            "steps",
            "num_checkpoints",
            "calibration_batches",
            "cycle_steps",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.steps < 10:
            raise ValueError(
                f"steps must be >= 10 to separate burn-in from growth, got {self.steps}"
            )
        if self.k > self.n_experts:
            raise ValueError(f"k must be in [1, E={self.n_experts}], got {self.k}")
        if (self.n * self.k) % self.n_experts:
            raise ValueError(
                f"n*k must be divisible by E (capacity n*k/E): n={self.n}, k={self.k}, "
                f"E={self.n_experts}"
            )
        if not isinstance(self.workload_options, dict):
            raise TypeError(
                f"workload_options must be a dict, got {type(self.workload_options).__name__}"
            )
        if not self.runs:
            raise ValueError("runs must name at least one run")
        for r in self.runs:
            if not isinstance(r, RunSpec):
                raise TypeError(f"runs must hold RunSpec entries, got {type(r).__name__}")
            if r.schedule not in SCHEDULE_CHOICES:
                raise ValueError(
                    f"schedule must be one of {', '.join(SCHEDULE_CHOICES)}; got {r.schedule!r}"
                )
            if r.step is not None:
                if (
                    isinstance(r.step, bool)
                    or not isinstance(r.step, (int, float))
                    or not (math.isfinite(r.step) and r.step > 0)
                ):
                    raise ValueError(f"step must be a finite number > 0 or None, got {r.step!r}")
                if r.schedule == "published":
                    raise ValueError(
                        "step must be None for schedule 'published' (the fixed u = 1e-3); use "
                        "schedule 'constant' with a step"
                    )
            make_rule(r.rule, PUBLISHED_RATE)
        if len({r.label for r in self.runs}) != len(self.runs):
            raise ValueError("run labels must be unique")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["runs"] = [r.to_json() for r in self.runs]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RegretConfig:
        if not isinstance(d, dict):
            raise ValueError(f"a config must be a JSON object, got a JSON {type(d).__name__}")
        d = dict(d)
        runs = d.get("runs", [r.to_json() for r in DEFAULT_RUNS])
        if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
            raise ValueError("config 'runs' must be a list of objects {label, rule, schedule}")
        try:
            d["runs"] = tuple(RunSpec(**r) for r in runs)
            return cls(**d)
        except TypeError as exc:
            raise ValueError(f"config has an unknown or missing field: {exc}") from None

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:10]

    def stream_json(self) -> dict[str, Any]:
        """The fields that determine the stream, its calibration and its comparators (what
        every rule and step size run on the stream shares)."""
        d = self.to_json()
        for key in ("runs", "burn_in", "cycle_steps"):
            d.pop(key)
        return d


def parse_run(text: str) -> RunSpec:
    """A RunSpec from the command-line form RULE:SCHEDULE[:STEP][:LABEL].

    A third part that reads as a number is the first step u_0 (``RunSpec.step``), else the
    label; with four parts the third must be the step. The default label is "RULE SCHEDULE"
    (plus " u0=STEP" when a step is given)."""
    parts = text.split(":")
    if len(parts) not in (2, 3, 4) or not all(parts[:2]):
        raise ValueError(f"--run must look like RULE:SCHEDULE[:STEP][:LABEL], got {text!r}")
    rule, schedule, rest = parts[0], parts[1], parts[2:]
    step: float | None = None
    if rest:
        try:
            step = float(rest[0])
        except ValueError:
            if len(rest) == 2:
                raise ValueError(
                    f"--run {text!r}: STEP must be a number (RULE:SCHEDULE:STEP:LABEL), got "
                    f"{rest[0]!r}"
                ) from None
        else:
            rest = rest[1:]
    label = rest[0] if rest else f"{rule} {schedule}" + ("" if step is None else f" u0={step:g}")
    return RunSpec(label, rule, schedule, step)


def read_user_file(p: Path, what: str, expected: str) -> str:
    """The text of a file a user named, or a ValueError naming ``what`` when it is missing, a
    folder or not text (``expected`` says what should be given instead)."""
    if not p.exists():
        raise ValueError(f"{what} {p} does not exist")
    if p.is_dir():
        raise ValueError(f"{what} {p} is a folder; give {expected}")
    try:
        return p.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {p} is not a text file: {exc}") from None


def load_config_file(path: str | Path) -> RegretConfig:
    """The RegretConfig of a config.json written by an earlier run (or a bare config object);
    ValueError naming the problem for a missing file, a folder, bad JSON or a non-object."""
    p = Path(path)
    text = read_user_file(p, "--config", "the config.json of an earlier run")
    try:
        saved = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {p} is not valid JSON: {exc}") from None
    if not isinstance(saved, dict):
        raise ValueError(
            f"--config {p} holds a JSON {type(saved).__name__}, expected an object (the "
            "config.json of an earlier run)"
        )
    return RegretConfig.from_json(saved.get("config", saved))


def replay_configs(
    options: dict[str, Any],
    *,
    n: int,
    n_experts: int | None,
    k: int | None,
    common: dict[str, Any],
) -> list[tuple[str, RegretConfig]]:
    """One RegretConfig per recorded layer of a replayed trace (each layer is one router with
    its own bias), E and k read from the file; a ``layer``/``layers`` option gives one config.

    Returns (layer name, config) pairs (name "" for a file without layers).
    """
    info = trace_info(options.get("path"), key=options.get("key"))
    if n_experts is not None and n_experts != info.n_experts:
        raise ValueError(
            f"--experts must match the trace's E={info.n_experts} (it is read from the file), "
            f"got {n_experts}"
        )
    if info.k is None and k is None:
        raise ValueError("the replayed file holds full score arrays (no recorded k); give --k")
    if info.k is not None and k is not None and k != info.k:
        raise ValueError(f"--k must match the trace's recorded k={info.k}, got {k}")
    kk = int(info.k if info.k is not None else k)  # type: ignore[arg-type]

    def config(opts: dict[str, Any]) -> RegretConfig:
        return RegretConfig(
            workload="replay",
            workload_options=opts,
            n=n,
            n_experts=info.n_experts,
            k=kk,
            **common,
        )

    if "layer" in options or "layers" in options or not info.layers:
        return [("", config(dict(options)))]
    return [(str(name), config({**options, "layer": int(name)})) for name in info.layers]
