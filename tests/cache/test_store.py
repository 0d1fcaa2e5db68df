import numpy as np
import pytest
import zarr
from tests.cache.helpers import D, fill_key, make_samples, prov, row_values

from mixsig.cache import Samples, Status, create_store, open_store
from mixsig.errors import ProvenanceMismatch, StoreError


def test_samples_round_trip(store, tmp_path):
    s = open_store(tmp_path / "store.zarr").samples
    ref = make_samples()
    assert s.ids.tolist() == ref.ids.tolist()
    assert s.split.tolist() == ref.split.tolist()
    np.testing.assert_array_equal(s.label, ref.label)
    np.testing.assert_array_equal(s.votes, ref.votes)
    np.testing.assert_array_equal(s.votes_by_condition["text"], ref.votes_by_condition["text"])
    assert s.classes == ("empathetic", "neutral")
    assert s.content_hash["text"][3] == f"{3:016x}"
    assert s.split_hash() == ref.split_hash()
    assert s.rows("val+test").tolist() == list(range(30, 50))
    with pytest.raises(StoreError, match="split 'dev' has no rows"):
        s.rows("dev")


def test_key_is_readable_prefix_plus_hash_and_changes_with_provenance():
    a, b = prov(), prov(preprocessing={"max_length": 64})
    assert a.key().startswith("text.tiny-roberta.cls.") and len(a.key().split(".")[-1]) == 12
    assert a.key() == prov().key()
    assert a.key() != b.key()
    assert prov(pooling="mean").key().startswith("text.tiny-roberta.mean.")


def test_write_read_and_not_done_rows_are_excluded(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key, rows_fail=[3])
    view = store.read(key, split="train")
    assert view.excluded == 1 and 3 not in view.rows.tolist()
    np.testing.assert_array_equal(view.X, row_values(view.rows))
    assert view.ids.tolist() == [f"s{r:03d}" for r in view.rows]
    info = store.key_info(key)
    assert info["done"] == 49 and info["failed"] == 1 and info["status"]["decode_error"] == 1
    assert np.isnan(store.read(key, rows=[3], only_done=False).X).all()
    some = np.array([1, 17, 40, 49])
    np.testing.assert_array_equal(store.read(key, rows=some).X, row_values(some))


def test_changed_provenance_makes_a_new_key_and_leaves_the_old_one(store):
    old = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, old)
    before = {n: store.read_array(old, n) for n in ("embedding", "done", "status")}
    new = store.create_key(prov(preprocessing={"max_length": 64}), D, chunk_rows=16)
    assert new != old and store.keys() == sorted([old, new])
    with store.writer(new) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, np.zeros((hi - lo, D)), np.full(hi - lo, Status.OK))
    for n, arr in before.items():
        np.testing.assert_array_equal(store.read_array(old, n), arr)
    # asking for the same key with a different record is refused, naming the difference
    g = store.key_group(old)
    p = dict(g.attrs["provenance"])
    p["pooling"] = "mean"
    g.attrs["provenance"] = p
    with pytest.raises(ProvenanceMismatch, match="pooling"):
        store.create_key(prov(), D, chunk_rows=16)


def test_store_opens_with_plain_zarr(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    g = zarr.open_group(str(tmp_path / "store.zarr"), mode="r")
    assert g["samples/id"][2] == "s002"
    emb = g[f"features/{key}/embedding"][...]
    np.testing.assert_array_equal(emb, row_values(range(50)))
    assert g[f"features/{key}/done"][...].all()
    assert g[f"features/{key}"].attrs["provenance"]["pooling"] == "cls"


def test_float16_keys_and_three_dim_keys(store):
    key = store.create_key(prov(dtype="float16"), (3, 4), chunk_rows=16)
    x = np.random.default_rng(0).standard_normal((50, 3, 4)).astype(np.float32)
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, x[lo:hi], np.full(hi - lo, Status.OK))
    view = store.read(key)
    assert view.X.shape == (50, 3, 4) and view.X.dtype == np.float32
    np.testing.assert_array_equal(view.X, x.astype(np.float16).astype(np.float32))


def test_open_store_errors(tmp_path):
    with pytest.raises(StoreError, match="no mixsig store"):
        open_store(tmp_path / "nothing.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a mixsig store"):
        open_store(tmp_path / "plain.zarr")
    create_store(tmp_path / "s.zarr", make_samples(10))
    with pytest.raises(StoreError, match="a store exists"):
        create_store(tmp_path / "s.zarr", make_samples(10))


def test_duplicate_ids_refused():
    with pytest.raises(StoreError, match="duplicate ids"):
        Samples(ids=["a", "a"], split=["train", "train"], label=[0, 1], classes=("x", "y"))


def test_store_moved_keeps_working(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key, rows_fail=[5])
    moved = tmp_path / "elsewhere.zarr"
    (tmp_path / "store.zarr").rename(moved)
    s2 = open_store(moved, mode="r+")
    with s2.writer(key) as w:
        assert w.pending_rows().tolist() == [5]
        (lo, hi), = w.blocks()
        w.write_block(lo, hi, row_values(range(lo, hi)), np.full(hi - lo, Status.OK))
    np.testing.assert_array_equal(s2.read(key).X, row_values(range(50)))


def test_runs_round_trip(store):
    from mixsig.cache import RunSubset

    probs = np.random.default_rng(1).random((2, 50, 2)).astype(np.float32)
    probs /= probs.sum(axis=2, keepdims=True)  # a run's probabilities are distributions (checked on read)
    store.write_run("r1", {"head": "gated", "modalities": ["text", "audio"]},
                    {"text": RunSubset(probs), "audio": RunSubset(probs), "text+audio": RunSubset(probs, gates=probs[..., :2])})
    run = store.read_run("r1")
    assert list(run.subsets) == ["text", "audio", "text+audio"] and run.full_subset == "text+audio"
    np.testing.assert_array_equal(run.subsets["text+audio"].gates, probs[..., :2])
    with pytest.raises(StoreError, match="already exists"):
        store.write_run("r1", {}, {"text": RunSubset(probs)})
    with pytest.raises(StoreError, match="no run named"):
        store.read_run("nope")
