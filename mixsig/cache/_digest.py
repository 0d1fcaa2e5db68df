"""Per-chunk digests that bind every chunk mixsig writes to its position.

Every array mixsig writes ends its codec chain with zarr's own ``crc32c`` codec, so a chunk file (or object) is its
encoded bytes followed by their 4-byte CRC32C: any bit flip fails that checksum, and the store stays readable with
plain ``zarr.open_group``. The trailing CRC is also a ready digest of the chunk's bytes, recorded at write time for
the chunk's position, so a valid chunk copied over another position (or a chunk file deleted, or one appearing
where none was written) no longer matches what was recorded there:

- feature row arrays (``embedding``, ``done``, ``status``, ``message``, ``input_hash``) are written concurrently
  by shard writers, each owning whole row-chunks, so their digests live in a ledger array ``digests``
  [n_chunks, 6] int64 with one chunk per row-chunk, written by that row-chunk's owner: column 0 is the row-chunk's
  own index (a ledger chunk moved to another position is caught too), the others the trailing CRCs of the five
  arrays' chunk files (:data:`ABSENT` when zarr wrote no file: every value the fill value). A writer marks its
  row-chunks' ledger entries :data:`UNKNOWN` before writing and records them after ``done``: an entry left
  UNKNOWN by a killed writer is re-recorded by the next writer of that shard (or ``cache verify --fix``);
- write-once arrays (``samples/*``, ``runs/*/subsets/*/*``, arrays added with ``add_key_array``) keep their
  digests in their own attrs (:data:`DIGEST_ATTR`: one entry per chunk, in chunk-grid C order).

Where digests are compared: the fast read path (``read_arrays_fast``) compares each chunk's trailing CRC, which it
reads anyway, with the recorded one (an int compare); zarr-path reads of *local* stores read each chunk's last
4 bytes and compare them too. On other stores (fsspec URLs) zarr still checks every chunk's CRC on read, but the
position check (digests) is done by ``mixsig cache verify``, which reads the chunks through the store's own API.
Arrays written before digests (store format 1) are read unchecked and listed by ``verify`` as such.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from mixsig.cache._dims import LEDGER_DIMS
from mixsig.errors import CorruptChunk

#: A position where no chunk file was written (every value the fill value).
ABSENT = -2
#: A digest not recorded (a write in progress or interrupted, or an array written before digests).
UNKNOWN = -1
#: A chunk file too short to hold a checksum.
TRUNCATED = -3
#: The ledger array of a feature key, and the arrays (columns after ``chunk``) whose digests it holds.
LEDGER = "digests"
LEDGER_COLUMNS = ("chunk", "embedding", "done", "status", "message", "input_hash")
#: The attr of a write-once array holding its chunks' digests.
DIGEST_ATTR = "mixsig_crc32c"


def crc_codecs(compress: bool = False) -> list:
    """Compressors for an array mixsig writes: ``[zstd,] crc32c`` (crc32c last, so its CRC ends every chunk)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=3), Crc32cCodec()] if compress else [Crc32cCodec()]


def has_crc(arr) -> bool:
    """True when ``arr``'s chunks end with a CRC32C (its last codec is crc32c)."""
    from zarr.codecs import Crc32cCodec

    codecs = arr.metadata.codecs
    return bool(codecs) and isinstance(codecs[-1], Crc32cCodec)


def chunk_grid(arr) -> list[tuple[int, ...]]:
    """Chunk coordinates of ``arr`` in C order."""
    return list(itertools.product(*(range(k) for k in arr.cdata_shape)))


def row_coords(arr, c: int) -> tuple[int, ...]:
    return (int(c),) + (0,) * (arr.ndim - 1)


def stored_crc(arr, coords, root: Path | None) -> int:
    """The trailing CRC32C of ``arr``'s chunk at ``coords`` (a tuple, or a row-chunk index), :data:`ABSENT` when
    no chunk was written there. Local stores (``root``): the file's last 4 bytes; others: the store's bytes."""
    if isinstance(coords, (int, np.integer)):
        coords = row_coords(arr, int(coords))
    key = arr.metadata.encode_chunk_key(tuple(coords))
    if root is not None:
        try:
            fd = os.open(root.joinpath(*arr.path.split("/"), *key.split("/")), os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return ABSENT
        try:
            size = os.fstat(fd).st_size
            if size < 4:
                return TRUNCATED
            tail = os.pread(fd, 4, size - 4)
        finally:
            os.close(fd)
        return int.from_bytes(tail, "little")
    from zarr.abc.store import SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    # the last 4 bytes only (a ranged GET on object storage, not the whole chunk)
    buf = sync(arr.store.get(f"{arr.path}/{key}", prototype=default_buffer_prototype(),
                             byte_range=SuffixByteRequest(4)))
    if buf is None:
        return ABSENT
    data = buf.to_bytes()
    return int.from_bytes(data[-4:], "little") if len(data) >= 4 else TRUNCATED


def record_digests(arr, root: Path | None) -> None:
    """Record the digests of every chunk of write-once array ``arr`` in its attrs (after its data is written)."""
    arr.attrs[DIGEST_ATTR] = [stored_crc(arr, c, root) for c in chunk_grid(arr)]


def attr_digests(arr) -> list[int] | None:
    """The recorded digests of write-once array ``arr`` (None: written before digests)."""
    got = arr.attrs.get(DIGEST_ATTR)
    return None if got is None else [int(x) for x in got]


class MisplacedChunk(CorruptChunk):
    """A chunk whose own CRC may be fine but that is not the chunk recorded for its position (moved, copied,
    deleted, or appearing where none was written)."""


def describe_mismatch(label: str, chunk, expected: int, got: int) -> str:
    """The message for a chunk that is not the one written at its position."""
    if got == ABSENT:
        what = "is missing (its chunk file was deleted after it was written)"
    elif expected == ABSENT:
        what = ("is a chunk file where none was recorded as written (copied in from elsewhere, or its ledger entry "
                "was lost)")
    else:
        what = (f"is not the chunk written at this position (its CRC32C {got:08x} differs from the digest "
                f"{expected:08x} recorded when it was written: a chunk file copied or moved here)")
    return f"{label} chunk {chunk} {what}"


def check_tails(arr, root: Path | None, expected: list[int] | None, label: str) -> None:
    """Compare the trailing CRC of every chunk of ``arr`` with ``expected`` (one per chunk-grid position, C order)
    on a local store; raises :class:`CorruptChunk` naming the first chunk that differs. Other stores: nothing
    (``verify`` checks them)."""
    if root is None or expected is None:
        return
    for coords, want in zip(chunk_grid(arr), expected):
        if want == UNKNOWN:
            continue
        got = stored_crc(arr, coords, root)
        if got != want:
            where = coords[0] if arr.ndim == 1 or not any(coords[1:]) else "/".join(map(str, coords))
            raise MisplacedChunk(describe_mismatch(label, where, want, got) + "; run `mixsig cache verify STORE`")


def delete_chunk(arr, c: int, root: Path | None) -> None:
    """Remove row-chunk ``c`` of ``arr`` (it then reads as the fill value)."""
    key = arr.metadata.encode_chunk_key(row_coords(arr, c))
    if root is not None:
        root.joinpath(*arr.path.split("/"), *key.split("/")).unlink(missing_ok=True)
        return
    from zarr.core.sync import sync

    sync(arr.store.delete(f"{arr.path}/{key}"))


def create_ledger(group, n_rows: int, chunk_rows: int):
    """Create the ``digests`` ledger of a feature key of ``n_rows`` rows in chunks of ``chunk_rows``: one chunk
    per row-chunk (written by the row-chunk's owner), every entry never begun (:data:`UNKNOWN`)."""
    return group.create_array(LEDGER, shape=(-(-n_rows // chunk_rows), len(LEDGER_COLUMNS)), dtype="int64",
                              chunks=(1, len(LEDGER_COLUMNS)), fill_value=UNKNOWN, compressors=crc_codecs(),
                              attributes={"columns": list(LEDGER_COLUMNS)}, dimension_names=LEDGER_DIMS)


class Ledger:
    """The ``digests`` ledger of one feature key (None-safe: keys created before digests have none)."""

    def __init__(self, group, root: Path | None, arrays: dict | None = None):
        self.root = root
        names = set(group.array_keys())
        self.arr = group[LEDGER] if LEDGER in names else None
        self.arrays = arrays if arrays is not None else {n: group[n] for n in LEDGER_COLUMNS[1:] if n in names}

    @property
    def present(self) -> bool:
        return self.arr is not None

    def begin(self, chunks) -> None:
        """Mark row-chunks ``chunks`` as being written (their digests UNKNOWN until :meth:`record`)."""
        if self.arr is None:
            return
        for c in chunks:
            self.arr[int(c)] = np.array([int(c)] + [UNKNOWN] * (len(LEDGER_COLUMNS) - 1), np.int64)

    def record(self, chunks) -> None:
        """Record the digests of row-chunks ``chunks`` as their files now are (after ``done`` is written)."""
        if self.arr is None:
            return
        for c in chunks:
            arrays = [self.arrays[n] for n in LEDGER_COLUMNS[1:]]
            crcs = ([stored_crc(a, int(c), self.root) for a in arrays] if self.root is not None
                    else _remote_crcs(arrays, int(c)))
            self.arr[int(c)] = np.array([int(c)] + crcs, np.int64)


def _remote_crcs(arrays, c: int) -> list[int]:
    """:func:`stored_crc` of row-chunk ``c`` of each of ``arrays`` (a store that is not a local folder): the
    ranged reads of the 5 chunk tails go out at once, not one after another (each is a round trip)."""
    import asyncio

    from zarr.abc.store import SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    async def tails():
        return await asyncio.gather(*(a.store.get(f"{a.path}/{a.metadata.encode_chunk_key(row_coords(a, c))}",
                                                  prototype=default_buffer_prototype(),
                                                  byte_range=SuffixByteRequest(4)) for a in arrays))

    out = []
    for buf in sync(tails()):
        data = None if buf is None else buf.to_bytes()
        out.append(ABSENT if data is None else int.from_bytes(data[-4:], "little") if len(data) >= 4 else TRUNCATED)
    return out


def expected_digests(table: np.ndarray) -> np.ndarray:
    """What a reader expects of each row-chunk's files, from ledger ``table`` [k, 6] (a copy): a row-chunk whose
    entry was never begun (column 0 :data:`UNKNOWN`: no writer ever marked it) has no files (:data:`ABSENT`), so
    a chunk file there (a ledger chunk deleted, a data chunk copied in) is refused. An entry begun and not recorded
    (a writer's begin-write-record window, or an interrupted write) stays UNKNOWN: not compared."""
    out = np.array(table, np.int64, copy=True)
    out[out[:, 0] == UNKNOWN, 1:] = ABSENT
    return out


def ledger_problems(table: np.ndarray) -> list[tuple[int, str]]:
    """Row-chunks whose ledger entry records another chunk index (a ledger chunk moved): ``[(c, message)]``."""
    idx = table[:, 0]
    bad = np.flatnonzero((idx != UNKNOWN) & (idx != np.arange(len(idx))))
    return [(int(c), f"records the digests of chunk {int(idx[c])} (a ledger chunk copied or moved here)")
            for c in bad]
