"""A manifest that changed under the store is refused naming the rows and columns (extract, finetune), or taken in
explicitly (``--update-samples`` / :func:`mixsig.cache.update_samples`): the samples table is rewritten and exactly
the rows whose input changed are recomputed, under every key's lease. Leases are checked before the encoder is
loaded and before media is hashed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mixsig.cache import Provenance, open_store, update_samples, verify_store
from mixsig.errors import LeaseHeld
from mixsig.manifest import load_manifest, to_samples
from tests.extract.test_bad_media import _write_manifest

REPO = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent("""
    import sys, time
    from mixsig.cache import open_store
    with open_store(sys.argv[1], "r+").writer(sys.argv[2]):
        print("held", flush=True)
        time.sleep(300)
""")


def _edit(manifest: Path, change) -> list[str]:
    """Rewrite ``manifest`` with ``change(i, row)`` applied; returns the ids of the rows it changed."""
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    changed = [r["id"] for i, r in enumerate(rows) if change(i, r)]
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return changed


def _fake_key(store, modality: str, encoder: str = "fake", revision: str = "r", pooling: str = "mean") -> str:
    """A key of ``modality`` with every row written (values = row index) and done."""
    prov = Provenance(modality=modality, encoder=encoder, revision=revision, pooling=pooling, layers="last",
                      dtype="float32", preprocessing={}, extra={})
    key = store.create_key(prov, 4, chunk_rows=8)
    n = len(store.samples)
    hashes = store.samples.content_hash[modality]
    with store.writer(key) as w:
        for a, b in w.blocks():
            w.write_block(a, b, np.repeat(np.arange(a, b, dtype=np.float32)[:, None], 4, 1), np.ones(b - a, np.int8),
                          input_hash=hashes[a:b])
    assert store.read(key).X.shape == (n, 4)
    return key


@pytest.fixture
def made(tmp_path, corpus, cli):
    """A 16-row manifest (media copied beside it), its store, and a done text key and audio key."""
    manifest = _write_manifest(tmp_path / "data", corpus, n=16)
    store_path = tmp_path / "s.zarr"
    assert cli("cache", "init", store_path, "--manifest", manifest) == 0
    store = open_store(store_path, "r+")
    return manifest, store_path, _fake_key(store, "text"), _fake_key(store, "audio")


def _arrays(store_path, key):
    store = open_store(store_path)
    return store.read_array(key, "done"), store.read(key, only_done=False).X


def _holder(store_path, key):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_path), key], env=env, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    return proc


def test_edited_labels_are_refused_naming_rows_by_extract_and_finetune(made, cli, capsys, tiny_encoders):
    manifest, store_path, text_key, _ = made
    before = open_store(store_path).samples
    flipped = _edit(manifest, lambda i, r: i < 10 and r.update(label="neutral" if r["label"] != "neutral"
                                                              else "empathetic") is None)
    assert len(flipped) == 10
    for command in ("extract", "finetune"):
        rc = cli(command, manifest, "--store", store_path, "--modality", "text", "--encoder", tiny_encoders["text"])
        err = capsys.readouterr().err
        assert rc == 3, err
        assert "10 rows differ" in err and flipped[0] in err and "label (10 rows" in err
        assert f"mixsig {command} ... --update-samples" in err and "new --store" in err
    after = open_store(store_path)
    assert after.samples.label.tolist() == before.label.tolist()  # the store keeps its samples
    assert after.read_array(text_key, "done").all()


def test_update_samples_recomputes_exactly_the_rows_whose_input_changed(made):
    manifest, store_path, text_key, audio_key = made
    text_before, audio_before = _arrays(store_path, text_key), _arrays(store_path, audio_key)
    split_before = open_store(store_path).split_hash()

    def change(i, r):
        if i in (2, 5):
            r["text"] = f"An edited sentence {i}."
        elif i == 7:  # another file
            r["audio"] = r["audio"].replace("00007", "00008")
        elif i == 9:  # another segment
            r["end"] = "0.5"
        elif i == 11:
            r["split"] = "test" if r["split"] != "test" else "val"
        else:
            return False
        return True

    assert len(_edit(manifest, change)) == 5
    store = open_store(store_path, "r+")
    new = to_samples(load_manifest(manifest))
    res = update_samples(store, new, attrs={"manifest_note": "edited"})
    assert sorted(res.columns) == ["audio", "content_hash@audio", "content_hash@text", "content_hash@video", "end",
                                   "split", "text"]
    assert res.invalidated == {text_key: 2, audio_key: 2}
    assert res.split_hash_before == split_before != res.split_hash_after == store.split_hash()

    again = open_store(store_path)
    assert again.samples.text[2] == "An edited sentence 2." and again.samples.split.tolist() == new.split.tolist()
    assert again.attrs["manifest_note"] == "edited" and again.attrs["samples_updates"][-1]["rows"] == 5
    for key, rows, (done0, x0) in ((text_key, [2, 5], text_before), (audio_key, [7, 9], audio_before)):
        done, x = _arrays(store_path, key)
        assert np.flatnonzero(~done).tolist() == rows  # exactly the rows whose input changed
        keep = np.setdiff1d(np.arange(16), rows)
        assert x[keep].tobytes() == x0[keep].tobytes()  # nothing committed was lost
    assert update_samples(store, to_samples(load_manifest(manifest))).changed is False  # nothing left to do
    report = verify_store(open_store(store_path))
    assert report.ok, report.findings


def test_update_samples_is_refused_while_a_key_is_leased(made):
    manifest, store_path, text_key, audio_key = made
    _edit(manifest, lambda i, r: i == 3 and r.update(text="Changed.") is None)
    new = to_samples(load_manifest(manifest))
    holder = _holder(store_path, audio_key)
    try:
        with pytest.raises(LeaseHeld, match=f"key {audio_key} is being written by pid {holder.pid}.*--break-lease"):
            update_samples(open_store(store_path, "r+"), new, command="mixsig extract")
        store = open_store(store_path)
        assert store.samples.text[3] != "Changed." and store.read_array(text_key, "done").all()  # nothing changed
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    res = update_samples(open_store(store_path, "r+"), new)  # the dead holder's lease is taken over
    assert res.invalidated == {text_key: 1}


def test_lease_is_checked_before_the_encoder_loads_or_media_is_hashed(made, cli, capsys, tiny_encoders,
                                                                     monkeypatch):
    import mixsig.extract._api as api
    from mixsig.extract import resolve_revision

    manifest, store_path, _, _ = made
    enc = tiny_encoders["audio"]
    # a key of the same encoder, pooling, layers, dtype and revision as the run below, written by a live process
    key = _fake_key(open_store(store_path, "r+"), "audio", encoder=Path(enc).name, revision=resolve_revision(enc),
                    pooling="cls")
    called = []
    monkeypatch.setattr(api, "load_encoder", lambda *a, **k: called.append("load_encoder"))
    monkeypatch.setattr(api, "current_inputs", lambda *a, **k: called.append("current_inputs"))
    holder = _holder(store_path, key)
    try:
        rc = cli("extract", manifest, "--store", store_path, "--modality", "audio", "--encoder", enc)
        err = capsys.readouterr().err
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert rc == 1 and f"is being written by pid {holder.pid}" in err and "--break-lease" in err
    assert called == []  # refused before loading the model and hashing the media
    assert "--break-lease" in subprocess.run([sys.executable, "-m", "mixsig.cli", "extract", "--help"],
                                             capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO))).stdout


@pytest.mark.slow
def test_changed_manifest_end_to_end(tmp_path, corpus, tiny_encoders, cli, capsys):
    """Real extractions: a text edit is refused, then --update-samples recomputes exactly those rows of the text
    key and none of the audio key; a changed audio file is not hashed by a text run, and refused by an audio run
    until --update-samples. A lease on the key (a writer on another host) is refused, then --break-lease takes it."""
    manifest = _write_manifest(tmp_path / "data", corpus, n=16)
    store_path = tmp_path / "s.zarr"

    def run(modality, *extra):
        rc = cli("extract", manifest, "--store", store_path, "--modality", modality, "--encoder",
                 tiny_encoders[modality], "--json", *extra)
        out, err = capsys.readouterr()
        return rc, (json.loads(out) if out.strip() else None), err

    (rc_t, res_t, _), (rc_a, res_a, _) = run("text"), run("audio")
    assert rc_t == rc_a == 0
    tkey, akey = res_t["key"], res_a["key"]
    t0, a0 = _arrays(store_path, tkey), _arrays(store_path, akey)
    ids = _edit(manifest, lambda i, r: i in (4, 6) and r.update(text=f"Something else {i}.") is None)
    rc, _, err = run("text")
    assert rc == 3 and ids[0] in err and "text (2 rows" in err
    rc, res, _ = run("text", "--update-samples")
    assert rc == 0 and res["written"] == 2 and res["samples_update"]["invalidated"] == {tkey: 2}
    done, x = _arrays(store_path, tkey)
    keep = np.setdiff1d(np.arange(16), [4, 6])
    assert done.all() and x[keep].tobytes() == t0[1][keep].tobytes()
    assert run("audio")[1]["written"] == 0 and _arrays(store_path, akey)[1].tobytes() == a0[1].tobytes()

    wav = sorted((tmp_path / "data" / "audio").glob("*.wav"))
    wav[1].write_bytes(wav[2].read_bytes())  # row 1's audio file changes on disk
    assert run("text")[0] == 0  # a text run does not hash audio
    rc, _, err = run("audio")
    assert rc == 3 and "content_hash@audio (1 row" in err
    rc, res, _ = run("audio", "--update-samples")
    assert rc == 0 and res["written"] == 1

    lease = store_path / ".mixsig" / "leases" / akey / "shard-0-of-1.json"
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_text(json.dumps({"host": "another-host", "pid": 1, "shard": [0, 1], "started": "earlier"}))
    _edit(manifest, lambda i, r: i == 0 and r.update(audio=r["audio"].replace("00000", "00003")) is None)
    rc, _, err = run("audio", "--update-samples")
    assert rc == 1 and "host another-host" in err and "--break-lease" in err
    rc, res, _ = run("audio", "--update-samples", "--break-lease")
    assert rc == 0 and res["written"] == 1 and not lease.exists()
