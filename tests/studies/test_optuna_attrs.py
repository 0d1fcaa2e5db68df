"""What optuna-dashboard shows of a mixsig study: the study's feature keys and split hash (study user attrs),
each trial's picked keys (trial user attrs); `study show` lists the picked key; the re-evaluation reports its
progress; a worker that finds a new best says that `study run` must be rerun to update the winner run."""

import json

import optuna
import pytest

from mixsig.cli import main
from mixsig.studies import open_storage, run_study
from tests.synthetic import make_synthetic_store


@pytest.fixture(scope="module")
def studied(tmp_path_factory):
    """A 6-trial logreg study over two text keys (informative, noise) and audio, finalized (2 x 2 re-evaluation)."""
    path = tmp_path_factory.mktemp("attrs") / "store.zarr"
    store, keys = make_synthetic_store(path, n=120, n_groups=30, dims={"text": 6, "audio": 6},
                                       signal={"text": 2.0, "audio": 1.0}, extra_keys={"text": 0.0})
    calls = []
    summary = run_study(store, "s", heads="logreg", features={m: tuple(k) for m, k in keys.items()}, trials=6,
                        reeval_top=2, reeval_seeds=2, on_reeval=lambda done, total: calls.append((done, total)))
    study = optuna.load_study(study_name="s", storage=open_storage(str(store.local_path)))
    return store, keys, summary, study, calls


def test_study_and_trials_record_the_keys_and_the_split(studied):
    store, keys, _, study, _ = studied
    assert study.user_attrs["feature_keys"] == {m: list(k) for m, k in keys.items()}
    assert study.user_attrs["split_hash"] == store.split_hash()
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        picked = t.user_attrs["features"]
        assert t.user_attrs["keys"] == ", ".join(f"{m}={k}" for m, k in picked.items())
        assert all(k in keys[m] for m, k in picked.items())
        if "text" in picked and len(keys["text"]) > 1:   # the key is a searched parameter (importances see it)
            assert t.params["key.text"] == picked["text"]


def test_show_lists_the_key_each_best_trial_picked(studied, capsys):
    store, keys, _, study, _ = studied
    assert main(["study", "show", str(store.local_path), "--name", "s", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]
    by_number = {t.number: t for t in study.trials}
    assert all(b["features"] == by_number[b["number"]].user_attrs["features"] for b in best)
    assert main(["study", "show", str(store.local_path), "--name", "s"]) == 0
    text = capsys.readouterr().out
    assert "keys picked" in text
    row = next(line for line in text.splitlines() if line.startswith(str(best[0]["number"]) + " "))
    assert f"text={best[0]['features']['text']}" in row if "text" in best[0]["features"] else "-" in row


def test_reevaluation_reports_progress_once_per_model(studied):
    _, _, summary, _, calls = studied
    n = len(summary["reeval"]) * 2
    assert calls == [(i, n) for i in range(n + 1)] and n == 4


def test_worker_that_finds_a_new_best_says_study_run_must_be_rerun(studied, capsys):
    store, keys, summary, study, _ = studied
    path = str(store.local_path)
    assert main(["study", "worker", path, "--name", "s", "--trials", "0", "-q"]) == 0   # null: nothing new
    assert "new best" not in capsys.readouterr().err
    # plant a new best: a finished trial better than every re-evaluated one
    best = max(t.value for t in study.trials if t.value is not None)
    tr = study.ask()
    study.tell(tr, best + 0.01)
    assert main(["study", "worker", path, "--name", "s", "--trials", "0", "-q"]) == 0
    got = capsys.readouterr()
    assert got.out == ""                                                   # -q: no summary
    line = got.err.strip().splitlines()[-1]
    assert f"trial {tr.number} is the study's new best" in line and "winner run study-s is not updated" in line
    assert f"rerun `mixsig study run {path} --name s" in line
