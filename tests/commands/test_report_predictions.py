"""`mixsig report --manifest M --predictions FILE --out DIR` (the one-shot form) through mixsig.cli.main: the same
report numbers as `cache init` + `runs import` + `report STORE --run`, nothing but the report files in DIR, no
temporary store left behind; the wrong combinations of STORE / --manifest / --predictions are one UsageError line."""

from __future__ import annotations

import csv
import json
import tempfile

import numpy as np
import pytest

from mixsig.cli import main

CLASSES = ("calm", "tense", "warm")
SUBSETS = ("text", "audio", "text+audio")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A text-only manifest of 60 rows (no media) and a long predictions CSV for text, audio and text+audio."""
    tmp = tmp_path_factory.mktemp("oneshot")
    rng = np.random.default_rng(5)
    n = 60
    y = rng.integers(0, 3, n)
    split = ["train"] * 30 + ["val"] * 10 + ["test"] * 20
    ids = [f"u{i:02d}" for i in range(n)]
    with open(tmp / "m.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "split", "label", "text"])
        w.writerows([i, s, CLASSES[c], f"utterance {i}"] for i, s, c in zip(ids, split, y))
    with open(tmp / "p.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "subset", "seed", *CLASSES])
        for sub, strength in zip(SUBSETS, (1.0, 0.3, 1.5)):
            for seed in (0, 1):
                logits = np.eye(3)[y] * strength + rng.normal(size=(n, 3))
                p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
                w.writerows([ids[i], sub, seed, *(repr(float(v)) for v in p[i])] for i in range(n))
    return tmp


def _flags(out):
    return ["--out", str(out), "--no-plots", "--bootstrap", "0"]


def test_one_shot_report_equals_the_report_of_an_imported_run_and_leaves_no_store(files, tmp_path, monkeypatch,
                                                                                  capsys):
    # the reference: a real store, the predictions imported, the report of that run
    store = str(tmp_path / "s.zarr")
    assert main(["cache", "init", store, "--manifest", str(files / "m.csv")]) == 0
    assert main(["runs", "import", store, str(files / "p.csv"), "--name", "predictions"]) == 0
    assert main(["report", store, "--run", "predictions", *_flags(tmp_path / "ref")]) == 0
    ref = json.loads((tmp_path / "ref" / "report.json").read_text())
    # the one-shot form, its temporary folders made under a folder of the test's
    temp_root = tmp_path / "temp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    out = tmp_path / "one"
    capsys.readouterr()
    assert main(["report", "--manifest", str(files / "m.csv"), "--predictions", str(files / "p.csv"),
                 *_flags(out)]) == 0
    assert "run predictions on split test: 20 samples" in capsys.readouterr().out
    assert list(temp_root.iterdir()) == []  # the temporary store is gone
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md", "samples.csv"]
    doc = json.loads((out / "report.json").read_text())
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731
    assert doc["disagreement"]["full_subset"] == "text+audio" and doc["n_samples"] == ref["n_samples"] == 20
    for k in ("per_modality", "categories", "disagreement_rate_any", "n_disagree_histogram", "category_shares"):
        assert same(doc["disagreement"][k], ref["disagreement"][k]), k
    assert same(doc["metrics"], ref["metrics"])
    assert doc["provenance"]["imported_from"]["file"] == "p.csv"
    md = (out / "report.md").read_text()  # the deleted temporary store is not named as where the run is
    assert "mixsig-report-" not in md and "mixsig-report-" not in json.dumps(doc)
    assert f"a temporary store made from {files / 'm.csv'} (deleted" in md
    # --split and a run name pass through
    assert main(["report", "--manifest", str(files / "m.csv"), "--predictions", str(files / "p.csv"), "--run",
                 "mine", "--split", "val", *_flags(tmp_path / "val")]) == 0
    assert "run mine on split val: 10 samples" in capsys.readouterr().out
    assert list(temp_root.iterdir()) == []


def test_one_shot_refused_predictions_leave_no_store(files, tmp_path, monkeypatch, capsys):
    temp_root = tmp_path / "temp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    bad = tmp_path / "bad.csv"
    bad.write_text((files / "p.csv").read_text().replace("u07,text,0,", "u07,text,0,9", 1))
    assert main(["report", "--manifest", str(files / "m.csv"), "--predictions", str(bad), *_flags(tmp_path / "o")]) == 3
    err = capsys.readouterr().err.strip()
    assert "bad.csv" in err and "line" in err and len(err.splitlines()) == 1
    assert list(temp_root.iterdir()) == [] and not (tmp_path / "o").exists()
    # the same file as logits is accepted (softmax applied)
    assert main(["report", "--manifest", str(files / "m.csv"), "--predictions", str(bad), "--logits",
                 *_flags(tmp_path / "lg")]) == 0
    assert (tmp_path / "lg" / "report.json").is_file() and list(temp_root.iterdir()) == []


@pytest.mark.parametrize("argv, words", [
    (["S.zarr", "--manifest", "M", "--predictions", "P"], "not both"),
    (["S.zarr", "--run", "r", "--predictions", "P"], "--predictions needs --manifest M"),
    (["--predictions", "P"], "--predictions needs --manifest M"),
    (["S.zarr", "--run", "r", "--logits"], "--logits needs --manifest M"),
    (["--manifest", "m.csv"], "needs --predictions FILE"),
    (["S.zarr"], "--run RUN is required with STORE"),
    ([], "give STORE --run RUN"),
])
def test_wrong_combinations_are_one_usage_error_line(argv, words, capsys):
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_one_shot_names_a_missing_file(files, tmp_path, capsys):
    assert main(["report", "--manifest", str(files / "m.csv"), "--predictions", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--predictions" in err and "nope.csv: no such file" in err and len(err.splitlines()) == 1
