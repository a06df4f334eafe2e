"""Files from other people: every reader of the toolkit refuses every hostile file with a
clear error naming the file, and allocates at most LIMIT_BYTES while doing so.

Readers: router-score traces (``lfbtheory.traces.read_trace``, and ``fileio.read_npz`` on the
same files), load logs (``read_load_log``: npz, csv, jsonl), checkpoints (``load_state``),
the sweep's caches (a stored point, a stored stream: refused means "not used, recomputed,
with the reason naming the file") and sweep files (``load_sweep``). Each hostile file is a
valid file of its reader with one thing broken, and every reader must accept the unbroken
file (so a reader that refuses everything cannot pass).

Outcome of a case: a ValueError or TypeError (``fileio.FileFormatError``,
``CheckpointError``) whose message names the file; never MemoryError, never an exception of
another type from a dependency; tracemalloc's peak below LIMIT_BYTES.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tracemalloc
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lfbtheory.analysis.diagnose import read_load_log
from lfbtheory.experiments import sweep
from lfbtheory.online import load_state
from lfbtheory.online.state import init_state
from lfbtheory.online.updates import sign
from lfbtheory.traces import Trace, read_trace, write_trace

LIMIT_BYTES = 64 * 2**20

# ------------------------------------------------------------------------------- building


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=True)
    return buf.getvalue()


def _npy_header(descr: str, shape: tuple, data: bytes, version=(1, 0)) -> bytes:
    """A .npy member that declares ``descr`` and ``shape`` over ``data``."""
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin1")
    fmt = "<H" if version == (1, 0) else "<I"
    pre = 6 + 2 + struct.calcsize(fmt)
    text += b" " * (63 - (pre + len(text)) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(text)) + text + data


def _zip(members: dict[str, bytes], method=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    return buf.getvalue()


def _members(arrays: dict) -> dict[str, bytes]:
    return {f"{k}.npy": _npy(v) for k, v in arrays.items()}


def _base_trace() -> dict:
    rng = np.random.default_rng(0)
    t = Trace(
        values=rng.normal(size=(2, 8, 4)).astype(np.float32),
        kind="scores",
        gate="softmax",
        k=2,
        layer_names=("layers.0", "layers.1"),
    )
    buf = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-base-{os.getpid()}.npz"
    write_trace(t, buf)
    with np.load(buf) as f:
        out = {k: f[k] for k in f.files}
    buf.unlink()
    return out


def _base_log() -> dict:
    rng = np.random.default_rng(1)
    loads = rng.integers(1, 50, size=(20, 2, 4)).astype(np.float64)
    return {
        "loads": loads,
        "bias": rng.normal(size=loads.shape) * 1e-3,
        "step": np.arange(20),
        "layer_names": np.array(["a", "b"]),
    }


RULE = sign(1e-3)


def _base_checkpoint() -> dict:
    from lfbtheory.online.state import state_dict

    return state_dict(RULE, init_state(RULE, 4), None)


STREAM_KEY = "0123456789abcdef"


def _base_stream() -> dict:
    arrays = {
        "calibration": np.array([1.0, 2.0, 0.5, 3.0]),
        "workload": np.array(json.dumps({"name": "stationary"})),
        "seconds": np.array(json.dumps({"calibration": 0.1})),
        "batch_optimum": np.linspace(1, 2, 30),
        "t": np.arange(1, 9),
        "pooled_optimum": np.linspace(1, 2, 8),
        "hindsight_bias": np.zeros(4),
        "capacity": np.array(16),
    }
    return {**arrays, "key": np.array(STREAM_KEY), "sha256": np.array(sweep._arrays_digest(arrays))}


# ------------------------------------------------------------------------------- readers


def _read_stream(path):
    arrays, why = sweep._read_stream(path, STREAM_KEY)
    if arrays is None:
        raise ValueError(why or f"{path}: absent")
    return arrays


def _point():
    spec = sweep.parse_sweep(
        {
            "sweep": {"horizon": 20, "num_checkpoints": 4, "calibration_batches": 2},
            "grid": {"n": [8], "n_experts": [4], "k": [2], "step_sizes": [1e-2]},
        }
    )
    return sweep.expand(spec)[0]


POINT = _point()


def _base_point() -> dict:
    rows = [{"rule": "sign", "dual_regret": 1.5, "u0": None}]
    return {
        "key": POINT.key,
        "params": POINT.params,
        "config": json.loads(sweep._canonical(POINT.config.to_json())),
        "version": sweep._version(),
        "rows": rows,
        "rows_sha256": __import__("hashlib").sha256(sweep._canonical(rows)).hexdigest(),
    }


def _read_point(path):
    rec, why = sweep._read_point(path, POINT)
    if rec is None:
        raise ValueError(why or f"{path}: absent")
    return rec


NPZ_READERS = {
    "trace": (read_trace, _base_trace, "values", "format_version"),
    "load log npz": (read_load_log, _base_log, "loads", "loads"),
    "checkpoint": (lambda p: load_state(p, RULE), _base_checkpoint, "bias", "format_version"),
    "sweep stream": (_read_stream, _base_stream, "batch_optimum", "sha256"),
}

# ------------------------------------------------------------------------------- npz cases

GIB, TIB, PIB = 2**30, 2**40, 2**50


def _forge(member: str, descr: str, shape: tuple):
    def make(base: dict) -> bytes:
        m = _members(base)
        data = np.ascontiguousarray(base[member]).tobytes()
        m[f"{member}.npy"] = _npy_header(descr, shape, data)
        return _zip(m)

    return make


def _replace(member: str, value, method=zipfile.ZIP_STORED):
    def make(base: dict) -> bytes:
        return _zip(_members({**base, member: value}), method)

    return make


def _drop(member: str):
    def make(base: dict) -> bytes:
        return _zip(_members({k: v for k, v in base.items() if k != member}))

    return make


def _truncate(frac: float, method=zipfile.ZIP_STORED):
    def make(base: dict) -> bytes:
        raw = _zip(_members(base), method)
        return raw[: max(1, int(len(raw) * frac))]

    return make


def _flip_data(base: dict) -> bytes:
    """One data byte changed: the CRC no longer matches."""
    raw = bytearray(_zip(_members(base)))
    at = raw.rindex(b"\n", 0, raw.index(b"PK\x01\x02")) + 1  # inside the last member's data
    raw[at] ^= 0xFF
    return bytes(raw)


def _short_deflate(base: dict) -> bytes:
    """A compressed member whose recorded compressed size is 8 bytes short: the deflate stream
    ends early (zipfile raises EOFError)."""
    raw = bytearray(_zip(_members(base), zipfile.ZIP_DEFLATED))
    for sig, off in ((b"PK\x03\x04", 18), (b"PK\x01\x02", 20)):
        start = 0
        while (at := raw.find(sig, start)) >= 0:
            size = struct.unpack_from("<I", raw, at + off)[0]
            struct.pack_into("<I", raw, at + off, max(size - 8, 1))
            start = at + 4
    return bytes(raw)


def _claimed_size(base: dict) -> bytes:
    """Every member's zip header claims 2 GiB uncompressed (far beyond what its compressed
    bytes can expand to)."""
    raw = bytearray(_zip(_members(base), zipfile.ZIP_DEFLATED))
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := raw.find(sig, start)) >= 0:
            struct.pack_into("<I", raw, at + off, 2**31)
            start = at + 4
    return bytes(raw)


def _duplicate(member: str):
    def make(base: dict) -> bytes:
        m = _members(base)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in m.items():
                z.writestr(name, data)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                z.writestr(f"{member}.npy", _npy(np.zeros(3)))
        return buf.getvalue()

    return make


def _extra_member(base: dict) -> bytes:
    return _zip({**_members(base), "evil.sh": b"#!/bin/sh\nrm -rf ~\n"})


def _bzip2(base: dict) -> bytes:
    return _zip(_members(base), zipfile.ZIP_BZIP2)


def _encrypted(base: dict) -> bytes:
    raw = bytearray(_zip(_members(base)))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (at := raw.find(sig, start)) >= 0:
            raw[at + off] |= 0x1
            start = at + 4
    return bytes(raw)


def _long_header(member: str):
    def make(base: dict) -> bytes:
        m = _members(base)
        text = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), " + b" " * 70000 + b"}\n"
        m[f"{member}.npy"] = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text
        return _zip(m)

    return make


def _bad_header(member: str, text: bytes):
    def make(base: dict) -> bytes:
        m = _members(base)
        m[f"{member}.npy"] = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
        return _zip(m)

    return make


MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-pickle-ran-{os.getpid()}"


class _Payload:
    def __reduce__(self):
        return (open, (str(MARKER), "w"))


def _pickle_file(base: dict) -> bytes:
    return pickle.dumps(_Payload())


def _object_member(member: str):
    def make(base: dict) -> bytes:
        m = _members(base)
        m[f"{member}.npy"] = _npy(np.array([_Payload(), 1], dtype=object))
        return _zip(m)

    return make


def _edited(member: str):
    def make(base: dict) -> bytes:
        changed = np.array(base[member], copy=True)
        changed[0] -= 1.0  # a "better" optimum, under the digest of the original
        return _zip(_members({**base, member: changed}))

    return make


def npz_cases(member: str, required: str | None):
    c = {
        "declared shape": {
            "1 GiB (within max_bytes)": _forge(member, "<f8", (2**27,)),
            "6 GiB": _forge(member, "<f4", (2, 2**28, 3)),
            "233 TiB": _forge(member, "<f4", (64, 10**9, 1000)),
            "14 PiB (2000, 999999999998)": _forge(member, "<f8", (2000, 999999999998)),
            "one element too many": _forge(member, "<f8", (10**6,)),
            "negative dimension": _forge(member, "<f8", (-1, 4)),
            "40 dimensions": _forge(member, "<f8", (1,) * 40),
        },
        "OverflowError": {
            "shape (2**64, 2)": _forge(member, "<f8", (2**64, 2)),
            "itemsize 2**40": _forge(member, f"<U{2**38}", (4,)),
        },
        "truncated": {f"{int(f * 100)}%": _truncate(f) for f in (0.1, 0.5, 0.9, 0.999)}
        | {"compressed 50%": _truncate(0.5, zipfile.ZIP_DEFLATED)},
        "bad zip": {
            "random bytes": lambda b: np.random.default_rng(2).bytes(4096),
            "empty file": lambda b: b"",
            "one data byte flipped (CRC)": _flip_data,
            "zip header claims 2 GiB": _claimed_size,
            "duplicate member": _duplicate(member),
            "non-.npy member": _extra_member,
            "bzip2 member": _bzip2,
            "encrypted flag": _encrypted,
            "a .npy, not an .npz": lambda b: _npy(b[member]),
        },
        "EOFError": {"deflate stream ends early": _short_deflate},
        "bad .npy header": {
            "70 kB header": _long_header(member),
            "not a dict": _bad_header(member, b"[1, 2, 3]\n"),
            "code in header": _bad_header(member, b"__import__('os').system('id')\n"),
            "missing shape": _bad_header(member, b"{'descr': '<f8', 'fortran_order': False}\n"),
            "bad descr": _bad_header(
                member, b"{'descr': 'nope', 'fortran_order': False, 'shape': (1,)}\n"
            ),
        },
        "object arrays / pickles": {
            "object member": _object_member(member),
            "pickle file": _pickle_file,
        },
        "wrong dtype": {
            "strings": _replace(member, np.array(["a", "b", "c", "d"])),
            "complex": _replace(member, np.ones(4, complex)),
            "structured": _replace(member, np.zeros(4, [("a", "<f8"), ("b", "<i4")])),
            "datetime": _replace(member, np.zeros(4, "M8[s]")),
        },
    }
    if required is not None:
        c["missing key"] = {f"no {required}": _drop(required)}
    if member == "batch_optimum":  # the sweep's stream cache: its digest must be checked
        c["edited content"] = {"a changed number, digest kept": _edited(member)}
    return c


def _fs_cases():
    def directory(p: Path):
        p.mkdir()

    def dangling(p: Path):
        os.symlink(p.parent / "nowhere", p)

    def loop(p: Path):
        os.symlink(p, p)

    def fifo(p: Path):
        os.mkfifo(p)

    def dev_zero(p: Path):
        os.symlink("/dev/zero", p)

    def missing(p: Path):
        pass

    return {
        "folder": directory,
        "dangling symlink": dangling,
        "symlink loop": loop,
        "FIFO": fifo,
        "symlink to /dev/zero": dev_zero,
        "missing": missing,
    }


def _params():
    out = []
    for reader, (_, _, member, required) in NPZ_READERS.items():
        for cls, cases in npz_cases(member, required).items():
            for name, make in cases.items():
                out.append(pytest.param(reader, cls, name, make, id=f"{reader}-{cls}-{name}"))
        for name, make in _fs_cases().items():
            out.append(pytest.param(reader, "fs", name, make, id=f"{reader}-fs-{name}"))
    return out


def _refused(read, path: Path):
    """Run ``read(path)``; return the exception, checking the outcome rules."""
    tracemalloc.start()
    try:
        try:
            read(path)
        except (ValueError, TypeError) as exc:
            err = exc
        else:
            pytest.fail(f"{path.name} was accepted")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path.name in str(err), f"the error does not name the file: {err!r}"
    assert peak < LIMIT_BYTES, f"allocated {peak} bytes while refusing"
    return err


SEEN: Counter = Counter()


@pytest.mark.parametrize(("reader", "cls", "name", "make"), _params())
def test_every_npz_reader_refuses_every_hostile_file(tmp_path, reader, cls, name, make):
    read, base, _, _ = NPZ_READERS[reader]
    path = tmp_path / "hostile.npz"
    if cls == "fs":
        make(path)
    else:
        path.write_bytes(make(base()))
    SEEN[cls] += 1
    _refused(read, path)
    assert not MARKER.exists(), "a pickle in the file was run"


@pytest.mark.parametrize("reader", sorted(NPZ_READERS))
def test_every_npz_reader_accepts_the_unbroken_file(tmp_path, reader):
    read, base, _, _ = NPZ_READERS[reader]
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = tmp_path / f"ok-{method}.npz"
        path.write_bytes(_zip(_members(base()), method))
        read(path)


# ------------------------------------------------------------------------------- text formats

DEEP = "[" * 100_000 + "]" * 100_000


def _jsonl(line: str) -> str:
    good = json.dumps({"step": 0, "layer": "a", "loads": [3, 4]})
    return good + "\n" + line + "\n"


JSONL_CASES = {
    "deep nesting (RecursionError)": _jsonl('{"step": 1, "loads": ' + DEEP + "}"),
    "NaN literal": _jsonl('{"step": 1, "layer": "a", "loads": [NaN, 4]}'),
    "Infinity literal": _jsonl('{"step": 1, "layer": "a", "loads": [Infinity, 4]}'),
    "1e999 (OverflowError)": _jsonl('{"step": 1, "layer": "a", "loads": [1e999, 4]}'),
    "5000-digit integer": _jsonl('{"step": ' + "9" * 5000 + ', "layer": "a", "loads": [1, 4]}'),
    "not an object": _jsonl("[1, 2]"),
    "missing loads": _jsonl('{"step": 1}'),
    "truncated line": _jsonl('{"step": 1, "loads": [1,'),
    "duplicate key": _jsonl('{"step": 1, "step": 2, "layer": "a", "loads": [1, 4]}'),
    "ragged loads": _jsonl('{"step": 1, "layer": "a", "loads": [1, 4]}')
    + json.dumps({"step": 2, "layer": "a", "loads": [1] * 3}),
}

CSV_HEAD = "step,layer,expert,load\n"
CSV_CASES = {
    "expert 10^12 (allocation bomb)": CSV_HEAD + "0,a,0,3\n0,a,1000000000000,4\n",
    "duplicate row": CSV_HEAD + "0,a,0,3\n0,a,1,4\n0,a,1,5\n",
    "missing row": CSV_HEAD + "0,a,0,3\n0,a,1,4\n1,a,0,5\n",
    "nan load": CSV_HEAD + "0,a,0,nan\n0,a,1,4\n",
    "negative expert": CSV_HEAD + "0,a,-1,3\n0,a,0,4\n",
    "short row": CSV_HEAD + "0,a,0\n",
    "no header": "0,a,0,3\n",
    "NUL bytes": CSV_HEAD + "0,a,0,3\x00\n",
    "field of 200 kB": CSV_HEAD + "0," + "a" * 200_000 + ",0,3\n",
}


def _point_case(mutate):
    def make() -> str:
        rec = _base_point()
        out = mutate(rec)
        return out if isinstance(out, str) else json.dumps(rec)

    return make


POINT_CASES = {
    "deep nesting (RecursionError)": lambda: '{"key": ' + DEEP + "}",
    "NaN literal": lambda: json.dumps(_base_point()).replace(
        '"dual_regret": 1.5', '"dual_regret": NaN'
    ),
    "truncated": lambda: json.dumps(_base_point())[:-20],
    "not UTF-8": lambda: b"\xff\xfe{}".decode("latin1"),
    "an edited number (digest)": _point_case(lambda r: r["rows"][0].update(dual_regret=0.5)),
    "another point's key": _point_case(lambda r: r.update(key="f" * 16)),
    "another version": _point_case(lambda r: r.update(version="0.0.1")),
    "another config": _point_case(lambda r: r["config"].update(steps=30)),
    "rows without rule": _point_case(lambda r: r.update(rows=[{"dual_regret": 1.0}])),
    "a list, not an object": lambda: "[1, 2, 3]",
    "65 MiB file": lambda: " " * (65 * 2**20) + "{}",
}


def _toml(text: str) -> str:
    return "[sweep]\nhorizon = 20\n[grid]\nn = [8]\nn_experts = [4]\n" + text


TOML_CASES = {
    "deep nesting (RecursionError)": _toml("rules = " + "[" * 5000 + "]" * 5000 + "\n"),
    "nan literal": _toml("step_sizes = [nan]\n"),
    "inf literal": _toml("step_sizes = [inf]\n"),
    "horizon 10^30 (OverflowError)": "[sweep]\nhorizon = 1" + "0" * 30 + "\n[grid]\n",
    "horizon 1e12 (a float)": "[sweep]\nhorizon = 1e12\n[grid]\n",
    "horizon 10^12 (hangs if run)": "[sweep]\nhorizon = 1000000000000\n[grid]\n",
    "solver of the wrong type": _toml("").replace("[grid]", "solver = 3\n[grid]"),
    "burn_in of the wrong type": _toml("").replace("[grid]", 'burn_in = "10"\n[grid]'),
    "name escaping the folder": _toml("").replace("[grid]", 'name = "../../x"\n[grid]'),
    "10^6 points": "[sweep]\nhorizon = 20\nseeds = [" + ", ".join(map(str, range(1001))) + "]\n"
    "[grid]\nn = [8]\nn_experts = [4]\nstep_sizes = ["
    + ", ".join(str(1e-3 * (i + 1)) for i in range(1000))
    + "]\n",
    "not UTF-8": '[sweep]\nname = "caf\xe9"\n[grid]\n',
    "2 MiB file": "#" * (2 * 2**20) + "\n[grid]\n",
    "invalid TOML": "[grid\n",
}


def _text_params():
    out = []
    for name, text in JSONL_CASES.items():
        out.append(pytest.param("load log jsonl", name, text, id=f"jsonl-{name}"))
    for name, text in CSV_CASES.items():
        out.append(pytest.param("load log csv", name, text, id=f"csv-{name}"))
    for name, make in POINT_CASES.items():
        out.append(pytest.param("sweep point", name, make, id=f"point-{name}"))
    for name, text in TOML_CASES.items():
        out.append(pytest.param("sweep file", name, text, id=f"toml-{name}"))
    return out


TEXT_READERS = {
    "load log jsonl": (read_load_log, "log.jsonl"),
    "load log csv": (read_load_log, "log.csv"),
    "sweep point": (_read_point, "point.json"),
    "sweep file": (sweep.load_sweep, "sweep.toml"),
}


@pytest.mark.parametrize(("reader", "name", "content"), _text_params())
def test_every_text_reader_refuses_every_hostile_file(tmp_path, reader, name, content):
    read, filename = TEXT_READERS[reader]
    path = tmp_path / filename
    text = content() if callable(content) else content
    if name == "not UTF-8":
        path.write_bytes(text.encode("latin1"))
    else:
        path.write_text(text)
    _refused(read, path)


@pytest.mark.parametrize("reader", sorted(TEXT_READERS))
def test_every_text_reader_accepts_the_unbroken_file(tmp_path, reader):
    read, filename = TEXT_READERS[reader]
    good = {
        "load log jsonl": _jsonl(json.dumps({"step": 1, "layer": "a", "loads": [5, 2]})),
        "load log csv": CSV_HEAD + "0,a,0,3\n0,a,1,4\n1,a,0,5\n1,a,1,2\n",
        "sweep point": json.dumps(_base_point()),
        "sweep file": _toml(""),
    }[reader]
    (tmp_path / filename).write_text(good)
    read(tmp_path / filename)


@pytest.mark.parametrize("reader", sorted(TEXT_READERS))
@pytest.mark.parametrize("case", sorted(_fs_cases()))
def test_every_text_reader_refuses_what_is_not_a_regular_file(tmp_path, reader, case):
    read, filename = TEXT_READERS[reader]
    path = tmp_path / filename
    _fs_cases()[case](path)
    _refused(read, path)
