"""The training-dynamics section (dataset cartography): its seed pooling, regions and ambiguity test recomputed,
a planted map where disagreement samples vary most (and a null one), label-flipped training rows of a real run
in the hard-to-learn region (and no region enriched without flips), samples.csv's columns."""

import numpy as np
import pytest
from scipy.stats import fisher_exact, mannwhitneyu

from mixsig.analysis import analyse, write_report
from mixsig.analysis.sections import dynamics
from mixsig.cache import Provenance, Samples, Status, create_store, open_store
from mixsig.heads import train_run
from tests.analysis.helpers import planted


def test_seed_pooling_is_the_std_of_all_epochs_of_all_seeds():
    """Reference: per-seed means and sds (what the run stores) pooled = mean and sd of the raw p(gold) values."""
    rng = np.random.default_rng(0)
    raw = rng.random((3, 7, 50))  # seeds x epochs x rows
    extra = {"dynamics/confidence": raw.mean(1), "dynamics/variability": raw.std(1),
             "dynamics/correctness": (raw > 0.5).mean(1)}
    extra["dynamics/confidence"][1, 4] = np.nan  # a seed without row 4
    extra["dynamics/variability"][1, 4] = np.nan
    d = dynamics.combine(extra)
    np.testing.assert_allclose(d["confidence"][5:], raw[:, :, 5:].mean(axis=(0, 1)))
    np.testing.assert_allclose(d["variability"][5:], raw[:, :, 5:].std(axis=(0, 1)))
    np.testing.assert_allclose(d["correctness"], (raw > 0.5).mean(axis=(0, 1)))
    np.testing.assert_allclose(d["variability"][4], raw[[0, 2], :, 4].std())


def _with_dynamics(inp, var_of, seed=0):
    """``inp`` with its first 300 rows as training rows carrying planted dynamics for every subset."""
    rng = np.random.default_rng(seed)
    n = len(inp.ids)
    split = np.array(["train"] * 300 + ["test"] * (n - 300))
    inp.split = split
    S = next(iter(inp.probs.values())).shape[0]
    for sub in inp.probs:
        conf = np.where(split == "train", rng.uniform(0.2, 0.9, (S, n)), np.nan)
        var = np.where(split == "train", var_of(rng, S, n), np.nan)
        inp.extra[sub] = {"dynamics/confidence": conf, "dynamics/variability": var,
                          "dynamics/correctness": conf > 0.5}
    return inp


@pytest.fixture(scope="module")
def planted_map():
    inp, amb = planted(n=500, seed=3)
    # the planted ambiguous samples (the disagreement ones) vary 3x more over the epochs
    _with_dynamics(inp, lambda rng, S, n: np.where(amb, 0.3, 0.1) * rng.uniform(0.8, 1.2, (S, n)))
    return inp, analyse(inp, split="test", n_boot=20)


def test_disagreement_samples_are_found_in_the_ambiguous_region(planted_map):
    inp, result = planted_map
    d = result["dynamics"]
    t = d["ambiguity_test"]
    assert d["n_train_rows"] == 300 and sum(d["regions"].values()) == 300
    assert t["fisher"]["p"] < 1e-6 and t["fisher"]["odds_ratio"] > 5
    assert t["share_ambiguous_disagreement"] > 0.8 > 0.2 > t["share_ambiguous_agreement"]
    assert t["mann_whitney_variability"]["rank_biserial"] > 0.5


def test_the_ambiguity_test_and_regions_are_recomputed_from_the_definition(planted_map):
    inp, result = planted_map
    d = result["dynamics"]
    rows = np.flatnonzero(inp.split == "train")
    full = "+".join(inp.modalities)
    pooled = dynamics.combine(inp.extra[full])
    conf, var = pooled["confidence"][rows], pooled["variability"][rows]
    v_hi, c_lo = np.quantile(var, 2 / 3), np.quantile(conf, 1 / 3)
    amb = var >= v_hi
    assert d["regions"]["ambiguous"] == int(amb.sum())
    assert d["regions"]["hard-to-learn"] == int((~amb & (conf <= c_lo)).sum())
    cat = dynamics.categories({k: p[:, rows] for k, p in inp.probs.items()}, full, list(inp.modalities), inp.labels[rows])
    dis = cat != "agreement"
    table = [[(dis & amb).sum(), (dis & ~amb).sum()], [(~dis & amb).sum(), (~dis & ~amb).sum()]]
    odds, p = fisher_exact(table)
    t = d["ambiguity_test"]
    assert t["table"]["counts"] == [[int(x) for x in r] for r in table]
    assert t["fisher"]["odds_ratio"] == pytest.approx(odds) and t["fisher"]["p"] == pytest.approx(p)
    assert t["mann_whitney_variability"]["p"] == pytest.approx(mannwhitneyu(var[dis], var[~dis]).pvalue)
    # the disagreement section's own categories, where both are computed on the same rows
    on_train = analyse(inp, split="train", n_boot=20)
    assert list(on_train["samples"]["category"]) == list(cat)


def test_no_region_is_enriched_when_variability_ignores_disagreement():
    inp, _ = planted(n=500, seed=4)
    _with_dynamics(inp, lambda rng, S, n: rng.uniform(0.05, 0.3, (S, n)), seed=1)
    t = analyse(inp, split="test", n_boot=20)["dynamics"]["ambiguity_test"]
    assert t["fisher"]["p"] > 0.05 and t["mann_whitney_variability"]["p"] > 0.05


def test_the_section_is_skipped_without_dynamics_and_samples_get_the_columns(planted_map):
    inp, _ = planted(n=120, seed=5)
    result = analyse(inp, split="test", n_boot=20)
    assert result["dynamics"] is None and "no training dynamics" in result["skipped"]["dynamics"]
    assert not any(c.startswith("confidence@") for c in result["samples"])
    inp, with_map = planted_map
    cols = with_map["samples"]  # the analysed split is test: no training rows, so NaN
    assert np.isnan(cols["confidence@audio"]).all() and len(cols["variability@text+audio+video"]) == len(cols["id"])
    on_train = analyse(inp, split="train", n_boot=10)["samples"]
    full = dynamics.combine(inp.extra["text+audio+video"])
    np.testing.assert_allclose(on_train["variability@text+audio+video"], full["variability"][:300])


@pytest.mark.slow
def test_the_page_shows_the_map(planted_map, tmp_path):
    _, with_map = planted_map
    paths = write_report(with_map, tmp_path / "r", plots=False)
    md = paths["md"].read_text()
    assert "## 6d. Training dynamics: the data map" in md and "Fisher's exact odds ratio" in md
    png, caption = dynamics.figures(with_map)["dynamics"]
    assert png.startswith(b"\x89PNG") and "all 300 training rows" in caption
    header = paths["csv"].read_text().splitlines()[0]
    assert "confidence@text+audio+video" in header and "variability@audio" in header


FLIP_SHARE = 0.1


def _flip_store(path, flips: bool):
    """300 train / 60 val / 60 test rows of one modality ``a`` that carries the label; with ``flips`` a random 10% of
    the training rows have the wrong label. Returns (store, keys, marked train rows)."""
    rng = np.random.default_rng(7)
    n_tr, n = 300, 420
    y = rng.integers(0, 2, n)
    a = rng.standard_normal((n, 6)).astype(np.float32)
    a[:, 0] += 2.0 * (2 * y - 1)
    marked = np.zeros(n, bool)
    marked[rng.choice(n_tr, int(FLIP_SHARE * n_tr), replace=False)] = True
    label = np.where(marked & flips, 1 - y, y)
    split = ["train"] * n_tr + ["val"] * 60 + ["test"] * 60
    store = create_store(path, Samples(ids=[f"s{i}" for i in range(n)], split=split, label=label, classes=("n", "p")))
    keys = {}
    for m, x in (("a", a),):
        prov = Provenance(modality=m, encoder=f"syn-{m}", revision="sha256:" + "0" * 64, pooling="cls",
                          extra={"modality_name": m})
        keys[m] = store.create_key(prov, x.shape[1], chunk_rows=128)
        with store.writer(keys[m]) as w:
            for lo, hi in w.blocks():
                w.write_block(lo, hi, x[lo:hi], np.full(hi - lo, Status.OK, np.int8))
    return store, keys, marked[:n_tr]


def _regions_of_marked(tmp_path, flips: bool):
    store, keys, marked = _flip_store(tmp_path / "s.zarr", flips)
    train_run(store, "concat", keys, seeds=[0, 1], name="flip",
              params={"epochs": 10, "batch_size": 32, "hidden": 32, "n_layers": 1, "max_lr": 1e-2})
    result = analyse(open_store(tmp_path / "s.zarr"), "flip", split="train", n_boot=10)
    cols = result["samples"]
    region, _ = dynamics.regions(cols["confidence@a"], cols["variability@a"])
    return region, marked, result


def test_label_flipped_training_rows_land_in_the_hard_to_learn_region(tmp_path):
    region, flipped, result = _regions_of_marked(tmp_path, flips=True)
    # measured (concat head, 2 seeds): 57% of the 30 flipped rows hard-to-learn, the rest ambiguous, none easy;
    # 20% of the clean rows hard-to-learn (the bottom third by confidence holds 100 rows, the flips only 30)
    hard = region == "hard-to-learn"
    assert hard[flipped].mean() >= 0.5 and hard[~flipped].mean() < 0.3, (hard[flipped].mean(), hard[~flipped].mean())
    assert fisher_exact([[(hard & flipped).sum(), (~hard & flipped).sum()],
                         [(hard & ~flipped).sum(), (~hard & ~flipped).sum()]], alternative="greater")[1] < 1e-3
    assert (region[flipped] == "easy-to-learn").mean() < 0.05
    conf = result["samples"]["confidence@a"]
    assert np.median(conf[flipped]) < result["dynamics"]["thresholds"]["confidence_bottom_third"]
    assert result["dynamics"]["n_train_rows"] == 300


def test_without_flips_no_region_is_enriched_in_the_marked_rows(tmp_path):
    region, marked, _ = _regions_of_marked(tmp_path, flips=False)
    for r in dynamics.REGIONS:
        inside = region == r
        p = fisher_exact([[(inside & marked).sum(), (~inside & marked).sum()],
                          [(inside & ~marked).sum(), (~inside & ~marked).sum()]])[1]
        assert p > 0.01, (r, p)
