"""Reads of keys large enough for the direct, multi-threaded chunk path (> 8 MB), and faults met on that path."""

import numpy as np
import pytest

from mixsig.cache import Provenance, Status, create_store, open_store
from mixsig.errors import CorruptChunk
from tests.cache.helpers import make_samples

N, D = 3000, 768  # 9.2 MB of float32: read by several threads, 256 rows (768 KiB) per chunk


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A store with a float32 and a float16 key of N x D, all rows done except rows 5 and 2900."""
    root = tmp_path_factory.mktemp("big") / "store.zarr"
    store = create_store(root, make_samples(N))
    x = np.random.default_rng(0).standard_normal((N, D), dtype=np.float32)
    keys = {}
    for dtype in ("float32", "float16"):
        key = store.create_key(Provenance("text", "big", "none", "cls", dtype=dtype), D)
        with store.writer(key, fsync=False) as w:
            for lo, hi in w.blocks():
                st = np.full(hi - lo, Status.OK, np.int8)
                st[[r - lo for r in (5, 2900) if lo <= r < hi]] = Status.DECODE_ERROR
                w.write_block(lo, hi, x[lo:hi], st)
        keys[dtype] = key
    return root, keys, x


def _copy(big, tmp_path):
    import shutil

    root, keys, x = big
    shutil.copytree(root, tmp_path / "store.zarr")
    return open_store(tmp_path / "store.zarr"), tmp_path / "store.zarr", keys, x


def test_large_reads_equal_what_was_written(big):
    root, keys, x = big
    store = open_store(root)
    ok = np.setdiff1d(np.arange(N), [5, 2900])
    view = store.read(keys["float32"])
    assert view.excluded == 2 and np.array_equal(view.rows, ok)
    np.testing.assert_array_equal(view.X, x[ok])
    full = store.read_array(keys["float32"], "embedding")
    np.testing.assert_array_equal(full[ok], x[ok])
    assert full.flags.c_contiguous and full.flags.writeable
    assert np.isnan(full[[5, 2900]]).all()  # failed rows were never written
    some = np.array([0, 255, 256, 1777, 2999])
    np.testing.assert_array_equal(store.read(keys["float32"], rows=some).X, x[some])
    half = store.read(keys["float16"])
    assert half.X.dtype == np.float32
    np.testing.assert_array_equal(half.X, x[ok].astype(np.float16).astype(np.float32))
    train = store.read(keys["float32"], split="train")
    np.testing.assert_array_equal(train.X, x[train.rows])


@pytest.mark.parametrize("array, chunk", [("embedding", 0), ("embedding", 7), ("embedding", 11), ("done", 6)])
def test_a_flipped_bit_in_any_chunk_fails_the_read_naming_it(big, tmp_path, array, chunk):
    store, root, keys, _ = _copy(big, tmp_path)
    key = keys["float32"]
    path = root / "features" / key / array / "c" / str(chunk)
    path = path / "0" if array == "embedding" else path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptChunk, match=rf"{array} chunk {chunk}: .*CRC32C"):
        store.read(key)
    with pytest.raises(CorruptChunk, match=rf"chunk {chunk}"):
        store.read_array(key, array)


def test_truncated_and_missing_large_chunks(big, tmp_path):
    store, root, keys, x = _copy(big, tmp_path)
    key = keys["float32"]
    chunk = root / "features" / key / "embedding" / "c" / "3" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-100])
    with pytest.raises(CorruptChunk, match="chunk 3: .*bytes, expected"):
        store.read(key)
    chunk.unlink()  # a chunk deleted after it was written: its recorded digest says it is missing
    with pytest.raises(CorruptChunk, match="chunk 3 is missing"):
        store.read_array(key, "embedding")
    with pytest.raises(CorruptChunk, match="chunk 3 is missing"):
        store.read(key, rows=np.arange(3 * 256, 3 * 256 + 10))


def _child_reads(root, key, expected_sum, conn):
    conn.send(float(open_store(root).read(key).X.sum(dtype=np.float64)) == expected_sum)


def test_a_forked_child_reads_after_the_parent_did(big):
    """The read threads belong to one process: a child forked after a parallel read (DataLoader workers, Optuna
    processes) gets its own instead of waiting forever on the parent's."""
    import multiprocessing as mp

    root, keys, _ = big
    total = float(open_store(root).read(keys["float32"]).X.sum(dtype=np.float64))
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_child_reads, args=(root, keys["float32"], total, child))
    p.start()
    assert parent.poll(30), "the child's read did not finish"
    assert parent.recv() is True
    p.join(10)
