"""Helpers for stores on fsspec URLs (``s3://bucket/path`` through s3fs, with the standard AWS variables
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``).

Object stores have no rename and no O_EXCL file, so what local stores do with folders and files is done here with
objects:

- exclusive creation of a small object (a lease, a lock): a conditional ``PutObject`` with ``If-None-Match: *``
  (s3fs ``pipe_file(..., mode="create")``), which fails for every writer but one;
- replacing or deleting an object only if it is still the one this process read: ``If-Match: <etag>``;
- store creation: the store is built in a local temp folder and uploaded with its root ``zarr.json`` (which
  holds ``mixsig_store``) last, so the URL reads as no store until the whole store is there
  (:func:`upload_store`); a creator killed mid-upload leaves only objects :func:`remote_state` calls half-made,
  which the next creation deletes before it uploads.

Other fsspec protocols get the same calls where their filesystem has them (fsspec's generic ``mode="create"`` is
a check-then-write, not atomic: only S3-compatible stores are supported for several writers at once).
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from mixsig.errors import StoreError

log = logging.getLogger(__name__)

#: what create_store puts at a store's top level (anything else under a prefix without ``zarr.json`` is not ours)
MADE_BY_CREATE = {"zarr.json", "samples", "features", "runs", ".mixsig"}


def is_remote(url) -> bool:
    """True for an fsspec URL other than ``file://`` (``s3://...``, ``gs://...``, ``memory://...``)."""
    url = str(url)
    return "://" in url and not url.startswith("file://")


def filesystem(url: str):
    """``(fs, path)`` for ``url``: a synchronous fsspec filesystem (credentials and endpoint from the
    environment, as s3fs reads them) and the path in it. A missing s3fs is one :class:`StoreError` line."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(str(url))
    except ImportError as exc:
        raise StoreError(f"store {url}: {exc}. Install the object-storage extra: pip install 'mixsig[s3]'") from exc
    return fs, path.rstrip("/")


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def _s3(fs) -> bool:
    return type(fs).__module__.startswith("s3fs")


def put_new(fs, path: str, data: bytes) -> str | None:
    """Create object ``path`` holding ``data`` only if it does not exist (``If-None-Match: *``): its ETag, or
    None when it exists already (another writer created it first)."""
    try:
        out = fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return None
    return _etag(fs, path, out)


def put_if_match(fs, path: str, data: bytes, etag: str) -> str | None:
    """Replace object ``path`` with ``data`` only if its ETag is still ``etag``: the new ETag, or None when the
    object changed or is gone (another writer replaced or deleted it)."""
    if not _s3(fs):
        if etag_of(fs, path) != etag:
            return None
        return _etag(fs, path, fs.pipe_file(path, data))
    try:
        out = fs.pipe_file(path, data, IfMatch=etag)
    except FileNotFoundError:
        return None
    except OSError as exc:  # s3fs maps 412 PreconditionFailed (If-Match) to EINVAL
        if exc.errno == errno.EINVAL or "Precondition" in str(exc):
            return None
        raise
    return _etag(fs, path, out)


def delete_if_match(fs, path: str, etag: str | None) -> bool:
    """Delete object ``path`` if its ETag is still ``etag`` (any ETag when None); False when it changed."""
    if etag is not None and _s3(fs):
        bucket, key, _ = fs.split_path(path)
        try:
            fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno == errno.EINVAL or "Precondition" in str(exc):
                return False
            raise
        finally:
            fs.invalidate_cache(path)
        return True
    if etag is not None and etag_of(fs, path) != etag:
        return False
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    return True


def read_object(fs, path: str) -> tuple[bytes | None, str | None]:
    """``(bytes, etag)`` of object ``path``, ``(None, None)`` when there is none."""
    try:
        info = fs.info(path, refresh=True) if _s3(fs) else fs.info(path)
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None, None
    return data, _norm(info.get("ETag") or info.get("etag"))


def etag_of(fs, path: str) -> str | None:
    try:
        info = fs.info(path, refresh=True) if _s3(fs) else fs.info(path)
    except FileNotFoundError:
        return None
    return _norm(info.get("ETag") or info.get("etag") or str(info.get("mtime") or info.get("created") or ""))


def _norm(etag) -> str | None:
    return None if etag is None else str(etag).strip('"')


def _etag(fs, path: str, out) -> str | None:
    if isinstance(out, dict) and out.get("ETag"):
        return _norm(out["ETag"])
    return etag_of(fs, path)


def list_prefix(fs, path: str, recursive: bool = False) -> list[str]:
    """Object names under ``path`` (relative to it); [] when there are none."""
    try:
        if recursive:
            return sorted(p[len(path) + 1:] for p in fs.find(path, refresh=True) if p.startswith(path + "/"))
        return sorted(os.path.basename(p.rstrip("/")) for p in fs.ls(path, detail=False, refresh=True))
    except FileNotFoundError:
        return []


def remote_state(url: str) -> str:
    """What is at remote ``url`` (see :func:`mixsig.cache.store_state`): one listing of its top level, then the
    root ``zarr.json`` read when there is one."""
    import json

    fs, path = filesystem(url)
    names = set(list_prefix(fs, path))
    if not names:
        return "missing"
    if "zarr.json" in names:
        try:
            meta = json.loads(fs.cat_file(join(path, "zarr.json")))
        except (FileNotFoundError, ValueError):
            return "other"
        return "store" if (meta.get("attributes") or {}).get("mixsig_store") is not None else "other"
    if not names <= MADE_BY_CREATE:
        return "other"
    for sub in ("features", "runs"):  # an interrupted upload made no keys or runs
        if any(n != "zarr.json" for n in list_prefix(fs, join(path, sub))):
            return "other"
    return "half-made"


def upload_store(local: Path, url: str, replace: bool) -> None:
    """Upload the store built at folder ``local`` to ``url``, its root ``zarr.json`` last (what makes it a
    store). With ``replace``, what is under ``url`` (a half-made store, or one being overwritten) is deleted
    first. Raises :class:`StoreError` naming the URL on a failure (what was uploaded is then half-made: the next
    creation removes it)."""
    fs, path = filesystem(url)
    try:
        if replace:
            old = list_prefix(fs, path, recursive=True)
            if old:
                fs.rm([join(path, n) for n in old])
        files = sorted(p for p in local.rglob("*") if p.is_file() and p.relative_to(local).as_posix() != "zarr.json")
        if files:
            fs.put([str(p) for p in files], [join(path, p.relative_to(local).as_posix()) for p in files])
        fs.put_file(str(local / "zarr.json"), join(path, "zarr.json"))
    except OSError as exc:
        raise StoreError(f"uploading store {url} failed ({exc}); it is left half-made and the next `mixsig cache "
                         "init` or `mixsig extract` replaces it. Check the credentials and AWS_ENDPOINT_URL, and "
                         "rerun") from exc


def create_remote(url: str, samples, attrs: dict | None, overwrite: bool):
    """:func:`mixsig.cache.create_store` for a remote ``url``: under the creation lock ``.<name>.create.lock``
    beside it (an object, :func:`~mixsig.cache._lease_remote.remote_mutex`), the store is built in a local temp
    folder and uploaded with its root ``zarr.json`` last (:func:`upload_store`)."""
    import shutil
    import tempfile

    from mixsig.cache._create import _build, _open_group
    from mixsig.cache._lease_remote import remote_mutex
    from mixsig.cache._store import FeatureStore

    parent, _, name = str(url).rstrip("/").rpartition("/")
    with remote_mutex(f"{parent}/.{name}.create.lock", timeout=600, what=f"another process creating store {url}"):
        state = remote_state(url)
        if state == "store" and not overwrite:
            raise StoreError(f"a store exists at {url}; open it with open_store, or delete it to start over")
        if state == "other" and not overwrite:
            raise StoreError(f"{url} already holds data that is not a mixsig store; choose another path")
        if state == "half-made":
            log.warning("a store left half-made by an interrupted creation (no root zarr.json) at %s: replacing it",
                        url)
        elif state == "store":
            log.warning("overwriting the store at %s", url)
        tmp = Path(tempfile.mkdtemp(prefix="mixsig-create-"))
        try:
            _build(str(tmp / "store.zarr"), samples() if callable(samples) else samples, attrs)
            upload_store(tmp / "store.zarr", url, replace=state != "missing")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return FeatureStore(_open_group(url, "r+"), url, "r+")
