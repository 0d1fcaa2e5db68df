"""Metrics against scikit-learn; disagreement, cells, categories and seed aggregation on a hand-built run."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from tests.analysis.helpers import one_hot_probs

from mixsig.analysis import AnalysisInput, aggregate_seeds, analyse, bootstrap_metrics, point_metrics


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_point_metrics_match_sklearn(n_classes):
    rng = np.random.default_rng(n_classes)
    n = 300
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = np.round(probs, 2)  # ties in the scores
    probs /= probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    m = point_metrics(y, probs, pred)
    labels = list(range(n_classes))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-9)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", labels=labels, zero_division=0), abs=1e-9)
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted", labels=labels, zero_division=0),
                                             abs=1e-9)
    ref_auc = roc_auc_score(y, probs[:, 1]) if n_classes == 2 else roc_auc_score(y, probs, multi_class="ovr",
                                                                                   average="macro")
    assert m["auroc"] == pytest.approx(ref_auc, abs=1e-9)


def test_metrics_with_a_class_never_predicted_match_sklearn():
    y = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    pred = np.array([0, 1, 1, 1, 1, 0, 1, 0])  # class 2 never predicted
    probs = one_hot_probs(pred, 3, conf=0.7)
    m = point_metrics(y, probs, pred)
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0),
                                          abs=1e-9)
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted", labels=[0, 1, 2],
                                                      zero_division=0), abs=1e-9)


def test_bootstrap_intervals_are_seeded_and_bracket_the_value():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 + 0.3 * (y - 0.5) + 0.25 * rng.normal(size=n), 0, 1)
    probs = np.stack([1 - score, score], axis=1)
    pred = probs.argmax(axis=1)
    a = bootstrap_metrics(y, probs, pred, n_boot=400, seed=4)
    assert a == bootstrap_metrics(y, probs, pred, n_boot=400, seed=4)
    for name in ("accuracy", "macro_f1", "weighted_f1", "auroc"):
        assert a[name]["ci_low"] < a[name]["value"] < a[name]["ci_high"], name
    acc = a["accuracy"]["value"]
    se = np.sqrt(acc * (1 - acc) / n)
    assert a["accuracy"]["ci_high"] - a["accuracy"]["ci_low"] == pytest.approx(2 * 1.96 * se, rel=0.2)
    auc = a["auroc"]
    assert auc["value"] == pytest.approx(roc_auc_score(y, score), abs=1e-9)
    assert 0.01 < auc["ci_high"] - auc["ci_low"] < 0.1


def test_seed_aggregation_majority_vote_with_mean_probability_tie_break():
    # 3 samples, 2 seeds, 3 classes
    probs = np.array([
        [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]],
        [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.5, 0.2]],
    ])
    agg = aggregate_seeds(probs)
    assert agg.seed_pred.tolist() == [[0, 0, 2], [0, 1, 1]]
    # sample 1: a 0/1 tie, mean probs (0.3, 0.6, 0.1) -> 1; sample 2: 2/1 tie, mean (0.25, 0.35, 0.4) -> 2
    assert agg.pred.tolist() == [0, 1, 2]
    assert np.allclose(agg.mean_probs[1], [0.3, 0.6, 0.1])
    three = np.array([[[0.9, 0.1]], [[0.4, 0.6]], [[0.45, 0.55]]])  # majority (2 of 3) beats a higher mean
    assert aggregate_seeds(three).pred.tolist() == [1]


# y, text, audio, video, full: a hand-built run; the expected numbers below are counted by hand.
Y = [0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
T = [0, 1, 0, 0, 1, 0, 1, 1, 0, 0]
A = [0, 0, 1, 1, 1, 0, 0, 1, 1, 1]
V = [0, 0, 1, 0, 0, 0, 1, 1, 0, 0]
F = [0, 0, 1, 0, 1, 0, 1, 0, 1, 1]


def hand_built():
    mods = ("text", "audio", "video")
    preds = {"text": T, "audio": A, "video": V, "text+audio": F, "text+video": F, "audio+video": F,
             "text+audio+video": F}
    probs = {k: one_hot_probs(v, 2)[None] for k, v in preds.items()}
    votes = np.array([[0, 0, 0], [0, 1, -1], [0, 1, 1], [0, 0, 1], [1, 1, 1],
                      [1, 1, 1], [1, 0, 1], [1, 0, 0], [1, 0, 1], [0, 1, 0]])
    return AnalysisInput(ids=[f"h{i}" for i in range(10)], split=["test"] * 10, labels=Y, classes=("neg", "pos"),
                         modalities=mods, probs=probs, votes=votes)


def test_disagreement_rates_cells_categories_on_a_hand_built_run():
    r = analyse(hand_built(), split="test", n_boot=50)
    dis = r["disagreement"]
    per = dis["per_modality"]
    assert per["text"]["rate"] == pytest.approx(0.5)
    assert per["audio"]["rate"] == pytest.approx(0.3)
    assert per["video"]["rate"] == pytest.approx(0.4)
    assert per["text"]["cells"] == {"both_correct": 4, "both_wrong": 1, "rescued": 2, "misled": 3}
    assert per["audio"]["cells"] == {"both_correct": 4, "both_wrong": 3, "rescued": 2, "misled": 1}
    assert per["video"]["cells"] == {"both_correct": 4, "both_wrong": 2, "rescued": 2, "misled": 2}
    assert dis["n_disagree_histogram"] == {"0": 2, "1": 5, "2": 2, "3": 1}
    assert dis["categories"] == {"agreement": 2, "rescued": 5, "misled": 3, "disagree_wrong": 0}
    assert dis["lone_following"]["counts"] == {"text": 0, "audio": 2, "video": 0}
    assert dis["lone_following"]["full_accuracy_when_following"]["audio"] == pytest.approx(0.5)
    s = r["samples"]
    assert s["n_disagree"].tolist() == [0, 1, 1, 1, 1, 0, 1, 3, 2, 2]
    assert s["category"].tolist() == ["agreement", "rescued", "misled", "rescued", "rescued", "agreement",
                                      "rescued", "misled", "rescued", "misled"]
    assert s["lone_follow"].tolist() == [""] * 8 + ["audio", "audio"]
    assert s["followed"].tolist() == ["all", "several", "several", "several", "several", "all", "several", "none",
                                      "audio", "audio"]
    dom = r["dominance"]
    assert dom["followed_counts"] == {"text": 0, "audio": 1, "video": 0, "several": 1, "none": 1}
    assert dom["dominant_modality"] == "audio"
    # entropy per sample (bits) from the votes
    h = lambda p: -sum(x * np.log2(x) for x in p if x > 0)  # noqa: E731
    expected = [0, 1, h([1 / 3, 2 / 3]), h([2 / 3, 1 / 3]), 0, 0, h([1 / 3, 2 / 3]), h([1 / 3, 2 / 3]),
                h([1 / 3, 2 / 3]), h([2 / 3, 1 / 3])]
    assert np.allclose(s["entropy"], expected, atol=1e-12)
    # the join: entropy in disagreement vs agreement samples, against scipy directly
    import scipy.stats

    ent = np.array(expected)
    dis_mask = np.array([c != "agreement" for c in s["category"]])
    ref = scipy.stats.mannwhitneyu(ent[dis_mask], ent[~dis_mask], alternative="two-sided")
    mw = r["join"]["entropy"]["mann_whitney"]
    assert mw["u"] == pytest.approx(ref.statistic, abs=1e-9) and mw["p"] == pytest.approx(ref.pvalue, abs=1e-9)
    sp = scipy.stats.spearmanr(s["n_disagree"], ent)
    assert r["join"]["entropy"]["spearman_vs_n_disagree"]["rho"] == pytest.approx(sp.statistic, abs=1e-9)
    # metrics of the full model from the hand-built predictions
    assert r["metrics"]["text+audio+video"]["aggregated"]["accuracy"]["value"] == pytest.approx(0.6)
    assert r["metrics"]["text"]["over_seeds"]["accuracy"]["std"] is None  # one seed
    assert any("one seed" in note for note in r["notes"])


def test_multiclass_auroc_interval_brackets_the_exact_value():
    rng = np.random.default_rng(9)
    n = 900
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.0 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    a = bootstrap_metrics(y, probs, probs.argmax(axis=1), n_boot=300, seed=0)["auroc"]
    assert a["value"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"), abs=1e-9)
    assert a["ci_low"] < a["value"] < a["ci_high"] and a["ci_high"] - a["ci_low"] < 0.15
    assert a["n_boot"] == 300 and "one-vs-rest" in a["method"]


def test_binned_auroc_interval_agrees_with_a_plain_index_bootstrap():
    rng = np.random.default_rng(11)
    n = 3000  # continuous scores: far more distinct values than bins
    y = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(1.2 * (y - 0.5) + rng.normal(size=n))))
    probs = np.stack([1 - score, score], axis=1)
    ours = bootstrap_metrics(y, probs, probs.argmax(axis=1), n_boot=1000, seed=0)["auroc"]
    plain = []
    for _ in range(400):
        idx = rng.integers(0, n, n)
        plain.append(roc_auc_score(y[idx], score[idx]))
    lo, hi = np.quantile(plain, [0.025, 0.975])
    assert ours["ci_low"] == pytest.approx(lo, abs=0.006)
    assert ours["ci_high"] == pytest.approx(hi, abs=0.006)
