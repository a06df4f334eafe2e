"""Files from other people, read safely; files for people, written so that nothing is lost.

Every file format the toolkit reads from somebody else (router-score traces, load logs,
checkpoints, sweep files and sweep caches) goes through the readers here, and every file a user
opens goes through the writers here.

Reading. A reader is given a path and a name for it (``what``, e.g. "checkpoint"), and every
refusal is a :class:`FileFormatError` (a ``ValueError``) whose message names the file and the
field, raised before anything large is allocated:

- the path must name a regular file once symlinks are followed (a symlink to a regular file is
  fine): folders, FIFOs, devices, sockets, dangling and looping links are refused before a
  byte is read (a FIFO is opened non-blocking, so it cannot hang the reader);
- :func:`read_npz`: the zip directory and the ``.npy`` header of every member are read first,
  and no array data is read until every declared shape and dtype passed: plain dtypes only
  (bool, integers, floats, complex, bytes, str; never object arrays, which are pickles, never
  structured or sub-array dtypes), at most :data:`MAX_NDIM` dimensions, and a declared size
  ``prod(shape) * itemsize`` that equals the bytes the member holds (its zip header; a
  compressed member can hold at most 1032 times its compressed size, the deflate limit), that
  fits the file on disk, and whose sum over the members read stays within ``max_bytes``
  (default :data:`MAX_NPZ_BYTES`). Allocation is then exactly the declared size;
- :func:`read_json` / :func:`loads_json`: at most ``max_bytes`` and ``max_depth`` levels of
  nesting (checked on the raw text before parsing, so a hostile document cannot exhaust the
  stack); strict: the NaN / Infinity literals, numbers that overflow a float, integers longer
  than Python converts and repeated object keys are refused;
- :func:`read_toml`: at most ``max_bytes``; nan and inf literals refused;
- :func:`read_text`: at most ``max_bytes`` of UTF-8.

Writing. :func:`atomic_open` (and :func:`write_text`, :func:`write_bytes`,
:func:`write_json`, :func:`write_npz` on top of it) writes into a temporary file
``.<name>.tmp-<pid>-<random>`` in the target's own folder, flushes and fsyncs it, and renames
it onto the target with ``os.replace``, then fsyncs the folder: a reader sees the old file or
the new one, never a part of one, and a full disk, an exception or a signal leaves the old file
as it was and no temporary file behind. A symlink at the target is replaced by the new file,
never written through. Every byte goes through ``os.write`` (one place where a test can
inject a full disk). :func:`atomic_folder` does the same for a whole results folder, and
:func:`folder_lock` keeps a second writer out of it.

JSON has no NaN or Infinity. :func:`write_json` writes every non-finite float (NaN, +-inf) as
``null``, which in the toolkit's JSON files always means "no finite value" (e.g. a step size
that is undefined, or a growth coefficient that could not be fitted); a reader that needs a
number reads null as NaN.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import ctypes.util
import errno
import io
import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import struct
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "FileFormatError",
    "LockedError",
    "MAX_NPZ_BYTES",
    "MAX_NPZ_MEMBERS",
    "MAX_NDIM",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_TEXT_BYTES",
    "MAX_TOML_BYTES",
    "NpzField",
    "ArrayInfo",
    "inspect_npz",
    "read_npz",
    "read_text",
    "read_json",
    "loads_json",
    "read_toml",
    "to_json",
    "dumps_json",
    "atomic_open",
    "write_text",
    "write_bytes",
    "write_json",
    "write_npz",
    "atomic_folder",
    "folder_lock",
]

MAX_NPZ_BYTES = 2**32  # 4 GiB of array data per file read (override with max_bytes=)
MAX_NPZ_MEMBERS = 1024  # arrays per .npz (the toolkit's formats hold ~20)
MAX_NDIM = 32
MAX_HEADER_BYTES = 10_000  # numpy's own limit on a safe .npy header
MAX_JSON_BYTES = 2**26  # 64 MiB
MAX_JSON_DEPTH = 64
MAX_TEXT_BYTES = 2**30  # 1 GiB (CSV / JSONL load logs)
MAX_TOML_BYTES = 2**20  # 1 MiB
_DEFLATE_RATIO = 1032  # deflate's largest expansion: 258 bytes from one 2-bit code, ~1032:1
_DTYPE_KINDS = "biufcSU"
_CHUNK = 1 << 24


class FileFormatError(ValueError):
    """A file that cannot be read as what it should be. ``path`` is the file, ``field`` the
    member or key at fault (None for the file as a whole); the message names both."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        problem: str,
        *,
        what: str = "file",
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.field = field
        where = f"{what} {self.path}" if what else self.path
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class LockedError(ValueError):
    """Another live process holds the lock of a results folder."""


def _size(n: int) -> str:
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


# ------------------------------------------------------------------------------- opening


def _open_regular(path: str | os.PathLike[str], what: str) -> tuple[IO[bytes], int]:
    """A binary file object on ``path`` and its size, if it is a regular file (links
    followed); FileFormatError otherwise. The check is on the opened descriptor (fstat), so
    the file cannot be swapped between the check and the read."""
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        problem = "is a dangling symlink" if os.path.islink(p) else "does not exist"
        raise FileFormatError(p, problem, what=what) from None
    except IsADirectoryError:
        raise FileFormatError(p, "is a folder, not a file", what=what) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileFormatError(p, "is a symlink loop", what=what) from None
        raise FileFormatError(p, f"cannot be opened: {exc.strerror}", what=what) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileFormatError(p, "is a folder, not a file", what=what)
        if not stat.S_ISREG(st.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(st.st_mode)
                else "a socket"
                if stat.S_ISSOCK(st.st_mode)
                else "a device"
            )
            raise FileFormatError(p, f"is {kind}, not a regular file", what=what)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), int(st.st_size)
    except BaseException:
        os.close(fd)
        raise


def _read_limited(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytes:
    f, size = _open_regular(path, what)
    with f:
        if size > max_bytes:
            raise FileFormatError(
                path, f"is {_size(size)}, more than the {_size(max_bytes)} allowed", what=what
            )
        data = f.read(size + 1)  # not max_bytes + 1: read(n) allocates n bytes up front
        if len(data) > size:  # grew while being read
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise FileFormatError(path, f"is more than the {_size(max_bytes)} allowed", what=what)
    return data


def read_text(
    path: str | os.PathLike[str], *, what: str = "file", max_bytes: int = MAX_TEXT_BYTES
) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``."""
    data = _read_limited(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            path, f"is not UTF-8 text (byte {exc.start}: {exc.reason})", what=what
        ) from None


# ------------------------------------------------------------------------------- npz


class NpzField(NamedTuple):
    """What a reader expects of one array: dtype kinds (numpy ``dtype.kind`` letters, e.g.
    "f" or "iu"), allowed numbers of dimensions (None: any), and whether it must be present."""

    kinds: str
    ndim: tuple[int, ...] | None = None
    required: bool = True


class ArrayInfo(NamedTuple):
    """A member's declared shape and dtype (from its header), and its data bytes."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    nbytes: int
    fortran_order: bool


class _Member(NamedTuple):
    info: zipfile.ZipInfo
    header_end: int
    array: ArrayInfo


def _parse_header(raw: IO[bytes], where: Callable[[str], FileFormatError]) -> tuple[ArrayInfo, int]:
    """The ArrayInfo of an .npy stream and the offset of its data, reading only the header."""
    magic = raw.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise where("is not a .npy array (no NUMPY magic)")
    version = (magic[6], magic[7])
    if version == (1, 0):
        fmt, enc = "<H", "latin1"
    elif version in ((2, 0), (3, 0)):
        fmt, enc = "<I", "latin1" if version == (2, 0) else "utf8"
    else:
        raise where(f"has an unknown .npy format version {version}")
    n = struct.calcsize(fmt)
    head = raw.read(n)
    if len(head) < n:
        raise where("is truncated inside its .npy header")
    length = struct.unpack(fmt, head)[0]
    if length > MAX_HEADER_BYTES:
        raise where(f"declares a .npy header of {length} bytes (more than {MAX_HEADER_BYTES})")
    text = raw.read(length)
    if len(text) < length:
        raise where("is truncated inside its .npy header")
    try:
        d = ast.literal_eval(text.decode(enc))
    except (SyntaxError, ValueError, UnicodeDecodeError, MemoryError, RecursionError):
        raise where("has an unreadable .npy header") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise where("has a .npy header without exactly descr, fortran_order, shape")
    shape = d["shape"]
    if (
        not isinstance(shape, tuple)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        or any(s < 0 for s in shape)
    ):
        raise where(f"declares an invalid shape {shape!r}")
    if len(shape) > MAX_NDIM:
        raise where(f"declares {len(shape)} dimensions (at most {MAX_NDIM})")
    if not isinstance(d["fortran_order"], bool):
        raise where("declares a non-boolean fortran_order")
    descr = d["descr"]
    if not isinstance(descr, str):
        raise where(f"declares a structured dtype {descr!r} (only plain dtypes are read)")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise where(f"declares an invalid dtype {descr!r}") from None
    if dtype.hasobject:
        raise where("holds Python objects (an object array is a pickle; never loaded)")
    if dtype.kind not in _DTYPE_KINDS or dtype.names is not None or dtype.subdtype is not None:
        raise where(f"has dtype {dtype} (only bool, integer, float, complex, bytes, str)")
    if dtype.itemsize == 0:
        raise where(f"has a zero-size dtype {dtype}")
    nbytes = math.prod(shape) * dtype.itemsize
    return ArrayInfo(tuple(shape), dtype, nbytes, d["fortran_order"]), 8 + n + length


def _check_kind(info: ArrayInfo, spec: NpzField, where: Callable[[str], FileFormatError]) -> None:
    if info.dtype.kind not in spec.kinds:
        raise where(f"has dtype {info.dtype}; expected a dtype of kind {spec.kinds!r}")
    if spec.ndim is not None and len(info.shape) not in spec.ndim:
        want = " or ".join(str(d) for d in spec.ndim)
        raise where(f"has shape {info.shape}; expected {want} dimension(s)")


@contextlib.contextmanager
def _zip(
    path: str | os.PathLike[str], what: str
) -> Iterator[tuple[zipfile.ZipFile, dict[str, _Member]]]:
    """The open archive and its checked members (headers read, no data)."""
    f, disk = _open_regular(path, what)
    with f:
        try:
            zf = zipfile.ZipFile(f)
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            EOFError,
            ValueError,
            OSError,
            struct.error,
            NotImplementedError,
            OverflowError,
        ):
            raise FileFormatError(
                path,
                "is not a readable .npz file (not a zip archive, or a truncated one)",
                what=what,
            ) from None
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise FileFormatError(
                    path, f"holds {len(infos)} members (at most {MAX_NPZ_MEMBERS})", what=what
                )
            members: dict[str, _Member] = {}
            packed = 0
            for zi in infos:
                name = zi.filename
                key = name[:-4] if name.endswith(".npy") else name

                def where(problem: str, key: str = key) -> FileFormatError:
                    return FileFormatError(path, problem, what=what, field=key)

                if not name.endswith(".npy") or not key:
                    raise where("is not an .npy array member")
                if key in members:
                    raise where("appears twice in the archive")
                if zi.flag_bits & 0x1:
                    raise where("is encrypted")
                if zi.compress_type == zipfile.ZIP_STORED:
                    if zi.compress_size != zi.file_size:
                        raise where("is stored uncompressed with inconsistent sizes")
                elif zi.compress_type == zipfile.ZIP_DEFLATED:
                    if zi.file_size > _DEFLATE_RATIO * zi.compress_size + 1024:
                        raise where(
                            f"claims {_size(zi.file_size)} from {zi.compress_size} compressed "
                            "bytes (more than deflate can expand)"
                        )
                else:
                    raise where(f"uses zip compression method {zi.compress_type} (not npz)")
                packed += zi.compress_size
                if packed > disk:
                    raise where(
                        f"lies beyond the end of the file ({disk} bytes): truncated archive"
                    )
                try:
                    with zf.open(zi) as raw:
                        array, header_end = _parse_header(raw, where)
                except FileFormatError:
                    raise
                except (
                    zipfile.BadZipFile,
                    EOFError,
                    OSError,
                    ValueError,
                    zlib.error,
                    struct.error,
                    NotImplementedError,
                    RuntimeError,
                    OverflowError,
                ):
                    raise where("cannot be read: the archive is damaged or truncated") from None
                held = zi.file_size - header_end
                if array.nbytes > held:
                    raise where(
                        f"declares shape {array.shape} {array.dtype} = {_size(array.nbytes)} "
                        f"but holds {max(held, 0)} bytes of data (truncated or forged header)"
                    )
                if array.nbytes < held:
                    raise where(
                        f"holds {held} bytes of data, more than its shape {array.shape} "
                        f"{array.dtype} declares ({array.nbytes})"
                    )
                members[key] = _Member(zi, header_end, array)
            yield zf, members


def inspect_npz(path: str | os.PathLike[str], *, what: str = "file") -> dict[str, ArrayInfo]:
    """Every member's declared shape and dtype, checked as :func:`read_npz` checks them,
    without reading any array data."""
    with _zip(path, what) as (_, members):
        return {k: m.array for k, m in members.items()}


def _read_member(
    zf: zipfile.ZipFile, m: _Member, where: Callable[[str], FileFormatError]
) -> NDArray[Any]:
    a = m.array
    count = math.prod(a.shape)
    try:
        out = np.empty(count, dtype=a.dtype)
    except MemoryError:
        raise where(f"needs {_size(a.nbytes)}, which cannot be allocated here") from None
    buf = out.view(np.uint8).data  # a writable byte view of out
    try:
        with zf.open(m.info) as raw:
            raw.read(m.header_end)
            pos = 0
            while pos < a.nbytes:
                chunk = raw.read(min(_CHUNK, a.nbytes - pos))
                if not chunk:
                    raise where(f"is truncated: {pos} of {a.nbytes} data bytes")
                buf[pos : pos + len(chunk)] = chunk
                pos += len(chunk)
            raw.read(1)  # reach the end of the member: zipfile checks its CRC there
    except FileFormatError:
        raise
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        ValueError,
        zlib.error,
        struct.error,
        RuntimeError,
        OverflowError,
    ):
        raise where(
            "cannot be read: the archive is damaged or truncated (bad CRC or data)"
        ) from None
    if a.dtype.kind == "b":  # a bool byte other than 0/1 would compare unequal to True
        out = out.view(np.uint8) != 0
    elif a.dtype.kind == "U":
        codes = out.view(np.dtype("u4").newbyteorder(a.dtype.byteorder))
        if codes.size and int(codes.max()) > 0x10FFFF:
            raise where("holds a character code beyond U+10FFFF (not text)")
    if a.fortran_order:
        return out.reshape(a.shape[::-1]).transpose()
    return out.reshape(a.shape)


def read_npz(
    path: str | os.PathLike[str],
    fields: Mapping[str, NpzField] | None = None,
    *,
    what: str = "file",
    max_bytes: int = MAX_NPZ_BYTES,
) -> dict[str, NDArray[Any]]:
    """The arrays of an ``.npz`` file, each checked before any data is read (module docstring).

    ``fields``: the arrays to read and what they must be (dtype kinds, dimensions, required);
    members not named there are not read. None: read every member (plain dtypes only).
    ``max_bytes`` bounds the total array data read (the allocation).
    """
    with _zip(path, what) as (zf, members):
        if fields is None:
            wanted = list(members)
        else:
            missing = [k for k, s in fields.items() if s.required and k not in members]
            if missing:
                err = FileFormatError(
                    path,
                    f"has no array {missing[0]!r} (required; it holds: "
                    f"{', '.join(sorted(members)) or 'nothing'})",
                    what=what,
                )
                err.field = missing[0]
                raise err
            wanted = [k for k in fields if k in members]
        total = 0
        for key in wanted:

            def where(problem: str, key: str = key) -> FileFormatError:
                return FileFormatError(path, problem, what=what, field=key)

            if fields is not None:
                _check_kind(members[key].array, fields[key], where)
            total += members[key].array.nbytes
            if total > max_bytes:
                raise where(
                    f"declares shape {members[key].array.shape} {members[key].array.dtype}: "
                    f"the arrays read would need {_size(total)}, more than the "
                    f"{_size(max_bytes)} allowed (max_bytes)"
                )
        out = {}
        for key in wanted:

            def where(problem: str, key: str = key) -> FileFormatError:
                return FileFormatError(path, problem, what=what, field=key)

            out[key] = _read_member(zf, members[key], where)
        return out


# ------------------------------------------------------------------------------- JSON, TOML

_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def _json_depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings (exact for valid JSON)."""
    b = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "surrogatepass"), np.uint8)
    opens = (b == 0x5B) | (b == 0x7B)
    idx = np.flatnonzero(opens | (b == 0x5D) | (b == 0x7D))
    if not idx.size:
        return 0
    return int(np.cumsum(np.where(opens[idx], 1, -1)).max())


def _no_constant(name: str) -> Any:
    raise ValueError(f"the literal {name} is not JSON (use null for a missing number)")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"the number {text[:40]} overflows a float")
    return v


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 4300:  # Python's own limit on int(str)
        raise ValueError(f"an integer of {len(text)} digits is too long")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"the key {k[:80]!r} appears twice in one object")
        d[k] = v
    return d


def _loads_json(text: str, path: str, what: str, max_depth: int) -> Any:
    depth = _json_depth(text)
    if depth > max_depth:
        raise FileFormatError(path, f"nests {depth} levels deep (at most {max_depth})", what=what)
    try:
        return json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise FileFormatError(
            path, f"is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})", what=what
        ) from None
    except (ValueError, RecursionError, OverflowError) as exc:
        raise FileFormatError(path, f"is not valid JSON: {exc}", what=what) from None


def loads_json(text: str, *, where: str = "JSON text", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict ``json.loads``: at most ``max_depth`` levels of nesting, no NaN/Infinity, no
    float overflow, no repeated keys; errors are FileFormatError naming ``where`` (e.g.
    "log.jsonl line 3")."""
    return _loads_json(text, where, "", max_depth)


def read_json(
    path: str | os.PathLike[str],
    *,
    what: str = "file",
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """The strict JSON document (:func:`loads_json`) of a regular file of at most
    ``max_bytes``."""
    return _loads_json(read_text(path, what=what, max_bytes=max_bytes), str(path), what, max_depth)


def _toml_float(text: str) -> float:
    if text.lstrip("+-") in ("nan", "inf"):
        raise ValueError(f"the TOML literal {text} is not allowed here (give a finite number)")
    return float(text)


def read_toml(
    path: str | os.PathLike[str], *, what: str = "file", max_bytes: int = MAX_TOML_BYTES
) -> dict[str, Any]:
    """The TOML document of a regular file of at most ``max_bytes`` (nan and inf refused)."""
    text = read_text(path, what=what, max_bytes=max_bytes)
    try:
        return tomllib.loads(text, parse_float=_toml_float)
    except tomllib.TOMLDecodeError as exc:
        raise FileFormatError(path, f"is not valid TOML: {exc}", what=what) from None
    except RecursionError:
        raise FileFormatError(path, "is not valid TOML: nested too deeply", what=what) from None
    except ValueError as exc:
        raise FileFormatError(path, str(exc), what=what) from None


def to_json(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python numbers and lists, tuples as lists,
    and every non-finite float as None (null: "no finite value", module docstring)."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, np.generic):
        return to_json(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (:func:`to_json`; never a NaN literal)."""
    return json.dumps(to_json(obj), indent=indent, allow_nan=False)


# ------------------------------------------------------------------------------- writing


class _FdSink(io.RawIOBase):
    """A raw, seekable writer on a file descriptor whose every write is ``os.write``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        return os.write(self.fd, b)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return os.lseek(self.fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self.fd, 0, io.SEEK_CUR)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self.fd)
            finally:
                super().close()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_name(p: Path) -> Path:
    return p.with_name(f".{p.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", *, fsync: bool = True
) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` atomically when the block ends without
    an exception (module docstring); on any exception the temporary file is removed, ``path``
    is untouched and the exception propagates. ``mode``: "wb" (bytes) or "w" (UTF-8 text)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        raise ValueError(f"cannot write {p}: it is a folder")
    tmp = _temp_name(p)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    sink = _FdSink(fd)
    f: IO[Any] = io.BufferedWriter(sink, buffer_size=1 << 20)
    if mode == "w":
        f = io.TextIOWrapper(f, encoding="utf-8", newline="")  # type: ignore[arg-type]
    try:
        yield f
        f.flush()
        if fsync:
            os.fsync(fd)
        f.close()
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(Exception):
            f.close()
        with contextlib.suppress(OSError):
            sink.close()  # closes fd once, even when the flush in f.close() failed
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(p.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given); return the path."""
    return write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json(
    path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2, fsync: bool = True
) -> Path:
    """Write strict JSON (:func:`dumps_json`: non-finite floats as null) atomically."""
    return write_text(path, dumps_json(obj, indent=indent) + "\n", fsync=fsync)


def write_npz(
    path: str | os.PathLike[str],
    arrays: Mapping[str, Any],
    *,
    compress: bool = False,
    fsync: bool = True,
) -> Path:
    """Write ``arrays`` as an ``.npz`` atomically (never pickles: object arrays raise)."""
    save = np.savez_compressed if compress else np.savez
    with atomic_open(path, "wb", fsync=fsync) as f:
        save(f, allow_pickle=False, **arrays)
    return Path(path)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary folder next to ``out``; when the block ends without an
    exception it becomes ``out`` (an earlier folder there is replaced: swapped atomically
    where the platform can, else moved aside first, and then deleted); on any exception it is
    removed and ``out`` is untouched. Not a lock: hold :func:`folder_lock` around it."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"{out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(out)
    tmp.mkdir()
    try:
        yield tmp
        if fsync:
            _fsync_tree(tmp)
        if out.is_dir() and _rename_exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the earlier folder
        else:
            old = out.with_name(f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if fsync:
        _fsync_dir(out.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(text: str) -> tuple[int, str]:
    try:
        held = json.loads(text)
        return int(held["pid"]), str(held["host"])
    except (ValueError, KeyError, TypeError):
        return -1, "?"


@contextlib.contextmanager
def folder_lock(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock file ``.<name>.lock`` next to ``out`` (it holds {"pid", "host"}) for the
    block; raise :class:`LockedError` naming the holder if a live process holds it.

    Where the platform has ``flock`` the lock is an advisory lock on that file, so it ends
    with its process however the process ends (a killed run leaves no lock to take over);
    the file is removed when the block ends. A lock file of a process that did not take the
    flock (an older writer creating the file exclusively) counts as held while that process
    lives on this host."""
    out = Path(out)
    lock = out.parent / f".{out.name}.lock"
    out.parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    try:
        import fcntl
    except ImportError:  # no flock: exclusive creation, a dead holder's file taken over
        fcntl = None  # type: ignore[assignment]
    while True:
        if fcntl is None:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
            except FileExistsError:
                pid, where = _holder(lock.read_text() if lock.exists() else "")
                if where == host and pid > 0 and not _pid_alive(pid):
                    lock.unlink(missing_ok=True)
                    continue
                raise LockedError(
                    f"{out} is being written by another run (pid {pid} on {where}; lock file "
                    f"{lock}); wait for it, or delete the lock file if that run is gone"
                ) from None
            break
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 4096).decode("utf-8", "replace")
            os.close(fd)
            pid, where = _holder(text)
            raise LockedError(
                f"{out} is being written by another run (pid {pid} on {where}; lock file "
                f"{lock}); wait for it"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if not same:  # the file was removed by its holder between our open and flock
            os.close(fd)
            continue
        pid, where = _holder(os.read(fd, 4096).decode("utf-8", "replace"))
        if pid > 0 and pid != os.getpid() and where == host and _pid_alive(pid):
            os.close(fd)
            raise LockedError(
                f"{out} is being written by another run (pid {pid} on {where}; lock file "
                f"{lock}); wait for it, or delete the lock file if that run is gone"
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, io.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": host}).encode())
        break
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)
