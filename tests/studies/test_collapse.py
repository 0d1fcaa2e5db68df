"""Studies never crown a model that predicts one class without saying so.

Planted collapse: a key whose features are all 0 (``make_synthetic_store(constant=...)``); every head predicts one
class from it. Trials on it are marked (user attr ``collapsed``), listed by ``study show`` and re-evaluated last;
re-evaluation ranks by mean - std over seeds with collapsed seeds last; a winner whose run collapses is written
with a loud warning. ``study run`` refuses group leaks (exit 3) and keys of another modality (exit 2) before any
trial unless allowed, and records what it allowed.
"""

from __future__ import annotations

import json
import logging

import optuna
import pytest
from optuna.trial import TrialState

from mixsig.cli import main
from mixsig.studies import journal_file, open_storage, rank_reevaluations, run_study, top_configs
from mixsig.studies._settings import StudySettings
from tests.synthetic import make_synthetic_store


@pytest.fixture
def constant_store(tmp_path):
    """160 rows; text carries the label, ``audio`` holds a second key of all-zero features (keys["audio"][1])."""
    store, keys = make_synthetic_store(tmp_path / "c.zarr", n=160, n_groups=40, dims={"text": 8, "audio": 8},
                                       signal={"text": 2.0, "audio": 1.0}, constant=("audio",))
    return store, keys


def _load(store, name):
    return optuna.load_study(study_name=name, storage=open_storage(str(store.local_path)))


def test_trials_on_a_constant_key_are_marked_collapsed_listed_and_ranked_last(constant_store, capsys):
    store, keys = constant_store
    text, zero = keys["text"][0], keys["audio"][1]
    path = str(store.local_path)
    assert main(["study", "run", path, "--name", "c", "--heads", "logreg", "--features",
                 f"text={text},audio={zero}", "--trials", "12", "--no-final", "--json"]) == 0
    capsys.readouterr()
    study = _load(store, "c")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    on_zero_only = [t for t in complete if t.params["modalities"] == "audio"]
    assert on_zero_only, "the sampler never picked the constant key alone; change the seed"
    for t in on_zero_only:
        assert "predicts one class" in t.user_attrs["collapsed"]
    for t in complete:
        if t.params["modalities"] != "audio":
            assert "collapsed" not in t.user_attrs, (t.number, t.params, t.user_attrs)
    # show: the count and which trials
    assert main(["study", "show", path, "--name", "c", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["collapsed"]["count"] == len(on_zero_only)
    assert [c["number"] for c in shown["collapsed"]["trials"]] == sorted(t.number for t in on_zero_only)
    assert all(c["modalities"] == "audio" and "predicts one class" in c["reason"] for c in shown["collapsed"]["trials"])
    assert main(["study", "show", path, "--name", "c"]) == 0
    text_out = capsys.readouterr().out
    assert f"collapsed trials: {len(on_zero_only)} of {len(complete)} complete" in text_out
    for t in on_zero_only:
        assert f"trial {t.number} (logreg, audio," in text_out
    # re-evaluation candidates: every collapsed trial after every other one
    settings = StudySettings.from_dict(study.user_attrs["mixsig"])
    order = [bool(t.user_attrs.get("collapsed")) for t, _ in top_configs(study, settings, len(complete))]
    assert order == sorted(order) and order[-1]


def test_top_configs_puts_a_collapsed_trial_last_whatever_its_score():
    dist = {"head": optuna.distributions.CategoricalDistribution(["logreg"]),
            "modalities": optuna.distributions.CategoricalDistribution(["text"]),
            "logreg.C": optuna.distributions.FloatDistribution(1e-4, 10.0, log=True)}
    study = optuna.create_study(direction="maximize")
    for c, value, collapsed in ((1.0, 0.95, "predicts one class (1) for all 30 rows"), (0.5, 0.70, None),
                                (0.1, 0.60, None)):
        study.add_trial(optuna.trial.create_trial(
            params={"head": "logreg", "modalities": "text", "logreg.C": c}, distributions=dist, value=value,
            user_attrs={"collapsed": collapsed} if collapsed else {}))
    settings = StudySettings(heads=("logreg",), features=(("text", ("K",)),))
    top = top_configs(study, settings, 3)
    assert [t.number for t, _ in top] == [1, 2, 0]
    assert [t.number for t, _ in top_configs(study, settings, 2)] == [1, 2]


def test_reevaluation_ranks_by_mean_minus_std_and_collapsed_seeds_last():
    hidden = {"trial": 1, "value": 0.85, "scores": [0.85, 0.34, 0.34]}    # mean 0.51 hides two poor seeds
    steady = {"trial": 2, "value": 0.80, "scores": [0.80, 0.79, 0.81]}
    ranked = rank_reevaluations([hidden, steady])
    assert [r["trial"] for r in ranked] == [2, 1]
    assert ranked[0]["mean"] == pytest.approx(0.80) and ranked[0]["std"] == pytest.approx(0.01)   # ddof=1
    assert ranked[0]["robust"] == pytest.approx(0.79)
    assert ranked[1]["robust"] == pytest.approx(0.51 - 0.29445, abs=1e-4)
    # a configuration with a collapsed seed ranks after every one without, even with a better robust score
    best_but_collapsed = {"trial": 3, "value": 0.9, "scores": [0.90, 0.90, 0.90],
                          "collapsed_seeds": [{"seed": 1, "reason": "predicts one class (0) for all 30 rows"}]}
    assert [r["trial"] for r in rank_reevaluations([best_but_collapsed, hidden, steady])] == [2, 1, 3]
    one_seed = rank_reevaluations([{"trial": 4, "value": 0.5, "scores": [0.7]}])[0]
    assert one_seed["std"] is None and one_seed["robust"] == pytest.approx(0.7)


def test_a_winner_that_collapses_is_written_with_a_loud_warning(constant_store, capsys, caplog):
    store, keys = constant_store
    zero = keys["audio"][1]
    path = str(store.local_path)
    with caplog.at_level(logging.WARNING, logger="mixsig.studies"):
        assert main(["study", "run", path, "--name", "z", "--heads", "logreg", "--features", f"audio={zero}",
                     "--trials", "3", "--reeval-top", "2", "--reeval-seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert any("WINNER RUN study-z HAS COLLAPSED MODELS" in r.getMessage() for r in caplog.records)
    res = _load(store, "z").user_attrs["result"]
    run = store.read_run("study-z")
    assert run.attrs["collapsed"] and res["collapsed"] == run.attrs["collapsed"]
    assert {(e["subset"], e["seed"]) for e in res["collapsed"]} == {("audio", 0), ("audio", 1)}
    assert all(r["collapsed_seeds"] for r in res["reeval"])       # every candidate collapsed on every seed
    assert [c["seed"] for c in res["val_collapsed_seeds"]] == [0, 1]
    for text in (out, _show(path, "z", capsys)):
        assert "WARNING: audio seed 0 collapsed on val: predicts one class" in text
        assert "WARNING: audio seed 1 collapsed on test: predicts one class" in text
        assert "models (subset x seed) of the winner's run study-z collapsed" in text


def _show(path, name, capsys) -> str:
    assert main(["study", "show", path, "--name", name]) == 0
    return capsys.readouterr().out


def test_reevaluation_records_per_seed_scores_and_the_robust_winner(small_store, capsys):
    store, keys = small_store
    path = str(store.local_path)
    feats = ",".join(f"{m}={'|'.join(k)}" for m, k in keys.items())
    assert main(["study", "run", path, "--name", "r", "--heads", "logreg", "--features", feats, "--trials", "6",
                 "--reeval-top", "3", "--reeval-seeds", "2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["result"]
    assert res["ranking"].startswith("configs with no collapsed seed first")
    assert len(res["reeval"]) == 3 and res["trial"] == res["reeval"][0]["trial"]
    for r in res["reeval"]:
        assert len(r["scores"]) == 2 and {"mean", "std", "robust", "collapsed_seeds"} <= set(r)
        assert r["robust"] == pytest.approx(r["mean"] - r["std"])
    assert res["val_robust"] == max(r["robust"] for r in res["reeval"] if not r["collapsed_seeds"])
    assert res["val_per_seed"] == res["reeval"][0]["scores"]
    text = _show(path, "r", capsys)
    assert "mean-std" in text and f"winner trial {res['trial']}" in text


def test_study_run_refuses_a_group_leak_before_any_trial_unless_allowed(tmp_path, capsys):
    store, keys = make_synthetic_store(tmp_path / "g.zarr", n=160, n_groups=40, dims={"text": 8, "audio": 8},
                                       signal={"text": 2.0, "audio": 1.0}, leak_groups=2)
    path = str(store.local_path)
    args = ["study", "run", path, "--name", "g", "--heads", "logreg", "--features",
            f"text={keys['text'][0]},audio={keys['audio'][0]}", "--trials", "2", "--reeval-top", "1",
            "--reeval-seeds", "1"]
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "mixsig study run --allow-group-leak" in err and "2 group" in err
    assert not journal_file(store.local_path).exists() or "g" not in optuna.study.get_all_study_names(
        open_storage(path))                                          # refused before any trial
    assert main(args + ["--allow-group-leak", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overrides"]["allow_group_leak"] and out["overrides"]["group_leak"]["n_groups"] == 2
    assert out["result"]["allow_group_leak"] and out["result"]["group_leak"]["n_groups"] == 2
    assert store.read_run("study-g").attrs["group_leak"]["n_groups"] == 2   # passed through to train_run
    assert "WARNING: group leak allowed (--allow-group-leak): 2 group" in _show(path, "g", capsys)


def test_study_run_refuses_keys_of_another_modality_unless_allowed(small_store, capsys):
    store, keys = small_store
    path = str(store.local_path)
    swapped = f"text={keys['audio'][0]},audio={keys['text'][0]}"
    args = ["study", "run", path, "--name", "m", "--heads", "logreg", "--features", swapped, "--trials", "2",
            "--reeval-top", "1", "--reeval-seeds", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"text={keys['audio'][0]} holds audio" in err and f"audio={keys['text'][0]} holds text" in err
    assert "--allow-modality-mismatch" in err
    assert not journal_file(store.local_path).exists() or "m" not in optuna.study.get_all_study_names(
        open_storage(path))
    # alternatives are checked too, not only the first key of a modality
    assert main(["study", "run", path, "--name", "m2", "--heads", "logreg", "--features",
                 f"text={keys['text'][0]}|{keys['video'][0]}", "--trials", "1", "--no-final"]) == 2
    assert f"text={keys['video'][0]} holds video" in capsys.readouterr().err
    assert main(args + ["--allow-modality-mismatch", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = {keys["audio"][0]: {"used_as": "text", "holds": "audio"}, keys["text"][0]: {"used_as": "audio", "holds": "text"}}
    assert out["overrides"]["modality_mismatch"] == want and out["result"]["modality_mismatch"] == want
    assert store.read_run("study-m").attrs["modality_mismatch"] == want
    text = _show(path, "m", capsys)
    assert f"WARNING: modality mismatch allowed (--allow-modality-mismatch): text={keys['audio'][0]} holds audio" in text


def test_a_study_of_the_old_search_space_is_not_resumed(small_store):
    from mixsig.errors import StudyError
    from mixsig.studies._settings import SETTINGS_ATTR

    store, keys = small_store
    feats = {m: tuple(k) for m, k in keys.items()}
    run_study(store, "old", heads="logreg", features=feats, trials=1, final=False)
    study = _load(store, "old")
    study.set_user_attr(SETTINGS_ATTR, {**study.user_attrs[SETTINGS_ATTR], "version": 1})
    with pytest.raises(StudyError, match="search space: study made with version 1"):
        run_study(store, "old", heads="logreg", features=feats, trials=2, final=False)
    assert run_study(store, "old", heads="logreg", features=feats, trials=1, final=False, new=True)["name"] == "old-2"
