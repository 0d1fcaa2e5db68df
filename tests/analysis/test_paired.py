"""Paired comparisons of the full model with every other subset (report.json ``paired``, issue 14 §2): the
discordant counts, exact McNemar against scipy's binomial test, Benjamini–Hochberg against scipy, the paired
bootstrap of the accuracy / macro-F1 difference recomputed with scikit-learn on the same resampled rows; a planted
difference is found and a null one is not."""

import json

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import accuracy_score, f1_score

from tests.analysis.helpers import constant_run

from mixsig.analysis import AnalysisInput, analyse, sections, write_report

MODS = ("text", "audio", "video")
SUBSETS = ["text", "audio", "video", "text+audio", "text+video", "audio+video", "text+audio+video"]


def _input(y, preds, n_classes=2, n_seeds=2):
    return constant_run(y, preds, MODS, n_classes, n_seeds, run_name="paired")


def _wrong(rng, y, n_classes, rate):
    """``y`` with a random share ``rate`` of rows moved to another class."""
    slip = rng.random(len(y)) < rate
    return np.where(slip, (y + 1 + rng.integers(0, n_classes - 1, len(y))) % n_classes, y)


def _run(seed=0, n=500, n_classes=2):
    """Full model 0.85 accurate; text+audio gives the full model's predictions (identical); audio is planted
    worse (its errors are a superset of the full model's plus 15% more rows); every other subset makes
    independent errors at the full model's rate."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    full = _wrong(rng, y, n_classes, 0.15)
    preds = {s: _wrong(rng, y, n_classes, 0.15) for s in SUBSETS}
    preds["text+audio+video"] = full
    preds["text+audio"] = full.copy()
    extra = (full == y) & (rng.random(n) < 0.18)
    preds["audio"] = np.where(extra, (y + 1) % n_classes, full)
    return y, preds


def test_mcnemar_and_bh_equal_scipy_and_the_counts_are_the_discordant_pairs():
    y, preds = _run(n_classes=3)
    r = analyse(_input(y, preds, n_classes=3), split="test", n_boot=50)
    paired = r["paired"]
    assert list(paired) == SUBSETS[:-1]  # every other subset, in the run's order
    full_ok = preds["text+audio+video"] == y
    for s, v in paired.items():
        ok = preds[s] == y
        b, c = int((full_ok & ~ok).sum()), int((~full_ok & ok).sum())
        assert (v["full_right_other_wrong"], v["full_wrong_other_right"]) == (b, c)
        expect = scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
        assert v["mcnemar_p"] == pytest.approx(expect, rel=1e-12, abs=1e-300)
    q = scipy.stats.false_discovery_control([v["mcnemar_p"] for v in paired.values()], method="bh")
    assert [v["mcnemar_p_bh"] for v in paired.values()] == pytest.approx(list(q), rel=1e-12)


def test_planted_difference_is_found_and_identical_or_independent_predictions_are_not():
    y, preds = _run(seed=2)
    paired = analyse(_input(y, preds), split="test", n_boot=500)["paired"]
    worse = paired["audio"]  # the full model is right on 18% of its right rows where audio is wrong
    assert worse["full_wrong_other_right"] == 0 and worse["full_right_other_wrong"] > 50
    assert worse["mcnemar_p"] < 0.01 and worse["mcnemar_p_bh"] < 0.01
    for m in ("accuracy", "macro_f1"):
        assert worse["diff"][m]["value"] > 0 and worse["diff"][m]["ci"][0] > 0
    same = paired["text+audio"]  # identical predictions
    assert same["full_right_other_wrong"] == same["full_wrong_other_right"] == 0 and same["mcnemar_p"] == 1.0
    assert same["diff"]["accuracy"] == {"value": 0.0, "ci": [0.0, 0.0], "full": same["diff"]["accuracy"]["full"],
                                        "other": same["diff"]["accuracy"]["full"]}
    for s in ("text", "video", "text+video", "audio+video"):  # independent errors at the same rate (fixed seed)
        assert paired[s]["mcnemar_p"] > 0.05, s
        for m in ("accuracy", "macro_f1"):
            lo, hi = paired[s]["diff"][m]["ci"]
            assert lo < 0 < hi, (s, m)


def test_paired_bootstrap_equals_scikit_learn_on_the_same_resampled_rows():
    """The interval is recomputed here: the same draw (rows resampled with replacement, drawn as multinomial counts
    over the distinct (label, full, other) rows with numpy's default_rng(seed)), every replicate scored for both
    models with scikit-learn on the rows it drew; and a plain index bootstrap agrees within Monte-Carlo error."""
    n_classes, n_boot, seed = 3, 40, 7
    y, preds = _run(seed=1, n=300, n_classes=n_classes)
    preds = {s: preds[s] for s in ("audio", "video", "text+audio+video")}  # the full model and two others
    inp = _input(y, preds, n_classes=n_classes)
    r = analyse(inp, split="test", n_boot=n_boot, seed=seed)
    big = analyse(inp, split="test", n_boot=400, seed=seed)["paired"]
    full = preds["text+audio+video"]
    labels = list(range(n_classes))

    def macro(t, p):
        return f1_score(t, p, labels=labels, average="macro", zero_division=0)

    for s in ("audio", "video"):
        other = preds[s]
        got = r["paired"][s]["diff"]
        assert got["accuracy"]["value"] == pytest.approx(accuracy_score(y, full) - accuracy_score(y, other), abs=1e-15)
        assert got["macro_f1"]["value"] == pytest.approx(macro(y, full) - macro(y, other), abs=1e-15)
        code = (y * n_classes + full) * n_classes + other
        uniq, first, mult = np.unique(code, return_index=True, return_counts=True)
        draws = np.random.default_rng(seed).multinomial(len(y), mult / len(y), size=n_boot)
        d_acc, d_f1 = [], []
        for w in draws:
            rows = np.repeat(first, w)  # a representative row of each distinct triple, as often as drawn
            d_acc.append(accuracy_score(y[rows], full[rows]) - accuracy_score(y[rows], other[rows]))
            d_f1.append(macro(y[rows], full[rows]) - macro(y[rows], other[rows]))
        assert got["accuracy"]["ci"] == pytest.approx(list(np.quantile(d_acc, [0.025, 0.975])), abs=1e-12)
        assert got["macro_f1"]["ci"] == pytest.approx(list(np.quantile(d_f1, [0.025, 0.975])), abs=1e-12)
        idx = np.random.default_rng(99).integers(0, len(y), (2000, len(y)))
        plain = ((full[idx] == y[idx]).mean(1) - (other[idx] == y[idx]).mean(1))
        ci = big[s]["diff"]["accuracy"]["ci"]
        assert ci == pytest.approx(list(np.quantile(plain, [0.025, 0.975])), abs=0.015)
        assert ci[0] <= got["accuracy"]["value"] <= ci[1]


def test_page_says_what_each_number_means_and_a_run_with_only_its_full_subset_is_skipped(tmp_path):
    y, preds = _run(n=200)
    r = analyse(_input(y, preds), split="test", n_boot=100)
    paths = write_report(r, tmp_path / "rep", plots=False)
    md = paths["md"].read_text()
    assert "## 1b. Paired comparisons: the full model against each subset" in md
    assert "Full model: **text+audio+video**, against each other subset on the same 200 samples" in md
    assert "exact two-sided binomial test" in md and "Benjamini–Hochberg" in md
    assert "each resample scoring both models on the same drawn samples" in md and "100 resamples" in md
    assert "the full model is right more often than: audio; less often than: none;" in md  # planted, by BH q
    v = r["paired"]["audio"]
    assert (f"| audio | {v['full_right_other_wrong']} | {v['full_wrong_other_right']} | " in md)
    doc = json.loads(paths["json"].read_text())
    assert set(doc["paired"]["video"]) >= {"full_right_other_wrong", "full_wrong_other_right", "mcnemar_p",
                                           "mcnemar_p_bh", "diff"}
    png, caption = sections.paired.figures(r)["paired"]
    assert png.startswith(b"\x89PNG") and "paired bootstrap" in caption
    only_full = AnalysisInput(ids=["a", "b", "c"], split=np.full(3, "test"), labels=np.array([0, 1, 0]),
                              classes=("c0", "c1"), modalities=("text",), probs={"text": np.full((1, 3, 2), 0.5)},
                              seeds=(0,), run_name="solo")
    r = analyse(only_full, split="test", n_boot=10)
    assert r["paired"] is None and "has only its full subset 'text'" in r["skipped"]["paired"]
