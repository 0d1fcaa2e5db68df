"""Bad rows get a status and a ledger entry and the run goes on; --strict stops; reruns retry failures;
non-finite encoder output and stale inputs are caught."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

from mixsig.cache import Status, open_store

COLUMNS = ["id", "split", "label", "text", "audio", "video", "start", "end"]


def _write_manifest(folder: Path, corpus: Path, n: int = 8, edit=None) -> Path:
    """A manifest of the first ``n`` corpus rows with media copied into ``folder``; ``edit(i, row)`` may change rows."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(corpus, newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    out = []
    for i, r in enumerate(rows):
        r = {k: r.get(k, "") for k in COLUMNS}
        for m in ("audio", "video"):
            src = Path(corpus).parent / r[m]
            dst = folder / m / src.name
            dst.parent.mkdir(exist_ok=True)
            if not dst.exists():
                shutil.copyfile(src, dst)
            r[m] = f"{m}/{src.name}"
        if edit:
            edit(i, r, folder)
        out.append(r)
    path = folder / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(out)
    return path


def _break(i, r, folder):
    if i == 2:  # garbage bytes named .wav
        (folder / "audio" / "garbage.wav").write_bytes(np.random.default_rng(0).bytes(5000))
        r["audio"] = "audio/garbage.wav"
    if i == 5:  # zero-length video
        (folder / "video" / "empty.mp4").write_bytes(b"")
        r["video"] = "video/empty.mp4"


def _key_arrays(store_path):
    store = open_store(store_path)
    (key,) = store.keys()
    return store, key, {n: store.read_array(key, n) for n in ("embedding", "done", "status", "message")}


def test_corrupt_wav_gets_decode_error_and_run_goes_on(tmp_path, corpus, tiny_encoders, cli, capsys):
    manifest = _write_manifest(tmp_path / "data", corpus, edit=_break)
    store_path = tmp_path / "s.zarr"
    rc = cli("extract", manifest, "--store", store_path, "--modality", "audio", "--encoder", tiny_encoders["audio"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "7 rows written" in out and "failed: decode_error 1" in out and "exit code 1" in out
    assert "garbage.wav" in out
    store, key, a = _key_arrays(store_path)
    assert a["status"].tolist() == [1, 1, Status.DECODE_ERROR, 1, 1, 1, 1, 1]
    assert a["done"].tolist() == [True, True, False, True, True, True, True, True]
    assert "garbage.wav" in a["message"][2] and "cannot decode audio" in a["message"][2]
    assert np.isnan(a["embedding"][2]).all() and np.isfinite(a["embedding"][[0, 1, 3, 4, 5, 6, 7]]).all()

    # rerun with the file fixed: the failed row is retried, done rows are skipped and keep their bytes (the file's
    # content changed under the store, so the samples table is updated explicitly)
    shutil.copyfile(next((tmp_path / "data" / "audio").glob("demo*.wav")), tmp_path / "data" / "audio" / "garbage.wav")
    args = ("extract", manifest, "--store", store_path, "--modality", "audio", "--encoder", tiny_encoders["audio"],
            "--json")
    assert cli(*args) == 3 and "content_hash@audio" in capsys.readouterr().err
    rc = cli(*args, "--update-samples")
    res = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert res["written"] == 1 and res["skipped_done"] == 7 and res["failed"] == {}
    _, _, b = _key_arrays(store_path)
    assert b["done"].all() and (b["status"] == Status.OK).all()
    keep = [0, 1, 3, 4, 5, 6, 7]
    assert b["embedding"][keep].tobytes() == a["embedding"][keep].tobytes()


def test_zero_length_video_is_too_short(tmp_path, corpus, tiny_encoders, cli, capsys):
    manifest = _write_manifest(tmp_path / "data", corpus, edit=_break)
    store_path = tmp_path / "s.zarr"
    rc = cli("extract", manifest, "--store", store_path, "--modality", "video", "--encoder", tiny_encoders["video"],
             "--json")
    res = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert res["failed"] == {"too_short": 1} and res["written"] == 7 and not res["ok"]
    assert res["ledger"] == [{"row": 5, "id": res["ledger"][0]["id"], "status": "too_short",
                              "message": res["ledger"][0]["message"]}]
    assert "empty.mp4" in res["ledger"][0]["message"] and "0 bytes" in res["ledger"][0]["message"]
    _, _, a = _key_arrays(store_path)
    assert a["status"][5] == Status.TOO_SHORT and not a["done"][5] and a["done"].sum() == 7
    assert "empty.mp4" in a["message"][5]


def test_strict_stops_at_first_failure(tmp_path, corpus, tiny_encoders, cli, capsys):
    manifest = _write_manifest(tmp_path / "data", corpus, edit=_break)
    store_path = tmp_path / "s.zarr"
    rc = cli("extract", manifest, "--store", store_path, "--modality", "audio", "--encoder", tiny_encoders["audio"],
             "--strict")
    err = capsys.readouterr().err
    assert rc == 1
    assert "--strict" in err and "decode_error" in err and "garbage.wav" in err
    _, _, a = _key_arrays(store_path)
    assert a["done"].sum() < 7  # stopped: a full run marks 7 rows done
    assert not a["done"][2]


def test_nonfinite_rows_get_status(tmp_path, corpus, tiny_encoders, cli, capsys):
    """A token whose embedding is +inf makes exactly the rows containing it non-finite."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    enc = tmp_path / "poisoned-text"
    shutil.copytree(tiny_encoders["text"], enc)
    tok = AutoTokenizer.from_pretrained(enc)
    word = "zebra"
    ids = tok(word, add_special_tokens=False)["input_ids"]
    weights = load_file(enc / "model.safetensors")
    name = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[name][ids[0]] = float("inf")
    save_file(weights, enc / "model.safetensors", metadata={"format": "pt"})

    manifest = _write_manifest(tmp_path / "data", corpus, n=6,
                               edit=lambda i, r, f: r.update(text=word + " " + r["text"]) if i == 4 else None)
    rc = cli("extract", manifest, "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder", enc, "--json")
    res = json.loads(capsys.readouterr().out)
    assert rc == 1 and res["failed"] == {"nonfinite": 1} and res["ledger"][0]["row"] == 4
    _, _, a = _key_arrays(tmp_path / "s.zarr")
    assert a["status"].tolist() == [1, 1, 1, 1, Status.NONFINITE, 1]
    assert np.isnan(a["embedding"][4]).all()


def test_changed_text_is_refused_then_updated_on_request(tmp_path, corpus, tiny_encoders, cli, capsys):
    manifest = _write_manifest(tmp_path / "data", corpus, n=6)
    store_path = tmp_path / "s.zarr"
    args = ("extract", manifest, "--store", store_path, "--modality", "text", "--encoder", tiny_encoders["text"], "--json")
    assert cli(*args) == 0
    capsys.readouterr()
    _, key, before = _key_arrays(store_path)
    # change row 1's text in place: same ids, new content
    _write_manifest(tmp_path / "data", corpus, n=6, edit=lambda i, r, f: r.update(text="A new sentence.") if i == 1 else None)
    with open(manifest, newline="") as f:
        changed_id = list(csv.DictReader(f))[1]["id"]
    assert cli(*args) == 3  # refused, naming the row and the column
    err = capsys.readouterr().err
    assert changed_id in err and "text" in err and "--update-samples" in err
    _, _, same = _key_arrays(store_path)
    assert same["embedding"].tobytes() == before["embedding"].tobytes()  # not silently changed

    assert cli(*args, "--update-samples") == 0
    res = json.loads(capsys.readouterr().out)
    assert res["written"] == 1 and res["samples_update"]["invalidated"] == {key: 1}
    store, key2, after = _key_arrays(store_path)
    assert key2 == key and store.samples.text[1] == "A new sentence."
    assert not np.allclose(after["embedding"][1], before["embedding"][1])
    others = [0, 2, 3, 4, 5]
    assert after["embedding"][others].tobytes() == before["embedding"][others].tobytes()
    res_again = (cli(*args), json.loads(capsys.readouterr().out))
    assert res_again[0] == 0 and res_again[1]["stale"] == [] and res_again[1]["written"] == 0
