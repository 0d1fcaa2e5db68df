"""`mixsig cache import-h5 --columns` (or the file's `columns` dataset) names imported feature columns, and the
report's descriptors name them KEY[name]; imported columns that rank-duplicate a descriptor mixsig computes
(duration, word count) are listed as duplicates and left out of the Benjamini–Hochberg family (planted: a column
equal to the duration in ms and one equal to the word count; null: noise, and a column merely *named* duration);
`cache export-h5` writes split, label, class names and status names."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest
from scipy.stats import false_discovery_control

from mixsig.cache import Samples, create_store, open_store
from mixsig.cli import main

CLASSES = ("calm", "tense", "warm")
N = 120


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A store of N rows (text, start/end) with an imported run, and an HDF5 file of 4 columns: the duration in
    ms (a planted duplicate of duration_s), the word count (a planted duplicate of word_count), noise, and noise
    named 'duration'."""
    tmp = tmp_path_factory.mktemp("h5cols")
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, N)
    dur = rng.uniform(1.0, 10.0, N)
    words = rng.integers(1, 25, N)
    text = [" ".join(["w"] * int(k)) for k in words]
    split = ["train"] * 30 + ["val"] * 10 + ["test"] * (N - 40)
    ids = [f"s{i:03d}" for i in range(N)]
    create_store(str(tmp / "s.zarr"), Samples(ids=ids, split=split, label=y, classes=CLASSES, text=text,
                                              start=np.zeros(N), end=dur))
    probs = rng.dirichlet(np.ones(3), N)
    with open(tmp / "p.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "subset", *CLASSES])
        w.writerows([i, "text", *map(repr, p.tolist())] for i, p in zip(ids, probs))
    assert main(["runs", "import", str(tmp / "s.zarr"), str(tmp / "p.csv"), "--name", "imp"]) == 0
    X = np.stack([dur * 1000.0, words.astype(float), rng.normal(size=N), rng.normal(size=N)], 1).astype(np.float32)
    order = rng.permutation(N)  # the file's rows in another order: matched by id
    with h5py.File(tmp / "f.h5", "w") as f:
        f.create_dataset("ids", data=np.array(ids, dtype=object)[order], dtype=h5py.string_dtype())
        f.create_dataset("embedding", data=X[order])
    assert main(["cache", "import-h5", str(tmp / "s.zarr"), str(tmp / "f.h5"), "--modality", "meta", "--name", "meta",
                 "--columns", "dur_ms,words,noise,duration"]) == 0
    return tmp


def _report(tmp, out):
    assert main(["report", str(tmp / "s.zarr"), "--run", "imp", "--out", str(tmp / out), "--no-plots", "--no-media",
                 "--bootstrap", "0"]) == 0
    return json.loads((tmp / out / "report.json").read_text())["descriptors"]


def test_columns_name_the_descriptors_and_duplicates_are_not_tested_twice(corpus, capsys):
    tmp = corpus
    key = open_store(tmp / "s.zarr").resolve_key("meta.meta")
    d = _report(tmp, "rep")
    named = [f"{key}[{c}]" for c in ("dur_ms", "words", "noise", "duration")]
    assert set(named) <= set(d["available"]) and not any(f"{key}[{j}]" in d["available"] for j in range(4))
    # planted: the duration in ms and the word count are the computed descriptors again (ranks equal)
    dups = {x["descriptor"]: x["duplicate_of"] for x in d["duplicates"]}
    assert dups == {named[0]: "duration_s", named[1]: "word_count"}
    assert all(x["spearman"] == pytest.approx(1.0) for x in d["duplicates"])
    tested = {t["descriptor"] for t in d["tests"]}
    assert tested == {"duration_s", "word_count", named[2], named[3]}  # null: noise and the mere name stay
    comparisons = {t["comparison"] for t in d["tests"]}
    assert d["n_tests"] == len(d["tests"]) == len(comparisons) * 4
    # reference: BH over exactly the reported family (scipy), so the duplicates are not in it
    p = np.array([t["p"] for t in d["tests"]])
    np.testing.assert_allclose([t["q"] for t in d["tests"]], false_discovery_control(p, method="bh"), rtol=1e-12)
    md = (tmp / "rep" / "report.md").read_text()
    assert "Not tested (duplicates)" in md and f"{named[0]} duplicates duration_s" in md


def test_the_file_columns_dataset_names_them_and_bad_names_are_refused(corpus, tmp_path, capsys):
    tmp = corpus
    f2 = tmp_path / "g.h5"
    with h5py.File(tmp / "f.h5", "r") as src, h5py.File(f2, "w") as f:
        f.create_dataset("ids", data=src["ids"][...], dtype=h5py.string_dtype())
        f.create_dataset("embedding", data=src["embedding"][...])
        f.create_dataset("columns", data=np.array(["ms", "n_words", "z1", "z2"], dtype=object),
                         dtype=h5py.string_dtype())
    store = open_store(tmp / "s.zarr", mode="r+")
    from mixsig.cache import import_h5

    key, _ = import_h5(store, f2, modality="meta2", name="meta2")
    assert store.provenance(key)["extra"]["columns"] == ["ms", "n_words", "z1", "z2"]
    capsys.readouterr()
    for cols, words in (("a,b", "names 2 columns but the features of"), ("a,b,a,c", "repeated: ['a']"),
                        ("a,,b,c", "non-empty")):
        assert main(["cache", "import-h5", str(tmp / "s.zarr"), str(f2), "--modality", "meta3", "--name", "meta3",
                     "--columns", cols]) == 2
        err = capsys.readouterr().err
        assert words in err and "--columns" in err, err
    assert not [k for k in open_store(tmp / "s.zarr").keys() if k.startswith("meta3")]


def test_export_h5_writes_split_label_classes_and_status_names(corpus, tmp_path):
    tmp = corpus
    store = open_store(tmp / "s.zarr")
    key = store.resolve_key("meta.meta")
    out = tmp_path / "e.h5"
    assert main(["cache", "export-h5", str(tmp / "s.zarr"), key, str(out)]) == 0
    s = store.samples
    with h5py.File(out, "r") as f:
        dec = lambda ds: [x.decode() if isinstance(x, bytes) else str(x) for x in f[ds][...]]  # noqa: E731
        assert dec("split") == [str(x) for x in s.split]
        assert f["label"][...].tolist() == s.label.tolist()
        assert dec("classes") == list(CLASSES)
        assert dec("label_name") == [CLASSES[k] for k in s.label]
        assert set(dec("status_name")) == {"ok"} and f["status"].dtype == np.int8
        assert json.loads(f.attrs["status_names"])["1"] == "ok"
        assert dec("columns") == ["dur_ms", "words", "noise", "duration"]


def test_the_same_file_imported_twice_is_tested_once_keeping_the_named_columns(corpus, tmp_path):
    """Imported plainly and with --columns, the file's columns make two keys; the plain key's columns duplicate the
    named ones (or a computed descriptor) and are left out of the BH family, the named ones stay."""
    import shutil

    shutil.copytree(corpus / "s.zarr", tmp_path / "s.zarr")
    assert main(["cache", "import-h5", str(tmp_path / "s.zarr"), str(corpus / "f.h5"), "--modality", "meta",
                 "--name", "meta"]) == 0
    store = open_store(tmp_path / "s.zarr")
    plain = [k for k in store.keys() if k.startswith("meta.") and "columns" not in store.provenance(k)["extra"]]
    named_key = next(k for k in store.keys()
                     if store.provenance(k)["extra"].get("columns") == ["dur_ms", "words", "noise", "duration"])
    assert len(plain) == 1
    d = _report(tmp_path, "rep")
    dups = {x["descriptor"]: x["duplicate_of"] for x in d["duplicates"]}
    assert dups[f"{plain[0]}[2]"] == f"{named_key}[noise]" and dups[f"{plain[0]}[3]"] == f"{named_key}[duration]"
    assert dups[f"{plain[0]}[0]"] == "duration_s" and dups[f"{plain[0]}[1]"] == "word_count"
    tested = {t["descriptor"] for t in d["tests"]}
    assert {f"{named_key}[noise]", f"{named_key}[duration]"} <= tested
    assert not any(t.startswith(plain[0]) for t in tested)
    # each tested imported column is distinct from every other tested one: no pair counted twice in BH
    assert len([t for t in tested if t.endswith("[noise]") or t.endswith("[z1]") or t.endswith("[2]")]) == 1
    assert "another imported" in d["duplicates_rule"] and "at least 10" in d["duplicates_rule"]
