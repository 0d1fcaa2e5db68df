"""``FeatureStore.read(key, dtype=...)``: a float16 key read in its stored dtype (None / "stored") comes back as the
very float16 values written, on every read path (whole key, a split, chosen rows, a compressed key read through
zarr); the default stays float32."""

import numpy as np
import pytest

from mixsig.cache import Provenance, Status, create_store, open_store
from mixsig.errors import UsageError
from tests.cache.helpers import make_samples

N, L, D = 200, 3, 8
FAILED = 7  # a row written with a failed status: excluded from every read


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """``(store, {name: key}, x16)``: float16 [N, L, D] keys (plain and zstd-compressed) and a float32 [N, D] key."""
    root = tmp_path_factory.mktemp("dtype") / "store.zarr"
    store = create_store(root, make_samples(N))
    rng = np.random.default_rng(3)
    x16 = rng.standard_normal((N, L, D)).astype(np.float16)
    x32 = rng.standard_normal((N, D)).astype(np.float32)
    keys = {}
    for name, x, dim, dtype, comp in (("f16", x16, (L, D), "float16", None), ("zstd", x16, (L, D), "float16", "zstd"),
                                      ("f32", x32, D, "float32", None)):
        prov = Provenance("text", f"enc-{name}", "none", "cls", layers="all" if x.ndim == 3 else "last", dtype=dtype)
        keys[name] = store.create_key(prov, dim, chunk_rows=64, compressor=comp)
        with store.writer(keys[name], fsync=False) as w:
            for lo, hi in w.blocks():
                st = np.full(hi - lo, Status.OK, np.int8)
                if lo <= FAILED < hi:
                    st[FAILED - lo] = Status.DECODE_ERROR
                w.write_block(lo, hi, x[lo:hi], st)
    return open_store(root), keys, x16, x32


OK = np.setdiff1d(np.arange(N), [FAILED])


@pytest.mark.parametrize("name", ["f16", "zstd"])
@pytest.mark.parametrize("dtype", [None, "stored"])
def test_a_float16_key_read_in_its_stored_dtype_is_the_float16_written(stores, name, dtype):
    store, keys, x16, _ = stores
    whole = store.read(keys[name], dtype=dtype)
    assert whole.X.dtype == np.float16 and whole.excluded == 1
    np.testing.assert_array_equal(whole.X, x16[OK])
    train = store.read(keys[name], split="train", dtype=dtype)
    assert train.X.dtype == np.float16
    np.testing.assert_array_equal(train.X, x16[train.rows])
    some = np.array([150, 0, 63, 64, 199, 64])  # any order, repeats: gathered chunk by chunk
    picked = store.read(keys[name], rows=some, dtype=dtype)
    assert picked.X.dtype == np.float16
    np.testing.assert_array_equal(picked.X, x16[some])


def test_the_default_and_explicit_dtypes_convert(stores):
    store, keys, x16, x32 = stores
    default = store.read(keys["f16"])
    assert default.X.dtype == np.float32
    np.testing.assert_array_equal(default.X, x16[OK].astype(np.float32))
    assert store.read(keys["f32"], dtype=None).X.dtype == np.float32  # stored float32 stays float32
    half = store.read(keys["f32"], dtype="float16")
    assert half.X.dtype == np.float16
    np.testing.assert_array_equal(half.X, x32[OK].astype(np.float16))
    np.testing.assert_array_equal(store.read(keys["f16"], dtype=np.float16).X, x16[OK])


@pytest.mark.parametrize("bad", ["float64", "int8", "half-precision"])
def test_other_dtypes_are_refused_naming_the_choices(stores, bad):
    store, keys, _, _ = stores
    with pytest.raises(UsageError, match=rf"dtype={bad!r}\): dtype must be 'float32' \(the default\), 'float16', "
                                         r"or None / 'stored' for the key's stored dtype \(float16\)"):
        store.read(keys["f16"], dtype=bad)
