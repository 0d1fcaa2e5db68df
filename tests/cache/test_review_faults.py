"""Faults found in review of the cache integrity code (issue 13 follow-up): a full disk during a samples update,
readers racing writers, verify on format-2 stores, ``verify --fix`` beside a running writer, lease messages."""

import errno
import os
import shutil

import numpy as np
import pytest

from mixsig.cache import Samples, create_store, open_store, update_samples, verify_store
from mixsig.errors import LeaseHeld, StoreError
from tests.cache.helpers import D, fill_key, make_samples, prov, row_values


def _changed(n=50):
    s = make_samples(n)
    label = s.label.copy()
    label[[3, 4]] = 1 - label[[3, 4]]
    text = s.text.copy()
    text[7] = "edited"
    ch = dict(s.content_hash)
    ch["text"] = ch["text"].copy()
    ch["text"][7] = "f" * 16
    return Samples(ids=s.ids, split=s.split, label=label, classes=s.classes, group=s.group, text=text,
                   content_hash=ch, votes=s.votes, votes_by_condition=s.votes_by_condition)


def test_full_disk_during_samples_update_keeps_the_old_table_and_rerun_completes(store, tmp_path, monkeypatch):
    import zarr.storage._local as local

    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    before = store.samples
    put = local._put

    def full_disk(path, value, exclusive=False):
        if path.parts[-3:] == ("label", "c", "0"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return put(path, value, exclusive)

    monkeypatch.setattr(local, "_put", full_disk)
    with pytest.raises(StoreError, match=r"updating the samples table .* failed .*No space left on device.*old "
                                         r"table was kept.*Free disk space and rerun") as exc:
        update_samples(store, _changed())
    assert "\n" not in str(exc.value)
    monkeypatch.setattr(local, "_put", put)
    again = open_store(tmp_path / "store.zarr", "r+")
    np.testing.assert_array_equal(again.samples.label, before.label)  # not all 0: the old table is whole
    assert again.samples.split_hash() == before.split_hash()
    rep = verify_store(again)
    assert rep.ok and not any("samples" in u for u in rep.unchecked), rep.to_dict()
    assert not (tmp_path / "store.zarr" / "samples.new").exists()
    done = again.read_array(key, "done")
    assert done.sum() >= 49 and not done[7]  # at most more rows pending: the changed text row
    np.testing.assert_array_equal(again.read(key).X, row_values(np.flatnonzero(done)))

    res = update_samples(again, _changed())  # disk freed: the rerun completes the update
    assert res.changed and open_store(tmp_path / "store.zarr").samples.label[3] == 1 - before.label[3]
    assert verify_store(open_store(tmp_path / "store.zarr")).ok


def test_samples_swap_interrupted_between_its_renames_is_completed_on_open(store, tmp_path):
    root = tmp_path / "store.zarr"
    new = _changed()
    other = create_store(tmp_path / "other.zarr", new)  # a complete new table, as the update writes it
    shutil.copytree(tmp_path / "other.zarr" / "samples", root / "samples.new")
    os.rename(root / "samples", root / "samples.old")  # killed here: samples/ missing
    assert open_store(root).samples.split_hash() == other.samples.split_hash()
    assert not (root / "samples.new").exists() and not (root / "samples.old").exists()
    assert verify_store(open_store(root)).ok


def _foreign_lease(root, key):
    """A lease file of another live process on this host (our parent), as a running writer leaves it."""
    import json
    import socket

    d = root / ".mixsig" / "leases" / key
    d.mkdir(parents=True, exist_ok=True)
    f = d / "shard-0-of-1.json"
    f.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "shard": [0, 1],
                             "started": "2026-01-01T00:00:00+0000"}))
    return f


def test_held_lease_message_suggests_break_lease_only_for_extract(store, tmp_path):
    from mixsig.cache import check_lease_free

    key = store.create_key(prov(), D, chunk_rows=16)
    root = tmp_path / "store.zarr"
    lease = _foreign_lease(root, key)
    with pytest.raises(LeaseHeld) as exc:
        check_lease_free(root, key, command="mixsig finetune")
    msg = str(exc.value)
    assert "--break-lease" not in msg and "--shard" not in msg and str(lease) in msg
    assert "delete the lease file and rerun `mixsig finetune`" in msg
    with pytest.raises(LeaseHeld) as exc:
        update_samples(store, _changed(), command="mixsig finetune")
    assert "--break-lease" not in str(exc.value) and "mixsig finetune" in str(exc.value)
    with pytest.raises(LeaseHeld) as exc:
        store.writer(key)  # no command given: no option named
    assert "--break-lease" not in str(exc.value)
    with pytest.raises(LeaseHeld, match=r"rerun `mixsig extract` with --break-lease"):
        store.writer(key, command="mixsig extract")


def test_full_disk_on_a_lease_file_is_one_store_error(store, tmp_path, monkeypatch):
    key = store.create_key(prov(), D, chunk_rows=16)
    real_open, real_write = os.open, os.write
    fds = set()

    def spy_open(path, flags, *a, **kw):
        fd = real_open(path, flags, *a, **kw)
        if "shard-" in str(path):
            fds.add(fd)
        return fd

    def full_write(fd, data):
        if fd in fds:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "write", full_write)
    with pytest.raises(StoreError, match=r"writing lease file .*shard-0-of-1.json failed \(ENOSPC: .*free space"):
        store.writer(key)
    monkeypatch.undo()
    assert not list((tmp_path / "store.zarr" / ".mixsig" / "leases" / key).glob("*"))  # no lock, no lease left
    fill_key(store, key)
    assert store.read_array(key, "done").all()


def test_format_2_store_missing_ledger_digests_or_crc_is_a_finding_not_clean(store, tmp_path, capsys):
    """What a format-1 store lacks (crc32c codec, digests, the ledger) is a finding on a format-2 store; --fix makes
    a new ledger and unmarks the key's rows, which the next extraction recomputes."""
    import json

    import zarr

    from mixsig.cli import main

    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    root = tmp_path / "store.zarr"
    g = zarr.open_group(str(root), mode="r+")
    label = g["samples/label"][...]
    del g["samples/label"]  # rewritten by another tool: no crc32c
    g["samples"].create_array("label", shape=label.shape, dtype=label.dtype, chunks=label.shape)[...] = label
    meta = json.loads((root / "samples" / "split" / "zarr.json").read_text())
    del meta["attributes"]["mixsig_crc32c"]  # its digests removed
    (root / "samples" / "split" / "zarr.json").write_text(json.dumps(meta))
    shutil.rmtree(root / "features" / key / "digests")  # the key's ledger removed
    rep = verify_store(open_store(root))
    assert not rep.ok and rep.unchecked == []
    assert sorted((f.kind, f.where) for f in rep.findings) == [
        ("digest_missing", f"features/{key}/digests"), ("digest_missing", "samples/split"),
        ("unchecked_array", "samples/label")]
    assert main(["cache", "verify", str(root)]) == 1
    assert "no digest ledger" in capsys.readouterr().out
    verify_store(open_store(root, "r+"), keys=[key], fix=True)
    s = open_store(root, "r+")
    assert not s.read_array(key, "done").any()  # every row pending: recomputed with digests
    fill_key(s, key)
    again = verify_store(open_store(root), keys=[key])
    assert again.ok, again.to_dict()
    np.testing.assert_array_equal(open_store(root).read(key).X, row_values(range(50)))


def test_verify_fix_leaves_a_key_a_live_writer_holds(store, tmp_path, capsys):
    """A chunk that looks misplaced while another live process holds the key's lease (its write window) is
    reported, but --fix deletes nothing and unmarks nothing; once the lease is gone, --fix repairs it."""
    from mixsig.cli import main

    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    root = tmp_path / "store.zarr"
    emb = root / "features" / key / "embedding" / "c"
    shutil.copyfile(emb / "1" / "0", emb / "2" / "0")  # what a reader sees mid-rewrite of chunk 2
    lease = _foreign_lease(root, key)
    files = {p: p.read_bytes() for p in (root / "features" / key).rglob("*") if p.is_file()}
    assert main(["cache", "verify", str(root), "--fix"]) == 1
    out = capsys.readouterr().out
    assert f"is being written by pid {os.getppid()}" in out and "left key" in out and "--break-lease" not in out
    assert {p: p.read_bytes() for p in (root / "features" / key).rglob("*") if p.is_file()} == files
    assert open_store(root).read_array(key, "done").all() and lease.exists()
    lease.unlink()  # the writer is gone
    rep = verify_store(open_store(root, "r+"), fix=True)
    assert ("misplaced_chunk", f"features/{key}/embedding/c/2") in [(f.kind, f.where) for f in rep.findings]
    assert np.flatnonzero(~open_store(root).read_array(key, "done")).tolist() == list(range(32, 48))


def test_lost_ledger_entry_with_a_chunk_file_there_is_refused_on_read(store, tmp_path):
    """A ledger chunk deleted (its entry reads 'never begun') and a data chunk copied over that position: the read
    refuses it (it read silently before), whole and partial; verify names it and --fix unmarks the rows."""
    from mixsig.errors import CorruptChunk

    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    kdir = tmp_path / "store.zarr" / "features" / key
    (kdir / "digests" / "c" / "1" / "0").unlink()
    shutil.copyfile(kdir / "embedding" / "c" / "2" / "0", kdir / "embedding" / "c" / "1" / "0")
    s = open_store(tmp_path / "store.zarr")
    for read in (lambda: s.read(key), lambda: s.read(key, rows=[17, 18]), lambda: s.read_array(key, "embedding")):
        with pytest.raises(CorruptChunk, match=r"chunk 1 is a chunk file where none was recorded as written"):
            read()
    np.testing.assert_array_equal(s.read(key, rows=[40, 41]).X, row_values([40, 41]))  # other chunks read
    rep = verify_store(open_store(tmp_path / "store.zarr", "r+"), fix=True)
    assert ("digest_missing", f"features/{key}/digests/c/1") in [(f.kind, f.where) for f in rep.findings]
    again = open_store(tmp_path / "store.zarr")
    assert np.flatnonzero(~again.read_array(key, "done")).tolist() == list(range(16, 32))
    np.testing.assert_array_equal(again.read(key).X, row_values(np.r_[0:16, 32:50]))


def test_readers_racing_a_writer_that_rewrites_a_chunk_see_no_false_errors(store, tmp_path, monkeypatch):
    """One thread rewrites row-chunk 1 in a loop (invalidate, write again: what retried rows, --refresh-stale and
    update_samples do); another reads the key the ways extraction and training do for ~1 s: no error, and every
    row it gets holds one of the values written for it."""
    import threading
    import time

    from mixsig.cache import Status

    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    path = tmp_path / "store.zarr"
    stop, errors, rewrites = threading.Event(), [], [0]

    def rewrite():
        s = open_store(path, "r+")
        try:
            with s.writer(key, fsync=False) as w:
                while not stop.is_set():
                    w.invalidate(range(16, 32))
                    msgs = [f"row {r} failed" if r == 20 and rewrites[0] % 2 else "" for r in range(16, 32)]
                    st = np.array([Status.DECODE_ERROR if m else Status.OK for m in msgs], np.int8)
                    scale = 1 + rewrites[0] % 2  # new bytes (and CRCs) each time
                    w.write_block(16, 32, row_values(range(16, 32)) * scale, st, msgs,
                                  [f"{r:016x}" for r in range(16, 32)])
                    rewrites[0] += 1
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(f"writer: {exc}")

    import sys

    main_thread, real_open = threading.current_thread(), os.open

    def slow_disk(p, *a, **kw):  # the reader's data chunk files open slowly (a busy disk): its reads of the
        if threading.current_thread() is main_thread and "/digests/" not in str(p):  # ledger and data drift apart
            time.sleep(0.002)
        return real_open(p, *a, **kw)

    monkeypatch.setattr(os, "open", slow_disk)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads interleave between any two reads, as processes do
    t = threading.Thread(target=rewrite)
    t.start()
    reader = open_store(path)
    reads, t0 = 0, time.monotonic()
    try:
        while time.monotonic() - t0 < 1.0 and not errors:
            try:
                for v in (reader.read(key), reader.read(key, rows=[17, 20, 40])):
                    want = row_values(v.rows)
                    assert ((v.X == want) | (v.X == 2 * want)).all()
                reader.read_array(key, "message")
                reader.stale_rows(key)
                reads += 1
            except Exception as exc:
                errors.append(f"reader: {type(exc).__name__}: {exc}")
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(switch)
        monkeypatch.undo()
    print(f"{reads} reads, {rewrites[0]} rewrites")
    assert not errors, errors[:3]
    assert reads >= 2 and rewrites[0] >= 2, (reads, rewrites)
    assert verify_store(open_store(path)).ok


def test_partial_read_of_few_chunks_opens_only_their_ledger_and_done_files(tmp_path, monkeypatch):
    """A partial read touching 2 of 32 row-chunks reads 2 ledger entries and 2 done chunks, not all 32 of each
    (every one is a small file); the rows and their checks are the same."""
    from mixsig.cache import Status

    store = create_store(tmp_path / "big.zarr", make_samples(512))
    key = store.create_key(prov(), D, chunk_rows=16)
    with store.writer(key, fsync=False) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, row_values(range(lo, hi)), np.full(hi - lo, Status.OK, np.int8))
    real_open, opened = os.open, []

    def counting(p, *a, **kw):
        opened.append(str(p))
        return real_open(p, *a, **kw)

    monkeypatch.setattr(os, "open", counting)
    v = store.read(key, rows=[17, 18, 300])
    monkeypatch.undo()
    np.testing.assert_array_equal(v.X, row_values([17, 18, 300]))
    for array in ("digests", "done", "embedding"):
        got = sorted(p.split("/c/")[1] for p in opened if f"/{array}/c/" in p)
        assert got == (["1/0", "18/0"] if array != "done" else ["1", "18"]), (array, got)


def test_full_disk_during_a_non_local_samples_update_is_refused_until_rerun(tmp_path, monkeypatch):
    """A store that is not a local folder is rewritten in place under the store attr samples_updating: after an
    ENOSPC the table is refused (not read half-new), and the rerun completes the update."""
    import fsspec
    from zarr.storage import FsspecStore

    fs, base = fsspec.filesystem("memory"), f"/{tmp_path.name}/store.zarr"
    url = f"memory://{base}"
    try:
        store = create_store(url, make_samples())
        key = store.create_key(prov(), D, chunk_rows=16)
        fill_key(store, key)
        real_set = FsspecStore.set

        async def full(self, k, value, *a, **kw):
            if k.endswith("samples/label/c/0"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return await real_set(self, k, value, *a, **kw)

        monkeypatch.setattr(FsspecStore, "set", full)
        with pytest.raises(StoreError, match=r"failed .*No space left.*refused until the update completes"):
            update_samples(store, _changed())
        monkeypatch.setattr(FsspecStore, "set", real_set)
        with pytest.raises(StoreError, match=r"being updated, or an update was interrupted.*--update-samples"):
            open_store(url).samples
        res = update_samples(open_store(url, "r+"), _changed())
        again = open_store(url)
        assert "samples_updating" not in again.attrs and again.samples.label[3] == 1 - make_samples().label[3]
        assert res.split_hash_after == _changed().split_hash() and verify_store(again).ok
        assert not again.read_array(key, "done")[7]  # the changed text row stays pending
    finally:
        fs.rm(f"/{tmp_path.name}", recursive=True)


def test_full_disk_during_verify_fix_is_one_error(store, tmp_path, monkeypatch, capsys):
    import zarr.storage._local as local

    from mixsig.cli import main

    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    root = tmp_path / "store.zarr"
    emb = root / "features" / key / "embedding" / "c"
    shutil.copyfile(emb / "1" / "0", emb / "2" / "0")
    put = local._put

    def full_disk(path, value, exclusive=False):
        if "digests" in path.parts:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return put(path, value, exclusive)

    monkeypatch.setattr(local, "_put", full_disk)
    assert main(["cache", "verify", str(root), "--fix"]) == 1
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"verify --fix` of key {key} failed writing" in err and "free space and rerun" in err
    assert not list((root / ".mixsig" / "leases" / key).glob("shard-*"))  # its lease was released
    verify_store(open_store(root, "r+"), fix=True)  # disk freed: the rerun repairs it
    assert verify_store(open_store(root)).ok
