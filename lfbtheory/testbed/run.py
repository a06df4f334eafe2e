"""The testbed grid: every balancing setting x every seed under one budget, aggregated into a
results table, an Expert Choice leakage table, the regret of a real bias trajectory, per-claim
verdicts, and plots.

Claims checked (arXiv 2408.15664 Table 2 and Sec. 2, App. D; arXiv 2412.19437 Table 5):
balance (LFB MaxVio_global < aux loss), quality (LFB bits/byte <= aux loss), the aux-loss trade-
off (larger alpha: better balance, worse quality), interference (the aux gradient on the router
is not aligned with the LM gradient), and Expert Choice leakage (non-causal evaluation beats
the causal evaluation of the same weights, more so for smaller chunks).

Statistics: mean and sample standard deviation (ddof = 1) over seeds; a difference of means
is "resolved" when |diff| > t_{0.975, nu} * SE (Welch: SE^2 = s1^2/n1 + s2^2/n2, nu by
Welch-Satterthwaite); otherwise the claim is "not resolvable at this scale" and the effect
size that would have been resolved (t * SE) is reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lfbtheory.testbed.corpus import load_corpus
from lfbtheory.testbed.model import ModelConfig
from lfbtheory.testbed.train import DSV3_STOP, Method, TrainConfig

__all__ = [
    "PRESETS",
    "TestbedConfig",
    "default_methods",
    "preset",
    "run_testbed",
    "summarize",
    "leakage_table",
    "verdicts",
    "recorded_regret",
    "welch",
    "save_run",
    "load_run",
]


def default_methods(ec_chunks: Sequence[int]) -> tuple[Method, ...]:
    """none; aux batch/sequence alpha in {1e-4, 1e-3, 1e-2}; LFB sign u in {1e-4, 1e-3, 1e-2},
    proportional u = 1e-3, DeepSeek-V3 schedule (u = 1e-3, then 0); Expert Choice per chunk."""
    ms: list[Method] = [Method("none")]
    for scope in ("batch", "sequence"):
        ms += [Method("aux", alpha=a, scope=scope) for a in (1e-4, 1e-3, 1e-2)]
    ms += [Method("lfb", rule="sign", u=u) for u in (1e-4, 1e-3, 1e-2)]
    ms += [Method("lfb", rule="proportional", u=1e-3), Method("lfb", rule="deepseek_v3", u=1e-3)]
    ms += [Method("expert_choice", chunk=c) for c in ec_chunks]
    return tuple(ms)


@dataclass(frozen=True)
class TestbedConfig:
    """Everything a testbed run depends on (written to config.json; ``--config`` replays it)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    methods: tuple[Method, ...] = field(default_factory=lambda: default_methods((128, 32, 16, 8)))
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int = 2
    max_corpus_bytes: int | None = None
    record: str = "lfb_sign_0.001"
    name: str = "default"

    __test__ = False  # not a pytest class

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("methods must hold at least one method")
        labels = [m.label for m in self.methods]
        if len(set(labels)) != len(labels):
            raise ValueError(f"methods must be distinct, got labels {labels}")
        if not self.seeds or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds
        ):
            raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {self.seeds}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {self.workers!r}")
        if self.record and self.record not in labels:
            raise ValueError(f"record must be '' or one of the method labels {labels}")
        rec = next((m for m in self.methods if m.label == self.record), None)
        if rec is not None and rec.kind != "lfb":
            raise ValueError(f"record must name an lfb method, got {self.record!r}")
        e, k = self.model.n_experts, self.model.k
        if self.record and (self.train.record_tokens * k) % e:
            raise ValueError(
                f"train.record_tokens * k must be divisible by E={e} (capacity n k / E), got "
                f"{self.train.record_tokens}"
            )
        for m in self.methods:
            if m.kind == "expert_choice" and (self.model.seq_len % m.chunk or (k * m.chunk) % e):
                raise ValueError(
                    f"method.chunk must divide model.seq_len={self.model.seq_len} and chunk*k "
                    f"must be divisible by E={e}, got chunk={m.chunk}"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": asdict(self.model),
            "train": asdict(self.train),
            "methods": [asdict(m) for m in self.methods],
            "seeds": list(self.seeds),
            "workers": self.workers,
            "max_corpus_bytes": self.max_corpus_bytes,
            "record": self.record,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestbedConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        _no_unknown(d, allowed, "config")
        kw: dict[str, Any] = {}
        if "model" in d:
            _no_unknown(d["model"], {f.name for f in dataclasses.fields(ModelConfig)}, "model")
            kw["model"] = ModelConfig(**d["model"])
        if "train" in d:
            _no_unknown(d["train"], {f.name for f in dataclasses.fields(TrainConfig)}, "train")
            kw["train"] = TrainConfig(**d["train"])
        if "methods" in d:
            names = {f.name for f in dataclasses.fields(Method)}
            for m in d["methods"]:
                _no_unknown(m, names, "methods[]")
            kw["methods"] = tuple(Method(**m) for m in d["methods"])
        if "seeds" in d:
            kw["seeds"] = tuple(d["seeds"])
        for key in ("workers", "max_corpus_bytes", "record", "name"):
            if key in d:
                kw[key] = d[key]
        return cls(**kw)


def _no_unknown(d: Any, allowed: set[str], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} in {where}; allowed: {sorted(allowed)}")


def preset(name: str) -> TestbedConfig:
    """Presets. "default": the ~10 minute grid on 2 cores (16 settings x 3 seeds, 400 steps
    of 16 x 128 bytes each); "quick": the same grid on a tiny model, 30 steps (< 1 minute)."""
    if name == "default":
        return TestbedConfig()
    if name == "quick":
        return TestbedConfig(
            model=ModelConfig(d_model=32, n_heads=2, d_expert=32, seq_len=32),
            train=TrainConfig(
                steps=30,
                batch_size=8,
                warmup=5,
                eval_windows=32,
                curve_every=10,
                curve_windows=8,
                interference_every=5,
                record_tokens=32,
            ),
            methods=default_methods((32, 16, 8)),
            max_corpus_bytes=1_000_000,
            name="quick",
        )
    if name == "long":
        # Steps from the theory, fixed before any run (docs/testbed.md, "The long preset"):
        # sigmoid scores lie in (0, 1), so the centred balancing price has spread <= 1 and a
        # constant-step sign rule needs T u >= 1 to reach it; T = 2 / u_min = 2000 steps for
        # u_min = 1e-3 leaves the second half of the run at the steady state.
        return TestbedConfig(
            train=TrainConfig(steps=LONG_STEPS, curve_every=100, interference_every=100),
            methods=(
                Method("none"),
                Method("aux", alpha=1e-3, scope="batch"),
                Method("lfb", rule="sign", u=1e-3),
                Method("lfb", rule="sign", u=1e-2),
                Method("lfb", rule="proportional", u=1e-3),
                Method("lfb", rule="proportional", u=1e-2),
            ),
            name="long",
        )
    raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")


PRESETS = ("default", "quick", "long")
LONG_U_MIN = 1e-3
LONG_STEPS = round(2 / LONG_U_MIN)

# ---------------------------------------------------------------------------------------------
# running

_CORPUS: Any = None


def _worker_init(max_bytes: int | None) -> None:
    global _CORPUS
    _CORPUS = load_corpus(max_bytes=max_bytes)


def _run_task(task: tuple[dict[str, Any], dict[str, Any], dict[str, Any], int, bool]) -> dict:
    from lfbtheory.testbed.train import train_run

    model_d, train_d, method_d, seed, record = task
    return train_run(
        ModelConfig(**model_d),
        TrainConfig(**train_d),
        Method(**method_d),
        seed,
        _CORPUS,
        record=record,
    )


def run_testbed(
    cfg: TestbedConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    tqdm_bar: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Run every (method, seed) of ``cfg``; return {"config", "corpus", "runs"} (runs in grid
    order, each the dict of :func:`~lfbtheory.testbed.train.train_run`). Each run is single-
    threaded and depends only on its own (config, method, seed): results do not depend on
    ``workers`` or on the order in which runs finish.

    ``cache_dir``: each finished run is stored there (:func:`save_run`: one ``.npz`` of plain
    arrays and a strict-JSON record, written atomically; never a pickle) under a key hashing
    (model, train, method, seed, record flag, corpus files_hash, corpus byte limit,
    :func:`lfbtheory.identity.code_identity`); runs already there are read back through the
    checked reader :func:`load_run` instead of re-run, so an interrupted grid resumes where it
    stopped, and any edit of the package recomputes. A cache file that is not a valid run
    record raises :class:`lfbtheory.fileio.FileFormatError` (nothing in it is executed).
    The returned dict's ``"cache"`` entry counts the runs read back (``hits``) and run."""
    from lfbtheory.identity import code_identity

    corpus = load_corpus(max_bytes=cfg.max_corpus_bytes)
    cache = None if cache_dir is None else Path(cache_dir)
    identity = None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        identity = code_identity()
    tasks = [
        (
            asdict(cfg.model),
            asdict(cfg.train),
            asdict(m),
            s,
            bool(cfg.record) and m.label == cfg.record and s == cfg.seeds[0],
        )
        for m in cfg.methods
        for s in cfg.seeds
    ]
    bar = None
    if tqdm_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc="testbed runs", unit="run")
    results: list[Any] = [None] * len(tasks)
    done = 0
    hits = 0

    def key(task: tuple) -> str:
        blob = json.dumps([task, corpus.files_hash, cfg.max_corpus_bytes, identity], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def key_path(task: tuple) -> Path | None:
        return None if cache is None else cache / f"run-{key(task)[:32]}.npz"

    def store(i: int, res: dict) -> None:
        results[i] = res
        path = key_path(tasks[i])
        if path is not None:
            save_run(path, res, key=key(tasks[i]))

    def tick() -> None:
        nonlocal done
        done += 1
        if bar is not None:
            bar.update(1)
        if progress is not None:
            progress(done, len(tasks))

    todo = []
    for i, t in enumerate(tasks):
        path = key_path(t)
        if path is not None and path.is_file():
            results[i] = load_run(path, key=key(t))
            hits += 1
            tick()
        else:
            todo.append(i)
    if cfg.workers == 1 or len(todo) <= 1:
        global _CORPUS
        _CORPUS = corpus
        for i in todo:
            store(i, _run_task(tasks[i]))
            tick()
    elif todo:
        ctx = mp.get_context("spawn")
        with ctx.Pool(
            min(cfg.workers, len(todo)),
            initializer=_worker_init,
            initargs=(cfg.max_corpus_bytes,),
        ) as pool:
            for i, res in pool.imap_unordered(_indexed, [(i, tasks[i]) for i in todo]):
                store(i, res)
                tick()
    if bar is not None:
        bar.close()
    return {
        "config": cfg.to_dict(),
        "corpus": corpus.summary(),
        "runs": results,
        "cache": {"hits": hits, "runs": len(tasks) - hits},
    }


RUN_FORMAT = "lfbtheory-testbed-run/1"
_META = "record"  # the npz member holding the strict-JSON part of a run record
_ARRAY = "array:"  # prefix of the members holding the run record's arrays


def _nan_for_null(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _nan_for_null(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_for_null(v) for v in x]
    return float("nan") if x is None else x


def _has_null(x: Any) -> bool:
    if isinstance(x, dict):
        return any(_has_null(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return any(_has_null(v) for v in x)
    return x is None


def save_run(path: str | os.PathLike[str], run: dict[str, Any], *, key: str) -> Path:
    """Write one run record atomically as an ``.npz`` of plain arrays: every numpy array of
    ``run`` as member ``array:<name>``, everything else as strict JSON text in member
    ``record`` (with the format tag and the cache ``key``). Non-finite floats of the JSON part
    are written as null and read back as NaN (a run record holds no None of its own)."""
    from lfbtheory.fileio import dumps_json, write_npz

    arrays = {f"{_ARRAY}{k}": v for k, v in run.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in run.items() if not isinstance(v, np.ndarray)}
    if _has_null(rest):
        raise ValueError("run: a run record must not hold None (null means NaN in the cache)")
    meta = dumps_json({"format": RUN_FORMAT, "key": key, "run": rest}, indent=None)
    return write_npz(path, {_META: np.array(meta), **arrays})


def load_run(path: str | os.PathLike[str], *, key: str | None = None) -> dict[str, Any]:
    """Read a run record written by :func:`save_run` through the checked readers of
    :mod:`lfbtheory.fileio` (no pickle: object arrays, malformed zips, oversized declarations
    and non-JSON records are refused before anything is allocated or run). ``key``: the cache
    key the record must carry. Raises :class:`~lfbtheory.fileio.FileFormatError` naming the
    file and the field at fault."""
    from lfbtheory.fileio import FileFormatError, loads_json, read_npz

    what = "testbed cache file (delete it to recompute the run)"
    members = read_npz(path, what=what)
    if _META not in members:
        raise FileFormatError(path, "has no run record", what=what, field=_META)
    raw = members.pop(_META)
    if raw.dtype.kind != "U" or raw.ndim != 0:
        raise FileFormatError(path, "must be a text scalar", what=what, field=_META)
    meta = loads_json(str(raw), where=f"{what} {path}: {_META}")
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise FileFormatError(
            path, f"format must be {RUN_FORMAT!r}, got {got!r}", what=what, field="format"
        )
    if key is not None and meta.get("key") != key:
        raise FileFormatError(
            path,
            "was written under another cache key (renamed or copied file)",
            what=what,
            field="key",
        )
    run = meta.get("run")
    if not isinstance(run, dict):
        raise FileFormatError(path, "must be a JSON object", what=what, field="run")
    out: dict[str, Any] = _nan_for_null(run)
    for name, arr in members.items():
        if not name.startswith(_ARRAY):
            raise FileFormatError(path, "is not a member of a run record", what=what, field=name)
        out[name[len(_ARRAY) :]] = arr
    return out


def _indexed(item: tuple[int, Any]) -> tuple[int, dict]:
    i, task = item
    return i, _run_task(task)


# ---------------------------------------------------------------------------------------------
# statistics and tables


def _ms(x: Sequence[float]) -> tuple[float, float, int]:
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan"), float("nan"), 0
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else float("nan"), int(a.size)


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """mean(a) - mean(b), its Welch standard error, t quantile and the resolvable effect."""
    from scipy import stats

    xa, xb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    se = math.sqrt(va + vb)
    diff = float(xa.mean() - xb.mean())
    if se == 0:
        return {
            "diff": diff,
            "se": 0.0,
            "t_crit": float("nan"),
            "resolvable": 0.0,
            "resolved": diff != 0,
        }
    nu = (va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1))
    tc = float(stats.t.ppf(0.975, nu))
    return {
        "diff": diff,
        "se": se,
        "t_crit": tc,
        "resolvable": tc * se,
        "resolved": abs(diff) > tc * se,
    }


def one_sample(x: Sequence[float]) -> dict[str, float]:
    """mean(x) (finite entries), its standard error s / sqrt(n), the two-sided 95% t quantile
    and the resolvable effect, as :func:`welch` reports a difference (NaN for n < 2)."""
    from scipy import stats

    m, s, n = _ms(x)
    se = s / math.sqrt(n) if n > 1 else float("nan")
    tc = float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")
    return {
        "diff": m,
        "se": se,
        "t_crit": tc,
        "resolvable": tc * se if n > 1 else float("nan"),
        "resolved": bool(n > 1 and abs(m) > tc * se),
    }


def _late(x: np.ndarray, frac: float = 0.1) -> float:
    n = max(1, int(len(x) * frac))
    return float(np.mean(x[-n:]))


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per setting: mean/std over seeds of validation bits per byte, MaxVio_global,
    utilisation entropy, late train bits per byte, late MaxVio_batch, interference cosine."""
    by: dict[str, list[dict]] = {}
    for r in results["runs"]:
        by.setdefault(r["label"], []).append(r)
    rows = []
    for label, runs in by.items():
        row: dict[str, Any] = {"setting": label, "family": runs[0]["family"], "seeds": len(runs)}
        metrics = {
            "val_bpb": [r["val"]["bpb"] for r in runs],
            "maxvio_global": [r["val"]["maxvio_global"] for r in runs],
            "entropy": [r["val"]["entropy"] for r in runs],
            "train_bpb_late": [_late(r["train_bpb"]) for r in runs],
            "maxvio_batch_late": [_late(r["maxvio_batch"].mean(axis=1), 0.5) for r in runs],
            "interference_cos": [
                float(np.mean(r["interference_cos"]))
                if len(r["interference_cos"])
                else float("nan")
                for r in runs
            ],
            "tokens_per_second": [r["tokens_per_second"] for r in runs],
        }
        if "val_causal" in runs[0]:
            metrics["val_bpb_causal"] = [r["val_causal"]["bpb"] for r in runs]
            metrics["maxvio_global_causal"] = [r["val_causal"]["maxvio_global"] for r in runs]
        for key, vals in metrics.items():
            m, s, _ = _ms(vals)
            row[f"{key}_mean"], row[f"{key}_std"] = m, s
        rows.append(row)
    return rows


def leakage_table(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Expert Choice per chunk: late train bpb, non-causal and causal (token-choice top-k of the
    same weights) validation bpb, the gap causal - non-causal, beside the App. D bound."""
    from lfbtheory.analysis.causality import expert_choice_leakage

    cfg = results["config"]["model"]
    e, k, layers = cfg["n_experts"], cfg["k"], cfg["n_layers"]
    by: dict[int, list[dict]] = {}
    for r in results["runs"]:
        if r["method"]["kind"] == "expert_choice":
            by.setdefault(r["method"]["chunk"], []).append(r)
    rows = []
    for chunk in sorted(by, reverse=True):
        runs = by[chunk]
        bound = expert_choice_leakage(chunk, e, k)
        gap = [r["val_causal"]["bpb"] - r["val"]["bpb"] for r in runs]
        row: dict[str, Any] = {"chunk": chunk, "seeds": len(runs)}
        for key, vals in {
            "train_bpb_late": [_late(r["train_bpb"]) for r in runs],
            "val_bpb_noncausal": [r["val"]["bpb"] for r in runs],
            "val_bpb_causal": [r["val_causal"]["bpb"] for r in runs],
            "gap_causal_minus_noncausal": gap,
        }.items():
            row[f"{key}_mean"], row[f"{key}_std"], _ = _ms(vals)
        row.update(
            {
                "bound_bits_per_token_layer_exact": bound.exact,
                "bound_bits_per_token_layer_appD": bound.lower,
                "bound_bits_per_token_all_layers": layers * bound.exact,
            }
        )
        rows.append(row)
    return rows


def _values(results: dict[str, Any], label: str, fn: Callable[[dict], float]) -> list[float]:
    return [fn(r) for r in results["runs"] if r["label"] == label]


def _paired(
    results: dict[str, Any], a: str, b: str, fn: Callable[[dict], float]
) -> tuple[list[float], list[float], list[int]]:
    """fn of the runs of settings a and b, matched by seed (the seeds both ran)."""
    va = {r["seed"]: fn(r) for r in results["runs"] if r["label"] == a}
    vb = {r["seed"]: fn(r) for r in results["runs"] if r["label"] == b}
    seeds = sorted(set(va) & set(vb))
    return [va[s] for s in seeds], [vb[s] for s in seeds], seeds


def _claim_row(
    claim: str, compare: str, paper: str, d: Sequence[float], claim_sign: int, **extra: Any
) -> dict[str, Any]:
    from lfbtheory.testbed.paired import paired_stats, verdict_of

    if len(d) < 2:
        return {
            "claim": claim,
            "compare": compare,
            "paper": paper,
            "verdict": f"not resolvable at this scale (only {len(d)} paired seed(s))",
            "basis": "needs >= 2 seeds",
            **extra,
        }
    st = paired_stats(d)
    return {
        "claim": claim,
        "compare": compare,
        "paper": paper,
        **verdict_of(st, claim_sign=claim_sign),
        **st,
        **extra,
    }


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """A verdict per claim from paired per-seed differences (:mod:`lfbtheory.testbed.paired`):
    reproduces / refuted / not resolvable at this scale (with the paired MDE). Each row also
    holds the unpaired Welch half-width for contrast."""
    from lfbtheory.testbed.paired import welch as welch_hw

    out: list[dict[str, Any]] = []
    labels = {r["label"] for r in results["runs"]}
    bpb = lambda r: r["val"]["bpb"]  # noqa: E731
    mvg = lambda r: r["val"]["maxvio_global"]  # noqa: E731

    def compare(
        claim: str, a: str, b: str, fn: Callable, paper: str, want_less: bool = True, what: str = ""
    ) -> None:
        if a not in labels or b not in labels:
            return
        xa, xb, seeds = _paired(results, a, b, fn)
        d = [x - y for x, y in zip(xa, xb, strict=True)]
        w = welch_hw(xa, xb) if len(seeds) > 1 else {"half_width": float("nan")}
        out.append(
            _claim_row(
                claim,
                f"{a} - {b} ({what}), paired by seed",
                paper,
                d,
                -1 if want_less else 1,
                seeds=seeds,
                welch_half_width=w["half_width"],
            )
        )

    compare(
        "balance: LFB has lower MaxVio_global than the aux loss",
        "lfb_sign_0.001",
        "aux_batch_0.001",
        mvg,
        "2408.15664 Table 2: 0.04 vs 0.72",
        what="MaxVio_global",
    )
    compare(
        "quality: LFB has lower validation loss than the aux loss",
        "lfb_sign_0.001",
        "aux_batch_0.001",
        bpb,
        "2408.15664 Table 2: PPL 9.50 vs 9.56",
        what="bits/byte",
    )
    compare(
        "balance: LFB (sequence-wise aux comparison)",
        "lfb_sign_0.001",
        "aux_sequence_0.001",
        mvg,
        "2412.19437 Table 5 (aux-loss-free vs seq-wise aux)",
        what="MaxVio_global",
    )
    compare(
        "quality: LFB vs sequence-wise aux loss",
        "lfb_sign_0.001",
        "aux_sequence_0.001",
        bpb,
        "2412.19437 Table 5: aux-loss-free better on most benchmarks",
        what="bits/byte",
    )
    compare(
        "trade-off: a larger aux alpha buys balance",
        "aux_batch_0.01",
        "aux_batch_0.0001",
        mvg,
        "2408.15664 Fig. 2 (alpha sweep)",
        what="MaxVio_global",
    )
    compare(
        "trade-off: a larger aux alpha costs quality",
        "aux_batch_0.01",
        "aux_batch_0.0001",
        bpb,
        "2408.15664 Fig. 2 (alpha sweep)",
        want_less=False,
        what="bits/byte",
    )
    compare(
        "LFB balances better than no balancing",
        "lfb_sign_0.001",
        "none",
        mvg,
        "2408.15664 Sec. 3",
        what="MaxVio_global",
    )
    # interference: the aux gradient on the router opposes the LM gradient (mean cosine < 0),
    # per seed against the chance level of its own dimension (interference_null).
    for label in ("aux_batch_0.001", "aux_batch_0.01"):
        if label in labels:
            out.append(interference_claim(results, label))
    leak = leakage_claims(results)
    out.extend(leak)
    return out


# ---------------------------------------------------------------------------------------------
# regret of the recorded bias trajectory


def recorded_regret(results: dict[str, Any]) -> dict[str, Any] | None:
    """The regret ledger of the real bias trajectory (layer 0 of the recorded run) on the
    recorded router scores, beside the package's own loop replaying the same rule on the same
    scores; both against the hindsight-optimal price of the pooled scores (exact LP)."""
    from lfbtheory import expert_loads, regret_report, route, simulate
    from lfbtheory.analysis.regret import compute_comparators
    from lfbtheory.testbed.balancing import make_rule

    run = next((r for r in results["runs"] if "recorded_scores" in r), None)
    if run is None:
        return None
    k = results["config"]["model"]["k"]
    e = results["config"]["model"]["n_experts"]
    steps = results["config"]["train"]["steps"]
    batches = [np.asarray(s, dtype=np.float64) for s in run["recorded_scores"]]
    bias = np.asarray(run["recorded_bias"], dtype=np.float64)
    m = run["method"]
    rule = make_rule(m["rule"], m["u"], stop_step=max(1, round(DSV3_STOP * steps)))
    replay = simulate(batches, k, rule)
    loads, reward = [], []
    for s, b in zip(batches, bias, strict=True):
        r = route(s, k=k, bias=b)
        loads.append(expert_loads(r.experts, e))
        reward.append(float(np.take_along_axis(s, r.experts, axis=1).sum()))
    real = dataclasses.replace(
        replay,
        bias=bias,
        loads=np.array(loads),
        reward=np.array(reward),
        rule=f"{replay.rule} (training run)",
    )
    comp = compute_comparators(batches, k)
    rep_real = regret_report(real, batches, k, comparators=comp)
    rep_replay = regret_report(replay, batches, k, comparators=comp)
    p = comp.hindsight_bias

    def dist(b: np.ndarray) -> float:
        return float(np.max(np.abs((b - b.mean()) - (p - p.mean()))))

    return {
        "label": run["label"],
        "seed": run["seed"],
        "tokens_per_step": int(batches[0].shape[0]),
        "steps": len(batches),
        "t": rep_real.t.tolist(),
        "dual_regret_real": rep_real.dual_regret.tolist(),
        "dual_regret_replay": rep_replay.dual_regret.tolist(),
        "summary_real": rep_real.summary(),
        "summary_replay": rep_replay.summary(),
        "hindsight_bias": p.tolist(),
        "final_bias_real": bias[-1].tolist(),
        "final_bias_replay": np.asarray(replay.bias[-1]).tolist(),
        "distance_to_hindsight_real": dist(bias[-1]),
        "distance_to_hindsight_replay": dist(np.asarray(replay.bias[-1])),
        "bias_real": bias.tolist(),
        "bias_replay": np.asarray(replay.bias).tolist(),
    }


# ---------------------------------------------------------------------------------------------
# interference against chance, leakage by intervention

NULL_DRAWS = 4000


def interference_null(
    dim: int,
    m: int,
    n_seeds: int,
    rng: np.random.Generator,
    *,
    grads: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    draws: int = NULL_DRAWS,
) -> dict[str, Any]:
    """Null distributions of the grand mean cosine (m measurements per seed, n_seeds seeds).

    "random": cos(u, g) with u uniform on the sphere of R^dim (any fixed g; the law of one
    coordinate of a uniform unit vector, mean 0, variance 1 / dim). "permuted" (when the
    per-step gradient pairs ``grads`` = [(G_aux (m, dim), G_lm (m, dim)) per seed] are given):
    cos(g_aux[t], g_lm[pi(t)]) for uniformly random permutations pi of the measured steps --
    the aux and LM gradients of different batches, which keeps every structure the gradients
    share across training. Returns the central 1 - ALPHA interval of each."""
    from lfbtheory.testbed.paired import ALPHA

    q = (ALPHA / 2, 1 - ALPHA / 2)
    # cos of a uniform direction with a fixed unit vector: z_1 / |z| for z ~ N(0, I_dim)
    z1 = rng.standard_normal((draws, n_seeds * m))
    rest = rng.chisquare(dim - 1, size=(draws, n_seeds * m))
    rand = (z1 / np.sqrt(z1**2 + rest)).mean(axis=1)
    out: dict[str, Any] = {
        "random_interval": [float(x) for x in np.quantile(rand, q)],
        "random_sd": float(rand.std()),
    }
    if grads:
        vals = np.empty(draws)
        units = []
        for ga, gl in grads:
            ga = ga / np.linalg.norm(ga, axis=1, keepdims=True)
            gl = gl / np.linalg.norm(gl, axis=1, keepdims=True)
            units.append((ga.astype(np.float64), gl.astype(np.float64)))
        for i in range(draws):
            tot, cnt = 0.0, 0
            for ga, gl in units:
                pi = rng.permutation(ga.shape[0])
                tot += float(np.sum(ga * gl[pi]))
                cnt += ga.shape[0]
            vals[i] = tot / cnt
        out["permuted_interval"] = [float(x) for x in np.quantile(vals, q)]
    return out


def interference_claim(results: dict[str, Any], label: str) -> dict[str, Any]:
    """The interference claim for ``label``: the grand mean cos(grad aux, grad LM) against its
    null intervals (random directions; permuted batches when gradients were recorded), then
    the paired-t verdict of the per-seed means (claimed sign: negative)."""
    runs = [r for r in results["runs"] if r["label"] == label]
    per_seed = [float(np.mean(r["interference_cos"])) for r in runs]
    m = min(len(r["interference_cos"]) for r in runs)
    dim = int(runs[0].get("interference_dim") or 0)
    if not dim:
        cfg = results["config"]["model"]
        dim = cfg["n_layers"] * cfg["n_experts"] * cfg["d_model"]
    grads = [
        (np.asarray(r["grad_aux"]), np.asarray(r["grad_lm"]))
        for r in runs
        if "grad_aux" in r and len(r["grad_aux"]) > 1
    ]
    full = grads if len(grads) == len(runs) else None
    null = interference_null(dim, m, len(runs), np.random.default_rng(0), grads=full)
    grand = float(np.mean(per_seed))
    perm = null.get("permuted_interval", [np.inf, -np.inf])  # absent: random null only
    lo = min(null["random_interval"][0], perm[0])
    hi = max(null["random_interval"][1], perm[1])
    paper = "2408.15664 Sec. 2 (interference gradients); proofs lemma 9(e)"
    compare = (
        f"{label}: mean cos(grad aux, grad LM) over training, {m} steps x {len(runs)} seeds, "
        f"dimension {dim}; chance interval [{lo:.3g}, {hi:.3g}]"
    )
    extra = {"grand_mean_cos": grand, "null": null, "chance_interval": [lo, hi]}
    if lo <= grand <= hi:
        return {
            "claim": "interference: the aux gradient on the router opposes the LM gradient",
            "compare": compare,
            "paper": paper,
            "verdict": "not distinguishable from chance",
            "basis": f"grand mean {grand:.3g} inside the central {100 * (1 - 0.05):g}% null "
            "interval",
            "per_seed": per_seed,
            **extra,
        }
    row = _claim_row(
        "interference: the aux gradient on the router opposes the LM gradient",
        compare,
        paper,
        per_seed,
        -1,
        per_seed=per_seed,
        **extra,
    )
    if row["verdict"] == "refuted":
        row["verdict"] = "refuted (aligned on average, beyond chance)"
    return row


def leakage_claims(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Expert Choice leakage by intervention (routing rule fixed; future bytes perturbed):
    per chunk, the mean |delta loss| of earlier bytes, paired by seed against the token-
    choice control (the ``none`` setting, or any token-choice setting), which must read
    exactly 0; beside the App. D information bound."""
    from lfbtheory.analysis.causality import expert_choice_leakage

    cfg = results["config"]["model"]
    e, k = cfg["n_experts"], cfg["k"]
    runs = [r for r in results["runs"] if "leak_intervention" in r]
    control = [r for r in runs if r["method"]["kind"] != "expert_choice"]
    rows: list[dict[str, Any]] = []
    if not control:
        return rows
    ctrl_max = max(r["leak_intervention"]["max_abs_delta_logit"] for r in control)
    chunks = sorted({r["method"]["chunk"] for r in runs if r["method"]["kind"] == "expert_choice"})
    paper = "2408.15664 App. D (Expert Choice leaks future tokens)"
    for chunk in chunks:
        ec = [
            r
            for r in runs
            if r["method"].get("chunk") == chunk and r["method"]["kind"] == "expert_choice"
        ]
        d = [r["leak_intervention"]["mean_abs_delta_bpb"] for r in ec]
        bound = expert_choice_leakage(chunk, e, k)
        row = _claim_row(
            "Expert Choice leaks: perturbing only future bytes changes earlier outputs",
            f"expert_choice_c{chunk}: mean |delta loss| of earlier bytes (bits/byte); "
            f"token-choice control max |delta logit| = {ctrl_max:g}",
            paper,
            d,
            1,
            control_max_abs_delta_logit=ctrl_max,
            bound_bits_per_token_layer_exact=bound.exact,
            share_positions_changed=[r["leak_intervention"]["share_positions_changed"] for r in ec],
        )
        if ctrl_max != 0:
            row["verdict"] = "invalid: the token-choice control changed (must read 0)"
        rows.append(row)
    return rows
