"""SklearnHead: a registered head as a plain scikit-learn classifier on one 2-D array (column -> modality spec),
through clone, cross_val_score and GridSearchCV."""

import numpy as np
import pytest

from mixsig.errors import HeadError
from mixsig.heads import SklearnHead, get_head
from tests.heads.helpers import synthetic


@pytest.fixture(scope="module")
def data():
    X, y = synthetic(120, 0)
    return np.concatenate([X["a"], X["b"], X["c"]], axis=1), y, X


COLS = {"a": slice(0, 12), "b": [12, 20], "c": list(range(20, 30))}


def test_adapter_equals_the_head_on_the_dict_it_splits(data):
    A, y, X = data
    est = SklearnHead(head="logreg", columns=COLS, C=0.5).fit(A, np.where(y == 1, "yes", "no"))
    direct = get_head("logreg", C=0.5).fit(X, y, seed=0).predict_proba(X)
    assert list(est.classes_) == ["no", "yes"] and est.n_features_in_ == 30
    assert np.array_equal(est.predict_proba(A), direct)
    assert list(est.predict(A[:5])) == [["no", "yes"][i] for i in direct[:5].argmax(1)]
    assert est.score(A, np.where(y == 1, "yes", "no")) == pytest.approx((direct.argmax(1) == y).mean())
    # per-column names give the same split
    names = ["a"] * 12 + ["b"] * 8 + ["c"] * 10
    assert np.array_equal(SklearnHead(head="logreg", columns=names, C=0.5).fit(A, y).predict_proba(A), direct)


def test_clone_get_params_set_params(data):
    from sklearn.base import clone

    est = SklearnHead(head="gated", columns=COLS, epochs=2, class_weight={1: 2.0})
    p = est.get_params(deep=True)
    assert p["head"] == "gated" and p["epochs"] == 2 and p["class_weight"] == {1: 2.0} and "lr" in p
    twin = clone(est)
    assert twin is not est and twin.get_params() == p and not hasattr(twin, "head_")
    assert twin.set_params(epochs=3, seed=4) is twin and twin.get_params()["epochs"] == 3 and twin.seed == 4
    with pytest.raises(HeadError, match=r"Unknown parameter\(s\) \['C'\] for head 'gated'"):
        twin.set_params(C=1.0)
    with pytest.raises(HeadError, match="not fitted yet"):
        twin.predict(data[0])


def test_cross_val_score_and_grid_search(data):
    from sklearn.model_selection import GridSearchCV, cross_val_score

    A, y, _ = data
    scores = cross_val_score(SklearnHead(head="logreg", columns=COLS), A, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    noise = np.random.default_rng(1).integers(0, 2, len(y))   # null: labels unrelated to the features
    assert cross_val_score(SklearnHead(head="logreg", columns=COLS), A, noise, cv=3).mean() < 0.7
    grid = GridSearchCV(SklearnHead(head="logreg", columns=COLS), {"C": [1e-6, 1.0]}, cv=3).fit(A, y)
    assert grid.best_params_ == {"C": 1.0} and grid.best_estimator_.get_params()["C"] == 1.0   # 1e-6 ~ no fit
    # a 2-epoch gated head through GridSearchCV: the grid's picked params reach the fitted head
    gated = SklearnHead(head="gated", columns=COLS, epochs=2, hidden=8, proj_dim=8, att_dim=8, lr=1e-2, max_lr=1e-2,
                        batch_size=8)
    g = GridSearchCV(gated, {"dropout": [0.0, 0.1]}, cv=2).fit(A, y)
    assert g.best_estimator_.head_.get_params()["dropout"] == g.best_params_["dropout"]
    assert g.best_estimator_.head_.get_params()["hidden"] == 8 and g.score(A, y) > 0.7


def test_bad_column_specs_are_refused(data):
    A, y, _ = data
    with pytest.raises(HeadError, match=r"columns\['b'\] = \[12, 40\] selects no columns or columns outside 0..29"):
        SklearnHead(columns={"a": [0, 12], "b": [12, 40]}).fit(A, y)
    with pytest.raises(HeadError, match="columns names 3 columns but the array has 30"):
        SklearnHead(columns=["a", "b", "c"]).fit(A, y)
