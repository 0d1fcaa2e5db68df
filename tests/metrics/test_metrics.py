"""One definition of every metric (mixsig.metrics), checked against scikit-learn, and the collapse check."""

import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from mixsig.metrics import aggregate, chance_macro_f1, collapse, get_metric, point_metrics, score


def _sk(y, probs, pred, C):
    labels = list(range(C))
    out = {"accuracy": accuracy_score(y, pred),
           "macro_f1": f1_score(y, pred, labels=labels, average="macro", zero_division=0),
           "weighted_f1": f1_score(y, pred, labels=labels, average="weighted", zero_division=0)}
    if C == 2:
        out["auroc"] = roc_auc_score(y, probs[:, 1])
    else:
        present = [c for c in labels if 0 < (y == c).sum() < len(y)]
        out["auroc"] = float(np.mean([roc_auc_score(y == c, probs[:, c]) for c in present]))
    return out


def _case(kind, C, n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    if kind == "absent":
        y[y == C - 1] = 0  # the last class never occurs
    probs = rng.dirichlet(np.ones(C), n)
    probs[np.arange(n), y] += 0.4 * rng.random(n)
    if kind == "one_pred":
        probs[:, 1] += 5.0
    if kind == "ties":
        probs = np.round(probs * 4) / 4 + 1e-3  # few distinct scores: many tied
    probs /= probs.sum(1, keepdims=True)
    return y, probs


@pytest.mark.parametrize("C,kind", [(2, "plain"), (5, "plain"), (3, "absent"), (5, "absent"), (2, "one_pred"),
                                    (5, "one_pred"), (2, "ties"), (5, "ties")])
def test_every_metric_matches_sklearn_with_all_classes_counted(C, kind):
    y, probs = _case(kind, C)
    pred = probs.argmax(1)
    want = _sk(y, probs, pred, C)
    got = point_metrics(y, probs)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
        assert score(name, y, probs) == pytest.approx(value, abs=1e-12), name
        assert get_metric(name)(y, probs) == got[name]


def test_absent_class_counts_in_macro_f1():
    # 3 classes, class 2 absent from y and never predicted: its F1 (0) is in the mean.
    y = np.array([0, 0, 1, 1])
    probs = np.array([[.9, .05, .05], [.2, .7, .1], [.1, .8, .1], [.6, .3, .1]])
    got = point_metrics(y, probs)
    assert got["macro_f1"] == pytest.approx((0.5 + 0.5 + 0) / 3)  # not 0.5, the mean over seen classes only
    assert np.isfinite(got["auroc"])


def test_aggregate_std_is_ddof1_and_none_for_one_seed():
    a = aggregate([{"accuracy": .5, "macro_f1": .4, "weighted_f1": .4, "auroc": float("nan")},
                   {"accuracy": .7, "macro_f1": .6, "weighted_f1": .6, "auroc": float("nan")}])
    assert a["accuracy"]["std"] == pytest.approx(np.std([.5, .7], ddof=1))
    assert a["auroc"] == {"mean": None, "std": None, "per_seed": [None, None]}
    assert aggregate([{"accuracy": .5, "macro_f1": .4, "weighted_f1": .4, "auroc": .5}])["accuracy"]["std"] is None


def test_collapse_finds_one_class_and_chance_and_passes_a_real_model():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 600)
    one = np.tile([0.2, 0.5, 0.3], (600, 1))
    assert "one class" in collapse(y, one)
    # label-independent predictions with fixed shares: planted chance
    pred = np.sort(rng.permutation(np.repeat([0, 1, 2], 200)))  # independent of y
    probs = np.eye(3)[pred]
    mf1 = point_metrics(y, probs)["macro_f1"]
    chance = chance_macro_f1(y, pred, 3)
    if mf1 <= chance:
        assert "chance" in collapse(y, probs)
    # anti-correlated predictions are always collapsed
    worse = np.eye(3)[(y + 1) % 3]
    assert "chance" in collapse(y, worse)
    # a real model is never collapsed
    good = np.eye(3)[np.where(rng.random(600) < 0.7, y, rng.integers(0, 3, 600))]
    assert collapse(y, good) is None
    # nothing to tell apart: one class in y
    assert collapse(np.zeros(10, int), np.tile([1.0, 0.0], (10, 1))) is None


def test_chance_macro_f1_equals_the_mean_over_label_permutations():
    rng = np.random.default_rng(1)
    y = rng.choice(3, 300, p=[.6, .3, .1])
    pred = rng.choice(3, 300, p=[.2, .5, .3])
    perm = [point_metrics(rng.permutation(y), np.eye(3)[pred])["macro_f1"] for _ in range(3000)]
    assert chance_macro_f1(y, pred, 3) == pytest.approx(np.mean(perm), abs=0.003)


def test_metric_names_import_without_numpy():
    code = ("import sys; from mixsig.metrics import METRICS; assert 'numpy' not in sys.modules, 'numpy imported'; "
            "print(','.join(METRICS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "accuracy,macro_f1,weighted_f1,auroc"
