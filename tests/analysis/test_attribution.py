"""Counterfactual attribution (report.json ``attribution``, issue 14 §1): which modality misled the fusion is the
one whose removal (the run's subset without it) fixes the misled samples; planted runs with a known cause, a null
run, a two-modality run, a run lacking the needed subsets; every count recomputed here from the predictions."""

import json
from itertools import combinations

import numpy as np

from tests.analysis.helpers import constant_run

from mixsig.analysis import analyse, sections, write_report

MODS = ("text", "audio", "video")


def _subsets(mods):
    return ["+".join(c) for k in range(1, len(mods) + 1) for c in combinations(mods, k)]


def _input(y, preds, mods=MODS, n_classes=2, n_seeds=2):
    """A run whose every seed predicts ``preds[subset]`` (``[n]`` class indices) with probability 0.8."""
    return constant_run(y, preds, mods, n_classes, n_seeds, run_name="att")


def _background(rng, y, mods=MODS, slip=0.03):
    """Every subset right except independent random slips (binary labels)."""
    return {s: np.where(rng.random(len(y)) < slip, 1 - y, y) for s in _subsets(mods)}


def _expected_fixes(y, preds, mods=MODS):
    """Misled (full wrong, some unimodal right) and, per modality, the misled samples the subset without it gets
    right — recomputed from the planted predictions, independently of mixsig."""
    full = "+".join(mods)
    misled = (preds[full] != y) & np.any([preds[m] == y for m in mods], axis=0)
    fixes = {m: int((misled & (preds["+".join(x for x in mods if x != m)] == y)).sum()) for m in mods}
    return int(misled.sum()), fixes


def _audio_misleads(seed=0, n=400):
    """Planted: on a fifth of the rows audio causes the error — every subset with audio is wrong, text+video is
    right — while the unimodal text model shares the full model's error, so the full model follows text
    exclusively on half of them (the other half: text and audio both wrong, 'several')."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    preds = _background(rng, y)
    planted = rng.random(n) < 0.2
    half = planted & (rng.random(n) < 0.5)
    wrong = 1 - y
    for s in preds:
        if "audio" in s.split("+") and s != "audio":
            preds[s] = np.where(planted, wrong, preds[s])
    preds["text+video"] = np.where(planted, y, preds["text+video"])
    preds["text"] = np.where(planted, wrong, preds["text"])
    preds["audio"] = np.where(planted, np.where(half, y, wrong), preds["audio"])
    preds["video"] = np.where(planted, y, preds["video"])
    return y, preds, planted


def test_planted_audio_is_named_where_exclusive_following_names_text(tmp_path):
    y, preds, planted = _audio_misleads()
    r = analyse(_input(y, preds), split="test", n_boot=20)
    att = r["attribution"]
    n_mis, fixes = _expected_fixes(y, preds)
    assert att["n_misled"] == n_mis >= planted.sum()
    assert {m: v["fixes"] for m, v in att["by_modality"].items()} == fixes
    assert all(att["by_modality"][m]["share"] == fixes[m] / n_mis for m in MODS)
    assert att["by_modality"]["audio"]["subset_without"] == "text+video"
    assert att["misleading_modality"] == "audio" and att["tied"] is None
    assert att["by_modality"]["audio"]["fixes"] >= planted.sum()
    assert all(t["p"] < 1e-6 for t in att["lead_tests"].values())
    # the old rule (the modality followed exclusively most often) names text on this run
    dom = r["dominance"]
    assert dom["dominant_modality"] == "text" and dom["followed_counts"]["audio"] == 0
    # the page names audio as the misleading modality and no longer crowns text
    paths = write_report(r, tmp_path / "rep", plots=False)
    md = paths["md"].read_text()
    assert "## 5. Which modality misled the fusion? Removing each modality" in md
    assert "misleading modality: **audio**" in md
    assert "most often followed exclusively: text" in md and "dominant (most often followed alone)" not in md
    assert "| audio | text+video |" in md
    assert json.loads(paths["json"].read_text())["attribution"]["misleading_modality"] == "audio"
    png, caption = sections.attribution.figures(r)["attribution"]
    assert png.startswith(b"\x89PNG") and "removing each modality fixes" in caption


def test_equal_fixes_are_a_tie_and_name_no_modality():
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 2, n)
    preds = {s: y.copy() for s in _subsets(MODS)}
    bad = np.arange(n) < 60  # the full model wrong, every subset without one modality right
    preds["text+audio+video"] = np.where(bad, 1 - y, y)
    preds["text"] = np.where(bad & (np.arange(n) < 30), 1 - y, y)  # followed exclusively on 30 ...
    preds["audio"] = np.where(bad & (np.arange(n) >= 30), 1 - y, y)  # ... and on the other 30
    r = analyse(_input(y, preds), split="test", n_boot=20)
    assert r["dominance"]["dominant_modality"] is None and r["dominance"]["dominant_tied"] == ["text", "audio"]
    att = r["attribution"]
    assert att["n_misled"] == 60
    assert {m: v["fixes"] for m, v in att["by_modality"].items()} == {"text": 60, "audio": 60, "video": 60}
    assert att["misleading_modality"] is None and att["tied"] == ["text", "audio", "video"]
    assert "tied" in att["why_none"]


def test_null_run_names_no_modality():
    """Independent random errors of equal rate in every subset: no modality causes anything, and across ten fixed
    seeds the rule names a modality at most once (it needs a separating sign test, not just a strict lead)."""
    named = []
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        y = rng.integers(0, 2, 300)
        preds = _background(rng, y, slip=0.15)
        att = analyse(_input(y, preds, n_seeds=1), split="test", n_boot=0)["attribution"]
        n_mis, fixes = _expected_fixes(y, preds)
        assert att["n_misled"] == n_mis > 10
        assert {m: v["fixes"] for m, v in att["by_modality"].items()} == fixes
        if seed == 0:
            assert att["misleading_modality"] is None
            assert att["tied"] or "not separated" in att["why_none"]
        named.append(att["misleading_modality"])
    assert sum(m is not None for m in named) <= 1, named


def test_nothing_misled_names_no_modality():
    y = np.random.default_rng(2).integers(0, 2, 80)
    preds = {s: y.copy() for s in _subsets(MODS)}
    att = analyse(_input(y, preds), split="test", n_boot=0)["attribution"]
    assert att["n_misled"] == 0 and att["misleading_modality"] is None and att["why_none"] == "no misled samples"
    assert all(v["share"] is None for v in att["by_modality"].values())


def test_two_modality_run_removing_audio_leaves_text():
    mods = ("text", "audio")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    preds = _background(rng, y, mods)
    planted = rng.random(300) < 0.2
    preds["text+audio"] = np.where(planted, 1 - y, preds["text+audio"])
    preds["audio"] = np.where(planted, 1 - y, preds["audio"])
    preds["text"] = np.where(planted, y, preds["text"])
    att = analyse(_input(y, preds, mods), split="test", n_boot=0)["attribution"]
    n_mis, fixes = _expected_fixes(y, preds, mods)
    assert att["n_misled"] == n_mis and {m: v["fixes"] for m, v in att["by_modality"].items()} == fixes
    assert att["by_modality"]["audio"]["subset_without"] == "text"
    assert att["by_modality"]["text"]["subset_without"] == "audio"
    assert att["misleading_modality"] == "audio"


def test_run_without_the_needed_subsets_is_skipped_with_the_reason(tmp_path):
    y, preds, _ = _audio_misleads(n=200)
    del preds["text+video"], preds["audio+video"]
    r = analyse(_input(y, preds), split="test", n_boot=0)
    assert r["attribution"] is None
    why = r["skipped"]["attribution"]
    assert "audio+video, text+video" in why and "`mixsig train` trains every subset" in why
    md = write_report(r, tmp_path / "rep", plots=False)["md"].read_text()
    assert "Skipped attribution" in md  # in the header's list, and in the section itself:
    assert "## 5. Which modality misled the fusion? Removing each modality\n\n> Skipped: run 'att' lacks" in md
