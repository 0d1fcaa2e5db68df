"""Ctrl-C during `mixsig study run`: one line on stderr (no Optuna traceback), exit 130, and the trial that was
training is marked FAIL in the journal with the user attr ``fail_reason``."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from mixsig.cli import main
from mixsig.studies import open_storage
from tests.synthetic import make_synthetic_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REASON = "interrupted (Ctrl-C / SIGINT) while the trial was training"


def _features(keys) -> str:
    return ",".join(f"{m}={'|'.join(k)}" for m, k in keys.items())


def _trials(path, name):
    return optuna.load_study(study_name=name, storage=open_storage(path)).trials


def test_ctrl_c_in_a_trial_is_one_line_and_the_trial_fails_with_the_reason(tmp_path, capsys, monkeypatch):
    from mixsig.studies._objective import Objective

    store, keys = make_synthetic_store(tmp_path / "s.zarr", n=80, dims={"text": 4, "audio": 4})
    real, calls = Objective.evaluate_detail, []

    def evaluate(self, config, seed, trial=None):
        calls.append(1)
        if len(calls) == 3:          # the third trial: Ctrl-C while it trains
            raise KeyboardInterrupt
        return real(self, config, seed, trial)

    monkeypatch.setattr(Objective, "evaluate_detail", evaluate)
    path = str(store.local_path)
    rc = main(["study", "run", path, "--name", "k", "--heads", "logreg", "--features", _features(keys),
               "--trials", "6"])
    err = capsys.readouterr().err
    assert rc == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "interrupted; the running trial is marked FAIL" in lines[-1], err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    trials = _trials(path, "k")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert trials[2].user_attrs["fail_reason"] == REASON and "fail_reason" not in trials[0].user_attrs


@pytest.mark.slow
def test_sigint_to_a_study_run_process_mid_trial(tmp_path):
    store, keys = make_synthetic_store(tmp_path / "k.zarr", n=400, dims={"text": 64, "audio": 64})
    path = str(store.local_path)
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "mixsig.cli", "study", "run", path, "--name", "k", "--heads",
                             "lightgbm", "--features", _features(keys), "--trials", "40", "--no-final"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline, sent = time.time() + 120, None
    while time.time() < deadline and proc.poll() is None and sent is None:
        try:
            running = [t for t in _trials(path, "k") if t.state == TrialState.RUNNING]
        except (KeyError, optuna.exceptions.OptunaError):
            running = []
        if running and "keys" in running[0].user_attrs and running[0].number >= 1:
            proc.send_signal(signal.SIGINT)
            sent = running[0].number
        time.sleep(0.01)
    out, err = proc.communicate(timeout=60)
    assert sent is not None, "the study finished before a trial could be interrupted"
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted; the running trial is marked FAIL" in lines[0], err
    trial = _trials(path, "k")[sent]
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == REASON


@pytest.mark.slow
def test_info_logs_print_above_the_study_bar_not_through_it(tmp_path):
    """On a terminal (a pty as stderr) the search bar is drawn; the INFO line logged while it is open ("resuming
    study ...") starts its own line instead of being glued to the bar."""
    import pty

    store, keys = make_synthetic_store(tmp_path / "t.zarr", n=80, dims={"text": 4, "audio": 4})
    path = str(store.local_path)
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1", COLUMNS="100")
    args = [sys.executable, "-m", "mixsig.cli", "study", "run", path, "--name", "t", "--heads", "logreg",
            "--features", _features(keys), "--no-final"]
    assert subprocess.run(args + ["--trials", "2"], env=env, cwd=ROOT, capture_output=True).returncode == 0
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # a 100-column terminal
    proc = subprocess.Popen(args + ["--trials", "4"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "trial/s" in text or "trial]" in text, text                       # the bar was drawn
    pieces = [p for line in text.split("\n") for p in line.split("\r")]
    logged = [p for p in pieces if "resuming study t" in p]
    assert logged and all(p.lstrip("\x1b[A ").startswith("INFO") for p in logged), logged
