"""The checksummed fast read path (mixsig/cache/_chunks.py) returns exactly what zarr's own ``arr[...]`` reads, for
every dtype, shape and chunking mixsig writes: float32/float16 embeddings [N, D] and [N, L, D], bool ``done``,
int8 ``status``; chunk rows dividing N or not, one chunk larger than N, never-written chunks, and reads large
enough for the threaded direct path."""

import numpy as np
import pytest
import zarr

from mixsig.cache import Provenance, Status, create_store, open_store
from tests.cache.helpers import make_samples


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("n,dim,chunk_rows,skip", [
    (1000, 16, 100, ()),          # chunk rows divide N
    (1003, 16, 128, (2,)),        # last chunk partial, one chunk never written
    (37, 8, 64, ()),              # one chunk larger than N
    (300, (4, 6), 32, (0, 5)),    # [N, L, D] layers, two chunks never written
    (3000, 768, 256, (3,)),       # > 8 MB: threaded, straight into the output
])
def test_fast_read_equals_zarr_read(tmp_path, dtype, n, dim, chunk_rows, skip):
    root = tmp_path / "s.zarr"
    store = create_store(root, make_samples(n))
    key = store.create_key(Provenance("text", "m", "none", "cls", dtype=dtype), dim, chunk_rows=chunk_rows)
    shape = (n,) + (dim if isinstance(dim, tuple) else (dim,))
    x = np.random.default_rng(n).standard_normal(shape).astype(np.float32)
    with store.writer(key, fsync=False) as w:
        for lo, hi in w.blocks():
            if lo // chunk_rows in skip:
                continue
            st = np.full(hi - lo, Status.OK, np.int8)
            st[::7] = Status.DECODE_ERROR  # some rows failed: NaN, not done
            w.write_block(lo, hi, x[lo:hi], st)
    store = open_store(root)
    g = zarr.open_group(str(root), mode="r")[f"features/{key}"]
    for name in ("embedding", "done", "status"):
        want = g[name][...]
        got = store.read_array(key, name)
        if name == "embedding":
            want = want.astype(np.float32)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)  # NaNs compare equal here
    view = store.read(key, only_done=True)
    done = g["done"][...]
    np.testing.assert_array_equal(view.rows, np.flatnonzero(done))
    np.testing.assert_array_equal(view.X, g["embedding"][...].astype(np.float32)[done])
    rows = np.arange(0, n, 3)
    sub = store.read(key, rows=rows, only_done=False)
    np.testing.assert_array_equal(sub.X, g["embedding"][...].astype(np.float32)[rows])
