"""`mixsig runs import|ls|show|rm` through mixsig.cli.main: predictions written by plain scikit-learn code import,
and `mixsig report` on them gives disagreement numbers equal to a recomputation from the CSV with numpy; the same
predictions as NPZ give the same report.json numbers."""

from __future__ import annotations

import csv
import json
from itertools import combinations

import numpy as np
import pytest

from mixsig.cli import main

CLASSES = ("calm", "tense", "warm")
MODS = ("text", "audio", "video")
SUBSETS = ["+".join(c) for k in (1, 2, 3) for c in combinations(MODS, k)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A store of 150 rows (cache init) and an sklearn LogisticRegression per subset on synthetic features,
    its probabilities written as a long CSV (rows of the last 6 test ids left out: not predicted)."""
    from sklearn.linear_model import LogisticRegression

    tmp = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(3)
    n = 150
    y = rng.integers(0, 3, n)
    split = np.array(["train"] * 90 + ["val"] * 20 + ["test"] * 40)
    ids = [f"s{i:03d}" for i in range(n)]
    with open(tmp / "m.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "split", "label", "text"])
        w.writerows([i, s, CLASSES[c], f"utterance {i}"] for i, s, c in zip(ids, split, y))
    assert main(["cache", "init", str(tmp / "s.zarr"), "--manifest", str(tmp / "m.csv"),
                 "--classes", ",".join(CLASSES)]) == 0
    feats = {m: np.eye(3)[y] * s + rng.normal(size=(n, 3)) for m, s in zip(MODS, (1.5, 0.8, 0.3))}
    keep = np.arange(n) < n - 6
    probs = {}
    with open(tmp / "p.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "subset", "seed", *CLASSES])
        for sub in SUBSETS:
            X = np.hstack([feats[m] for m in sub.split("+")])
            clf = LogisticRegression(max_iter=500).fit(X[split == "train"], y[split == "train"])
            probs[sub] = clf.predict_proba(X)
            for i in np.flatnonzero(keep):
                w.writerow([ids[i], sub, 0, *(repr(float(v)) for v in probs[sub][i])])
    np.savez(tmp / "p.npz", ids=np.array(ids)[keep], subsets=np.array(SUBSETS),
             probs=np.stack([probs[s][keep][None] for s in SUBSETS]), classes=np.array(CLASSES))
    return tmp


def _report(store, run, out):
    assert main(["report", str(store), "--run", run, "--out", str(out), "--no-plots", "--bootstrap", "0"]) == 0
    return json.loads((out / "report.json").read_text())


def test_sklearn_csv_imports_and_reports_numbers_recomputed_from_the_csv(corpus, capsys):
    s = corpus / "s.zarr"
    assert main(["runs", "import", str(s), str(corpus / "p.csv"), "--name", "sk"]) == 0
    assert "144 of 150 samples predicted" in capsys.readouterr().out
    doc = _report(s, "sk", corpus / "rep")
    # recompute from the CSV alone: test rows present in the file, argmax per subset (one seed)
    split = {r["id"]: r["split"] for r in csv.DictReader(open(corpus / "m.csv"))}
    label = {r["id"]: CLASSES.index(r["label"]) for r in csv.DictReader(open(corpus / "m.csv"))}
    pred: dict = {}
    for r in csv.DictReader(open(corpus / "p.csv")):
        if split[r["id"]] == "test":
            pred.setdefault(r["subset"], {})[r["id"]] = int(np.argmax([float(r[c]) for c in CLASSES]))
    test_ids = sorted(pred["text"])
    assert len(test_ids) == 34
    full = np.array([pred["text+audio+video"][i] for i in test_ids])
    y = np.array([label[i] for i in test_ids])
    d = doc["disagreement"]
    assert d["full_subset"] == "text+audio+video" and d["unimodal_subsets"] == list(MODS)
    any_dis = np.zeros(len(test_ids), bool)
    for m in MODS:
        pm = np.array([pred[m][i] for i in test_ids])
        any_dis |= pm != full
        assert d["per_modality"][m]["rate"] == pytest.approx(float((pm != full).mean()))
        assert d["per_modality"][m]["cells"]["misled"] == int(((pm == y) & (full != y)).sum())
        assert d["per_modality"][m]["cells"]["rescued"] == int(((pm != y) & (full == y)).sum())
    assert d["disagreement_rate_any"] == pytest.approx(float(any_dis.mean()))
    assert doc["n_samples"] == 34
    # the page says where the predictions came from, not "trained by mixsig train" or "not in the store now"
    md = (corpus / "rep" / "report.md").read_text()
    assert doc["provenance"]["imported_from"]["file"] == "p.csv" and "**Imported predictions**" in md
    assert "imported by `mixsig runs import`" in md and "not in the store now" not in md
    assert "holds imported predictions" in " ".join(doc["notes"]) and "older mixsig" not in " ".join(doc["notes"])
    # the same predictions as NPZ: the same numbers
    assert main(["runs", "import", str(s), str(corpus / "p.npz"), "--name", "sk-npz"]) == 0
    doc2 = _report(s, "sk-npz", corpus / "rep2")
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731
    for k in ("per_modality", "categories", "disagreement_rate_any", "n_disagree_histogram", "category_shares"):
        assert same(doc2["disagreement"][k], d[k]), k
    assert same(doc2["metrics"], doc["metrics"])


def test_runs_ls_show_rm(corpus, capsys):
    s = str(corpus / "s.zarr")
    assert main(["runs", "import", s, str(corpus / "p.csv"), "--name", "tmp", "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["runs", "ls", s, "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tmp"]["source"] == "import" and rows["tmp"]["head"] == "imported"
    assert rows["tmp"]["subsets"] == SUBSETS and rows["tmp"]["seeds"] == [0] and rows["tmp"]["created"]
    assert main(["runs", "ls", s]) == 0
    assert "tmp" in capsys.readouterr().out
    assert main(["runs", "show", s, "tmp", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["head"] == "imported" and shown["params"] == {} and set(shown["features"]) == set(MODS)
    assert shown["metrics"]["text"]["test"]["accuracy"]["mean"] > 0.5
    assert main(["runs", "show", s, "tm"]) == 0  # a unique prefix names the run
    out = capsys.readouterr().out
    assert "source import, head imported" in out and "text+audio+video" in out
    assert main(["runs", "rm", s, "tmp"]) == 0
    assert "deleted run tmp" in capsys.readouterr().out
    for argv in (["runs", "rm", s, "tmp"], ["runs", "show", s, "tmp"]):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert "no run named 'tmp'" in err and "mixsig runs ls" in err and "\n" not in err
    assert main(["report", s, "--run", "tmp", "--out", str(corpus / "gone")]) == 1
    assert main(["runs", "ls", s, "--json"]) == 0
    assert "tmp" not in {r["name"] for r in json.loads(capsys.readouterr().out)}
