"""Small chunk files (done, status, the digest ledger) checked once by this process are kept while their file is
the same file (mixsig/cache/_small_seen.py): a repeat read opens none of them, a rewrite or an in-place change
that moves the modification time is read and checked again, forget_verified() forgets them, and files written
moments before a read (small or embedding chunks) are not kept at all."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from mixsig.cache import Provenance, Status, create_store, forget_verified, open_store
from mixsig.errors import CorruptChunk
from tests.cache.helpers import make_samples

N, D, CR = 400, 8, 32   # 13 row-chunks


@pytest.fixture()
def store_key(tmp_path):
    """A key whose rows 0..175 are done, 176..191 failed (their row-chunk's files written) and 192..399 not yet
    written; returns (root, key, x)."""
    root = tmp_path / "s.zarr"
    store = create_store(root, make_samples(N))
    key = store.create_key(Provenance("text", "m", "none", "cls"), D, chunk_rows=CR)
    x = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
    with store.writer(key, fsync=False) as w:
        for lo, hi in w.blocks():
            if hi <= 192:
                status = np.full(hi - lo, Status.OK, np.int8)
                status[max(0, 176 - lo):] = Status.DECODE_ERROR
                w.write_block(lo, hi, x[lo:hi], status)
    _age(root)
    forget_verified()
    return root, key, x


def _age(root, seconds: float = 10.0) -> None:
    """Every file under ``root`` last modified ``seconds`` ago (files written moments before a read are not kept)."""
    import time

    then = time.time_ns() - int(seconds * 1e9)
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), ns=(then, then))


def _opened(monkeypatch):
    """Paths os.open is called with by the chunk reader, from now on."""
    import mixsig.cache._chunks as chunks

    seen: list[str] = []
    real = os.open

    def spy(path, *a, **k):
        seen.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(chunks.os, "open", spy)
    return seen


def _small_files(paths, key):
    """The done and ledger chunk files opened (those of row-chunks never written do not exist: looked for again)."""
    return [p for p in paths if (f"{key}{os.sep}done{os.sep}" in p or f"{key}{os.sep}digests{os.sep}" in p)
            and os.path.exists(p)]


def test_a_repeat_read_opens_no_done_or_ledger_file(store_key, monkeypatch):
    root, key, x = store_key
    store = open_store(root)
    rows = np.arange(0, N, 3)
    first = store.read(key, rows=rows)
    seen = _opened(monkeypatch)
    again = store.read(key, rows=rows)
    assert _small_files(seen, key) == [], "\n".join(seen)
    np.testing.assert_array_equal(again.rows, first.rows)
    np.testing.assert_array_equal(again.X, x[first.rows])
    forget_verified()   # forgotten: read and checked again
    store.read(key, rows=rows)
    assert len(_small_files(seen, key)) == 2 * 6   # done and ledger, one file per written row-chunk


def test_rows_written_after_a_read_are_seen_by_the_next_read(store_key):
    root, key, x = store_key
    store = open_store(root)
    before = store.read(key, rows=np.arange(N))
    assert before.excluded == N - 176 and before.rows.max() == 175
    with open_store(root, mode="r+").writer(key, fsync=False) as w:   # another writer: new done and ledger files
        for lo, hi in w.blocks():
            if lo >= 160:   # rewrites row-chunk 5's done and ledger files (read above), writes the rest
                w.write_block(lo, hi, x[lo:hi], np.full(hi - lo, Status.OK, np.int8))
    after = store.read(key, rows=np.arange(N))
    assert after.excluded == 0
    np.testing.assert_array_equal(after.X, x)


def test_a_done_chunk_changed_in_place_is_refused_once_its_file_changed(store_key, tmp_path):
    root, key, x = store_key
    copy = tmp_path / "copy.zarr"
    shutil.copytree(root, copy)
    store = open_store(copy)
    np.testing.assert_array_equal(store.read(key, rows=np.arange(0, 100)).X, x[:100])
    path = copy / "features" / key / "done" / "c" / "1"
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))   # same inode
    # the same identity (a foreign in-place write within one clock tick): this process keeps what it checked ...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    np.testing.assert_array_equal(store.read(key, rows=np.arange(0, 100)).X, x[:100])
    # ... until its identity changes, or forget_verified(); then the flip is caught
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(CorruptChunk, match="done chunk 1"):
        store.read(key, rows=np.arange(0, 100))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    forget_verified()
    with pytest.raises(CorruptChunk, match="done chunk 1"):
        store.read(key, rows=np.arange(0, 100))


def test_files_written_moments_ago_are_read_again_on_every_read(store_key, tmp_path, monkeypatch):
    """A file modified less than 2 s before it was read is not kept, small or embedding chunk: an inode number is
    reused at once and a coarse clock could give a rewrite the identity of the version read."""
    root, key, x = store_key
    fresh = tmp_path / "fresh.zarr"
    shutil.copytree(root, fresh)
    now = __import__("time").time_ns()
    for dirpath, _, names in os.walk(fresh):   # as if written just now
        for name in names:
            os.utime(os.path.join(dirpath, name), ns=(now, now))
    store = open_store(fresh)
    rows = np.arange(0, 176, 5)
    store.read(key, rows=rows)
    seen = _opened(monkeypatch)
    np.testing.assert_array_equal(store.read(key, rows=rows).X, x[rows])
    small = len(_small_files(seen, key))
    chunks = [p for p in seen if f"{key}{os.sep}embedding{os.sep}" in p]
    assert small == 2 * 6 and len(chunks) == 6, (small, chunks)   # read and checked again, all of them
    _age(fresh)
    store.read(key, rows=rows)      # kept now
    seen.clear()
    np.testing.assert_array_equal(store.read(key, rows=rows).X, x[rows])
    assert [p for p in seen if os.path.exists(p)] == []   # (the never-written row-chunks are looked for again)
