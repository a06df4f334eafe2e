"""One training run of the testbed: a seeded, deterministic CPU run of :class:`MoELM` with one
balancing method, returning every measurement as plain arrays/floats.

Balancing methods (:class:`Method`): ``none``; ``aux`` (l = l_LM + alpha E sum f_i P_i, batch-
or sequence-wise; arXiv 2101.03961 Sec. 2.2, arXiv 2412.19437 eq. 17-20); ``lfb`` (Loss-Free
Balancing with a rule of :mod:`lfbtheory.online.updates`, one update per optimizer step from
the step's token counts; arXiv 2408.15664 Sec. 3); ``expert_choice`` (chunks of ``chunk``
tokens, non-causal; arXiv 2202.09368, arXiv 2408.15664 App. D).

Measurements: train bits per byte per step; MaxVio_batch per step and layer (arXiv 2408.15664
Sec. 4.1); validation bits per byte, MaxVio_global and the normalised utilisation entropy
H(c / sum c) / ln E on the validation windows; the interference cos(grad l_aux, grad l_LM)
on the router weights every ``interference_every`` steps (the batch- or sequence-wise aux
term, alpha-free, also for methods that do not train on it); optionally the layer-0 router
scores of a token subsample with the bias that routed them (for the regret ledger).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler

from lfbtheory.metrics import maxvio
from lfbtheory.testbed.balancing import LFB_RULES, TorchLFBRouter, make_rule
from lfbtheory.testbed.corpus import Corpus
from lfbtheory.testbed.model import ModelConfig, MoELM
from lfbtheory.validation import choice

__all__ = ["Method", "TrainConfig", "ByteWindows", "train_run", "set_determinism", "DSV3_STOP"]

METHOD_KINDS = ("none", "aux", "lfb", "expert_choice")
# DeepSeek-V3 (arXiv 2412.19437 Sec. 4.2): bias speed 0.001 for the first 14.3T of 14.8T tokens.
DSV3_STOP = 14.3 / 14.8


def _num(value: Any, name: str, *, positive: bool = False, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < minimum or (positive and v <= 0):
        raise ValueError(
            f"{name} must be finite and {'> 0' if positive else f'>= {minimum}'}, got {value!r}"
        )
    return v


@dataclass(frozen=True)
class Method:
    """A balancing setting. kind in METHOD_KINDS; alpha/scope for aux (scope "batch" or
    "sequence"); rule/u for lfb (rule in LFB_RULES); chunk for expert_choice."""

    kind: str
    alpha: float = 0.0
    scope: str = "batch"
    rule: str = "sign"
    u: float = 1e-3
    chunk: int = 0

    def __post_init__(self) -> None:
        choice(self.kind, "method.kind", METHOD_KINDS)
        if self.kind == "aux":
            _num(self.alpha, "method.alpha", positive=True)
            choice(self.scope, "method.scope", ("batch", "sequence"))
        if self.kind == "lfb":
            choice(self.rule, "method.rule", LFB_RULES)
            _num(self.u, "method.u", positive=True)
        if self.kind == "expert_choice" and (
            isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1
        ):
            raise ValueError(f"method.chunk must be an integer >= 1, got {self.chunk!r}")

    @property
    def label(self) -> str:
        if self.kind == "aux":
            return f"aux_{self.scope}_{self.alpha:g}"
        if self.kind == "lfb":
            return f"lfb_{self.rule}_{self.u:g}"
        if self.kind == "expert_choice":
            return f"expert_choice_c{self.chunk}"
        return "none"

    @property
    def family(self) -> str:
        return {"aux": f"aux_{self.scope}"}.get(self.kind, self.kind)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and measurement knobs (constants chosen a priori, see docs/testbed.md)."""

    steps: int = 400
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 20
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    eval_windows: int = 128
    curve_every: int = 50
    curve_windows: int = 16
    interference_every: int = 20
    record_tokens: int = 128
    threads: int = 1

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "eval_windows",
            "curve_every",
            "curve_windows",
            "interference_every",
            "threads",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"train.{name} must be an integer >= 1, got {v!r}")
        for name in ("warmup", "record_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"train.{name} must be an integer >= 0, got {v!r}")
        _num(self.lr, "train.lr", positive=True)
        _num(self.grad_clip, "train.grad_clip", positive=True)
        if not 0 <= _num(self.min_lr_frac, "train.min_lr_frac") <= 1:
            raise ValueError(f"train.min_lr_frac must be in [0, 1], got {self.min_lr_frac}")


class ByteWindows(Dataset):
    """Windows of seq_len + 1 consecutive bytes starting at every offset of ``data``."""

    def __init__(self, data: np.ndarray, seq_len: int) -> None:
        if data.size < seq_len + 2:
            raise ValueError(f"corpus split of {data.size} bytes is shorter than seq_len + 2")
        self.data = torch.from_numpy(data.astype(np.int64))
        self.seq_len = seq_len

    def __len__(self) -> int:
        return int(self.data.numel()) - self.seq_len - 1

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.data[i : i + self.seq_len + 1]


def set_determinism(seed: int, threads: int) -> None:
    """Seed torch, fix the thread count, and request deterministic kernels."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _val_windows(data: np.ndarray, seq_len: int, n: int) -> torch.Tensor:
    """n windows at evenly spaced fixed offsets of the validation bytes."""
    starts = np.linspace(0, data.size - seq_len - 2, n).astype(np.int64)
    idx = starts[:, None] + np.arange(seq_len + 1)[None, :]
    return torch.from_numpy(data[idx].astype(np.int64))


@torch.no_grad()
def evaluate(
    model: MoELM, windows: torch.Tensor, batch_size: int, *, routing: str = "token", chunk: int = 0
) -> dict[str, Any]:
    """Validation bits per byte, per-layer loads, MaxVio_global and utilisation entropy."""
    model.eval()
    e = model.cfg.n_experts
    total, count = 0.0, 0
    loads = np.zeros((model.cfg.n_layers, e), dtype=np.int64)
    for i in range(0, windows.shape[0], batch_size):
        w = windows[i : i + batch_size]
        logits, infos = model(w[:, :-1], routing=routing, chunk=chunk, count=False)
        total += float(
            F.cross_entropy(logits.reshape(-1, 256), w[:, 1:].reshape(-1), reduction="sum")
        )
        count += w[:, 1:].numel()
        for j, info in enumerate(infos):
            loads[j] += info.loads.numpy()
    model.train()
    p = loads / loads.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1) / math.log(e)
    mv = np.asarray(maxvio(loads))
    return {
        "bpb": total / count / math.log(2),
        "loads": loads.tolist(),
        "maxvio_global_layers": mv.tolist(),
        "maxvio_global": float(mv.mean()),
        "entropy_layers": ent.tolist(),
        "entropy": float(ent.mean()),
    }


def _digest(tensors: Any) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


@torch.no_grad()
def future_perturbation(
    model: MoELM,
    windows: torch.Tensor,
    batch_size: int,
    rng: np.random.Generator,
    *,
    routing: str = "token",
    chunk: int = 0,
) -> dict[str, Any]:
    """Causal leakage by intervention, the routing rule held fixed: in each window cut at
    c = (start of the chunk holding position T/2) + chunk/2 (T/2 for token choice), replace
    every byte at positions >= c by a random byte, and measure the change of the outputs at
    positions < c: max |delta logit|, mean |delta loss| (bits/byte, against the original next
    bytes) and the share of earlier positions whose logits changed at all. A causal model
    under token choice gives exactly 0 by construction (the control); any change under Expert
    Choice is information flowing from future tokens into earlier outputs (arXiv 2408.15664
    App. D)."""
    model.eval()
    t = model.cfg.seq_len
    c = t // 2 if routing == "token" or chunk <= 0 else (t // 2 // chunk) * chunk + chunk // 2
    pert = windows.clone()
    pert[:, c:] = torch.from_numpy(rng.integers(0, 256, size=pert[:, c:].shape))
    max_dl, dloss, changed, count = 0.0, 0.0, 0, 0
    for i in range(0, windows.shape[0], batch_size):
        w, pw = windows[i : i + batch_size], pert[i : i + batch_size]
        # dense experts: an earlier token's output cannot change through the row count of an
        # expert's matrix product, only through the routing (the quantity measured)
        la, _ = model(w[:, :-1], routing=routing, chunk=chunk, count=False, dense=True)
        lb, _ = model(pw[:, :-1], routing=routing, chunk=chunk, count=False, dense=True)
        la, lb = la[:, :c].double(), lb[:, :c].double()
        tgt = w[:, 1 : c + 1]
        ca = F.cross_entropy(la.reshape(-1, 256), tgt.reshape(-1), reduction="none")
        cb = F.cross_entropy(lb.reshape(-1, 256), tgt.reshape(-1), reduction="none")
        max_dl = max(max_dl, float((la - lb).abs().max()))
        dloss += float((ca - cb).abs().sum())
        changed += int(((la - lb).abs().amax(dim=-1) > 0).sum())
        count += tgt.numel()
    model.train()
    return {
        "cut": c,
        "max_abs_delta_logit": max_dl,
        "mean_abs_delta_bpb": dloss / count / math.log(2),
        "share_positions_changed": changed / count,
    }


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    va = torch.cat([x.reshape(-1) for x in a]).double()
    vb = torch.cat([x.reshape(-1) for x in b]).double()
    den = float(va.norm() * vb.norm())
    return float(va @ vb) / den if den > 0 else float("nan")


def train_run(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    method: Method,
    seed: int,
    corpus: Corpus,
    *,
    record: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Train one model from ``seed`` and measure it (see the module docstring).

    Deterministic: the same arguments give bit-identical results (one thread, seeded torch,
    seeded sampler). ``record``: keep the layer-0 router scores of ``record_tokens`` tokens per
    step and the bias that routed them. ``progress(n)`` is called after each step."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if method.kind == "expert_choice":
        t, e, k = model_cfg.seq_len, model_cfg.n_experts, model_cfg.k
        if t % method.chunk or (k * method.chunk) % e:
            raise ValueError(
                f"method.chunk must divide model.seq_len={t} and chunk*k must be divisible by "
                f"E={e}, got chunk={method.chunk}"
            )
    threads0, det0 = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        set_determinism(seed, train_cfg.threads)
        return _train(model_cfg, train_cfg, method, seed, corpus, record, progress)
    finally:  # leave the caller's process as it was
        torch.set_num_threads(threads0)
        torch.use_deterministic_algorithms(det0)


def _train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    method: Method,
    seed: int,
    corpus: Corpus,
    record: bool,
    progress: Any,
) -> dict[str, Any]:
    model = MoELM(model_cfg)
    if method.kind == "lfb":
        stop = max(1, round(DSV3_STOP * train_cfg.steps))
        for layer in model.moe_layers:
            rule = make_rule(method.rule, method.u, stop_step=stop)
            layer.attach_router(TorchLFBRouter(model_cfg.n_experts, model_cfg.k, rule))
    opt = torch.optim.AdamW(
        model.parameters(), lr=train_cfg.lr, betas=(0.9, 0.95), weight_decay=0.0
    )

    def lr_at(step: int) -> float:
        if step < train_cfg.warmup:
            return (step + 1) / train_cfg.warmup
        frac = (step - train_cfg.warmup) / max(1, train_cfg.steps - train_cfg.warmup)
        return train_cfg.min_lr_frac + (1 - train_cfg.min_lr_frac) * 0.5 * (
            1 + math.cos(math.pi * min(1.0, frac))
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(seed)
    data = ByteWindows(corpus.train, model_cfg.seq_len)
    sampler = RandomSampler(
        data, replacement=True, num_samples=train_cfg.steps * train_cfg.batch_size, generator=gen
    )
    loader = DataLoader(data, batch_size=train_cfg.batch_size, sampler=sampler, num_workers=0)
    val = _val_windows(corpus.val, model_cfg.seq_len, train_cfg.eval_windows)
    curve_val = val[:: max(1, train_cfg.eval_windows // train_cfg.curve_windows)]
    routing = "expert_choice" if method.kind == "expert_choice" else "token"
    rec_rng = np.random.default_rng([seed, 7])
    n_tok = train_cfg.batch_size * model_cfg.seq_len
    e, n_layers = model_cfg.n_experts, model_cfg.n_layers

    init_digest = _digest(model.state_dict().values())
    eval_digest = _digest([val])
    batch_hash = hashlib.sha256()
    grad_aux, grad_lm = [], []
    train_bpb, mv_batch, biases = [], [], []
    cos_steps, cos_vals = [], []
    curve_steps, curve_bpb, curve_mv = [], [], []
    rec_scores, rec_bias = [], []
    t0 = time.perf_counter()
    for step, batch in enumerate(loader):
        batch_hash.update(batch.numpy().tobytes())
        if record:
            rec_bias.append(model.moe_layers[0].bias.numpy().copy())
        logits, infos = model(batch[:, :-1], routing=routing, chunk=method.chunk)
        lm = F.cross_entropy(logits.reshape(-1, 256), batch[:, 1:].reshape(-1))
        loss = lm
        aux_terms = None
        if routing == "token":
            attr = "aux_seq" if method.kind == "aux" and method.scope == "sequence" else "aux_batch"
            aux_terms = sum(getattr(info, attr) for info in infos)
            if method.kind == "aux":
                loss = lm + method.alpha * aux_terms
        if aux_terms is not None and step % train_cfg.interference_every == 0:
            params = model.router_parameters()
            g_lm = torch.autograd.grad(lm, params, retain_graph=True)
            g_aux = torch.autograd.grad(aux_terms, params, retain_graph=True)
            cos_steps.append(step)
            cos_vals.append(_cosine(list(g_aux), list(g_lm)))
            grad_aux.append(torch.cat([g.reshape(-1) for g in g_aux]).numpy().astype(np.float32))
            grad_lm.append(torch.cat([g.reshape(-1) for g in g_lm]).numpy().astype(np.float32))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        sched.step()
        for layer in model.moe_layers:
            layer.optimizer_step()
        train_bpb.append(lm.item() / math.log(2))
        step_loads = np.stack([info.loads.numpy() for info in infos])
        mv_batch.append(np.asarray(maxvio(step_loads)))
        biases.append(np.stack([layer.bias.numpy().copy() for layer in model.moe_layers]))
        if record:
            idx = rec_rng.choice(n_tok, size=min(train_cfg.record_tokens, n_tok), replace=False)
            rec_scores.append(infos[0].scores[torch.from_numpy(np.sort(idx))].numpy().copy())
        if (step + 1) % train_cfg.curve_every == 0 or step + 1 == train_cfg.steps:
            ev = evaluate(
                model, curve_val, train_cfg.batch_size, routing=routing, chunk=method.chunk
            )
            curve_steps.append(step + 1)
            curve_bpb.append(ev["bpb"])
            curve_mv.append(ev["maxvio_global"])
        if progress is not None:
            progress(1)
    train_seconds = time.perf_counter() - t0
    dim = int(sum(p.numel() for p in model.router_parameters()))
    final = evaluate(model, val, train_cfg.batch_size, routing=routing, chunk=method.chunk)
    out: dict[str, Any] = {
        "method": asdict(method),
        "label": method.label,
        "family": method.family,
        "seed": seed,
        "val": final,
        "train_bpb": np.array(train_bpb),
        "maxvio_batch": np.array(mv_batch).reshape(-1, n_layers),
        "bias": np.array(biases).reshape(-1, n_layers, e),
        "interference_steps": np.array(cos_steps, dtype=np.int64),
        "interference_cos": np.array(cos_vals),
        "curve_steps": np.array(curve_steps, dtype=np.int64),
        "curve_val_bpb": np.array(curve_bpb),
        "curve_val_maxvio_global": np.array(curve_mv),
        "train_seconds": train_seconds,
        "tokens_per_second": train_cfg.steps * n_tok / train_seconds,
        "init_digest": init_digest,
        "batch_digest": batch_hash.hexdigest(),
        "eval_digest": eval_digest,
        "interference_dim": dim,
        "grad_aux": np.array(grad_aux, dtype=np.float32).reshape(len(grad_aux), dim),
        "grad_lm": np.array(grad_lm, dtype=np.float32).reshape(len(grad_lm), dim),
        # the same perturbation for every method of a seed (common random numbers)
        "leak_intervention": future_perturbation(
            model,
            val,
            train_cfg.batch_size,
            np.random.default_rng([seed, 11]),
            routing=routing,
            chunk=method.chunk,
        ),
    }
    if method.kind == "expert_choice":
        out["val_causal"] = evaluate(model, val, train_cfg.batch_size, routing="token")
    if record:
        out["recorded_scores"] = np.array(rec_scores, dtype=np.float32)
        out["recorded_bias"] = np.array(rec_bias)
    return out


__all__ += ["evaluate", "METHOD_KINDS"]
