"""Reading rows without reading whole arrays: a checksummed row gather, and chunk-aligned batches with prefetch.

:func:`read_rows_fast` is the path of ``store.read(key, rows=...)`` on local stores (a mini-batch loader's
access: rows in any order, sorted or not). Each chunk that holds a wanted row is read once into a small reusable
buffer (one ``readv``; a chunk is ~1 MiB, so it stays in the CPU cache), checksummed there, compared with the
digest recorded for its position, and only the wanted rows are copied out. Against reading the whole array and
then picking rows, it touches no output memory for rows nobody asked for (measurements in benchmarks/README.md).

A chunk already verified by this process is not checksummed again while its file is the same file: same inode,
device, size and modification time (zarr writes a chunk to a new file and renames it into place, so any rewrite
is a new inode; one ``stat`` tells; a file written less than 2 s before it was read is not kept, as its identity
could come back: :mod:`mixsig.cache._small_seen`). Its file stays memory-mapped (up to :data:`MAP_BYTES`), its
wanted rows are copied from the mapping, and its recorded digest is still compared with the CRC it was verified with. (A foreign
program truncating a mapped chunk file in place while it is read would crash the read with SIGBUS; mixsig and
zarr never write in place.) So the first read of a chunk costs its whole bytes, and the
reads of a mini-batch loader after it only the rows. A chunk that cannot be mapped (``mmap`` fails under an
address-space limit, ``ulimit -v``) is read and checksummed through a buffer instead, on every read.

When a first read is split over threads, its checksums run with the GIL released (:mod:`mixsig.cache._crc`;
google_crc32c holds it for buffers under 1 MiB), so the threads checksum (and fault in) their chunks in parallel;
a read by one thread calls google_crc32c directly (a few microseconds less per chunk). Where the first read's
time goes, and why a checked first read does not beat an unchecked h5py read on one core: benchmarks/README.md
("Random-row reads").

:func:`iter_batches` yields the rows of a key in batches of whole chunks, the next batch read by a thread while
the caller works on this one: memory stays at a few batches whatever the key's size.
"""

from __future__ import annotations

import math
import mmap
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import google_crc32c
import numpy as np

from mixsig.cache._chunks import (
    PARALLEL_BYTES,
    _get_pool,
    _read_chunk,
    _workers,
    empty_aligned,
)
from mixsig.cache._crc import crc32c as crc32c_nogil
from mixsig.cache._digest import ABSENT, UNKNOWN
from mixsig.cache import _small_seen

#: path -> (identity (st_ino, st_dev, st_size, st_mtime_ns), CRC, mmap, [chunk shape] view) of chunk files whose
#: checksum this process verified, least recently used first.
_VERIFIED: OrderedDict[str, tuple] = OrderedDict()
#: Bytes of verified chunk files kept mapped at most (least recently used unmapped first). Mappings are of the
#: page cache, not memory of this process, but count towards an address-space limit (``ulimit -v``).
MAP_BYTES = 512 << 20
_mapped = [0]
_verified_lock = threading.Lock()


def _identity(st) -> tuple:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def _stat(path: str) -> tuple | None:
    try:
        return _identity(os.stat(path))
    except OSError:
        return None


def _forget(path: str) -> None:
    entry = _VERIFIED.pop(path)
    _mapped[0] -= entry[0][2]
    mm = entry[2]
    del entry
    try:
        mm.close()
    except BufferError:  # a reader still holds the view: unmapped when it lets go
        pass


def _pick_verified(path: str, local: np.ndarray, sel: np.ndarray, out: np.ndarray, expect: int) -> bool:
    """``out[sel] = rows local`` of a chunk file verified before and unchanged since (one ``stat``, then from its
    memory map). False (nothing done) when it is not verified, changed, or its CRC is not ``expect``."""
    if path not in _VERIFIED:
        return False
    ident = _stat(path)
    with _verified_lock:
        known = _VERIFIED.get(path)
        if known is None:
            return False
        if ident != known[0] or (expect != UNKNOWN and expect != known[1]):
            del known
            _forget(path)
            return False
        _VERIFIED.move_to_end(path)
        out[sel] = known[3][local]
    return True


def _map_checked(path: str, shape: tuple, dtype, nbytes: int, expect: int, crc=google_crc32c.value):
    """The [chunk shape] view of chunk file ``path`` memory-mapped, its CRC32C checked over the mapping and
    compared with ``expect``, and kept as verified; None when anything is unusual (no file, another size, a checksum
    or digest mismatch, a mapping refused: the caller then reads it the checked way, which names the fault, or
    reads it through a buffer where ``mmap`` fails, e.g. under an address-space limit)."""
    if nbytes + 4 > MAP_BYTES:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        st, at = os.fstat(fd), time.time_ns()
        if st.st_size != nbytes + 4:
            return None
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # ENOMEM under `ulimit -v`, or a file that cannot be mapped
        return None
    finally:
        os.close(fd)
    stored = int.from_bytes(mm[nbytes:nbytes + 4], "little")
    payload = np.frombuffer(mm, np.uint8, nbytes)
    ok = crc(payload) == stored and expect in (UNKNOWN, stored)  # with crc32c_nogil, page faults too run without it
    del payload
    if not ok:
        mm.close()
        return None
    view = np.frombuffer(mm, dtype, math.prod(shape)).reshape(shape)
    if not _small_seen.old_enough(st, at):  # written moments ago: not kept (its identity could come back)
        return view
    with _verified_lock:
        if path in _VERIFIED:
            _forget(path)
        _VERIFIED[path] = (_identity(st), stored, mm, view)
        _mapped[0] += nbytes + 4
        while _mapped[0] > MAP_BYTES and len(_VERIFIED) > 1:
            _forget(next(iter(_VERIFIED)))
    return view


def forget_verified() -> None:
    """Unmap every verified chunk and forget the small chunk files checked (the next reads checksum them again)."""
    _small_seen.forget()
    with _verified_lock:
        while _VERIFIED:
            _forget(next(iter(_VERIFIED)))


def read_rows_fast(arr, adir, rows: np.ndarray, out: np.ndarray, fill, expect=None) -> None:
    """``out[i] = arr[rows[i]]`` for ``rows`` in any order (repeats allowed), from the chunk files of ``arr``
    (fast layout) under ``adir``. Rows of an absent chunk file get ``fill``; a chunk whose checksum fails, or whose
    CRC is not the digest ``expect[c]`` recorded for its position, raises :class:`~mixsig.errors.CorruptChunk`."""
    rows = np.asarray(rows, np.int64)
    if not len(rows):
        return
    cr, n = int(arr.chunks[0]), int(arr.shape[0])
    chunk_of = rows // cr
    order = np.argsort(chunk_of, kind="stable")
    chunks, starts = np.unique(chunk_of[order], return_index=True)
    bounds = np.append(starts, len(rows))
    shape, dtype = tuple(arr.chunks), arr.dtype
    nbytes = math.prod(shape) * dtype.itemsize
    base, tail = f"{adir}{os.sep}c{os.sep}", "".join(f"{os.sep}0" for _ in range(arr.ndim - 1))
    expect = None if expect is None else [int(x) for x in expect]

    todo = []  # chunks to read and checksum: not verified by this process before, or changed since
    for j in range(len(chunks)):
        c, sel = int(chunks[j]), order[bounds[j]:bounds[j + 1]]
        if not _pick_verified(f"{base}{c}{tail}", rows[sel] - c * cr, sel, out,
                              UNKNOWN if expect is None else expect[c]):
            todo.append(j)

    def part(a: int, b: int, crc) -> None:
        buf = empty_aligned(shape, dtype)
        for j in todo[a:b]:
            c = int(chunks[j])
            lo = c * cr
            view = buf[:min(cr, n - lo)]
            sel = order[bounds[j]:bounds[j + 1]]
            path, want = f"{base}{c}{tail}", UNKNOWN if expect is None else expect[c]
            mapped = _map_checked(path, shape, dtype, nbytes, want, crc)
            if mapped is not None:
                out[sel] = mapped[rows[sel] - lo]
                continue
            got = _read_chunk(path, view, shape, dtype, nbytes, len(view) == cr, f"array {arr.path} chunk {c}", want)
            out[sel] = fill if got == ABSENT else view[rows[sel] - lo]

    parts = min(_workers(), len(todo)) if len(todo) * nbytes >= PARALLEL_BYTES else 1
    if parts <= 1:
        part(0, len(todo), google_crc32c.value)
        return
    cuts = [len(todo) * k // parts for k in range(parts + 1)]
    futures = [_get_pool().submit(part, cuts[k], cuts[k + 1], crc32c_nogil) for k in range(1, parts)]
    try:
        part(cuts[0], cuts[1], crc32c_nogil)
    finally:
        errors = [f.exception() for f in futures]  # every part finished before out is used or dropped
    for exc in errors:
        if exc is not None:
            raise exc


@dataclass(frozen=True)
class Batch:
    """One batch of :func:`iter_batches`: the store rows (in the order asked) and their features [len(rows), ...]."""

    rows: np.ndarray
    X: np.ndarray


def chunk_batches(rows: np.ndarray, chunk_rows: int, batch_rows: int) -> list[np.ndarray]:
    """``rows`` grouped by chunk (chunks ascending, the given order kept within a chunk) and cut into batches of
    whole chunks: a batch holds the rows of consecutive chunks, at most ``batch_rows`` unless one chunk alone
    holds more."""
    rows = np.asarray(rows, np.int64)
    order = np.argsort(rows // chunk_rows, kind="stable")
    rows = rows[order]
    chunk_of = rows // chunk_rows
    _, starts = np.unique(chunk_of, return_index=True)
    bounds = list(starts) + [len(rows)]
    out, first = [], 0
    for j in range(1, len(bounds)):
        if bounds[j] - bounds[first] > batch_rows and j - 1 > first:
            out.append(rows[bounds[first]:bounds[j - 1]])
            first = j - 1
    if len(rows):
        out.append(rows[bounds[first]:])
    return out


def iter_batches(store, key: str, rows: np.ndarray | None = None, batch_rows: int = 4096,
                 prefetch: int = 2) -> Iterator[Batch]:
    """The done rows of ``key`` (of ``rows`` when given, else all), in chunk-aligned batches of about
    ``batch_rows`` rows, each read (checked like :meth:`FeatureStore.read`) while the caller uses the one before:
    up to ``prefetch`` batches are read ahead by one thread. Rows not done are skipped. Peak memory: about
    ``prefetch + 1`` batches, whatever the key's size."""
    if batch_rows < 1 or prefetch < 1:
        raise ValueError(f"batch_rows and prefetch must be >= 1; got {batch_rows}, {prefetch}")
    n = int(store.key_shape(key)[0])
    want = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
    chunk_rows = int(store.key_info(key)["chunk_rows"])
    plan = chunk_batches(want, chunk_rows, batch_rows)
    q: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        try:
            for b in plan:
                if stop.is_set():
                    return
                view = store.read(key, rows=b)
                q.put(Batch(view.rows, view.X))
            q.put(None)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    t = threading.Thread(target=produce, name="mixsig-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


__all__ = ["Batch", "chunk_batches", "iter_batches", "read_rows_fast"]
