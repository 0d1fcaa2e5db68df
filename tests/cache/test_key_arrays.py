"""FeatureStore.add_key_array: a per-row array beside a key's own, chunked like them and checksummed."""

from __future__ import annotations

import numpy as np
import pytest

from mixsig.cache import open_store
from mixsig.errors import CorruptChunk, StoreError
from tests.cache.helpers import D, fill_key, prov


def test_add_key_array_round_trip_fill_and_attrs(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    fold = np.where(np.arange(50) < 30, np.arange(50) % 3, -1)
    store.add_key_array(key, "fold", "int8", -1, fold, attrs={"fold_models": {"-1": "all"}})
    got = store.read_array(key, "fold")
    assert got.dtype == np.int8 and got.tolist() == fold.tolist()
    reopened = open_store(store.url)
    assert reopened.read_array(key, "fold").tolist() == fold.tolist()
    g = reopened.key_group(key)
    assert g["fold"].chunks == (16,) and g.attrs["fold_models"] == {"-1": "all"}
    assert g.attrs["provenance"] == store.provenance(key)        # the key's own attrs untouched
    store.add_key_array(key, "weight", "float32", np.nan)
    assert np.isnan(store.read_array(key, "weight")).all()
    assert reopened.read(key).X.shape == (50, D)                 # the key reads as before


def test_add_key_array_replaces_only_with_overwrite(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    store.add_key_array(key, "fold", "int8", -1, np.zeros(50, np.int8))
    assert store.read_array(key, "fold").sum() == 0               # opened (cached) before the replacement
    with pytest.raises(StoreError, match="already has an array 'fold'; pass overwrite=True"):
        store.add_key_array(key, "fold", "int8", -1, np.ones(50, np.int8))
    store.add_key_array(key, "fold", "int16", -1, np.full(50, 1000), overwrite=True)   # another dtype
    got = store.read_array(key, "fold")
    assert got.dtype == np.int16 and got.tolist() == [1000] * 50


def test_add_key_array_refusals_name_the_problem(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    with pytest.raises(StoreError, match="cannot add an array named 'done'"):
        store.add_key_array(key, "done", "bool", False)
    with pytest.raises(StoreError, match="dtype must be bool, int, uint or float"):
        store.add_key_array(key, "names", "U4", "")
    with pytest.raises(StoreError, match=r"values must be \[50\]"):
        store.add_key_array(key, "fold", "int8", -1, np.zeros(49))
    with pytest.raises(StoreError, match="row 3 value 300 does not fit dtype int8"):
        store.add_key_array(key, "fold", "int8", -1, np.where(np.arange(50) == 3, 300, 0))
    with pytest.raises(StoreError, match=r"attrs \['modality'\] are the store's own"):
        store.add_key_array(key, "fold", "int8", -1, attrs={"modality": "audio"})
    with pytest.raises(StoreError, match="no feature key"):
        store.add_key_array("text.nope.cls.000000000000", "fold", "int8", -1)
    with pytest.raises(StoreError, match=r"has no array 'fold'; its arrays: \['digests', 'done', 'embedding'"):
        store.read_array(key, "fold")
    with pytest.raises(StoreError, match="read-only"):
        open_store(store.url).add_key_array(key, "fold", "int8", -1)


def test_added_array_is_checksummed(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=16)
    store.add_key_array(key, "fold", "int8", -1, np.arange(50) % 4)
    chunk = tmp_path / "store.zarr" / "features" / key / "fold" / "c" / "1"
    data = bytearray(chunk.read_bytes())
    data[0] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptChunk, match="fold"):
        open_store(store.url).read_array(key, "fold")
