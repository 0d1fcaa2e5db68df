"""Fixtures of the studies tests: small synthetic stores written through the cache API."""

import pytest

from tests.synthetic import make_synthetic_store

@pytest.fixture
def small_store(tmp_path):
    """160 rows in 40 groups; text (2 keys: informative and noise), audio, video; 8-d features."""
    store, keys = make_synthetic_store(tmp_path / "store.zarr", n=160, n_groups=40,
                                       dims={"text": 8, "audio": 8, "video": 8},
                                       signal={"text": 2.0, "audio": 1.0, "video": 0.0}, extra_keys={"text": 0.0})
    return store, keys
