"""train_run(save_heads=True) / `mixsig train --save-heads`: every fitted head (subset x seed) is kept in the store
as bytes arrays (safetensors / LightGBM text + head.json), read back by store.load_heads and giving, row for row,
the run's probabilities; pickles put in their place are refused without being unpickled; damaged bytes are
refused; a study's winner keeps its heads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from mixsig.cache import open_store
from mixsig.errors import CorruptChunk, HeadError, StoreError
from mixsig.heads import load_head, train_run
from tests.heads.helpers import make_store

SMALL_GATED = {"epochs": 2, "hidden": 16, "n_layers": 1, "proj_dim": 8, "att_dim": 8, "batch_size": 64}
HEADS = {"logreg": ({}, [0]), "lightgbm": ({"n_estimators": 15, "num_leaves": 4}, [0]), "gated": (SMALL_GATED, [0, 1])}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("save_heads") / "store.zarr"
    store, keys, X, y = make_store(path, n_train=80, n_val=30, n_test=40, not_done={"b": [5, 7]})
    return path, store, {"a": keys["a"], "b": keys["b"]}, X


# gated is slow-marked here: tests/commands/test_predict.py round-trips a gated run (2 seeds, gates) by default
@pytest.mark.parametrize("head", ["logreg", "lightgbm", pytest.param("gated", marks=pytest.mark.slow)])
def test_saved_heads_round_trip_row_for_row(built, head):
    path, store, keys, X = built
    params, seeds = HEADS[head]
    run = train_run(store, head, keys, seeds=seeds, params=params, name=f"kept-{head}", save_heads=True)
    assert run.attrs["saved_heads"] is True
    again = open_store(path)
    assert again.has_saved_heads(run.name) and again.read_run(run.name).attrs["saved_heads"] is True
    heads = again.load_heads(run.name, load_head)
    assert list(heads) == ["a", "b", "a+b"] and all(len(hs) == len(seeds) for hs in heads.values())
    stored = again.read_run(run.name)
    used = ~np.isnan(stored.subsets["a"].probs[0, :, 0])
    assert used.sum() == len(used) - 2  # rows 5 and 7 are not done in b: not predicted
    for sub, hs in heads.items():
        for s, h in enumerate(hs):
            assert h.name == head and list(h.modalities_) == sub.split("+")
            Xs = {m: X[m][used] for m in sub.split("+")}
            # float32 probabilities computed by the same code on the same inputs: equal, not merely close
            np.testing.assert_array_equal(h.predict_proba(Xs), stored.subsets[sub].probs[s, used])
            w = h.modality_weights(Xs)
            if head == "gated":
                np.testing.assert_array_equal(w["gates"], stored.subsets[sub].gates[s, used])
            else:
                assert w is None and stored.subsets[sub].gates is None


def test_saved_files_are_safetensors_or_lightgbm_text(built, tmp_path):
    path, store, keys, X = built
    for head, model in (("logreg", "model.safetensors"), ("lightgbm", "model.txt")):  # gated: test_predict.py
        if f"kept-{head}" not in store.runs():
            params, seeds = HEADS[head]
            train_run(store, head, keys, seeds=seeds, params=params, name=f"kept-{head}", save_heads=True)
        folders = open_store(path).extract_heads(f"kept-{head}", tmp_path / head)
        for paths in folders.values():
            for folder in paths:
                names = sorted(p.name for p in Path(folder).iterdir())
                assert names == sorted(["head.json", model]), names
                start = (Path(folder) / model).read_bytes()[:9]
                assert start.startswith(b"tree") if model == "model.txt" else start[8:9] == b"{"


def test_a_run_without_saved_heads_says_how_to_keep_them(built, tmp_path):
    path, store, keys, X = built
    train_run(store, "logreg", {"a": keys["a"]}, seeds=[0], name="plain")
    assert not open_store(path).has_saved_heads("plain")
    with pytest.raises(StoreError, match=r"no saved heads.*--save-heads") as exc:
        open_store(path).load_heads("plain", load_head)
    assert "mixsig train" in str(exc.value) and "--name plain" in str(exc.value)


class _Marker:
    """Unpickling this would create the file ``path``: the test sees whether anything was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("how", ["in place of model.safetensors", "as model.pkl named by head.json"])
def test_a_pickle_put_in_place_of_a_saved_head_file_is_refused_unread(built, tmp_path, how):
    path, store, keys, X = built
    train_run(store, "logreg", {"a": keys["a"]}, seeds=[0], name="pk", save_heads=True, overwrite=True)
    folder = open_store(path).extract_heads("pk", tmp_path / "x")["a"][0]
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Marker(marker), protocol=4)
    if how.startswith("in place"):
        (folder / "model.safetensors").write_bytes(payload)
    else:
        import json

        (folder / "model.safetensors").unlink()
        (folder / "model.pkl").write_bytes(payload)
        meta = json.loads((folder / "head.json").read_text())
        meta["state"]["file"] = "model.pkl"
        (folder / "head.json").write_text(json.dumps(meta))
    w = open_store(path, mode="r+")
    w.save_heads("pk", {"a": [folder]})  # stored as given: the check is on load
    with pytest.raises(HeadError, match="pickle"):
        open_store(path).load_heads("pk", load_head)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: loading it does create the marker
    assert marker.exists()


def test_damaged_saved_head_bytes_are_refused(built, tmp_path):
    path, store, keys, X = built
    train_run(store, "logreg", {"a": keys["a"]}, seeds=[0], name="dmg", save_heads=True, overwrite=True)
    chunk = Path(path) / "runs" / "dmg" / "heads" / "a" / "0" / "model.safetensors" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptChunk, match=r"runs/dmg/heads/a/0/model.safetensors.*(CRC32C|checksum)"):
        open_store(path).load_heads("dmg", load_head)


def test_a_study_winner_keeps_its_heads(built):
    from mixsig.studies import run_study

    path, store, keys, X = built
    summary = run_study(open_store(path, mode="r+"), "sv", heads="logreg", features={"a": keys["a"]}, trials=2,
                        reeval_top=1, reeval_seeds=1, threads=1)
    name = summary["run"]["name"]
    got = open_store(path)
    assert got.has_saved_heads(name)
    h = got.load_heads(name, load_head)["a"][0]
    used = ~np.isnan(got.read_run(name).subsets["a"].probs[0, :, 0])
    np.testing.assert_array_equal(h.predict_proba({"a": X["a"][used]}), got.read_run(name).subsets["a"].probs[0, used])


def test_the_head_saver_keeps_each_head_inside_its_temp_folder_whatever_the_subset_name(built):
    """A subset (modality) name such as ``../x`` is never part of the saved heads' temporary paths."""
    import tempfile
    from types import SimpleNamespace

    class _Head:
        def save(self, folder):
            folder.mkdir(parents=True)
            (folder / "head.json").write_text("{}")
            return folder

    saver = built[1].head_saver()
    for i, sub in enumerate(["../escaped-by-name", "a+b", "../escaped-by-name"]):
        saver(SimpleNamespace(head=_Head(), subset_name=sub, seed=i))
    folders = [f for fs in saver.folders.values() for f in fs]
    assert len(folders) == 3 and len({f.resolve() for f in folders}) == 3
    tmp = Path(tempfile.gettempdir()).resolve()
    for f in folders:
        assert f.resolve().parent.parent == tmp and f.resolve().parent.name.startswith("mixsig-save-heads-"), f
        assert (f / "head.json").is_file()
    assert not (tmp / "escaped-by-name").exists()


@pytest.mark.parametrize("modality", ["..", "../../evil", "a/b", "a.b", ""])
def test_train_run_refuses_a_modality_name_that_is_not_a_plain_name(built, modality):
    from mixsig.errors import UsageError

    path, store, keys, X = built
    with pytest.raises(UsageError, match=r"modality name .* must be letters, digits, '_' or '-' only"):
        train_run(store, "logreg", {modality: keys["a"]}, name="bad-modality", save_heads=True,
                  allow_modality_mismatch=True)
    assert "bad-modality" not in store.runs()
