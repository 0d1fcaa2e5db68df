"""train_run's fit observers: arrays they return per fit are stored with the run and read back, checked."""

import numpy as np
import pytest

from mixsig.cache import open_store
from mixsig.errors import StoreError
from mixsig.heads import train_run
from mixsig.cache import verify_store
from tests.heads.helpers import make_store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("observers") / "store.zarr"
    store, keys, X, y = make_store(path)
    return path, store, keys


def test_observer_arrays_are_stacked_over_seeds_and_read_back(built):
    path, store, keys = built
    seen = []

    def observer(rec):
        seen.append((rec.subset_name, rec.seed, rec.probs.shape, len(rec.data.used)))
        out = {"seed_plus/one": np.array([rec.seed, rec.seed_index + 1.0])}
        if rec.seed == 1:  # a seed that returns nothing for an array stays NaN there
            out["only_seed1"] = np.arange(3.0)
        return out

    train_run(store, "logreg", keys, seeds=[0, 1], name="obs", observers=[observer])
    assert len(seen) == 7 * 2 and all(s[2] == (s[3], 2) for s in seen)
    run = open_store(path).read_run("obs")
    for sub, rs in run.subsets.items():
        np.testing.assert_array_equal(rs.extra["seed_plus/one"], [[0, 1], [1, 2]])
        assert np.isnan(rs.extra["only_seed1"][0]).all()
        np.testing.assert_array_equal(rs.extra["only_seed1"][1], [0, 1, 2])
    report = verify_store(open_store(path))
    assert report.ok, report


def test_observer_path_that_escapes_is_refused_before_writing(built):
    path, store, keys = built
    with pytest.raises(StoreError, match="not allowed"):
        train_run(store, "logreg", {"a": keys["a"]}, seeds=[0], name="bad", observers=[lambda rec: {"../x": [1.0]}])
    assert "bad" not in open_store(path).runs()
