"""The feature store: a Zarr v3 group holding the samples table, feature keys and runs.

Layout (plain Zarr, readable with ``zarr.open_group`` and no mixsig import)::

    samples/          id, split, label, group, text, audio, video, start, end, content_hash@<m>, votes, votes@<c>
    features/<key>/   embedding [N, D] or [N, L, D] (NaN = not written), done [N] bool, status [N] int8,
                      message [N] str (error ledger), input_hash [N] str, digests [n_chunks, 6] int64 (each
                      row-chunk's index and its chunks' CRC32C), any added by add_key_array (fine-tuning's
                      fold [N] int8); attrs: provenance, modality, ready
    runs/<run>/       subsets/<a+b>/probs [S, N, C], gates, attention; attrs: a RunRecord (head, params, metrics, ...)
    .mixsig/          an empty array whose folder holds the non-Zarr files: leases, locks, studies.journal

Every array names its dimensions (xarray opens each group; :mod:`mixsig.cache._dims` lists the names).

Every array ends its codec chain with crc32c and its chunks are bound to their positions by recorded digests
(:mod:`mixsig.cache._digest`: where they are checked on read, and where only ``verify`` checks them).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from mixsig.cache._chunks import fast_layout, local_root
from mixsig.cache._frames import FeatureView
from mixsig.cache._key_arrays import KeyArrays, create_key_arrays, read_dtype, settled
from mixsig.cache._keys import Provenance, diff_dicts, provenance_matches
from mixsig.cache._resolve import match_name, resolve_features, shortest_name, store_key
from mixsig.cache._runs import Run, RunRecord, RunSubset, read_run, update_run, write_run
from mixsig.cache._saved_heads import SavedHeads
from mixsig.cache._samples import Samples, read_samples, samples_group
from mixsig.errors import GroupLeak, ProvenanceMismatch, StoreError, UsageError

log = logging.getLogger(__name__)

#: 2: every array crc32c-coded with digests binding chunks to positions. Format-1 stores stay readable: the
#: arrays they wrote without checksums or digests are read unchecked and listed by ``cache verify``.
STORE_FORMAT = 2
#: Largest size of one embedding chunk (see :func:`default_chunk_rows`).
CHUNK_BYTES = 1 << 20


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_chunk_rows(n_rows: int, row_bytes: int) -> int:
    """Rows per chunk of a new key of ``n_rows`` rows of ``row_bytes`` bytes each (what :meth:`FeatureStore.create_key`
    uses unless told otherwise): a power of two, at most 1024 rows and ~1 MiB (:data:`CHUNK_BYTES`), small enough
    that the key has ~16 chunks to share between shards and to resume from, and at least 64 rows (which wins over
    the size). Extraction batches never span two chunks, so bigger chunks allow bigger length-sorted batches."""
    by_bytes = max(1, CHUNK_BYTES // max(row_bytes, 1))
    by_rows = max(1, math.ceil(n_rows / 16))
    rows = max(64, min(1024, by_bytes, 1 << (by_rows - 1).bit_length()))
    return int(1 << (rows.bit_length() - 1)) if rows & (rows - 1) else int(rows)


class FeatureStore(KeyArrays, SavedHeads):
    """A mixsig store. Open with :func:`open_store` or make one with :func:`create_store`."""

    def __init__(self, group, url: str, mode: str):
        self.root = group
        self.url = str(url)
        self.mode = mode
        # Opened groups and arrays of ready keys, with the stamp they were opened under (see _key_stamp): opening
        # them through zarr can cost more than reading a small key (benchmarks/README.md).
        self._opened: dict[str, tuple] = {}
        self._provenance_ok: dict[str, object] = {}  # key -> the stamp its provenance was checked under
        if group.attrs.get("mixsig_store") is None:
            raise StoreError(f"{url} is a Zarr group but not a mixsig store (no 'mixsig_store' attribute); "
                             "create one with `mixsig cache init STORE --manifest MANIFEST`")

    # ------------------------------------------------------------------ basics
    @property
    def local_path(self) -> Path | None:
        """The store's folder for local stores (leases, fast reads, verify of temp files); None otherwise."""
        return local_root(self.root.store)

    @property
    def attrs(self) -> dict:
        return dict(self.root.attrs)

    @cached_property
    def samples(self) -> Samples:
        return read_samples(samples_group(self.root, self.local_path), self.local_path)

    def __len__(self) -> int:
        return len(self.samples)

    def split_hash(self) -> str:
        return self.samples.split_hash()

    def check_modalities(self, features, allow: bool = False) -> dict[str, dict]:
        """Keys used as another modality than they hold: ``features`` maps modality -> key (or keys). Raises
        :class:`UsageError` naming each key, the modality it is used as and the one it holds, unless ``allow``;
        returns ``{key: {"used_as": m, "holds": m2}}`` (empty when all match) for the caller to record."""
        out: dict[str, dict] = {}
        for m, keys in features.items():
            for key in ([keys] if isinstance(keys, str) else list(keys)):
                if not self.has_key(key):
                    continue  # the caller's own check names missing keys
                holds = self._ready_group(key).attrs.get("modality")
                if holds and holds != m:
                    out[key] = {"used_as": m, "holds": str(holds)}
        if out and not allow:
            listed = "; ".join(f"{m['used_as']}={k} holds {m['holds']} features" for k, m in out.items())
            raise UsageError(f"--features gives keys of another modality: {listed}. Name each key under its own "
                             f"modality, or pass --allow-modality-mismatch to use them anyway (recorded in the run "
                             f"and warned in the report).")
        return out

    def group_leak(self) -> dict | None:
        """Groups of the store's samples found in more than one split (see :meth:`Samples.group_leak`)."""
        return self.samples.group_leak()

    def check_group_leak(self, allow: bool, command: str) -> dict | None:
        """Raise :class:`GroupLeak` (exit 3) when groups cross splits and ``allow`` is false; else return the
        leak record (None when there is none) for the caller to record in its provenance."""
        leak = self.group_leak()
        if leak and not allow:
            raise GroupLeak(f"{describe_group_leak(leak)} in store {self.url}. Results on such splits are "
                            f"inflated (leakage). To reproduce a published split anyway, pass `{command} "
                            f"--allow-group-leak` (recorded in the run and shown in the report).", leak)
        return leak

    def update_attrs(self, **attrs) -> None:
        """Merge ``attrs`` (JSON values) into the store-level attrs, e.g. ``group_leak`` recorded by extract. The
        store's own (``mixsig_store``, ``created``, ``mixsig_version``) cannot be set this way."""
        self._require_writable()
        own = sorted(set(attrs) & {"mixsig_store", "created", "mixsig_version"})
        if own:
            raise StoreError(f"store attrs {own} are written by create_store only; name yours otherwise")
        self.root.attrs.update(attrs)

    def _require_writable(self) -> None:
        if self.mode == "r":
            raise StoreError(f"store {self.url} is open read-only; open it with mode='r+'")

    # ------------------------------------------------------------------ keys
    @cached_property
    def _features_group(self):
        return self.root["features"]

    def _features(self):
        return self._features_group

    def keys(self) -> list[str]:
        """Feature keys whose creation finished, sorted."""
        f = self._features()
        return sorted(k for k in f.group_keys() if f[k].attrs.get("ready"))

    def resolve_key(self, name: str, modality: str | None = None, error=UsageError) -> str:
        """The key ``name`` names: the full key, a unique prefix, or the modality alone when the store holds one
        key of it; with ``modality``, also ``<modality>.<name>``. Ambiguous or unknown: ``error`` (one line listing
        the candidates, or the store's keys). See :mod:`mixsig.cache._resolve`."""
        return store_key(self, name, self.keys(), modality, error)

    def resolve_features(self, features: dict, error=UsageError) -> dict:
        """``{modality: name or (name, ...)}`` -> the same with each name resolved by :meth:`resolve_key`."""
        return resolve_features(self, features, error=error)

    def short_key(self, key: str) -> str:
        """The shortest name :meth:`resolve_key` turns into ``key`` (``text`` when it is the one text key)."""
        return shortest_name(key, self.keys())

    def has_key(self, key: str) -> bool:
        return self._ready_group(key) is not None

    def _key_stamp(self, key: str):
        """What identifies one creation of ``key``: the inode and mtime of its group's metadata on a local store
        (a key deleted and created again, by any process, gets a new one); a constant elsewhere."""
        root = self.local_path
        if root is None:
            return "remote"
        try:
            st = os.stat(root / "features" / key / "zarr.json")
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _ready_group(self, key: str):
        stamp = self._key_stamp(key)
        hit = self._opened.get(key)
        if hit is not None and stamp is not None and hit[0] == stamp:
            return hit[1]
        self._opened.pop(key, None)
        try:
            g = self._features()[key]
        except (KeyError, FileNotFoundError):
            return None
        if not g.attrs.get("ready"):
            return None
        if stamp is not None:
            self._opened[key] = (stamp, g, {})
        return g

    def key_group(self, key: str):
        g = self._ready_group(key)
        if g is None:
            raise StoreError(f"no feature key {key!r} in {self.url}; keys: {self.keys() or 'none yet (run `mixsig extract`)'}")
        return g

    def provenance(self, key: str) -> dict:
        return dict(self.key_group(key).attrs["provenance"])

    def provenance_matches(self, key: str) -> tuple[bool, str]:
        """``(ok, sha256)``: whether ``key``'s stored provenance still hashes to the key, and what it hashes to."""
        return provenance_matches(key, dict(self.key_group(key).attrs.get("provenance") or {}))

    def check_provenance(self, key: str) -> None:
        """Raise :class:`ProvenanceMismatch` when ``key``'s provenance no longer hashes to the key (edited or
        damaged): its features cannot be trusted as that key. Checked once per creation of the key's metadata."""
        g = self.key_group(key)
        stamp = self._key_stamp(key)
        if stamp is not None and stamp != "remote" and self._provenance_ok.get(key) == stamp:
            return
        ok, digest = provenance_matches(key, dict(g.attrs.get("provenance") or {}))
        if not ok:
            raise ProvenanceMismatch(
                f"key {key}: its provenance no longer hashes to the key (sha256 starts {digest[:12]}, the key says "
                f"{key.rsplit('.', 1)[-1]}): the record was edited or damaged, so its features are refused. See "
                f"`mixsig cache explain {self.url} {key}`; extract again to get a key that matches")
        self._provenance_ok[key] = stamp

    def read(self, key: str, split=None, only_done: bool = True, rows: np.ndarray | None = None,
             dtype: str | None = "float32") -> FeatureView:
        """Features of ``key`` for a split (``None`` = all rows; ``"val+test"`` allowed) or explicit ``rows``.

        Rows not done are excluded (counted in ``excluded``), never returned as NaN, unless ``only_done=False``.
        A chunk that does not match its digest is read again after a short wait before it is refused (another
        writer may have been rewriting it between the reads of its digest and of the chunk).
        ``dtype``: of the returned ``X``: ``"float32"`` (the default), ``"float16"``, or ``None`` / ``"stored"``
        for the key's stored dtype (a float16 key is then read straight into float16: no float32 copy of it).
        """
        out_dtype = read_dtype(key, dtype, self._key_array(key, "embedding").dtype)
        g = self.key_group(key)
        self.check_provenance(key)
        want = self.samples.rows(split) if rows is None else np.asarray(rows, np.int64)
        return settled(lambda: self._read_once(key, g, want, only_done, out_dtype), lambda: self._ledger_stamp(key))

    def _read_once(self, key: str, g, want: np.ndarray, only_done: bool, dtype=np.float32) -> FeatureView:
        done_arr, emb = self._key_array(key, "done"), self._key_array(key, "embedding")
        if self._reads_whole(emb, want) and self._reads_whole(done_arr, None):
            # One pass over both arrays' chunk files and the key's digest ledger (read by this thread while the
            # others read the embedding), each chunk's CRC then compared with the digest recorded for its position;
            # then pick the rows (no copy when every row is wanted and done).
            done, X = self._read_whole_checked(key, done_arr, emb, dtype)
            keep = want[done[want]] if only_done else want
            if not self._all_rows(keep, len(done)):
                X = X[keep]
        else:
            # few row-chunks of many (a quarter at most): read only their ledger entries and done chunks
            chunks = np.unique(want // int(emb.chunks[0]))
            few = (self.local_path is not None and fast_layout(done_arr) and fast_layout(emb)
                   and len(chunks) * 4 <= emb.cdata_shape[0])
            table = self._ledger_rows(key, chunks) if few else self._ledger(key)
            exp_done, exp_emb = (None, None) if table is None else (table[:, 2], table[:, 1])
            done = self._read_chunks(done_arr, chunks, exp_done) if few else self._read_plain(done_arr, exp_done)
            keep = want[done[want]] if only_done else want
            X = self._read_embedding(key, emb, keep, exp_emb, dtype)
        return FeatureView(key=key, modality=str(g.attrs.get("modality")), rows=keep,
                           ids=self.samples.ids[keep], X=X, excluded=int(len(want) - len(keep)), samples=self.samples)

    def create_key(self, provenance: Provenance, dim, *, chunk_rows: int | None = None, dtype: str | None = None,
                   compressor: str | None = None, name: str | None = None) -> str:
        """Create the arrays of ``provenance.key(name)`` (idempotent). Only the coordinator calls this.

        ``dim`` is D (rows [N, D]) or (L, D) (rows [N, L, D]). Raises :class:`ProvenanceMismatch` if the key exists
        with another provenance. Safe when several shard processes call it at once on a local store.
        """
        self._require_writable()
        key = provenance.key(name)
        want = provenance.to_dict()
        dtype = dtype or provenance.dtype
        if dtype not in ("float16", "float32"):
            raise StoreError(f"The 'dtype' of a feature key must be one of {{'float16', 'float32'}}. Got {dtype!r} instead.")
        shape = (len(self.samples),) + ((int(dim),) if np.isscalar(dim) else tuple(int(d) for d in dim))
        root = self.local_path
        if root is not None:
            from mixsig.cache._lease import _mutex

            with _mutex(root / ".mixsig" / "locks" / f"create-{key}", timeout=600):
                self._create_key_locked(key, want, shape, chunk_rows, dtype, compressor)
        else:  # object storage: a lock object (conditional write)
            from mixsig.cache._lease_remote import remote_mutex

            with remote_mutex(f"{self.url.rstrip('/')}/.mixsig/locks/create-{key}", timeout=600):
                self._create_key_locked(key, want, shape, chunk_rows, dtype, compressor)
        return key

    def _create_key_locked(self, key, want, shape, chunk_rows, dtype, compressor) -> None:
        f = self._features()
        if key in set(f.group_keys()):
            g = f[key]
            if g.attrs.get("ready"):
                have = dict(g.attrs["provenance"])
                if have != want:
                    diffs = "; ".join(f"{p}: {a!r} -> {b!r}" for p, a, b in diff_dicts(have, want))
                    raise ProvenanceMismatch(f"key {key} exists with a different provenance ({diffs})")
                if tuple(g["embedding"].shape) != shape:
                    raise ProvenanceMismatch(f"key {key} exists with shape {tuple(g['embedding'].shape)}, asked for {shape}")
                return
            log.info("key %s was left half-created by an interrupted run; creating it again", key)
            self._opened.pop(key, None)
            del f[key]
        n = shape[0]
        row_bytes = int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
        cr = int(chunk_rows or default_chunk_rows(n, row_bytes))
        g = f.create_group(key)
        create_key_arrays(g, shape, cr, dtype, compressor not in (None, "none"))
        g.attrs.update({"provenance": want, "modality": want["modality"], "created": _now(), "chunk_rows": cr})
        g.attrs["ready"] = True  # last: a key without `ready` was interrupted while being created

    def wait_for_key(self, key: str, timeout: float = 600.0) -> None:
        """Block until another process (the coordinator) has created ``key``."""
        deadline = time.monotonic() + timeout
        while not self.has_key(key):
            if time.monotonic() > deadline:
                raise StoreError(f"timed out after {timeout:.0f} s waiting for the coordinator to create key {key}")
            time.sleep(0.2 if self.local_path is not None else 1.0)  # object storage: each look is requests

    def writer(self, key: str, shard: tuple[int, int] = (0, 1), lease: bool = True, break_lease: bool = False,
               fsync: bool = True, command: str | None = None):
        """A :class:`~mixsig.cache.FeatureWriter` for shard ``(i, n)`` of ``key`` (a context manager). ``command``
        (``"mixsig extract"``): the command writing, named with the fixes it has when the lease is held."""
        from mixsig.cache._writer import FeatureWriter

        self._require_writable()
        return FeatureWriter(self, key, shard=shard, lease=lease, break_lease=break_lease, fsync=fsync,
                             command=command)

    def delete_key(self, key: str) -> None:
        self._require_writable()
        self.key_group(key)
        self._opened.pop(key, None)
        del self._features()[key]

    # ------------------------------------------------------------------ runs
    def runs(self) -> list[str]:
        return sorted(self.root["runs"].group_keys())

    def resolve_run(self, name: str, error=UsageError) -> str:
        """The run ``name`` names (its full name or a unique prefix); else ``error`` listing candidates or runs."""
        return match_name(name, self.runs(), what="run", option="", noun="run named", store_url=self.url,
                          listing=f"mixsig runs ls {self.url}", error=error)

    def write_run(self, record: RunRecord | str, subsets: dict[str, RunSubset], *legacy,
                  overwrite: bool = False) -> None:
        """Write run ``record.name``: ``subsets`` ({subset name: :class:`RunSubset`}), then the record's attrs.

        ``write_run(name, attrs, subsets)`` (a plain attrs dict, written as given) remains for tests and
        benchmarks that fake runs of other writers or older versions; mixsig itself writes records."""
        self._require_writable()
        if isinstance(record, RunRecord):
            if legacy:
                raise TypeError("write_run(record, subsets, overwrite=False): overwrite is keyword-only")
            name, attrs = record.name, record.to_attrs()
        elif isinstance(record, str) and isinstance(subsets, dict) and len(legacy) == 1:
            name, attrs, subsets = record, dict(subsets), legacy[0]
        else:
            raise TypeError("write_run takes (record: RunRecord, subsets, overwrite=False) or (name, attrs, subsets)")
        write_run(self.root["runs"], name, attrs, subsets, len(self.samples), overwrite=overwrite,
                  root=self.local_path)

    def update_run(self, name: str, **fields) -> RunRecord:
        """Change some attrs of run ``name`` (RunRecord field names, e.g. a study's ``source`` and ``study``;
        :data:`~mixsig.cache.UNSET` removes one); the others stay as written. Returns the updated record."""
        self._require_writable()
        return update_run(self.root["runs"], name, fields)

    def read_run(self, name: str) -> Run:
        """Run ``name``, checked (:func:`~mixsig.cache._runs.read_run`), with this store's samples for ``to_pandas``."""
        run = read_run(self.root["runs"], name, self.local_path)
        run.samples = self.samples
        return run


def describe_group_leak(leak: dict) -> str:
    """One line naming a leak record: how many groups and rows, and the first groups with their splits."""
    shown = "; ".join(f"{g!r} in {', '.join(f'{s} ({n})' for s, n in d.items())}"
                      for g, d in list(leak["groups"].items())[:3])
    more = f" and {leak['n_groups'] - 3} more" if leak["n_groups"] > 3 else ""
    return f"{leak['n_groups']} group(s) ({leak['n_rows']} rows) are in more than one split: {shown}{more}"
