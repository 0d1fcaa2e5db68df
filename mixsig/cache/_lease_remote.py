"""Writer leases and locks for stores on object storage (``s3://...``), where there is no local file to hold.

A lease is a JSON object ``<store>/.mixsig/leases/<key>/shard-<i>-of-<n>.json`` naming its holder (host, pid, a
random holder id), the shard and a heartbeat time. The holder refreshes it every ``ttl / 4`` s from a background
thread, each refresh a conditional write on the ETag it last wrote (``If-Match``): once another writer took the
lease over, the refresh fails and the holder stops at its next block (:meth:`RemoteLease.check`).

A conflicting lease is *stale*, and taken over with a warning, when its holder ran on this host and its process is
gone (a killed extraction rerun on the same machine takes over at once), or when its heartbeat is older than its
``ttl`` (:data:`LEASE_TTL` s, ``MIXSIG_LEASE_TTL`` to change it). Clock assumption: the machines sharing a store
keep their clocks within a few seconds of each other (NTP), far below the TTL; a holder whose clock runs behind
by more than ``ttl`` looks stale to the others.

The lease table of a key is changed under a lock, ``.../<key>/.mutex``, created with ``If-None-Match: *`` (one
creator wins) and broken when its holder is gone or it is older than :data:`LOCK_TTL` s (it is held for a few
requests). The same lock serialises key creation (``.mixsig/locks/create-<key>``) and store creation
(``.<name>.create.lock`` beside the store).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid

from mixsig.cache._lease import _conflict, holder_is_stale
from mixsig.cache._remote import delete_if_match, filesystem, join, list_prefix, put_if_match, put_new, read_object
from mixsig.errors import LeaseHeld, StoreError

log = logging.getLogger(__name__)

#: Seconds after its last heartbeat when a lease of a holder on another host counts as stale.
LEASE_TTL = 120.0
#: Seconds after which a lock object (held for a few requests only) counts as stale.
LOCK_TTL = 30.0


def lease_ttl() -> float:
    raw = os.environ.get("MIXSIG_LEASE_TTL")
    if not raw:
        return LEASE_TTL
    try:
        ttl = float(raw)
    except ValueError:
        raise StoreError(f"MIXSIG_LEASE_TTL={raw!r} is not a number of seconds; set it to e.g. 120") from None
    if ttl < 4:
        raise StoreError(f"MIXSIG_LEASE_TTL={raw!r} is below 4 s (the heartbeat runs every TTL/4); set e.g. 120")
    return ttl


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _loads(data: bytes | None) -> dict:
    try:
        return json.loads(data or b"{}")
    except ValueError:
        return {}


def is_stale(info: dict, now: float | None = None) -> bool:
    """True when the holder of lease or lock ``info`` is gone: same host and dead pid, or no heartbeat for its TTL."""
    if not info:
        return True
    if holder_is_stale(info):
        return True
    beat, ttl = info.get("heartbeat"), info.get("ttl")
    return beat is None or ttl is None or (now or time.time()) - float(beat) > float(ttl)


@contextlib.contextmanager
def remote_mutex(url: str, timeout: float = 60.0, what: str | None = None, log_every: float = 10.0):
    """A cross-machine mutex made of object ``url`` (created with ``If-None-Match: *``); stale ones are broken
    (:func:`is_stale`, TTL :data:`LOCK_TTL`). Waits are logged; past ``timeout`` s :class:`LeaseHeld`."""
    fs, path = filesystem(url)
    t0 = next_log = time.monotonic()
    while True:
        mine = dict(_me(), heartbeat=time.time(), ttl=LOCK_TTL, holder=uuid.uuid4().hex)
        etag = put_new(fs, path, json.dumps(mine).encode())
        if etag is not None:
            break
        data, other = read_object(fs, path)
        info = _loads(data)
        if other is not None and is_stale(info):
            log.info("breaking lock %s left by pid %s on %s (gone, or older than %.0f s)", url, info.get("pid"),
                     info.get("host"), LOCK_TTL)
            delete_if_match(fs, path, other)
            continue
        now = time.monotonic()
        if now - t0 > timeout:
            raise LeaseHeld(f"timed out after {timeout:.0f} s waiting for lock {url} (held by pid {info.get('pid')} "
                            f"on host {info.get('host')}); it is broken by itself {LOCK_TTL:.0f} s after it was "
                            "taken: rerun then") from None
        if now >= next_log:
            log.info("waiting for %s: lock %s is held by pid %s on host %s (%.0f s so far)", what or "a lock", url,
                     info.get("pid"), info.get("host"), now - t0)
            next_log = now + log_every
        time.sleep(0.1)
    try:
        yield
    finally:
        delete_if_match(fs, path, etag)


def lease_dir(store_url: str, key: str) -> str:
    return join(str(store_url), ".mixsig", "leases", key)


class RemoteLease:
    """A held lease on shard ``(index, count)`` of ``key`` of the store at ``store_url`` (an object store), kept
    alive by a heartbeat thread. Same use as :class:`~mixsig.cache._lease.Lease`."""

    def __init__(self, store_url: str, key: str, shard: tuple[int, int], break_lease: bool = False,
                 command: str | None = None, ttl: float | None = None):
        self.key, self.shard, self.command = key, tuple(shard), command
        self.ttl = float(ttl or lease_ttl())
        self.dir = lease_dir(store_url, key)
        self.path = join(self.dir, f"shard-{shard[0]}-of-{shard[1]}.json")
        self.fs, self._obj = filesystem(self.path)
        self.info = dict(_me(), shard=list(self.shard), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         holder=uuid.uuid4().hex, ttl=self.ttl)
        self._etag: str | None = None
        self._lost: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        with remote_mutex(join(self.dir, ".mutex"), what=f"the lease table of key {key}"):
            self._acquire(break_lease)
        self._thread = threading.Thread(target=self._beat_loop, name=f"mixsig-lease-{key}", daemon=True)
        self._thread.start()

    def _acquire(self, break_lease: bool) -> None:
        from mixsig.cache._lease import describe_held

        fs, base = filesystem(self.dir)
        for name in list_prefix(fs, base):
            if not (name.startswith("shard-") and name.endswith(".json")):
                continue
            data, etag = read_object(fs, join(base, name))
            info = _loads(data)
            if data is None or not _conflict(self.shard, tuple(info.get("shard", (0, 1)))):
                continue
            if break_lease or is_stale(info):
                log.warning("taking over %s lease on %s held by pid %s on %s (%s)",
                            "a" if break_lease and not is_stale(info) else "a stale", self.key, info.get("pid"),
                            info.get("host"), name)
                delete_if_match(fs, join(base, name), etag)
                continue
            age = time.time() - float(info.get("heartbeat", 0))
            raise LeaseHeld(describe_held(self.key, join(self.dir, name), info, command=self.command)
                            + f" (Its last heartbeat was {age:.0f} s ago; a holder silent for {info.get('ttl')} s "
                            "is taken over by itself.)")
        self.info["heartbeat"] = time.time()
        self._etag = put_new(self.fs, self._obj, json.dumps(self.info).encode())
        if self._etag is None:
            raise LeaseHeld(f"lost the race for the lease {self.path} on key {self.key}; rerun")

    def _beat(self) -> None:
        with self._lock:
            if self._lost or self._etag is None:
                return
            self.info["heartbeat"] = time.time()
            try:
                etag = put_if_match(self.fs, self._obj, json.dumps(self.info).encode(), self._etag)
            except OSError as exc:  # a network error: try again at the next beat (the TTL leaves 3 more)
                log.warning("lease %s: heartbeat failed (%s); retrying", self.path, exc)
                return
            if etag is None:
                self._lost = f"lost the lease on {self.key} ({self.path}); another writer broke it. Stopping."
            self._etag = etag

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            self._beat()

    def check(self) -> None:
        """Raise :class:`LeaseHeld` if the lease was taken away (someone broke it)."""
        if self._lost:
            raise LeaseHeld(self._lost)
        data, _ = read_object(self.fs, self._obj)
        if _loads(data).get("holder") != self.info["holder"]:
            self._lost = f"lost the lease on {self.key} ({self.path}); another writer broke it. Stopping."
            raise LeaseHeld(self._lost)

    def release(self) -> None:
        self._stop.set()
        with self._lock:
            if self._etag is not None and not self._lost:
                with contextlib.suppress(OSError):
                    delete_if_match(self.fs, self._obj, self._etag)
            self._etag = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
