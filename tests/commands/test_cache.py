"""`mixsig cache` through mixsig.cli.main: init, info, ls, explain, diff, export-h5; errors are one line."""

import json

import numpy as np
import pytest

from mixsig.cache import create_store, open_store
from mixsig.cli import main
from tests.cache.helpers import D, fill_key, make_samples, prov


@pytest.fixture
def store(tmp_path):
    return create_store(tmp_path / "store.zarr", make_samples(), attrs={"manifest_sha256": "x"})


def test_cache_init_from_a_manifest(tmp_path, capsys):
    from mixsig.demo import make_corpus

    manifest = make_corpus(tmp_path / "corpus", n_rows=24, seed=3, media=False)
    assert main(["cache", "init", str(tmp_path / "s.zarr"), "--manifest", str(manifest)]) == 0
    assert "created" in capsys.readouterr().out
    s = open_store(tmp_path / "s.zarr")
    assert len(s.samples) == 24 and s.samples.classes == ("empathetic", "neutral")
    assert s.attrs["manifest_path"].endswith("manifest.csv") and not s.attrs["manifest_path"].startswith("/")
    assert main(["cache", "info", str(tmp_path / "s.zarr"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 24 and sum(info["splits"].values()) == 24 and info["annotators"] == 5


def test_ls_explain_diff(store, tmp_path, capsys):
    a = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, a, rows_fail=[1, 2])
    b = store.create_key(prov(pooling="mean", preprocessing={"max_length": 64}), D, chunk_rows=16)
    path = str(tmp_path / "store.zarr")
    assert main(["cache", "ls", path, "--json"]) == 0
    listed = {k["key"]: k for k in json.loads(capsys.readouterr().out)["keys"]}
    assert listed[a]["modality"] == "text" and listed[a]["width"] == D
    assert listed[a]["done"] == 48 and listed[a]["failed"] == 2 and listed[b]["done"] == 0
    assert main(["cache", "explain", path, a]) == 0
    out = capsys.readouterr().out
    assert "matches key: True" in out and "max_length: 32" in out
    assert main(["cache", "diff", path, a, b, "--json"]) == 0
    fields = {d["field"]: (d["a"], d["b"]) for d in json.loads(capsys.readouterr().out)}
    assert fields == {"pooling": ("cls", "mean"), "preprocessing.max_length": (32, 64)}


def test_unknown_key_is_one_clear_line(store, tmp_path, capsys):
    assert main(["cache", "info", str(tmp_path / "store.zarr"), "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mixsig cache: error: no feature key 'nope'") and "Traceback" not in err


def test_export_h5_cli(store, tmp_path, capsys):
    import h5py

    a = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, a)
    assert main(["cache", "export-h5", str(tmp_path / "store.zarr"), a, str(tmp_path / "x.h5")]) == 0
    with h5py.File(tmp_path / "x.h5") as f:
        assert f["embedding"].shape == (50, D) and f["ids"][0].decode() == "s000"
        np.testing.assert_array_equal(f["embedding"][...], store.read(a).X)


def test_import_h5_keys_are_chunked_like_extracted_keys(tmp_path, capsys):
    """One chunk policy (mixsig.cache.default_chunk_rows): a key imported from HDF5 gets the chunks extraction
    gives a key of the same shape: ~16 chunks, a power of two in 64..1024 rows (128 for 2000 rows)."""
    import types

    import h5py

    from mixsig.cache import default_chunk_rows
    from mixsig.extract import prepare_key

    n, path = 2000, tmp_path / "big.zarr"
    store = create_store(path, make_samples(n))
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["ids"] = np.asarray(store.samples.ids).astype("S")
        f["embedding"] = np.ones((n, D), np.float32)
    assert main(["cache", "import-h5", str(path), str(tmp_path / "f.h5"), "--modality", "text", "--name", "given",
                 "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)["key"]
    encoder = types.SimpleNamespace(provenance=lambda extra: prov(), dim=D, dtype="float32")
    extracted = prepare_key(store, encoder, coordinator=True)
    store = open_store(path)
    assert store.key_info(imported)["chunk_rows"] == store.key_info(extracted)["chunk_rows"] == 128
    assert default_chunk_rows(n, D * 4) == 128 and default_chunk_rows(50, D * 4) == 64
    assert default_chunk_rows(10**6, D * 4) == 1024 and default_chunk_rows(10**6, 4096 * 4) == 64


@pytest.mark.slow
def test_verify_fix_then_extract_recomputes_exactly_the_corrupt_chunk(tmp_path, capsys):
    """A flipped byte in an embedding chunk: `cache verify` names it (exit 1), `cache verify --fix` unmarks its rows,
    `mixsig extract` rerun writes exactly those rows, every other chunk file is byte-identical, verify is clean."""
    from mixsig.demo import make_corpus, make_tiny_encoders

    enc = str(make_tiny_encoders(tmp_path / "tiny")["text"])
    manifest = make_corpus(tmp_path / "corpus", n_rows=24, seed=3, media=False)
    path = tmp_path / "s.zarr"
    extract = ["-q", "extract", str(manifest), "--store", str(path), "--modality", "text", "--encoder", enc,
               "--chunk-rows", "8"]
    assert main(extract) == 0
    (key,) = open_store(path).keys()
    kdir = path / "features" / key
    before = {p.relative_to(kdir): p.read_bytes() for p in kdir.rglob("*") if p.is_file() and "c" in p.parts}
    x = open_store(path).read(key).X
    chunk = kdir / "embedding" / "c" / "1" / "0"
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0x01
    chunk.write_bytes(bytes(data))
    capsys.readouterr()

    assert main(["cache", "verify", str(path)]) == 1
    assert f"corrupt_chunk    features/{key}/embedding/c/1 rows 8..15 (8)" in capsys.readouterr().out
    assert main(["cache", "verify", str(path), "--fix"]) == 1  # it reports what it found, and fixes it
    assert "`mixsig extract` recomputes them" in capsys.readouterr().out
    assert main(["cache", "verify", str(path)]) == 0
    capsys.readouterr()
    assert main([*extract, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["written"] == 8 and res["skipped_done"] == 16, res
    after = {p.relative_to(kdir): p.read_bytes() for p in kdir.rglob("*") if p.is_file() and "c" in p.parts}
    row_chunk_1 = {k for k in before if k.parts[2] == "1"}
    assert {k: v for k, v in after.items() if k not in row_chunk_1} == \
        {k: v for k, v in before.items() if k not in row_chunk_1}
    np.testing.assert_allclose(open_store(path).read(key).X, x, rtol=1e-5, atol=1e-6)
    assert main(["cache", "verify", str(path)]) == 0


def test_cache_init_refuses_media_outside_the_manifest_folder_unless_allowed(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (tmp_path / "outside.wav").write_bytes(b"RIFF")
    (corpus / "in.wav").write_bytes(b"RIFF")
    (corpus / "m.csv").write_text("id,split,label,text,audio\n"
                                  "a,train,x,hi,in.wav\nb,train,y,yo,../outside.wav\nc,test,x,ok,in.wav\n")
    store = str(tmp_path / "s.zarr")
    assert main(["cache", "init", store, "--manifest", str(corpus / "m.csv")]) == 3
    err = capsys.readouterr().err
    assert "id 'b'" in err and "../outside.wav" in err and "--allow-outside-paths" in err
    assert not (tmp_path / "s.zarr").exists()
    assert main(["cache", "init", store, "--manifest", str(corpus / "m.csv"), "--allow-outside-paths"]) == 0
    assert open_store(store).samples.audio.tolist() == ["in.wav", "../outside.wav", "in.wav"]
