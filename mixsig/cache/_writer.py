"""The resumable writer of one feature key: whole chunk-aligned row blocks, ``done`` marked last, then the
row-chunks' digests recorded in the key's ledger (:mod:`mixsig.cache._digest`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from mixsig.cache._chunks import array_dir, chunk_file, partial_files
from mixsig.cache._digest import UNKNOWN, Ledger
from mixsig.cache._status import Status
from mixsig.errors import StoreError

log = logging.getLogger(__name__)


def shard_chunks(n_chunks: int, shard: tuple[int, int]) -> range:
    """The contiguous range of chunk indices that shard ``(i, n)`` owns."""
    i, n = shard
    return range(i * n_chunks // n, (i + 1) * n_chunks // n)


class FeatureWriter:
    """Writes rows of one key for one shard. Every write covers whole chunks; ``done`` is written after the data.

    Rows already done keep their stored bytes, so a rerun after a crash (or with failed rows retried) leaves
    committed rows bit-for-bit as they were. Non-finite rows are never marked done.

    Example::

        with store.writer(key) as w:
            for start, stop in w.blocks():
                emb, status = encode(rows=range(start, stop))
                w.write_block(start, stop, emb, status)
    """

    def __init__(self, store, key: str, shard=(0, 1), lease: bool = True, break_lease: bool = False, fsync: bool = True,
                 command: str | None = None):
        i, n = (int(shard[0]), int(shard[1]))
        if not (n >= 1 and 0 <= i < n):
            raise StoreError(f"--shard must be I/N with 0 <= I < N; got {i}/{n}")
        self.store = store
        self.key = key
        self.shard = (i, n)
        self.group = store.key_group(key)
        # array handles opened once (each lookup reads and parses zarr.json)
        self.arrays = {name: self.group[name] for name in ("embedding", "done", "status", "message", "input_hash")}
        self.embedding = self.arrays["embedding"]
        self.n_rows = int(self.embedding.shape[0])
        self.chunk_rows = int(self.embedding.chunks[0])
        for name in ("done", "status", "message", "input_hash"):
            if int(self.arrays[name].chunks[0]) != self.chunk_rows:
                raise StoreError(f"key {key}: array {name} is not chunked like embedding; refusing to write")
        self.n_chunks = -(-self.n_rows // self.chunk_rows)
        self._chunks = shard_chunks(self.n_chunks, self.shard)
        self._fsync = fsync
        root = store.local_path
        self.ledger = Ledger(self.group, root, self.arrays)
        self._lease = None
        if lease and root is not None:
            from mixsig.cache._lease import Lease

            self._lease = Lease(root, key, self.shard, break_lease=break_lease, command=command)
            self._remove_orphans(root)
            self._finish_ledger()
        elif lease and "://" in store.url and not store.url.startswith("file://"):  # object storage: no files
            from mixsig.cache._lease_remote import RemoteLease

            self._lease = RemoteLease(store.url, key, self.shard, break_lease=break_lease, command=command)
            self._finish_ledger()
        self.rows_written = 0

    # ---------------------------------------------------------------- what is left
    @property
    def row_range(self) -> tuple[int, int]:
        """[start, stop) rows of this shard."""
        return (self._chunks.start * self.chunk_rows, min(self._chunks.stop * self.chunk_rows, self.n_rows))

    def done_mask(self) -> np.ndarray:
        return self.store._read_plain(self.arrays["done"])

    def pending_rows(self) -> np.ndarray:
        """Rows of this shard not yet done (failed rows included: they are retried)."""
        lo, hi = self.row_range
        done = self.arrays["done"][lo:hi]
        return (np.flatnonzero(~done) + lo).astype(np.int64)

    def blocks(self) -> list[tuple[int, int]]:
        """One-chunk [start, stop) blocks of this shard that still have pending rows."""
        done = self.done_mask()
        out = []
        for c in self._chunks:
            lo, hi = c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n_rows)
            if not done[lo:hi].all():
                out.append((lo, hi))
        return out

    # ---------------------------------------------------------------- writing
    def _check_block(self, start: int, stop: int) -> None:
        cr = self.chunk_rows
        if start % cr or (stop % cr and stop != self.n_rows) or not (0 <= start < stop <= self.n_rows):
            raise StoreError(f"key {self.key}: block [{start}, {stop}) is not aligned to chunks of {cr} rows "
                             f"(N={self.n_rows}); writers must own whole chunks. Nothing was written.")
        lo, hi = self.row_range
        if start < lo or stop > hi:
            raise StoreError(f"key {self.key}: block [{start}, {stop}) lies outside shard "
                             f"{self.shard[0]}/{self.shard[1]} rows [{lo}, {hi}). Nothing was written.")

    def write_block(self, start: int, stop: int, embedding: np.ndarray, status, messages=None, input_hash=None) -> int:
        """Write rows [start, stop): ``embedding`` [stop-start, ...], ``status`` [stop-start] (:class:`Status`).

        Rows already done keep their stored values (what is passed for them is ignored). Rows whose status is not
        ``OK``, or whose values are not finite once cast to the key's dtype, are stored as NaN and not marked done.
        Returns the number of rows newly marked done.
        """
        self._check_block(start, stop)
        if self._lease is not None:
            self._lease.check()
        m = stop - start
        emb = np.asarray(embedding)
        shape = (m,) + tuple(self.embedding.shape[1:])
        if emb.shape != shape:
            raise StoreError(f"key {self.key}: block [{start}, {stop}) needs embedding of shape {shape}, got {emb.shape}")
        status = np.asarray(status, np.int8).reshape(m).copy()
        messages = np.array([""] * m if messages is None else ["" if x is None else str(x) for x in messages], dtype=object)
        hashes = np.array([""] * m if input_hash is None else ["" if x is None else str(x) for x in input_hash], dtype=object)
        if len(messages) != m or len(hashes) != m:
            raise StoreError(f"key {self.key}: messages and input_hash need {m} entries for block [{start}, {stop})")

        with np.errstate(over="ignore", invalid="ignore"):
            emb = emb.astype(self.embedding.dtype, copy=True)
        flat = emb.reshape(m, -1)
        ok = status == Status.OK
        bad = ok & ~np.isfinite(flat).all(axis=1)
        if bad.any():
            status[bad] = Status.NONFINITE
            messages[bad] = f"non-finite values once stored as {self.embedding.dtype}"
            log.warning("key %s: %d rows in [%d, %d) are not finite; marked nonfinite", self.key, int(bad.sum()), start, stop)
        flat[status != Status.OK] = np.nan

        old_done = self.arrays["done"][start:stop]
        if old_done.any():  # keep committed rows exactly as they are
            keep = np.flatnonzero(old_done)
            emb[keep] = self.embedding[start:stop][keep]
            status[keep] = Status.OK
            messages[keep] = self.arrays["message"][start:stop][keep]
            hashes[keep] = self.arrays["input_hash"][start:stop][keep]

        chunks = range(start // self.chunk_rows, -(-stop // self.chunk_rows))
        try:
            self.ledger.begin(chunks)  # digests unknown until the block is written
            self.embedding[start:stop] = emb
            self.arrays["status"][start:stop] = status
            self.arrays["message"][start:stop] = messages.astype(str)
            self.arrays["input_hash"][start:stop] = hashes.astype(str)
            # the data must be on disk before `done` says so; `done` itself, the ledger message and the input
            # hash need no fsync (a lost `done` only means recomputing the rows; a lost hash reads as unknown)
            self._sync(start, stop, ("embedding", "status"))
            done = status == Status.OK
            self.arrays["done"][start:stop] = done
            self.ledger.record(chunks)
        except OSError as exc:
            raise StoreError(f"key {self.key}: writing rows [{start}, {stop}) failed ({exc}); none of them were "
                             "marked done. Free disk space (or fix the store) and rerun to resume.") from exc
        new = int((done & ~old_done).sum())
        self.rows_written += new
        return new

    def invalidate(self, rows) -> None:
        """Mark ``rows`` (of this shard) not done, e.g. because their media changed; the next run recomputes them."""
        rows = np.unique(np.asarray(rows, np.int64))
        if not len(rows):
            return
        lo, hi = self.row_range
        if rows.min() < lo or rows.max() >= hi:
            raise StoreError(f"key {self.key}: rows to invalidate lie outside this writer's shard [{lo}, {hi})")
        done = self.arrays["done"][...]
        status = self.arrays["status"][...]
        done[rows] = False
        status[rows] = Status.PENDING
        for c in np.unique(rows // self.chunk_rows):
            a, b = int(c) * self.chunk_rows, min((int(c) + 1) * self.chunk_rows, self.n_rows)
            self.ledger.begin([c])
            self.arrays["done"][a:b] = done[a:b]
            self.arrays["status"][a:b] = status[a:b]
            self.ledger.record([c])

    def _finish_ledger(self) -> None:
        """Record the digests of this shard's row-chunks whose write was interrupted between marking their ledger
        entry unknown and recording it (a killed writer; we hold the lease on them)."""
        if not self.ledger.present or not len(self._chunks):
            return
        lo, hi = self._chunks.start, self._chunks.stop
        table = self.ledger.arr[lo:hi]
        left = [lo + i for i, row in enumerate(table) if row[0] == lo + i and (row[1:] == UNKNOWN).all()]
        if left:
            log.info("key %s: recording the digests of %d row-chunk(s) an interrupted write left unrecorded",
                     self.key, len(left))
            self.ledger.record(left)

    def _sync(self, start: int, stop: int, names) -> None:
        """fsync the chunk files of rows [start, stop) so ``done`` never reaches disk before the data (local stores)."""
        root = self.store.local_path
        if not self._fsync or root is None:
            return
        for name in names:
            arr = self.arrays[name]
            adir = array_dir(root, arr.path)
            for c in range(start // self.chunk_rows, -(-stop // self.chunk_rows)):
                p: Path = chunk_file(adir, c, arr.ndim)
                try:
                    fd = os.open(p, os.O_RDONLY)
                except FileNotFoundError:
                    continue  # all fill value: zarr wrote nothing
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _remove_orphans(self, root: Path) -> None:
        """Delete temp files an interrupted write left in this shard's chunks (we hold the lease on them)."""
        for name in ("embedding", "done", "status", "message", "input_hash"):
            adir = array_dir(root, self.arrays[name].path)
            for c in self._chunks:
                for p in partial_files(adir, c):
                    log.info("removing temp file of an interrupted write: %s", p)
                    p.unlink(missing_ok=True)

    def close(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
