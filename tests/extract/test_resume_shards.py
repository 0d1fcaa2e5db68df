"""Process-level reliability: shard processes running at once, and a run killed with SIGKILL then resumed,
both give exactly the arrays of one uninterrupted process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ARRAYS = ("embedding", "done", "status", "message", "input_hash")


def _arrays(store_path) -> tuple[str, dict]:
    from mixsig.cache import open_store

    store = open_store(store_path)
    (key,) = store.keys()
    return key, {n: store.read_array(key, n) for n in ARRAYS}


def _assert_same(a: dict, b: dict) -> None:
    for name in ARRAYS:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        if a[name].dtype.kind in "fb" or a[name].dtype.kind == "i":
            assert a[name].tobytes() == b[name].tobytes(), f"{name} bytes differ"
        else:
            assert a[name].tolist() == b[name].tolist(), f"{name} differs"


def _cli(*args) -> subprocess.Popen:
    """``mixsig ARGS`` in a child process (every run in these tests is one, so all use the same thread setup)."""
    return subprocess.Popen([sys.executable, "-m", "mixsig.cli", "-q", *map(str, args)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return out


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["audio", "text"])
def test_two_shard_processes_equal_one_process(tmp_path, corpus, tiny_encoders, cli, modality):
    common = ["--modality", modality, "--encoder", tiny_encoders[modality], "--pooling", "mean", "--chunk-rows", "4"]
    _check(_cli("extract", corpus, "--store", tmp_path / "one.zarr", *common))
    sharded = tmp_path / "sharded.zarr"
    procs = [_cli("extract", corpus, "--store", sharded, *common, "--shard", f"{i}/2") for i in range(2)]  # at once
    outs = [_check(p) for p in procs]
    # each shard wrote its own half of the rows
    assert "shard 0/2: 8 rows written" in outs[0] and "shard 1/2: 8 rows written" in outs[1]
    key1, one = _arrays(tmp_path / "one.zarr")
    key2, two = _arrays(sharded)
    assert key1 == key2 and one["done"].all()
    _assert_same(one, two)


CHILD = """
import sys, time
from mixsig.extract import extract
extract(sys.argv[1], sys.argv[2], "audio", sys.argv[3], pooling="mean", chunk_rows=2,
        on_block=lambda a, b: time.sleep(0.4))
"""


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path, corpus, tiny_encoders, cli):
    import zarr

    enc = tiny_encoders["audio"]
    _check(_cli("extract", corpus, "--store", tmp_path / "clean.zarr", "--modality", "audio", "--encoder", enc,
                "--pooling", "mean", "--chunk-rows", "2"))
    store = tmp_path / "killed.zarr"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(corpus), str(store), enc], env=_env(),
                             stderr=subprocess.PIPE, text=True)
    done_at_kill = 0
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and child.poll() is None:
            try:
                g = zarr.open_group(str(store), mode="r")
                keys = list(g["features"].group_keys())
                if keys and g["features"][keys[0]].attrs.get("ready"):
                    done_at_kill = int(g["features"][keys[0]]["done"][...].sum())
                    if done_at_kill >= 4:
                        break
            except Exception:  # the coordinator is still creating the store: look again
                time.sleep(0.05)
                continue
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    _, partial = _arrays(store)
    n = len(partial["done"])
    assert 4 <= partial["done"].sum() < n, "the kill should land mid-run"

    # resume with the CLI: only the missing rows are computed; committed rows keep their bytes
    out = _check(_cli("extract", corpus, "--store", store, "--modality", "audio", "--encoder", enc, "--pooling", "mean"))
    assert f"{n - int(partial['done'].sum())} rows written; {int(partial['done'].sum())} skipped as done" in out
    _, resumed = _arrays(store)
    committed = np.flatnonzero(partial["done"])
    assert resumed["embedding"][committed].tobytes() == partial["embedding"][committed].tobytes()
    _, clean = _arrays(tmp_path / "clean.zarr")
    _assert_same(clean, resumed)
    assert cli("cache", "verify", store) == 0
