import json
import os
import signal
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from mixsig.cli import main
from mixsig.errors import StudyError
from mixsig.studies import fail_dead_trials, join_study, journal_file, open_storage, run_study, study_summary
from mixsig.studies._pruning import make_pruner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def features_arg(keys) -> str:
    return ",".join(f"{m}={'|'.join(k)}" for m, k in keys.items())


def mixsig_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from mixsig.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def popen(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    return subprocess.Popen(mixsig_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)


def _load(store, name, storage=None):
    return optuna.load_study(study_name=name, storage=open_storage(str(store.local_path), storage))


def test_study_run_cli_searches_writes_the_winner_and_show_reads_it(small_store, capsys):
    store, keys = small_store
    rc = main(["study", "run", str(store.local_path), "--name", "s", "--heads", "logreg,lightgbm",
               "--features", features_arg(keys), "--trials", "12", "--reeval-top", "2", "--reeval-seeds", "2",
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    study = _load(store, "s")
    finished = study.get_trials(states=FINISHED)
    assert len(finished) >= 12 and out["n_trials"] == len(study.trials)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.user_attrs["mixsig"]["split_hash"] == store.split_hash()
    assert study.user_attrs["mixsig"]["features"] == {m: list(k) for m, k in keys.items()}
    # the winner was re-evaluated over 2 seeds and trained on every subset of its modalities
    res = out["result"]
    assert res["run"] == "study-s" and len(res["seeds"]) == 2 and len(out["reeval"]) == 2
    # the winner: no collapsed seed, then the best mean - std over the seeds (not the best mean)
    assert res["trial"] == out["reeval"][0]["trial"] and not res["val_collapsed_seeds"]
    assert res["val_robust"] == max(r["robust"] for r in out["reeval"] if not r["collapsed_seeds"])
    run = store.read_run("study-s")
    assert run.attrs["source"] == "study:s" and run.attrs["study"]["name"] == "s"
    # the run covers every modality of the study (the disagreement analysis compares all subsets), the winner's
    # subset with the winner's keys
    mods = list(res["config"]["features"])
    assert run.attrs["modalities"] == list(keys) and len(run.subsets) == 7
    assert all(run.attrs["features"][m] == k for m, k in res["config"]["features"].items())
    assert run.subsets["+".join(mods)].probs.shape[0] == 2
    assert 0.0 <= res["test"]["+".join(mods)]["mean"] <= 1.0 and set(res["test"]) == set(run.subsets)
    # the informative text key beats the noise key and the video modality carries no signal
    best = study.best_trial
    assert best.value > 0.75
    # show: text and JSON
    assert main(["study", "show", str(store.local_path), "--name", "s", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["best"][0]["number"] == best.number and shown["run"]["name"] == "study-s"
    assert shown["states"]["COMPLETE"] + shown["states"].get("PRUNED", 0) >= 12
    assert set(shown["importances"]) == {"all", "logreg", "lightgbm"}
    assert main(["study", "show", str(store.local_path), "--name", "s"]) == 0
    text = capsys.readouterr().out
    assert "best trials:" in text and "run study-s" in text


def test_rerun_resumes_and_changed_store_is_refused_or_new(small_store):
    store, keys = small_store
    feats = {m: tuple(k) for m, k in keys.items()}
    run_study(store, "r", heads="logreg", features=feats, trials=4, final=False)
    s = run_study(store, "r", heads="logreg", features=feats, trials=6, final=False)  # resume to 6
    assert s["states"]["COMPLETE"] == 6
    with pytest.raises(StudyError, match="heads: study has"):
        run_study(store, "r", heads="lightgbm", features=feats, trials=6, final=False)
    # rows of a key get undone: the data the study ran on is gone -> refused, naming what changed
    with store.writer(keys["audio"][0]) as w:
        w.invalidate(store.samples.rows("val")[:3])
    with pytest.raises(StudyError, match=r"rows done in every key changed \(\d+ -> \d+"):
        run_study(store, "r", heads="logreg", features=feats, trials=6, final=False)
    with pytest.raises(StudyError, match="other data"):
        join_study(store, "r", trials=1)
    s2 = run_study(store, "r", heads="logreg", features=feats, trials=3, final=False, new=True)
    assert s2["name"] == "r-2" and s2["states"]["COMPLETE"] == 3
    assert s2["excluded_rows"] == {keys["audio"][0]: 3} and s["excluded_rows"] == {}
    assert _load(store, "r").user_attrs["mixsig"]["n_rows"] > _load(store, "r-2").user_attrs["mixsig"]["n_rows"]
    # a key removed from the store
    store.delete_key(keys["video"][0])
    with pytest.raises(StudyError, match="no longer in the store"):
        join_study(store, "r-2", trials=1)


def test_sqlite_is_refused_for_workers_and_unknown_study_named(small_store, tmp_path):
    store, keys = small_store
    with pytest.raises(StudyError, match="not safe for parallel.*journal file.*postgresql"):
        join_study(store, "x", storage=f"sqlite:///{tmp_path}/o.db")
    with pytest.raises(StudyError, match="no study named 'nope'"):
        join_study(store, "nope")
    assert main(["study", "worker", str(store.local_path), "--name", "x", "--storage", f"sqlite:///{tmp_path}/o.db"]) == 1


def test_cv_study_scores_group_folds(small_store):
    store, keys = small_store
    s = run_study(store, "cv", heads="logreg", features={"text": keys["text"][0]}, trials=3, cv=3, final=False)
    st = _load(store, "cv")
    t = st.get_trials(states=(TrialState.COMPLETE,))[0]
    assert s["settings"]["cv"] == 3 and sorted(t.intermediate_values) == [0, 1, 2]
    assert t.value == pytest.approx(t.intermediate_values[2])  # running mean after the last fold = the score


def test_dead_local_worker_trials_are_failed_live_and_remote_ones_kept(tmp_path):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "j")))
    study = optuna.create_study(storage=storage, study_name="d")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = {"host": os.uname().nodename, "pid": os.getpid()}
    import socket

    me["host"] = socket.gethostname()
    for worker in ({**me, "pid": dead.pid}, me, {**me, "host": "elsewhere", "pid": dead.pid}):
        t = study.ask()
        t.set_user_attr("mixsig_worker", worker)
    assert fail_dead_trials(study) == [0]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert study.user_attrs == {"mixsig_failed.0": "worker process died"}  # told FAIL through the public API
    assert fail_dead_trials(study) == []  # nothing left to fail


def test_pruner_compares_only_trials_of_the_same_head():
    dist = {"head": optuna.distributions.CategoricalDistribution(["a", "b"])}
    study = optuna.create_study(direction="maximize")
    for head, value in (("a", 0.9), ("a", 0.8), ("b", 0.1), ("b", 0.2)):
        study.add_trial(optuna.trial.create_trial(params={"head": head}, distributions=dist, value=value,
                                                  intermediate_values={0: value}))
    pruner = make_pruner({"a": 0, "b": 0}, n_startup_trials=2)
    # 0.5 at step 0: below every earlier "a" trial, above every earlier "b" trial
    for head, pruned in (("a", True), ("b", False)):
        t = optuna.trial.create_trial(params={"head": head}, distributions=dist, state=TrialState.RUNNING,
                                      intermediate_values={0: 0.5})
        assert pruner.prune(study, t) is pruned
    # warm-up: with 3 warm-up steps nothing is pruned at step 0
    assert make_pruner({"a": 3}, n_startup_trials=2).prune(study, optuna.trial.create_trial(
        params={"head": "a"}, distributions=dist, state=TrialState.RUNNING, intermediate_values={0: 0.0})) is False


def test_two_processes_share_the_journal_study(small_store):
    store, keys = small_store
    path = str(store.local_path)
    common = ["--name", "par", "--json", "--threads", "1"]
    first = popen("study", "run", path, *common, "--heads", "logreg,lightgbm", "--features", features_arg(keys),
                  "--trials", "24", "--no-final")
    deadline = time.time() + 60
    while time.time() < deadline:  # the worker needs the study to exist
        if journal_file(path).exists() and "par" in optuna.study.get_all_study_names(
                open_storage(path)):
            break
        time.sleep(0.1)
    second = popen("study", "worker", path, *common)
    out1, err1 = first.communicate(timeout=240)
    out2, err2 = second.communicate(timeout=240)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "Traceback" not in err1 + err2 and "ERROR" not in err1 + err2
    study = _load(store, "par")
    finished = study.get_trials(states=FINISHED)
    assert 24 <= len(finished) <= 26
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.FAIL))
    pids = {t.user_attrs["mixsig_worker"]["pid"] for t in finished}
    assert pids == {first.pid, second.pid}  # both processes added trials
    assert json.loads(out2)["ran_here"] >= 1


def test_sigkill_mid_trial_then_rerun_continues_and_nothing_stays_running(tmp_path):
    from tests.synthetic import make_synthetic_store

    # wider features: trials take long enough to be caught mid-trial
    store, keys = make_synthetic_store(tmp_path / "k.zarr", n=300, dims={"text": 64, "audio": 64})
    path = str(store.local_path)
    args = ["study", "run", path, "--name", "k", "--heads", "lightgbm", "--features", features_arg(keys),
            "--trials", "8", "--no-final"]
    proc = popen(*args)
    killed_running = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            st = optuna.load_study(study_name="k", storage=open_storage(path))
            running = st.get_trials(states=(TrialState.RUNNING,))
            if running and "mixsig_worker" in running[0].user_attrs and len(st.trials) >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                killed_running = running[0].number
                break
        except (KeyError, optuna.exceptions.OptunaError):  # the study is not created yet: look again
            time.sleep(0.02)
            continue
        time.sleep(0.02)
    proc.wait(timeout=30)
    assert killed_running is not None, "the study finished before it could be killed mid-trial"
    assert proc.returncode == -signal.SIGKILL
    st = optuna.load_study(study_name="k", storage=open_storage(path))
    assert st.trials[killed_running].state == TrialState.RUNNING  # left behind by the dead process
    rerun = popen(*args)
    out, err = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, err
    st = optuna.load_study(study_name="k", storage=open_storage(path))
    assert st.trials[killed_running].state == TrialState.FAIL
    assert st.user_attrs[f"mixsig_failed.{killed_running}"] == "worker process died"
    assert study_summary(path, "k")["failed"] == {str(killed_running): "worker process died"}
    assert not st.get_trials(states=(TrialState.RUNNING,))
    assert len(st.get_trials(states=FINISHED)) == 8


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("MIXSIG_TEST_POSTGRES_URL"), reason="MIXSIG_TEST_POSTGRES_URL is not set")
def test_two_workers_on_postgres(small_store):
    store, keys = small_store
    url = os.environ["MIXSIG_TEST_POSTGRES_URL"]
    path = str(store.local_path)
    name = f"pg-{os.getpid()}-{int(time.time())}"
    # create the study (no trials yet would still need settings): one trial in-process, then two workers
    run_study(store, name, heads="logreg,lightgbm", features={m: tuple(k) for m, k in keys.items()}, trials=1,
              storage=url, final=False)
    workers = [popen("study", "worker", path, "--name", name, "--storage", url, "--trials", "8", "--json")
               for _ in range(2)]
    outs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err
        assert "Traceback" not in err
    study = optuna.load_study(study_name=name, storage=open_storage(path, url))
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == 17  # 1 + 8 + 8: `worker --trials 8` runs 8 trials in that process
    assert not study.get_trials(states=(TrialState.RUNNING,))
    pids = {t.user_attrs["mixsig_worker"]["pid"] for t in finished}
    assert {w.pid for w in workers} <= pids
    assert [json.loads(out)["ran_here"] for out, _ in outs] == [8, 8]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value)
    assert study.best_trial.number == best.number
    summary = study_summary(store, name, storage=url)
    assert summary["best"][0]["number"] == best.number and summary["best"][0]["value"] == best.value
    assert summary["storage"].startswith("postgresql")
    optuna.delete_study(study_name=name, storage=open_storage(path, url))


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("MIXSIG_TEST_POSTGRES_URL"), reason="MIXSIG_TEST_POSTGRES_URL is not set")
def test_postgres_trial_of_a_killed_worker_is_failed_by_heartbeat_and_retried(tmp_path):
    from tests.synthetic import make_synthetic_store

    store, keys = make_synthetic_store(tmp_path / "k.zarr", n=300, dims={"text": 64, "audio": 64})
    url = os.environ["MIXSIG_TEST_POSTGRES_URL"]
    path = str(store.local_path)
    name = f"pgkill-{os.getpid()}-{int(time.time())}"
    run_study(store, name, heads="lightgbm", features={m: tuple(k) for m, k in keys.items()}, trials=1,
              storage=url, final=False)
    proc = popen("study", "worker", path, "--name", name, "--storage", url, "--trials", "50")
    killed = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        st = optuna.load_study(study_name=name, storage=open_storage(path, url))
        running = [t for t in st.get_trials(states=(TrialState.RUNNING,))
                   if t.user_attrs.get("mixsig_worker", {}).get("pid") == proc.pid]
        if running:
            os.kill(proc.pid, signal.SIGKILL)
            killed = running[0]
            break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert killed is not None, "the worker finished before it could be killed mid-trial"
    # a worker whose storage allows 2 s without a heartbeat sees the trial as stale: FAIL + a WAITING retry
    time.sleep(3)
    fast = open_storage(path, url, heartbeat_interval=1, grace_period=2)
    st = optuna.load_study(study_name=name, storage=fast)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(st)
    trials = st.get_trials()
    failed = trials[killed.number]
    assert failed.state == TrialState.FAIL
    # the snapshot may have been taken while the worker was still suggesting: the trial's params as stored
    # at the kill hold at least those of the snapshot, and the retry carries exactly the stored ones
    assert killed.params.items() <= failed.params.items()
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING and retry[0].params == failed.params
    assert join_study(store, name, storage=url, trials=1) == 1  # the next worker runs the queued retry first
    st = optuna.load_study(study_name=name, storage=open_storage(path, url))
    assert st.trials[retry[0].number].state in FINISHED
    assert not st.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    optuna.delete_study(study_name=name, storage=open_storage(path, url))


@pytest.mark.slow
def test_thirty_trial_gated_lightgbm_study_with_a_concurrent_worker(small_store):
    store, keys = small_store
    path = str(store.local_path)
    first = popen("study", "run", path, "--name", "t30", "--heads", "gated,lightgbm", "--features",
                  features_arg(keys), "--trials", "30", "--json")
    deadline = time.time() + 120
    while time.time() < deadline:
        if journal_file(path).exists() and "t30" in optuna.study.get_all_study_names(
                open_storage(path)):
            break
        time.sleep(0.1)
    second = popen("study", "worker", path, "--name", "t30", "--json")
    out1, err1 = first.communicate(timeout=600)
    out2, err2 = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    assert "Traceback" not in err1 + err2
    study = _load(store, "t30")
    assert len(study.get_trials(states=FINISHED)) >= 30
    assert {t.params["head"] for t in study.trials} == {"gated", "lightgbm"}
    assert json.loads(out2)["ran_here"] >= 1
    assert store.read_run("study-t30").attrs["source"] == "study:t30"


@pytest.mark.parametrize("head", ["gated", "concat", "late", "logreg", "lightgbm"])
def test_every_search_space_trains_its_head(small_store, head):
    store, keys = small_store
    s = run_study(store, f"one-{head}", heads=head, features={m: tuple(k) for m, k in keys.items()}, trials=2,
                  final=False)
    assert s["states"] == {"COMPLETE": 2}
    assert all(0.0 <= b["value"] <= 1.0 for b in s["best"])
    assert all(k == "modalities" or k.startswith(("key.", f"{head}.")) for b in s["best"] for k in b["params"])
