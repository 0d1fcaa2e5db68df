"""Random-row reads (a mini-batch loader's access) and chunk-aligned batches (mixsig/cache/_stream.py): exactly the
rows asked for, in the order asked, each touched chunk checksummed; untouched chunks are not read."""

from __future__ import annotations

import numpy as np
import pytest

from mixsig.cache import Provenance, Status, create_store, iter_batches, open_store
from mixsig.errors import CorruptChunk
from tests.cache.helpers import age_files, make_samples

N, D, CR = 1000, 24, 64   # 16 chunks, the last partial (1000 = 15 * 64 + 40)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A float16 and a float32 key of N x D, rows 5 and 700 failed (not done); returns (root, {dtype: key}, x)."""
    root = tmp_path_factory.mktemp("rr") / "s.zarr"
    store = create_store(root, make_samples(N))
    x = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
    keys = {}
    for dtype in ("float32", "float16"):
        keys[dtype] = key = store.create_key(Provenance("text", f"m-{dtype}", "none", "cls", dtype=dtype), D,
                                             chunk_rows=CR)
        with store.writer(key, fsync=False) as w:
            for lo, hi in w.blocks():
                st = np.full(hi - lo, Status.OK, np.int8)
                st[[r - lo for r in (5, 700) if lo <= r < hi]] = Status.DECODE_ERROR
                w.write_block(lo, hi, x[lo:hi], st)
    return root, keys, x


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_random_rows_any_order_equal_numpy_indexing(filled, dtype):
    root, keys, x = filled
    store = open_store(root)
    want = x.astype(dtype).astype(np.float32)
    want[[5, 700]] = np.nan  # failed rows are stored as NaN (assert_array_equal: NaN == NaN)
    rng = np.random.default_rng(1)
    for pick in (rng.choice(N, 170, replace=False),                    # unsorted
                 np.sort(rng.choice(N, 900, replace=False)),          # sorted, every chunk touched
                 np.array([999, 3, 3, 998, 64, 63, 700]),            # repeats, the partial last chunk, a failed row
                 np.array([17])):
        view = store.read(keys[dtype], rows=pick, only_done=False)
        assert view.X.dtype == np.float32
        np.testing.assert_array_equal(view.rows, pick)
        np.testing.assert_array_equal(view.X, want[pick])
    view = store.read(keys[dtype], rows=np.array([700, 4, 5, 6]))  # rows not done left out, order kept
    np.testing.assert_array_equal(view.rows, [4, 6])
    np.testing.assert_array_equal(view.X, want[[4, 6]])
    assert view.excluded == 2


def _flip(root, key, chunk: int) -> None:
    path = root / "features" / key / "embedding" / "c" / str(chunk) / "0"
    data = bytearray(path.read_bytes())
    data[10] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_a_touched_chunk_is_refused_untouched_ones_not_read(tmp_path, filled):
    import shutil

    root = tmp_path / "copy.zarr"
    shutil.copytree(filled[0], root)
    key, x = filled[1]["float32"], filled[2]
    _flip(root, key, 3)                           # rows 192..255
    store = open_store(root)
    with pytest.raises(CorruptChunk, match=r"chunk 3: .*CRC32C.*mixsig cache verify"):
        store.read(key, rows=np.array([900, 200, 1]))
    ok = np.array([c * CR + 7 for c in range(16) if c != 3][::-1])   # every chunk but the flipped one
    np.testing.assert_array_equal(store.read(key, rows=ok).X, x[ok])


def test_a_chunk_copied_to_another_position_is_refused(tmp_path, filled):
    import shutil

    root = tmp_path / "copy.zarr"
    shutil.copytree(filled[0], root)
    key = filled[1]["float32"]
    c = root / "features" / key / "embedding" / "c"
    shutil.copy(c / "1" / "0", c / "2" / "0")     # a valid chunk in the wrong place: its CRC checks out
    with pytest.raises(CorruptChunk, match="chunk 2"):
        open_store(root).read(key, rows=np.array([130, 5]))


def test_iter_batches_chunk_aligned_and_equal_to_one_read(filled):
    root, keys, x = filled
    store = open_store(root)
    key = keys["float32"]
    rng = np.random.default_rng(2)
    pick = rng.choice(N, 600, replace=False)
    batches = list(iter_batches(store, key, rows=pick, batch_rows=150, prefetch=2))
    got_rows = np.concatenate([b.rows for b in batches])
    # every done row of pick exactly once; each batch covers whole chunks (no chunk split between two batches)
    assert sorted(got_rows.tolist()) == sorted(set(pick.tolist()) - {5, 700})
    chunk_sets = [set((b.rows // CR).tolist()) for b in batches]
    assert all(not (a & b) for i, a in enumerate(chunk_sets) for b in chunk_sets[i + 1:])
    assert all(len(b.rows) <= 150 + CR for b in batches) and len(batches) > 3
    for b in batches:
        np.testing.assert_array_equal(b.X, x[b.rows])
    whole = list(iter_batches(store, key, batch_rows=10_000))
    assert len(whole) == 1 and np.array_equal(whole[0].rows, np.setdiff1d(np.arange(N), [5, 700]))


def test_iter_batches_hands_a_read_error_to_the_caller(tmp_path, filled):
    import shutil

    root = tmp_path / "copy.zarr"
    shutil.copytree(filled[0], root)
    key = filled[1]["float32"]
    _flip(root, key, 10)
    it = iter_batches(open_store(root), key, batch_rows=CR)
    with pytest.raises(CorruptChunk, match="chunk 10"):
        for _ in it:
            pass


def test_a_chunk_changed_after_a_read_is_checked_again(tmp_path, filled):
    """Chunks verified by an earlier read are only re-checksummed when their file changed: a bit flipped in place
    (same inode, new mtime) or a chunk renamed into place (new inode, as zarr writes) is refused on the next read."""
    import os
    import shutil

    root = tmp_path / "copy.zarr"
    shutil.copytree(filled[0], root)
    age_files(root)                               # else written moments ago: checked on every read, none kept
    key, x = filled[1]["float32"], filled[2]
    store = open_store(root)
    pick = np.array([200, 300, 7])                # chunks 3, 4, 0
    np.testing.assert_array_equal(store.read(key, rows=pick).X, x[pick])   # verified now
    np.testing.assert_array_equal(store.read(key, rows=pick).X, x[pick])   # from the verified chunks
    _flip(root, key, 3)
    c3 = root / "features" / key / "embedding" / "c" / "3" / "0"
    st = os.stat(c3)                              # the in-place write's mtime, a second later whatever the clock tick
    os.utime(c3, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(CorruptChunk, match="chunk 3: .*CRC32C"):
        store.read(key, rows=pick)
    c = root / "features" / key / "embedding" / "c"
    bad = bytearray((c / "4" / "0").read_bytes())
    bad[20] ^= 0x10
    (c / "4" / "new").write_bytes(bytes(bad))
    os.replace(c / "4" / "new", c / "4" / "0")
    with pytest.raises(CorruptChunk, match="chunk 4: .*CRC32C"):
        store.read(key, rows=np.array([300]))
