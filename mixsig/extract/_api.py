"""``extract``: a manifest + a store + an encoder -> one feature key filled (one shard of it)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from mixsig.errors import ProvenanceMismatch, StoreError, UsageError
from mixsig.extract._encoders import Preprocess
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


def current_inputs(manifest, modality: str, workers: int = 4) -> CurrentInputs:
    """Hash only ``modality``'s inputs (texts / media files + segment), files in a thread pool; same hashes as
    :func:`mixsig.manifest.to_samples` ("" = none or unreadable)."""
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

    with ThreadPoolExecutor(max_workers=workers) as pool:
        hashes = np.asarray(list(pool.map(one, rows)), dtype=str).reshape(n)
    return CurrentInputs(ids=col("id"), text=col("text"), audio=col("audio"), video=col("video"), start=num("start"),
                         end=num("end"), content_hash={modality: hashes})


def open_or_create_store(store_url, manifest, samples, *, coordinator: bool, wait_timeout: float = 600.0):
    """Open the store at ``store_url`` for writing; the coordinator creates it from ``samples`` if missing,
    other shards wait for it. Refuses a store whose ids differ from the manifest's. ``samples`` may be a
    callable returning them (only called when the store must be created)."""
    from mixsig.cache import create_store, open_store
    from mixsig.manifest import store_attrs

    deadline = time.monotonic() + wait_timeout
    while True:
        try:
            store = open_store(store_url, "r+")
            break
        except StoreError:
            if coordinator:
                try:
                    samples = samples() if callable(samples) else samples
                    store = create_store(store_url, samples, attrs=store_attrs(manifest, store_url))
                    log.info("created store %s with %d rows", store_url, len(samples))
                    break
                except StoreError:
                    if time.monotonic() > deadline:
                        raise
            elif time.monotonic() > deadline:
                raise StoreError(f"timed out after {wait_timeout:.0f} s waiting for shard 0 to create store {store_url}")
            time.sleep(0.2)
    check_ids(store, manifest)
    return store


def check_ids(store, manifest) -> None:
    have = store.samples.ids
    want = [r["id"] for r in manifest.rows]
    if len(have) != len(want) or have.tolist() != want:
        raise StoreError(f"store {store.url} holds {len(have)} rows whose ids differ from the {len(want)} rows "
                         f"of manifest {manifest.path}; use the manifest the store was made from, or a new store")


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


def extract(manifest, store, modality: str, encoder: str | Encoder, *, revision: str | None = None,
            pooling: str = "cls", layers: str = "last", dtype: str = "float32", preprocess: Preprocess | None = None,
            options: RunOptions = RunOptions(), shard: tuple[int, int] = (0, 1), device: str | None = None,
            trust_remote_code: bool = False, chunk_rows: int | None = None, classes=None, extra: dict | None = None,
            wait_timeout: float = 600.0, on_rows: Callable[[int], None] | None = None,
            on_block: Callable[[int, int], None] | None = None, on_total: Callable[[int], None] | None = None,
            on_key: Callable[[str], None] | None = None, name: str | None = None, threads: int | None = None,
            allow_group_leak: bool = False, allowed_by: str | None = None) -> ExtractResult:
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

    Returns an :class:`ExtractResult`; rows that fail are in ``result.ledger`` and in the key's ``status`` /
    ``message`` arrays. Example::

        >>> res = extract("demo/manifest.csv", "cache.zarr", "text", "roberta-base", pooling="cls")  # doctest: +SKIP
        >>> res.key, res.written, res.failed                                                         # doctest: +SKIP
        ('text.roberta-base.cls.3f9a1c0d2b7e', 120, {})
    """
    from mixsig.cache import FeatureStore
    from mixsig.manifest import Manifest, load_manifest, to_samples

    from mixsig.extract._threads import default_threads, torch_threads
    from mixsig.manifest import check_group_leak

    check_key_name(name, "--name")
    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise UsageError(f"--threads must be >= 1; got {threads}")
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, classes=classes, check_media=False, group_leak_errors=False)
    check_group_leak(manifest, allow_group_leak, "mixsig extract")  # refuse before creating anything
    coordinator = shard[0] == 0
    if not isinstance(store, FeatureStore):
        store = open_or_create_store(store, manifest, lambda: to_samples(manifest), coordinator=coordinator,
                                     wait_timeout=wait_timeout)
    else:
        check_ids(store, manifest)
    leak = check_store_group_leak(store, allow_group_leak, "mixsig extract", allowed_by, coordinator=coordinator)
    with torch_threads(threads):
        if not isinstance(encoder, Encoder):
            encoder = load_encoder(modality, encoder, revision=revision, pooling=pooling, layers=layers,
                                   dtype=dtype, preprocess=preprocess, device=device,
                                   trust_remote_code=trust_remote_code)
        key = prepare_key(store, encoder, coordinator=coordinator, chunk_rows=chunk_rows, extra=extra,
                          wait_timeout=wait_timeout, name=name)
        if on_key:
            on_key(key)
        inputs = current_inputs(manifest, encoder.modality)
        current = inputs.content_hash[encoder.modality]
        res = run_extraction(
            store, key, encoder, lambda rows: row_sources(inputs, manifest.root, encoder.modality, rows, current),
            shard=shard, options=options, current_hash=current, on_rows=on_rows, on_block=on_block,
            on_total=on_total)
    res.group_leak = leak
    res.threads = threads
    return res


__all__ = ["check_key_name", "check_store_group_leak", "extract", "open_or_create_store", "prepare_key"]
