"""Human study (issue 14 §3): the all-modalities condition against each single condition, paired per sample, with
a two-sided sign-flip permutation test and a paired bootstrap interval; the "all vs the best single condition"
shares beside their no-effect expectation. Planted no effect / planted effect, and every number recomputed
independently (numpy, scipy)."""

import json

import numpy as np
import pytest
from scipy import stats
from tests.analysis.helpers import one_hot_probs

from mixsig.analysis import AnalysisInput, analyse, write_report

SINGLES = ("text", "audio", "video")
MODS = ("text", "audio", "video")


def study(n=600, seed=0, acc=None, votes=3, n_classes=2, missing=0.0):
    """A run with only its full subset and a human study: per condition ``votes`` annotators voting the gold label
    with that condition's accuracy (a number, or ``"shared"``: every condition draws from the same per-sample
    accuracy, heterogeneous across samples). ``missing``: share of votes left out."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    acc = acc or {c: "shared" for c in (*SINGLES, "all")}
    shared = rng.beta(4, 1.5, n)
    by_cond = {}
    for c, a in acc.items():
        p = shared if isinstance(a, str) else np.full(n, a)
        right = rng.random((n, votes)) < p[:, None]
        wrong = (y[:, None] + 1 + rng.integers(0, n_classes - 1, (n, votes))) % n_classes
        v = np.where(right, y[:, None], wrong).astype(np.int16)
        v[rng.random((n, votes)) < missing] = -1
        by_cond[c] = v
    pred = np.where(rng.random(n) < 0.8, y, (y + 1) % n_classes)
    inp = AnalysisInput(ids=[f"s{i}" for i in range(n)], split=np.full(n, "test"), labels=y,
                        classes=tuple(f"c{k}" for k in range(n_classes)), modalities=MODS,
                        probs={"+".join(MODS): one_hot_probs(pred, n_classes)[None]}, votes_by_condition=by_cond,
                        text=["x"] * n, start=np.zeros(n), end=np.ones(n), seeds=(0,), run_name="study")
    return inp, by_cond, y


def run(inp, n_boot=300, seed=0):
    return analyse(inp, split="test", n_boot=n_boot, seed=seed, media_descriptors=False)


def per_sample_accuracy(v, y):
    ok = v >= 0
    with np.errstate(invalid="ignore"):
        return np.where(ok.sum(1) > 0, ((v == y[:, None]) & ok).sum(1) / ok.sum(1), np.nan)


def mean_diff(a, b, axis=-1):
    return np.mean(a - b, axis=axis)


def exact_sign_flip_p(d, votes=3):
    """Exact two-sided sign-flip p of sum(d), independently: the generating function prod_i (x^k_i + x^-k_i) / 2
    on the integer lattice of ``votes * d`` (every d is a multiple of 1/votes)."""
    k = np.rint(np.asarray(d) * votes).astype(int)
    assert np.allclose(k, np.asarray(d) * votes)
    k = np.abs(k[k != 0])
    span = int(k.sum())
    dist = np.zeros(2 * span + 1)
    dist[span] = 1.0
    for ki in k:
        dist = (np.roll(dist, ki) + np.roll(dist, -ki)) / 2  # no wrap: the span bounds every partial sum
    t = abs(int(np.rint(np.sum(d) * votes)))
    support = np.arange(-span, span + 1)
    return float(dist[np.abs(support) >= t].sum())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_planted_no_effect_gives_no_small_p_and_the_shares_match_their_expectation(seed):
    inp, _, _ = study(n=600, seed=seed)
    hs = run(inp, n_boot=200)["human_study"]
    assert set(hs["all_vs"]) == set(SINGLES)
    for c, r in hs["all_vs"].items():
        assert r["p"] >= 0.01, (seed, c, r)
        assert r["ci"][0] <= 0 <= r["ci"][1] or r["p"] < 0.05  # the interval and the test tell the same story
    b = hs["all_vs_best_single"]
    e = b["no_effect_expectation"]
    # the biased comparison: with no effect, "all" is worse than the best of three far more often than it beats it
    assert b["all_worse"] > b["all_beats_best_single"] + 0.2
    # ... and what it shows is what no effect predicts for these vote counts (SE of a share of 600 is <= 0.02)
    for obs, exp in ((b["all_beats_best_single"], e["beats"]), (b["tie"], e["tie"]), (b["all_worse"], e["worse"])):
        assert abs(obs - exp) < 0.06
    assert e["beats"] + e["tie"] + e["worse"] == pytest.approx(1.0)


def test_planted_effect_is_found_against_every_condition():
    inp, _, _ = study(n=600, seed=7, acc={"text": 0.72, "audio": 0.72, "video": 0.72, "all": 0.92})
    hs = run(inp)["human_study"]
    for c in SINGLES:
        r = hs["all_vs"][c]
        assert r["p"] < 0.01 and r["q"] < 0.01
        assert r["diff"] == pytest.approx(0.2, abs=0.05)
        assert r["ci"][0] > 0.1
    b = hs["all_vs_best_single"]
    assert b["all_beats_best_single"] > b["no_effect_expectation"]["beats"] + 0.1


def test_every_number_equals_an_independent_recomputation():
    acc = {"text": 0.7, "audio": 0.74, "video": 0.66, "all": 0.76}
    inp, votes, y = study(n=500, seed=11, acc=acc, missing=0.1)
    n_boot, seed = 400, 5
    hs = run(inp, n_boot=n_boot, seed=seed)["human_study"]
    s_all = per_sample_accuracy(votes["all"], y)
    ps = {}
    for c in SINGLES:
        r = hs["all_vs"][c]
        s_c = per_sample_accuracy(votes[c], y)
        ok = np.isfinite(s_all) & np.isfinite(s_c)
        d = s_all[ok] - s_c[ok]
        assert r["n"] == ok.sum()
        assert r["accuracy_all"] == pytest.approx(s_all[ok].mean(), abs=1e-12)
        assert r["accuracy_condition"] == pytest.approx(s_c[ok].mean(), abs=1e-12)
        assert r["diff"] == pytest.approx(d.mean(), abs=1e-12)
        # p: scipy's paired permutation test (the two conditions of a sample swapped), two-sided
        ref = stats.permutation_test((s_all[ok], s_c[ok]), mean_diff, permutation_type="samples", vectorized=True,
                                     n_resamples=4000, alternative="two-sided", rng=np.random.default_rng(1)).pvalue
        mc = np.sqrt(max(ref * (1 - ref), 1e-4) / 4000) + np.sqrt(max(ref * (1 - ref), 1e-4) / 20_000)
        assert abs(r["p"] - ref) < 4 * mc, (c, r["p"], ref)
        ps[c] = r["p"]
        # the interval: the same seed and the documented draw (samples resampled as multinomial counts over the
        # distinct differences) give it exactly; scipy's paired percentile bootstrap gives it within Monte Carlo error
        u, m = np.unique(d, return_counts=True)
        w = np.random.default_rng(seed).multinomial(d.size, m / d.size, size=n_boot)
        assert r["ci"] == pytest.approx(list(np.quantile(w @ u / d.size, [0.025, 0.975])), abs=1e-12)
        sb = stats.bootstrap((d,), np.mean, n_resamples=5000, method="percentile", rng=np.random.default_rng(2))
        assert r["ci"] == pytest.approx([sb.confidence_interval.low, sb.confidence_interval.high], abs=0.012)
        assert r["ci"][0] <= r["diff"] <= r["ci"][1]
    q = stats.false_discovery_control([ps[c] for c in SINGLES], method="bh")
    assert [hs["all_vs"][c]["q"] for c in SINGLES] == pytest.approx(list(q), abs=1e-12)
    # the conditions table
    for c, v in votes.items():
        t = hs["conditions"][c]
        assert t["vote_accuracy"] == pytest.approx(((v == y[:, None]) & (v >= 0)).sum() / (v >= 0).sum())


def test_sign_flip_p_is_exact_on_small_studies_and_close_on_large_ones():
    # small: every sign pattern weighed (scipy enumerates all 2^14 swaps); ties and zero differences included
    inp, votes, y = study(n=14, seed=3, acc={"text": 0.5, "audio": 0.6, "video": 0.7, "all": 0.9})
    hs = run(inp, n_boot=50)["human_study"]
    s_all = per_sample_accuracy(votes["all"], y)
    for c in SINGLES:
        s_c = per_sample_accuracy(votes[c], y)
        ref = stats.permutation_test((s_all, s_c), mean_diff, permutation_type="samples", vectorized=True,
                                     n_resamples=np.inf, alternative="two-sided").pvalue
        assert hs["all_vs"][c]["exact"] is True
        assert hs["all_vs"][c]["p"] == pytest.approx(ref, rel=1e-9)
        assert hs["all_vs"][c]["p"] == pytest.approx(exact_sign_flip_p(s_all - s_c), rel=1e-9)
    # large: 20,000 random patterns, within Monte Carlo error of the exact p
    inp, votes, y = study(n=600, seed=4, acc={"text": 0.78, "audio": 0.8, "video": 0.75, "all": 0.8})
    hs = run(inp, n_boot=50)["human_study"]
    s_all = per_sample_accuracy(votes["all"], y)
    for c in SINGLES:
        exact = exact_sign_flip_p(s_all - per_sample_accuracy(votes[c], y))
        r = hs["all_vs"][c]
        assert r["exact"] is False
        assert abs(r["p"] - exact) < 4 * np.sqrt(exact * (1 - exact) / 20_000) + 1e-4, (c, r["p"], exact)


def test_no_effect_expectation_matches_a_plain_simulation():
    inp, votes, y = study(n=300, seed=9, missing=0.15)
    b = run(inp, n_boot=50, seed=3)["human_study"]["all_vs_best_single"]
    names = ["all", *SINGLES]
    ok = np.all([(votes[c] >= 0).any(1) for c in names], axis=0)
    rng = np.random.default_rng(123)
    tally = np.zeros(3)
    for _ in range(30):
        for i in np.flatnonzero(ok):
            cast = [votes[c][i][votes[c][i] >= 0] for c in names]
            pool = rng.permutation(np.concatenate(cast) == y[i])
            cut = np.cumsum([len(v) for v in cast])[:-1]
            sh = [g.mean() for g in np.split(pool, cut)]
            best = max(sh[1:])
            tally += [sh[0] > best, sh[0] == best, sh[0] < best]
    plain = tally / tally.sum()
    e = b["no_effect_expectation"]
    assert b["n_samples"] == ok.sum()
    assert [e["beats"], e["tie"], e["worse"]] == pytest.approx(list(plain), abs=0.02)


def test_page_and_json_show_the_paired_comparison_and_the_no_effect_expectation(tmp_path):
    inp, _, _ = study(n=200, seed=1, acc={"text": 0.7, "audio": 0.7, "video": 0.7, "all": 0.9})
    paths = write_report(run(inp, n_boot=100), tmp_path / "r", plots=False)
    doc = json.loads(paths["json"].read_text())
    hs = doc["human_study"]
    for r in hs["all_vs"].values():
        assert {"n", "accuracy_all", "accuracy_condition", "diff", "ci", "p"} <= set(r)
        assert isinstance(r["n"], int) and len(r["ci"]) == 2
    assert {"conditions", "all_vs_best_single", "definition"} <= set(hs)
    md = paths["md"].read_text()
    assert "vs each single condition" in md and "(no effect: 0)" in md
    e = hs["all_vs_best_single"]["no_effect_expectation"]
    assert f"(no effect: {e['beats']:.3f})" in md and f"(no effect: {e['worse']:.3f})" in md
    assert "Biased by construction" in md
    assert "two-sided paired sign-flip permutation test" in hs["definition"] and hs["definition"] in md


def test_without_an_all_condition_the_comparisons_are_skipped_with_a_note():
    inp, _, _ = study(n=100, seed=2, acc={"text": 0.7, "audio": 0.8})
    r = run(inp, n_boot=50)
    assert r["human_study"]["all_vs"] is None and r["human_study"]["all_vs_best_single"] is None
    assert set(r["human_study"]["conditions"]) == {"text", "audio"}
    assert any("no `votes@all` condition" in n for n in r["notes"])
