"""train_run over a store built with the cache API (`mixsig train` itself: tests/commands/test_train.py)."""

import numpy as np
import pytest
import zarr

from mixsig.errors import HeadError, StoreError
from mixsig.heads import modality_subsets, train_run
from tests.heads.helpers import make_store, shared_store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return shared_store(tmp_path_factory, "gappy")


@pytest.fixture(scope="module")
def gated_run(built):
    path, store, keys = built
    # the paper's architecture and recipe, 6 epochs instead of 15 to keep the test fast
    return train_run(store, "gated", keys, seeds=[0, 1], name="g", params={"epochs": 6})


def test_only_modality_a_carries_the_label(gated_run):
    m = gated_run.attrs["metrics"]
    assert list(m) == ["a", "b", "c", "a+b", "a+c", "b+c", "a+b+c"]
    for sub, by_split in m.items():
        f1 = by_split["test"]["macro_f1"]["mean"]
        if "a" in sub.split("+"):
            assert f1 >= 0.9, (sub, f1)
        else:
            assert 0.25 <= f1 <= 0.7, (sub, f1)     # chance level on 80 test rows
    # the collapse check may flag the noise-only subsets, never one with the signal
    assert all("a" not in e["subset"].split("+") for e in gated_run.attrs["collapsed"]), gated_run.attrs["collapsed"]
    att = gated_run.subsets["a+b+c"].attention          # [S, N, 3]
    mean_att = np.nanmean(att, axis=(0, 1))
    assert mean_att.argmax() == 0 and mean_att[0] > mean_att[1:].max(), mean_att


def test_run_layout_rows_and_attrs(built, gated_run):
    path, store, keys = built
    attrs = gated_run.attrs
    assert attrs["rows"]["excluded"] == 3 and attrs["rows"]["not_done"] == {"a": 0, "b": 2, "c": 1}
    assert attrs["rows"]["train"] == 159 and attrs["rows"]["val"] == 59
    assert attrs["seeds"] == [0, 1] and attrs["classes"] == ["neutral", "empathetic"] and attrs["source"] == "train"
    assert attrs["features"] == keys and attrs["modalities"] == ["a", "b", "c"]
    assert attrs["params"]["epochs"] == 6 and attrs["params"]["batch_size"] == 64
    assert attrs["split_hash"] == store.split_hash()
    # the keys a train run's attrs have had since before RunRecord; the stored attrs are the record's
    assert set(attrs) == {"head", "params", "features", "modalities", "seeds", "classes", "split_hash", "metrics",
                          "soft_labels", "class_weight", "rows", "fits", "train_seconds", "collapsed", "group_leak",
                          "modality_mismatch", "source", "created", "mixsig_version", "complete",
                          "versions", "selection_splits", "in_sample_keys"}
    stored = store.read_run("g")
    assert stored.attrs == attrs and stored.record.to_attrs() == {k: v for k, v in attrs.items() if k != "complete"}
    acc = attrs["metrics"]["a"]["test"]["accuracy"]
    assert len(acc["per_seed"]) == 2 and acc["mean"] == pytest.approx(np.mean(acc["per_seed"]))
    assert acc["std"] == pytest.approx(np.std(acc["per_seed"], ddof=1))
    # plain zarr reads the run: 7 subsets x 2 seeds x 300 rows x 2 classes
    g = zarr.open_group(str(path), mode="r")["runs/g/subsets"]
    assert sorted(g.group_keys()) == sorted(["a", "b", "c", "a+b", "a+c", "b+c", "a+b+c"])
    for sub in g.group_keys():
        probs = g[f"{sub}/probs"][...]
        assert probs.shape == (2, 300, 2)
        assert np.isnan(probs[:, [3, 170, 250]]).all()
        rest = np.delete(probs, [3, 170, 250], axis=1)
        np.testing.assert_allclose(rest.sum(-1), 1.0, rtol=1e-5)
        assert g[f"{sub}/gates"].shape == (2, 300, sub.count("+") + 1)
    # the test split's metric is recomputed from the stored probabilities
    s = store.samples
    test = np.flatnonzero((s.split == "test") & ~np.isin(np.arange(300), [3, 170, 250]))
    p0 = g["a/probs"][0][test]
    assert np.mean(p0.argmax(1) == s.label[test]) == pytest.approx(acc["per_seed"][0])


def test_same_seed_twice_identical_run_arrays(built):
    path, store, keys = built
    two = {"a": keys["a"], "b": keys["b"]}
    first = train_run(store, "gated", two, seeds=[0, 1], name="d1", params={"epochs": 2})
    again = train_run(store, "gated", two, seeds=[0, 1], name="d2", params={"epochs": 2})
    assert not np.array_equal(first.subsets["a+b"].probs[0], first.subsets["a+b"].probs[1])  # seeds differ
    for sub, rs in first.subsets.items():
        for field in ("probs", "gates", "attention"):
            np.testing.assert_array_equal(getattr(again.subsets[sub], field), getattr(rs, field))


@pytest.mark.parametrize("head", ["logreg", "lightgbm"])
def test_other_heads_soft_labels_and_class_weight(built, head):
    path, store, keys = built
    params = {"n_estimators": 50} if head == "lightgbm" else None
    kw = dict(seeds=[0, 1], params=params)
    hard = train_run(store, head, {"a": keys["a"], "b": keys["b"]}, name=f"{head}-hard", **kw)
    soft = train_run(store, head, {"a": keys["a"]}, name=f"{head}-soft", soft_labels=True, **kw)
    cw = train_run(store, head, {"a": keys["a"]}, name=f"{head}-cw", soft_labels=True,
                   class_weight={"empathetic": 3.0}, **kw)
    assert list(hard.subsets) == ["a", "b", "a+b"] and hard.subsets["a"].probs.shape == (2, 300, 2)
    assert hard.subsets["a"].gates is None and hard.attrs["soft_labels"] is False and soft.attrs["soft_labels"]
    assert cw.attrs["class_weight"] == {"1": 3.0} and soft.attrs["rows"]["train_without_votes"] == 0
    test = store.samples.rows("test")
    p_hard, p_soft, p_cw = (np.nanmean(r.subsets["a"].probs[:, test], axis=(0, 1)) for r in (hard, soft, cw))
    conf = [np.nanmean(r.subsets["a"].probs[:, test].max(-1)) for r in (hard, soft)]
    assert conf[1] < conf[0] - 0.02            # vote shares (20% flipped votes) -> less confident than gold
    assert p_cw[1] > p_soft[1] + 0.02           # weighting class 1 raises its probability
    assert soft.attrs["metrics"]["a"]["test"]["macro_f1"]["mean"] >= 0.9


def test_bad_requests(built):
    path, store, keys = built
    with pytest.raises(StoreError, match="No feature key 'text.nope' .*Keys of that modality"):
        train_run(store, "gated", {"text": "text.nope"})
    with pytest.raises(HeadError, match="Unknown head 'tree'"):
        train_run(store, "tree", keys)
    with pytest.raises(StoreError, match="already exists"):
        train_run(store, "logreg", {"a": keys["a"]}, name="g")


def test_modality_subsets_order():
    assert modality_subsets(["text", "audio", "video"]) == [
        ("text",), ("audio",), ("video",), ("text", "audio"), ("text", "video"), ("audio", "video"),
        ("text", "audio", "video")]


def test_done_rows_holding_nan_are_refused(tmp_path):
    store, keys, X, y = make_store(tmp_path / "s.zarr", n_train=40, n_val=10, n_test=10)
    emb = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")[f"features/{keys['b']}/embedding"]
    emb[7, 0] = np.nan
    # written behind mixsig's back: leave the row-chunk's digests unrecorded (as an interrupted write would), so the
    # read gets to the rows instead of refusing a chunk that is not the one recorded (tests/cache/test_integrity.py)
    zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")[f"features/{keys['b']}/digests"][0] = [0, -1, -1, -1, -1, -1]
    with pytest.raises(StoreError, match=r"1 rows are marked done but hold NaN/Inf \(first: row 7, id 'r0007'\)"):
        train_run(store, "logreg", keys)
