"""Every head through the one interface: save/load, determinism, soft labels, class weights, refusals, the
scikit-learn parameter protocol (clone), and validation apart from fitting."""

import pickle

import numpy as np
import pytest

from mixsig.errors import HeadError
from mixsig.heads import FitInputs, GatedFusionHead, Head, LightGBMHead, LogRegHead, get_head, list_heads, load_head
from mixsig.heads._targets import expand_targets, target_matrix
from tests.heads.helpers import synthetic

FAST = {"gated": {"epochs": 3}, "concat": {"epochs": 3}, "late": {"epochs": 3},
        "logreg": {}, "lightgbm": {"n_estimators": 40, "min_child_samples": 5}}


@pytest.fixture(scope="module")
def data():
    X, y = synthetic(120, 0)
    Xv, yv = synthetic(50, 1)
    return X, y, Xv, yv


def test_registry_lists_every_head_and_refuses_unknown_names():
    assert list_heads() == ["concat", "gated", "late", "lightgbm", "logreg"]
    with pytest.raises(HeadError, match="Unknown head 'mlp'. Valid heads: concat, gated, late, lightgbm, logreg"):
        get_head("mlp")
    assert get_head("lightgbm", num_leaves=7).get_params()["num_leaves"] == 7
    assert get_head("gated").get_params()["lr"] == 1e-4 and get_head("gated").get_params()["max_lr"] == 1e-3


@pytest.mark.parametrize("name", sorted(FAST))
def test_save_load_gives_identical_probabilities(name, data, tmp_path):
    X, y, Xv, yv = data
    head = get_head(name, **FAST[name]).fit(X, y, X_val=Xv, y_val=yv, seed=1)
    p = head.predict_proba(Xv)
    assert p.shape == (50, 2) and (p.argmax(1) == yv).mean() > 0.8
    head.save(tmp_path / "h")
    loaded = load_head(tmp_path / "h")
    assert type(loaded) is type(head) and loaded.get_params() == head.get_params()
    assert np.array_equal(type(head).load(tmp_path / "h").predict_proba(Xv), p)   # the class's own load
    assert np.array_equal(loaded.predict_proba(Xv), p)
    w, lw = head.modality_weights(Xv), loaded.modality_weights(Xv)
    assert (w is None) == (lw is None) == (name != "gated")
    if w:
        assert all(np.array_equal(w[k], lw[k]) for k in ("gates", "attention"))
    files = sorted(f.name for f in (tmp_path / "h").iterdir())
    assert files == ["head.json", "model.txt" if name == "lightgbm" else "model.safetensors"]


@pytest.mark.parametrize("name", sorted(FAST))
def test_same_seed_gives_identical_probabilities(name, data):
    X, y, Xv, yv = data
    params = dict(FAST[name], **({"feature_fraction": 0.5} if name == "lightgbm" else {}))
    a = get_head(name, **params).fit(X, y, X_val=Xv, y_val=yv, seed=5).predict_proba(Xv)
    b = get_head(name, **params).fit(X, y, X_val=Xv, y_val=yv, seed=5).predict_proba(Xv)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", sorted(FAST))
def test_one_hot_soft_labels_equal_hard_labels(name, data):
    X, y, Xv, yv = data
    hard = get_head(name, **FAST[name]).fit(X, y, X_val=Xv, y_val=yv, seed=2).predict_proba(Xv)
    soft = get_head(name, **FAST[name]).fit(X, y, X_val=Xv, y_val=yv, seed=2,
                                            soft_labels=np.eye(2)[y]).predict_proba(Xv)
    np.testing.assert_allclose(soft, hard, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["logreg", "lightgbm", "concat"])
def test_uniform_soft_labels_give_uniform_probabilities(name, data):
    X, y, Xv, _ = data
    params = dict(FAST[name], **({"epochs": 30} if name == "concat" else {}))
    p = get_head(name, **params).fit(X, y, soft_labels=np.full((len(y), 2), 0.5), seed=0).predict_proba(Xv)
    assert np.abs(p[:, 1].mean() - 0.5) < 0.1


@pytest.mark.parametrize("name", ["logreg", "lightgbm", "gated"])
def test_balanced_class_weight_raises_the_minority_class(name):
    rng = np.random.default_rng(0)
    n = 200
    y = (rng.random(n) < 0.15).astype(np.int64)            # 15% minority, features are noise
    X = {"a": rng.standard_normal((n, 6)).astype(np.float32)}
    params = {"gated": {"epochs": 5}, "lightgbm": {"n_estimators": 30}}.get(name, {})
    plain = get_head(name, **params).fit(X, y, seed=0).predict_proba(X)[:, 1].mean()
    balanced = get_head(name, class_weight="balanced", **params).fit(X, y, seed=0).predict_proba(X)[:, 1].mean()
    assert plain < 0.3 and balanced > 0.35 and balanced > plain + 0.15


def test_target_matrix_weights():
    y = np.array([0, 0, 0, 1])
    T = target_matrix(y, 2, class_weight="balanced")
    np.testing.assert_allclose(T, [[4 / 6, 0], [4 / 6, 0], [4 / 6, 0], [0, 2.0]])   # sklearn's n / (C * n_c)
    T = target_matrix(y, 2, class_weight={"1": 3.0}, sample_weight=np.array([1, 2, 1, 1.0]))
    np.testing.assert_allclose(T, [[1, 0], [2, 0], [1, 0], [0, 3]])
    q = np.array([[0.5, 0.5], [1, 0], [0, 1], [0.25, 0.75]])
    rows, labels, w = expand_targets(target_matrix(y, 2, soft_labels=q))
    assert rows.tolist() == [0, 0, 1, 2, 3, 3] and labels.tolist() == [0, 1, 0, 1, 0, 1]
    np.testing.assert_allclose(w, [0.5, 0.5, 1, 1, 0.25, 0.75])
    with pytest.raises(HeadError, match="class_weight names class 2, but there are only 2 classes"):
        target_matrix(y, 2, class_weight={2: 1.0})


@pytest.mark.parametrize("name", sorted(FAST))
def test_three_classes(name):
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    X = {"a": (np.eye(3)[y] * 3 + rng.standard_normal((150, 3))).astype(np.float32),
         "b": rng.standard_normal((150, 4)).astype(np.float32)}
    p = get_head(name, **FAST[name]).fit(X, y, X_val=X, y_val=y, seed=0).predict_proba(X)
    assert p.shape == (150, 3) and (p.argmax(1) == y).mean() > 0.8
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_n_classes_keeps_a_column_for_an_unseen_class(data):
    X, y, Xv, _ = data
    p = get_head("logreg").fit(X, y, n_classes=3).predict_proba(Xv)
    assert p.shape == (50, 3) and np.all(p[:, 2] == 0)


def test_pickles_and_torch_files_are_refused(data, tmp_path):
    X, y, _, _ = data
    head = get_head("logreg").fit(X, y)
    head.save(tmp_path / "h")
    (tmp_path / "h" / "model.safetensors").write_bytes(pickle.dumps({"coef": 1}))
    with pytest.raises(HeadError, match="Refusing to load .*model.safetensors: it looks like a pickle"):
        load_head(tmp_path / "h")
    (tmp_path / "m.pt").write_bytes(b"PK\x03\x04" + b"\0" * 20)
    with pytest.raises(HeadError, match="Refusing to load .*m.pt"):
        load_head(tmp_path / "m.pt")
    with pytest.raises(HeadError, match="head.json is missing"):
        load_head(tmp_path)


def test_lightgbm_reuses_a_constructed_dataset(data):
    X, y, Xv, yv = data
    head = LightGBMHead(n_estimators=40, min_child_samples=5)
    ds = head.make_dataset(X, y, X_val=Xv, y_val=yv)
    rebuilt = head.fit(X, y, X_val=Xv, y_val=yv, seed=3).predict_proba(Xv)
    reused = LightGBMHead(n_estimators=40, min_child_samples=5).fit(X, y, X_val=Xv, y_val=yv, seed=3,
                                                                   dataset=ds).predict_proba(Xv)
    assert np.array_equal(rebuilt, reused)
    # no state is stashed on the head between building a dataset and fitting
    assert not {"_capture", "_dataset"} & set(vars(head))
    inputs = head.validate_fit_inputs(X, y, X_val=Xv, y_val=yv)
    explicit = LightGBMHead(n_estimators=40, min_child_samples=5).fit_validated(inputs, seed=3,
                                                                               dataset=head.dataset(inputs))
    assert np.array_equal(explicit.predict_proba(Xv), rebuilt)
    # other tree parameters reuse the same binned data
    other = LightGBMHead(n_estimators=40, min_child_samples=5, num_leaves=4)
    other.fit(X, y, X_val=Xv, y_val=yv, dataset=ds)
    again = LightGBMHead(n_estimators=40, min_child_samples=5, num_leaves=4).fit(X, y, X_val=Xv, y_val=yv)
    assert np.array_equal(other.predict_proba(Xv), again.predict_proba(Xv))
    with pytest.raises(HeadError, match="labels, soft labels, sample weights or class weights"):
        head.fit(X, 1 - y, X_val=Xv, y_val=yv, dataset=ds)
    with pytest.raises(HeadError, match="binning parameters"):
        LightGBMHead(max_bin=15).fit(X, y, X_val=Xv, y_val=yv, dataset=ds)
    with pytest.raises(HeadError, match="training features"):
        head.fit({m: x + 1 for m, x in X.items()}, y, X_val=Xv, y_val=yv, dataset=ds)


def test_lightgbm_stops_early_on_validation_loss():
    rng = np.random.default_rng(0)
    X = {"a": rng.standard_normal((200, 5)).astype(np.float32)}
    y = rng.integers(0, 2, 200)
    head = get_head("lightgbm", n_estimators=500, early_stopping_rounds=10, min_child_samples=5)
    head.fit(X, y, X_val={"a": X["a"][:50] + 0}, y_val=rng.integers(0, 2, 50), seed=0)
    assert head.best_iteration_ < 100 and head.booster_.current_iteration() == head.best_iteration_


def test_class_load_refuses_another_head_and_base_load_names_load_head(data, tmp_path):
    X, y, _, _ = data
    get_head("logreg").fit(X, y).save(tmp_path / "h")
    assert type(LogRegHead.load(tmp_path / "h")) is LogRegHead
    with pytest.raises(HeadError, match="holds a 'logreg' head, not a 'gated' head; load it with mixsig.heads.load_head"):
        GatedFusionHead.load(tmp_path / "h")
    with pytest.raises(HeadError, match=r"use mixsig.heads.load_head\("):
        Head.load(tmp_path / "h")


@pytest.mark.parametrize("name", list_heads())
def test_sklearn_clone_gives_an_unfitted_head_that_fits_the_same(name, data):
    from sklearn.base import clone

    X, y, Xv, yv = data
    head = get_head(name, class_weight={1: 2.0}, **FAST[name])
    a = head.fit(X, y, X_val=Xv, y_val=yv, seed=4).predict_proba(Xv)
    twin = clone(head)
    assert type(twin) is type(head) and twin is not head and twin.get_params() == head.get_params()
    assert twin.get_params(deep=True) == twin.get_params(deep=False)
    with pytest.raises(HeadError, match="not fitted yet"):
        twin.predict_proba(Xv)
    b = twin.fit(X, y, X_val=Xv, y_val=yv, seed=4).predict_proba(Xv)
    assert np.array_equal(a, b)


def test_set_params_follows_scikit_learn(data):
    X, y, Xv, _ = data
    head = get_head("lightgbm", **FAST["lightgbm"])
    assert head.set_params(num_leaves=4, learning_rate=0.2) is head
    assert head.get_params()["num_leaves"] == 4 and head.get_params()["learning_rate"] == 0.2
    same = get_head("lightgbm", **dict(FAST["lightgbm"], num_leaves=4, learning_rate=0.2))
    assert np.array_equal(head.fit(X, y, seed=0).predict_proba(Xv), same.fit(X, y, seed=0).predict_proba(Xv))
    with pytest.raises(HeadError, match=r"Unknown parameter\(s\) \['leaves'\] for head 'lightgbm'. Valid parameters"):
        head.set_params(leaves=3)
    assert get_head("logreg", C=np.float64(0.5)).get_params()["C"].__class__ is float   # stored JSON-able


@pytest.mark.parametrize("name", sorted(FAST))
def test_validation_is_a_step_of_its_own(name, data):
    X, y, Xv, yv = data
    head = get_head(name, **FAST[name])
    with pytest.raises(HeadError, match="soft_labels rows must be >= 0 and sum to 1"):
        head.validate_fit_inputs(X, y, soft_labels=np.full((len(y), 2), 0.7))
    inputs = head.validate_fit_inputs(X, y, X_val=Xv, y_val=yv)
    assert isinstance(inputs, FitInputs) and inputs.modalities == ("a", "b", "c") and inputs.n_classes == 2
    assert inputs.dims == (12, 8, 10) and inputs.T.shape == (120, 2) and not hasattr(head, "n_classes_")
    a = head.fit_validated(inputs, seed=6).predict_proba(Xv)
    b = get_head(name, **FAST[name]).fit(X, y, X_val=Xv, y_val=yv, seed=6).predict_proba(Xv)
    assert np.array_equal(a, b)
    with pytest.raises(HeadError, match="validated with class_weight=None, but this head has class_weight='balanced'"):
        get_head(name, class_weight="balanced", **FAST[name]).fit_validated(inputs)
