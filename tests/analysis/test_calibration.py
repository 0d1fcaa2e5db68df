"""The report's calibration section (issue 17 §4): planted calibrated / overconfident subsets, the vote
cross-entropy's correlation with vote entropy (planted: predictions equal to the vote shares; null: votes drawn
independently of the predictions: the interval covers the permutation reference, which is not exactly 0), a reference recomputation of every number, and runs without votes.

ECE bound for the calibrated subset (stated): 10 equal-mass bins of n_b = 300 rows; ECE < 1 / sqrt(n_b) = 0.058
(the sampling noise of a calibrated model is about 0.8·sqrt(1 / (4 n_b)) = 0.023)."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from mixsig import metrics
from mixsig.analysis import AnalysisInput, analyse
from mixsig.analysis.sections import calibration

N, C, A = 3000, 3, 6


def _input(seed=0, votes="shares"):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(C, 0.7), N)
    y = (rng.random(N)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)  # labels drawn from the probabilities
    sharp = p ** 4 / (p ** 4).sum(1, keepdims=True)
    if votes == "shares":  # every annotator votes from p: the predictions are the expected vote shares
        src = p
    else:  # votes from a distribution independent of every prediction
        src = rng.dirichlet(np.full(C, 0.7), N)
    v = (rng.random((N, A))[:, :, None] > np.cumsum(src, axis=1)[:, None, :]).sum(axis=2).astype(np.int16)
    v[rng.random((N, A)) < 0.1] = -1
    v[:20] = -1  # samples without votes
    probs = {"text": p[None], "audio": sharp[None], "text+audio": np.stack([p, sharp])}
    return AnalysisInput(ids=[f"c{i}" for i in range(N)], split=["test"] * N, labels=y,
                         classes=("a", "b", "c"), modalities=("text", "audio"), probs=probs, votes=v, run_name="cal")


@pytest.fixture(scope="module")
def planted():
    inp = _input(0, "shares")
    return inp, analyse(inp, split="test", n_boot=200)


def test_calibrated_subset_has_ece_near_zero_and_the_sharpened_one_a_large_ece(planted):
    _, r = planted
    cal = r["calibration"]
    assert set(cal) == {"text", "audio", "text+audio"}
    assert cal["text"]["ece"] < 1 / np.sqrt(N / 10)
    assert cal["text"]["ece"] < 3 * cal["text"]["ece_if_calibrated"] < cal["audio"]["ece"]
    assert cal["audio"]["ece"] > 0.1 and cal["audio"]["ece_ci"][0] > cal["text"]["ece_ci"][1]
    assert cal["text"]["bins"]["n_bins"] == 10 and sum(cal["text"]["bins"]["count"]) == N
    assert "10 equal-mass bins" in r["calibration_definition"]
    assert "calibration_votes" not in r["skipped"]


def test_vote_cross_entropy_tracks_vote_entropy_when_predictions_are_the_vote_shares(planted):
    _, r = planted
    sp = r["calibration"]["text"]["ce_entropy_spearman"]
    assert sp["rho"] > 0.5 and sp["ci"][0] > 0.4 and sp["p"] < 1e-6 and sp["n"] == N - 20


def test_votes_independent_of_the_predictions_give_a_rho_interval_covering_the_permuted_reference():
    """Null: with votes drawn independently of the predictions the rho interval covers the permutation reference
    (rho_permuted, itself a small positive number here: a rank artefact of the skewed −ln p, see the definition) and
    the permutation test finds nothing; the planted fixture's rho is far from its reference."""
    r = analyse(_input(1, "independent"), split="test", n_boot=0)
    for s, v in r["calibration"].items():
        sp = v["ce_entropy_spearman"]
        lo, hi = sp["ci"]
        assert lo < sp["rho_permuted"] < hi and sp["p_permutation"] > 0.05, (s, sp)
        assert abs(sp["rho_permuted"]) < 0.2


def test_the_planted_correlation_is_found_by_the_permutation_test(planted):
    _, r = planted
    sp = r["calibration"]["text"]["ce_entropy_spearman"]
    assert sp["p_permutation"] <= 1 / 101 + 1e-12 and sp["ci"][0] > sp["rho_permuted"] + 0.2


def test_every_number_equals_a_recomputation(planted):
    inp, r = planted
    have = (inp.votes >= 0).sum(1) > 0
    counts = np.stack([(inp.votes == k).sum(1) for k in range(C)], axis=1).astype(float)
    q = counts[have] / counts[have].sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(q > 0, q * np.log2(q), 0.0), axis=1)
    for s, p in inp.probs.items():
        mean = p.mean(0)
        v = r["calibration"][s]
        assert v["ece"] == pytest.approx(metrics.expected_calibration_error(inp.labels, mean, 10), abs=1e-12)
        assert v["ece_if_calibrated"] == metrics.calibration_bins(inp.labels, mean, 10)["ece_if_calibrated"]
        ce = -(q * np.log(np.maximum(mean[have], 1e-12))).sum(1)
        assert v["cross_entropy_votes"] == pytest.approx(ce.mean()) and v["n_with_votes"] == have.sum()
        assert v["cross_entropy_votes_ci"][0] < ce.mean() < v["cross_entropy_votes_ci"][1]
        ref = spearmanr(ce, ent)
        rho, n = v["ce_entropy_spearman"]["rho"], v["ce_entropy_spearman"]["n"]
        assert rho == pytest.approx(ref.statistic) and v["ce_entropy_spearman"]["p"] == pytest.approx(ref.pvalue)
        half = 1.959964 * np.sqrt(1.06 / (n - 3))
        assert v["ce_entropy_spearman"]["ci"] == pytest.approx([np.tanh(np.arctanh(rho) - half),
                                                                np.tanh(np.arctanh(rho) + half)])
        if s == "audio":  # the permutation reference, by hand: default_rng(seed) permutations of the predictions
            rng = np.random.default_rng(0)
            perm = [spearmanr(-(q * np.log(np.maximum(mean[have][rng.permutation(n)], 1e-12))).sum(1), ent).statistic
                    for _ in range(100)]
            m = np.mean(perm)
            assert v["ce_entropy_spearman"]["rho_permuted"] == pytest.approx(m)
            p_perm = (1 + np.sum(np.abs(np.array(perm) - m) >= abs(rho - m) - 1e-12)) / 101
            assert v["ce_entropy_spearman"]["p_permutation"] == pytest.approx(p_perm)


def test_a_run_without_votes_reports_ece_and_says_why_the_soft_labels_are_skipped(planted):
    inp, _ = planted
    bare = AnalysisInput(ids=inp.ids, split=inp.split, labels=inp.labels, classes=inp.classes,
                         modalities=inp.modalities, probs=inp.probs, run_name="bare")
    r = analyse(bare, split="test", n_boot=0)
    v = r["calibration"]["text+audio"]
    assert v["cross_entropy_votes"] is None and v["ce_entropy_spearman"] is None and np.isfinite(v["ece"])
    assert "no `votes`" in r["skipped"]["calibration_votes"]
    text = " ".join(str(b[1]) for b in calibration.blocks(r, {}))
    assert "Soft labels skipped" in text and "ECE" in text
