"""Diagnose a training run's expert loads (and bias): balance, drift, cycles, dead experts.

Input: per optimizer step t, per MoE layer l, the tokens routed to each expert c[t, l, i]
(and, when logged, the selection bias b[t, l, i] of Loss-Free Balancing, arXiv 2408.15664
Sec. 3). Layouts read by :func:`read_load_log`:

    CSV (long):  header ``step,layer,expert,load[,bias]``, one row per (step, layer, expert);
                 layer may be a name or an index
    NPZ:         ``loads`` (steps, layers, E), optional ``bias`` (same shape), ``step`` (steps,),
                 ``layer_names`` (layers,)   (what :class:`lfbtheory.adapters.recording.LoadLogger`
                 writes)
    JSONL:       one object per (step, layer): {"step": 10, "layer": "layers.3", "loads": [...],
                 "bias": [...]}  (bias optional)

Per layer, with L_t = mean_i c[t, i] (the capacity n k / E of a balanced step):

- MaxVio_batch(t) = (max_i c[t, i] - L_t) / L_t and MaxVio_global(t) on the cumulative loads
  (arXiv 2408.15664 Sec. 4.1; :mod:`lfbtheory.metrics`);
- over capacity: the fraction of steps with c[t, i] > L_t, and the mean and median of
  c[t, i] / L_t. The sign rule b_i += u sign(L - c_i) moves b_i until c_i is above L as often
  as below, i.e. it balances the per-step *median* load, not the mean: an expert with a
  right-skewed load is over capacity half of the time yet overloaded on average;
- dead experts: (almost) no tokens over the late window;
- bias drift: the common mode mean_i b_i (harmless for routing, which sees b only up to a
  shift, but it spends floating-point precision) and the centred bias b_i - mean b, whose
  steady trend means the expert never settles. Precision headroom: an update of size u is
  lost (rounded away) once u < ulp(|b|) / 2, i.e. above |b| = 2^(floor(log2 u) + p + 2) with
  p = 7 (bfloat16) or 23 (float32) mantissa bits;
- limit cycles: a periodic component of the detrended centred bias (or, without bias, of the
  relative loads) -- a peak of the autocorrelation at a lag P >= 3 after a negative lobe.
  ``lfbtheory.analysis.regret.detect_limit_cycle`` is not used: it finds the first repeated
  lattice state of a deterministic fixed-batch trajectory, and in a training run every step
  sees a new batch, so an exact repeat is neither necessary nor sufficient for a cycle;
- with a recorded trace of router scores (:mod:`lfbtheory.traces`): the routing that the
  run's final bias gives on the traced tokens, against the exact per-batch and pooled
  (hindsight) balanced optima (:func:`lfbtheory.solve_balanced`).

Thresholds are conventions stated in :class:`Thresholds`, not fitted to any run.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory import fileio
from lfbtheory.lp.solve import solve_balanced
from lfbtheory.metrics import maxvio, maxvio_global
from lfbtheory.routing import route

__all__ = [
    "Finding",
    "LayerDiagnosis",
    "LoadLog",
    "Thresholds",
    "diagnose",
    "lost_update_magnitude",
    "read_load_log",
    "synthetic_log",
    "write_report",
]

MANTISSA_BITS = {"bfloat16": 7, "float32": 23}


@dataclass(frozen=True)
class LoadLog:
    """loads (T, L, E) float64 >= 0; bias (T, L, E) or None; steps (T,); layer names (L,)."""

    loads: NDArray[np.float64]
    steps: NDArray[np.int64]
    layer_names: tuple[str, ...]
    bias: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        c = np.asarray(self.loads, dtype=np.float64)
        if c.ndim != 3 or min(c.shape) < 1:
            raise ValueError(f"loads must have shape (steps, layers, E), got {c.shape}")
        if c.shape[2] < 2:
            raise ValueError(f"loads must hold E >= 2 experts, got E={c.shape[2]}")
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError("loads must be finite and non-negative token counts")
        empty = np.argwhere(c.sum(axis=2) <= 0)
        if empty.size:
            t, lay = empty[0]
            raise ValueError(
                f"loads must have a positive total per step and layer; step index "
                f"{t}, layer {lay} routed no tokens"
            )
        s = np.asarray(self.steps, dtype=np.int64)
        if s.shape != (c.shape[0],):
            raise ValueError(f"steps must have shape ({c.shape[0]},), got {s.shape}")
        if len(self.layer_names) != c.shape[1]:
            raise ValueError(
                f"layer_names must name {c.shape[1]} layers, got {len(self.layer_names)}"
            )
        object.__setattr__(self, "loads", c)
        object.__setattr__(self, "steps", s)
        object.__setattr__(self, "layer_names", tuple(map(str, self.layer_names)))
        if self.bias is not None:
            b = np.asarray(self.bias, dtype=np.float64)
            if b.shape != c.shape or not np.all(np.isfinite(b)):
                raise ValueError(
                    f"bias must be finite with the shape of loads {c.shape}, got {b.shape}"
                )
            object.__setattr__(self, "bias", b)


def _layer_index(names: list[str]) -> dict[str, int]:
    return {n: i for i, n in enumerate(names)}


def _from_records(rows: list[tuple[int, str, int, float, float | None]]) -> LoadLog:
    """The dense log of long-format rows; every (step, layer, expert) exactly once. The dense
    size is checked against the rows before it is allocated (a row naming expert 10^12 must
    not allocate 10^12 entries)."""
    if not rows:
        raise ValueError("holds no rows")
    steps = sorted({r[0] for r in rows})
    layers = list(dict.fromkeys(r[1] for r in rows))
    if min(r[2] for r in rows) < 0:
        bad = next(r for r in rows if r[2] < 0)
        raise ValueError(f"expert must be >= 0, got {bad[2]}")
    e = max(r[2] for r in rows) + 1
    has_bias = rows[0][4] is not None
    if len(steps) * len(layers) * e != len(rows):
        seen: set[tuple[int, str, int]] = set()
        for step, layer, expert, _, _ in rows:
            if (step, layer, expert) in seen:
                raise ValueError(
                    f"two rows for step {step}, layer {layer!r}, expert {expert} "
                    "(every step needs every layer and expert exactly once)"
                )
            seen.add((step, layer, expert))
        if len(steps) * len(layers) * e <= 16 * len(rows):  # small enough to name the hole
            for step, layer, expert in itertools.product(steps, layers, range(e)):
                if (step, layer, expert) not in seen:
                    raise ValueError(
                        f"no row for step {step}, layer {layer!r}, expert {expert} (every "
                        "step needs every layer and expert)"
                    )
        raise ValueError(
            f"{len(rows)} rows for {len(steps)} steps x {len(layers)} layers x "
            f"E={e} experts (every step needs every layer and expert exactly once)"
        )
    s_idx, l_idx = _layer_index([str(s) for s in steps]), _layer_index(layers)
    loads = np.full((len(steps), len(layers), e), np.nan)
    bias = np.full_like(loads, np.nan) if has_bias else None
    for step, layer, expert, load, b in rows:
        if (b is None) == has_bias:
            raise ValueError("bias must be given on every row or on none")
        ti, li = s_idx[str(step)], l_idx[layer]
        loads[ti, li, expert] = load
        if bias is not None:
            bias[ti, li, expert] = b
    missing = np.argwhere(np.isnan(loads))
    if missing.size:
        t, lay, ex = missing[0]
        raise ValueError(
            f"no row for step {steps[t]}, layer {layers[lay]!r}, expert "
            f"{ex} (every step needs every layer and expert)"
        )
    return LoadLog(loads, np.asarray(steps), tuple(layers), bias)


LOG_FIELDS = {
    "loads": fileio.NpzField("iuf", (2, 3)),
    "bias": fileio.NpzField("iuf", (2, 3), False),
    "step": fileio.NpzField("iuf", (1,), False),
    "layer_names": fileio.NpzField("US", (1,), False),
}


def _npz_log(p: Path) -> LoadLog:
    info = fileio.inspect_npz(p, what="load log")
    dense = sum(math.prod(info[k].shape) * 8 for k in ("loads", "bias") if k in info)
    if dense > fileio.MAX_NPZ_BYTES:  # read as float64 below
        raise fileio.FileFormatError(
            p,
            f"declares loads/bias of {dense} bytes as float64, more than the "
            f"{fileio.MAX_NPZ_BYTES} read at most",
            what="load log",
            field="loads",
        )
    d = fileio.read_npz(p, LOG_FIELDS, what="load log")
    loads = np.asarray(d["loads"], dtype=np.float64)
    if loads.ndim == 2:
        loads = loads[:, None, :]
    if "step" in d:
        s = d["step"]
        if s.dtype.kind == "f" and not np.all(np.isfinite(s) & (s == np.round(s))):
            raise fileio.FileFormatError(
                p, "must hold integer step numbers", what="load log", field="step"
            )
        if s.size and (float(s.min()) < -(2**63) or float(s.max()) >= 2**63):
            raise fileio.FileFormatError(
                p, "step numbers must fit int64", what="load log", field="step"
            )
        steps = s.astype(np.int64)
    else:
        steps = np.arange(loads.shape[0])
    names_arr = d.get("layer_names")
    if names_arr is None:
        names = tuple(str(i) for i in range(loads.shape[1]))
    elif names_arr.dtype.kind == "S":
        names = tuple(v.decode("utf-8", "replace") for v in names_arr.tolist())
    else:
        names = tuple(str(v) for v in names_arr.tolist())
    bias = None
    if "bias" in d:
        bias = np.asarray(d["bias"], dtype=np.float64)
        if bias.ndim == 2:
            bias = bias[:, None, :]
    return LoadLog(loads, steps, names, bias)


def _csv_rows(p: Path, text: str) -> list[tuple[int, str, int, float, float | None]]:
    rows: list[tuple[int, str, int, float, float | None]] = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    need = {"step", "layer", "expert", "load"}
    try:
        fields = reader.fieldnames
        if fields is None or not need <= set(fields):
            raise ValueError(
                f"CSV header must contain step,layer,expert,load [,bias]; got {fields}"
            )
        has_bias = "bias" in fields
        for r in reader:
            try:
                rows.append(
                    (
                        int(r["step"]),
                        str(r["layer"]),
                        int(r["expert"]),
                        float(r["load"]),
                        float(r["bias"]) if has_bias else None,
                    )
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"line {reader.line_num}: {exc}") from None
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: not CSV: {exc}") from None
    return rows


def _jsonl_rows(p: Path, text: str) -> list[tuple[int, str, int, float, float | None]]:
    rows: list[tuple[int, str, int, float, float | None]] = []
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = fileio.loads_json(line, where=f"line {i}")
        try:
            if not isinstance(obj, dict):
                raise TypeError(f"a line must be a JSON object, got {type(obj).__name__}")
            loads = [float(v) for v in obj["loads"]]
            bias = None if obj.get("bias") is None else [float(v) for v in obj["bias"]]
            step, layer = int(obj["step"]), str(obj.get("layer", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"line {i}: needs step, loads [, layer, bias]: {exc}") from None
        if bias is not None and len(bias) != len(loads):
            raise ValueError(f"line {i}: bias and loads differ in length")
        for ex, c in enumerate(loads):
            rows.append((step, layer, ex, c, None if bias is None else bias[ex]))
    return rows


def read_load_log(path: str | os.PathLike[str], fmt: str | None = None) -> LoadLog:
    """Read a load log in one of the layouts of the module docstring (by suffix or ``fmt``).

    The file is read with :mod:`lfbtheory.fileio` (regular files only; npz headers, dtypes
    and sizes checked before anything is allocated; text logs at most 1 GiB); every problem
    is a :class:`lfbtheory.fileio.FileFormatError` (a ValueError) naming the file."""
    p = Path(path)
    kind = fmt or {".csv": "csv", ".npz": "npz", ".jsonl": "jsonl", ".json": "jsonl"}.get(
        p.suffix.lower()
    )
    if kind not in ("csv", "npz", "jsonl"):
        raise ValueError(
            f"log format must be one of 'csv', 'npz', 'jsonl' (from the suffix or "
            f"fmt=); got {p.suffix!r}"
        )
    try:
        if kind == "npz":
            return _npz_log(p)
        text = fileio.read_text(p, what="load log")
        rows = _csv_rows(p, text) if kind == "csv" else _jsonl_rows(p, text)
        return _from_records(rows)
    except fileio.FileFormatError as exc:
        if exc.path == str(p):
            raise
        raise fileio.FileFormatError(p, str(exc), what="load log") from None
    except (ValueError, TypeError) as exc:
        raise fileio.FileFormatError(p, str(exc), what="load log") from None


@dataclass(frozen=True)
class Thresholds:
    """Conventions for what counts as a finding (chosen as round numbers, not fitted).

    late: the trailing fraction of steps analysed as "late" (after the transient);
    dead_share: an expert is dead if its late mean load is below this fraction of L;
    drift_steps_of_u: a bias trend is drift if it moves more than this many updates u over the
    late window with R^2 >= drift_r2; cycle_acf: the autocorrelation needed at the cycle lag;
    cycle_steps_of_u / cycle_load: the cycle's peak-to-peak amplitude (bias in units of u /
    relative load) needed; overload_share: "persistently over capacity" if over L in more
    than this share of late steps; mean_excess: "balanced at the median, not the mean" if the
    median relative load is within mean_excess of 1 but the mean exceeds 1 + mean_excess;
    precision_horizon: warn when |b| reaches the bfloat16 lost-update magnitude within this
    many times the logged number of steps at its current late growth rate.
    """

    late: float = 0.5
    dead_share: float = 0.01
    drift_steps_of_u: float = 20.0
    drift_r2: float = 0.8
    cycle_acf: float = 0.5
    cycle_steps_of_u: float = 6.0
    cycle_load: float = 0.1
    overload_share: float = 0.8
    mean_excess: float = 0.05
    precision_horizon: float = 1.0


@dataclass(frozen=True)
class Finding:
    layer: str
    kind: str  # dead_expert | drift | limit_cycle | precision | overload | median_not_mean
    message: str
    experts: tuple[int, ...] = ()


@dataclass(frozen=True)
class LayerDiagnosis:
    """Every figure ``lfb diagnose`` reports for one layer (JSON-ready through ``summary``)."""

    name: str
    maxvio_batch: NDArray[np.float64]
    maxvio_global: NDArray[np.float64]
    over_capacity: NDArray[np.float64]
    mean_rel_load: NDArray[np.float64]
    median_rel_load: NDArray[np.float64]
    dead: tuple[int, ...]
    stats: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    def summary(self) -> dict[str, Any]:
        late = self.stats["late_start"]
        return {
            "layer": self.name,
            "maxvio_batch_mean_late": float(np.mean(self.maxvio_batch[late:])),
            "maxvio_batch_final": float(self.maxvio_batch[-1]),
            "maxvio_global_final": float(self.maxvio_global[-1]),
            "over_capacity_fraction": self.over_capacity.tolist(),
            "mean_rel_load": self.mean_rel_load.tolist(),
            "median_rel_load": self.median_rel_load.tolist(),
            "dead_experts": list(self.dead),
            **{k: v for k, v in self.stats.items()},
            "findings": [asdict(f) for f in self.findings],
        }


def lost_update_magnitude(u: float, dtype: str) -> float:
    """Smallest |b| (a power of two) at which an update of size u is rounded away in ``dtype``.

    With p mantissa bits, ulp(x) = 2^(floor(log2 x) - p); round-to-nearest drops u once
    u < ulp / 2, i.e. for |b| >= 2^(floor(log2 u) + p + 2) (bfloat16: u = 1e-3 -> 0.5).
    """
    if dtype not in MANTISSA_BITS:
        raise ValueError(f"dtype must be one of {tuple(MANTISSA_BITS)}; got {dtype!r}")
    if not u > 0:
        raise ValueError(f"u must be > 0, got {u}")
    return float(2.0 ** (math.floor(math.log2(u)) + MANTISSA_BITS[dtype] + 2))


def _linfit(y: NDArray[np.float64]) -> tuple[float, float]:
    """Slope per step and R^2 of a least-squares line through y (R^2 = 0 for a flat series)."""
    x = np.arange(len(y), dtype=np.float64)
    x -= x.mean()
    yc = y - y.mean()
    sxx = float(x @ x)
    slope = float(x @ yc) / sxx if sxx > 0 else 0.0
    ss = float(yc @ yc)
    r2 = 1.0 - float(np.sum((yc - slope * x) ** 2)) / ss if ss > 0 else 0.0
    return slope, r2


def _acf(x: NDArray[np.float64], max_lag: int) -> NDArray[np.float64]:
    """Autocorrelation of each column of x (T, m) at lags 0..max_lag, averaged over columns
    weighted by their variance (FFT)."""
    t = x.shape[0]
    x = x - x.mean(axis=0)
    var = np.sum(x**2, axis=0)
    keep = var > 0
    if not keep.any():
        return np.zeros(max_lag + 1)
    f = np.fft.rfft(x[:, keep], n=2 * t, axis=0)
    ac = np.fft.irfft(f * np.conj(f), axis=0)[: max_lag + 1]
    return np.asarray(ac.sum(axis=1) / var[keep].sum())


def _detrend(x: NDArray[np.float64]) -> NDArray[np.float64]:
    tt = np.arange(x.shape[0], dtype=np.float64)
    tt -= tt.mean()
    xc = x - x.mean(axis=0)
    slope = (tt @ xc) / max(float(tt @ tt), 1e-300)
    return np.asarray(xc - np.outer(tt, slope))


def _cycle(x: NDArray[np.float64], acf_min: float) -> tuple[int, float] | None:
    """(period, acf) of a periodic component of the columns of x, or None.

    A cycle: after detrending, the autocorrelation first dips below -0.2 and then has a local
    maximum >= acf_min at a lag P >= 3 (P <= T/3, so at least three periods are seen).
    """
    t = x.shape[0]
    if t < 12:
        return None
    ac = _acf(_detrend(x), t // 3 + 1)
    neg = np.nonzero(ac[1:] < -0.2)[0]
    if neg.size == 0:
        return None
    start = int(neg[0]) + 1
    for lag in range(max(3, start + 1), len(ac) - 1):
        if ac[lag] >= ac[lag - 1] and ac[lag] >= ac[lag + 1] and ac[lag] >= acf_min:
            return lag, float(ac[lag])
    return None


def _update_size(bias: NDArray[np.float64]) -> float:
    """The step size u in use: the median over steps of (max_i db_i - min_i db_i) / 2,
    db = b(t+1) - b(t) (exactly u for the sign rule whenever some bias goes up and another
    down; a common shift does not count; steps without any relative change are skipped)."""
    db = np.diff(bias, axis=0)
    half = (db.max(axis=1) - db.min(axis=1)) / 2
    half = half[half > 1e-15 * max(1.0, float(np.max(np.abs(bias))))]
    return float(np.median(half)) if half.size else float("nan")


def _diagnose_layer(
    name: str, loads: NDArray[np.float64], bias: NDArray[np.float64] | None, th: Thresholds
) -> LayerDiagnosis:
    t_len, e = loads.shape
    late = min(t_len - 1, int(round(t_len * (1.0 - th.late))))
    cap = loads.mean(axis=1, keepdims=True)
    rel = loads / cap
    mv_b = np.asarray(maxvio(loads))
    mv_g = maxvio_global(loads)
    rl = rel[late:]
    over = np.mean(rl > 1.0, axis=0)
    mean_rel, med_rel = rl.mean(axis=0), np.median(rl, axis=0)
    dead = tuple(int(i) for i in np.nonzero(mean_rel < th.dead_share)[0])
    findings: list[Finding] = []
    stats: dict[str, Any] = {"late_start": late, "steps": t_len, "n_experts": e}
    if dead:
        findings.append(
            Finding(
                name,
                "dead_expert",
                f"expert(s) {list(dead)} received < {th.dead_share:.0%} of the "
                f"mean load over the last {t_len - late} steps (dead)",
                dead,
            )
        )
    alive = [i for i in range(e) if i not in dead]
    hot = tuple(i for i in alive if over[i] > th.overload_share)
    if hot:
        findings.append(
            Finding(
                name,
                "overload",
                f"expert(s) {list(hot)} over capacity in more than "
                f"{th.overload_share:.0%} of late steps",
                hot,
            )
        )
    skew = tuple(
        i
        for i in alive
        if abs(med_rel[i] - 1) <= th.mean_excess and mean_rel[i] > 1 + th.mean_excess
    )
    if skew:
        findings.append(
            Finding(
                name,
                "median_not_mean",
                f"expert(s) {list(skew)}: median load at capacity but mean load "
                f"{', '.join(f'{mean_rel[i]:.2f}' for i in skew)} x capacity -- "
                "the sign rule balances the median, these loads are skewed",
                skew,
            )
        )
    if bias is not None:
        b = bias
        u = _update_size(b)
        stats["update_size_u"] = u
        common = b.mean(axis=1)
        centred = b - common[:, None]
        relative = b - np.median(b, axis=1, keepdims=True)  # robust to one runaway expert
        c_slope, c_r2 = _linfit(common[late:])
        stats.update(
            bias_mean_final=float(common[-1]),
            bias_mean_slope=c_slope,
            bias_spread_final=float(np.ptp(centred[-1])),
            bias_std_final=float(np.std(centred[-1])),
            bias_absmax_final=float(np.max(np.abs(b[-1]))),
        )
        window = t_len - late
        if math.isfinite(u) and u > 0:
            if abs(c_slope) * window > th.drift_steps_of_u * u and c_r2 >= th.drift_r2:
                findings.append(
                    Finding(
                        name,
                        "drift",
                        f"common-mode bias drift {c_slope:+.3g} per step ({c_slope / u:+.2f} u); "
                        f"routing ignores a common shift but |b| grows (now "
                        f"{stats['bias_absmax_final']:.3g})",
                    )
                )
            drifting = []
            for i in range(e):
                s_i, r2_i = _linfit(relative[late:, i])
                if abs(s_i) * window > th.drift_steps_of_u * u and r2_i >= th.drift_r2:
                    drifting.append(i)
            if drifting:
                findings.append(
                    Finding(
                        name,
                        "drift",
                        f"relative bias of expert(s) {drifting} keeps moving: a steady trend "
                        f"over the last {window} steps (not settled; a dead expert's or a step "
                        "u too small for the score spread)",
                        tuple(drifting),
                    )
                )
            head: dict[str, Any] = {}
            absmax = float(np.max(np.abs(b[-1])))
            growth = abs(float(_linfit(np.max(np.abs(b[late:]), axis=1))[0]))
            for dt in MANTISSA_BITS:
                lost = lost_update_magnitude(u, dt)
                ulp = (
                    2.0 ** (math.floor(math.log2(absmax)) - MANTISSA_BITS[dt])
                    if absmax > 0
                    else 0.0
                )
                steps_left = (
                    (lost - absmax) / growth
                    if growth > 0 and absmax < lost
                    else (0.0 if absmax >= lost else float("inf"))
                )
                head[dt] = {
                    "ulp_at_bias": ulp,
                    "lost_update_at": lost,
                    "headroom": lost / absmax if absmax > 0 else float("inf"),
                    "steps_until_lost": steps_left,
                }
                if dt == "bfloat16" and steps_left < th.precision_horizon * t_len:
                    findings.append(
                        Finding(
                            name,
                            "precision",
                            f"a bfloat16 bias loses updates of u={u:.3g} at |b| >= {lost:g}; "
                            f"|b| is {absmax:.3g}"
                            + (
                                " already"
                                if steps_left == 0
                                else f", reached in ~{steps_left:.0f} steps at the current growth"
                            )
                            + " (keep the bias in float32)",
                        )
                    )
            stats["precision"] = head
        cyc = _cycle(centred[late:, alive], th.cycle_acf)
        if cyc is not None:
            period, ac = cyc
            seg = centred[late:, alive]
            amp = float(np.max(np.ptp(_detrend(seg), axis=0)))
            stats["cycle"] = {"period": period, "acf": ac, "band_width": amp}
            if math.isfinite(u) and amp >= th.cycle_steps_of_u * u:
                findings.append(
                    Finding(
                        name,
                        "limit_cycle",
                        f"bias oscillates with period ~{period} steps (autocorrelation {ac:.2f}), "
                        f"band width {amp:.3g} = {amp / u:.1f} u; loads follow the cycle",
                    )
                )
    else:
        cyc = _cycle(rel[late:, alive], th.cycle_acf)
        if cyc is not None:
            period, ac = cyc
            amp = float(np.max(np.ptp(_detrend(rel[late:, alive]), axis=0)))
            stats["cycle"] = {"period": period, "acf": ac, "band_width": amp}
            if amp >= th.cycle_load:
                findings.append(
                    Finding(
                        name,
                        "limit_cycle",
                        f"loads oscillate with period ~{period} steps (autocorrelation {ac:.2f}), "
                        f"peak-to-peak {amp:.2f} x capacity",
                    )
                )
    return LayerDiagnosis(name, mv_b, mv_g, over, mean_rel, med_rel, dead, stats, tuple(findings))


def _solve(scores: NDArray[np.float64], k: int, capacity: int | None = None) -> Any:
    return solve_balanced(scores, k, capacity=capacity, method="auto")


def optimum_gap(
    scores: NDArray[np.float64], k: int, bias: NDArray[np.float64] | None, n: int, **groups: Any
) -> dict[str, Any]:
    """Routing with ``bias`` on recorded scores vs the exact balanced optima.

    Batches of n tokens (n k divisible by E): per batch, the score sum of biased top-k routing
    minus the optimum OPT_s of the batch LP (positive when the routing exceeds capacity),
    MaxVio of that routing; pooled (hindsight) over all batches: the same against the pooled
    LP, and max_i |(b - mean b) - (p* - mean p*)| for its exact price p*.
    """
    e = scores.shape[1]
    b = np.zeros(e) if bias is None else np.asarray(bias, np.float64)
    m = scores.shape[0] // n
    if m < 1:
        raise ValueError(f"n={n} exceeds the {scores.shape[0]} recorded tokens")
    per_gap, per_mv = [], []
    for j in range(m):
        s = scores[j * n : (j + 1) * n]
        r = route(s, k=k, bias=b, normalize=False, **groups)
        per_gap.append(
            (float(np.take_along_axis(s, r.experts, 1).sum()) - _solve(s, k).objective) / n
        )
        per_mv.append(float(maxvio(r.loads)))
    pooled = scores[: m * n]
    sol = _solve(pooled, k)
    r = route(pooled, k=k, bias=b, normalize=False, **groups)
    gap = (float(np.take_along_axis(pooled, r.experts, 1).sum()) - sol.objective) / (m * n)
    p = np.asarray(sol.bias, np.float64)
    dist = float(np.max(np.abs((b - b.mean()) - (p - p.mean()))))
    return {
        "batches": m,
        "n": n,
        "score_gap_per_token_batch_mean": float(np.mean(per_gap)),
        "maxvio_batch_mean": float(np.mean(per_mv)),
        "score_gap_per_token_pooled": gap,
        "maxvio_pooled": float(maxvio(r.loads)),
        "bias_distance_to_hindsight_price": dist,
        "bias_used": "logged final bias" if bias is not None else "zero (no bias logged)",
    }


def diagnose(
    log: LoadLog, *, thresholds: Thresholds | None = None, trace: Any = None, n: int = 256
) -> list[LayerDiagnosis]:
    """Diagnose every layer of ``log`` (and its gap to the exact optima on ``trace``, a
    :class:`lfbtheory.traces.Trace` whose layers match the log's by name, else by position)."""
    th = thresholds or Thresholds()
    if not 0 < th.late <= 1:
        raise ValueError(f"thresholds.late must be in (0, 1], got {th.late}")
    out = []
    for j, name in enumerate(log.layer_names):
        b = None if log.bias is None else log.bias[:, j]
        d = _diagnose_layer(name, log.loads[:, j], b, th)
        if trace is not None:
            if name in trace.layer_names:
                pos = trace.layer_names.index(name)
            elif trace.n_layers == len(log.layer_names):
                pos = j
            else:
                raise ValueError(
                    f"trace layers {list(trace.layer_names)} match the log's layers "
                    f"{list(log.layer_names)} neither by name nor by count"
                )
            if trace.n_experts != log.loads.shape[2]:
                raise ValueError(
                    f"trace has E={trace.n_experts} but the log E={log.loads.shape[2]}"
                )
            from lfbtheory.workloads.trace import batch_size_for

            nn = batch_size_for(n, trace.k, trace.n_experts, trace.n_tokens)
            bias = b[-1] if b is not None else trace.layer_bias(pos)
            gap = optimum_gap(trace.scores(pos), trace.k, bias, nn, **trace.group_kwargs)
            d = LayerDiagnosis(**{**d.__dict__, "stats": {**d.stats, "optimum_gap": gap}})
        out.append(d)
    return out


def _plain(diags: Sequence[LayerDiagnosis]) -> str:
    lines = []
    bad = [d for d in diags if d.findings]
    for d in diags:
        s = d.summary()
        st = d.stats
        bias_part = (
            f", bias u~{st['update_size_u']:.3g} mean {st['bias_mean_final']:+.3g} "
            f"spread {st['bias_spread_final']:.3g}"
            if "update_size_u" in st
            else ""
        )
        lines.append(
            f"layer {d.name}: MaxVio_batch late mean {s['maxvio_batch_mean_late']:.3f}, "
            f"MaxVio_global final {s['maxvio_global_final']:.4f}"
            + bias_part
            + (" -- healthy" if not d.findings else "")
        )
        for f in d.findings:
            lines.append(f"  [{f.kind}] {f.message}")
        g = d.stats.get("optimum_gap")
        if g:
            lines.append(
                f"  vs exact optimum on the trace ({g['batches']} batches of {g['n']}, "
                f"{g['bias_used']}): score gap per token {g['score_gap_per_token_batch_mean']:+.4f}"
                f" (per batch) / {g['score_gap_per_token_pooled']:+.4f} (pooled), MaxVio "
                f"{g['maxvio_batch_mean']:.3f} / {g['maxvio_pooled']:.3f} (optimum: 0), "
                f"max |bias - hindsight price| {g['bias_distance_to_hindsight_price']:.3g}"
            )
    kinds = sorted({f.kind for d in bad for f in d.findings})
    lines.append("")
    lines.append(
        f"{len(bad)} of {len(diags)} layer(s) with findings"
        + (f": {', '.join(kinds)}" if kinds else "; nothing looks unhealthy")
    )
    return "\n".join(lines)


def _plot(
    d: LayerDiagnosis,
    loads: NDArray[np.float64],
    bias: NDArray[np.float64] | None,
    steps: NDArray[np.int64],
    path: Path,
) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 7))
    axes = fig.subplots(2, 2)
    ax = axes[0, 0]
    w = max(1, len(steps) // 50)
    smooth = np.convolve(d.maxvio_batch, np.ones(w) / w, mode="valid")
    ax.plot(steps, d.maxvio_batch, lw=0.4, color="0.7", label="MaxVio_batch")
    ax.plot(steps[w - 1 :], smooth, lw=1.0, label=f"MaxVio_batch ({w}-step mean)")
    ax.plot(steps, d.maxvio_global, lw=1.0, label="MaxVio_global")
    ax.set(xlabel="step", ylabel="MaxVio", title="Balance over time")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    if bias is not None:
        ax.plot(steps, bias - bias.mean(axis=1, keepdims=True), lw=0.5)
        ax2 = ax.twinx()
        ax2.plot(steps, bias.mean(axis=1), "k--", lw=1.0)
        ax2.set_ylabel("mean bias (dashed)")
        ax.set(xlabel="step", ylabel="bias - mean bias", title="Bias (centred) and its mean")
    else:
        ax.text(0.5, 0.5, "no bias logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax = axes[1, 0]
    rel = loads / loads.mean(axis=1, keepdims=True)
    im = ax.imshow(
        rel.T,
        aspect="auto",
        cmap="coolwarm",
        vmin=0,
        vmax=2,
        interpolation="nearest",
        extent=(float(steps[0]), float(steps[-1]), loads.shape[1] - 0.5, -0.5),
    )
    fig.colorbar(im, ax=ax, label="load / capacity")
    ax.set(xlabel="step", ylabel="expert", title="Relative load")
    ax = axes[1, 1]
    x = np.arange(loads.shape[1])
    ax.bar(x, d.over_capacity, color="0.6", label="share of late steps over capacity")
    ax.plot(x, d.mean_rel_load, "o", ms=3, label="mean load / capacity")
    ax.plot(x, d.median_rel_load, "x", ms=4, label="median load / capacity")
    ax.axhline(1.0, color="k", lw=0.5)
    ax.axhline(0.5, color="k", lw=0.5, ls=":")
    ax.set(xlabel="expert", title="Late window: over capacity, mean vs median")
    ax.legend(fontsize=7)
    fig.suptitle(
        f"layer {d.name}: " + ("; ".join(sorted({f.kind for f in d.findings})) or "healthy")
    )
    fig.tight_layout()
    with fileio.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


def write_report(
    log: LoadLog,
    diags: Sequence[LayerDiagnosis],
    out: str | os.PathLike[str],
    *,
    config: dict[str, Any] | None = None,
    plots: bool = True,
) -> str:
    """Write summary.json, summary.txt and one PNG per layer to ``out``; return the text."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    text = _plain(diags)
    payload = {
        "config": config or {},
        "healthy": not any(d.findings for d in diags),
        "layers": [d.summary() for d in diags],
    }
    fileio.write_json(root / "summary.json", payload)  # NaN -> null (fileio)
    fileio.write_text(root / "summary.txt", text + "\n")
    if plots:
        for j, d in enumerate(diags):
            slug = "".join(c if c.isalnum() else "_" for c in d.name)
            b = None if log.bias is None else log.bias[:, j]
            _plot(d, log.loads[:, j], b, log.steps, root / f"layer{j:02d}_{slug}.png")
    return text


def synthetic_log(
    steps: int = 600,
    n_experts: int = 16,
    tokens: int = 8192,
    *,
    u: float = 1e-3,
    seed: int = 0,
    drift: float = 2.0,
    cycle_period: int = 40,
    cycle_amplitude: float = 20.0,
    dead_expert: int = 3,
) -> LoadLog:
    """A four-layer log with planted pathologies (for tests and demos); loads are multinomial.

    Every layer routes ``tokens`` token-slots per step with expert probabilities
    softmax((a + b_t) / tau), tau = 0.01, a ~ N(0, (2 tau)^2) seeded, and updates
    b += u sign(mean load - load) (the sign rule). Layer "healthy": just that. "drift": the
    logged bias also carries a common shift of ``drift`` u per step. "cycle": the bias is
    b* + cycle_amplitude u sin(2 pi t / cycle_period + phi_i) instead (b* the balancing offset),
    so loads oscillate. "dead": expert ``dead_expert`` has probability 0 (its bias rises by u
    every step, as the sign rule does for an expert that never receives tokens).
    """
    rng = np.random.default_rng(seed)
    tau = 0.01
    a = rng.normal(0.0, 2 * tau, n_experts)
    loads = np.empty((steps, 4, n_experts))
    bias = np.empty_like(loads)

    def probs(x: NDArray[np.float64], mask: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
        z = np.exp((x - x.max()) / tau)
        if mask is not None:
            z = np.where(mask, z, 0.0)
        return np.asarray(z / z.sum())

    alive = np.ones(n_experts, bool)
    alive[dead_expert] = False
    phase = rng.uniform(0, 2 * np.pi, n_experts)
    for layer in range(4):
        b = np.zeros(n_experts)
        for t in range(steps):
            if layer == 2:
                b = -a + cycle_amplitude * u * np.sin(2 * np.pi * t / cycle_period + phase)
            mask = alive if layer == 3 else None
            c = rng.multinomial(tokens, probs(a + b, mask)).astype(np.float64)
            loads[t, layer] = c
            bias[t, layer] = b + (drift * u * t if layer == 1 else 0.0)
            if layer != 2:
                b = b + u * np.sign(c.mean() - c)
    return LoadLog(loads, np.arange(steps), ("healthy", "drift", "cycle", "dead"), bias)
