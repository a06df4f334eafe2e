"""The router-state machine: the one place where a Loss-Free bias lives through training.

A training loop routes micro-batches with the current bias, accumulates their token counts,
and applies ONE bias update per optimizer step from the counts summed over micro-batches and
data-parallel replicas (arXiv 2408.15664 Sec. 3: the bias of a batch depends on earlier
batches only). Evaluation, no-grad and activation-recompute passes route but count nothing;
a frozen state routes and counts but never moves its bias. The functions here are pure:

    init_state(rule, E, bias0)                  -> RouterState
    accumulate(state, loads)                    -> RouterState   (one training micro-batch)
    optimizer_step(rule, states)                -> tuple[RouterState, ...]  (all replicas)
    freeze(state)                               -> RouterState
    state_dict(rule, state, micro_batches) / load_state_dict(rule, d, ...)  (checkpoints)

Both :func:`lfbtheory.simulate` and :class:`lfbtheory.routers.TokenChoice` are built on them,
so they share one checkpoint format (``FORMAT_VERSION``), validated field by field on load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lfbtheory import fileio
from lfbtheory.online.updates import Rule

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "RouterState",
    "init_state",
    "accumulate",
    "optimizer_step",
    "freeze",
    "state_dict",
    "load_state_dict",
    "save_state",
    "load_state",
]

FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not match the rule or loop loading it."""


class RouterState(NamedTuple):
    """rule: the rule's state (bias, count, buffers); pending: (E,) int64 token counts since
    the last optimizer step; n_pending: training micro-batches in them; frozen: no updates."""

    rule: Any
    pending: NDArray[np.int64]
    n_pending: int = 0
    frozen: bool = False

    @property
    def bias(self) -> NDArray[np.float64]:
        return self.rule.bias  # type: ignore[no-any-return]


def init_state(rule: Any, n_experts: int, bias0: ArrayLike | None = None) -> RouterState:
    """A fresh state: ``rule.init(E, bias0)``, no pending counts."""
    _check_rule(rule)
    rs = rule.init(n_experts, bias0)
    return RouterState(rs, np.zeros(rs.bias.shape[0], dtype=np.int64), 0, False)


def accumulate(state: RouterState, loads: ArrayLike) -> RouterState:
    """Add one training micro-batch's token counts (E,) to the pending counts."""
    c = np.asarray(loads)
    if c.shape != state.pending.shape:
        raise ValueError(f"loads must have shape {state.pending.shape}, got {c.shape}")
    if not np.issubdtype(c.dtype, np.integer) or (c.size and c.min() < 0):
        raise ValueError("loads must be non-negative integer token counts")
    return state._replace(pending=state.pending + c.astype(np.int64), n_pending=state.n_pending + 1)


def optimizer_step(rule: Rule, states: Sequence[RouterState]) -> tuple[RouterState, ...]:
    """One optimizer step on every data-parallel replica: all-reduce (sum) the pending counts,
    apply one update of ``rule`` to each unfrozen replica, reset the counts."""
    from lfbtheory.online.resolve import Resolve

    if isinstance(rule, Resolve):
        raise TypeError(
            f"rule {rule.name!r} re-solves an LP on the step's scores, not on its loads: "
            "advance it with rule.observe(scores, state, k) (or run it in simulate)"
        )
    states = tuple(states)
    if not states:
        raise ValueError("states must hold at least one replica state")
    total = np.sum([s.pending for s in states], axis=0)
    out = []
    for s in states:
        rs = s.rule if s.frozen else rule.update(total, s.rule)
        out.append(RouterState(rs, np.zeros_like(s.pending), 0, s.frozen))
    return tuple(out)


def freeze(state: RouterState) -> RouterState:
    """The same state, frozen: later optimizer steps leave its bias unchanged."""
    return state._replace(frozen=True)


def _check_rule(rule: object) -> None:
    from lfbtheory.online.resolve import Resolve

    if isinstance(rule, Resolve):
        return
    if not isinstance(rule, Rule):
        raise TypeError(
            f"rule must be an lfbtheory.updates.Rule (e.g. updates.sign(1e-3)), got "
            f"{type(rule).__name__}"
        )


def state_dict(
    rule: Rule, state: RouterState, micro_batches: int | None = None
) -> dict[str, NDArray[Any]]:
    """Arrays that checkpoint ``state`` exactly (float64 bias, int64 counts), with the format
    version, the rule's name and bias mode, and the loop's ``micro_batches`` (None, stored as
    0: the caller's training loop decides when to step, as with ``TokenChoice``)."""
    from lfbtheory.online.resolve import Resolve

    if isinstance(rule, Resolve):
        raise TypeError(
            f"rule {rule.name!r} keeps past batches in its state; it has no checkpoint format"
        )
    rule.check_state(state.rule)
    d: dict[str, NDArray[Any]] = {
        "format_version": np.array(FORMAT_VERSION),
        "rule": np.array(rule.name),
        "bias_mode": np.array(rule.bias_mode),
        "micro_batches": np.array(0 if micro_batches is None else int(micro_batches)),
        "bias": np.array(state.rule.bias, dtype=np.float64),
        "count": np.array(state.rule.count, dtype=np.int64),
        "pending": np.array(state.pending, dtype=np.int64),
        "n_pending": np.array(state.n_pending, dtype=np.int64),
        "frozen": np.array(bool(state.frozen)),
    }
    for name in rule.state_type._fields[2:]:
        d[f"buffer_{name}"] = np.array(getattr(state.rule, name), dtype=np.float64)
    return d


def _field(d: Mapping[str, Any], key: str) -> NDArray[Any]:
    if key not in d:
        raise CheckpointError(f"checkpoint has no field {key!r} (fields: {sorted(d)})")
    return np.asarray(d[key])


def _scalar_int(d: Mapping[str, Any], key: str, lo: int) -> int:
    v = _field(d, key)
    if v.shape != () or not np.issubdtype(v.dtype, np.integer) or int(v) < lo:
        raise CheckpointError(f"checkpoint field {key!r} must be an integer >= {lo}, got {v!r}")
    return int(v)


def load_state_dict(
    rule: Rule,
    d: Mapping[str, ArrayLike],
    *,
    n_experts: int | None = None,
    micro_batches: int | None = None,
) -> RouterState:
    """The state saved by :func:`state_dict`, checked field by field against ``rule`` (name,
    bias mode, buffers), ``n_experts`` and ``micro_batches`` when given.

    A checkpoint saved with pending micro-batches can resume only under the same
    ``micro_batches`` (a different grouping would change which tokens share an update);
    one saved between optimizer steps (no pending counts) resumes under any.
    """
    _check_rule(rule)
    version = _scalar_int(d, "format_version", 1)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format version {version} is not supported (this lfbtheory reads "
            f"version {FORMAT_VERSION})"
        )
    for key, want in (("rule", rule.name), ("bias_mode", rule.bias_mode)):
        got = str(_field(d, key))
        if got != want:
            raise CheckpointError(f"checkpoint was saved by {key} {got!r}, loading into {want!r}")
    bias = _field(d, "bias")
    if bias.ndim != 1 or bias.size < 1 or not np.issubdtype(bias.dtype, np.floating):
        raise CheckpointError(f"checkpoint bias must be a 1-D float array, got {bias!r}")
    e = bias.shape[0]
    if n_experts is not None and e != n_experts:
        raise CheckpointError(f"checkpoint has E={e} experts, expected E={n_experts}")
    if not np.all(np.isfinite(bias)):
        raise CheckpointError("checkpoint bias is not finite")
    pending = _field(d, "pending")
    if pending.shape != (e,) or not np.issubdtype(pending.dtype, np.integer) or (pending.min() < 0):
        raise CheckpointError(f"checkpoint pending counts must be (E,)=({e},) integers >= 0")
    n_pending = _scalar_int(d, "n_pending", 0)
    saved_mb = _scalar_int(d, "micro_batches", 0)
    if saved_mb and n_pending >= saved_mb:
        raise CheckpointError(f"checkpoint has n_pending={n_pending} >= micro_batches={saved_mb}")
    if n_pending == 0 and pending.any():
        raise CheckpointError("checkpoint has pending counts but n_pending=0")
    if micro_batches is not None and n_pending and micro_batches != saved_mb and saved_mb:
        raise CheckpointError(
            f"checkpoint was saved mid-step ({n_pending} of {saved_mb} micro-batches pending); "
            f"resume it with micro_batches={saved_mb}, not {micro_batches}"
        )
    buffers = []
    for name in rule.state_type._fields[2:]:
        buf = _field(d, f"buffer_{name}")
        if buf.shape != (e,) or not np.all(np.isfinite(buf)):
            raise CheckpointError(f"checkpoint buffer {name!r} must be finite with shape ({e},)")
        buffers.append(np.array(buf, dtype=np.float64))
    rs = rule.state_type(np.array(bias, dtype=np.float64), _scalar_int(d, "count", 0), *buffers)
    try:
        rule.check_state(rs)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint state is invalid for rule {rule.name!r}: {exc}"
        ) from None
    frozen = _field(d, "frozen")
    if frozen.shape != () or frozen.dtype != bool:
        raise CheckpointError(f"checkpoint field 'frozen' must be a bool, got {frozen!r}")
    return RouterState(rs, np.array(pending, dtype=np.int64), n_pending, bool(frozen))


CHECKPOINT_MAX_BYTES = 2**28  # 256 MiB: a checkpoint holds a few (E,) arrays


def save_state(
    path: str | Path, rule: Rule, state: RouterState, micro_batches: int | None = None
) -> None:
    """Write :func:`state_dict` to an .npz file (bit-exact round trip), atomically: an
    interrupted save or a full disk leaves the previous checkpoint intact
    (:func:`lfbtheory.fileio.write_npz`). ".npz" is appended to a path without it."""
    p = Path(path)
    if p.suffix != ".npz":
        p = p.with_name(p.name + ".npz")
    fileio.write_npz(p, state_dict(rule, state, micro_batches))


def load_state(
    path: str | Path,
    rule: Rule,
    *,
    n_experts: int | None = None,
    micro_batches: int | None = None,
) -> RouterState:
    """Read a checkpoint written by :func:`save_state`; any unreadable or mismatched file
    raises :class:`CheckpointError` naming the problem. The file is read with
    :func:`lfbtheory.fileio.read_npz` (no pickles; every member's shape and dtype checked
    against the file and a 256 MiB limit before it is read)."""
    p = Path(path)
    try:
        d = fileio.read_npz(p, what="checkpoint", max_bytes=CHECKPOINT_MAX_BYTES)
    except fileio.FileFormatError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        return load_state_dict(rule, d, n_experts=n_experts, micro_batches=micro_batches)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {p}: {exc}") from None
