"""Small chunk files (``done``, ``status``, the digest ledger) this process has checksummed, kept decoded while
their file is the same file.

Every ``store.read`` reads a key's ``done`` mask and its digest ledger whole: 2 x 79 small files for a 20,000-row
key, ~2.2 ms of a repeat read of 1,700 rows that took ~6 ms (benchmarks/README.md, "Random-row reads"). A file
checked once is kept here with the identity it had when it was read (inode, device, size, modification time, from
``fstat`` of the open file, so the identity belongs to the bytes read); a later read of it costs one ``stat``. It
is the rule the verified embedding chunks already follow (:mod:`mixsig.cache._stream`): zarr writes a chunk to a
new file and renames it into place, so any rewrite is a new inode. The digest recorded for the chunk's position is
still compared with the kept CRC on every read. :func:`mixsig.cache.forget_verified` forgets these too.
"""

from __future__ import annotations

import os
import threading

#: path -> (identity, CRC, payload bytes)
_SEEN: dict[str, tuple] = {}
#: payload bytes kept at most; past it everything is forgotten (rebuilt by the next reads)
MAX_BYTES = 32 << 20
_held = [0]
_lock = threading.Lock()


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
                _held[0] -= len(hit[2])
        return None
    return hit[2], hit[1]


def keep(path: str, st, crc: int, payload: bytes) -> None:
    """Remember ``payload`` (checked, CRC ``crc``) of ``path`` as read from the file ``fstat`` gave ``st`` for."""
    with _lock:
        old = _SEEN.pop(path, None)
        if old is not None:
            _held[0] -= len(old[2])
        if _held[0] + len(payload) > MAX_BYTES:
            _SEEN.clear()
            _held[0] = 0
        _SEEN[path] = (identity(st), crc, payload)
        _held[0] += len(payload)


def forget() -> None:
    with _lock:
        _SEEN.clear()
        _held[0] = 0
