import numpy as np
import optuna
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from mixsig.errors import StudyError, UsageError
from mixsig.studies import (
    StudyData, config_from_params, describe_spaces, get_metric, modality_subsets, parse_features,
)
from mixsig.studies._space import suggest_config


def test_modality_subsets_are_every_nonempty_subset_in_order():
    assert modality_subsets(("text", "audio", "video")) == [
        "text", "audio", "video", "text+audio", "text+video", "audio+video", "text+audio+video"]


def test_parse_features_keeps_order_and_alternatives():
    assert parse_features("text=K1|K2, audio=K3") == {"text": ("K1", "K2"), "audio": ("K3",)}
    with pytest.raises(StudyError, match="twice"):
        parse_features("text=K1,text=K2")
    with pytest.raises(StudyError, match="MODALITY=KEY"):
        parse_features("text")


def test_suggested_config_round_trips_from_trial_params():
    features = {"text": ("K1", "K2"), "audio": ("K3",)}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    seen_heads, seen_subsets = set(), set()
    for _ in range(40):
        trial = study.ask()
        cfg = suggest_config(trial, ("gated", "lightgbm", "logreg"), features)
        study.tell(trial, 0.5)
        back = config_from_params(study.trials[-1].params, ("gated", "lightgbm", "logreg"), features)
        assert back == cfg
        assert cfg.features  # never an empty subset
        assert all(cfg.features[m] in features[m] for m in cfg.features)
        seen_heads.add(cfg.head)
        seen_subsets.add("+".join(cfg.features))
    assert seen_heads == {"gated", "lightgbm", "logreg"}
    assert seen_subsets == {"text", "audio", "text+audio"}
    lgb = [t for t in study.trials if t.params["head"] == "lightgbm"][0]
    cfg = config_from_params(lgb.params, ("gated", "lightgbm", "logreg"), features)
    assert cfg.params["max_bin"] == 63 and cfg.params["feature_fraction"] <= 0.3


def test_spaces_are_documented_per_head():
    text = describe_spaces()
    for head in ("gated", "lightgbm", "logreg", "concat", "late"):
        assert f"\n{head}:" in "\n" + text


@pytest.mark.parametrize("name", ["accuracy", "macro_f1", "weighted_f1", "auroc"])
def test_metrics_match_sklearn(name):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    proba[np.arange(200), y] += 0.3 * rng.random(200)
    proba /= proba.sum(1, keepdims=True)
    pred = proba.argmax(1)
    want = {"accuracy": accuracy_score(y, pred), "macro_f1": f1_score(y, pred, average="macro"),
            "weighted_f1": f1_score(y, pred, average="weighted"),
            "auroc": roc_auc_score(y, proba, multi_class="ovr")}[name]
    assert get_metric(name)(y, proba) == pytest.approx(want, abs=1e-12)
    with pytest.raises(UsageError, match="must be one of"):
        get_metric("f2")


def test_study_data_cv_folds_never_split_a_group(small_store):
    store, keys = small_store
    data = StudyData(store, {m: tuple(k) for m, k in keys.items()}, cv=4, seed=0)
    groups = store.samples.group[data.rows]
    assert len(data.folds) == 4
    covered = np.concatenate([f.val for f in data.folds])
    assert sorted(covered) == list(range(len(data.rows)))  # every train+val row validated exactly once
    for f in data.folds:
        assert not set(groups[f.train]) & set(groups[f.val])
    split = store.samples.split[data.rows]
    assert set(split) == {"train", "val"}


def test_rows_not_done_are_left_out_with_a_count(small_store):
    store, keys = small_store
    k = keys["audio"][0]
    train = store.samples.rows("train")
    with store.writer(k) as w:
        w.invalidate(train[:5])
    data = StudyData(store, {m: tuple(v) for m, v in keys.items()})
    assert data.excluded[k] == 5 and data.excluded[keys["video"][0]] == 0
    assert not set(train[:5]) & set(data.rows)
    for X in data.X.values():
        assert np.isfinite(X).all() and X.shape[0] == len(data.rows)
