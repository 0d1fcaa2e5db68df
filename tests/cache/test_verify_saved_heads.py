"""`mixsig cache verify` checks a run's saved heads (runs/<run>/heads/<subset>/<seed>/<file>) as it checks the other
run arrays: clean when untouched, a flipped byte in one saved file named (CRC32C) with the command that keeps them
again, and a file whose bytes no longer match the sha256 recorded when it was saved named too."""

from __future__ import annotations

import hashlib

import pytest

from mixsig.cache import open_store, verify_store
from mixsig.cli import main
from mixsig.heads import train_run
from tests.heads.helpers import make_store


@pytest.fixture()
def kept(tmp_path):
    store, keys, _, _ = make_store(tmp_path / "s.zarr", n_train=30, n_val=10, n_test=10)
    train_run(store, "logreg", {"a": keys["a"]}, name="kept", save_heads=True)
    return tmp_path / "s.zarr"


def test_verify_names_a_flipped_byte_in_a_saved_head(kept, capsys):
    assert verify_store(open_store(kept)).ok
    chunk = kept / "runs" / "kept" / "heads" / "a" / "0" / "model.safetensors" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    rep = verify_store(open_store(kept))
    where = "runs/kept/heads/a/0/model.safetensors"
    assert [f.kind for f in rep.findings] == ["corrupt_chunk"] and rep.findings[0].where.startswith(where)
    assert "--save-heads" in rep.findings[0].message
    capsys.readouterr()
    assert main(["cache", "verify", str(kept)]) == 1
    assert where in capsys.readouterr().out


def test_verify_names_a_saved_file_whose_sha256_no_longer_matches(kept):
    store = open_store(kept, "r+")
    g = store.root["runs/kept/heads/a/0"]
    files = dict(g.attrs["files"])
    files["head.json"] = {**files["head.json"], "sha256": hashlib.sha256(b"other").hexdigest()}
    g.attrs["files"] = files
    rep = verify_store(open_store(kept))
    assert [(f.kind, f.where) for f in rep.findings] == [("corrupt_chunk", "runs/kept/heads/a/0/head.json")]
    assert "sha256 recorded when the head was saved" in rep.findings[0].message
