"""Settings of extract / finetune runs: groups that cross splits (refused with exit code 3, or allowed and
recorded), readable key names that are not hashed, and torch threads set for the command and restored."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from mixsig.cache import open_store


def _text_manifest(corpus, out: Path, leak: bool) -> Path:
    """The corpus' text rows as a text-only manifest; with ``leak``, val row demo00002 joins train group v0000."""
    with open(corpus, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = ["id", "split", "label", "group", "text"]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            r = {c: r[c] for c in cols}
            if leak and r["id"] == "demo00002":
                r["group"] = "v0000"
            w.writerow(r)
    return out


@pytest.fixture(scope="module")
def manifests(corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("manifests")
    return {"leak": _text_manifest(corpus, d / "leak.csv", True), "clean": _text_manifest(corpus, d / "clean.csv", False)}


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_extract_refuses_a_group_leak_with_exit_3_then_allows_and_records_it(tmp_path, manifests, tiny_encoders,
                                                                              cli, capsys):
    enc = tiny_encoders["text"]
    assert cli("validate", manifests["leak"]) == 1  # validate keeps its error
    out = capsys.readouterr()
    assert "group_leak" in out.out + out.err or "v0000" in out.out + out.err

    store_path = tmp_path / "s.zarr"
    rc = cli("extract", manifests["leak"], "--store", store_path, "--modality", "text", "--encoder", enc)
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "mixsig extract --allow-group-leak" in err and "'v0000' in train (2), val (1)" in err
    assert not store_path.exists()  # refused before anything was created

    rc = cli("extract", manifests["leak"], "--store", store_path, "--modality", "text", "--encoder", enc,
             "--allow-group-leak")
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "warning: 1 group(s) (3 rows) are in more than one split" in out and "--allow-group-leak" in out
    store = open_store(store_path)
    rec = store.attrs["group_leak"]
    allowed_by = rec.pop("allowed_by")
    assert rec == store.group_leak() and rec["groups"] == {"v0000": {"train": 2, "val": 1}}
    assert allowed_by.startswith("mixsig extract ") and "--allow-group-leak" in allowed_by
    assert f"--store {store_path}" in allowed_by and f"--encoder {enc}" in allowed_by
    (key,) = store.keys()

    # the leak is not in the key: the same features from a clean manifest get the same key
    clean = tmp_path / "clean.zarr"
    assert cli("extract", manifests["clean"], "--store", clean, "--modality", "text", "--encoder", enc, "--json") == 0
    res = json.loads(capsys.readouterr().out)
    assert res["key"] == key and res["group_leak"] is None
    assert "group_leak" not in open_store(clean).attrs
    assert np.array_equal(open_store(clean).read(key).X, store.read(key).X)


def test_extract_name_gives_the_prefix_and_the_same_hash(tmp_path, manifests, tiny_encoders, cli, capsys):
    store_path = tmp_path / "s.zarr"
    base = ["extract", manifests["clean"], "--store", store_path, "--modality", "text", "--encoder",
            tiny_encoders["text"], "--json"]
    assert cli(*base) == 0
    plain = json.loads(capsys.readouterr().out)["key"]
    assert cli(*base, "--name", "my-text_v1.2") == 0
    named = json.loads(capsys.readouterr().out)["key"]
    assert plain.startswith("text.tiny-text.cls.") and named.startswith("text.my-text_v1.2.cls.")
    assert named.rsplit(".", 1)[1] == plain.rsplit(".", 1)[1]  # the name is not hashed
    store = open_store(store_path)
    assert store.provenance(named) == store.provenance(plain)
    assert np.array_equal(store.read(named).X, store.read(plain).X)
    assert cli("cache", "explain", store_path, named) == 0
    assert "matches key: True" in capsys.readouterr().out

    for bad in ("a/b", "My Model", "../up", ".hidden", ""):
        assert cli(*base, "--name", bad) == 2
        err = capsys.readouterr().err
        assert "--name" in err and "not safe in a key" in err, err
    assert set(open_store(store_path).keys()) == {plain, named}


def test_extract_threads_are_set_for_the_run_and_restored(tmp_path, manifests, tiny_encoders, cli, capsys,
                                                          restore_threads):
    from mixsig.extract import extract

    torch.set_num_threads(3)
    seen = []
    res = extract(manifests["clean"], tmp_path / "s.zarr", "text", tiny_encoders["text"], threads=1,
                  on_rows=lambda n: seen.append(torch.get_num_threads()))
    assert res.written == 16 and set(seen) == {1} and res.threads == 1
    assert torch.get_num_threads() == 3
    rc = cli("extract", manifests["clean"], "--store", tmp_path / "t.zarr", "--modality", "text", "--encoder",
             tiny_encoders["text"], "--threads", "2", "--json")
    assert rc == 0 and json.loads(capsys.readouterr().out)["threads"] == 2
    assert torch.get_num_threads() == 3
    assert cli("extract", manifests["clean"], "--store", tmp_path / "t.zarr", "--modality", "text", "--encoder",
               tiny_encoders["text"], "--threads", "0") == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_default_threads_follow_the_cores():
    from mixsig.extract import default_threads

    assert [default_threads(c) for c in (1, 2, 3, 16)] == [1, 1, 3, 16]


def test_finetune_group_leak_metrics_key_name_and_threads(tmp_path, manifests, tiny_encoders, cli, capsys, caplog,
                                                          restore_threads):
    from mixsig.metrics import METRICS

    enc = tiny_encoders["text"]
    args = ["finetune", manifests["leak"], "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder", enc,
            "--epochs", "1", "--lr", "1e-3", "--unfreeze-last", "1"]
    assert cli(*args) == 3
    err = capsys.readouterr().err
    assert "mixsig finetune --allow-group-leak" in err and "'v0000'" in err
    assert not (tmp_path / "s.zarr").exists()

    torch.set_num_threads(3)
    caplog.set_level(logging.INFO, logger="mixsig.extract._finetune")
    assert cli(*args, "--allow-group-leak", "--key-name", "ft-text", "--threads", "1", "--json") == 0
    res = json.loads(capsys.readouterr().out)
    assert torch.get_num_threads() == 3 and res["threads"] == 1
    assert "with 1 torch threads" in caplog.text and "with 3 torch threads" not in caplog.text
    assert res["key"].startswith("text.ft-text.cls.")

    store = open_store(tmp_path / "s.zarr")
    run = store.read_run(res["run"])
    leak = run.attrs["group_leak"]
    assert leak == store.attrs["group_leak"] == res["group_leak"]
    assert leak["groups"] == {"v0000": {"train": 2, "val": 1}} and "mixsig finetune" in leak["allowed_by"]

    # the run's metrics have train_run's shape: {subset: {split: {metric: {mean, std, per_seed}}}}, std None (1 seed)
    metrics = run.attrs["metrics"]
    assert list(metrics) == ["text"] and list(metrics["text"]) == ["train", "val", "test"]
    assert res["metrics"] == metrics
    from mixsig.metrics import aggregate, point_metrics

    s = store.samples
    probs = run.subsets["text"].probs
    for split, by_metric in metrics["text"].items():
        assert set(by_metric) == set(METRICS)
        for m in METRICS:
            assert set(by_metric[m]) == {"mean", "std", "per_seed"} and by_metric[m]["std"] is None
            assert len(by_metric[m]["per_seed"]) == 1
        rows = s.rows(split)
        assert by_metric == aggregate([point_metrics(s.label[rows], probs[0, rows].astype(np.float64))])

    # the text summary prints the four metrics and what trained
    args2 = [a if a != "1e-3" else "2e-3" for a in args]
    assert cli(*args2, "--allow-group-leak", "--threads", "1") == 0
    out = capsys.readouterr().out
    assert "warning: 1 group(s) (3 rows) are in more than one split" in out
    assert "text test: accuracy " in out and ", weighted_f1 " in out and ", auroc " in out
    assert "trained " in out and " parameters (--unfreeze-last 1: " in out
