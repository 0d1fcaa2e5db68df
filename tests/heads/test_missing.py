"""Missing-modality evaluation at train time (issue 17 §2): the default train_run observer stores the full model's
probabilities with each modality set absent; planted: only modality ``a`` carries the label.

Chance band (stated): with ``n`` test rows and balanced classes, a model that ignores the label scores accuracy
within 0.5 ± 3·sqrt(0.25 / n) and macro-F1 at most 0.5 + 3·sqrt(0.25 / n) (three binomial standard deviations;
predicting one class gives macro-F1 ≈ 1/3)."""

import numpy as np
import pytest

from mixsig import metrics
from mixsig.cache import open_store
from mixsig.errors import HeadError
from mixsig.heads import missing_method, missing_sets, predict_missing, train_run
from tests.heads.helpers import make_store

N_TEST = 300
BAND = 3 * np.sqrt(0.25 / N_TEST)
GATED = {"epochs": 6, "batch_size": 128, "max_lr": 1e-2, "hidden": 16, "n_layers": 0, "proj_dim": 8, "att_dim": 8,
         "modality_dropout": 0.5}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("missing") / "store.zarr"
    store, keys, X, y = make_store(path, n_train=600, n_val=60, n_test=N_TEST)
    heads = {}

    def keep(rec):  # the fitted full models, for the reference recomputation
        if len(rec.subset) == len(rec.data.X):
            heads[(rec.head.name, rec.seed)] = (rec.head, rec.X, rec.data)

    train_run(store, "gated", {"a": keys["a"], "b": keys["b"]}, seeds=[0], params=GATED, name="g",
              observers=[keep])
    train_run(store, "logreg", keys, seeds=[0], name="lr", observers=[keep])
    st = open_store(path)
    test = np.flatnonzero(st.samples.split == "test")
    return st, test, heads, X


def _acc_f1(y, probs):
    return metrics.point_metrics(y, probs)["accuracy"], metrics.point_metrics(y, probs)["macro_f1"]


def test_missing_sets_are_every_proper_subset():
    assert missing_sets(["a", "b", "c"]) == [("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c")]
    assert missing_sets(["a"]) == []
    assert "zeroed" in missing_method("gated") and "train-mean imputation" in missing_method("logreg")


@pytest.mark.parametrize("run,full,noise", [("g", "a+b", ["b"]), ("lr", "a+b+c", ["b", "c", "b+c"])])
def test_dropping_the_informative_modality_falls_to_chance_and_a_noise_one_changes_nothing(runs, run, full, noise):
    st, test, _, _ = runs
    r = st.read_run(run)
    y = st.samples.label[test]
    extra = r.subsets[full].extra
    want = {f"missing/{'+'.join(s)}/probs" for s in missing_sets(full.split("+"))}
    assert {k for k in extra if k.startswith("missing/")} == want
    for sub, rs in r.subsets.items():  # only the full subset carries them
        assert sub == full or not any(k.startswith("missing/") for k in rs.extra)
    full_probs = r.subsets[full].probs
    for s in range(full_probs.shape[0]):
        acc_full, _ = _acc_f1(y, full_probs[s, test])
        assert acc_full > 0.9
        for miss in [k[len("missing/"):-len("/probs")] for k in want]:
            p = extra[f"missing/{miss}/probs"]
            assert p.shape == full_probs.shape and np.isfinite(p[s, test]).all()
            acc, f1 = _acc_f1(y, p[s, test])
            if "a" in miss.split("+"):  # the only informative modality absent: chance
                assert abs(acc - 0.5) <= BAND, (miss, acc)
                assert f1 <= 0.5 + BAND, (miss, f1)
            else:
                assert miss in noise and abs(acc - acc_full) < 0.02, (miss, acc, acc_full)


def test_stored_probs_are_the_fitted_models_own_missing_predictions(runs):
    st, test, heads, X = runs
    r = st.read_run("g")
    head, Xs, data = heads[("gated", 0)]
    ref = predict_missing(head, Xs, ["a"])
    np.testing.assert_array_equal(r.subsets["a+b"].extra["missing/a/probs"][0, data.used], ref)
    # the gated path does not read the absent modality at all: other values there change nothing
    scrambled = dict(Xs, a=np.random.default_rng(0).standard_normal(Xs["a"].shape).astype(np.float32) * 50)
    np.testing.assert_array_equal(predict_missing(head, scrambled, ["a"]), ref)
    assert not np.array_equal(head.predict_proba(scrambled), head.predict_proba(Xs))
    # logreg: train-row mean imputation, recomputed by hand
    lr, Xl, dl = heads[("logreg", 0)]
    mean_a = Xl["a"][dl.tr].astype(np.float64).mean(axis=0)
    by_hand = lr.predict_proba(dict(Xl, a=np.tile(mean_a.astype(np.float32), (len(dl.used), 1))))
    np.testing.assert_allclose(st.read_run("lr").subsets["a+b+c"].extra["missing/a/probs"][0, dl.used], by_hand,
                               atol=1e-6)


def test_predict_missing_refuses_what_it_cannot_do(runs):
    _, _, heads, _ = runs
    head, Xs, _ = heads[("gated", 0)]
    with pytest.raises(HeadError, match="not all"):
        predict_missing(head, Xs, ["a", "b"])
    with pytest.raises(HeadError, match=r"\['z'\] not among them"):
        predict_missing(head, Xs, ["z"])
    lr, Xl, _ = heads[("logreg", 0)]
    with pytest.raises(HeadError, match="pass fill="):
        predict_missing(lr, Xl, ["a"])


def test_imputation_fills_all_layer_features_row_by_row():
    from mixsig.heads import get_head

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 120)
    X = {"a": rng.standard_normal((120, 3, 4)).astype(np.float32), "b": rng.standard_normal((120, 5)).astype(np.float32)}
    X["a"][:, :, 0] += 2 * (2 * y[:, None] - 1)
    head = get_head("logreg").fit(X, y, seed=0)
    fill = {"a": X["a"].mean(axis=0)}  # [L, D]: one row of an all-layer key
    want = head.predict_proba(dict(X, a=np.repeat(fill["a"][None], 120, axis=0)))
    np.testing.assert_allclose(predict_missing(head, X, ["a"], fill), want, atol=1e-6)
