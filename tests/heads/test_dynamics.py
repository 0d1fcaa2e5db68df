"""Training dynamics (dataset cartography): torch heads record p(gold) per epoch from their training forward
passes, LightGBM per k-th boosting round; train_run stores confidence / variability / correctness per seed."""

import numpy as np
import pytest

from mixsig.cache import open_store
from mixsig.heads import get_head, train_run
from mixsig.heads._dynamics import PATHS, round_points
from tests.heads.helpers import make_store, synthetic


def test_torch_dynamics_are_the_probabilities_of_each_epochs_weights():
    """Reference: with full batches and a linear net (no BatchNorm/dropout: train and eval forward agree), epoch
    e's recorded p(gold) is the prediction of the same head trained for e - 1 epochs (same seed)."""
    X, y = synthetic(64, 0, widths={"a": 6})
    kw = {"batch_size": 0, "n_layers": 0, "lr": 0.05, "max_lr": None}  # constant lr: the same steps for any epochs
    head = get_head("concat", epochs=5, **kw).fit(X, y, seed=3)
    dyn = head.dynamics_
    assert dyn.unit == "epoch" and dyn.points == (1, 2, 3, 4, 5) and dyn.p_gold.shape == (5, 64)
    for e in range(2, 6):
        p = get_head("concat", epochs=e - 1, **kw).fit(X, y, seed=3).predict_proba(X)
        np.testing.assert_allclose(dyn.p_gold[e - 1], p[np.arange(64), y], atol=1e-5)
        np.testing.assert_array_equal(dyn.correct[e - 1], (p.argmax(1) == y).astype(np.float32))
    s = dyn.summary()
    np.testing.assert_allclose(s["confidence"], dyn.p_gold.mean(0), rtol=1e-6)
    np.testing.assert_allclose(s["variability"], dyn.p_gold.std(0), rtol=1e-5)


def test_recording_dynamics_does_not_change_the_fit():
    """The recorder only reads the training batches: the probabilities are those of an unrecorded loop (the
    same seed and data give identical bytes, and gated's modality dropout draws are unaffected)."""
    X, y = synthetic(80, 1)
    a = get_head("gated", epochs=3, hidden=16, n_layers=1).fit(X, y, X_val=X, y_val=y, seed=0)
    b = get_head("gated", epochs=3, hidden=16, n_layers=1).fit(X, y, X_val=X, y_val=y, seed=0)
    assert a.predict_proba(X).tobytes() == b.predict_proba(X).tobytes()
    assert a.dynamics_.p_gold.tobytes() == b.dynamics_.p_gold.tobytes()


def test_lightgbm_round_dynamics_match_predictions_truncated_at_each_round():
    X, y = synthetic(120, 2, widths={"a": 5})
    head = get_head("lightgbm", n_estimators=30, min_child_samples=5).fit(X, y, seed=0)
    dyn = head.round_dynamics(X, y, max_points=7)
    assert dyn.unit == "round" and list(dyn.points) == round_points(30, 7) == [5, 10, 15, 20, 25, 30]
    Xc = X["a"]
    for j, k in enumerate(dyn.points):
        p1 = head.booster_.predict(Xc, num_iteration=k)
        pg = np.where(y == 1, p1, 1 - p1)
        np.testing.assert_allclose(dyn.p_gold[j], pg, atol=1e-6)
    assert round_points(7, 50) == list(range(1, 8)) and round_points(101, 50) == list(range(3, 101, 3)) + [101]


@pytest.fixture(scope="module")
def dyn_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("dyn") / "store.zarr"
    store, keys, X, y = make_store(path, n_train=120, n_val=40, n_test=40)
    seen = {}

    def keep(rec):  # the head's own dynamics, to recompute what the run stores
        seen[(rec.subset_name, rec.seed_index)] = (rec.head.dynamics_, rec.data.used[rec.data.tr])

    run = train_run(store, "concat", {"a": keys["a"], "b": keys["b"]}, seeds=[0, 1],
                    params={"epochs": 6, "batch_size": 16, "hidden": 16, "n_layers": 1, "max_lr": 1e-2}, name="dyn", observers=[keep])
    return path, run, seen


def test_a_run_stores_confidence_variability_and_correctness_per_seed(dyn_run):
    path, run, seen = dyn_run
    back = open_store(path).read_run("dyn")
    samples = open_store(path).samples
    train = samples.split == "train"
    for sub in ("a", "b", "a+b"):
        ex = back.subsets[sub].extra
        assert all(ex[p].shape == (2, len(samples)) for p in PATHS)
        assert np.isfinite(ex["dynamics/confidence"][:, train]).all()
        assert np.isnan(ex["dynamics/confidence"][:, ~train]).all()
        for s in range(2):
            dyn, rows = seen[(sub, s)]
            np.testing.assert_allclose(ex["dynamics/confidence"][s, rows], np.nanmean(dyn.p_gold, 0), rtol=1e-6)
            np.testing.assert_allclose(ex["dynamics/variability"][s, rows], np.nanstd(dyn.p_gold, 0), rtol=1e-5,
                                       atol=1e-7)
            np.testing.assert_allclose(ex["dynamics/correctness"][s, rows], np.nanmean(dyn.correct, 0))
    # the informative modality is learned: its train rows end up confident in the gold label
    assert np.nanmean(back.subsets["a"].extra["dynamics/confidence"]) > np.nanmean(
        back.subsets["b"].extra["dynamics/confidence"]) + 0.1


def test_logreg_runs_have_no_dynamics(dyn_run):
    path, _, _ = dyn_run
    store = open_store(path, mode="r+")
    run = train_run(store, "logreg", {"a": "a"}, seeds=[0], name="lr")
    assert not any(p.startswith("dynamics/") for p in run.subsets["a"].extra)
