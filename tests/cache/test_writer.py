import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mixsig.cache import Status, create_store, open_store, verify_store
from mixsig.errors import LeaseHeld, StoreError
from tests.cache.helpers import D, fill_key, make_samples, prov, row_values

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from mixsig.cache import open_store, Status
    from tests.cache.helpers import prov, row_values, D
    store = open_store(sys.argv[1], mode="r+")
    key = store.create_key(prov(), D, chunk_rows=8)
    delay = float(sys.argv[2])
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, row_values(range(lo, hi)), np.full(hi - lo, Status.OK),
                          input_hash=[f"{r:016x}" for r in range(lo, hi)])
            time.sleep(delay)
    print("finished")
""")


def _run_writer(path, delay, **kw):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(delay)], env=env, **kw)


def test_sigkill_mid_write_then_resume_equals_uninterrupted_run(tmp_path):
    ref_path, path = tmp_path / "ref.zarr", tmp_path / "killed.zarr"
    create_store(ref_path, make_samples(60))
    create_store(path, make_samples(60))
    assert _run_writer(ref_path, 0).wait(timeout=120) == 0

    proc = _run_writer(path, 0.3)
    key = prov().key()
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once some but not all chunks are done
        try:
            done = open_store(path).read_array(key, "done").sum()
        except Exception:
            done = 0
        if 16 <= done < 60:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = open_store(path).read_array(key, "done")
    assert 0 < partial.sum() < 60, "the writer must be killed mid-run"

    assert _run_writer(path, 0).wait(timeout=120) == 0  # resume: stale lease of the dead pid is taken over
    ref, got = open_store(ref_path), open_store(path)
    for name in ("embedding", "done", "status", "message", "input_hash"):
        a, b = ref.read_array(key, name), got.read_array(key, name)
        if a.dtype.kind in "fiub":
            assert a.tobytes() == b.tobytes(), name  # bit for bit
        else:
            assert a.tolist() == b.tolist(), name
    assert verify_store(got).ok


def test_second_uncoordinated_writer_fails_fast_naming_the_holder(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    with store.writer(key):
        with pytest.raises(LeaseHeld, match=f"pid {os.getpid()}"):
            store.writer(key)
        with pytest.raises(LeaseHeld):
            store.writer(key, shard=(0, 2))
    with store.writer(key, shard=(0, 2)), store.writer(key, shard=(1, 2)):
        pass  # disjoint shards may write at once
    with store.writer(key, shard=(0, 2)):
        with pytest.raises(LeaseHeld):
            store.writer(key, shard=(0, 2))


def test_shards_are_disjoint_chunk_aligned_and_equal_one_writer(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=8)
    seen = []
    for i in range(3):
        with store.writer(key, shard=(i, 3)) as w:
            lo, hi = w.row_range
            assert lo % 8 == 0
            seen.extend(range(lo, hi))
            for a, b in w.blocks():
                w.write_block(a, b, row_values(range(a, b)), np.full(b - a, Status.OK))
    assert seen == list(range(50))
    np.testing.assert_array_equal(store.read(key).X, row_values(range(50)))


def test_unaligned_or_foreign_blocks_are_refused_before_writing(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    with store.writer(key, shard=(0, 2)) as w:
        with pytest.raises(StoreError, match="not aligned"):
            w.write_block(4, 20, np.zeros((16, D)), np.ones(16))
        with pytest.raises(StoreError, match="outside shard"):
            w.write_block(32, 48, np.zeros((16, D)), np.ones(16))
    assert not store.read_array(key, "done").any()
    assert np.isnan(store.read_array(key, "embedding")).all()


def test_done_rows_keep_their_bytes_and_failed_rows_are_retried(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key, rows_fail=[3, 20])
    before = store.read_array(key, "embedding")
    with store.writer(key) as w:
        assert w.pending_rows().tolist() == [3, 20]
        assert w.blocks() == [(0, 16), (16, 32)]
        for lo, hi in w.blocks():  # pass garbage for done rows: it must be ignored
            w.write_block(lo, hi, np.full((hi - lo, D), 7.0), np.full(hi - lo, Status.OK))
    after = store.read_array(key, "embedding")
    mask = np.ones(50, bool)
    mask[[3, 20]] = False
    assert after[mask].tobytes() == before[mask].tobytes()
    assert (after[[3, 20]] == 7.0).all() and store.read_array(key, "done").all()


def test_nonfinite_rows_are_never_marked_done(store):
    key = store.create_key(prov(dtype="float16"), D, chunk_rows=16)
    x = row_values(range(50))
    x[2, 0] = np.nan
    x[5, 1] = 1e6  # overflows float16
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, x[lo:hi], np.full(hi - lo, Status.OK))
    status = store.read_array(key, "status")
    assert status[2] == Status.NONFINITE and status[5] == Status.NONFINITE
    assert not store.read_array(key, "done")[[2, 5]].any()
    assert "float16" in store.read_array(key, "message")[5]


def test_disk_full_marks_nothing_done_and_rerun_succeeds(store, monkeypatch):
    from zarr.storage import LocalStore

    key = store.create_key(prov(), D, chunk_rows=16)
    real_set = LocalStore.set

    async def full(self, k, value, *a, **kw):
        if "/embedding/c/1" in k:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await real_set(self, k, value, *a, **kw)

    monkeypatch.setattr(LocalStore, "set", full)
    with pytest.raises(StoreError, match=r"rows \[16, 32\).*none of them were marked done"):
        fill_key(store, key)
    monkeypatch.setattr(LocalStore, "set", real_set)
    done = store.read_array(key, "done")
    assert done[:16].all() and not done[16:].any()
    fill_key(store, key)
    np.testing.assert_array_equal(store.read(key).X, row_values(range(50)))


def test_invalidate_stale_rows(store):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    assert store.stale_rows(key).tolist() == []
    changed = store.samples.content_hash["text"].copy()
    changed[[4, 33]] = "ffffffffffffffff"
    stale = store.stale_rows(key, changed)
    assert stale.tolist() == [4, 33]
    with store.writer(key) as w:
        w.invalidate(stale)
        assert w.pending_rows().tolist() == [4, 33]
