"""Stores on S3-compatible object storage (a local moto server): conditional writes, leases as objects with a
heartbeat, atomic creation by upload, and writes equal to a local store's bit for bit."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from mixsig.cache import Status, create_store, open_store, store_state, verify_store
from mixsig.errors import LeaseHeld, StoreError
from tests.cache.helpers import D, fill_key, make_samples, prov
from tests.s3server import s3_server

ARRAYS = ("embedding", "done", "status", "message", "input_hash", "digests")


@pytest.fixture(scope="module")
def bucket():
    with s3_server() as (url, _env):
        yield url


@pytest.fixture(scope="module")
def s3_key(bucket):
    """A store on S3 with one key, nothing written: (store url, key), for the lease tests."""
    url = f"{bucket}/leased.zarr"
    store = create_store(url, make_samples())
    return url, store.create_key(prov(), D, chunk_rows=16)


@pytest.fixture(scope="module")
def filled_key(bucket):
    """A store on S3 with one key written by one writer (row 20 failed): (store url, key)."""
    url = f"{bucket}/written.zarr"
    store = create_store(url, make_samples())
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key, rows_fail=(20,))
    return url, key


def _fs():
    import s3fs

    return s3fs.S3FileSystem()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _lease_obj(url, key, shard=(0, 1)):
    return f"{url.removeprefix('s3://')}/.mixsig/leases/{key}/shard-{shard[0]}-of-{shard[1]}.json"


def test_conditional_writes_exclusive_create_and_compare_and_swap(bucket):
    from mixsig.cache._remote import delete_if_match, filesystem, put_if_match, put_new

    fs, path = filesystem(f"{bucket}/cas/obj.json")
    first = put_new(fs, path, b"a")
    assert first is not None and put_new(fs, path, b"b") is None  # If-None-Match: * lets one creator win
    second = put_if_match(fs, path, b"c", first)
    assert second is not None and second != first and fs.cat_file(path) == b"c"
    assert put_if_match(fs, path, b"d", first) is None and fs.cat_file(path) == b"c"  # stale ETag: refused
    assert delete_if_match(fs, path, first) is False and fs.exists(path)
    assert delete_if_match(fs, path, second) is True and not fs.exists(path)


@pytest.mark.slow
def test_store_on_s3_equals_local_store_bit_for_bit(filled_key, tmp_path):
    url, key = filled_key
    local = create_store(tmp_path / "local.zarr", make_samples())
    assert local.create_key(prov(), D, chunk_rows=16) == key
    fill_key(local, key, rows_fail=(20,))
    remote = open_store(url)
    assert remote.local_path is None
    for name in ARRAYS:
        a, b = remote.read_array(key, name), local.read_array(key, name)
        assert a.shape == b.shape, name
        if b.dtype.kind in "fbiu":
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
        else:
            assert a.tolist() == b.tolist(), name
    # every chunk object is the local chunk file, byte for byte
    fs, base = _fs(), f"{url.removeprefix('s3://')}/features/{key}"
    objects = [p for p in fs.find(base) if "/c/" in p]
    assert len(objects) > 10
    for p in objects:
        assert fs.cat_file(p) == (tmp_path / "local.zarr" / "features" / key / p[len(base) + 1:]).read_bytes(), p
    assert remote.read(key).excluded == 1 and verify_store(remote).ok


def test_second_writer_on_a_held_key_is_refused_naming_the_holder(s3_key):
    url, key = s3_key
    store = open_store(url, "r+")
    with store.writer(key, shard=(0, 2)):
        with store.writer(key, shard=(1, 2)):  # disjoint shards: both held at once
            with pytest.raises(LeaseHeld, match=rf"key {key} is being written by pid \d+ on host .*shard 0/2.*"
                                                r"--break-lease.*last heartbeat was \d+ s ago"):
                store.writer(key, command="mixsig extract")
    with store.writer(key):  # both released: the lease objects are gone
        pass
    assert not _fs().exists(_lease_obj(url, key, (0, 2)))


def test_stale_leases_are_taken_over_fresh_ones_on_other_hosts_are_not(s3_key, caplog):
    url, key = s3_key
    fs, obj = _fs(), _lease_obj(url, key)
    store = open_store(url, "r+")
    now = time.time()
    dead_here = {"host": socket.gethostname(), "pid": _dead_pid(), "shard": [0, 1], "heartbeat": now, "ttl": 120}
    fs.pipe_file(obj, json.dumps(dead_here).encode())
    with caplog.at_level(logging.WARNING), store.writer(key):  # killed on this host: taken over at once
        pass
    assert "taking over a stale lease" in caplog.text
    elsewhere = {"host": "other-node", "pid": 7, "shard": [0, 1], "heartbeat": now, "ttl": 120}
    fs.pipe_file(obj, json.dumps(elsewhere).encode())
    with pytest.raises(LeaseHeld, match=r"pid 7 on host other-node"):
        store.writer(key)
    fs.pipe_file(obj, json.dumps(dict(elsewhere, heartbeat=now - 121)).encode())  # silent for longer than its TTL
    with store.writer(key):
        pass
    fs.pipe_file(obj, json.dumps(elsewhere).encode())
    with store.writer(key, break_lease=True):  # alive elsewhere, broken on purpose
        pass


def test_broken_lease_stops_its_writer_and_heartbeat_refreshes(s3_key, monkeypatch):
    url, key = s3_key
    monkeypatch.setenv("MIXSIG_LEASE_TTL", "4")  # a heartbeat every second
    store = open_store(url, "r+")
    fs, obj = _fs(), _lease_obj(url, key)
    w = store.writer(key)
    try:
        first = json.loads(fs.cat_file(obj))["heartbeat"]
        deadline = time.monotonic() + 15  # a refresh is due after ~1 s; a loaded machine may delay the thread
        while json.loads(fs.cat_file(obj))["heartbeat"] <= first and time.monotonic() < deadline:
            time.sleep(0.2)
        assert json.loads(fs.cat_file(obj))["heartbeat"] > first
        thief = store.writer(key, break_lease=True)
        with pytest.raises(LeaseHeld, match=rf"lost the lease on {key}"):
            w.write_block(0, 16, np.zeros((16, D), np.float32), np.full(16, Status.OK, np.int8))
        thief.close()
    finally:
        w.close()


def test_half_made_upload_is_replaced_and_foreign_data_refused(bucket):
    fs = _fs()
    url = f"{bucket}/half.zarr"
    base = url.removeprefix("s3://")
    fs.pipe_file(f"{base}/samples/zarr.json", b"{}")  # an upload killed before the root zarr.json
    assert store_state(url) == "half-made"
    store = create_store(url, make_samples(n=20))
    assert store_state(url) == "store" and len(open_store(url)) == 20
    with pytest.raises(StoreError, match=r"a store exists at"):
        create_store(url, make_samples(n=20))
    other = f"{bucket}/foreign"
    fs.pipe_file(f"{other.removeprefix('s3://')}/data.csv", b"a,b\n")
    assert store_state(other) == "other"
    with pytest.raises(StoreError, match=r"already holds data that is not a mixsig store; choose another path"):
        create_store(other, make_samples(n=20))
    assert fs.cat_file(f"{other.removeprefix('s3://')}/data.csv") == b"a,b\n"


@pytest.mark.slow
def test_misplaced_chunk_on_s3_is_found_by_verify(filled_key):
    url, key = filled_key
    fs, chunks = _fs(), f"{url.removeprefix('s3://')}/features/{key}/embedding/c"
    original = fs.cat_file(f"{chunks}/2/0")
    fs.pipe_file(f"{chunks}/2/0", fs.cat_file(f"{chunks}/1/0"))  # a valid chunk copied over another
    try:
        kinds = [(p.kind, p.where) for p in verify_store(open_store(url)).findings]
        assert kinds == [("misplaced_chunk", f"features/{key}/embedding/c/2")]
    finally:
        fs.pipe_file(f"{chunks}/2/0", original)
    assert verify_store(open_store(url)).ok
