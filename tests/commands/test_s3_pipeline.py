"""The pipeline on an ``s3://`` store (a local moto server): two extraction shards at once in their own processes,
`cache verify`, `train`, `study` and `report`, with every chunk of the key equal to a local-folder run's files
byte for byte; a shard killed with SIGKILL and rerun leaves the same bytes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from mixsig.cli import main
from tests.s3server import s3_server


@pytest.fixture(scope="module")
def bucket():
    with s3_server() as (url, _env):
        yield url


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """(manifest, tiny text encoder, local store extracted in one process, its key)."""
    from mixsig.cache import open_store
    from mixsig.demo import make_corpus, make_tiny_encoders

    tmp = tmp_path_factory.mktemp("s3pipe")
    enc = str(make_tiny_encoders(tmp / "tiny")["text"])
    man = str(make_corpus(tmp / "corpus", n_rows=12, seed=3, media=False))
    local = tmp / "local.zarr"
    assert main(["-q", *_extract(man, enc, local)]) == 0
    (key,) = open_store(local).keys()
    return man, enc, local, key


def _extract(man, enc, store, *more) -> list[str]:
    return ["extract", man, "--store", str(store), "--modality", "text", "--encoder", enc, "--pooling", "mean",
            "--chunk-rows", "4", *more]


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mixsig.cli", "-q", *map(str, args)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _check(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    return out


def _assert_key_bytes_equal(url: str, local, key: str) -> int:
    """Every chunk object of ``key`` on S3 equals the local store's chunk file (and no chunk is only on one side)."""
    import s3fs

    fs, base = s3fs.S3FileSystem(), f"{url.removeprefix('s3://')}/features/{key}"
    remote = {p[len(base) + 1:] for p in fs.find(base, refresh=True) if "/c/" in p}
    kdir = local / "features" / key
    here = {p.relative_to(kdir).as_posix() for p in kdir.rglob("*") if p.is_file() and "/c/" in p.as_posix()}
    assert remote == here and len(here) >= 15
    for rel in sorted(here):
        assert fs.cat_file(f"{base}/{rel}") == (kdir / rel).read_bytes(), f"{rel} differs from the local run"
    return len(here)


@pytest.fixture(scope="module")
def sharded(bucket, inputs):
    """`cache init` on S3, then shards 0/2 and 1/2 of `extract` at once, each in its own process."""
    man, enc, _, _ = inputs
    url = f"{bucket}/sharded.zarr"
    assert main(["-q", "cache", "init", url, "--manifest", man]) == 0
    procs = [_cli(*_extract(man, enc, url, "--shard", f"{i}/2")) for i in range(2)]
    return url, [_check(p) for p in procs]


@pytest.mark.slow  # ~80 s (two shard processes, each loading transformers): .ci/run runs it after `make test`
def test_two_shards_at_once_on_s3_equal_a_local_run_byte_for_byte(sharded, inputs):
    url, outs = sharded
    _, _, local, key = inputs
    assert "shard 0/2: 4 rows written" in outs[0] and "shard 1/2: 8 rows written" in outs[1]
    _assert_key_bytes_equal(url, local, key)
    assert main(["-q", "cache", "verify", url]) == 0


@pytest.mark.slow
def test_train_report_and_study_on_the_s3_store(sharded, inputs, tmp_path, capsys):
    url, _ = sharded
    key = inputs[3]
    assert main(["-q", "train", url, "--head", "logreg", "--features", f"text={key}", "--seeds", "0,",
                 "--name", "s3run"]) == 0
    out = tmp_path / "rep"
    assert main(["-q", "report", url, "--run", "s3run", "--out", str(out), "--bootstrap", "20"]) == 0
    assert (out / "report.json").is_file() and (out / "report.html").is_file()
    capsys.readouterr()
    # the default study journal is a local file: refused for an s3:// store, naming the storages that work
    assert main(["-q", "study", "run", url, "--name", "s", "--heads", "logreg", "--features", f"text={key}",
                 "--trials", "2", "--no-final"]) != 0
    assert "--storage postgresql://" in capsys.readouterr().err
    journal = tmp_path / "studies.journal"
    assert main(["-q", "study", "run", url, "--storage", f"journal:{journal}", "--name", "s", "--heads", "logreg",
                 "--features", f"text={key}", "--trials", "2", "--no-final"]) == 0
    assert journal.is_file()


CHILD = """
import sys, time
from mixsig.extract import extract
extract(sys.argv[1], sys.argv[2], "text", sys.argv[3], pooling="mean", chunk_rows=4, shard=(1, 2),
        on_block=lambda a, b: time.sleep(3))
"""


@pytest.mark.slow
def test_shard_killed_on_s3_and_rerun_equals_the_local_run(bucket, inputs):
    import zarr

    man, enc, local, key = inputs
    url = f"{bucket}/killed.zarr"
    _check(_cli(*_extract(man, enc, url, "--shard", "0/2")))
    child = subprocess.Popen([sys.executable, "-c", CHILD, man, url, enc], env=_env(), stderr=subprocess.PIPE,
                             text=True)
    done = 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and child.poll() is None:
            try:
                g = zarr.open_group(url, mode="r")["features"][key]
                done = int(g["done"][4:].sum()) if g.attrs.get("ready") else 0
            except (KeyError, FileNotFoundError):
                done = 0
            if done >= 4:
                break
            time.sleep(0.3)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL and 4 <= done < 8, "the kill should land mid-shard"
    out = _check(_cli(*_extract(man, enc, url, "--shard", "1/2")))  # takes the dead shard's lease over
    assert "shard 1/2: 4 rows written; 4 skipped as done" in out
    _assert_key_bytes_equal(url, local, key)
    assert main(["-q", "cache", "verify", url]) == 0
