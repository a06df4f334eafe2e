"""lfbtheory.fileio: what is read was checked before it was allocated, what is written is
either the old file or the new one, never a part, and never a NaN literal."""

import errno
import json
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lfbtheory import fileio
from lfbtheory.fileio import FileFormatError, NpzField

DTYPES = st.sampled_from(["?", "i1", "<i8", ">i4", "u2", "<f4", ">f8", "c16", "U3", "S2"])


@settings(max_examples=40, deadline=None)
@given(
    arrays=st.lists(
        DTYPES.flatmap(lambda d: hnp.arrays(np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=3))),
        min_size=1,
        max_size=3,
    ),
    fortran=st.booleans(),
    compress=st.booleans(),
)
def test_read_npz_returns_exactly_what_write_npz_wrote(tmp_path_factory, arrays, fortran, compress):
    path = tmp_path_factory.mktemp("rt") / "a.npz"
    data = {f"a{i}": np.asfortranarray(a) if fortran else a for i, a in enumerate(arrays)}
    fileio.write_npz(path, data, compress=compress)
    back = fileio.read_npz(path)
    assert back.keys() == data.keys()
    for key, a in data.items():
        assert back[key].dtype == a.dtype and back[key].shape == a.shape
        assert back[key].tobytes() == a.tobytes()  # bit-identical, NaN payloads included
    assert {k: v.shape for k, v in fileio.inspect_npz(path).items()} == {
        k: v.shape for k, v in data.items()
    }


def _forged(path, shape, dtype="<f8", data=b"\0" * 32, compress=False):
    """An .npz whose one member declares ``shape`` over only ``data``."""
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("values.npy", npy)
    return path


@pytest.mark.parametrize(
    "shape", [(5,), (3,), (10**9,), (2000, 999999999998), (2**62, 2**62), (-1,), (1,) * 40]
)
def test_a_declared_shape_the_file_cannot_hold_is_refused_before_allocation(tmp_path, shape):
    import tracemalloc

    path = _forged(tmp_path / "f.npz", shape)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match="values") as err:
            fileio.read_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and err.value.field == "values"
    assert peak < 2**20


def test_a_compressed_member_is_bounded_by_max_bytes_and_by_the_deflate_ratio(tmp_path):
    zeros = tmp_path / "zeros.npz"
    fileio.write_npz(zeros, {"x": np.zeros(2**18)}, compress=True)  # 2 MiB from ~2 KiB
    assert fileio.read_npz(zeros)["x"].nbytes == 2**21
    with pytest.raises(FileFormatError, match="max_bytes"):
        fileio.read_npz(zeros, max_bytes=2**20)
    # a zip header that claims more than deflate can produce from the compressed bytes
    lie = tmp_path / "lie.npz"
    fileio.write_npz(lie, {"x": np.zeros(8)}, compress=True)
    body = bytearray(lie.read_bytes())
    with zipfile.ZipFile(lie) as z:
        info = z.getinfo("x.npy")
    claimed = (2**31).to_bytes(4, "little")
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers
        at = body.index(sig)
        body[at + off : at + off + 4] = claimed
    assert info.file_size != 2**31
    lie.write_bytes(bytes(body))
    with pytest.raises(FileFormatError, match="more than deflate can expand"):
        fileio.read_npz(lie)


def test_fields_are_checked_for_presence_kind_and_dimensions(tmp_path):
    path = fileio.write_npz(tmp_path / "a.npz", {"x": np.zeros((2, 3)), "n": np.arange(3)})
    fields = {
        "x": NpzField("f", (2, 3)),
        "n": NpzField("iu", (1,)),
        "z": NpzField("f", None, False),
    }
    assert set(fileio.read_npz(path, fields)) == {"x", "n"}
    with pytest.raises(FileFormatError, match="has no array 'y'") as err:
        fileio.read_npz(path, {"y": NpzField("f")})
    assert err.value.field == "y"
    with pytest.raises(
        FileFormatError, match="x: has dtype float64; expected a dtype of kind 'iu'"
    ):
        fileio.read_npz(path, {"x": NpzField("iu")})
    with pytest.raises(FileFormatError, match=r"n: has shape \(3,\); expected 2 dimension"):
        fileio.read_npz(path, {"n": NpzField("iu", (2,))})
    assert set(fileio.read_npz(path, {"n": NpzField("i")})) == {"n"}  # x is not read


@pytest.mark.parametrize(
    "array",
    [
        np.zeros(3, "M8[s]"),
        np.zeros(3, "m8[s]"),
        np.zeros(3, [("a", "<f8"), ("b", "<i4")]),
        np.zeros(3, "V8"),
    ],
)
def test_only_plain_dtypes_are_read_even_without_fields(tmp_path, array):
    np.savez(tmp_path / "a.npz", x=array)
    with pytest.raises(FileFormatError, match="x: (has dtype|declares a structured dtype)"):
        fileio.read_npz(tmp_path / "a.npz")


def test_object_arrays_and_pickles_are_never_loaded(tmp_path):
    marker = tmp_path / "ran"
    payload = np.array([None, {"x": 1}], dtype=object)
    np.savez(tmp_path / "obj.npz", o=payload, allow_pickle=True)
    with pytest.raises(FileFormatError, match="an object array is a pickle; never loaded"):
        fileio.read_npz(tmp_path / "obj.npz")
    import pickle

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "p.npz").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(FileFormatError, match="not a readable .npz"):
        fileio.read_npz(tmp_path / "p.npz")
    assert not marker.exists()
    with pytest.raises(ValueError, match="allow_pickle"):
        fileio.write_npz(tmp_path / "w.npz", {"o": payload})
    assert list(tmp_path.glob(".w.npz.tmp-*")) == []


@pytest.mark.parametrize(
    "text",
    [
        '{"a": NaN}',
        "[Infinity]",
        "[-Infinity]",
        "[1e999]",
        '{"a": 1, "a": 2}',
        "[" * 65 + "]" * 65,
        "[" * 100000,
        "1" * 5000,
        '{"a": 1',
        "",
    ],
)
def test_strict_json_refuses_what_is_not_json(text):
    with pytest.raises(FileFormatError, match="where.json"):
        fileio.loads_json(text, where="where.json")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(JSON)
def test_strict_json_reads_valid_documents_as_json_does(doc):
    text = json.dumps(doc)
    assert fileio.loads_json(text) == json.loads(text) == doc
    assert fileio.loads_json(fileio.dumps_json(doc)) == doc


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    doc = {
        "nan": float("nan"),
        "inf": np.float32("inf"),
        "ok": np.int64(3),
        "a": np.array([1.5, -np.inf]),
    }
    path = fileio.write_json(tmp_path / "s.json", doc)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert fileio.read_json(path) == {"nan": None, "inf": None, "ok": 3, "a": [1.5, None]}


def test_toml_refuses_nan_inf_and_deep_nesting(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("[sweep]\nhorizon = 400\n")
    assert fileio.read_toml(p) == {"sweep": {"horizon": 400}}
    for text, match in (
        ("x = nan\n", "nan is not allowed"),
        ("x = -inf\n", "inf is not allowed"),
        ("x = [" * 5000 + "]" * 5000 + "\n", "nested too deeply|not valid TOML"),
        ("[grid\n", "not valid TOML"),
    ):
        p.write_text(text)
        with pytest.raises(FileFormatError, match=match):
            fileio.read_toml(p, what="sweep file")


def test_text_readers_refuse_what_is_not_a_regular_file(tmp_path):
    (tmp_path / "dir").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")  # opened non-blocking: cannot hang the reader
    (tmp_path / "big").write_bytes(b"x" * 2000)
    (tmp_path / "latin").write_bytes(b"caf\xe9")
    cases = {
        "missing": "does not exist",
        "dir": "is a folder",
        "dangling": "dangling symlink",
        "loop": "symlink loop",
        "fifo": "is a FIFO",
        "big": "more than the 1000 bytes allowed",
        "latin": "not UTF-8",
    }
    for name, match in cases.items():
        with pytest.raises(FileFormatError, match=match):
            fileio.read_text(tmp_path / name, max_bytes=1000)
    with pytest.raises(FileFormatError, match="is a device"):
        fileio.read_npz("/dev/zero")
    os.symlink(tmp_path / "big", tmp_path / "link")  # a link to a regular file is read
    assert fileio.read_text(tmp_path / "link") == "x" * 2000


def _no_space_after(monkeypatch, nbytes):
    """os.write writes ``nbytes`` in all, then fails as a full disk does."""
    real = os.write
    left = [nbytes]

    def write(fd, data):
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, bytes(data)[: left[0]])
        left[0] -= n
        return n

    monkeypatch.setattr(os, "write", write)


WRITERS = {
    "text": lambda p: fileio.write_text(p, "new " * 1000),
    "bytes": lambda p: fileio.write_bytes(p, b"new" * 1000),
    "json": lambda p: fileio.write_json(p, {"new": list(range(1000))}),
    "npz": lambda p: fileio.write_npz(p, {"new": np.arange(1000.0)}),
    "npz compressed": lambda p: fileio.write_npz(p, {"new": np.arange(1000.0)}, compress=True),
}


@pytest.mark.parametrize("nbytes", [0, 100])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_full_disk_leaves_the_old_file_and_no_temporary_file(
    tmp_path, monkeypatch, writer, nbytes
):
    path = tmp_path / "result.out"
    path.write_bytes(b"old contents")
    with monkeypatch.context() as m:
        _no_space_after(m, nbytes)
        with pytest.raises(OSError) as err:
            WRITERS[writer](path)
    assert err.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.out"]


def test_an_exception_inside_atomic_open_leaves_the_old_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_open(path, "w") as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "out.json")
    fileio.write_json(tmp_path / "out.json", {"a": 1})
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.json").is_symlink()
    with pytest.raises(ValueError, match="is a folder"):
        fileio.write_text(tmp_path, "x")


def test_atomic_folder_replaces_the_whole_folder_or_nothing(tmp_path):
    out = tmp_path / "res"
    with fileio.atomic_folder(out) as tmp:
        (tmp / "a.txt").write_text("1")
    with fileio.atomic_folder(out) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    with pytest.raises(KeyboardInterrupt), fileio.atomic_folder(out) as tmp:
        (tmp / "c.txt").write_text("3")
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_folder_lock_excludes_a_second_writer_and_dies_with_its_process(tmp_path):
    out = tmp_path / "res"
    with fileio.folder_lock(out) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(fileio.LockedError, match=f"pid {os.getpid()}"):
            with fileio.folder_lock(out):
                pass
    assert not lock.exists()
    # a holder killed with SIGKILL leaves its file, but not its flock: the lock is free
    code = (
        "import os, signal, sys; from lfbtheory import fileio\n"
        f"with fileio.folder_lock({str(out)!r}):\n"
        "    print('held', flush=True); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout == "held\n" and proc.returncode == -9 and lock.exists()
    with fileio.folder_lock(out):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    # a lock file created exclusively (no flock) by a live process on this host is respected
    import socket

    lock.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(fileio.LockedError, match=f"pid {os.getppid()}"):
        with fileio.folder_lock(out):
            pass
    # ... and one of a dead process is taken over
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with fileio.folder_lock(out):
        pass
    assert not lock.exists()


def test_to_json_keeps_finite_numbers_exactly():
    x = [0.1, -0.0, 5e-324, 1.7976931348623157e308, 2**70]
    assert fileio.loads_json(fileio.dumps_json(x)) == x
    assert math.copysign(1, fileio.loads_json(fileio.dumps_json(-0.0))) == -1
