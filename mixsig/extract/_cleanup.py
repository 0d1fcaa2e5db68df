"""A first ``mixsig extract`` that fails leaves no store behind: the store it created (local, shard 0, holding no
feature key and no run yet) is removed again, so a rerun with a fixed encoder name starts clean."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def _new_local_store(store, shard: tuple[int, int]) -> Path | None:
    """The local folder of ``store`` when this call is the one to create it (shard 0, nothing there yet)."""
    from mixsig.cache import FeatureStore, store_state

    if isinstance(store, FeatureStore) or shard[0] != 0:
        return None
    url = str(store)
    if url.startswith("file://"):
        url = url[len("file://"):]
    elif "://" in url:
        return None
    return Path(url) if store_state(url) == "missing" else None


@contextlib.contextmanager
def removed_on_failure(store, shard: tuple[int, int]):
    """Inside: an extraction into ``store``. On any exception (Ctrl-C included), a store this extraction created
    that still holds no key and no run is deleted, then the exception propagates."""
    created = _new_local_store(store, shard)
    try:
        yield
    except BaseException:
        if created is not None:
            _remove_if_empty(created)
        raise


def _remove_if_empty(path: Path) -> None:
    from mixsig.cache import open_store, store_state

    try:
        if store_state(str(path)) == "store":
            st = open_store(str(path))
            if st.keys() or st.runs():
                return
        elif not path.is_dir() or any(path.iterdir()):
            return
        shutil.rmtree(path)
        log.info("removed the store %s this failed extraction had created (it held no feature key yet)", path)
    except OSError as exc:  # pragma: no cover - best effort; the original error matters more
        log.warning("could not remove the empty store %s left by the failed extraction: %s", path, exc)
