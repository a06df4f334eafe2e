"""The labelled battery that calibrates ``lfbtheory.analysis.growth``: curve families of known
growth, seeds, and the confusion matrix of a classifier on them.

``python proofs/growth_battery.py [--seeds 20] [--out docs/theory/growth_battery.json]`` runs the
full battery (every family x seeds x horizons) and writes the confusion matrix, the per-family
wrong-confident rates and the T-stability check as strict JSON. tests/test_growth.py runs a
smaller battery with the same families.

Each family has a TRUE class; the honest answers are the true class or "undetermined" (the
families between classes, t^0.25, t^0.75, t^1.5, t log t, t/log t, have only "undetermined").
A confident wrong answer is any other class. The calibration rule (module docstring of
lfbtheory.analysis.growth): at most 5% confident wrong answers on every family. Curves are
sampled like ``regret_report`` does: 40 geometric checkpoints of 1..T, burn-in t0 = T // 10,
and every seed draws its own scale, offset and noise, so nothing rests on one curve.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lfbtheory.analysis.growth import GROWTH_CLASSES, classify_growth  # noqa: E402
from lfbtheory.analysis.regret import checkpoints  # noqa: E402

Curve = Callable[[np.ndarray, np.random.Generator, int], np.ndarray]


def _rw(t: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A random walk observed at the per-step times 1..T (cumulative N(0, scale^2) steps)."""
    return np.cumsum(rng.normal(scale=scale, size=t.size))


def _transient(tau_frac: float) -> Curve:
    """Linear after a concave transient of length ~tau: the sign rule's shape (fast regret
    while the bias travels, then a constant slope)."""

    def f(t, rng, horizon):
        tau = tau_frac * horizon
        return t + 10.0 * tau * (1 - np.exp(-t / tau))

    return f


def _saturation(tau_frac: float) -> Curve:
    def f(t, rng, horizon):
        tau = tau_frac * horizon
        return tau * (1 - np.exp(-t / tau)) + 0.01 * tau * rng.normal(size=t.size)

    return f


FAMILIES: dict[str, tuple[str, Curve]] = {
    "linear": ("linear", lambda t, r, h: t + 0.01 * h * r.normal(size=t.size)),
    "linear + cycle (period 3)": ("linear", lambda t, r, h: t + 5.0 * ((t % 3) == 1)),
    "linear + random walk": ("linear", lambda t, r, h: t + _rw(t, r, 0.5)),
    "linear after a T/100 transient": ("linear", _transient(0.01)),
    "linear after a T/20 transient": ("linear", _transient(0.05)),
    "linear after a T/10 transient": ("linear", _transient(0.10)),
    "linear after a T/5 transient": ("linear", _transient(0.20)),
    "linear after a T/2 transient": ("linear", _transient(0.50)),
    "sqrt": ("sqrt-like", lambda t, r, h: np.sqrt(t) + 0.02 * np.sqrt(h) * r.normal(size=t.size)),
    "log": ("logarithmic", lambda t, r, h: np.log(t) + 0.02 * r.normal(size=t.size)),
    "log + periodic": ("logarithmic", lambda t, r, h: np.log(t) + 0.5 * np.sin(2 * np.pi * t / 97)),
    "log + random walk": ("logarithmic", lambda t, r, h: np.log(t) + _rw(t, r, 0.02)),
    "log + heavy tails": (
        "logarithmic",
        lambda t, r, h: np.log(t) + 0.05 * r.standard_t(1.5, t.size),
    ),
    "bounded": ("bounded", lambda t, r, h: -1.0 / t + 0.01 * r.normal(size=t.size)),
    "bounded + heavy tails": ("bounded", lambda t, r, h: r.standard_t(1.5, t.size)),
    "bounded sawtooth": ("bounded", lambda t, r, h: (t % 7).astype(np.float64)),
    "saturation T/10": ("bounded", _saturation(0.10)),
    "saturation T/3": ("bounded", _saturation(1 / 3)),
    "decreasing": ("decreasing", lambda t, r, h: -t + 0.01 * h * r.normal(size=t.size)),
    "t^0.25": ("undetermined", lambda t, r, h: t**0.25),
    "t^0.75": ("undetermined", lambda t, r, h: t**0.75),
    "t^1.5": ("undetermined", lambda t, r, h: t**1.5),
    "t log t": ("undetermined", lambda t, r, h: t * np.log(t)),
    "t / log t": ("undetermined", lambda t, r, h: t / np.log(t + 1.0)),
}
"""name -> (true class, curve(t, rng, T)); the curve is drawn per step and sampled at the
checkpoints, then scaled and offset per seed."""


def curve(name: str, horizon: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(checkpoints, regret at them) of one family member."""
    rng = np.random.default_rng([horizon, seed, sum(map(ord, name))])
    t = np.arange(1, horizon + 1, dtype=np.float64)
    _, f = FAMILIES[name]
    y = f(t, rng, horizon)
    scale = float(10.0 ** rng.uniform(-2, 3))
    offset = float(rng.normal(scale=10.0))
    grid = checkpoints(horizon)
    return grid, offset + scale * y[grid - 1]


def classify(name: str, horizon: int, seed: int, classifier=classify_growth) -> str:
    grid, y = curve(name, horizon, seed)
    return classifier(grid, y, horizon // 10).cls


def confusion(seeds, horizons, classifier=classify_growth) -> dict:
    """counts[family][class] over seeds x horizons, and the rates of confident wrong answers."""
    counts = {name: dict.fromkeys(GROWTH_CLASSES, 0) for name in FAMILIES}
    stability = {}
    for name in FAMILIES:
        flips = 0
        for seed in seeds:
            seen = [classify(name, h, seed, classifier) for h in horizons]
            for c in seen:
                counts[name][c] += 1
            confident = [c for c in seen if c in ("bounded", "logarithmic", "linear")]
            flips += len(set(confident)) > 1
        stability[name] = flips
    wrong = {}
    for name, (truth, _) in FAMILIES.items():
        total = sum(counts[name].values())
        bad = sum(v for c, v in counts[name].items() if c not in (truth, "undetermined"))
        wrong[name] = bad / total
    right = {
        name: counts[name][truth] / sum(counts[name].values())
        for name, (truth, _) in FAMILIES.items()
    }
    return {"counts": counts, "wrong_rate": wrong, "right_rate": right, "class_flips": stability}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--horizons", default="400,2000,6000,20000")
    ap.add_argument("--out", default=str(ROOT / "docs" / "theory" / "growth_battery.json"))
    args = ap.parse_args(argv)
    horizons = [int(h) for h in args.horizons.split(",")]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    result = confusion(seeds, horizons)
    result["config"] = {
        "classifier": "lfbtheory.analysis.growth (the exponent rule)",
        "seeds": [seeds.start, seeds.stop],
        "horizons": horizons,
        "checkpoints": 40,
        "burn_in": "T // 10",
        "families": {k: v[0] for k, v in FAMILIES.items()},
    }
    worst = max(result["wrong_rate"].values())
    print(
        f"worst confident-wrong rate {worst:.3f}; class flips {sum(result['class_flips'].values())}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
