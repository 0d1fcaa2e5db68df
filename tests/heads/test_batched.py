"""The seeds of a torch head trained together (mixsig/heads/_batched.py) give each seed the model it gets alone.

Tolerance (stated in the module docstring): probabilities, gates, attention, layer weights and dynamics within
TOL = 1e-4 absolute; validation histories and best epochs equal.
"""

import numpy as np
import pytest

import mixsig.heads._batched as batched
from mixsig.heads import get_head, train_run
from mixsig.heads._batched import fit_batched
from tests.heads.helpers import shared_store, synthetic

TOL = 1e-4
SEEDS = [0, 1, 2]
SMALL = {"epochs": 3, "batch_size": 32, "hidden": 32, "proj_dim": 16, "att_dim": 8}


def _data(layered: bool):
    X, y = synthetic(240, 3)
    if layered:  # "a" as [n, L=3, D]: the signal in layer 1, the other layers noise
        rng = np.random.default_rng(5)
        a = rng.standard_normal((240, 3, X["a"].shape[1])).astype(np.float32)
        a[:, 1] = X["a"]
        X["a"] = a
    tr, va = slice(0, 160), slice(160, 240)
    return {m: x[tr] for m, x in X.items()}, y[tr], {m: x[va] for m, x in X.items()}, y[va], X


def _both(head, val, layered, params=None):
    Xtr, ytr, Xva, yva, X = _data(layered)
    p = dict(SMALL if head == "gated" else {k: v for k, v in SMALL.items() if k in ("epochs", "batch_size", "hidden")},
             **(params or {}))
    kw = {"X_val": Xva, "y_val": yva} if val else {}
    seq = [get_head(head, **p).fit(Xtr, ytr, seed=s, **kw) for s in SEEDS]
    heads = [get_head(head, **p) for _ in SEEDS]
    bat = fit_batched(heads, heads[0].validate_fit_inputs(Xtr, ytr, **kw), SEEDS)
    return seq, bat, X


@pytest.mark.parametrize("head,val,layered", [("gated", True, False), ("gated", False, False), ("gated", True, True),
                                              ("concat", True, False), ("concat", False, True), ("late", True, False)])
def test_batched_seeds_match_sequential(head, val, layered):
    seq, bat, X = _both(head, val, layered)
    for a, b in zip(seq, bat):
        np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=TOL, rtol=0)
        assert (b.best_epoch_, b.best_step_, b.history_, b.schedule_) == (a.best_epoch_, a.best_step_, a.history_,
                                                                          a.schedule_)
        assert b.dynamics_.points == a.dynamics_.points
        np.testing.assert_allclose(b.dynamics_.p_gold, a.dynamics_.p_gold, atol=TOL, rtol=0)
        np.testing.assert_array_equal(np.isnan(b.dynamics_.p_gold), np.isnan(a.dynamics_.p_gold))
        assert b.layer_weights_.keys() == a.layer_weights_.keys() and (not layered or b.layer_weights_)
        for m, w in a.layer_weights_.items():
            np.testing.assert_allclose(b.layer_weights_[m], w, atol=TOL, rtol=0)
        if head == "gated":
            wa, wb = a.modality_weights(X), b.modality_weights(X)
            for k in ("gates", "attention"):
                np.testing.assert_allclose(wb[k], wa[k], atol=TOL, rtol=0)
    # the seeds really differ (each model has its own stream)
    assert np.abs(bat[0].predict_proba(X) - bat[1].predict_proba(X)).max() > 1e-3
    if val:
        assert all(len(h.history_) == 3 for h in bat)


@pytest.mark.parametrize("layer", ["mean", 1])
def test_batched_fixed_layer_choices_match_sequential(layer):
    seq, bat, X = _both("concat", True, True, {"layer": layer})
    for a, b in zip(seq, bat):
        assert b.best_epoch_ == a.best_epoch_ and b.history_ == a.history_ and not b.layer_weights_
        np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=TOL, rtol=0)


def test_batched_steps_budget_keeps_each_models_best_point():
    seq, bat, X = _both("gated", True, False, {"steps": 12, "batch_size": "auto", "max_lr": 3e-2})
    assert [h.best_step_ for h in bat] == [h.best_step_ for h in seq]
    for a, b in zip(seq, bat):
        assert b.history_ == a.history_ and len(a.history_) == 10
        np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=TOL, rtol=0)


def test_batched_path_is_deterministic():
    _, first, X = _both("gated", True, True)
    _, again, _ = _both("gated", True, True)
    for a, b in zip(first, again):
        assert a.predict_proba(X).tobytes() == b.predict_proba(X).tobytes()
        assert a.dynamics_.p_gold.tobytes() == b.dynamics_.p_gold.tobytes()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    _, store, keys = shared_store(tmp_path_factory, "gappy")
    keys = {"a": keys["a"], "b": keys["b"]}
    calls = []
    real = batched.fit_batched
    mp = pytest.MonkeyPatch()
    mp.setattr(batched, "fit_batched", lambda *a: calls.append(len(a[2])) or real(*a))
    params = {"epochs": 2, "hidden": 32, "proj_dim": 16, "att_dim": 8}
    on = train_run(store, "gated", keys, seeds=[0, 1], name="on", params=params)
    mp.setenv(batched.ENV, "0")
    off = train_run(store, "gated", keys, seeds=[0, 1], name="off", params=params)
    mp.undo()
    return store.read_run("on"), store.read_run("off"), calls, on, off


def test_train_run_batches_the_seeds_of_each_subset(runs):
    _, _, calls, _, _ = runs
    assert calls == [2, 2, 2]      # a, b, a+b: each subset's two seeds in one batched fit; none with the env var 0


def test_train_run_batched_equals_sequential(runs):
    on, off, _, _, _ = runs
    assert on.attrs["fits"] == off.attrs["fits"]                                  # best epochs per seed
    for sub, rs in off.subsets.items():
        b = on.subsets[sub]
        np.testing.assert_allclose(b.probs, rs.probs, atol=TOL, rtol=0)
        assert b.extra.keys() == rs.extra.keys() and "dynamics/confidence" in b.extra
        for path, v in rs.extra.items():
            np.testing.assert_allclose(b.extra[path], v, atol=TOL, rtol=0)
        if rs.gates is not None:
            np.testing.assert_allclose(b.gates, rs.gates, atol=TOL, rtol=0)
            np.testing.assert_allclose(b.attention, rs.attention, atol=TOL, rtol=0)
