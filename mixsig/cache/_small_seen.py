"""Small chunk files (``done``, ``status``, the digest ledger) this process has checksummed, kept decoded while
their file is the same file.

Every ``store.read`` reads a key's ``done`` mask and its digest ledger whole: 2 x 79 small files for a 20,000-row
key, ~2.2 ms of a repeat read of 1,700 rows that took ~6 ms (benchmarks/README.md, "Random-row reads"). A file
checked once is kept here with the identity it had when it was read (inode, device, size, modification time, from
``fstat`` of the open file, so the identity belongs to the bytes read); a later read of it costs one ``stat``. It
is the rule the verified embedding chunks already follow (:mod:`mixsig.cache._stream`): zarr writes a chunk to a
new file and renames it into place, so any rewrite is a new inode. The digest recorded for the chunk's position is
still compared with the kept CRC on every read. :func:`mixsig.cache.forget_verified` forgets these too.

A file modified less than :data:`RACY_NS` before it was read is not kept (git's "racily clean" rule): filesystems
reuse a freed inode number at once (ext4 here cycled 3 numbers over 2,000 rewrites of one file), and where file
times are coarse (a clock tick on older kernels, a second on some filesystems) a file rewritten twice within one
tick could come back with the identity of the version that was read. A file older than that has an mtime no later
rewrite can give again. The verified embedding chunks follow the same rule.

Not tested on NFS, whose clients may answer ``stat`` from an attribute cache for a few seconds (``open`` revalidates):
a reader there could use a kept ledger or done mask that long after a writer on another host rewrote it, and see
a false digest mismatch. Mount with ``actimeo=0`` where writers on several hosts share a store folder.
"""

from __future__ import annotations

import os
import threading

#: path -> (identity, CRC, payload bytes)
_SEEN: dict[str, tuple] = {}
#: bytes kept at most (payloads + :data:`OVERHEAD` each); past it everything is forgotten (rebuilt by the next reads)
MAX_BYTES = 32 << 20
#: Python's own bytes per kept file (dict entry, tuples, bytes object; ~520 measured for 48-byte ledger entries)
OVERHEAD = 512
#: a file modified less than this (ns) before it was read is not kept: longer than any filesystem's time step
RACY_NS = 2_000_000_000
_held = [0]
_lock = threading.Lock()


def old_enough(st, at_ns: int) -> bool:
    """The file ``st`` describes was last modified at least :data:`RACY_NS` before ``at_ns`` (``time.time_ns()``
    taken while the file was still open: its inode number cannot be reused before it is closed), so its identity
    can be trusted."""
    return at_ns - st.st_mtime_ns >= RACY_NS


def identity(st) -> tuple:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def recall(path: str) -> tuple[bytes, int] | None:
    """(payload, CRC) of small chunk file ``path`` as this process checked it, if the file is unchanged since;
    else None (the caller reads and checks it, and :func:`keep` s it)."""
    hit = _SEEN.get(path)
    if hit is None:
        return None
    try:
        now = identity(os.stat(path))
    except OSError:
        now = None
    if now != hit[0]:
        with _lock:
            if _SEEN.get(path) is hit:
                del _SEEN[path]
                _held[0] -= len(hit[2]) + OVERHEAD
        return None
    return hit[2], hit[1]


def keep(path: str, st, at_ns: int, crc: int, payload: bytes) -> None:
    """Remember ``payload`` (checked, CRC ``crc``) of ``path`` as read from the file ``fstat`` gave ``st`` for at
    ``at_ns``, before it was closed (unless it was then modified too recently to tell a later version by its
    identity: :data:`RACY_NS`)."""
    with _lock:
        old = _SEEN.pop(path, None)
        if old is not None:
            _held[0] -= len(old[2]) + OVERHEAD
        if not old_enough(st, at_ns):
            return
        if _held[0] + len(payload) + OVERHEAD > MAX_BYTES:
            _SEEN.clear()
            _held[0] = 0
        _SEEN[path] = (identity(st), crc, payload)
        _held[0] += len(payload) + OVERHEAD


def forget() -> None:
    with _lock:
        _SEEN.clear()
        _held[0] = 0
