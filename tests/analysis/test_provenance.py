"""The report's Provenance section (report.md/html and report.json ``provenance``) and the warnings of issue 14
§4/§5b: analysed rows that selected the run (``selection_overlap``) and fine-tuned keys embedded in-sample
(``in_sample``), planted and not planted, through ``mixsig train`` / ``mixsig study`` / ``mixsig report``."""

from __future__ import annotations

import json
from importlib.metadata import version

import numpy as np
import pytest

from tests.synthetic import make_synthetic_store

from mixsig.cache import Provenance, Status, open_store
from mixsig.cli import main

GATED = '{"epochs": 20, "batch_size": 32, "hidden": 16, "proj_dim": 16}'


def add_finetuned_key(store, folds: int, signal: float = 3.0) -> str:
    """A text key shaped as `mixsig finetune` writes one: provenance extra.finetune (config.folds) and the array
    ``fold`` [N] int8 (-1 = the all-train model; with folds >= 2 every train row gets its fold)."""
    s = store.samples
    n = len(s)
    prov = Provenance(modality="text", encoder="tiny-roberta", revision="sha256:" + f"{folds:064d}", pooling="mean",
                      preprocessing={"max_length": 64},
                      extra={"finetune": {"base_encoder": "tiny-roberta", "base_revision": "abc123",
                                          "config": {"folds": folds, "epochs": 2, "seed": 0},
                                          "split_hash": store.split_hash()}})
    key = store.create_key(prov, 8, chunk_rows=64)
    rng = np.random.default_rng(folds)
    X = rng.standard_normal((n, 8)).astype(np.float32)
    X[:, :2] += (signal * (2 * s.label - 1))[:, None].astype(np.float32) / 2
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, X[lo:hi], np.full(hi - lo, Status.OK, np.int8))
    fold = np.full(n, -1, np.int8)
    if folds >= 2:
        train = np.flatnonzero(s.split == "train")
        fold[train] = np.arange(train.size) % folds
    store.add_key_array(key, "fold", "int8", -1, fold)
    return key


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("prov") / "store.zarr"
    store, keys = make_synthetic_store(path, n=200, dims={"text": 8, "audio": 8}, signal={"text": 3.0, "audio": 2.0})
    inside = add_finetuned_key(store, folds=1)
    oof = add_finetuned_key(store, folds=3)
    return path, {"text": keys["text"][0], "audio": keys["audio"][0], "inside": inside, "oof": oof}


@pytest.fixture(scope="module")
def plain(built):
    """Run ``plain``: the gated head on the honest text and audio keys, seeds 0 and 1; its stderr."""
    path, k = built
    rc = main(["train", str(path), "--head", "gated", "--features", f"text={k['text']},audio={k['audio']}",
               "--seeds", "0,1", "--name", "plain", "--params", GATED])
    assert rc == 0
    return "plain"


def _train(capsys, path, name, features, head="gated", params=GATED, seeds="0,"):
    rc = main(["train", str(path), "--head", head, "--features", features, "--seeds", seeds, "--name", name,
               "--params", params, "--overwrite"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.err


def _report(capsys, path, run, out, split="test"):
    rc = main(["report", str(path), "--run", run, "--out", str(out), "--split", split, "--no-plots",
               "--bootstrap", "0", "--no-media"])
    err = capsys.readouterr().err
    assert rc == 0, err
    return (out / "report.md").read_text(), (out / "report.html").read_text(), \
        json.loads((out / "report.json").read_text()), err


def _header(md: str) -> str:
    return md.split("\n## ", 1)[0]


def _provenance_md(md: str) -> str:
    return md.split("\n## Provenance", 1)[1]


def test_train_run_provenance_names_everything_and_test_only_warns_nothing(built, plain, capsys, tmp_path):
    path, k = built
    assert "WARNING" not in capsys.readouterr().err
    store = open_store(path)
    attrs = store.read_run("plain").attrs
    assert attrs["selection_splits"] == ["val"] and attrs["in_sample_keys"] == {}
    assert attrs["versions"]["numpy"] == np.__version__
    md, html, doc, err = _report(capsys, path, "plain", tmp_path / "r")
    w = doc["warnings"]
    assert w["selection_splits"] == ["val"] and w["selection_overlap"] is None and w["in_sample"] == {}
    assert w["messages"] == [] and "WARNING" not in md and "WARNING" not in err
    assert "<h2>Provenance</h2>" in html
    prov = _provenance_md(md)
    for key in (k["text"], k["audio"]):
        p = store.provenance(key)
        assert key in prov and p["encoder"] in prov and p["revision"] in prov
        assert f"signal={p['preprocessing']['signal']}" in prov  # the preprocessing record
    assert "**Head** gated" in prov and "epochs=20" in prov and "hidden=16" in prov
    assert "**Seeds** 0, 1" in prov and "**Selected on** (epochs, early stopping, a study's trial): val" in prov
    assert "**Study**: none (trained by `mixsig train`)" in prov
    assert f"**Split hash** {store.split_hash()}." in prov
    from mixsig import __version__
    for lib in ("torch", "transformers", "lightgbm", "optuna", "zarr", "numpy"):
        assert f"| {lib} | {version(lib)} | {version(lib)} |" in prov
    assert f"| mixsig | {__version__} | {__version__} |" in prov
    p = doc["provenance"]
    assert [f["key"] for f in p["features"]] == [k["text"], k["audio"]] and p["study"] is None
    assert p["split_hash"] == {"run": store.split_hash(), "store": store.split_hash()}


def test_analysing_the_selection_split_is_warned(built, plain, capsys, tmp_path):
    path, k = built
    md, html, doc, err = _report(capsys, path, plain, tmp_path / "r", split="val+test")
    store = open_store(path)
    n_val = int(((store.samples.split == "val") & (store.samples.label >= 0)).sum())
    over = doc["warnings"]["selection_overlap"]
    assert over["splits"] == ["val"] and over["rows"] == n_val
    assert f"{n_val} of the {doc['n_samples']} analysed rows are in val" in over["why"]
    assert "`mixsig report STORE --run plain --split test`" in over["why"]
    assert f"> **WARNING:** {over['why']}" in _header(md)
    assert f"WARNING: {over['why']}" in err
    # a head that selects nothing on val (logistic regression): no warning on val+test
    _train(capsys, path, "lr", f"text={k['text']},audio={k['audio']}", head="logreg", params="{}")
    assert open_store(path).read_run("lr").attrs["selection_splits"] == []
    md, _, doc, err = _report(capsys, path, "lr", tmp_path / "lr", split="val+test")
    assert doc["warnings"]["selection_overlap"] is None and "WARNING" not in md + err


def test_in_sample_key_is_warned_by_train_and_report_and_out_of_fold_is_not(built, capsys, tmp_path):
    path, k = built
    err = _train(capsys, path, "ins", f"text={k['inside']},audio={k['audio']}", head="logreg", params="{}")
    store = open_store(path)
    n_train = int(((store.samples.split == "train") & (store.samples.label >= 0)).sum())
    line = [x for x in err.splitlines() if x.startswith("WARNING: key ")]
    assert len(line) == 1 and k["inside"] in line[0] and "--folds 5" in line[0] and f"{n_train} train rows" in line[0]
    attrs = store.read_run("ins").attrs
    assert attrs["in_sample_keys"] == {k["inside"]: {"folds": 1, "train_rows": n_train, "encoder": "tiny-roberta"}}
    md, html, doc, err = _report(capsys, path, "ins", tmp_path / "r")
    assert doc["warnings"]["in_sample"] == attrs["in_sample_keys"]
    assert doc["warnings"]["selection_overlap"] is None
    msg = [m for m in doc["warnings"]["messages"] if m.startswith("In-sample embeddings:")]
    assert len(msg) == 1 and f"> **WARNING:** {msg[0]}" in _header(md) and f"WARNING: {msg[0]}" in err
    assert "folds 1 (in-sample train rows)" in _provenance_md(md)
    # the same, fine-tuned out of fold (--folds 3): nothing to warn
    err = _train(capsys, path, "oof", f"text={k['oof']},audio={k['audio']}", head="logreg", params="{}")
    assert "WARNING" not in err and open_store(path).read_run("oof").attrs["in_sample_keys"] == {}
    md, _, doc, err = _report(capsys, path, "oof", tmp_path / "oof")
    assert doc["warnings"]["in_sample"] == {} and "WARNING" not in md + err
    assert "folds 3" in _provenance_md(md) and "in-sample" not in _provenance_md(md)


def test_a_run_written_before_the_record_is_unknown_and_checked_in_the_store(built, capsys, tmp_path):
    path, k = built
    _train(capsys, path, "old", f"text={k['inside']},audio={k['audio']}", head="lightgbm",
           params='{"n_estimators": 20, "num_leaves": 4}')
    store = open_store(path, mode="r+")
    from mixsig.cache import UNSET

    store.update_run("old", selection_splits=UNSET, in_sample_keys=UNSET, versions=UNSET)
    assert "selection_splits" not in store.read_run("old").attrs
    md, _, doc, err = _report(capsys, path, "old", tmp_path / "r", split="val+test")
    w = doc["warnings"]
    assert w["selection_splits"] is None and w["selection_overlap"] is None
    assert any("does not record which splits selected it" in n for n in doc["notes"])
    assert list(w["in_sample"]) == [k["inside"]]  # found from the key's provenance and fold array
    assert "not recorded" in _provenance_md(md)
    assert "| numpy | – | " in _provenance_md(md)


def test_study_winner_provenance_selection_and_in_sample(built, capsys, caplog, tmp_path):
    path, k = built
    caplog.set_level("WARNING", logger="mixsig")
    rc = main(["--quiet", "study", "run", str(path), "--name", "p", "--heads", "logreg", "--trials", "3", "--features",
               f"text={k['inside']},audio={k['audio']}", "--reeval-top", "1", "--reeval-seeds", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and k["inside"] in r.getMessage()]
    assert len(warned) == 1 and "--folds 5" in warned[0]  # once, before the trials (not again for the winner)
    store = open_store(path)
    attrs = store.read_run("study-p").attrs
    assert attrs["source"] == "study:p" and attrs["selection_splits"] == ["val"]
    assert attrs["study"]["scored_on"] == ["val"]
    assert main(["study", "show", str(path), "--name", "p"]) == 0
    shown = capsys.readouterr().out
    warn = [x for x in shown.splitlines() if x.startswith("WARNING: key ")]
    assert len(warn) == 1 and k["inside"] in warn[0] and "--folds 5" in warn[0]
    assert "selected on (trials scored, epochs chosen): val" in shown
    md, _, doc, err = _report(capsys, path, "study-p", tmp_path / "r")
    prov = _provenance_md(md)
    trial = attrs["study"]["trial"]
    assert f"**Study** p, trial {trial}" in prov and doc["provenance"]["study"]["trial"] == trial
    assert doc["warnings"]["selection_overlap"] is None
    assert attrs["features"]["text"] == k["inside"] and list(attrs["in_sample_keys"]) == [k["inside"]]
    assert list(doc["warnings"]["in_sample"]) == [k["inside"]] and "In-sample embeddings:" in _header(md)
    md, _, doc, _ = _report(capsys, path, "study-p", tmp_path / "rv", split="val")
    assert doc["warnings"]["selection_overlap"]["splits"] == ["val"]
    assert "study 'p' scored its trials on val" in doc["warnings"]["selection_overlap"]["why"]
