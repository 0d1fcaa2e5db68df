"""Every array mixsig writes is checksummed and bound to its position (issue 13, cache integrity).

Each test damages a real store file the way the fault does (a flipped byte, a chunk file copied over another, a
hand-edited zarr.json, a store written the old way), then checks that reading refuses it with a message naming
the array and chunk, that ``cache verify`` names it, and that nothing else was lost.
"""

import json
import shutil

import numpy as np
import pytest

from mixsig.cache import RunSubset, Status, create_store, open_store, verify_store
from mixsig.cli import main
from mixsig.errors import CorruptChunk, ProvenanceMismatch
from tests.cache.helpers import D, fill_key, make_samples, prov, row_values


def _flip(path, at=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x10
    path.write_bytes(bytes(data))


def _key(store, tmp_path, messages=False, **kw):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key, **kw)
    if messages:  # rows 16..19 fail with a message (a chunk of the message ledger that is not all empty)
        with store.writer(key) as w:
            w.invalidate(range(16, 32))
            st = np.where(np.arange(16, 32) < 20, Status.DECODE_ERROR, Status.OK).astype(np.int8)
            w.write_block(16, 32, row_values(range(16, 32)), st, [f"row {r} failed" if r < 20 else "" for r in
                                                                   range(16, 32)], [f"{r:016x}" for r in range(16, 32)])
    return key, tmp_path / "store.zarr" / "features" / key


def _probs(n=50, seeds=2, seed=0):
    p = np.random.default_rng(seed).random((seeds, n, 2)).astype(np.float32)
    return p / p.sum(axis=2, keepdims=True)


def _kinds(rep):
    return [(f.kind, f.where) for f in rep.findings]


def test_flipped_byte_in_samples_label_is_refused_and_left_by_fix(store, tmp_path, capsys):
    path = tmp_path / "store.zarr" / "samples" / "label" / "c" / "0"
    _flip(path)
    before = path.read_bytes()
    with pytest.raises(CorruptChunk, match=r"samples/label fails its CRC32C.*mixsig cache init NEW_STORE"):
        open_store(tmp_path / "store.zarr").samples
    rep = verify_store(open_store(tmp_path / "store.zarr"))
    assert _kinds(rep) == [("corrupt_chunk", "samples/label/c/0")]
    assert main(["cache", "verify", str(tmp_path / "store.zarr"), "--fix"]) == 1
    out = capsys.readouterr().out
    assert "samples/label/c/0" in out and "cannot be recomputed by `mixsig extract`" in out
    assert path.read_bytes() == before  # --fix leaves what extraction cannot recompute


def test_flipped_byte_in_run_probs_is_refused(store, tmp_path):
    store.write_run("r1", {"seeds": [0, 1]}, {"text": RunSubset(_probs())})
    path = tmp_path / "store.zarr" / "runs" / "r1" / "subsets" / "text" / "probs" / "c" / "0" / "0" / "0"
    _flip(path)
    with pytest.raises(CorruptChunk, match=r"runs/r1/subsets/text/probs fails its CRC32C.*--name r1 --overwrite"):
        open_store(tmp_path / "store.zarr").read_run("r1")
    assert _kinds(verify_store(store)) == [("corrupt_chunk", "runs/r1/subsets/text/probs/c/0")]


def test_probabilities_that_are_not_distributions_are_refused_naming_run_subset_seed(store):
    probs = _probs()
    probs[1, 7] = [-43421.0, 0.086]  # a valid chunk (written by zarr, CRC fine) holding garbage
    probs[0, 3] = np.nan             # a row not predicted (all NaN) is fine
    store.write_run("r1", {"seeds": [11, 12]}, {"text": RunSubset(probs)})
    with pytest.raises(CorruptChunk, match=r"run 'r1' subset 'text' seed 12: 1 rows .* not distributions \(row 7"):
        store.read_run("r1")
    rep = verify_store(store)
    assert _kinds(rep) == [("bad_probs", "runs/r1/subsets/text/probs")]
    ok = _probs()
    store.write_run("r1", {"seeds": [11, 12]}, {"text": RunSubset(ok)}, overwrite=True)
    np.testing.assert_array_equal(store.read_run("r1").subsets["text"].probs, ok)


@pytest.mark.parametrize("name", ["message", "input_hash"])
def test_flipped_byte_in_a_ledger_string_array_is_named_and_fix_unmarks_its_rows(store, tmp_path, name):
    key, kdir = _key(store, tmp_path, messages=True)
    before = {p: p.read_bytes() for p in (kdir / "embedding").rglob("*") if p.is_file()}
    _flip(kdir / name / "c" / "1")
    with pytest.raises(CorruptChunk, match=f"array features/{key}/{name}"):
        store.read_array(key, name)
    rep = verify_store(store)
    assert _kinds(rep) == [("corrupt_chunk", f"features/{key}/{name}/c/1")]
    assert rep.findings[0].rows == list(range(16, 32))
    rep = verify_store(store, fix=True)
    assert any("rows 16..31" in r for r in rep.removed)
    assert verify_store(store).ok
    with store.writer(key) as w:  # before the fix only rows 16..19 (failed) were pending
        assert w.pending_rows().tolist() == list(range(16, 32))
    assert store.read_array(key, "done").sum() == 50 - 16
    # embedding chunk files are untouched; the other rows are still there, bit for bit
    assert {p: p.read_bytes() for p in (kdir / "embedding").rglob("*") if p.is_file()} == before


def test_flipped_byte_in_an_added_key_array_is_named_and_left(store, tmp_path, capsys):
    key, kdir = _key(store, tmp_path)
    fold = np.arange(50) % 3
    store.add_key_array(key, "fold", "int8", -1, fold)
    _flip(kdir / "fold" / "c" / "2", at=3)
    with pytest.raises(CorruptChunk, match=f"array features/{key}/fold chunk 2: .*CRC32C"):
        store.read_array(key, "fold")
    rep = verify_store(store, fix=True)
    assert _kinds(rep) == [("corrupt_chunk", f"features/{key}/fold/c/2")]
    assert "mixsig finetune" in rep.findings[0].message and not rep.removed
    assert store.read_array(key, "done").all()  # the key's own rows are not unmarked for it


def test_embedding_chunk_copied_over_another_is_refused(store, tmp_path):
    key, kdir = _key(store, tmp_path)
    x = store.read(key).X
    chunks = kdir / "embedding" / "c"
    shutil.copyfile(chunks / "1" / "0", chunks / "2" / "0")  # a valid chunk at the wrong position
    for read in (lambda: store.read(key), lambda: store.read(key, rows=np.arange(33, 40)),
                 lambda: store.read_array(key, "embedding")):
        with pytest.raises(CorruptChunk, match=r"embedding chunk 2 is not the chunk written at this position"):
            read()
    rep = verify_store(store)
    assert _kinds(rep) == [("misplaced_chunk", f"features/{key}/embedding/c/2")]
    verify_store(store, fix=True)
    view = store.read(key)  # the other rows, unchanged; the moved chunk's rows are no longer done
    assert view.excluded == 16 and 32 not in view.rows.tolist()
    np.testing.assert_array_equal(view.X, x[np.r_[0:32, 48:50]])


def test_small_array_chunk_copied_over_another_is_refused(store, tmp_path):
    key, kdir = _key(store, tmp_path, rows_fail=[20])
    shutil.copyfile(kdir / "status" / "c" / "0", kdir / "status" / "c" / "1")  # hides row 20's failure
    with pytest.raises(CorruptChunk, match=r"status chunk 1 is not the chunk written at this position"):
        store.read_array(key, "status")
    assert _kinds(verify_store(store)) == [("misplaced_chunk", f"features/{key}/status/c/1")]
    shutil.copyfile(kdir / "done" / "c" / "0", kdir / "done" / "c" / "1")  # would mark failed row 20 done
    with pytest.raises(CorruptChunk, match=r"done chunk 1 is not the chunk written at this position"):
        store.read(key)


def test_non_local_store_swap_is_found_by_verify(tmp_path):
    """On a store that is not a local folder (an fsspec URL) zarr checks each chunk's CRC on read, and `verify`
    checks the digests through the store's own API."""
    import fsspec

    fs, base = fsspec.filesystem("memory"), f"/{tmp_path.name}/store.zarr"
    try:
        store = create_store(f"memory://{base}", make_samples())
        key = store.create_key(prov(), D, chunk_rows=16)
        fill_key(store, key)
        assert store.local_path is None and verify_store(store).ok
        chunks = f"{base}/features/{key}/embedding/c"
        fs.pipe(f"{chunks}/2/0", fs.cat(f"{chunks}/1/0"))
        assert _kinds(verify_store(store)) == [("misplaced_chunk", f"features/{key}/embedding/c/2")]
    finally:
        fs.rm(f"/{tmp_path.name}", recursive=True)


def test_ledger_chunk_copied_over_another_is_refused(store, tmp_path):
    key, kdir = _key(store, tmp_path)
    ledger = kdir / "digests" / "c"
    shutil.copyfile(ledger / "0" / "0", ledger / "1" / "0")
    with pytest.raises(CorruptChunk, match=r"digests chunk 1 records the digests of chunk 0"):
        store.read(key)
    rep = verify_store(store)
    assert _kinds(rep) == [("misplaced_chunk", f"features/{key}/digests/c/1")]
    verify_store(store, fix=True)
    assert verify_store(store).ok and store.read(key).excluded == 16


def test_hand_edited_provenance_is_refused(store, tmp_path, capsys):
    key, kdir = _key(store, tmp_path)
    meta = json.loads((kdir / "zarr.json").read_text())
    meta["attributes"]["provenance"]["preprocessing"]["max_length"] = 512
    (kdir / "zarr.json").write_text(json.dumps(meta))
    store = open_store(tmp_path / "store.zarr")
    with pytest.raises(ProvenanceMismatch, match=rf"key {key}: its provenance no longer hashes.*mixsig cache explain"):
        store.read(key, split="train")
    path = str(tmp_path / "store.zarr")
    assert main(["train", path, "--head", "logreg", "--features", f"text={key}", "--seeds", "0,"]) == 1
    err = capsys.readouterr().err
    assert f"key {key}: its provenance no longer hashes" in err and "Traceback" not in err
    assert main(["cache", "explain", path, key]) == 0
    assert "matches key: False" in capsys.readouterr().out
    assert _kinds(verify_store(store)) == [("provenance_mismatch", f"features/{key}")]
    assert store.runs() == []


def test_interrupted_ledger_entry_is_reported_and_recorded_by_the_next_writer(store, tmp_path):
    key, kdir = _key(store, tmp_path)
    g = store.key_group(key)
    g["digests"][1] = np.array([1, -1, -1, -1, -1, -1])  # what a writer killed inside write_block leaves
    rep = verify_store(store)
    assert _kinds(rep) == [("digest_missing", f"features/{key}/digests/c/1")]
    with store.writer(key):
        pass  # the next writer of the shard records it (it holds the lease)
    assert verify_store(store).ok


def test_a_format_1_store_is_read_and_its_unchecked_arrays_listed(tmp_path, capsys):
    """A store written before checksums (samples and string arrays without crc32c, no digests) stays readable;
    verify lists the arrays it cannot fully check."""
    import zarr

    store = create_store(tmp_path / "old.zarr", make_samples())
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    g = zarr.open_group(str(tmp_path / "old.zarr"), mode="r+")
    label = g["samples/label"][...]
    del g["samples/label"]
    g["samples"].create_array("label", shape=label.shape, dtype=label.dtype, chunks=label.shape)[...] = label
    del g[f"features/{key}/digests"]
    g.attrs["mixsig_store"] = 1
    old = open_store(tmp_path / "old.zarr")
    np.testing.assert_array_equal(old.samples.label, label)
    np.testing.assert_array_equal(old.read(key).X, store.read(key).X)
    rep = verify_store(old)
    assert rep.ok
    assert any(u.startswith("samples/label (no checksum") for u in rep.unchecked)
    assert any(u.startswith(f"features/{key}/embedding (no digests") for u in rep.unchecked)
    assert main(["cache", "verify", str(tmp_path / "old.zarr")]) == 0
    assert "unchecked        samples/label (no checksum" in capsys.readouterr().out


def test_every_array_of_a_new_store_is_checked(store, tmp_path):
    key, _ = _key(store, tmp_path)
    store.add_key_array(key, "fold", "int8", -1, np.arange(50) % 3)
    store.write_run("r1", {"seeds": [0, 1]}, {"text": RunSubset(_probs(), gates=_probs())})
    rep = verify_store(store)
    assert rep.ok and rep.unchecked == []
