"""mixsig.metrics calibration (issue 17 §4): top-label ECE with equal-mass bins against a direct recomputation and
scikit-learn's calibration_curve; planted: calibrated probabilities (labels drawn from them) give ECE near 0,
sharpened (overconfident) ones a large ECE.

Bound for the calibrated case (stated): with n_b rows per bin, each bin's acc_b - conf_b has standard deviation at
most sqrt(1 / (4 n_b)), so ECE, their weighted mean absolute value, has expectation <= 0.8 sqrt(1 / (4 n_b)); we
require ECE < 1 / sqrt(n_b) (0.0447 for 5,000 rows in 10 bins), over five standard deviations above that."""

import numpy as np
import pytest

from mixsig import metrics


def _direct_ece(y, probs, n_bins):
    conf, pred = probs.max(1), probs.argmax(1)
    order = np.argsort(conf, kind="stable")
    total = 0.0
    for b in np.array_split(order, min(n_bins, len(y))):
        total += len(b) / len(y) * abs(np.mean(pred[b] == y[b]) - np.mean(conf[b]))
    return total


def _calibrated(n, c, seed, sharpen=1.0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, 0.7), n)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)  # labels drawn from the probabilities
    q = p ** sharpen
    return y, q / q.sum(1, keepdims=True)


@pytest.mark.parametrize("n,c,n_bins", [(1003, 3, 10), (57, 2, 10), (7, 4, 10), (400, 2, 15)])
def test_ece_equals_a_direct_recomputation(n, c, n_bins):
    rng = np.random.default_rng(n)
    probs = rng.dirichlet(np.ones(c), n)
    probs[: n // 3] = np.round(probs[: n // 3], 1)  # ties in confidence
    probs /= probs.sum(1, keepdims=True)
    y = rng.integers(0, c, n)
    assert metrics.expected_calibration_error(y, probs, n_bins) == pytest.approx(_direct_ece(y, probs, n_bins), abs=1e-12)
    bins = metrics.calibration_bins(y, probs, n_bins)
    assert bins["ece"] == pytest.approx(_direct_ece(y, probs, n_bins), abs=1e-12)
    assert sum(bins["count"]) == n and max(bins["count"]) - min(bins["count"]) <= 1
    assert bins["n_bins"] == min(n_bins, n)


def test_bins_match_sklearn_calibration_curve_quantile_strategy():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)
    p1 = rng.uniform(0, 1, 1000)
    probs = np.c_[1 - p1, p1]
    y = (rng.uniform(size=1000) < p1).astype(int)
    conf, correct = probs.max(1), (probs.argmax(1) == y).astype(int)
    prob_true, prob_pred = calibration_curve(correct, conf, n_bins=10, strategy="quantile")
    bins = metrics.calibration_bins(y, probs, 10)
    np.testing.assert_allclose(bins["accuracy"], prob_true, atol=1e-12)
    np.testing.assert_allclose(bins["confidence"], prob_pred, atol=1e-12)


def test_calibrated_probs_give_ece_near_zero_and_sharpened_ones_a_large_ece():
    n, n_bins = 5000, 10
    y, p = _calibrated(n, 3, seed=0)
    cal = metrics.ece_bootstrap(y, p, n_bins, n_boot=200, seed=0)
    assert cal["value"] < 1 / np.sqrt(n / n_bins)
    assert cal["n_bins"] == n_bins and cal["n_boot"] == 200
    y2, sharp = _calibrated(n, 3, seed=0, sharpen=4.0)
    over = metrics.ece_bootstrap(y2, sharp, n_bins, n_boot=200, seed=0)
    assert over["value"] > 0.1 and over["ci_low"] > cal["ci_high"]
    assert over["ci_low"] <= over["value"] <= over["ci_high"]
    # overconfident: in the top bins confidence exceeds accuracy
    bins = metrics.calibration_bins(y2, sharp, n_bins)
    assert all(c > a for c, a in zip(bins["confidence"][-3:], bins["accuracy"][-3:]))
    assert metrics.ece_bootstrap(y2, sharp, n_bins, n_boot=200, seed=0) == over  # same seed, same numbers


def test_vote_cross_entropy_is_entropy_plus_kl():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(3), 50), rng.dirichlet(np.ones(3), 50)
    ce = metrics.vote_cross_entropy(p, q)
    h = -(q * np.log(q)).sum(1)
    kl = (q * np.log(q / p)).sum(1)
    np.testing.assert_allclose(ce, h + kl, rtol=1e-10)
    assert metrics.vote_cross_entropy(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(
        -np.log(1e-12))
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.vote_cross_entropy(p, q[:, :2])


def test_ece_if_calibrated_is_the_mean_ece_of_labels_drawn_from_the_confidences():
    rng = np.random.default_rng(4)
    n = 2000
    p1 = rng.uniform(0.5, 1.0, n)
    probs = np.c_[p1, 1 - p1]
    want = metrics.calibration_bins(np.zeros(n, int), probs, 10)["ece_if_calibrated"]
    # Monte Carlo: the top label (class 0) right with probability its confidence
    sims = [metrics.expected_calibration_error((rng.random(n) >= p1).astype(int), probs, 10) for _ in range(300)]
    assert want == pytest.approx(np.mean(sims), rel=0.1)
    assert 0.005 < want < 1 / np.sqrt(n / 10)
