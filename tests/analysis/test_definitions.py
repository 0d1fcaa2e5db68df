"""Issue 14 §4: every section states its definitions where its numbers are (its blocks on the page and a
"definition" string in its report.json entry), and the disagreement rates, cells and categories have bootstrap
intervals that cover their value and equal a recomputation with the same seed."""

import html
import json

import numpy as np
import pytest
from tests.analysis.helpers import one_hot_probs, planted

from mixsig.analysis import AnalysisInput, analyse, write_report

N_BOOT, SEED = 150, 4


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    inp, _ = planted(n=300, seed=5)
    result = analyse(inp, split="test", n_boot=N_BOOT, seed=SEED, media_descriptors=False)
    paths = write_report(result, tmp_path_factory.mktemp("defs") / "r", plots=False)
    return result, json.loads(paths["json"].read_text()), paths["md"].read_text(), paths["html"].read_text()


def definitions(doc):
    return {"metrics": doc["metrics_definition"], "disagreement": doc["disagreement"]["definition"],
            "uncertainty": doc["uncertainty"]["definition"], "join": doc["join"]["definition"],
            "confidence": doc["confidence_definition"], "human_study": doc["human_study"]["definition"],
            "descriptors": doc["descriptors"]["definition"], "top": doc["top"]["definition"]}


def test_every_section_states_its_definitions_on_the_page_and_in_json(report):
    _, doc, md, page = report
    for section, text in definitions(doc).items():
        assert isinstance(text, str) and len(text) > 80, section
        assert f"**Definitions.** {text}" in md, section
        assert html.escape(text) in page, section
    d = definitions(doc)
    for section in ("join", "descriptors", "human_study", "confidence"):
        assert "two-sided" in d[section], section
    for section in ("join", "descriptors"):
        assert "positive = the first-named group" in d[section], section
    for section in ("metrics", "disagreement", "uncertainty", "join", "human_study"):  # how each interval resamples
        assert "resampled with replacement" in d[section] and f"{N_BOOT} resamples" in d[section], section
        assert str(SEED) in d[section], section
    for section in ("metrics", "disagreement"):  # seed aggregation
        for words in ("majority vote", "highest mean probability", "AUROC", "deterministic head"):
            assert words in d[section], (section, words)
    assert "a tie between the most voted classes counting as wrong" in d["human_study"]
    assert "no disagree_wrong column" in d["disagreement"]  # two classes


def test_two_classes_have_no_disagree_wrong_column_and_say_why(report):
    _, doc, md, _ = report
    dis = doc["disagreement"]
    assert dis["disagree_wrong_possible"] is False and dis["categories"]["disagree_wrong"] == 0
    table = [line for line in md.splitlines() if line.startswith("| category |")]
    assert table and "disagree_wrong" not in table[0] and "misled" in table[0]
    assert "predicts the other class, which is the gold label" in md


def test_multiclass_keeps_the_disagree_wrong_column():
    inp, _ = planted(n=150, seed=3, n_classes=3, votes=False)
    r = analyse(inp, split="test", n_boot=30, media_descriptors=False)
    dis = r["disagreement"]
    assert dis["disagree_wrong_possible"] is True and "no disagree_wrong column" not in dis["definition"]
    from mixsig.analysis.sections import disagreement
    cat_table = [b for b in disagreement.blocks(r, {}) if b[0] == "table" and b[1][0] == "category"][0]
    assert cat_table[1] == ["category", "agreement", "rescued", "misled", "disagree_wrong"]


def index_bootstrap_ci(flags, n_boot, rng):
    flags = np.asarray(flags, dtype=float)
    idx = rng.integers(0, flags.size, size=(n_boot, flags.size))
    return np.quantile(flags[idx].mean(axis=1), [0.025, 0.975])


def test_disagreement_intervals_cover_their_values_and_equal_a_recomputation(report):
    result, doc, md, _ = report
    dis = doc["disagreement"]
    n = result["n_samples"]
    cat = result["samples"]["category"]

    def recomputed(k):  # the documented draw: resampling n rows, a share's count is Binomial(n, share)
        draws = np.random.default_rng(SEED).binomial(n, k / n, N_BOOT) / n
        return list(np.quantile(draws, [0.025, 0.975]))

    rng = np.random.default_rng(0)
    checked = 0
    full_pred = result["samples"]["pred[text+audio+video]"]
    for m, d in dis["per_modality"].items():
        assert d["ci"][0] <= d["rate"] <= d["ci"][1]
        assert d["ci"] == pytest.approx(recomputed(d["n_disagree"]), abs=1e-12)
        # independently: the rows themselves resampled (index bootstrap), within Monte Carlo error
        flags = result["samples"][f"pred[{m}]"] != full_pred
        assert flags.sum() == d["n_disagree"]
        assert d["ci"] == pytest.approx(list(index_bootstrap_ci(flags, 3000, rng)), abs=0.03)
        for cell, count in d["cells"].items():
            lo, hi = d["cell_ci"][cell]
            assert lo <= d["cell_shares"][cell] <= hi
            assert [lo, hi] == pytest.approx(recomputed(count), abs=1e-12)
            checked += 1
    for c, s in dis["category_shares"].items():
        k = int((cat == c).sum())
        assert s["share"] == pytest.approx(k / n) and s["ci"][0] <= s["share"] <= s["ci"][1]
        assert s["ci"] == pytest.approx(recomputed(k), abs=1e-12)
        if 0 < k < n:
            assert s["ci"] == pytest.approx(list(index_bootstrap_ci(cat == c, 3000, rng)), abs=0.03)
    k_any = int((cat != "agreement").sum())
    assert dis["disagreement_rate_any_ci"] == pytest.approx(recomputed(k_any), abs=1e-12)
    assert checked == 12
    # the page shows them
    lo, hi = dis["per_modality"]["audio"]["ci"]
    assert f"{dis['per_modality']['audio']['rate']:.3f} [{lo:.3f}, {hi:.3f}]" in md
    # seeded: the same seed gives the same intervals, another seed other ones
    again = analyse(planted(n=300, seed=5)[0], split="test", n_boot=N_BOOT, seed=SEED, media_descriptors=False)
    other = analyse(planted(n=300, seed=5)[0], split="test", n_boot=N_BOOT, seed=SEED + 1, media_descriptors=False)
    assert again["disagreement"] == result["disagreement"]
    assert other["disagreement"]["per_modality"]["audio"]["ci"] != dis["per_modality"]["audio"]["ci"]


def test_deterministic_heads_are_named_identical_seeds():
    inp, _ = planted(n=120, seed=1, votes=False)
    inp.probs["text"] = np.repeat(inp.probs["text"][:1], inp.probs["text"].shape[0], axis=0)
    r = analyse(inp, split="test", n_boot=20, media_descriptors=False)
    assert r["metrics"]["text"]["seeds_identical"] is True
    assert r["metrics"]["audio"]["seeds_identical"] is False
    assert r["metrics"]["text"]["over_seeds"]["accuracy"]["std"] == 0
    assert any("identical predictions for text (a deterministic head)" in n for n in r["notes"])


def test_majority_accuracy_counts_tied_votes_as_wrong():
    # relative to the gold label (1 = another class): [gold, gold, other] right, [gold, other] tie (wrong),
    # [other, other, gold] wrong, [gold, gold] right -> 2 / 4
    v = np.array([[0, 0, 1], [0, 1, -1], [1, 1, 0], [0, 0, -1]], dtype=np.int16)
    inp = AnalysisInput(ids=["a", "b", "c", "d"], split=np.full(4, "test"), labels=np.array([0, 0, 1, 1]),
                        classes=("x", "z"), modalities=("text",), probs={"text": one_hot_probs([0, 0, 1, 1], 2)[None]},
                        votes_by_condition={"text": np.where(v >= 0, (v + np.array([0, 0, 1, 1])[:, None]) % 2, -1)},
                        text=["t"] * 4, start=np.zeros(4), end=np.ones(4), seeds=(0,))
    r = analyse(inp, split="test", n_boot=10, media_descriptors=False)
    assert r["human_study"]["conditions"]["text"]["majority_accuracy"] == pytest.approx(0.5)


def test_confidence_share_is_shown_beside_its_no_effect_expectation(report):
    result, doc, md, _ = report
    s = result["samples"]
    full = doc["disagreement"]["full_subset"]
    for m, c in doc["confidence"].items():
        a, b = s[f"p_true[{full}]"], s[f"p_true[{m}]"]
        assert c["share_full_higher"] == pytest.approx(np.mean(a > b))
        assert c["share_full_higher_no_effect"] == pytest.approx(np.mean(a != b) / 2)
        assert f"{c['share_full_higher']:.3f} (no effect: {c['share_full_higher_no_effect']:.3f})" in md
