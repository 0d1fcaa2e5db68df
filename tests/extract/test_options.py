"""Extraction options: layers, float16 storage, provenance/keys, shards from torchrun variables, revisions,
rows without input, and clear usage errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mixsig.cache import open_store
from mixsig.errors import ExtractionError, UsageError


def _extract(cli, capsys, corpus, store, modality, encoder, *extra) -> dict:
    rc = cli("extract", corpus, "--store", store, "--modality", modality, "--encoder", encoder, "--json", *extra)
    res = json.loads(capsys.readouterr().out)
    assert rc == 0, res
    return res


def test_layers_and_float16_give_new_keys_with_matching_values(tmp_path, corpus, tiny_encoders, cli, capsys):
    store_path = tmp_path / "s.zarr"
    enc = tiny_encoders["text"]
    last = _extract(cli, capsys, corpus, store_path, "text", enc)["key"]
    all_ = _extract(cli, capsys, corpus, store_path, "text", enc, "--layers", "all")["key"]
    some = _extract(cli, capsys, corpus, store_path, "text", enc, "--layers", "0,-1")["key"]
    half = _extract(cli, capsys, corpus, store_path, "text", enc, "--dtype", "float16")["key"]
    store = open_store(store_path)
    assert len({last, all_, some, half}) == 4 and set(store.keys()) == {last, all_, some, half}
    X = store.read(last).X
    XA = store.read(all_).X
    XS = store.read(some).X
    XH = store.read(half).X
    assert X.shape == (16, 32) and XA.shape == (16, 3, 32) and XS.shape == (16, 2, 32)
    assert np.abs(XA[:, -1] - X).max() <= 1e-5  # the last hidden state is the last layer
    assert np.abs(XS[:, 0] - XA[:, 0]).max() <= 1e-6 and np.abs(XS[:, 1] - XA[:, 2]).max() <= 1e-6
    assert store.key_group(half)["embedding"].dtype == np.float16
    assert np.abs(XH - X).max() <= 1e-2 and np.abs(XH - X.astype(np.float16).astype(np.float32)).max() <= 1e-6
    prov = store.provenance(all_)
    assert prov["layers"] == "all" and store.provenance(some)["layers"] == "0,2"
    p = store.provenance(last)
    assert p["encoder"] == "tiny-text" and p["revision"].startswith("sha256:") and p["pooling"] == "cls"
    assert p["preprocessing"]["text_max_length"] == 128 and p["dtype"] == "float32"
    assert "/" not in p["encoder"]  # no absolute paths in keys: a moved store keeps working


def test_audio_provenance_records_preprocessing(tmp_path, corpus, tiny_encoders, cli, capsys):
    store_path = tmp_path / "s.zarr"
    a = _extract(cli, capsys, corpus, store_path, "audio", tiny_encoders["audio"], "--pooling", "mean")["key"]
    b = _extract(cli, capsys, corpus, store_path, "audio", tiny_encoders["audio"], "--pooling", "mean",
                 "--max-seconds", "1", "--no-peak-normalize")["key"]
    store = open_store(store_path)
    pa, pb = store.provenance(a)["preprocessing"], store.provenance(b)["preprocessing"]
    assert pa["sample_rate"] == 16000 and pa["max_seconds"] == 10.0 and pa["peak_normalize"] is True
    assert pb["max_seconds"] == 1.0 and pb["peak_normalize"] is False and a != b
    assert not np.allclose(store.read(a).X, store.read(b).X)


def test_rows_without_input_are_not_failures(tmp_path, corpus, tiny_encoders, cli, capsys):
    with open(corpus, newline="") as f:
        rows = list(csv.DictReader(f))
    root = corpus.parent
    for r in rows:
        r["audio"] = str(root / r["audio"])
        r["video"] = str(root / r["video"])
    rows[3]["audio"] = ""
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # the manifest names its media by absolute paths into the corpus folder beside it: refused unless allowed
    assert cli("extract", path, "--store", tmp_path / "s.zarr", "--modality", "audio", "--encoder",
               tiny_encoders["audio"]) == 3
    assert "--allow-outside-paths" in capsys.readouterr().err and not (tmp_path / "s.zarr").exists()
    res = _extract(cli, capsys, path, tmp_path / "s.zarr", "audio", tiny_encoders["audio"], "--allow-outside-paths")
    assert res["no_input"] == 1 and res["failed"] == {} and res["written"] == 15 and res["ok"]
    store = open_store(tmp_path / "s.zarr")
    info = store.key_info(res["key"])
    assert info["status"] == {"ok": 15, "missing_input": 1}


def test_shards_from_torchrun_environment():
    from mixsig.extract import parse_shard, resolve_shard, shard_from_env

    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "3", "LOCAL_RANK": "0"}) == (2, 3)
    assert shard_from_env({}) is None
    assert resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    assert resolve_shard("0/2", {"RANK": "0", "WORLD_SIZE": "2"}) == (0, 2)
    assert resolve_shard(None, {}) == (0, 1)
    for bad in ("3/2", "a/b", "1"):
        with pytest.raises(UsageError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(UsageError, match="disagrees"):
        resolve_shard("0/2", {"RANK": "1", "WORLD_SIZE": "2"})


def test_hub_revision_resolves_offline_from_the_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    from mixsig.extract import resolve_revision

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_revision("org/tiny") == commit
    assert resolve_revision("org/tiny", revision=commit) == commit
    with pytest.raises(ExtractionError, match="offline"):
        resolve_revision("org/not-cached")


def test_local_revision_changes_with_weights(tmp_path, tiny_encoders):
    import shutil

    from mixsig.extract import resolve_revision

    copy = tmp_path / "enc"
    shutil.copytree(tiny_encoders["text"], copy)
    before = resolve_revision(str(copy))
    assert before == resolve_revision(tiny_encoders["text"]) and before.startswith("sha256:")
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert resolve_revision(str(copy)) != before


def test_usage_errors_name_the_fix(tmp_path, corpus, tiny_encoders, cli, capsys):
    rc = cli("extract", corpus, "--store", tmp_path / "s.zarr", "--modality", "video", "--encoder",
             tiny_encoders["video"], "--frames", "16")
    err = capsys.readouterr().err
    assert rc == 2 and "takes clips of 4 frames" in err
    rc = cli("extract", corpus, "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder",
             tmp_path / "no-such-model")
    err = capsys.readouterr().err
    assert rc == 1 and "no-such-model" in err and "does not exist" in err
    rc = cli("extract", corpus, "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder",
             tiny_encoders["text"], "--layers", "7")
    assert rc == 2 and "out of range" in capsys.readouterr().err


def test_a_registered_pooling_is_offered_and_used_by_the_cli(tmp_path, corpus, tiny_encoders, cli, capsys):
    from mixsig.extract import POOLINGS, register_pooling

    @register_pooling("max")
    def max_pool(hidden, mask):
        """Largest value of each dimension over the real positions."""
        return hidden.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)

    store_path = tmp_path / "s.zarr"
    try:
        with pytest.raises(SystemExit):
            cli("extract", "--help")
        assert "max: largest value of each dimension over the real positions" in " ".join(capsys.readouterr().out.split())
        mx = _extract(cli, capsys, corpus, store_path, "text", tiny_encoders["text"], "--pooling", "max")["key"]
        mean = _extract(cli, capsys, corpus, store_path, "text", tiny_encoders["text"], "--pooling", "mean")["key"]
    finally:
        POOLINGS.unregister("max")
    store = open_store(store_path)
    assert mx.startswith("text.tiny-text.max.") and store.provenance(mx)["pooling"] == "max"
    X, M = store.read(mx).X, store.read(mean).X
    assert X.shape == M.shape == (16, 32) and np.all(X >= M - 1e-5) and np.abs(X - M).max() > 0.1
    with pytest.raises(SystemExit) as exc:   # unregistered again: refused by the parser, which lists the choices
        cli("extract", corpus, "--store", store_path, "--modality", "text", "--encoder", tiny_encoders["text"],
            "--pooling", "max")
    assert exc.value.code == 2 and "invalid choice: 'max' (choose from 'cls', 'mean')" in capsys.readouterr().err


def test_a_loaded_manifest_with_outside_paths_allowed_extracts_on_the_first_run(tmp_path, corpus, tiny_encoders):
    """A Manifest object handed to extract with allow_outside_paths: the store's samples hash the outside files
    as extract does, so the first run is not refused as 'manifest changed'."""
    import dataclasses

    from mixsig.errors import RefusedInput
    from mixsig.extract import extract
    from mixsig.manifest import load_manifest

    with open(corpus, newline="") as f:
        rows = list(csv.DictReader(f))[:6]
    for r in rows:
        r["audio"] = str(corpus.parent / r["audio"])
    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    manifest = dataclasses.replace(load_manifest(path, check_media=False, allow_outside_paths=True),
                                   outside_paths_allowed=False)
    with pytest.raises(RefusedInput, match="--allow-outside-paths"):
        extract(manifest, tmp_path / "s.zarr", "audio", tiny_encoders["audio"])
    res = extract(manifest, tmp_path / "s.zarr", "audio", tiny_encoders["audio"], allow_outside_paths=True)
    assert res.written == 6 and not res.failed
    assert all(open_store(tmp_path / "s.zarr").samples.content_hash["audio"])
