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
from tests.cache.helpers import age_files, make_samples

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
    age_files(root)
    forget_verified()
    return root, key, x


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
    age_files(fresh, -60.0)   # modified "less than 2 s ago" whatever the load: a minute ahead (a skewed clock)
    store = open_store(fresh)
    rows = np.arange(0, 176, 5)
    store.read(key, rows=rows)
    seen = _opened(monkeypatch)
    np.testing.assert_array_equal(store.read(key, rows=rows).X, x[rows])
    small = len(_small_files(seen, key))
    chunks = [p for p in seen if f"{key}{os.sep}embedding{os.sep}" in p]
    assert small == 2 * 6 and len(chunks) == 6, (small, chunks)   # read and checked again, all of them
    age_files(fresh)
    store.read(key, rows=rows)      # kept now
    seen.clear()
    np.testing.assert_array_equal(store.read(key, rows=rows).X, x[rows])
    assert [p for p in seen if os.path.exists(p)] == []   # (the never-written row-chunks are looked for again)


def test_a_kept_done_chunk_whose_ledger_digest_changed_is_read_again_and_refused(store_key, tmp_path):
    """The digest the ledger records for a position is compared with a kept chunk's CRC on every read: a ledger
    entry rewritten to name another CRC (a valid chunk moved, a rewrite half done) sends the read to the file,
    which does not match either: refused."""
    import google_crc32c

    root, key, x = store_key
    copy = tmp_path / "copy.zarr"
    shutil.copytree(root, copy)
    age_files(copy)
    store = open_store(copy)
    rows = np.arange(0, 176, 3)   # 6 of 13 row-chunks: done and ledger read whole, done kept
    np.testing.assert_array_equal(store.read(key, rows=rows).X, x[rows])
    entry = copy / "features" / key / "digests" / "c" / "2" / "0"
    raw = entry.read_bytes()
    table = np.frombuffer(raw[:-4], "<i8").copy()
    table[2] ^= 1                 # column "done": another CRC
    payload = table.tobytes()
    tmp = entry.with_name("0.new")
    tmp.write_bytes(payload + google_crc32c.value(payload).to_bytes(4, "little"))
    os.replace(tmp, entry)        # as zarr writes: a new file
    with pytest.raises(CorruptChunk, match="done chunk 2 is not the chunk written at this position"):
        store.read(key, rows=rows)
