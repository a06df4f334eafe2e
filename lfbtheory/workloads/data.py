"""The real routing data shipped with the package, and cached loading of data files.

``data_dir()`` is ``lfbtheory/data`` (package data; its README gives each file's provenance
and licence). Loaders are cached with ``functools.lru_cache`` keyed on the file's resolved
path and its (mtime, size) stamp, so a file is read once per process, a rewritten file is read
again, and cached arrays are read-only (they are shared between callers).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from lfbtheory.workloads.base import frozen

__all__ = [
    "DataNotFoundError",
    "FLAME_FILE",
    "HISTOGRAM_FILE",
    "LEARNED_ROUTER_FILE",
    "data_dir",
    "existing_file",
    "file_stamp",
    "npz_keys",
    "load_histogram_row",
    "load_topk_trace",
    "load_array",
    "is_topk_trace",
    "check_path",
    "TopkTrace",
]

FLAME_FILE = "flame_moe_290m_iter5473_prefill_32x64_layers2-9_top6.npz"
HISTOGRAM_FILE = "olmoe_mixtral_expert_load_histograms.npz"
# Full-score snapshots of the testbed's learned router during training (lfbtheory.traces
# format; every score recorded, none completed; provenance in data/README.md). Replay one
# snapshot with TraceWorkload(path, n, layer=i), or the training order with
# lfbtheory.testbed.trace.snapshot_stream (needs no torch).
LEARNED_ROUTER_FILE = "testbed_lfb_sign_long_seed0_layer0_fullscores.npz"

# Cache sizes: how many distinct (file, entry) reads stay in memory. A histogram row is E
# floats; a top-k trace is held once per file (FLAME: 8 x 2048 x 6 scores + ids, 1.2 MB).
# 64 rows and 4 traces cover every option of the shipped files with room to spare.
_HISTOGRAM_CACHE = 64
_TRACE_CACHE = 4


class DataNotFoundError(FileNotFoundError, ValueError):
    """A data file is missing (both a FileNotFoundError and a ValueError, so CLIs that report
    ValueErrors show its message)."""


def data_dir() -> Path:
    """The folder of the real routing data shipped with the package (``lfbtheory/data``).

    Its README gives each file's provenance and licence (both sources are Apache-2.0).
    """
    return Path(__file__).resolve().parent.parent / "data"


def check_path(path: object, name: str = "path") -> str:
    """``path`` (str or os.PathLike) as a string, without touching the file system."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got {path!r}")
    return os.fspath(path)


def existing_file(path: object, name: str = "path") -> Path:
    """``path`` as an existing file, or DataNotFoundError naming the argument."""
    p = Path(check_path(path, name)).expanduser()
    if not p.is_file():
        raise DataNotFoundError(f"{name}={str(path)!r} does not exist or is not a file")
    return p


def file_stamp(path: object, name: str = "path") -> tuple[str, int, int]:
    """(resolved path, mtime_ns, size): the cache key of a file's current contents."""
    p = existing_file(path, name).resolve()
    st = p.stat()
    return (str(p), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=_TRACE_CACHE)
def _npz_keys(stamp: tuple[str, int, int]) -> tuple[str, ...]:
    with np.load(stamp[0]) as data:
        return tuple(data.files)


def npz_keys(path: object, name: str = "path") -> tuple[str, ...]:
    """The array names of an .npz file (cached)."""
    return _npz_keys(file_stamp(path, name))


@functools.lru_cache(maxsize=_HISTOGRAM_CACHE)
def _histogram_row(stamp: tuple[str, int, int], key: str, row: int) -> tuple[float, ...]:
    with np.load(stamp[0]) as data:
        if key not in data.files:
            raise ValueError(f"histogram key {key!r} not in {stamp[0]}")
        return tuple(float(c) for c in data[key][row])


def load_histogram_row(path: object, key: str, row: int) -> tuple[float, ...]:
    """Row ``row`` of the histogram array ``key`` of an .npz file, as a tuple (cached)."""
    return _histogram_row(file_stamp(path), key, row)


class TopkTrace(NamedTuple):
    """A recorded top-k router trace (read-only arrays, cached per file).

    scores (L, N, k) float64 sorted descending per token (float32 -> float64 is exact);
    ids (L, N, k) int64; layers: the recorded layer names (file order); n_experts E;
    gate: how the scores were produced (the file's ``gate`` entry, else "softmax").
    """

    scores: NDArray[np.float64]
    ids: NDArray[np.int64]
    layers: tuple[int, ...]
    n_experts: int
    k: int
    gate: str


def is_topk_trace(keys: tuple[str, ...]) -> bool:
    """Whether an .npz with these array names is a top-k trace (topk_scores and topk_ids)."""
    return "topk_scores" in keys and "topk_ids" in keys


@functools.lru_cache(maxsize=_TRACE_CACHE)
def _topk_trace(stamp: tuple[str, int, int], n_experts: int | None) -> TopkTrace:
    with np.load(stamp[0]) as data:
        files = data.files
        scores = np.asarray(data["topk_scores"], dtype=np.float64)
        ids = np.asarray(data["topk_ids"])
        e_file = int(data["num_experts"]) if "num_experts" in files else None
        names = (
            tuple(int(v) for v in data["layers"])
            if "layers" in files
            else tuple(range(scores.shape[0]))
        )
        gate = str(data["gate"]) if "gate" in files else "softmax"
    name = Path(stamp[0]).name
    if scores.ndim != 3 or ids.shape != scores.shape or min(scores.shape) < 1:
        raise ValueError(
            f"topk_scores/topk_ids of {name} must both be (L, N, k), got "
            f"{scores.shape}, {ids.shape}"
        )
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"topk_ids of {name} must hold integers, got dtype {ids.dtype}")
    if len(names) != scores.shape[0]:
        raise ValueError(
            f"layers of {name} names {len(names)} layers, the arrays hold {scores.shape[0]}"
        )
    if e_file is None and n_experts is None:
        raise ValueError(f"n_experts is required: {name} has no num_experts entry")
    if e_file is not None and n_experts is not None and n_experts != e_file:
        raise ValueError(
            f"n_experts={n_experts} does not match the trace's E={e_file} "
            f"({name}); replay uses the recorded E"
        )
    e = e_file if e_file is not None else int(n_experts or 0)
    k = scores.shape[2]
    if k >= e or ids.min() < 0 or ids.max() >= e:
        raise ValueError(f"topk_ids of {name} must lie in [0, {e}) with k < E={e}")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"topk_scores of {name} must be finite")
    return TopkTrace(frozen(scores), frozen(ids.astype(np.int64)), names, e, k, gate)


def load_topk_trace(path: object, n_experts: int | None = None) -> TopkTrace:
    """The top-k trace in ``path`` (cached). ``n_experts`` is needed only when the file has
    no ``num_experts`` entry; if both are given they must agree."""
    return _topk_trace(file_stamp(path), n_experts)


@functools.lru_cache(maxsize=_TRACE_CACHE)
def _npz_array(stamp: tuple[str, int, int], key: str) -> NDArray[Any]:
    with np.load(stamp[0]) as data:
        return frozen(np.asarray(data[key]))


def load_array(path: object, key: str | None = None) -> NDArray[Any]:
    """The score array of a user file: a .npy is memory-mapped (rows are read when used; not
    cached), an .npz entry ``key`` is read whole (cached, read-only)."""
    stamp = file_stamp(path)
    if stamp[0].endswith(".npy"):
        return np.load(stamp[0], mmap_mode="r")
    if key is None:
        raise ValueError("key must name the score array of an .npz file")
    return _npz_array(stamp, key)
