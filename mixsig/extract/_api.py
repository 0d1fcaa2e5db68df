"""``extract``: a manifest + a store + an encoder -> one feature key filled (one shard of it)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mixsig.errors import ProvenanceMismatch, RefusedInput, StoreError, UsageError
from mixsig.extract._encoders import Preprocess
from mixsig.extract._cleanup import removed_on_failure
from mixsig.extract._model import Encoder, load_encoder
from mixsig.extract._pipeline import ExtractResult, RunOptions, row_sources, run_extraction

log = logging.getLogger(__name__)


@dataclass
class CurrentInputs:
    """The manifest's inputs of one modality as they are now (row order = manifest order): what
    :func:`~mixsig.extract._pipeline.row_sources` reads, plus ``content_hash`` [N] str for staleness."""

    ids: np.ndarray
    text: np.ndarray
    audio: np.ndarray
    video: np.ndarray
    start: np.ndarray
    end: np.ndarray
    content_hash: dict


def current_inputs(manifest, modality: str, workers: int = 4, hashes: np.ndarray | None = None) -> CurrentInputs:
    """Hash only ``modality``'s inputs (texts / media files + segment), files in a thread pool; same hashes as
    :func:`mixsig.manifest.to_samples` ("" = none or unreadable). ``hashes``: already known ones (none hashed)."""
    from concurrent.futures import ThreadPoolExecutor

    from mixsig.manifest import media_hash, text_hash

    rows = manifest.rows
    n = len(rows)

    def col(name):
        return np.asarray(["" if r.get(name) is None else str(r.get(name)) for r in rows], dtype=str).reshape(n)

    def num(name):
        return np.asarray([np.nan if r.get(name) is None else float(r[name]) for r in rows], dtype=np.float64).reshape(n)

    def one(r) -> str:
        if modality == "text":
            return text_hash(r["text"]) if r.get("text") else ""
        if not r.get(modality):
            return ""
        try:
            return media_hash(manifest.media_path(r, modality), r.get("start"), r.get("end"))
        except OSError:
            return ""

    if hashes is None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            hashes = np.asarray(list(pool.map(one, rows)), dtype=str).reshape(n)
    return CurrentInputs(ids=col("id"), text=col("text"), audio=col("audio"), video=col("video"), start=num("start"),
                         end=num("end"), content_hash={modality: hashes})


def open_or_create_store(store_url, manifest, samples, *, coordinator: bool, wait_timeout: float = 600.0,
                         log_every: float = 10.0):
    """Open the store at ``store_url`` for writing; the coordinator creates it from ``samples`` if missing (or
    rebuilds one an interrupted creation left half-made), other shards wait for it, logging every ``log_every`` s
    what they wait for. Data at ``store_url`` that is not a mixsig store is refused at once. ``samples`` may be a
    callable returning them (only called when the store must be created, by the one process that creates it).
    Compare the manifest with the store's samples afterwards (:func:`check_samples`)."""
    from mixsig.cache import create_store, open_store, store_state
    from mixsig.manifest import store_attrs

    t0 = time.monotonic()
    next_log = t0 + log_every
    while True:
        state = store_state(store_url)
        if state == "store":
            return open_store(store_url, "r+")
        local = "://" not in str(store_url) or str(store_url).startswith("file://")
        if state == "other" and (coordinator or local):
            raise StoreError(f"{store_url} holds data that is not a mixsig store (no 'mixsig_store' attr, and more "
                             "than an interrupted creation leaves); choose another --store path")
        if coordinator:
            try:
                store = create_store(store_url, samples, attrs=store_attrs(manifest, store_url))
            except StoreError:
                if store_state(store_url) == "store":  # another process created it first
                    continue
                raise
            log.info("created store %s with %d rows", store_url, len(store.samples))
            return store
        now = time.monotonic()
        if now - t0 > wait_timeout:
            raise StoreError(f"timed out after {wait_timeout:.0f} s waiting for shard 0 to create store {store_url}; "
                             "start shard 0 (it creates the store), or create it first with `mixsig cache init "
                             "STORE --manifest MANIFEST`")
        if now >= next_log:
            log.info("waiting for shard 0 to create store %s (%.0f s so far)", store_url, now - t0)
            next_log = now + log_every
        time.sleep(0.2)


def manifest_samples(manifest, like, media_hashes: dict | None = None):
    """The samples table of ``manifest`` without hashing media: text hashes are computed (cheap), the media
    hashes are ``media_hashes[m]`` where given, else copied from ``like`` (a :class:`~mixsig.cache.Samples`; so
    not compared). Same columns and values as :func:`mixsig.manifest.to_samples` otherwise."""
    from mixsig.cache import Samples
    from mixsig.manifest import text_hash

    from mixsig.errors import ManifestError

    rows, classes = manifest.rows, {c: i for i, c in enumerate(manifest.classes)}

    def index(label, row):
        if label not in classes:
            raise ManifestError(f"id {row.id!r}: label {label!r} is not in the classes {manifest.classes}; validate "
                                "the manifest first (`mixsig validate`)")
        return classes[label]

    def votes(lists):
        out = np.full((len(rows), max((len(v) for v in lists if v), default=0)), -1, np.int16)
        for i, v in enumerate(lists):
            out[i, :len(v or ())] = [index(x, rows[i]) for x in v or ()]
        return out

    def cell(v):
        return "" if v is None else v if isinstance(v, str) else json.dumps(v)

    hashes = {m: np.asarray(v) for m, v in like.content_hash.items()}
    hashes.update({m: np.asarray(v) for m, v in (media_hashes or {}).items()})
    hashes["text"] = np.asarray([text_hash(r.text) if r.text else "" for r in rows], dtype=str)
    return Samples(
        ids=[r.id for r in rows], split=[r.split for r in rows], classes=tuple(manifest.classes),
        label=[-1 if r.label is None else index(r.label, r) for r in rows], group=[r.group for r in rows],
        text=[r.text or "" for r in rows], audio=[r.audio or "" for r in rows], video=[r.video or "" for r in rows],
        start=[np.nan if r.start is None else r.start for r in rows],
        end=[np.nan if r.end is None else r.end for r in rows], content_hash=hashes,
        votes=votes([r.votes for r in rows]),
        votes_by_condition={c: votes([r.votes_by_condition.get(c) for r in rows]) for c in manifest.conditions},
        columns={c: [cell(r.extra.get(c)) for r in rows] for c in manifest.extra_columns})


def check_samples(store, manifest, media_hashes: dict | None = None, command: str = "mixsig extract",
                  samples=None) -> None:
    """Refuse (:class:`~mixsig.errors.RefusedInput`, exit 3) a manifest whose samples table differs from the
    store's: ids and classes (:class:`StoreError`), labels, splits, groups, text, media paths, segments, votes,
    extra columns, and the media hashes given in ``media_hashes`` (others are not re-hashed here). The message
    names the first rows and the columns, and the fixes. ``samples``: the manifest's full table (every media
    hash compared) when the caller built it anyway."""
    from mixsig.cache import describe_samples_diff, diff_samples
    from mixsig.errors import RefusedInput

    try:
        new = samples if samples is not None else manifest_samples(manifest, store.samples, media_hashes)
        diff = diff_samples(store.samples, new)
    except StoreError as exc:
        raise StoreError(f"manifest {manifest.path} does not fit store {store.url}: {exc}") from None
    if diff:
        raise RefusedInput(
            f"manifest {manifest.path} changed since store {store.url} was made from it: "
            f"{describe_samples_diff(diff, store.samples.ids)}. The store keeps the samples it was made from. "
            f"Pass `{command} ... --update-samples` to rewrite them and re-extract the changed rows of every key "
            "(runs made before keep their old split_hash), restore the manifest, or use a new --store")


def check_ids(store, manifest) -> None:
    have = store.samples.ids
    want = [r["id"] for r in manifest.rows]
    if len(have) != len(want) or have.tolist() != want:
        raise StoreError(f"store {store.url} holds {len(have)} rows whose ids differ from the {len(want)} rows "
                         f"of manifest {manifest.path}; use the manifest the store was made from, or a new store")


def sync_samples(store, manifest, *, update: bool, coordinator: bool = True, command: str = "mixsig extract",
                 break_lease: bool = False, samples=None):
    """Compare ``manifest`` with the store's samples (cheap: no media hashed) and refuse a difference, or with
    ``update`` (the coordinator only) hash the manifest's media (``samples``: its table if already built) and
    :func:`~mixsig.cache.update_samples` the store. Returns the :class:`~mixsig.cache.SamplesUpdate` or None."""
    check_ids(store, manifest)
    if not (update and coordinator):
        try:
            check_samples(store, manifest, command=command, samples=samples)
        except RefusedInput as exc:
            if update:  # a shard other than 0: the coordinator updates the table
                raise RefusedInput(f"{exc}. With --shard, shard 0 updates the samples: let it start first") from None
            raise
        return None
    from mixsig.cache import check_lease_free, update_samples
    from mixsig.manifest import store_attrs, to_samples

    if store.local_path is not None and not break_lease:  # refuse before hashing every media file
        for key in store.keys():
            check_lease_free(store.local_path, key, command=command)
    res = update_samples(store, samples if samples is not None else to_samples(manifest),
                         attrs=store_attrs(manifest, store.url), break_lease=break_lease, command=command)
    if res.changed:
        log.warning("store %s: samples table updated from manifest %s (%d columns changed); rows marked for "
                    "re-extraction: %s", store.url, manifest.path, len(res.columns), res.invalidated or "none")
    return res


def check_key_name(name: str | None, option: str = "--name") -> str | None:
    """``name`` if it is safe as the readable part of a key (and so of a folder name), else :class:`UsageError`."""
    from mixsig.cache import short_name

    if name is None:
        return None
    if not name or short_name(name) != name:
        raise UsageError(f"{option} {name!r} is not safe in a key or a path: use lowercase letters, digits, '-', "
                         f"'_' and '.' (not first or last), at most 40 characters, e.g. "
                         f"{option} {short_name(name or 'name')}")
    return name


def check_store_group_leak(store, allow: bool, command: str, allowed_by: str | None,
                           coordinator: bool = True) -> dict | None:
    """Refuse (:class:`~mixsig.errors.GroupLeak`, exit code 3) a store whose groups cross splits unless ``allow``;
    when allowed, the coordinator records ``store.group_leak()`` plus ``allowed_by`` (the command line) as the
    store's root attr ``group_leak``. Returns that record (None when no group crosses splits). Callers check the
    manifest first (:func:`mixsig.manifest.check_group_leak`), so that nothing is created before a refusal."""
    leak = store.check_group_leak(allow, command)
    if not leak:
        return None
    from mixsig.cache import describe_group_leak

    record = dict(leak, allowed_by=allowed_by or f"{command} --allow-group-leak")
    if coordinator:
        store.update_attrs(group_leak=record)
    log.warning("%s in store %s; going on as allowed by %s (recorded in the store)", describe_group_leak(leak),
                store.url, record["allowed_by"])
    return record


def prepare_key(store, encoder: Encoder, *, coordinator: bool, chunk_rows: int | None = None,
                extra: dict | None = None, wait_timeout: float = 600.0, name: str | None = None) -> str:
    """Create (coordinator) or wait for (other shards) the key of ``encoder``'s provenance; return the key.
    ``name`` replaces the encoder in the key's readable prefix (not hashed)."""
    prov = encoder.provenance(extra)
    key = prov.key(name)
    if coordinator:  # chunk_rows None: the store's default_chunk_rows
        store.create_key(prov, encoder.dim, chunk_rows=chunk_rows, dtype=encoder.dtype, name=name)
    else:
        store.wait_for_key(key, timeout=wait_timeout)
        have = store.provenance(key)
        if have != prov.to_dict():
            raise ProvenanceMismatch(f"key {key} was created with a different provenance than this shard's; start "
                                     "every shard with the same arguments")
    return key


def check_leases_first(store, modality: str, encoder: str, *, revision: str | None, pooling: str, layers: str,
                       dtype: str, shard: tuple[int, int], name: str | None) -> None:
    """Before the encoder is loaded or media hashed: refuse (:class:`~mixsig.errors.LeaseHeld`) when a live writer
    holds a conflicting lease on an existing key this run would write (same modality, encoder, pooling, layers,
    dtype and resolved revision; the revision is resolved only for a key that is held)."""
    from pathlib import Path

    from mixsig.cache import check_lease_free, leased_keys, short_name
    from mixsig.errors import LeaseHeld
    from mixsig.extract._revision import is_local, resolve_revision

    root = store.local_path
    if root is None:
        return
    shown = Path(encoder).expanduser().resolve().name if is_local(encoder) else encoder
    prefix = ".".join(short_name(p) for p in (modality, name, pooling)) + "." if name else None
    want = {"modality": modality, "pooling": pooling, "dtype": dtype}
    if str(layers).strip().lower() in ("last", "all"):
        want["layers"] = str(layers).strip().lower()
    for key in leased_keys(root):
        if not store.has_key(key):
            continue
        prov = store.provenance(key)
        if any(prov.get(k) != v for k, v in want.items()) or (
                not key.startswith(prefix) if prefix else prov.get("encoder") != shown):
            continue
        try:
            check_lease_free(root, key, shard, command="mixsig extract")
        except LeaseHeld:
            if resolve_revision(encoder, revision) == prov.get("revision"):
                raise


def extract(manifest, store, modality: str, encoder: str | Encoder, *, revision: str | None = None,
            pooling: str = "cls", layers: str = "last", dtype: str = "float32", preprocess: Preprocess | None = None,
            options: RunOptions = RunOptions(), shard: tuple[int, int] = (0, 1), device: str | None = None,
            trust_remote_code: bool = False, chunk_rows: int | None = None, classes=None, extra: dict | None = None,
            wait_timeout: float = 600.0, on_rows: Callable[[int], None] | None = None,
            on_block: Callable[[int, int], None] | None = None, on_total: Callable[[int], None] | None = None,
            on_key: Callable[[str], None] | None = None, name: str | None = None, threads: int | None = None,
            allow_group_leak: bool = False, allowed_by: str | None = None, update_samples: bool = False,
            break_lease: bool = False, allow_outside_paths: bool = False) -> ExtractResult:
    """Extract pooled embeddings of ``modality`` for the rows of ``manifest`` into ``store`` (shard ``(i, n)``).

    ``manifest``: a path or a loaded :class:`~mixsig.manifest.Manifest`. ``store``: a store URL/folder (created
    from the manifest by shard 0 if missing) or an open :class:`~mixsig.cache.FeatureStore`. ``encoder``: a hub
    name, a local folder saved with ``save_pretrained``, or an already loaded :class:`Encoder`.

    ``name``: the readable part of the key in place of the encoder's name (``<modality>.<name>.<pooling>.<hash>``;
    not hashed, so the same hash means the same features). ``threads``: torch threads while extracting (restored
    after; None = :func:`~mixsig.extract.default_threads`, as the CLI, so that API and CLI runs of a key compute
    with the same thread count and so the same bits). Groups that cross splits raise :class:`~mixsig.errors.GroupLeak` (exit code 3)
    unless ``allow_group_leak``; then the leak and ``allowed_by`` (the command line) go into the store's root attr
    ``group_leak`` and into ``result.group_leak`` (not into the key's provenance: same features, same key).

    Media paths that are absolute or lead out of the manifest's folder are refused
    (:class:`~mixsig.errors.RefusedInput`, exit 3) before any file is opened, unless ``allow_outside_paths``.

    A manifest that differs from the store's samples table (labels, splits, text, media paths or content...) is
    refused (:class:`~mixsig.errors.RefusedInput`) unless ``update_samples``: then (shard 0) the table is
    rewritten and the changed rows of every key are recomputed (:func:`mixsig.cache.update_samples`;
    ``result.samples_update``). Leases are checked before the encoder is loaded and the media hashed;
    ``break_lease`` takes over another writer's lease (only when that writer is gone).

    Returns an :class:`ExtractResult`; rows that fail are in ``result.ledger`` and in the key's ``status`` /
    ``message`` arrays. Example::

        >>> res = extract("demo/manifest.csv", "cache.zarr", "text", "roberta-base", pooling="cls")  # doctest: +SKIP
        >>> res.key, res.written, res.failed                                                         # doctest: +SKIP
        ('text.roberta-base.cls.3f9a1c0d2b7e', 120, {})
    """
    from mixsig.extract._threads import default_threads, torch_threads

    check_key_name(name, "--name")
    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise UsageError(f"--threads must be >= 1; got {threads}")
    with removed_on_failure(store, shard):  # a failed first extraction leaves no empty store behind
        manifest, store, leak, update = _open_checked(manifest, store, classes, shard, wait_timeout, allow_group_leak,
                                                      allowed_by, update_samples, break_lease, allow_outside_paths)
        if not isinstance(encoder, Encoder) and not break_lease:
            check_leases_first(store, modality, encoder, revision=revision, pooling=pooling, layers=layers,
                               dtype=dtype, shard=shard, name=name)
        with torch_threads(threads):
            if not isinstance(encoder, Encoder):
                encoder = load_encoder(modality, encoder, revision=revision, pooling=pooling, layers=layers,
                                       dtype=dtype, preprocess=preprocess, device=device,
                                       trust_remote_code=trust_remote_code)
            key = prepare_key(store, encoder, coordinator=shard[0] == 0, chunk_rows=chunk_rows, extra=extra,
                              wait_timeout=wait_timeout, name=name)
            if on_key:
                on_key(key)
            m = encoder.modality
            with store.writer(key, shard=shard, break_lease=break_lease, command="mixsig extract") as writer:  # the lease, before hashing media
                known = store.samples.content_hash.get(m) if update is not None else None
                inputs = current_inputs(manifest, m, hashes=known)
                current = inputs.content_hash[m]
                if known is None and m != "text":
                    check_samples(store, manifest, media_hashes={m: current})
                res = run_extraction(store, key, encoder, lambda rows: row_sources(inputs, manifest.root, m, rows, current),
                                     shard=shard, options=options, current_hash=current, on_rows=on_rows,
                                     on_block=on_block, on_total=on_total, writer=writer)
    res.group_leak, res.threads = leak, threads
    res.samples_update = update.to_dict() if update is not None else None
    return res


def load_checked(manifest, classes, allow_outside_paths: bool, command: str):
    """``manifest`` loaded (a path) or as given (a Manifest), refused when its media paths lead outside its folder
    unless ``allow_outside_paths`` (:class:`~mixsig.errors.RefusedInput`; no file outside is opened)."""
    from mixsig.manifest import Manifest, check_outside_paths, load_manifest

    if not isinstance(manifest, Manifest):
        return load_manifest(manifest, classes=classes, check_media=False, group_leak_errors=False,
                             allow_outside_paths=allow_outside_paths)
    check_outside_paths(manifest, allow_outside_paths, command)
    if allow_outside_paths and not manifest.outside_paths_allowed:  # to_samples then hashes them, as extract does
        import dataclasses

        manifest = dataclasses.replace(manifest, outside_paths_allowed=True)
    return manifest


def _open_checked(manifest, store, classes, shard, wait_timeout, allow_group_leak, allowed_by, update_samples,
                  break_lease, allow_outside_paths=False):
    """The manifest (loaded), the store (opened or created), the allowed group leak and the samples update of an
    extraction: groups crossing splits refused before anything is created, the samples compared with the store's."""
    from mixsig.cache import FeatureStore
    from mixsig.manifest import check_group_leak, to_samples

    manifest = load_checked(manifest, classes, allow_outside_paths, "mixsig extract")
    check_group_leak(manifest, allow_group_leak, "mixsig extract")  # refuse before creating anything
    coordinator = shard[0] == 0
    if not isinstance(store, FeatureStore):
        store = open_or_create_store(store, manifest, lambda: to_samples(manifest), coordinator=coordinator,
                                     wait_timeout=wait_timeout)
    update = sync_samples(store, manifest, update=update_samples, coordinator=coordinator, break_lease=break_lease)
    leak = check_store_group_leak(store, allow_group_leak, "mixsig extract", allowed_by, coordinator=coordinator)
    return manifest, store, leak, update


__all__ = ["check_key_name", "check_leases_first", "check_samples", "check_store_group_leak", "extract",
           "manifest_samples", "open_or_create_store", "prepare_key", "sync_samples"]
