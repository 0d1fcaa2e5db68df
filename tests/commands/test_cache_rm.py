"""`mixsig cache rm STORE KEY [--force]` through mixsig.cli.main: refused (exit 1, one line naming the runs) while a
run uses the key; a unique prefix names the key and the full key is printed; --force deletes it and the run still
reports."""

from __future__ import annotations

import json

import pytest

from mixsig.cache import open_store
from mixsig.cli import main
from tests.synthetic import make_synthetic_store


@pytest.fixture
def trained(tmp_path, capsys):
    """Two text keys (enc-a, enc-b), audio and video keys; run `r1` trained on text enc-a + audio."""
    path = tmp_path / "s.zarr"
    _, keys = make_synthetic_store(path, n=60, extra_keys={"text": 0.5})
    assert main(["train", str(path), "--head", "logreg", "--features", f"text={keys['text'][0]},audio=audio",
                 "--name", "r1", "--seeds", "1,"]) == 0
    capsys.readouterr()
    return str(path), keys


def test_cache_rm_refuses_a_key_a_run_uses_and_deletes_an_unused_one_by_prefix(trained, capsys):
    path, keys = trained
    used, unused = keys["text"][0], keys["text"][1]
    assert main(["cache", "rm", path, used]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert used in err and "run(s) r1" in err and "--force" in err and f"mixsig runs rm {path} RUN" in err
    assert used in open_store(path).keys()  # nothing deleted
    assert main(["cache", "rm", path, "text.synthetic-text-enc-b"]) == 0  # a unique prefix
    assert capsys.readouterr().out.strip() == f"deleted key {unused}"
    assert sorted(open_store(path).keys()) == sorted([used, keys["audio"][0], keys["video"][0]])
    assert main(["cache", "rm", path, "text.nope"]) == 1  # unknown: exit 1, names the listing command
    assert "mixsig cache ls" in capsys.readouterr().err


def test_cache_rm_force_deletes_a_used_key_and_the_run_still_reports(trained, capsys, tmp_path):
    path, keys = trained
    used = keys["text"][0]
    before = open_store(path).read_run("r1")
    assert main(["cache", "rm", path, "text.synthetic-text-enc-a", "--force"]) == 0
    out = capsys.readouterr().out
    assert f"deleted key {used}" in out and "runs r1 kept" in out
    store = open_store(path)
    assert used not in store.keys() and "r1" in store.runs()
    after = store.read_run("r1")
    assert after.attrs["features"] == before.attrs["features"]
    assert main(["report", path, "--run", "r1", "--out", str(tmp_path / "rep"), "--no-plots", "--bootstrap", "0",
                 "--no-media"]) == 0
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["n_samples"] > 0 and doc["metrics"]
    assert f"{used} (not in the store now)" in (tmp_path / "rep" / "report.md").read_text()
