"""Faults of study storage, reproduced for real (issue 13): a torn journal tail, a record written onto one, a full
disk during `study run`, a worker killed (kill -9) while another process runs the study, two `study run` on one
SQLite database. Each asserts the message or the repair and that every committed trial is kept."""

import fcntl
import inspect
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mixsig.cli import main
from mixsig.errors import StudyError
from mixsig.studies import check_journals, journal_file, open_storage, run_study, study_summary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _feats(keys) -> dict:
    return {m: tuple(k) for m, k in keys.items()}


def _features_arg(keys) -> str:
    return ",".join(f"{m}={'|'.join(k)}" for m, k in keys.items())


def _popen(*args: str, code: str = "import sys; from mixsig.cli import main; sys.exit(main(sys.argv[1:]))",
           env: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1", **(env or {}))
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def _load(path: str, name: str, storage=None):
    return optuna.load_study(study_name=name, storage=storage or open_storage(path))


def _committed(study) -> list:
    """What must survive a fault, bit for bit: every finished trial's number, state, value and params."""
    return [(t.number, t.state, t.value, t.params) for t in study.get_trials(states=FINISHED)]


def _kill_mid_trial(proc: subprocess.Popen, running_of) -> int:
    """kill -9 ``proc`` (by PID) while it has a RUNNING trial that recorded its worker: stop it, look, kill or go on.
    ``running_of(pid)`` lists its RUNNING trials. Returns the killed trial's number."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            running = running_of(proc.pid)
        except Exception:  # the study is not there yet, or SQLite was mid-commit: look again
            running = []
        if running:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return running[0]
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.01)
    out, err = proc.communicate(timeout=30) if proc.poll() is not None else ("", "")
    pytest.fail(f"the process ended before it could be killed mid-trial: {err[-2000:]}")


def _running_of(study):
    def running(pid):
        return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get("mixsig_worker", {}).get("pid") == pid]
    return running


def test_a_torn_journal_tail_is_reported_and_truncated_on_the_next_write(small_store, caplog):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    run_study(store, "t", heads="logreg", features=_feats(keys), trials=3, final=False)
    before, committed = open(journal, "rb").read(), _committed(_load(path, "t"))
    # a write cut short by a full disk: the first bytes of a trial's state record, no newline
    torn = b'{"op_code":6,"worker_id":"w","trial_id":3,"state":1,"val'
    with open(journal, "ab") as f:
        f.write(torn)
    problems = check_journals(path)
    assert [p["kind"] for p in problems] == ["journal_torn_tail"]
    assert problems[0]["where"] == f"{journal} at byte {len(before)} (line {len(before.splitlines()) + 1})"
    caplog.set_level(logging.WARNING)
    assert study_summary(store, "t")["states"] == {"COMPLETE": 3}  # readers ignore the torn tail, and say so
    assert f"study journal {journal}: torn last record at byte {len(before)}" in caplog.text
    caplog.clear()
    s = run_study(store, "t", heads="logreg", features=_feats(keys), trials=5, final=False)  # writes: repaired
    assert f"study journal {journal}: removed a torn last record at byte {len(before)} ({len(torn)} bytes" in caplog.text
    after = open(journal, "rb").read()
    assert after.startswith(before) and after.endswith(b"\n") and b'"val{' not in after
    assert check_journals(path) == []
    assert len(_committed(_load(path, "t"))) == 5 and _committed(_load(path, "t"))[:3] == committed
    assert s["states"].get("FAIL") is None and s["states"].get("RUNNING") is None


def test_cache_verify_names_a_torn_journal_and_fix_repairs_it(small_store, capsys):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    run_study(store, "v", heads="logreg", features=_feats(keys), trials=2, final=False)
    before, committed = open(journal, "rb").read(), _committed(_load(path, "v"))
    with open(journal, "ab") as f:
        f.write(b'{"op_code":6,"worker_id":"w","trial_id":2,"sta')
    capsys.readouterr()
    assert main(["cache", "verify", path]) == 1
    out = capsys.readouterr().out
    assert f"journal_torn_tail {journal} at byte {len(before)}" in out and "1 problem(s)" in out
    assert main(["cache", "verify", path, "--fix"]) == 1  # reports what it found, and repairs it
    capsys.readouterr()
    assert main(["cache", "verify", path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["journal"] == []
    assert open(journal, "rb").read() == before and _committed(_load(path, "v")) == committed


def test_a_record_written_onto_a_torn_tail_is_named_and_study_check_fix_repairs_it(small_store, capsys):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    run_study(store, "b", heads="logreg", features=_feats(keys), trials=2, final=False)
    committed = _committed(_load(path, "b"))
    # what the old code did after a full disk: Optuna's plain file backend appends onto the torn tail, then more
    torn_at, line = os.path.getsize(journal), len(open(journal, "rb").read().splitlines()) + 1
    torn = b'{"op_code":8,"worker_id":"w","trial_id":1,"user_a'
    with open(journal, "ab") as f:
        f.write(torn)
    plain = optuna.load_study(study_name="b", storage=optuna.storages.JournalStorage(JournalFileBackend(journal)))
    plain.set_user_attr("note", 1)  # lands on the torn line: that line is no record any more
    with pytest.raises(ValueError):  # JSONDecodeError: the old fault, every read of the journal fails from now on
        plain.set_user_attr("note2", 2)  # (written before the read that fails)
    bad = open(journal, "rb").read()[torn_at:].split(b"\n")[0] + b"\n"
    capsys.readouterr()
    assert main(["study", "show", path, "--name", "b"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"mixsig study: error: the study journal {journal} is damaged at byte {torn_at} (line "
                   f"{line}, {len(bad)} bytes that are not a record), e.g. "
                   "a record written onto one torn by a full disk; no study in it can be read until it is repaired: "
                   f"run `mixsig study check {path} --fix` (keeps every readable record)")
    assert main(["study", "check", path]) == 1
    out = capsys.readouterr().out
    assert f"journal_bad_record {journal} at byte {torn_at}" in out and f"{len(torn)} torn bytes, then a whole record" in out
    assert main(["study", "check", path, "--fix"]) == 0
    out = capsys.readouterr().out
    assert f"removed {len(torn)} torn bytes before the record written onto them (that record is kept)" in out
    assert check_journals(path) == []
    study = _load(path, "b")
    assert study.user_attrs["note"] == 1 and study.user_attrs["note2"] == 2  # the record written onto it is kept
    assert _committed(study) == committed
    assert main(["study", "show", path, "--name", "b"]) == 0


def full_disk_at_second_tell(real_write):
    """An ``os.write`` whose disk fills up at the second trial ``tell`` written to a studies.journal: that write
    gets half its bytes onto the disk, every later one ENOSPC (as a real full disk answers)."""
    import errno
    import os

    state = {"tells": 0, "full": False}

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.endswith("studies.journal"):
            if state["full"]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            if b'"op_code":6,' in bytes(data):  # Optuna's SET_TRIAL_STATE_VALUES: a trial finished
                state["tells"] += 1
                if state["tells"] == 2:
                    state["full"] = True
                    return real_write(fd, bytes(data)[: len(data) // 2])
        return real_write(fd, data)

    return write


_FULL_DISK_RUN = inspect.getsource(full_disk_at_second_tell) + """
import os, sys
from mixsig.cli import main
os.write = full_disk_at_second_tell(os.write)
sys.exit(main(sys.argv[1:]))
"""


def _assert_disk_full_error(err: str, journal: str) -> None:
    assert "Traceback" not in err and "AssertionError" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"mixsig study: error: disk full: cannot write the study journal {journal} (No space "
                           "left on device writing a "), last
    assert "the write was undone and every record before it is kept. Free space on that disk" in last
    assert "rerun the same command" in last


def test_a_full_disk_in_study_run_is_one_clear_error_keeps_the_trials_and_the_rerun_continues(small_store, capsys,
                                                                                             monkeypatch):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    args = ["study", "run", path, "--name", "g", "--heads", "logreg", "--features", _features_arg(keys),
            "--trials", "6", "--no-final"]
    run_study(store, "g", heads="logreg", features=_feats(keys), trials=3, final=False)
    before, committed = open(journal, "rb").read(), _committed(_load(path, "g"))
    monkeypatch.setattr(os, "write", full_disk_at_second_tell(os.write))
    capsys.readouterr()
    assert main(args) == 1
    _assert_disk_full_error(capsys.readouterr().err, journal)
    monkeypatch.undo()  # the disk has room again
    after = open(journal, "rb").read()
    assert after.startswith(before) and after.endswith(b"\n")  # the half-written record was cut off
    kept = _committed(_load(path, "g"))
    assert kept[:3] == committed and len(kept) == 4
    assert check_journals(path) == []  # sound (the trial in flight is RUNNING, its worker, this process, alive)
    assert main(args) == 0
    assert _committed(_load(path, "g"))[:4] == kept and len(_committed(_load(path, "g"))) == 6


@pytest.mark.slow
def test_a_full_disk_kills_a_study_run_process_and_the_rerun_fails_its_trial_and_continues(small_store):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    run_study(store, "f", heads="logreg", features=_feats(keys), trials=3, final=False)
    before, committed = open(journal, "rb").read(), _committed(_load(path, "f"))
    proc = _popen("study", "run", path, "--name", "f", "--heads", "logreg", "--features", _features_arg(keys),
                  "--trials", "6", "--no-final", code=_FULL_DISK_RUN)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    _assert_disk_full_error(err, journal)
    # nothing committed is lost; the half-written record was cut off; the trial in flight is left RUNNING
    after = open(journal, "rb").read()
    assert after.startswith(before) and after.endswith(b"\n")
    study = _load(path, "f")
    kept = _committed(study)
    assert kept[:3] == committed and len(kept) == 4
    assert [t.number for t in study.get_trials(states=(TrialState.RUNNING,))] == [4]
    assert [p["kind"] for p in check_journals(path)] == ["dead_trial"]  # the journal itself is sound
    # the disk has room again: the rerun fails the dead process' trial and continues to the target
    s = run_study(store, "f", heads="logreg", features=_feats(keys), trials=6, final=False)
    study = _load(path, "f")
    assert s["failed"] == {"4": "worker process died"} and study.trials[4].state == TrialState.FAIL
    assert _committed(study)[:4] == kept and len(_committed(study)) == 6
    assert not study.get_trials(states=(TrialState.RUNNING,))


def _dead_pid() -> int:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


def test_a_dead_workers_trial_is_failed_by_the_running_study_at_its_next_trial(small_store):
    store, keys = small_store
    path = str(store.local_path)
    seen: dict = {}
    gone = {"host": socket.gethostname(), "pid": _dead_pid(), "start": None}

    def on_trial(study, trial):
        if "dead" not in seen:  # a trial started by another worker, whose process has died since (crafted)
            t = study.ask()
            t.set_user_attr("mixsig_worker", gone)
            seen["dead"], seen["kept"], seen["after"] = t.number, _committed(study), []
        else:  # what this running process sees of the dead trial after each of its next trials
            seen["after"].append(study.trials[seen["dead"]].state)

    s = run_study(store, "d", heads="logreg", features=_feats(keys), trials=4, final=False, on_trial=on_trial)
    assert seen["after"] and seen["after"][0] == TrialState.FAIL  # at the first trial boundary, not the next run
    study = _load(path, "d")
    assert s["failed"] == {str(seen["dead"]): "worker process died"}
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert _committed(study)[:len(seen["kept"])] == seen["kept"] and len(_committed(study)) == 4


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_failed_by_the_running_study_at_its_next_trial(small_store):
    store, keys = small_store
    path = str(store.local_path)
    seen: dict = {}

    def on_trial(study, trial):
        if "killed" not in seen:  # after this process' first trial: a worker joins, and is killed mid-trial
            worker = _popen("study", "worker", path, "--name", "k", "--trials", "20")
            seen["worker"] = worker.pid
            seen["killed"] = _kill_mid_trial(worker, _running_of(study))
            seen["kept"] = _committed(study)
            seen["after"] = []
        else:  # what this running process sees of the dead trial after each of its next trials
            seen["after"].append(study.trials[seen["killed"]].state)

    s = run_study(store, "k", heads="logreg", features=_feats(keys), trials=6, final=False, on_trial=on_trial)
    assert seen["after"] and seen["after"][0] == TrialState.FAIL  # at the first trial boundary after the kill
    study = _load(path, "k")
    assert study.user_attrs[f"mixsig_failed.{seen['killed']}"] == "worker process died"
    assert s["failed"] == {str(seen["killed"]): "worker process died"}
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert _committed(study)[:len(seen["kept"])] == seen["kept"] and len(_committed(study)) == 6


def test_a_second_study_run_on_one_sqlite_database_is_refused_and_a_stale_holder_is_taken_over(
        small_store, tmp_path, capsys, caplog):
    store, keys = small_store
    url = f"sqlite:///{tmp_path}/studies.db"
    args = ["study", "run", str(store.local_path), "--name", "q", "--heads", "logreg", "--features",
            _features_arg(keys), "--storage", url, "--trials", "3", "--no-final"]
    # the record of a run killed earlier (crafted): its flock died with it, so it holds nothing
    (tmp_path / "studies.db.mixsig-run").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": _dead_pid(), "start": None, "study": "q", "since": "2026-01-01"}))
    refused: dict = {}

    def on_trial(study, trial):  # while this run holds the database, a second `study run` starts
        if not refused:
            capsys.readouterr()
            refused["rc"] = main(args)
            refused["err"] = capsys.readouterr().err
            refused["trials"] = len(study.trials)

    caplog.set_level(logging.INFO, logger="mixsig.studies._storage")
    run_study(store, "q", heads="logreg", features=_feats(keys), trials=2, storage=url, final=False,
              on_trial=on_trial)
    assert "the study run that held it (pid" in caplog.text and "is gone; taking over" in caplog.text
    assert refused["rc"] == 1, refused["err"]
    line = refused["err"].strip().splitlines()[-1]
    assert line.startswith(f"mixsig study: error: SQLite storage {url} is in use by another `mixsig study run` "
                           f"(study 'q', pid {os.getpid()} on host {socket.gethostname()}, since ")
    assert "omit --storage" in line and "postgresql://" in line
    study = optuna.load_study(study_name="q", storage=optuna.storages.RDBStorage(url))
    assert len(_committed(study)) == 2 and refused["trials"] == 1  # the refused run added nothing
    with open(tmp_path / "studies.db.mixsig-run", "rb") as f:  # the run finished: the database is free again
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.slow
def test_a_second_study_run_on_one_sqlite_database_is_refused_naming_the_holder(small_store, tmp_path, capsys):
    store, keys = small_store
    path = str(store.local_path)
    url = f"sqlite:///{tmp_path}/studies.db"
    args = ["study", "run", path, "--name", "q", "--heads", "logreg", "--features", _features_arg(keys),
            "--storage", url, "--no-final"]
    first = _popen(*args, "--trials", "500")
    # a reader that gives up at once when the (stopped) writer holds SQLite's lock, instead of waiting 5 s
    rdb = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.05}})
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:
        try:
            if len(optuna.load_study(study_name="q", storage=rdb).get_trials(states=FINISHED)) >= 2:
                break
        except Exception:  # not created yet
            pass
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[1]
    capsys.readouterr()
    assert main([*args, "--trials", "3"]) == 1  # while the first runs: refused up front
    err = capsys.readouterr().err
    assert f"SQLite storage {url} is in use by another `mixsig study run` (study 'q', pid {first.pid} on host " \
           f"{socket.gethostname()}, since " in err
    assert "omit --storage" in err and "postgresql://" in err and "Traceback" not in err
    study = optuna.load_study(study_name="q", storage=rdb)
    assert all(t.user_attrs.get("mixsig_worker", {}).get("pid") != os.getpid() for t in study.trials)
    # the holder is killed mid-trial (kill -9 by PID): its record is stale, the flock gone; a rerun takes over
    killed = _kill_mid_trial(first, _running_of(study))
    committed = _committed(optuna.load_study(study_name="q", storage=rdb))
    s = run_study(store, "q", heads="logreg", features=_feats(keys), trials=len(committed) + 2, storage=url,
                  final=False)
    study = optuna.load_study(study_name="q", storage=rdb)
    assert _committed(study)[:len(committed)] == committed and len(_committed(study)) == len(committed) + 2
    assert study.trials[killed].state == TrialState.FAIL and s["failed"] == {str(killed): "worker process died"}
    assert not study.get_trials(states=(TrialState.RUNNING,))


def _mount_tmpfs(mnt, size: str, name: str) -> None:
    """Mount a tmpfs of ``size`` on the new folder ``mnt`` (needs root and mount; the test is skipped otherwise)."""
    import shutil

    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", name, str(mnt)], capture_output=True).returncode:
        pytest.skip(f"cannot mount a {size} tmpfs here (needs root)")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 12 KiB tmpfs: a real disk that fills up (needs root and mount; skipped otherwise)."""
    mnt = tmp_path / "disk"
    _mount_tmpfs(mnt, "12k", "mixsig-test")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
def test_a_journal_on_a_disk_that_really_fills_up(small_store, tiny_disk):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(tiny_disk / "studies.journal")
    proc = _popen("study", "run", path, "--name", "r", "--heads", "logreg", "--features", _features_arg(keys),
                  "--trials", "1000", "--no-final", "--storage", f"journal:{journal}")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    _assert_disk_full_error(err, journal)
    assert open(journal, "rb").read().endswith(b"\n")  # what did not fit was cut off
    storage = open_storage(path, f"journal:{journal}")
    committed = _committed(_load(path, "r", storage))
    assert committed and {p["kind"] for p in check_journals(journal)} <= {"dead_trial"}  # the journal is sound
    subprocess.run(["mount", "-o", "remount,size=1m", str(tiny_disk)], check=True)  # room again
    run_study(store, "r", heads="logreg", features=_feats(keys), trials=len(committed) + 2, final=False,
              storage=f"journal:{journal}")
    study = _load(path, "r", open_storage(path, f"journal:{journal}"))
    assert _committed(study)[:len(committed)] == committed and len(_committed(study)) == len(committed) + 2
    # a trial in flight at the fault is failed (its worker recorded) or, caught before it recorded one, stays
    # RUNNING until it is a minute old (fail_dead_trials' orphan rule)
    assert all("mixsig_worker" not in t.user_attrs for t in study.get_trials(states=(TrialState.RUNNING,)))


# --- review of issue 13: --fix never renumbers, a read-only store is checked, real bugs are not hidden ---------


def _lines(journal: str) -> list[bytes]:
    return open(journal, "rb").read().splitlines(keepends=True)


def _op_lines(journal: str, op_code: int) -> list[int]:
    """Indexes of the journal lines holding a record of ``op_code`` (Optuna: 0 create_study, 4 create_trial)."""
    return [i for i, line in enumerate(_lines(journal)) if json.loads(line)["op_code"] == op_code]


def _damage(journal: str, index: int, how: str) -> tuple[int, int]:
    """Damage line ``index`` of ``journal`` for real: ``brace`` flips its closing ``}`` into ``#`` (a flipped byte),
    ``newline`` flips its ``\\n`` so it runs into the next record. Returns (1-based line, byte offset)."""
    lines = _lines(journal)
    offset = sum(len(line) for line in lines[:index])
    if how == "brace":
        lines[index] = lines[index][:-2] + b"#\n"
    else:
        lines[index] = lines[index][:-1] + b"x"
    with open(journal, "wb") as f:
        f.write(b"".join(lines))
    return index + 1, offset


@pytest.mark.parametrize("op_code, what, how", [
    (4, "it holds a create_trial record", "brace"),
    (0, "it holds a create_study record", "brace"),
    (4, "it holds parts of 2 records run together (create_trial, ", "newline"),  # a whole record, then another
])
def test_fix_refuses_to_drop_a_damaged_line_that_numbers_trials_and_leaves_the_journal_byte_identical(
        small_store, capsys, op_code, what, how):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    run_study(store, "c", heads="logreg", features=_feats(keys), trials=2, final=False)
    # the last create_trial (trial 1; a damaged trial 0 would renumber trial 1 as 0), or the study's create_study
    line, offset = _damage(journal, _op_lines(journal, op_code)[-1], how)
    before = open(journal, "rb").read()
    length = len(before.splitlines(keepends=True)[line - 1])
    advice = (f"removing it could renumber every later study or trial (Optuna numbers them by the order of their "
              f"create records), so it is left as it is. Move the journal aside (`mv {journal} {journal}.damaged`) "
              f"and rerun your `mixsig study run` command to start its studies afresh, or repair line {line} by hand "
              f"in a copy (`cp {journal} {journal}.bak`)")
    capsys.readouterr()
    assert main(["study", "check", path]) == 1
    out = capsys.readouterr().out
    assert f"journal_bad_record {journal} at byte {offset} (line {line}): {length} bytes that are not a journal " \
           f"record; no study in this journal can be read, and {what}" in out and advice in out
    for args in (["study", "check", path, "--fix"], ["cache", "verify", path, "--fix"]):
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert f"error: cannot repair the study journal {journal}: line {line} (byte {offset}, {length} bytes) is " \
               f"damaged and {what}" in err, err
        assert err.endswith(f"; the journal is unchanged: {advice}") and len(err.splitlines()) == 1, err
        assert open(journal, "rb").read() == before  # nothing committed is lost, no trial renumbered
    assert main(["study", "show", path, "--name", "c"]) == 1  # reading says so too, and does not suggest --fix
    err = capsys.readouterr().err
    assert f"line {line} {what[3:]}" in err and f"and cannot be removed by --fix: {advice}" in err
    assert "--fix`" not in err
    os.rename(journal, journal + ".damaged")  # the suggested way out works
    assert run_study(store, "c", heads="logreg", features=_feats(keys), trials=1, final=False)["states"] == \
        {"COMPLETE": 1}


def test_fix_drops_a_damaged_attr_line_without_renumbering_any_trial(small_store, capsys):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    run_study(store, "a", heads="logreg", features=_feats(keys), trials=3, final=False)
    committed = _committed(_load(path, "a"))
    lines = _lines(journal)
    index = next(i for i, raw in enumerate(lines) if json.loads(raw)["op_code"] == 8  # set_trial_user_attr
                 and json.loads(raw)["trial_id"] == 1 and "mixsig_worker" in json.loads(raw)["user_attr"])
    line, offset = _damage(journal, index, "brace")
    length = len(lines[index])
    capsys.readouterr()
    assert main(["study", "check", path, "--fix"]) == 0
    out = capsys.readouterr().out
    assert f"journal_bad_record {journal} at byte {offset} (line {line}): removed the unreadable line ({length} " \
           "bytes, a damaged set_trial_user_attr record of trial_id 1: that record is lost; no study or trial id " \
           "shifts); the records after it are kept" in out
    assert open(journal, "rb").read() == b"".join(lines[:index] + lines[index + 1:])
    study = _load(path, "a")
    assert _committed(study) == committed  # every trial keeps its number, state, value and params
    assert "mixsig_worker" not in study.trials[1].user_attrs and "mixsig_worker" in study.trials[2].user_attrs


def _read_only_os_open(root: str):
    """An ``os.open`` of a read-only file system under ``root``: opening for writing or creating fails (EROFS)."""
    import errno

    real = os.open

    def ro_open(path, flags, *args, **kwargs):
        if str(os.fspath(path)).startswith(root) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, *args, **kwargs)

    return ro_open


def test_cache_verify_checks_the_journal_of_a_read_only_store_without_its_lock(small_store, capsys, monkeypatch):
    store, keys = small_store
    path = str(store.local_path)
    journal = str(journal_file(path))
    run_study(store, "ro", heads="logreg", features=_feats(keys), trials=2, final=False)
    committed = _committed(_load(path, "ro"))
    with open(journal, "ab") as f:
        f.write(b'{"op_code":6,"worker_id":"w","trial_id":2,"sta')
    before = open(journal, "rb").read()
    os.remove(journal + ".flock")  # a store copied read-only: no lock file, and none can be created
    monkeypatch.setattr(os, "open", _read_only_os_open(path))
    assert [p["kind"] for p in check_journals(path)] == ["journal_torn_tail"]
    capsys.readouterr()
    assert main(["cache", "verify", path]) == 1
    out = capsys.readouterr().out
    torn_at = len(before) - len(b'{"op_code":6,"worker_id":"w","trial_id":2,"sta')
    assert f"journal_torn_tail {journal} at byte {torn_at}" in out and "1 problem(s)" in out
    with pytest.raises(StudyError, match=f"cannot open the study journal's lock file {journal}.flock: Read-only"):
        check_journals(path, fix=True)  # repairing needs the lock: refused, naming the file
    monkeypatch.undo()
    assert not os.path.exists(journal + ".flock") and open(journal, "rb").read() == before
    assert _committed(_load(path, "ro")) == committed


@pytest.fixture
def read_only_disk(tmp_path):
    """A tmpfs remounted read-only after ``prepare(mnt)`` filled it (needs root and mount; skipped otherwise)."""
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "1m", "mixsig-test-ro")

    def seal():
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    try:
        yield mnt, seal
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_study_check_reads_a_journal_on_a_really_read_only_file_system(small_store, read_only_disk, capsys):
    store, keys = small_store
    path = str(store.local_path)
    mnt, seal = read_only_disk
    run_study(store, "r", heads="logreg", features=_feats(keys), trials=2, final=False)
    journal = str(mnt / "studies.journal")
    data = open(str(journal_file(path)), "rb").read()
    with open(journal, "wb") as f:
        f.write(data + b'{"op_code":6,"worker_id":"w","trial_id":2,"sta')  # a torn tail, no lock file
    seal()
    capsys.readouterr()
    assert main(["study", "check", path, "--storage", f"journal:{journal}"]) == 1
    out = capsys.readouterr().out
    assert f"journal_torn_tail  {journal} at byte {len(data)} (line {len(data.splitlines()) + 1})" in out
    assert main(["study", "check", path, "--storage", f"journal:{journal}", "--fix"]) == 1
    assert f"cannot open the study journal's lock file {journal}.flock: Read-only file system; make its folder " \
           "writable (a read-only store's journal can be checked without --fix, not repaired or written)" in \
        capsys.readouterr().err
    assert open(journal, "rb").read() == data + b'{"op_code":6,"worker_id":"w","trial_id":2,"sta'


def _raise_while_handling_a_mixsig_error(bug: type[Exception]):
    def on_trial(study, trial):
        try:
            raise StudyError("a mixsig error being handled")
        except StudyError:
            raise bug("a real bug in the handler")
    return on_trial


@pytest.mark.parametrize("bug", [KeyError, AssertionError])
def test_a_bug_raised_while_a_mixsig_error_is_handled_propagates_as_itself(small_store, bug):
    store, keys = small_store
    with pytest.raises(bug, match="a real bug in the handler") as info:
        run_study(store, "e", heads="logreg", features=_feats(keys), trials=2, final=False,
                  on_trial=_raise_while_handling_a_mixsig_error(bug))
    assert isinstance(info.value.__context__, StudyError)  # the hidden one stays its context, not its stand-in
