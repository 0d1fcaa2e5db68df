"""First reads of random rows (mixsig/cache/_stream.py): the GIL-free CRC32C gives google_crc32c's results, a
first read split over threads returns the right rows and still refuses a flipped bit, and a chunk file that cannot
be memory-mapped (``mmap`` failing as under ``ulimit -v``) is read and checksummed through a buffer instead of
crashing the read."""

from __future__ import annotations

import errno
import mmap
import os
import shutil

import google_crc32c
import numpy as np
import pytest

from mixsig.cache import Provenance, Status, create_store, open_store
from mixsig.cache._crc import RELEASES_GIL, crc32c
from mixsig.errors import CorruptChunk
from tests.cache.helpers import make_samples

N, D, CR = 4096, 512, 256   # 16 chunks of 512 KiB (8 MiB in all: a first read of every chunk uses the threads)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    root = tmp_path_factory.mktemp("fr") / "s.zarr"
    store = create_store(root, make_samples(N))
    x = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
    key = store.create_key(Provenance("text", "m", "none", "cls"), D, chunk_rows=CR)
    with store.writer(key, fsync=False) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, x[lo:hi], np.full(hi - lo, Status.OK, np.int8))
    return root, key, x


def _copy(tmp_path, filled):
    root = tmp_path / "copy.zarr"
    shutil.copytree(filled[0], root)
    return root


def _flip_in_place(root, key, chunk: int) -> None:
    """One bit of chunk ``chunk`` flipped in its file, its modification time put back (the file looks unchanged)."""
    path = root / "features" / key / "embedding" / "c" / str(chunk) / "0"
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 0x04]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("n", [0, 1, 9, 4099, (1 << 20) + 3])
def test_crc32c_equals_google_crc32c(n):
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    assert crc32c(data) == google_crc32c.value(data.tobytes())
    assert crc32c(data[1:]) == google_crc32c.value(data[1:].tobytes())   # an unaligned start


@pytest.mark.skipif(not RELEASES_GIL, reason="google_crc32c's C library not loadable here: crc32c is its value()")
def test_crc32c_refuses_a_strided_view():
    with pytest.raises(ValueError, match="C-contiguous"):
        crc32c(np.zeros(64, np.uint8)[::2])


def test_first_read_of_every_chunk_over_threads(tmp_path, filled):
    root = _copy(tmp_path, filled)
    key, x = filled[1], filled[2]
    pick = np.random.default_rng(1).permutation(N)[:1500]          # touches all 16 chunks, in random order
    np.testing.assert_array_equal(open_store(root).read(key, rows=pick).X, x[pick])
    root2 = tmp_path / "copy2.zarr"
    shutil.copytree(filled[0], root2)
    _flip_in_place(root2, key, 13)                                 # in the second half: another thread's part
    with pytest.raises(CorruptChunk, match=r"chunk 13: .*CRC32C"):
        open_store(root2).read(key, rows=pick)


@pytest.mark.parametrize("exc", [OSError(errno.ENOMEM, "Cannot allocate memory"), ValueError("cannot mmap")])
def test_a_chunk_that_cannot_be_mapped_is_read_through_a_buffer(tmp_path, filled, monkeypatch, exc):
    def refuse(*args, **kwargs):
        raise exc

    root = _copy(tmp_path, filled)
    key, x = filled[1], filled[2]
    monkeypatch.setattr(mmap, "mmap", refuse)
    store = open_store(root)
    pick = np.array([4000, 3, 700, 701, 2100, 3])
    for _ in range(2):                                             # nothing is kept verified: both reads check
        np.testing.assert_array_equal(store.read(key, rows=pick).X, x[pick])
    _flip_in_place(root, key, 2)                                   # rows 512..767; same size and mtime
    with pytest.raises(CorruptChunk, match=r"chunk 2: .*CRC32C"):
        store.read(key, rows=pick)
