"""The report on a planted run (through a real store and `mixsig report`), and the runs it must survive
(RELIABILITY.md fault 20: no votes, one seed, two modalities, a class never predicted)."""

import json

import numpy as np
import pytest
from tests.analysis.helpers import one_hot_probs, planted, to_store

from mixsig.analysis import AnalysisInput, analyse, write_report
from mixsig.cli import main


def test_planted_ambiguity_and_dominant_modality_are_found(tmp_path):
    inp, amb = planted(n=600, seed=0)
    to_store(tmp_path / "s.zarr", inp)
    r = analyse(str(tmp_path / "s.zarr"), "planted", split="test", n_boot=200)
    mw = r["join"]["entropy"]["mann_whitney"]
    assert mw["mean_a"] > mw["mean_b"]  # disagreement samples are the ambiguous ones
    assert mw["p"] < 0.01
    assert mw["rank_biserial"] > 0.5
    assert r["join"]["entropy"]["mean_difference"]["ci_low"] > 0
    assert r["join"]["entropy"]["spearman_vs_n_disagree"]["rho"] > 0.3
    dom = r["dominance"]
    assert dom["dominant_modality"] == "audio"
    assert dom["followed_counts"]["audio"] >= 0.9 * dom["n_misled"]
    assert dom["n_misled"] >= 0.9 * amb.sum()
    gates = dom["weights"]["gates"]["by_category"]
    assert gates["misled"]["audio"] > 0.8 > gates["agreement"]["audio"]
    assert all(row["followed"] == "audio" for row in r["top"]["misled"])
    cat = r["samples"]["category"]
    assert (cat[amb] == "misled").mean() > 0.9
    # descriptors: the planted ambiguous clips are longer; found with BH control
    dur = [t for t in r["descriptors"]["tests"]
           if t["descriptor"] == "duration_s" and t["comparison"] == "misled vs others"][0]
    assert dur["q"] < 1e-6 and dur["rank_biserial"] > 0.9
    # human study: the "all" condition (0.8) against each single condition (0.70-0.75), paired per sample; the
    # best-single shares beside their no-effect expectation
    hs = r["human_study"]
    assert set(hs["conditions"]) == {"text", "audio", "video", "all"}
    assert all(v["diff"] > 0 and v["ci"][0] > 0 and v["p"] < 0.01 for v in hs["all_vs"].values())
    cmp_ = hs["all_vs_best_single"]
    assert cmp_["all_beats_best_single"] + cmp_["tie"] + cmp_["all_worse"] == pytest.approx(1.0)
    assert cmp_["all_beats_best_single"] > cmp_["no_effect_expectation"]["beats"]


def test_run_without_votes_with_one_seed_and_two_modalities(tmp_path, capsys):
    inp, _ = planted(n=200, seed=2, n_seeds=1, modalities=("text", "audio"), votes=False)
    to_store(tmp_path / "s.zarr", inp)
    rc = main(["report", str(tmp_path / "s.zarr"), "--run", "planted", "--out", str(tmp_path / "rep"),
               "--bootstrap", "50"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "skipped uncertainty: the samples table has no `votes`" in printed
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["uncertainty"] is None and doc["join"] is None and doc["human_study"] is None
    assert set(doc["skipped"]) == {"uncertainty", "join", "human_study", "robustness", "calibration_votes", "layers",
                                   "dynamics"}
    assert doc["disagreement"]["lone_following"]["defined"] is False
    assert any("lone-modality following needs three" in n for n in doc["notes"])
    assert any("one seed" in n for n in doc["notes"])
    assert doc["metrics"]["text"]["over_seeds"]["accuracy"]["std"] is None
    assert doc["dominance"]["dominant_modality"] == "audio"
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Skipped uncertainty" in html and html.count("<img") == len(doc["figures"]) == 8
    assert doc["top"]["ambiguous_ranking"].startswith("number of disagreeing")


def test_multiclass_run_with_a_class_never_predicted(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 3, n)
    mods = ("text", "audio", "video")
    pred = {m: np.where(y == 2, 1, y) for m in mods}  # nobody ever predicts class 2
    pred["audio"] = np.where(rng.random(n) < 0.3, 0, pred["audio"])
    subsets = {"text": pred["text"], "audio": pred["audio"], "video": pred["video"],
               "text+audio+video": pred["audio"]}
    probs = {k: np.stack([one_hot_probs(v, 3, 0.6), one_hot_probs(v, 3, 0.7)]) for k, v in subsets.items()}
    votes = np.stack([y, y, (y + 1) % 3], axis=1)
    inp = AnalysisInput(ids=[f"m{i}" for i in range(n)], split=["test"] * n, labels=y, classes=("a", "b", "c"),
                        modalities=mods, probs=probs, votes=votes, run_name="multi")
    to_store(tmp_path / "s.zarr", inp)
    rc = main(["--quiet", "report", str(tmp_path / "s.zarr"), "--run", "multi", "--out", str(tmp_path / "rep"),
               "--bootstrap", "50"])
    assert rc == 0
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert any("classes never predicted" in n and "c" in n for n in doc["notes"])
    assert doc["metrics"]["text"]["predicted_classes"][2] == 0
    assert doc["label_counts"] == {c: int((y == k).sum()) for k, c in enumerate("abc")}
    assert doc["metrics"]["text"]["aggregated"]["auroc"]["value"] is not None
    assert doc["human_study"] is None
    assert (tmp_path / "rep" / "report.html").stat().st_size > 10_000


def test_not_predicted_rows_are_excluded_and_counted(tmp_path):
    inp, _ = planted(n=100, seed=3)
    inp.probs["video"][:, :7, :] = np.nan  # features of 7 rows were never extracted
    r = analyse(inp, split="test", n_boot=0)
    assert r["n_samples"] == 93
    assert r["exclusions"]["not_predicted_by_subset"]["video"] == 7
    assert any("7 row(s) of the split are left out" in n for n in r["notes"])


def test_write_report_round_trips_every_number_as_json(tmp_path):
    inp, _ = planted(n=150, seed=5)
    r = analyse(inp, split="all", n_boot=30)
    paths = write_report(r, tmp_path / "o", plots=False)
    doc = json.loads(paths["json"].read_text())
    assert doc["join"]["entropy"]["mann_whitney"]["p"] == pytest.approx(r["join"]["entropy"]["mann_whitney"]["p"])
    assert doc["uncertainty"]["krippendorff_alpha"]["alpha"] == pytest.approx(
        r["uncertainty"]["krippendorff_alpha"]["alpha"])
    assert "samples" not in doc and doc["samples_csv"] == "samples.csv"


def test_analyse_accepts_a_samples_table_and_a_run_object(tmp_path):
    from mixsig.cache import open_store

    inp, _ = planted(n=80, seed=9)
    to_store(tmp_path / "s.zarr", inp)
    store = open_store(tmp_path / "s.zarr")
    a = analyse(store.samples, store.read_run("planted"), split="test", n_boot=20, media_descriptors=False)
    b = analyse(store, "planted", split="test", n_boot=20, media_descriptors=False)
    assert a["disagreement"] == b["disagreement"] and a["metrics"] == b["metrics"]
    assert a["run"]["head"] == "gated" and a["run"]["seeds"] == [0, 1, 2]
