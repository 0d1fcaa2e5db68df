"""Statistics against published worked examples and scipy, to 1e-9."""

import itertools

import numpy as np
import pytest
import scipy.stats

from mixsig.analysis import (
    benjamini_hochberg,
    bootstrap_mean_difference,
    krippendorff_alpha_bootstrap,
    krippendorff_alpha_nominal,
    majority_share,
    mann_whitney,
    rank_biserial,
    spearman,
    vote_counts,
    vote_entropy,
)
from mixsig.analysis._stats import resample_counts

X = -1
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", C: nominal data, 4 observers,
# 12 units, missing values. Published: alpha = 0.743.
KRIPP_2011_C = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, X, X, X],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, X, 3],
    [X, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, X],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, X],
]).T  # units x coders
# Same paper, A: binary data, two observers, no missing data. Published: alpha = 0.095.
KRIPP_2011_A = np.array([
    [0, 1, 0, 0, 0, 0, 0, 0, 1, 0],
    [1, 1, 1, 0, 0, 1, 0, 0, 0, 0],
]).T


def alpha_by_pairs(table):
    """Textbook alpha: every ordered pair of values within a unit, weighted 1/(m_u - 1)."""
    values = sorted({int(v) for v in table.ravel() if v >= 0})
    idx = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for unit in table:
        vals = [int(v) for v in unit if v >= 0]
        m = len(vals)
        if m < 2:
            continue
        for i, j in itertools.permutations(range(m), 2):
            o[idx[vals[i]], idx[vals[j]]] += 1.0 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    d_o = o.sum() - np.trace(o)
    d_e = sum(n_c[c] * n_c[k] for c in range(len(values)) for k in range(len(values)) if c != k) / (n - 1)
    return 1 - (n - 1) * d_o / ((n - 1) * d_e)


def test_krippendorff_published_nominal_example_with_missing_data():
    alpha = krippendorff_alpha_nominal(KRIPP_2011_C)
    assert round(alpha, 3) == 0.743
    assert alpha == pytest.approx(alpha_by_pairs(KRIPP_2011_C), abs=1e-12)
    # by the formula: n = 40 pairable values with marginals n_c = (9, 13, 10, 5, 3) for values 1..5,
    # off-diagonal coincidences sum to 8, alpha = 1 - (n - 1) * 8 / sum_{c != k} n_c n_k = 1 - 39 * 8 / 1216
    n_c = np.array([9, 13, 10, 5, 3])
    assert n_c.sum() == 40
    expected_pairs = (n_c.sum() ** 2 - (n_c**2).sum())
    assert expected_pairs == 1600 - 384
    o = np.zeros((6, 6))
    for unit in KRIPP_2011_C:
        vals = [v for v in unit if v >= 0]
        for i, j in itertools.permutations(range(len(vals)), 2):
            if len(vals) > 1:
                o[vals[i], vals[j]] += 1 / (len(vals) - 1)
    assert np.allclose(o.sum(axis=1)[1:], n_c)
    d_o = o.sum() - np.trace(o)
    assert d_o == pytest.approx(8.0, abs=1e-12)
    assert 1 - 39 * d_o / expected_pairs == pytest.approx(alpha, abs=1e-12)


def test_krippendorff_published_binary_two_coders():
    alpha = krippendorff_alpha_nominal(KRIPP_2011_A)
    assert round(alpha, 3) == 0.095
    assert alpha == pytest.approx(alpha_by_pairs(KRIPP_2011_A), abs=1e-12)


def test_krippendorff_edge_cases_and_random_tables():
    perfect = np.array([[0, 0, 0], [1, 1, -1], [2, 2, 2], [0, 0, -1]])
    assert krippendorff_alpha_nominal(perfect) == pytest.approx(1.0)
    assert np.isnan(krippendorff_alpha_nominal(np.zeros((5, 3), int)))  # one category only: undefined
    assert np.isnan(krippendorff_alpha_nominal(np.array([[0, -1], [1, -1]])))  # nothing pairable
    rng = np.random.default_rng(3)
    for _ in range(5):
        t = rng.integers(0, 3, (40, 4))
        t[rng.random(t.shape) < 0.3] = -1
        assert krippendorff_alpha_nominal(t) == pytest.approx(alpha_by_pairs(t), abs=1e-9)


def test_krippendorff_bootstrap_interval_is_seeded_and_brackets_alpha():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    votes = np.where(rng.random((300, 5)) < 0.8, y[:, None], 1 - y[:, None])
    a = krippendorff_alpha_bootstrap(votes, 2, n_boot=500, seed=1)
    b = krippendorff_alpha_bootstrap(votes, 2, n_boot=500, seed=1)
    assert a == b
    assert a["alpha"] == pytest.approx(krippendorff_alpha_nominal(votes, 2), abs=1e-12)
    assert a["ci_low"] < a["alpha"] < a["ci_high"]
    assert a["ci_high"] - a["ci_low"] < 0.2
    assert a["n_units"] == 300 and a["n_values"] == 1500


def test_vote_entropy_and_majority_share_match_scipy():
    votes = np.array([[0, 0, 1, -1], [2, 2, 2, 2], [0, 1, 2, -1], [-1, -1, -1, -1], [1, 0, 1, 0]])
    counts = vote_counts(votes, 3)
    assert counts.tolist() == [[2, 1, 0], [0, 0, 4], [1, 1, 1], [0, 0, 0], [2, 2, 0]]
    ent = vote_entropy(counts)
    for i in (0, 1, 2, 4):
        assert ent[i] == pytest.approx(scipy.stats.entropy(counts[i], base=2), abs=1e-12)
    assert np.isnan(ent[3])
    assert ent[2] == pytest.approx(np.log2(3), abs=1e-12)
    share = majority_share(counts)
    assert share[[0, 1, 2, 4]] == pytest.approx([2 / 3, 1.0, 1 / 3, 0.5], abs=1e-12)
    assert np.isnan(share[3])


def test_mann_whitney_rank_biserial_against_scipy_and_brute_force():
    rng = np.random.default_rng(5)
    a = np.round(rng.normal(0.5, 1, 40), 1)  # rounded: ties
    b = np.round(rng.normal(0.0, 1, 55), 1)
    res = mann_whitney(a, b)
    ref = scipy.stats.mannwhitneyu(a, b, alternative="two-sided")
    assert res["u"] == pytest.approx(ref.statistic, abs=1e-9)
    assert res["p"] == pytest.approx(ref.pvalue, abs=1e-9)
    brute = np.mean([np.sign(x - y) for x in a for y in b])  # P(a > b) - P(a < b)
    assert res["rank_biserial"] == pytest.approx(brute, abs=1e-9)
    assert rank_biserial(a, b) == pytest.approx(brute, abs=1e-9)
    assert res["mean_a"] == pytest.approx(a.mean()) and res["n_b"] == 55
    empty = mann_whitney(a, np.array([]))
    assert np.isnan(empty["p"]) and empty["n_b"] == 0


def test_spearman_matches_scipy_and_pearson_of_ranks():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, 200).astype(float)
    y = x * 0.3 + rng.random(200)
    y[3] = np.nan
    res = spearman(x, y)
    keep = np.isfinite(y)
    ref = scipy.stats.spearmanr(x[keep], y[keep])
    assert res["rho"] == pytest.approx(ref.statistic, abs=1e-9)
    assert res["p"] == pytest.approx(ref.pvalue, abs=1e-9)
    ranks = np.corrcoef(scipy.stats.rankdata(x[keep]), scipy.stats.rankdata(y[keep]))[0, 1]
    assert res["rho"] == pytest.approx(ranks, abs=1e-9)
    assert res["n"] == 199


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.random(30), rng.random(10) * 1e-3])
    q = benjamini_hochberg(p)
    assert np.allclose(q, scipy.stats.false_discovery_control(p, method="bh"), atol=1e-12)
    # the textbook example: p = (0.01, 0.04, 0.03, 0.005) -> q = (0.02, 0.04, 0.04, 0.02)
    assert benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.005])) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    with_nan = benjamini_hochberg(np.array([0.01, np.nan, 0.02]))
    assert np.isnan(with_nan[1]) and with_nan[[0, 2]] == pytest.approx([0.02, 0.02])


def test_resampling_counts_sum_to_n_in_both_paths():
    rng = np.random.default_rng(0)
    few = resample_counts(np.array([3, 5, 2]), 50, rng)
    many = resample_counts(np.ones(6000, dtype=np.int64), 7, rng)  # index path (> 4096 categories)
    assert few.shape == (50, 3) and (few.sum(axis=1) == 10).all()
    assert many.shape == (7, 6000) and (many.sum(axis=1) == 6000).all()


def test_bootstrap_mean_difference_is_seeded_and_covers_the_truth():
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1, 400)
    b = rng.normal(0.0, 1, 500)
    r1 = bootstrap_mean_difference(a, b, n_boot=800, seed=3)
    assert r1 == bootstrap_mean_difference(a, b, n_boot=800, seed=3)
    assert r1["diff"] == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert r1["ci_low"] < r1["diff"] < r1["ci_high"]
    se = np.sqrt(a.var() / a.size + b.var() / b.size)  # normal approximation of the 95% width
    assert (r1["ci_high"] - r1["ci_low"]) == pytest.approx(2 * 1.96 * se, rel=0.15)
