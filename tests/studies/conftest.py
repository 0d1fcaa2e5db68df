"""Fixtures of the studies tests: small synthetic stores written through the cache API."""

import os
import subprocess
import sys

import pytest

from mixsig.studies._synthetic import make_synthetic_store

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def small_store(tmp_path):
    """160 rows in 40 groups; text (2 keys: informative and noise), audio, video; 8-d features."""
    store, keys = make_synthetic_store(tmp_path / "store.zarr", n=160, n_groups=40,
                                       dims={"text": 8, "audio": 8, "video": 8},
                                       signal={"text": 2.0, "audio": 1.0, "video": 0.0}, extra_keys={"text": 0.0})
    return store, keys


def features_arg(keys) -> str:
    return ",".join(f"{m}={'|'.join(k)}" for m, k in keys.items())


def mixsig_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from mixsig.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def popen(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    return subprocess.Popen(mixsig_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
