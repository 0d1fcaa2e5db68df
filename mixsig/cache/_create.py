"""Creating and opening stores: :func:`create_store` and :func:`open_store`.

A local store is created atomically: it is built in a temp folder beside the target
(``.<name>.creating-<pid>-<hex>``, holding ``creator.json``) and renamed into place once complete, under a
creation lock beside the target (``.<name>.create.lock``, logged while waited for). So the target is either absent
or a whole store: a creator killed (or out of disk) leaves only its temp folder, which the next creation removes
once its process is gone. Other URLs (fsspec: ``s3://...``) are built in a local temp folder and uploaded with
the root ``zarr.json`` (``mixsig_store``) last, under a lock object beside the target
(:func:`mixsig.cache._remote.create_remote`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Callable

from mixsig.cache._dims import state_dir
from mixsig.cache._lease import _mutex, disk_error, holder_is_stale
from mixsig.cache._samples import Samples, write_samples
from mixsig.cache._store import STORE_FORMAT, FeatureStore, _now
from mixsig.errors import StoreError

log = logging.getLogger(__name__)

#: what create_store puts in a store (anything else in a folder without ``mixsig_store`` is someone's data)
_MADE_BY_CREATE = {"zarr.json", "samples", "features", "runs", ".mixsig"}


def _open_group(url, mode):
    import zarr

    return zarr.open_group(store=str(url), mode=mode)


def _local(url: str) -> Path | None:
    return None if "://" in url and not url.startswith("file://") else Path(url.removeprefix("file://"))


def store_state(url) -> str:
    """What is at ``url``: ``"missing"``, ``"store"`` (a complete mixsig store), ``"half-made"`` (a local folder with
    only what an interrupted :func:`create_store` of an older mixsig leaves: no ``mixsig_store`` attr, no feature
    keys or runs) or ``"other"`` (Zarr or other data that is not a mixsig store)."""
    import zarr

    url = str(url)
    path = _local(url)
    if path is None:  # object storage: one listing, no folders
        from mixsig.cache._remote import remote_state

        return remote_state(url)
    if not path.exists():
        return "missing"
    if path is not None and path.is_dir() and not any(path.iterdir()):
        return "half-made"
    try:
        group = zarr.open_group(store=url, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        if path is None:
            return "missing"
        return "half-made" if path.is_dir() and _only_made_by_create(path) else "other"
    if group.attrs.get("mixsig_store") is not None:
        return "store"
    return "half-made" if path is not None and _only_made_by_create(path) else "other"


def _only_made_by_create(path: Path) -> bool:
    """True when ``path`` holds nothing but an empty skeleton of a store (its samples/ aside)."""
    names = {p.name for p in path.iterdir()}
    if not names <= _MADE_BY_CREATE:
        return False
    for sub in ("features", "runs"):
        d = path / sub
        if d.is_dir() and any(p.name != "zarr.json" for p in d.iterdir()):
            return False
    return True


def create_store(url, samples: Samples | Callable[[], Samples], attrs: dict | None = None, overwrite: bool = False) -> FeatureStore:
    """Create a store at ``url`` (a folder path or any URL zarr's fsspec store takes) holding ``samples``.

    Local folders are built beside the target and renamed into place (atomic); a folder left half-made by an
    interrupted creation of an older mixsig (no ``mixsig_store`` attr, no keys or runs) is rebuilt. A full disk
    raises one :class:`StoreError` and leaves nothing at ``url``. ``samples`` may be a callable returning them,
    called only once the store is known to be missing (under the creation lock: one process hashes the media).
    A full disk while writing the creation lock is one :class:`StoreError` too (naming the lock file)."""
    url = str(url)
    path = _local(url)
    if path is None:  # object storage: built locally, uploaded with the root zarr.json last
        from mixsig.cache._remote import create_remote

        return create_remote(url, samples, attrs, overwrite)
    path = path.expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise disk_error(path.parent, exc, "creating the folder of store") from exc
    lock = path.parent / f".{path.name}.create.lock"
    with _mutex(lock, timeout=600, what=f"another process creating store {url}"):
        _remove_dead_temps(path)
        state = store_state(path)
        if state == "store" and not overwrite:
            raise StoreError(f"a store exists at {url}; open it with open_store, or delete it to start over")
        if state == "other" and not overwrite:
            raise StoreError(f"{url} already holds data that is not a mixsig store; choose another path")
        tmp = path.parent / f".{path.name}.creating-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            (tmp / "creator.json").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
            _build(str(tmp), samples() if callable(samples) else samples, attrs, mode="a")  # keeps creator.json
            (tmp / "creator.json").unlink()
            if state != "missing":
                log.warning("%s at %s: replacing it", "overwriting the store" if state == "store" else
                            "a store left half-made by an interrupted creation (no mixsig_store attr, no keys)", url)
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            os.rename(tmp, path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"creating store {url} failed ({exc}); nothing was left at {url}. Free disk space "
                             "(or fix the folder's permissions) and rerun") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return FeatureStore(_open_group(url, "r+"), url, "r+")


def _build(url: str, samples: Samples, attrs: dict | None, mode: str = "w"):
    import zarr
    from mixsig import __version__

    group = zarr.open_group(store=url, mode=mode)
    if _local(url) is not None:
        state_dir(_local(url))  # the folder of leases, locks and the study journal, hidden from zarr
    write_samples(group.create_group("samples"), samples)
    group.create_group("features")
    group.create_group("runs")
    group.attrs.update(dict(attrs or {}, created=_now(), mixsig_version=__version__))
    group.attrs["mixsig_store"] = STORE_FORMAT  # last: marks a complete store
    return group


def _remove_dead_temps(path: Path) -> None:
    """Remove temp folders of creations of ``path`` whose process is gone (killed, or out of disk)."""
    for tmp in path.parent.glob(f".{path.name}.creating-*"):
        try:
            info = json.loads((tmp / "creator.json").read_text())
        except (OSError, ValueError):
            info = {}
        if not info or holder_is_stale(info):
            log.info("removing %s, left by an interrupted creation of store %s", tmp, path)
            shutil.rmtree(tmp, ignore_errors=True)


def open_store(url, mode: str = "r") -> FeatureStore:
    """Open an existing store (``mode`` "r" or "r+"). Raises :class:`StoreError` naming the fix if it isn't one."""
    import zarr

    if mode not in ("r", "r+"):
        raise StoreError(f"The 'mode' of open_store must be one of {{'r', 'r+'}}. Got {mode!r} instead.")
    try:
        group = _open_group(url, mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError) as exc:
        raise StoreError(f"no mixsig store at {url} ({type(exc).__name__}); create one with "
                         "`mixsig cache init STORE --manifest MANIFEST` or `mixsig extract`") from exc
    store = FeatureStore(group, url, mode)
    if mode == "r+" and store.local_path is not None:
        state_dir(store.local_path)  # a store of an older mixsig: its .mixsig/ folder becomes an empty array
    return store
