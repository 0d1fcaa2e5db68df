"""Runs record the splits whose rows selected them (RunRecord ``selection_splits``): val where a head chose its
epoch or stopped early on it, nothing where it did not, and a study's scoring splits for its winner."""

from __future__ import annotations

import pytest

from tests.heads.helpers import make_store
from tests.synthetic import make_synthetic_store

from mixsig.analysis.sections.header import selection_splits_of
from mixsig.heads import train_run


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    base = tmp_path_factory.mktemp("sel")
    with_val, keys, _, _ = make_store(base / "v.zarr", n_train=80, n_val=40, n_test=40)
    no_val, keys2, _, _ = make_store(base / "n.zarr", n_train=80, n_val=0, n_test=40)
    return (with_val, {"a": keys["a"], "b": keys["b"]}), (no_val, {"a": keys2["a"], "b": keys2["b"]})


@pytest.mark.parametrize("head, params, expected", [
    ("gated", {"epochs": 2, "batch_size": 32, "hidden": 8, "proj_dim": 8}, ["val"]),   # best epoch on val
    ("lightgbm", {"n_estimators": 30, "num_leaves": 4}, ["val"]),                        # early stopping on val
    ("lightgbm", {"n_estimators": 30, "num_leaves": 4, "early_stopping_rounds": 0}, []),  # val not used
    ("logreg", {}, []),
])
def test_train_run_records_what_selected_it(stores, head, params, expected):
    (store, feats), _ = stores
    run = train_run(store, head, feats, seeds=[0], params=params, name=f"{head}-{len(params)}", overwrite=True)
    assert run.attrs["selection_splits"] == expected
    assert store.read_run(run.name).record.selection_splits == expected


def test_without_val_rows_nothing_selects(stores):
    _, (store, feats) = stores
    run = train_run(store, "gated", feats, seeds=[0], params={"epochs": 2, "hidden": 8, "proj_dim": 8}, name="nv")
    assert run.attrs["selection_splits"] == []


def test_a_cv_study_winner_was_selected_on_train_and_val(tmp_path):
    from mixsig.studies import run_study

    store, keys = make_synthetic_store(tmp_path / "s.zarr", n=120, n_groups=30, dims={"text": 6, "audio": 6})
    summary = run_study(store, "cv", heads="logreg", features={"text": keys["text"][0], "audio": keys["audio"][0]},
                        trials=2, cv=2, reeval_top=1, reeval_seeds=1)
    attrs = store.read_run("study-cv").attrs
    assert attrs["selection_splits"] == ["train", "val"] and attrs["study"]["scored_on"] == ["train", "val"]
    assert summary["run"]["selection_splits"] == ["train", "val"] and summary["in_sample_keys"] == {}


def test_runs_without_the_record():
    assert selection_splits_of({"source": "train"}) is None  # an older run: unknown
    assert selection_splits_of({"source": "finetune", "val_accuracy": {"all": 0.8}}) == ["val"]
    assert selection_splits_of({"source": "finetune", "val_accuracy": {"all": None}}) == []
    assert selection_splits_of({"source": "train", "selection_splits": []}) == []
