import re

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from mixsig.errors import StudyError, UsageError
from mixsig.features import parse_features
from mixsig.heads import list_heads, modality_subsets
from mixsig.studies import (
    SPACES, Float, HeadSpace, StudyData, config_from_params, describe_spaces, get_metric, get_space, list_spaces,
    register_space, suggest_config,
)


def test_modalities_choices_are_the_heads_subsets_joined():
    """One modality_subsets: the study's ``modalities`` parameter offers exactly mixsig.heads' subsets."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    suggest_config(trial, ("logreg",), {"text": ("K1",), "audio": ("K2",), "video": ("K3",)})
    choices = list(trial.distributions["modalities"].choices)
    assert choices == ["+".join(s) for s in modality_subsets(["text", "audio", "video"])] == [
        "text", "audio", "video", "text+audio", "text+video", "audio+video", "text+audio+video"]


def test_parse_features_keeps_order_and_alternatives():
    assert parse_features("text=K1|K2, audio=K3", alternatives=True) == {"text": ("K1", "K2"), "audio": ("K3",)}
    assert parse_features({"text": "K1", "audio": ["K2", "K3"]}, alternatives=True) == {
        "text": ("K1",), "audio": ("K2", "K3")}
    with pytest.raises(StudyError, match="twice"):
        parse_features("text=K1,text=K2", alternatives=True, error=StudyError)
    with pytest.raises(StudyError, match="MODALITY=KEY"):
        parse_features("text", alternatives=True, error=StudyError)
    with pytest.raises(UsageError, match="lists a key twice"):
        parse_features("text=K1|K1", alternatives=True)


def test_parse_features_one_key_per_modality_by_default():
    assert parse_features("text=K1, audio=K2") == {"text": "K1", "audio": "K2"}
    assert parse_features({"text": "K1"}) == {"text": "K1"}
    with pytest.raises(UsageError, match=r"one key per modality.*mixsig study"):
        parse_features("text=K1|K2")
    for bad, why in (("text", "MODALITY=KEY"), ("text=", "names no key"), ("=K1", "names no modality"),
                     ("", "empty"), ("text=K1,text=K2", "twice")):
        with pytest.raises(UsageError, match=why):
            parse_features(bad)


def test_run_study_refuses_bad_features_with_a_study_error(small_store):
    from mixsig.studies import run_study

    store, _ = small_store
    with pytest.raises(StudyError, match="MODALITY=KEY"):
        run_study(store, "x", heads="logreg", features="text", trials=1)


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


_RANGE = re.compile(r"^(?P<name>\w+) (?:\[(?P<flo>[^,\]]+), (?P<fhi>[^\]]+)\]|(?P<ilo>-?\d+)\.\.(?P<ihi>-?\d+)"
                    r"|\{(?P<choices>[^}]*)\})(?P<log> log)?(?: \([^)]*\))?$")


def _described(head: str) -> tuple[dict, str]:
    """The searched ranges ``describe_spaces`` shows for ``head``, parsed back: ({name: match}, fixed text)."""
    lines = [ln for ln in describe_spaces().splitlines() if ln.startswith(f"{head}: ")]
    assert len(lines) == 1, f"describe_spaces has {len(lines)} lines for {head}"
    searched, _, fixed = lines[0][len(head) + 2:].partition("; fixed ")
    out = {}
    for part in re.split(r", (?=\w+ [\[{\d])", searched):
        m = _RANGE.match(part)
        assert m, f"{head}: {part!r} is not NAME [lo, hi] | NAME lo..hi | NAME {{a, b}} (+ log)"
        out[m["name"]] = m
    return out, fixed


@pytest.mark.parametrize("head", list_spaces())
def test_described_ranges_are_what_the_trials_search(head):
    """Every parameter a trial of ``head`` asks Optuna for appears in the described text with its exact range
    (bounds, log scale, choices), and every fixed parameter with its value."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    cfg = suggest_config(trial, (head,), {"text": ("K1",)})
    dists = {k[len(head) + 1:]: d for k, d in trial.distributions.items() if k.startswith(head + ".")}
    described, fixed = _described(head)
    assert set(described) == set(dists), f"{head}: described {sorted(described)}, searched {sorted(dists)}"
    for name, d in dists.items():
        m = described[name]
        if isinstance(d, FloatDistribution):
            assert m["flo"] is not None, f"{head}.{name}: a float shown as {m.group(0)!r}"
            assert (float(m["flo"]), float(m["fhi"]), bool(m["log"])) == (d.low, d.high, d.log), m.group(0)
        elif isinstance(d, IntDistribution):
            assert m["ilo"] is not None, f"{head}.{name}: an int shown as {m.group(0)!r}"
            assert (int(m["ilo"]), int(m["ihi"]), bool(m["log"])) == (d.low, d.high, d.log), m.group(0)
        else:
            assert isinstance(d, CategoricalDistribution) and m["choices"] is not None
            assert m["choices"].split(", ") == [str(c) for c in d.choices], m.group(0)
    space = get_space(head)
    assert fixed == ", ".join(f"{k}={v}" for k, v in space.fixed.items())
    assert {k: cfg.params[k] for k in space.fixed} == dict(space.fixed)


def test_every_head_has_a_space_and_the_cli_prints_them(capsys):
    from mixsig.cli import main

    assert list_spaces() == list_heads()
    assert main(["study", "spaces"]) == 0
    assert capsys.readouterr().out.strip() == describe_spaces()


def test_a_space_is_registered_once():
    with pytest.raises(StudyError, match="already registered"):
        register_space(HeadSpace("logreg", (Float("C", 1e-3, 1.0, log=True),)))
    with pytest.raises(StudyError, match=r"Unknown search space 'nope'.*logreg"):
        get_space("nope")
    with pytest.raises(StudyError, match="twice"):
        HeadSpace("x", (Float("a", 0, 1), Float("a", 0, 2)))
    assert "logreg" in SPACES


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
