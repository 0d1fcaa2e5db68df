"""Writer leases: a second, uncoordinated writer on the same key fails fast, naming the holder.

Leases are small JSON files under ``<store>/.mixsig/leases/<key>/`` (outside the Zarr hierarchy). A lease
names a shard ``(i, n)``; two leases conflict unless both are shards of the same ``n`` with different ``i``
(those write disjoint chunk-aligned row blocks). A lease whose process is gone (same host, pid not alive) is
stale and taken over with a warning, so a killed extraction can simply be rerun. Only local stores have leases.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path

from mixsig.errors import LeaseHeld

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_is_stale(info: dict) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    return info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1)))


@contextlib.contextmanager
def _mutex(path: Path, timeout: float = 30.0):
    """A tiny cross-process mutex made of an O_EXCL file (stale ones are broken)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
            os.close(fd)
            break
        except FileExistsError:
            try:
                info = json.loads(path.read_text() or "{}")
            except (OSError, ValueError):
                info = {}
            if info and holder_is_stale(info):
                path.unlink(missing_ok=True)
                continue
            if time.monotonic() > deadline:
                raise LeaseHeld(f"timed out waiting for lock {path}; if no mixsig process runs, delete it")
            time.sleep(0.05)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


class Lease:
    """A held lease on shard ``(index, count)`` of a key. Use as a context manager or call ``release()``."""

    def __init__(self, root: Path, key: str, shard: tuple[int, int], break_lease: bool = False):
        self.dir = Path(root) / ".mixsig" / "leases" / key
        self.key = key
        self.shard = shard
        self.path = self.dir / f"shard-{shard[0]}-of-{shard[1]}.json"
        self._acquire(break_lease)

    def _conflicts(self, other: tuple[int, int]) -> bool:
        (i, n), (j, m) = self.shard, other
        return not (n == m and n > 1 and i != j)

    def _acquire(self, break_lease: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with _mutex(self.dir / ".mutex"):
            for f in sorted(self.dir.glob("shard-*.json")):
                try:
                    info = json.loads(f.read_text())
                except (OSError, ValueError):
                    info = {}
                other = tuple(info.get("shard", (0, 1)))
                if not self._conflicts(other):
                    continue
                if break_lease or not info or holder_is_stale(info):
                    log.warning("taking over stale lease on %s held by pid %s on %s (%s)",
                                self.key, info.get("pid"), info.get("host"), f.name)
                    f.unlink(missing_ok=True)
                    continue
                raise LeaseHeld(
                    f"key {self.key} is being written by pid {info.get('pid')} on host {info.get('host')} "
                    f"(shard {other[0]}/{other[1]}, since {info.get('started')}); lease file {f}. "
                    "Wait for it to finish, run disjoint shards with --shard I/N, or, if that process is gone, "
                    "delete the lease file (or pass --break-lease)."
                )
            info = {"host": socket.gethostname(), "pid": os.getpid(), "shard": list(self.shard),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self.path.write_text(json.dumps(info))

    def check(self) -> None:
        """Raise if the lease was taken away (someone broke it)."""
        try:
            info = json.loads(self.path.read_text())
        except (OSError, ValueError):
            info = {}
        if info.get("pid") != os.getpid() or info.get("host") != socket.gethostname():
            raise LeaseHeld(f"lost the lease on {self.key} ({self.path}); another writer broke it. Stopping.")

    def release(self) -> None:
        with contextlib.suppress(OSError):
            info = json.loads(self.path.read_text())
            if info.get("pid") == os.getpid():
                self.path.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
