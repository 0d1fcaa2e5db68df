"""The per-row arrays of a feature key: reading them (the checksummed fast path where the layout allows), what
they say (key info, stale rows) and adding one (:meth:`KeyArrays.add_key_array`). A mixin of
:class:`~mixsig.cache.FeatureStore`."""

from __future__ import annotations

import os
import time

import numpy as np

from mixsig.cache._chunks import (array_dir, check_seen, chunk_file, empty_aligned, fast_layout,
                                  read_arrays_fast, read_chunk_into)
from mixsig.cache._digest import (LEDGER, LEDGER_COLUMNS, UNKNOWN, MisplacedChunk, attr_digests, check_tails,
                                  create_ledger, crc_codecs, expected_digests, ledger_problems, record_digests)
from mixsig.cache._dims import ROW_DIMS, embedding_dims
from mixsig.cache._status import Status
from mixsig.errors import CorruptChunk, StoreError, UsageError

#: How long (s) a read that found a chunk not matching its digest is retried while the key's ledger keeps changing
#: (another writer rewriting chunks: retried rows, --refresh-stale, invalidate, update_samples).
SETTLE_S = 5.0


def settled(read, stamp):
    """``read()``, read again (ledger and chunks) while it fails with :class:`MisplacedChunk` and the key's ledger
    changed during the attempt (``stamp()`` before and after differ): a writer marks a row-chunk's ledger entry
    before it rewrites the chunk and records it after, so a chunk rewritten between our reads of its digest and of
    the chunk always changes the ledger meanwhile. A mismatch read again under an unchanged ledger is real: raised
    after that one more read (as is one after :data:`SETTLE_S` s of changes)."""
    try:
        return read()
    except MisplacedChunk:
        before = stamp()  # taken only once a read failed: a clean read costs nothing more
        if before is None:
            raise
    deadline, wait = time.monotonic() + SETTLE_S, 0.001
    while True:
        time.sleep(wait)
        wait = min(2 * wait, 0.05)
        try:
            return read()
        except MisplacedChunk:
            after = stamp()
            if after == before or time.monotonic() > deadline:
                raise
            before = after

#: The arrays every key is created with; :meth:`KeyArrays.add_key_array` adds others beside them.
KEY_ARRAYS = ("embedding", "done", "status", "message", "input_hash", LEDGER)
#: Key attrs the store itself writes; :meth:`KeyArrays.add_key_array` may not set them.
RESERVED_KEY_ATTRS = ("provenance", "modality", "created", "chunk_rows", "ready")


def create_key_arrays(g, shape: tuple[int, ...], chunk_rows: int, dtype: str, compress: bool) -> None:
    """The arrays of a new key in its group ``g``: ``embedding`` ``shape`` (NaN), ``done``, ``status``, ``message``,
    ``input_hash`` and the ``digests`` ledger, chunked by ``chunk_rows`` rows, each with its dimension names."""
    n, cr = shape[0], chunk_rows
    g.create_array("embedding", shape=shape, dtype=dtype, chunks=(cr,) + tuple(shape[1:]), fill_value=np.nan,
                   compressors=crc_codecs(compress), dimension_names=embedding_dims(len(shape)))
    for name, dt, fill, zstd in (("done", bool, False, False), ("status", "int8", 0, False),
                                 ("message", str, "", True), ("input_hash", str, "", True)):
        g.create_array(name, shape=(n,), dtype=dt, chunks=(cr,), fill_value=fill, compressors=crc_codecs(zstd),
                       dimension_names=ROW_DIMS)
    create_ledger(g, n, cr)  # one ledger chunk per row-chunk, written by the row-chunk's owner (mixsig.cache._digest)


class KeyArrays:
    """Reads and adds the ``[N]`` / ``[N, ...]`` arrays of ready keys (needs the store's ``key_group``,
    ``_opened``, ``local_path``, ``samples`` and ``_require_writable``)."""

    def add_key_array(self, key: str, name: str, dtype, fill, values=None, *, attrs: dict | None = None,
                      overwrite: bool = False) -> None:
        """Add a per-row array ``name`` ``[N]`` of ``dtype`` (bool, int, uint or float) to ready key ``key``,
        filled with ``fill``, then ``values`` (``[N]``, if given) written into it.

        Chunked like the key's rows and checksummed (crc32c) like ``done`` and ``status``; read it back with
        :meth:`read_array`. ``attrs``: key attrs that describe the array (fine-tuning's ``fold_models``), merged
        into the key's attrs. An array of that name is replaced only with ``overwrite``."""
        self._require_writable()
        g = self.key_group(key)
        dt = np.dtype(dtype)
        if name in KEY_ARRAYS or not str(name).isidentifier():
            raise StoreError(f"key {key}: cannot add an array named {name!r}; use an identifier other than "
                             f"{list(KEY_ARRAYS)}")
        if dt.kind not in "biuf":
            raise StoreError(f"key {key} array {name!r}: dtype must be bool, int, uint or float; got {dt}")
        reserved = sorted(set(attrs or {}) & set(RESERVED_KEY_ATTRS))
        if reserved:
            raise StoreError(f"key {key} array {name!r}: attrs {reserved} are the store's own; name them otherwise")
        n = len(self.samples)
        data = None if values is None else _cast(values, dt, n, f"key {key} array {name!r}")
        if name in set(g.array_keys()):
            if not overwrite:
                raise StoreError(f"key {key} already has an array {name!r}; pass overwrite=True to replace it")
            del g[name]
        hit = self._opened.get(key)
        if hit is not None:
            hit[2].pop(name, None)
        rows = int(g.attrs.get("chunk_rows") or g["done"].chunks[0])
        arr = g.create_array(name, shape=(n,), dtype=dt, chunks=(rows,), fill_value=fill, compressors=crc_codecs(),
                             dimension_names=ROW_DIMS)
        if data is not None:
            arr[...] = data
        record_digests(arr, self.local_path)  # write-once: its chunks' digests in its attrs
        if attrs:
            g.attrs.update(dict(attrs))

    def key_shape(self, key: str) -> tuple[int, ...]:
        """Shape of ``key``'s embedding array, ``(N, D)`` or ``(N, L, D)``, without reading it."""
        return tuple(self._key_array(key, "embedding").shape)

    def key_info(self, key: str) -> dict:
        g = self.key_group(key)
        status = self._read_plain(g["status"])
        counts = {Status.name_of(c): int((status == c).sum()) for c in np.unique(status)}
        emb = g["embedding"]
        done = int(self._read_plain(g["done"]).sum())
        return {
            "key": key,
            "modality": g.attrs.get("modality"),
            "shape": list(emb.shape),
            "width": int(emb.shape[-1]),
            "dtype": str(emb.dtype),
            "chunk_rows": int(emb.chunks[0]),
            "rows": int(emb.shape[0]),
            "done": done,
            "failed": int(sum(v for k, v in counts.items() if k not in ("ok", "pending"))),
            "status": counts,
            "created": g.attrs.get("created"),
            "provenance": dict(g.attrs["provenance"]),
        }

    def stale_rows(self, key: str, current_hash: np.ndarray | None = None) -> np.ndarray:
        """Done rows whose input changed since extraction (``input_hash`` != the current content hash)."""
        g = self.key_group(key)
        modality = g.attrs.get("modality")
        cur = current_hash if current_hash is not None else self.samples.content_hash.get(modality)
        if cur is None:
            return np.zeros(0, np.int64)
        done = self._read_plain(g["done"])
        if not done.any():
            return np.zeros(0, np.int64)
        stored = self.read_array(key, "input_hash")
        return np.flatnonzero(done & (stored != np.asarray(cur, dtype=str)) & (stored != "")).astype(np.int64)

    def _key_array(self, key: str, name: str):
        """Array ``name`` of ready key ``key``, opened once per creation of the key."""
        g = self.key_group(key)
        hit = self._opened.get(key)
        arrays = hit[2] if hit is not None and hit[1] is g else {}
        if name not in arrays:
            try:
                arrays[name] = g[name]
            except KeyError:
                raise StoreError(f"key {key} has no array {name!r}; its arrays: {sorted(g.array_keys())}") from None
        return arrays[name]

    def read_array(self, key: str, name: str) -> np.ndarray:
        """One whole per-row array of a key: ``done``, ``status``, ``message``, ``input_hash``, ``embedding`` or
        one added by :meth:`add_key_array` (fine-tuning's ``fold``)."""
        arr = self._key_array(key, name)

        def once():
            expect = self._digests(key, name, arr)
            if name == "embedding":
                return self._read_embedding(key, arr, None, expect)
            return self._read_plain(arr, expect)

        try:
            return settled(once, lambda: self._ledger_stamp(key))
        except (ValueError, OSError) as exc:
            raise CorruptChunk(f"key {key} array {name}: {exc}; run `mixsig cache verify {self.url}`") from exc

    def _digests(self, key: str, name: str, arr) -> np.ndarray | list | None:
        """The digests recorded for the chunks of ``key``'s array ``name`` (None: none recorded, or not a local
        store, where ``verify`` checks them): a ledger column, or a write-once array's attrs."""
        if self.local_path is None or name == LEDGER:
            return None
        if name in LEDGER_COLUMNS:
            table = self._ledger(key)
            return None if table is None else table[:, LEDGER_COLUMNS.index(name)]
        return attr_digests(arr)

    def _ledger(self, key: str) -> np.ndarray | None:
        """``key``'s digest ledger [n_chunks, 6] (None for keys written before digests, or not a local store);
        :class:`CorruptChunk` when a ledger chunk fails its CRC or records another chunk (moved)."""
        arr = self._ledger_array(key)
        if arr is None:
            return None
        table = self._read_plain(arr)
        self._check_ledger(arr, table)
        return expected_digests(table)

    def _ledger_stamp(self, key: str):
        """What changes whenever a writer marks or records an entry of ``key``'s ledger (local stores; else None):
        the inode and times of each ledger chunk file (zarr writes each as a new file renamed into place)."""
        arr = self._ledger_array(key)
        if arr is None:
            return None
        out = []
        try:
            entries = list(os.scandir(array_dir(self.local_path, arr.path) / "c"))
        except FileNotFoundError:  # no entry written yet
            return out
        for e in entries:
            try:
                st = os.stat(os.path.join(e.path, "0"))
            except OSError:
                continue
            out.append((e.name, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
        return sorted(out)

    def _ledger_rows(self, key: str, chunks: np.ndarray) -> np.ndarray | None:
        """Like :meth:`_ledger`, but only the entries of row-chunks ``chunks`` are read (one small file each); the
        others are UNKNOWN. For partial reads, which touch few row-chunks of a key with many."""
        arr = self._ledger_array(key)
        if arr is None:
            return None
        table = np.full(arr.shape, UNKNOWN, np.int64)
        adir, row = array_dir(self.local_path, arr.path), np.empty((1, arr.shape[1]), np.int64)
        for c in chunks.tolist():
            found = read_chunk_into(chunk_file(adir, c, 2), row, tuple(arr.chunks), arr.dtype,
                                    f"array {arr.path} chunk {c}")
            table[c] = row[0] if found else UNKNOWN
            if table[c, 0] != UNKNOWN and table[c, 0] != c:
                self._check_ledger(arr, table)
            if table[c, 0] == UNKNOWN:  # never begun: no files expected there
                table[c] = expected_digests(table[c:c + 1])[0]
        return table

    def _ledger_array(self, key: str):
        """The ``digests`` array of ``key`` on a local store (opened once per creation of the key), else None."""
        if self.local_path is None:
            return None
        g = self.key_group(key)
        hit = self._opened.get(key)
        arrays = hit[2] if hit is not None and hit[1] is g else {}
        if LEDGER not in arrays:
            try:
                arrays[LEDGER] = g[LEDGER]
            except KeyError:
                arrays[LEDGER] = None
        arr = arrays[LEDGER]
        return arr if arr is not None and fast_layout(arr) else None

    def _check_ledger(self, arr, table: np.ndarray) -> None:
        for c, problem in ledger_problems(table):
            raise CorruptChunk(f"array {arr.path} chunk {c} {problem}; run `mixsig cache verify {self.url}` "
                               f"(`--fix` unmarks the chunk's rows so `mixsig extract` recomputes them)")

    def _read_whole_checked(self, key: str, done_arr, emb, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """``done`` and the embedding (as ``dtype``) of ``key`` read whole in one pass together with its ledger, each
        chunk's CRC then compared with the digest the ledger records for its position."""
        ledger = self._ledger_array(key)
        if ledger is None:
            done, X = self._read_whole([done_arr, emb], [done_arr.dtype, dtype])
            return done, X
        table, done, X = self._read_whole([ledger, done_arr, emb], [np.int64, done_arr.dtype, dtype],
                                          seen=(seen := []))
        self._check_ledger(ledger, table)
        table = expected_digests(table)
        check_seen(f"array {done_arr.path}", seen[1], table[:, LEDGER_COLUMNS.index("done")])
        check_seen(f"array {emb.path}", seen[2], table[:, LEDGER_COLUMNS.index("embedding")])
        return done, X

    def _read_plain(self, arr, expect=None) -> np.ndarray:
        """A whole per-row array (done, status, ...) through the checksummed fast path where possible; ``expect``:
        the digests recorded for its chunks, compared on local stores."""
        if self._reads_whole(arr, None):
            return self._read_whole([arr], [arr.dtype], [expect])[0]
        try:
            out = arr[...]
        except ValueError as exc:  # zarr's crc32c codec: "Stored and computed checksum do not match"
            raise CorruptChunk(f"array {arr.path}: {exc}; run `mixsig cache verify {self.url}`") from exc
        check_tails(arr, self.local_path, None if expect is None else [int(x) for x in expect],
                    f"array {arr.path}")
        return out

    def _read_chunks(self, arr, chunks: np.ndarray, expect=None) -> np.ndarray:
        """Array ``arr`` [N] (fast layout, local store) with only row-chunks ``chunks`` read (the others hold the
        fill value); ``expect``: the digests recorded for its chunks."""
        out = np.full(arr.shape, arr.fill_value, arr.dtype)
        adir, cr, n = array_dir(self.local_path, arr.path), int(arr.chunks[0]), int(arr.shape[0])
        buf = empty_aligned(arr.chunks, arr.dtype)
        for c in chunks.tolist():
            lo, hi = c * cr, min((c + 1) * cr, n)
            if read_chunk_into(chunk_file(adir, c, arr.ndim), buf[:hi - lo], tuple(arr.chunks), arr.dtype,
                               f"array {arr.path} chunk {c}", UNKNOWN if expect is None else int(expect[c])):
                out[lo:hi] = buf[:hi - lo]
        return out

    @staticmethod
    def _all_rows(rows: np.ndarray | None, n: int) -> bool:
        return rows is None or (len(rows) == n and (n == 0 or (rows[0] == 0 and bool((np.diff(rows) == 1).all()))))

    def _reads_whole(self, arr, rows: np.ndarray | None) -> bool:
        """True when ``rows`` of ``arr`` are best read as the whole array from its chunk files (local store, fast
        layout, every row in order). Any other rows are gathered chunk by chunk, faster even when they touch every
        chunk (:func:`~mixsig.cache._stream.read_rows_fast`; benchmarks/README.md)."""
        if self.local_path is None or not fast_layout(arr):
            return False
        return self._all_rows(rows, arr.shape[0])

    def _read_whole(self, arrays: list, dtypes: list, expects: list | None = None,
                    seen: list | None = None) -> list[np.ndarray]:
        """Whole arrays (all in :meth:`_reads_whole` layout) read together, each into a new array of its dtype;
        ``expects``: per array, the digests recorded for its chunks (or None); ``seen`` gets, per array, the CRC
        each chunk file held."""
        root = self.local_path
        outs = [empty_aligned(a.shape, dt) for a, dt in zip(arrays, dtypes)]
        expects = expects or [None] * len(arrays)
        got = read_arrays_fast([(a, array_dir(root, a.path), o, a.fill_value, e)
                                for a, o, e in zip(arrays, outs, expects)])
        if seen is not None:
            seen.extend(got)
        return outs

    def _read_embedding(self, key: str, arr, rows: np.ndarray | None = None, expect=None,
                        dtype=np.float32) -> np.ndarray:
        """Rows ``rows`` (None: all) of embedding array ``arr`` as ``dtype``, checked against digests ``expect``."""
        n = arr.shape[0]
        if self._all_rows(rows, n):
            rows = None  # every row, in order: no gather needed
        if self._reads_whole(arr, rows):
            (out,) = self._read_whole([arr], [dtype], [expect])
            return out
        if self.local_path is not None and fast_layout(arr):  # wanted rows only, each chunk read once (_stream)
            from mixsig.cache._stream import read_rows_fast

            out = np.empty((len(rows),) + arr.shape[1:], dtype)
            read_rows_fast(arr, array_dir(self.local_path, arr.path), rows, out, np.nan, expect)
            return out
        try:
            data = arr[...] if rows is None else \
                arr.get_orthogonal_selection((rows,) + (slice(None),) * (arr.ndim - 1))
        except ValueError as exc:  # zarr's crc32c codec
            raise CorruptChunk(f"array {arr.path}: {exc}; run `mixsig cache verify {self.url}`") from exc
        check_tails(arr, self.local_path, None if expect is None else [int(x) for x in expect], f"array {arr.path}")
        return np.asarray(data, dtype)


def read_dtype(key: str, dtype, stored: np.dtype) -> np.dtype:
    """The dtype :meth:`~mixsig.cache.FeatureStore.read` returns for ``dtype`` (None / ``"stored"``: the key's
    ``stored`` one); anything but float16 / float32 is a :class:`UsageError`."""
    if dtype is None or (isinstance(dtype, str) and dtype == "stored"):
        return np.dtype(stored)
    try:
        out = np.dtype(dtype)
    except TypeError:
        out = None
    if out not in (np.dtype(np.float16), np.dtype(np.float32)):
        raise UsageError(f"read({key!r}, dtype={dtype!r}): dtype must be 'float32' (the default), 'float16', or "
                         f"None / 'stored' for the key's stored dtype ({np.dtype(stored)})")
    return out


def _cast(values, dtype: np.dtype, n: int, what: str) -> np.ndarray:
    """``values`` as ``[n]`` ``dtype``; StoreError naming ``what`` if the shape differs or a value does not fit."""
    v = np.asarray(values)
    if v.shape != (n,):
        raise StoreError(f"{what}: values must be [{n}] (one per row of the store); got shape {v.shape}")
    out = v.astype(dtype)
    if not np.array_equal(out, v, equal_nan=dtype.kind == "f" and v.dtype.kind == "f"):
        bad = int(np.flatnonzero(out != v)[0])
        raise StoreError(f"{what}: row {bad} value {v[bad].item()!r} does not fit dtype {dtype}")
    return out
