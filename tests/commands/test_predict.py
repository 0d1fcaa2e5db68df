"""`mixsig predict STORE --run RUN --into OTHER` through mixsig.cli.main: the saved heads of a run applied to a
second store reproduce, row for row (exactly: the same float32 computation), the probabilities and gates the heads
give in Python; `mixsig report OTHER --run NAME` works on the result; a key whose provenance differs, classes that
differ and a run without saved heads are refused with the fix and nothing is written into OTHER."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixsig.cache import Provenance, Samples, Status, create_store, open_store
from mixsig.cli import main
from mixsig.heads import load_head
from tests.heads.helpers import synthetic

GATED = json.dumps({"epochs": 1, "hidden": 16, "n_layers": 1, "proj_dim": 8, "att_dim": 8, "batch_size": 64})
REV = "sha256:" + "0" * 64


def _store(path, *, n=90, seed=0, classes=("neutral", "empathetic"), revision=REV, not_done=()):
    """A store of ``n`` rows with keys a/b holding tests.heads.helpers.synthetic features, their provenance that of
    tests.heads.helpers.make_store (so the same keys) unless ``revision`` changes a's; ``not_done`` rows of a are
    written failed. Returns ``(path, {modality: key}, X)``."""
    X, y = synthetic(n, seed)
    split = ["train"] * (n // 2) + ["val"] * (n // 6) + ["test"] * (n - n // 2 - n // 6)
    store = create_store(str(path), Samples(ids=[f"r{i:04d}" for i in range(n)], split=split, label=y,
                                            classes=classes))
    keys = {}
    for m in ("a", "b"):
        prov = Provenance(modality=m, encoder=f"synthetic-{m}", revision=revision if m == "a" else REV,
                          pooling="cls", extra={"modality_name": m})
        keys[m] = store.create_key(prov, X[m].shape[1], chunk_rows=64)
        with store.writer(keys[m]) as w:
            for lo, hi in w.blocks():
                st = np.array([Status.DECODE_ERROR if m == "a" and r in not_done else Status.OK
                               for r in range(lo, hi)], np.int8)
                w.write_block(lo, hi, X[m][lo:hi], st)
    return path, keys, X


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    src, keys, sX = _store(tmp / "src.zarr", n=120, seed=0)
    feats = f"a={keys['a']},b={keys['b']}"
    assert main(["train", str(src), "--head", "gated", "--features", feats, "--params", GATED, "--seeds", "0,1",
                 "--name", "g", "--save-heads"]) == 0
    assert main(["train", str(src), "--head", "logreg", "--features", "a=a", "--name", "plain"]) == 0
    other, okeys, oX = _store(tmp / "other.zarr", n=60, seed=1, not_done=(3, 10))
    assert okeys == keys  # same provenance, same keys
    assert main(["predict", str(src), "--run", "g", "--into", str(other), "--name", "onto"]) == 0
    return tmp, src, other, oX, sX


def test_predict_reproduces_the_saved_heads_row_for_row(stores, capsys):
    tmp, src, other, X, sX = stores
    run = open_store(other).read_run("onto")
    heads = open_store(src).load_heads("g", load_head)
    used = np.ones(60, bool)
    used[[3, 10]] = False  # not done in a: not predicted in any subset
    assert list(run.subsets) == list(heads) == ["a", "b", "a+b"]
    for sub, hs in heads.items():
        rs = run.subsets[sub]
        assert rs.probs.shape == (2, 60, 2) and np.isnan(rs.probs[:, ~used]).all()
        for s, h in enumerate(hs):
            Xs = {m: X[m][used] for m in sub.split("+")}
            np.testing.assert_array_equal(rs.probs[s, used], h.predict_proba(Xs))
            w = h.modality_weights(Xs)
            np.testing.assert_array_equal(rs.gates[s, used], w["gates"])
            np.testing.assert_array_equal(rs.attention[s, used], w["attention"])
    a = run.attrs
    assert a["source"] == "predict" and a["predicted_from"]["run"] == "g" and a["predicted_from"]["store"] == str(src)
    assert a["saved_heads"] is True and a["selection_splits"] == [] and a["rows"]["used"] == 58
    assert a["split_hash"] == open_store(other).split_hash()
    # the saved gated heads are safetensors + head.json and give the source run's own probabilities back
    trained = open_store(src).read_run("g")
    for sub, hs in heads.items():
        for s, h in enumerate(hs):
            got = h.predict_proba({m: sX[m] for m in sub.split("+")})
            np.testing.assert_array_equal(got, trained.subsets[sub].probs[s])
    for folder in open_store(src).extract_heads("g", tmp / "files")["a+b"]:
        assert sorted(p.name for p in folder.iterdir()) == ["head.json", "model.safetensors"]
    # the report reads it as any run
    assert main(["report", str(other), "--run", "onto", "--out", str(tmp / "rep"), "--no-plots",
                 "--bootstrap", "0"]) == 0
    rep = json.loads((tmp / "rep" / "report.json").read_text())
    assert rep["provenance"]["source"] == "predict"
    capsys.readouterr()
    assert main(["runs", "show", str(other), "onto"]) == 0
    assert "saved heads: yes" in capsys.readouterr().out


def test_a_key_with_other_provenance_is_refused_with_the_diff(stores, tmp_path, capsys):
    _, src, _, _, _ = stores
    other, okeys, _ = _store(tmp_path / "o.zarr", n=30, seed=2, revision="sha256:" + "1" * 64)
    capsys.readouterr()
    assert main(["predict", str(src), "--run", "g", "--into", str(other)]) == 3
    err = capsys.readouterr().err
    assert f"{okeys['a']} differs from" in err and "revision" in err and "1" * 64 in err and "0" * 64 in err
    assert "cache diff" in err and "nothing was written" in err and okeys["b"] not in err  # b matches
    assert open_store(other).runs() == []


def test_classes_that_differ_are_refused_naming_them(stores, tmp_path, capsys):
    _, src, _, _, _ = stores
    other, _, _ = _store(tmp_path / "c.zarr", n=30, seed=2, classes=("calm", "tense"))
    capsys.readouterr()
    assert main(["predict", str(src), "--run", "g", "--into", str(other)]) == 3
    err = capsys.readouterr().err
    assert "['neutral', 'empathetic']" in err and "['calm', 'tense']" in err and "--classes neutral,empathetic" in err
    assert open_store(other).runs() == []


def test_a_run_without_saved_heads_is_refused_with_the_fix(stores, tmp_path, capsys):
    _, src, _, _, _ = stores
    other, _, _ = _store(tmp_path / "n.zarr", n=30, seed=2)
    capsys.readouterr()
    assert main(["predict", str(src), "--run", "plain", "--into", str(other)]) == 1
    err = capsys.readouterr().err
    assert "no saved heads" in err and "--save-heads" in err and "--name plain" in err
    assert open_store(other).runs() == []
    assert main(["runs", "show", str(src), "plain"]) == 0
    assert "saved heads: no" in capsys.readouterr().out


def test_an_existing_run_name_is_refused_without_overwrite(stores, capsys):
    _, src, other, _, _ = stores
    before = open_store(other).read_run("onto").attrs["created"]
    capsys.readouterr()
    assert main(["predict", str(src), "--run", "g", "--into", str(other), "--name", "onto"]) == 1
    err = capsys.readouterr().err
    assert "run 'onto' already exists" in err and "--overwrite" in err
    assert open_store(other).read_run("onto").attrs["created"] == before
