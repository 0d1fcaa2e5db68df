"""A run is never silently wrong: collapsed models are recorded and warned, keys of another modality and group
leaks are refused unless allowed (and then recorded), seeds are a list or a count, never a guess (the CLI's
warning lines and --seeds parsing: tests/commands/test_train.py)."""

import logging

import pytest

from mixsig.cache import describe_collapse, open_store
from mixsig.cli import main
from mixsig.errors import GroupLeak, UsageError
from mixsig.heads import train_run
from tests.heads.helpers import make_store, shared_store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Keys a (signal), b, c (noise) and z (all zeros), each held under its own modality."""
    return shared_store(tmp_path_factory, "collapsing")


def _feats(**kw):
    return ",".join(f"{m}={k}" for m, k in kw.items())


def test_describe_collapse_line():
    entry = {"subset": "text+audio", "seed": 3, "split": "val", "reason": "predicts one class (1) for all 40 rows"}
    assert describe_collapse(entry) == "text+audio seed 3 collapsed on val: predicts one class (1) for all 40 rows"


def test_constant_features_collapse_is_recorded_and_logged(built, caplog):
    path, store, keys = built
    with caplog.at_level(logging.WARNING, logger="mixsig.heads._runs"):
        run = train_run(store, "logreg", {"a": keys["a"], "z": keys["z"]}, seeds=[0, 1], name="api-collapse")
    col = run.attrs["collapsed"]
    assert {(e["subset"], e["seed"], e["split"]) for e in col} == {
        ("z", 0, "val"), ("z", 1, "val"), ("z", 0, "test"), ("z", 1, "test")}
    assert all(e["reason"].startswith("predicts one class") for e in col)
    assert store.read_run("api-collapse").attrs["collapsed"] == col          # stored, not only returned
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged.count(describe_collapse(col[0])) == 1 and len([m for m in logged if "collapsed on" in m]) == 4
    assert run.attrs["group_leak"] is None and run.attrs["modality_mismatch"] == {}


def test_real_signal_does_not_collapse(built):
    path, store, keys = built
    run = train_run(store, "logreg", {"a": keys["a"]}, seeds=[0, 1], name="api-clean")
    assert run.attrs["metrics"]["a"]["test"]["macro_f1"]["mean"] >= 0.9
    assert store.read_run("api-clean").attrs["collapsed"] == []


def test_keys_of_another_modality_are_refused_unless_allowed(built, capsys):
    path, store, keys = built
    swapped = {"a": keys["b"], "b": keys["a"]}
    assert main(["train", str(path), "--head", "logreg", "--features", _feats(**swapped), "--name", "mm"]) == 2
    err = capsys.readouterr().err
    assert f"a={keys['b']} holds b features" in err and f"b={keys['a']} holds a features" in err
    assert "--allow-modality-mismatch" in err and "mm" not in store.runs()
    with pytest.raises(UsageError, match="allow-modality-mismatch"):
        train_run(store, "logreg", swapped, name="mm")
    assert main(["train", str(path), "--head", "logreg", "--features", _feats(**swapped), "--name", "mm",
                 "--allow-modality-mismatch"]) == 0
    assert open_store(path).read_run("mm").attrs["modality_mismatch"] == {
        keys["b"]: {"used_as": "a", "holds": "b"}, keys["a"]: {"used_as": "b", "holds": "a"}}


def test_group_leak_is_refused_unless_allowed(tmp_path, capsys):
    n = 40 + 10 + 10
    groups = [f"g{i}" for i in range(n)]
    groups[40] = groups[0] = "speaker-7"                      # one speaker in train and val
    path = tmp_path / "leak.zarr"
    store, keys, X, y = make_store(path, n_train=40, n_val=10, n_test=10, groups=groups)
    args = ["train", str(path), "--head", "logreg", "--features", _feats(a=keys["a"]), "--name", "leak"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "'speaker-7' in train (1), val (1)" in err and "mixsig train --allow-group-leak" in err
    with pytest.raises(GroupLeak):
        train_run(store, "logreg", {"a": keys["a"]}, name="leak")
    assert "leak" not in store.runs()
    assert main(args + ["--allow-group-leak"]) == 0
    leak = open_store(path).read_run("leak").attrs["group_leak"]
    assert leak == {"n_groups": 1, "n_rows": 2, "groups": {"speaker-7": {"train": 1, "val": 1}}}


@pytest.mark.parametrize("seeds", [5, "0,1", [], [1, 1], [0.5], [True], [-2]])
def test_train_run_seeds_must_be_a_list_of_distinct_ints(built, seeds):
    path, store, keys = built
    with pytest.raises(UsageError, match="seed"):
        train_run(store, "logreg", {"a": keys["a"]}, seeds=seeds, name="api-bad-seeds")
