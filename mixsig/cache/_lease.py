"""Writer leases: a second, uncoordinated writer on the same key fails fast, naming the holder.

Leases are small JSON files under ``<store>/.mixsig/leases/<key>/`` (in the folder of the empty array
``.mixsig``, which zarr never lists: :func:`~mixsig.cache._dims.state_dir`). A lease
names a shard ``(i, n)``; two leases conflict unless both are shards of the same ``n`` with different ``i``
(those write disjoint chunk-aligned row blocks). A lease whose process is gone (same host, pid not alive) is
stale and taken over with a warning, so a killed extraction can simply be rerun. Only local stores have leases.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import time
from pathlib import Path

from mixsig.cache._dims import STATE_DIR, state_dir
from mixsig.errors import LeaseHeld, StoreError

log = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:  # no process: -1 is "unknown" (os.kill(-1, 0) would signal every process we may signal)
        return False
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


def _read_info(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def disk_error(path, exc: OSError, what: str = "writing") -> StoreError:
    """The one-line :class:`StoreError` for an OSError (a full disk, no permission) while ``what`` ``path``."""
    name = os.strerror(exc.errno) if exc.errno else str(exc)
    code = f"{errno.errorcode.get(exc.errno, '')}: " if exc.errno else ""
    return StoreError(f"{what} {path} failed ({code}{name}); free space (or fix the folder's permissions) and rerun")


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (O_EXCL: FileExistsError when it exists) holding ``data``; on an OSError nothing is left."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        os.write(fd, data)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


@contextlib.contextmanager
def _mutex(path: Path, timeout: float = 30.0, what: str | None = None, log_every: float = 10.0):
    """A tiny cross-process mutex made of an O_EXCL file (stale ones are broken). A wait is logged (``what`` it
    waits for, the holder, every ``log_every`` s), never silent; past ``timeout`` s :class:`LeaseHeld`."""
    if path.parent.parent.name == STATE_DIR:  # <store>/.mixsig/locks/<name>: keep .mixsig/ hidden from zarr
        state_dir(path.parent.parent.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(path.parent, exc, "creating lock folder") from exc
    t0 = time.monotonic()
    next_log = t0
    while True:
        try:
            _write_new(path, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
            break
        except FileExistsError:
            info = _read_info(path)
            if not info and _older_than(path, 10.0):  # its creator died between creating and writing it
                log.info("breaking lock %s: empty and older than 10 s (its creator died before writing it)", path)
                path.unlink(missing_ok=True)
                continue
            if info and holder_is_stale(info):
                log.info("breaking lock %s left by pid %s, which is gone", path, info.get("pid"))
                path.unlink(missing_ok=True)
                continue
            now = time.monotonic()
            if now - t0 > timeout:
                raise LeaseHeld(f"timed out after {timeout:.0f} s waiting for lock {path} (held by pid "
                                f"{info.get('pid')} on host {info.get('host')}); if no mixsig process runs there, "
                                "delete the lock file and rerun") from None
            if now >= next_log:
                log.info("waiting for %s: lock %s is held by pid %s on host %s (%.0f s so far)",
                         what or "a lock", path, info.get("pid"), info.get("host"), now - t0)
                next_log = now + log_every
            time.sleep(0.05)
        except OSError as exc:
            raise disk_error(path, exc, "writing lock file") from exc
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _conflict(shard: tuple[int, int], other: tuple[int, int]) -> bool:
    """Two shards conflict unless both are shards of the same ``n > 1`` with different indices."""
    (i, n), (j, m) = shard, other
    return not (n == m and n > 1 and i != j)


def held_leases(root: Path, key: str, shard: tuple[int, int] = (0, 1)) -> list[tuple[Path, dict]]:
    """The leases on ``key`` that conflict with ``shard`` and whose holder is alive (or on another host):
    ``[(lease file, holder info)]``. Reads files only; takes nothing."""
    out = []
    for f in sorted((Path(root) / ".mixsig" / "leases" / key).glob("shard-*.json")):
        info = _read_info(f)
        if not info or holder_is_stale(info) or not _conflict(tuple(shard), tuple(info.get("shard", (0, 1)))):
            continue
        if info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
            continue
        out.append((f, info))
    return out


def leased_keys(root: Path) -> list[str]:
    """Keys that have a lease folder under ``root`` (held or not)."""
    d = Path(root) / ".mixsig" / "leases"
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def check_lease_free(root: Path, key: str, shard: tuple[int, int] = (0, 1), command: str | None = None) -> None:
    """Raise :class:`LeaseHeld` (naming the holder and the fixes) when another live writer holds a lease on ``key``
    that conflicts with ``shard``; reads the lease files only (takes nothing). For a refusal before expensive work.
    ``command``: the command refused (``"mixsig extract"``), so that the message names only fixes it has."""
    held = held_leases(root, key, shard)
    if held:
        raise LeaseHeld(describe_held(key, *held[0], command=command))


def describe_held(key: str, lease_file: Path, info: dict, command: str | None = None) -> str:
    """The refusal for a key another writer holds: who, since when, and the fixes that exist. ``--shard`` and
    ``--break-lease`` are suggested only for ``command`` ``"mixsig extract"`` (the command that has them)."""
    other = tuple(info.get("shard", (0, 1)))
    head = (f"key {key} is being written by pid {info.get('pid')} on host {info.get('host')} "
            f"(shard {other[0]}/{other[1]}, since {info.get('started')}); lease file {lease_file}. ")
    if command and command.split()[-1] == "extract":
        return head + ("Wait for it to finish, run disjoint shards with --shard I/N, or, only if that process is "
                       "gone (e.g. it died on another host), rerun `mixsig extract` with --break-lease (or delete "
                       "the lease file).")
    rerun = f"rerun `{command}`" if command else "rerun"
    return head + ("Wait for it to finish, or, only if that process is gone (e.g. it died on another host), delete "
                   f"the lease file and {rerun}.")


class Lease:
    """A held lease on shard ``(index, count)`` of a key. Use as a context manager or call ``release()``."""

    def __init__(self, root: Path, key: str, shard: tuple[int, int], break_lease: bool = False,
                 command: str | None = None):
        self.dir = state_dir(root) / "leases" / key
        self.key = key
        self.shard = shard
        self.command = command
        self.path = self.dir / f"shard-{shard[0]}-of-{shard[1]}.json"
        self._acquire(break_lease)

    def _acquire(self, break_lease: bool) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise disk_error(self.dir, exc, "creating lease folder") from exc
        with _mutex(self.dir / ".mutex", what=f"the lease table of key {self.key}"):
            for f in sorted(self.dir.glob("shard-*.json")):
                info = _read_info(f)
                other = tuple(info.get("shard", (0, 1)))
                if not _conflict(self.shard, other):
                    continue
                if break_lease or not info or holder_is_stale(info):
                    log.warning("taking over %s lease on %s held by pid %s on %s (%s)",
                                "a" if break_lease and info and not holder_is_stale(info) else "a stale",
                                self.key, info.get("pid"), info.get("host"), f.name)
                    f.unlink(missing_ok=True)
                    continue
                raise LeaseHeld(describe_held(self.key, f, info, command=self.command))
            info = {"host": socket.gethostname(), "pid": os.getpid(), "shard": list(self.shard),
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            try:
                self.path.unlink(missing_ok=True)
                _write_new(self.path, json.dumps(info).encode())
            except OSError as exc:
                raise disk_error(self.path, exc, "writing lease file") from exc

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
