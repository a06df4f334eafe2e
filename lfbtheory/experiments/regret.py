"""Regret experiments: a frozen config -> run -> result files (the benchopt pattern).

``run_regret(config)`` draws one seeded stream from a workload, runs every bias-update rule of
``config.runs`` on it, computes the exact comparators once (each batch's optimum and the pooled
hindsight optima, :mod:`lfbtheory.analysis.regret`), and writes a results folder:

    config.json    the config, the calibrated constants, seeds, package versions
    summary.json   one entry per run: final regrets, violation, MaxVio, growth classes
    runs/<label>.npz, runs/<label>_curves.csv   trajectories and regret curves
    comparators.npz, regret.png, maxvio.png, bias.png

Step-size constants are not tuned by hand. The published sign rule keeps u = 1e-3 (arXiv
2408.15664 Sec. 3); the DeepSeek-V3 schedule keeps 1e-3 for the first 14.3/14.8 of the
horizon, then 0 (arXiv 2412.19437 Sec. 4.2). The proportional rule is online gradient descent
on f_t(p) = D_t(p) / L, whose gradient is -e with e = (c_bar - c)/c_bar (lfbtheory.online.updates), and
its constants come from the textbook rules (Hazan, Intro. to OCO, Thm 3.1 and 3.3), measured on
``calibration_batches`` batches drawn from the same workload (same per-expert popularity,
``offset_seed = seed``) with independent noise (seed [seed, 1]; the stream uses [seed, 0]):

    D  = ||p*||_2, p* the (mean-zero) exact hindsight price of the calibration batches
         (distance from the initial bias 0 to the comparator);
    G  = root-mean-square of ||e_s(0)||_2 over the calibration batches (gradient norm at 0);
    mu = smallest eigenvalue on the mean-zero subspace of the symmetrised Jacobian of the
         expected relative load d(c/c_bar)/dp at p*, by central differences with
         h = 0.25 * rms(p*) on the pooled calibration tokens (strong convexity of E f_t).

    constant       u   = D / (G sqrt(T))            (optimal fixed step for horizon T)
    inverse_sqrt   u_t = (D / G) / sqrt(t + 1)
    inverse        u_t = 1 / (mu (t + t0)), t0 = max(1, G / (mu D)) so that u_0 <= D / G
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory.analysis.regret import (
    Comparators,
    LimitCycle,
    RegretReport,
    compute_comparators,
    fixed_batch_cycle,
    regret_report,
)
from lfbtheory.lp.solve import solve_balanced
from lfbtheory.online import schedules as sched
from lfbtheory.online.loop import Trajectory, simulate
from lfbtheory.online.updates import load_error, make_rule
from lfbtheory.routing import select_experts
from lfbtheory.workloads import make_workload

__all__ = [
    "RunSpec",
    "RegretConfig",
    "Calibration",
    "DEFAULT_RUNS",
    "calibrate",
    "run_regret",
    "format_table",
]

PUBLISHED_RATE = 1e-3
DEEPSEEK_STOP_FRACTION = 14.3 / 14.8


@dataclass(frozen=True)
class RunSpec:
    """One run: a label, an update rule name, and a step schedule.

    schedule: "published" (constant 1e-3), "deepseek_v3" (1e-3 then 0), or one of the
    calibrated proportional schedules "constant", "inverse_sqrt", "inverse".
    """

    label: str
    rule: str
    schedule: str


DEFAULT_RUNS: tuple[RunSpec, ...] = (
    RunSpec("sign u=1e-3 (published)", "sign", "published"),
    RunSpec("sign DeepSeek-V3 schedule", "sign", "deepseek_v3"),
    RunSpec("proportional constant", "proportional", "constant"),
    RunSpec("proportional c/sqrt(t)", "proportional", "inverse_sqrt"),
    RunSpec("proportional c/t", "proportional", "inverse"),
)
SCHEDULE_CHOICES = ("published", "deepseek_v3", "constant", "inverse_sqrt", "inverse")


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
        if not self.runs:
            raise ValueError("runs must name at least one run")
        for r in self.runs:
            if r.schedule not in SCHEDULE_CHOICES:
                raise ValueError(
                    f"schedule must be one of {', '.join(SCHEDULE_CHOICES)}; got {r.schedule!r}"
                )
            make_rule(r.rule)
        if len({r.label for r in self.runs}) != len(self.runs):
            raise ValueError("run labels must be unique")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["runs"] = [dataclasses.asdict(r) for r in self.runs]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RegretConfig:
        d = dict(d)
        d["runs"] = tuple(
            RunSpec(**r) for r in d.get("runs", [dataclasses.asdict(r) for r in DEFAULT_RUNS])
        )
        return cls(**d)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Calibration:
    """Measured constants of the documented step rules (module docstring)."""

    D: float
    G: float
    mu: float
    t0: float

    def schedule(self, name: str, steps: int) -> sched.Schedule:
        if name == "published":
            return sched.constant(PUBLISHED_RATE)
        if name == "deepseek_v3":
            return sched.deepseek_v3(
                PUBLISHED_RATE, stop_step=max(1, round(DEEPSEEK_STOP_FRACTION * steps))
            )
        if name == "constant":
            return sched.constant(self.D / (self.G * math.sqrt(steps)))
        if name == "inverse_sqrt":
            return sched.inverse_sqrt(self.D / self.G, 1.0)
        if name == "inverse":
            return sched.inverse(1.0 / self.mu, self.t0)
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
    ex = select_experts(scores, k, bias)
    return np.bincount(ex.ravel(), minlength=scores.shape[1]).astype(np.float64)


@dataclass(frozen=True)
class RunResult:
    spec: RunSpec
    trajectory: Trajectory
    report: RegretReport
    seconds: float
    cycle: LimitCycle | None = None


class _Recorder:
    """Wraps an adaptive generator and keeps every batch it yields (for the comparators)."""

    def __init__(self, gen: Any) -> None:
        self.gen, self.batches = gen, []

    def __iter__(self) -> Iterator[NDArray[np.float64]]:
        return self

    def __next__(self) -> NDArray[np.float64]:
        return self.send(None)

    def send(self, value: Any) -> NDArray[np.float64]:
        b = next(self.gen) if value is None else self.gen.send(value)
        self.batches.append(b)
        return b


def run_regret(
    config: RegretConfig,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[RunResult], Path]:
    """Run the experiment of ``config`` and write its results folder (returned)."""
    from tqdm.auto import tqdm

    wl = make_workload(
        config.workload, n=config.n, n_experts=config.n_experts, **config.workload_options
    )
    if getattr(wl, "offset_seed", 0) is None:
        # Calibrate on the same popularity profile as the stream, with independent noise: the
        # per-expert offsets come from offset_seed = seed, the noise from [seed, 0] / [seed, 1].
        wl = dataclasses.replace(wl, offset_seed=config.seed)  # type: ignore[type-var]
    out = Path(out_dir) if out_dir is not None else Path("results") / f"regret-{config.digest()}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    stream_seed = np.random.SeedSequence([config.seed, 0])
    calib_seed = np.random.SeedSequence([config.seed, 1])
    calib = calibrate(
        list(wl.batches(config.calibration_batches, calib_seed)), config.k, config.solver
    )
    adaptive = bool(getattr(wl, "adaptive", False))
    n_runs = len(config.runs)
    ncp = len(np.unique(np.round(np.geomspace(1, config.steps, config.num_checkpoints))))
    comp_units = config.steps + ncp + 1
    total = n_runs * config.steps + comp_units * (n_runs if adaptive else 1)
    bar = tqdm(total=total, desc="lfb regret", unit="step", disable=not progress, mininterval=0.5)

    def comp_progress() -> Callable[[int, int], None]:
        last = [0]

        def cb(done: int, _total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        return cb

    shared: tuple[list[NDArray[np.float64]], Comparators] | None = None
    if not adaptive:
        batches = list(wl.batches(config.steps, stream_seed))
        shared = (
            batches,
            compute_comparators(
                batches,
                config.k,
                solver=config.solver,
                num_checkpoints=config.num_checkpoints,
                progress=comp_progress(),
            ),
        )
    results = []
    for spec in config.runs:
        rule = make_rule(spec.rule)
        schedule = calib.schedule(spec.schedule, config.steps)
        t0 = time.perf_counter()
        before = bar.n
        if adaptive:
            rec = _Recorder(wl.adaptive_batches(config.steps, stream_seed))  # type: ignore[attr-defined]
            traj = simulate(
                rec,
                config.k,
                rule,
                schedule,
                adaptive=True,
                progress=lambda t, b=before: bar.update(b + t - bar.n),
            )
            batches = rec.batches
            comp = compute_comparators(
                batches,
                config.k,
                solver=config.solver,
                num_checkpoints=config.num_checkpoints,
                progress=comp_progress(),
            )
        else:
            assert shared is not None
            batches, comp = shared
            traj = simulate(
                batches, config.k, rule, schedule, progress=lambda t, b=before: bar.update(b + t - bar.n)
            )
        rep = regret_report(traj, batches, config.k, comparators=comp, burn_in=config.burn_in)
        cycle = None
        if spec.rule in ("sign", "centered_sign") and spec.schedule == "published":
            # The lattice limit cycle of the constant-step sign rule on a fixed batch (batch 0).
            cycle = fixed_batch_cycle(
                batches[0], config.k, spec.rule, PUBLISHED_RATE, max_steps=config.cycle_steps
            )
        results.append(RunResult(spec, traj, rep, time.perf_counter() - t0, cycle))
    bar.close()
    _write(
        out,
        config,
        calib,
        results,
        shared[1] if shared else None,
        wl.config() if hasattr(wl, "config") else None,
    )
    return results, out


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()


def _write(
    out: Path,
    config: RegretConfig,
    calib: Calibration,
    results: list[RunResult],
    comp: Comparators | None,
    workload: dict[str, Any] | None,
) -> None:
    import importlib.metadata as md

    versions = {}
    for pkg in ("lfbtheory", "numpy", "scipy", "cvxpy", "numba"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    meta = {
        "config": config.to_json(),
        "digest": config.digest(),
        "calibration": dataclasses.asdict(calib),
        "workload": workload,
        "seeds": {"stream": [config.seed, 0], "calibration": [config.seed, 1]},
        "versions": versions,
        "python": platform.python_version(),
        "reproduce": f"lfb regret --config {out / 'config.json'}",
    }
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    summary = []
    for r in results:
        s = {
            "label": r.spec.label,
            "rule": r.spec.rule,
            "schedule": r.spec.schedule,
            "seconds": r.seconds,
            **r.report.summary(),
        }
        if r.cycle is not None:
            s["fixed_batch_cycle"] = dataclasses.asdict(r.cycle)
        summary.append(s)
        slug = _slug(r.spec.label)
        tr, rep = r.trajectory, r.report
        np.savez_compressed(
            out / "runs" / f"{slug}.npz",
            bias=tr.bias,
            loads=tr.loads,
            reward=tr.reward,
            step=tr.step,
            dual_value=rep.dual_value,
            maxvio_batch=rep.maxvio_batch,
            maxvio_global=rep.maxvio_global,
        )
        with open(out / "runs" / f"{slug}_curves.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t", "dual_regret", "primal_regret", "violation_tokens", "dynamic_gap"])
            for row in zip(
                rep.t,
                rep.dual_regret,
                rep.primal_regret,
                rep.violation,
                rep.dynamic_gap,
                strict=True,
            ):
                w.writerow([int(row[0]), *map(float, row[1:])])
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if comp is not None:
        np.savez_compressed(
            out / "comparators.npz",
            batch_optimum=comp.batch_optimum,
            t=comp.t,
            pooled_optimum=comp.pooled_optimum,
            hindsight_bias=comp.hindsight_bias,
        )
    _plot(out, results)


def _plot(out: Path, results: list[RunResult]) -> None:
    # The object-oriented API (no pyplot): no global backend switch, no open figures left behind.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    ax1, ax2 = fig.subplots(1, 2)
    for r in results:
        rep = r.report
        ax1.loglog(rep.t, np.maximum(rep.dual_regret, 1e-12), label=r.spec.label)
        base = np.interp(rep.burn_in, rep.t, rep.dual_regret)
        late = rep.t > rep.burn_in
        ax2.loglog(rep.t[late], np.maximum(rep.dual_regret[late] - base, 1e-12), label=r.spec.label)
    t = results[0].report.t.astype(float)
    t0 = results[0].report.burn_in
    ref = t[t > t0]
    scale = max(
        1e-12,
        float(
            np.median(
                [
                    max(
                        np.interp(ref[-1], r.report.t, r.report.dual_regret)
                        - np.interp(t0, r.report.t, r.report.dual_regret),
                        1e-12,
                    )
                    for r in results
                ]
            )
        ),
    )
    for f, name, style in (
        (lambda x: x - t0, "~ t", ":"),
        (lambda x: np.sqrt(x) - np.sqrt(t0), "~ sqrt t", "--"),
        (lambda x: np.log(x / t0), "~ log t", "-."),
    ):
        v = f(ref)
        ax2.loglog(ref, scale * v / v[-1], "k" + style, lw=0.8, label=f"reference {name}")
    ax1.set(xlabel="batches t", ylabel="dual regret R(t)", title="Dual regret (log-log)")
    ax2.set(xlabel="batches t", ylabel=f"R(t) - R({t0})", title=f"Growth after burn-in t0={t0}")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "regret.png", dpi=120)

    fig = Figure(figsize=(12, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for r in results:
        steps = np.arange(1, len(r.report.maxvio_batch) + 1)
        w = max(1, len(steps) // 100)
        smooth = np.convolve(r.report.maxvio_batch, np.ones(w) / w, mode="valid")
        ax1.semilogx(steps[w - 1 :], smooth, label=r.spec.label)
        ax2.loglog(steps, np.maximum(r.report.maxvio_global, 1e-6), label=r.spec.label)
    ax1.set(xlabel="batches t", ylabel="MaxVio_batch (moving mean)", title="MaxVio per batch")
    ax2.set(xlabel="batches t", ylabel="MaxVio_global", title="MaxVio of cumulative loads")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "maxvio.png", dpi=120)

    cols = min(3, len(results))
    rows = math.ceil(len(results) / cols)
    fig = Figure(figsize=(4.5 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, r in zip(axes.ravel(), results, strict=False):
        b = r.trajectory.bias
        ax.plot(
            b - b.mean(axis=1, keepdims=True) if r.trajectory.bias_mode == "additive" else b, lw=0.6
        )
        ax.axhline(0, color="k", lw=0.5)
        ax.set(title=r.spec.label, xlabel="batches t", ylabel="bias - mean(bias)")
        ax.title.set_fontsize(8)
    for ax in axes.ravel()[len(results) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "bias.png", dpi=120)


def format_table(results: list[RunResult], config: RegretConfig, calib_line: str = "") -> str:
    """A readable table of the final figures of each run."""
    head = (
        f"{'run':<28}{'dual regret':>12}{'(at burn-in)':>13}{'growth':>13}{'primal regret':>15}"
        f"{'violation':>11}{'dyn. gap':>10}{'MaxVio_b':>10}{'MaxVio_g':>10}"
    )
    lines = [
        f"workload={config.workload} n={config.n} E={config.n_experts} k={config.k} "
        f"T={config.steps} seed={config.seed}" + (f"  {calib_line}" if calib_line else ""),
        "",
        head,
        "-" * len(head),
    ]
    for r in results:
        s = r.report.summary()
        g = s.get("dual_regret_growth", "n/a")
        lines.append(
            f"{r.spec.label:<28}{s['dual_regret']:>12.3f}{s['dual_regret_at_burn_in']:>13.3f}"
            f"{g:>13}{s['primal_regret']:>15.3f}{s['violation_tokens']:>11.0f}"
            f"{s['dynamic_gap']:>10.2f}{s['maxvio_batch_mean_late']:>10.3f}"
            f"{s['maxvio_global_final']:>10.4f}"
        )
    for r in results:
        if r.cycle is not None:
            c = r.cycle
            lines.append(

                    f"{r.spec.label}: on a fixed batch (batch 0 repeated) the bias "
                    + (
                        f"reaches a fixed point (exact balance) at step {c.start}"
                        if c.found and c.period == 1
                        else f"enters a limit cycle at step {c.start}: period {c.period}, band width "
                        f"{c.band_width:.3g} ({c.band_width / PUBLISHED_RATE:.2g} steps of u), common drift "
                        f"{c.drift:+.3g} per period"
                        if c.found
                        else f"did not repeat within {config.cycle_steps} steps"
                    )

            )
    burn = results[0].report.burn_in
    lines += [
        "",
        "dual regret: sum_t D_t(p_t) - min_p sum_t D_t(p); growth: best fit of R(t)-R(t0) "
        f"after burn-in t0={burn}",
        "among a+b*{-1/t, ln t, sqrt t, t}; violation: tokens over capacity in the cumulative "
        "loads; MaxVio_b: mean MaxVio_batch after burn-in; MaxVio_g: final MaxVio_global.",
    ]
    return "\n".join(lines)


def _parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ValueError(f"--workload-option must look like key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _parse_run(text: str) -> RunSpec:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--run must look like RULE:SCHEDULE[:LABEL], got {text!r}")
    return RunSpec(parts[2] if len(parts) == 3 else f"{parts[0]} {parts[1]}", parts[0], parts[1])


def _command(args: Any) -> int:
    if getattr(args, "trace", None):  # E, k, gate from the file; one run set per layer
        from lfbtheory.workloads.trace import trace_regret_command

        return trace_regret_command(args)
    if args.config:
        saved = json.loads(Path(args.config).read_text())
        config = RegretConfig.from_json(saved.get("config", saved))
    else:
        runs = tuple(_parse_run(r) for r in args.run) if args.run else DEFAULT_RUNS
        config = RegretConfig(
            workload=args.workload,
            workload_options=dict(_parse_option(o) for o in args.workload_option),
            n=args.n,
            n_experts=args.experts,
            k=args.k,
            steps=args.steps,
            seed=args.seed,
            runs=runs,
            solver=args.solver,
            burn_in=args.burn_in,
            num_checkpoints=args.checkpoints,
        )
    t0 = time.perf_counter()
    results, out = run_regret(config, args.out, progress=not args.no_progress)
    calib = json.loads((out / "config.json").read_text())["calibration"]
    line = "calibrated: D={D:.3g} G={G:.3g} mu={mu:.3g} t0={t0:.3g}".format(**calib)
    print(format_table(results, config, line))
    print(
        f"\nwrote {out}/ (config.json, summary.json, runs/, regret.png, maxvio.png, bias.png) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def add_parser(sub: Any) -> None:
    """Register ``lfb regret``."""
    p = sub.add_parser(
        "regret",
        help="run regret experiments on bias-update rules (the main job)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--workload",
        default="stationary",
        help="stationary, zipf, olmoe, drifting, clustered, adversarial, replay",
    )
    p.add_argument(
        "--workload-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a workload option (repeatable), e.g. gate=softmax",
    )
    p.add_argument("--n", type=int, default=256, help="tokens per batch (default 256)")
    p.add_argument("--experts", type=int, default=16, help="experts E (default 16)")
    p.add_argument("--k", type=int, default=2, help="experts per token (default 2)")
    p.add_argument("--steps", type=int, default=2000, help="batches T (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--run",
        action="append",
        metavar="RULE:SCHEDULE[:LABEL]",
        help="a run (repeatable); schedules: "
        + ", ".join(SCHEDULE_CHOICES)
        + "; default: the five runs of DEFAULT_RUNS",
    )
    p.add_argument(
        "--solver", default="auto", help="exact solver for the comparators (default auto)"
    )
    p.add_argument("--burn-in", type=int, default=None, help="burn-in t0 (default T/10)")
    p.add_argument("--checkpoints", type=int, default=40, help="regret checkpoints (default 40)")
    p.add_argument("--out", default=None, help="results folder (default results/regret-<hash>)")
    p.add_argument("--config", default=None, help="rerun the config.json of an earlier run")
    p.add_argument(
        "--trace", default=None, metavar="FILE",
        help="recorded router trace (.npz): E, k, gate from the file, each layer a separate run",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_command)
