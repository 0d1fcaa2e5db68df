"""Chunk-level I/O for local stores: a fast, checksummed read path and chunk enumeration.

Feature arrays are written by zarr with the codecs ``bytes`` (little endian) + ``crc32c``, no sharding: a chunk
file is its payload and a 4-byte CRC32C. Read directly, as fast as ``np.load``, and any bit flip is caught:

- the output array starts on a page boundary (see :data:`ALIGN`);
- each chunk file is read with one ``readv`` straight into its rows of the output (plus the checksum and one
  byte more, to tell a longer file), then checksummed there while the bytes are still in cache;
- large reads are split between threads over contiguous runs of chunks (reads release the GIL; google_crc32c's
  checksums of chunks under 1 MiB do not: mixsig/cache/_crc.py);
- small chunks (``done``, ``status``, the ledger): little Python per file; one checked before costs a ``stat``.
Other layouts fall back to zarr. Each chunk's trailing CRC is also compared with the digest recorded for its
position where the caller passes one (``expect``; :mod:`mixsig.cache._digest`): a chunk copied elsewhere is caught.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np

from mixsig.cache import _small_seen
from mixsig.cache._digest import ABSENT, UNKNOWN, MisplacedChunk, describe_mismatch
from mixsig.errors import CorruptChunk


def local_root(zarr_store) -> Path | None:
    """The folder of a zarr LocalStore, or None for any other store."""
    from zarr.storage import LocalStore

    return Path(zarr_store.root) if isinstance(zarr_store, LocalStore) else None


def array_dir(root: Path, array_path: str) -> Path:
    return root.joinpath(*array_path.split("/"))


def chunk_file(adir: Path, chunk_index: int, ndim: int) -> Path:
    """The file of row-chunk ``chunk_index`` (default v3 chunk key encoding ``c/i/0/...``)."""
    return adir.joinpath("c", str(chunk_index), *(["0"] * (ndim - 1)))


#: zarr's LocalStore writes a chunk to ``<chunk>.<random>.partial`` and renames it into place; an interrupted
#: write leaves that file behind (the writer removes its shard's, ``cache verify`` lists them).
PARTIAL_SUFFIX = ".partial"


def partial_files(adir: Path, chunk_index: int | None = None) -> list[Path]:
    """Temp files of interrupted chunk writes under array folder ``adir`` (only those of row-chunk
    ``chunk_index`` when given)."""
    cdir = adir / "c"
    if chunk_index is None:
        return sorted(cdir.rglob(f"*{PARTIAL_SUFFIX}")) if cdir.is_dir() else []
    base = cdir / str(chunk_index)
    found = list(cdir.glob(f"{chunk_index}.*{PARTIAL_SUFFIX}")) if cdir.is_dir() else []
    return sorted(found + (list(base.rglob(f"*{PARTIAL_SUFFIX}")) if base.is_dir() else []))


def fast_layout(arr) -> bool:
    """True when ``arr`` is stored as plain little-endian bytes + crc32c, chunked over rows only."""
    from zarr.codecs import BytesCodec, Crc32cCodec

    codecs = arr.metadata.codecs
    if len(codecs) != 2 or not isinstance(codecs[0], BytesCodec) or not isinstance(codecs[1], Crc32cCodec):
        return False
    if arr.dtype.kind not in "fiub" or (arr.dtype.itemsize > 1 and codecs[0].endian is not None and codecs[0].endian.value != "little"):
        return False
    return tuple(arr.chunks[1:]) == tuple(arr.shape[1:])


_local = threading.local()

#: Output arrays of whole-array reads start on a page boundary: on some CPUs the kernel's copy into a destination
#: that is not 64-byte aligned is much slower, and numpy's large allocations start 16 bytes into a page
#: (measurement in benchmarks/README.md).
ALIGN = 4096


def empty_aligned(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose data starts on an :data:`ALIGN` boundary."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _scratch(nbytes: int) -> np.ndarray:
    """A per-thread reusable byte buffer, for chunks that cannot be read straight into their destination."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _local.buf = np.empty(nbytes, np.uint8)
    return buf[:nbytes]


def _direct_ok(out: np.ndarray, chunk_shape: tuple, dtype: np.dtype) -> bool:
    return (out.shape == chunk_shape and out.dtype == dtype and out.flags.c_contiguous
            and out.__array_interface__["data"][0] % 64 == 0)


#: Chunks up to this size (done, status, ...) are read with one ``read`` call into a new bytes object.
SMALL = 1 << 16

_BAD_CRC = ("fails its CRC32C checksum (bit rot or a partial write); "
            "run `mixsig cache verify` and re-extract the rows it names")


def _size_error(where: str, path, got: int, nbytes: int) -> CorruptChunk:
    return CorruptChunk(f"{where}: chunk file {path} has {got}{'+' if got > nbytes + 4 else ''} bytes, expected "
                        f"{nbytes + 4} (truncated or foreign)")


def _readv_all(fd: int, views: list[memoryview]) -> int:
    """``readv`` until every view is full or the file ends (one call for a regular local file); bytes read."""
    want, total = sum(v.nbytes for v in views), 0
    while views:
        k = os.readv(fd, views)
        if not k:
            break
        total += k
        if total == want:
            break
        rest = []
        for v in views:  # drop what was filled
            if k >= v.nbytes:
                k -= v.nbytes
            else:
                rest.append(v[k:])
                k = 0
        views = rest
    return total


def _misplaced(where: str, expect: int, got: int) -> CorruptChunk:
    label, _, chunk = where.rpartition(" chunk ")
    return MisplacedChunk(describe_mismatch(label or where, chunk, expect, got)
                        + "; run `mixsig cache verify STORE` (`--fix` unmarks the rows so `mixsig extract` recomputes them)")


def _check_expect(where: str, expect: int, got: int) -> None:
    """Raise when the chunk's trailing CRC ``got`` is not the digest recorded for its position."""
    if expect != UNKNOWN and expect != got:
        raise _misplaced(where, expect, got)


def _small_payload(fd: int, path, nbytes: int, where: str, expect: int = UNKNOWN) -> tuple[bytes, int]:
    """The checked payload of a small chunk file open as ``fd`` (closed here) and its CRC: one ``read`` of the
    whole file."""
    try:
        data = os.read(fd, nbytes + 5)
    finally:
        os.close(fd)
    if len(data) != nbytes + 4:
        raise _size_error(where, path, len(data), nbytes)
    stored = int.from_bytes(data[nbytes:], "little")
    if google_crc32c.value(data[:nbytes]) != stored:
        raise CorruptChunk(f"{where}: chunk file {path} {_BAD_CRC}")
    _check_expect(where, expect, stored)
    return data[:nbytes], stored


def _read_chunk(path, out: np.ndarray, chunk_shape: tuple, dtype: np.dtype, nbytes: int, direct: bool,
                where: str, expect: int = UNKNOWN) -> int:
    """Read one chunk file into ``out``; returns its CRC, or ABSENT when there is no file (``out`` untouched)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if expect not in (UNKNOWN, ABSENT):
            raise _misplaced(where, expect, ABSENT) from None
        return ABSENT
    if expect == ABSENT:
        os.close(fd)
        raise _misplaced(where, expect, 0)
    if nbytes <= SMALL:
        data, stored = _small_payload(fd, path, nbytes, where, expect)
        out[...] = np.frombuffer(data, dtype, nbytes // dtype.itemsize).reshape(chunk_shape)[:out.shape[0]]
        return stored
    # One readv: the payload (straight into out when direct), the 4-byte checksum, and one byte more to tell a
    # longer (foreign) file. The checksum then runs over bytes the kernel has just written, mostly from cache.
    payload = out.reshape(-1).view(np.uint8) if direct else _scratch(nbytes)
    tail = bytearray(5)
    try:
        got = _readv_all(fd, [memoryview(payload), memoryview(tail)])
    finally:
        os.close(fd)
    if got != nbytes + 4:
        raise _size_error(where, path, got, nbytes)
    stored = int.from_bytes(tail[:4], "little")
    if google_crc32c.value(payload) != stored:
        raise CorruptChunk(f"{where}: chunk file {path} {_BAD_CRC}")
    _check_expect(where, expect, stored)
    if not direct:
        out[...] = payload.view(dtype).reshape(chunk_shape)[:out.shape[0]]
    return stored


def read_chunk_into(path: Path | str, out: np.ndarray, chunk_shape: tuple, dtype: np.dtype, where: str,
                    expect: int = UNKNOWN) -> bool:
    """Read one chunk file into ``out`` (rows of the chunk that exist in the array). False if the file is absent.

    A chunk whose CRC32C does not match raises :class:`CorruptChunk`; ``out`` then holds unspecified bytes and the
    caller must drop it (every caller here reads into an array it allocated and discards on error). A full chunk
    read into a 64-byte aligned C-contiguous ``out`` of the stored dtype goes straight into ``out`` and is
    checksummed there while the bytes are in cache; anything else goes through a small per-thread buffer.
    ``expect``: the digest recorded for this position (:data:`~mixsig.cache._digest.UNKNOWN`: none; ``ABSENT``:
    no file was written here); a chunk that does not match raises :class:`CorruptChunk`.
    """
    chunk_shape = tuple(chunk_shape)
    nbytes = math.prod(chunk_shape) * dtype.itemsize
    return _read_chunk(path, out, chunk_shape, dtype, nbytes, _direct_ok(out, chunk_shape, dtype), where,
                       expect) != ABSENT


#: Whole-array reads of at least this many bytes are split over threads (reads release the GIL).
PARALLEL_BYTES = 8 << 20
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked child makes its own


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(_workers(), thread_name_prefix="mixsig-read"))
    return _pool[1]


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """How one whole array is read from its chunk files into ``out``.

    Chunk ``i``'s file is ``f"{base}{i}{tail}"`` (zarr v3's default chunk keys ``c/i/0/...``)."""

    path: str           # the array's path in the store, for messages
    rows: int           # rows per chunk
    n: int              # rows of the array
    count: int          # chunks (the last may be partial)
    shape: tuple        # chunk shape
    dtype: np.dtype     # stored dtype
    nbytes: int         # payload bytes of one chunk (without its 4-byte CRC32C)
    direct: bool        # full chunks can be read straight into ``out`` (aligned, same dtype, C-contiguous)
    base: str
    tail: str
    out: np.ndarray     # [n, ...] destination
    fill: object        # value of rows whose chunk file is absent (never written)
    expect: list        # per chunk: the digest recorded for its position (UNKNOWN: none)
    seen: list          # per chunk: filled with the CRC its file holds (ABSENT: no file), for later comparison

    @classmethod
    def of(cls, arr, adir, out: np.ndarray, fill, expect=None) -> "ReadPlan":
        rows, n = arr.chunks[0], arr.shape[0]
        count = -(-n // rows) if n else 0
        shape, dtype = tuple(arr.chunks), arr.dtype
        nbytes = math.prod(shape) * dtype.itemsize
        # Every full chunk of an aligned out starts 64-byte aligned when the chunk size is a multiple of 64.
        direct = nbytes % 64 == 0 and count > 0 and _direct_ok(out[:rows], shape, dtype)
        base, tail = f"{adir}{os.sep}c{os.sep}", os.sep.join([""] + ["0"] * (arr.ndim - 1))
        expect = [UNKNOWN] * count if expect is None else [int(x) for x in expect]
        return cls(arr.path, rows, n, count, shape, dtype, nbytes, direct, base, tail, out, fill, expect,
                   [UNKNOWN] * count)

    def file(self, i: int) -> str:
        return f"{self.base}{i}{self.tail}"


def _read_small(plan: ReadPlan) -> None:
    """Every chunk of a small-chunked array (done, status, the ledger), one copy into ``out`` at the end: one ``stat``
    for a file checked before and unchanged since (:mod:`mixsig.cache._small_seen`), else open, fstat, read, close."""
    rows, n, count, shape, dtype, nbytes = plan.rows, plan.n, plan.count, plan.shape, plan.dtype, plan.nbytes
    base, tail, out, fill, expect, seen = plan.base, plan.tail, plan.out, plan.fill, plan.expect, plan.seen
    payloads, missing = [], []
    for i in range(count):
        name = f"{base}{i}{tail}"
        if (hit := _small_seen.recall(name)) is not None and expect[i] in (UNKNOWN, hit[1]):
            payloads.append(hit[0])
            seen[i] = hit[1]
            continue
        try:
            fd = os.open(name, os.O_RDONLY)
        except FileNotFoundError:
            if expect[i] >= 0:
                raise _misplaced(f"array {plan.path} chunk {i}", expect[i], ABSENT) from None
            payloads.append(bytes(nbytes))
            missing.append(i)
            seen[i] = ABSENT
            continue
        if expect[i] == ABSENT:
            os.close(fd)
            raise _misplaced(f"array {plan.path} chunk {i}", ABSENT, 0)
        st, at = os.fstat(fd), time.time_ns()
        data, seen[i] = _small_payload(fd, name, nbytes, f"array {plan.path} chunk {i}", expect[i])
        _small_seen.keep(name, st, at, seen[i], data)
        payloads.append(data)
    if count:
        out[...] = np.frombuffer(b"".join(payloads), dtype).reshape((count * rows,) + shape[1:])[:n]
    for i in missing:
        out[i * rows:(i + 1) * rows] = fill


def _read_general(plan: ReadPlan, first: int, last: int) -> None:
    rows, n, out = plan.rows, plan.n, plan.out
    for i in range(first, last):
        lo, hi = i * rows, min((i + 1) * rows, n)
        got = plan.seen[i] = _read_chunk(plan.file(i), out[lo:hi], plan.shape, plan.dtype, plan.nbytes,
                                         plan.direct and hi - lo == rows, f"array {plan.path} chunk {i}",
                                         plan.expect[i])
        if got == ABSENT:
            out[lo:hi] = plan.fill


def _read_direct(plan: ReadPlan, first: int, last: int) -> int:
    """Full chunks [first, last) straight into ``out``, with as little Python per chunk as possible (it runs
    beside other threads, holding the GIL). Anything unusual (a missing or odd-sized file, a short read, a checksum
    mismatch) is left to :func:`_read_general`, which names the fault; returns the first chunk not read here."""
    rows, n, nbytes, base, tail, out = plan.rows, plan.n, plan.nbytes, plan.base, plan.tail, plan.out
    last = max(first, min(last, n // rows))  # a last partial chunk goes the general way
    flat = out.reshape(-1).view(np.uint8)
    mv, end = memoryview(flat), bytearray(5)
    crc, read, want, frombytes = google_crc32c.value, os.readv, nbytes + 4, int.from_bytes
    expect, seen = plan.expect, plan.seen
    for i in range(first, last):
        try:
            fd = os.open(f"{base}{i}{tail}", os.O_RDONLY)
        except FileNotFoundError:
            return i
        try:
            got = read(fd, [mv[i * nbytes:(i + 1) * nbytes], end])
        finally:
            os.close(fd)
        stored = frombytes(end[:4], "little")
        if got != want or crc(flat[i * nbytes:(i + 1) * nbytes]) != stored or (expect[i] != stored and expect[i] != -1):
            return i
        seen[i] = stored
    return last


def read_arrays_fast(jobs: list[tuple]) -> list[list[int]]:
    """Read every row of each ``(arr, adir, out, fill[, expect])`` into ``out`` [N, ...] (any dtype ``arr`` casts
    to) from its chunk files. Missing chunk files (never written) give ``fill``; a checksum or size mismatch, or a
    chunk whose CRC is not the digest ``expect[i]`` recorded for its position, raises :class:`CorruptChunk`.
    Returns, per job, the CRC each chunk file held (ABSENT: no file), for a caller that reads the digests in the
    same pass (:func:`check_seen`).

    Arrays with small chunks (done, status) are read file by file with as little work per file as possible, by
    this thread while the others start on the large ones. Large ones are read by up to 4 threads, so one thread's
    checksum and Python work run while another's read is in the kernel (reads release the GIL;
    measurements in benchmarks/README.md).
    """
    plans: list[ReadPlan] = []
    small: list[ReadPlan] = []
    every: list[ReadPlan] = []
    for arr, adir, out, fill, *expect in jobs:
        plan = ReadPlan.of(arr, adir, out, fill, expect[0] if expect else None)
        (small if plan.nbytes <= SMALL else plans).append(plan)
        every.append(plan)

    def run(part: int, parts: int) -> None:
        # Each thread takes a contiguous run of chunks (faster than taking chunks in turn: benchmarks/README.md).
        for plan in plans:
            first, last = plan.count * part // parts, plan.count * (part + 1) // parts
            if plan.direct:
                first = _read_direct(plan, first, last)
            _read_general(plan, first, last)

    total = sum(p.out.nbytes for p in plans)
    parts = min(_workers(), sum(p.count for p in plans)) if total >= PARALLEL_BYTES else 1
    if parts <= 1:
        for plan in small:
            _read_small(plan)
        run(0, 1)
        return [p.seen for p in every]
    pool = _get_pool()
    futures = [pool.submit(run, k, parts) for k in range(1, parts)]
    try:
        for plan in small:  # while the other threads are reading
            _read_small(plan)
        run(0, parts)
    finally:
        errors = [f.exception() for f in futures]  # waits for every part before out is used or dropped
    for exc in errors:
        if exc is not None:
            raise exc
    return [p.seen for p in every]


def check_seen(label: str, seen: list[int], expect) -> None:
    """Compare the CRCs a read found (``seen``, from :func:`read_arrays_fast`) with the digests recorded for their
    positions (``expect``; UNKNOWN entries are not compared): an int compare per chunk."""
    for i, (got, want) in enumerate(zip(seen, expect.tolist() if hasattr(expect, "tolist") else expect)):
        if want != got and want != UNKNOWN:
            raise _misplaced(f"{label} chunk {i}", want, got)
