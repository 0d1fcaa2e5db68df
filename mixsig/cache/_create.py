"""Creating and opening stores: :func:`create_store` and :func:`open_store`."""

from __future__ import annotations

import logging

from mixsig.cache._samples import Samples, write_samples
from mixsig.cache._store import STORE_FORMAT, FeatureStore, _now
from mixsig.errors import StoreError

log = logging.getLogger(__name__)


def _open_group(url, mode):
    import zarr

    return zarr.open_group(store=str(url), mode=mode)


def create_store(url, samples: Samples, attrs: dict | None = None, overwrite: bool = False) -> FeatureStore:
    """Create a store at ``url`` (a folder path or any URL zarr's fsspec store takes) holding ``samples``."""
    import zarr
    from mixsig import __version__

    url = str(url)
    try:
        existing = zarr.open_group(store=url, mode="r")
        exists = True
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        exists = False
    if exists and not overwrite:
        if existing.attrs.get("mixsig_store") is not None:
            raise StoreError(f"a store exists at {url}; open it with open_store, or delete it to start over")
        raise StoreError(f"{url} already holds Zarr data that is not a mixsig store; choose another path")
    group = zarr.open_group(store=url, mode="w")
    write_samples(group.create_group("samples"), samples)
    group.create_group("features")
    group.create_group("runs")
    group.attrs.update(dict(attrs or {}, created=_now(), mixsig_version=__version__))
    group.attrs["mixsig_store"] = STORE_FORMAT  # last: marks a complete store
    return FeatureStore(group, url, "r+")


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
    return FeatureStore(group, url, mode)
