"""A run's fitted heads kept inside the store (``mixsig train --save-heads``, a study's winner, ``mixsig predict``).

Layout: each file of a head's saved folder (``Head.save``: ``head.json`` and ``model.safetensors`` or LightGBM's
``model.txt``) is one zarr array of uint8 bytes, crc32c-coded with its chunk digests in its attrs (like every
write-once array), at ``runs/<run>/heads/<subset>/<seed>/<file>``; each seed's group records the file names,
their sizes and sha256 (attrs ``files``). The run's attr ``saved_heads: true`` is written last, once every head is
in: a run without it has no usable heads (an interrupted write, or a run trained without ``--save-heads``).

Reading gives the files back into a folder, each checked (CRC32C, digests on local stores, size, sha256) before
the heads' own loader reads it (which refuses pickles and torch files and checks every file it parses). This
module does not import the heads (the cache sits below them): :func:`load_heads` takes the loader
(``mixsig.heads.load_head``).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from mixsig.cache._digest import attr_digests, check_tails, crc_codecs, record_digests
from mixsig.errors import CorruptChunk, StoreError

#: The run attr saying that every head of the run is stored.
SAVED_ATTR = "saved_heads"
#: The group of a run holding its heads.
HEADS_GROUP = "heads"
#: Bytes per chunk of a saved file's array.
CHUNK_BYTES = 1 << 20
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _run_group(store, run: str):
    runs = store.root["runs"]
    if run not in set(runs.group_keys()):
        raise StoreError(f"no run named {run!r} in store {store.url}; runs: {sorted(runs.group_keys()) or 'none'} "
                         f"(`mixsig runs ls STORE` lists them)")
    return runs[run]


def has_saved_heads(store, run: str) -> bool:
    """Whether run ``run`` of ``store`` keeps every fitted head (attr ``saved_heads``)."""
    return bool(_run_group(store, run).attrs.get(SAVED_ATTR))


def _no_heads_fix(store, run: str, attrs: dict) -> str:
    feats = ",".join(f"{m}={k}" for m, k in (attrs.get("features") or {}).items()) or "M=KEY,..."
    return (f"run {run!r} of {store.url} has no saved heads (source {attrs.get('source')!r}; only runs of "
            f"`mixsig train ... --save-heads`, a study's winner and `mixsig predict` keep them); train it again "
            f"keeping them: `mixsig train {store.url} --head {attrs.get('head') or 'HEAD'} --features {feats} "
            f"--name {run} --overwrite --save-heads`")


def save_heads(store, run: str, folders: dict[str, list]) -> None:
    """Store the saved-head folders ``{subset: [folder per seed, in the run's seed order]}`` (each written by
    ``Head.save``: plain files only) with complete run ``run``, then mark it ``saved_heads``."""
    store._require_writable()
    g = _run_group(store, run)
    if not g.attrs.get("complete"):
        raise StoreError(f"run {run!r} was interrupted while being written; train it again with overwrite")
    seeds = [int(s) for s in g.attrs.get("seeds") or []]
    if SAVED_ATTR in g.attrs:
        del g.attrs[SAVED_ATTR]
    if HEADS_GROUP in set(g.group_keys()):
        del g[HEADS_GROUP]
    hg = g.create_group(HEADS_GROUP)
    root = store.local_path
    for sub, paths in folders.items():
        paths = list(paths)
        if len(paths) != len(seeds):
            raise StoreError(f"run {run!r} subset {sub!r}: {len(paths)} saved heads for {len(seeds)} seeds {seeds}")
        sg = hg.create_group(sub)
        for seed, folder in zip(seeds, paths):
            _save_folder(sg.create_group(str(seed)), Path(folder), f"runs/{run}/heads/{sub}/{seed}", root)
    g.attrs[SAVED_ATTR] = True  # last: heads without it are an interrupted write


def _save_folder(fg, folder: Path, label: str, root) -> None:
    files = {}
    for f in sorted(folder.iterdir()):
        if f.is_symlink() or not f.is_file() or not _NAME.match(f.name):
            raise StoreError(f"{f}: a saved head's folder holds plain files with plain names only; save it again "
                             f"with Head.save(folder)")
        data = f.read_bytes()
        n = len(data)
        # its own dimension name: xarray needs the arrays of one group that share a name to share its size
        a = fg.create_array(f.name, shape=(n,), dtype="uint8", chunks=(max(1, min(n, CHUNK_BYTES)),),
                            fill_value=0, compressors=crc_codecs(True), dimension_names=(f"{f.name}_byte",))
        if n:
            a[...] = np.frombuffer(data, np.uint8)
        record_digests(a, root)
        files[f.name] = {"bytes": n, "sha256": hashlib.sha256(data).hexdigest()}
    if not files:
        raise StoreError(f"{folder}: no saved head files in it ({label}); save the head with Head.save(folder)")
    fg.attrs["files"] = files


def extract_heads(store, run: str, into) -> dict[str, list[Path]]:
    """Write run ``run``'s saved heads into folder ``into`` as ``<subset>/<seed>/<file>``, every file checked
    (CRC32C, its chunks' digests on a local store, size and sha256); returns ``{subset: [folder per seed]}`` in
    the run's seed order. A run without saved heads raises :class:`StoreError` with the command that keeps them;
    a damaged file raises :class:`CorruptChunk`."""
    g = _run_group(store, run)
    attrs = dict(g.attrs)
    if not attrs.get(SAVED_ATTR) or HEADS_GROUP not in set(g.group_keys()):
        raise StoreError(_no_heads_fix(store, run, attrs))
    seeds = [int(s) for s in attrs.get("seeds") or []]
    hg, into, root = g[HEADS_GROUP], Path(into), store.local_path
    out: dict[str, list[Path]] = {}
    order = {m: i for i, m in enumerate(attrs.get("modalities") or [])}
    for sub in sorted(hg.group_keys(), key=lambda s: (s.count("+"), [order.get(m, 99) for m in s.split("+")])):
        sg = hg[sub]
        out[sub] = []
        for seed in seeds:
            if str(seed) not in set(sg.group_keys()):
                raise CorruptChunk(f"runs/{run}/heads/{sub} lacks the head of seed {seed}; {_refit(run)}")
            folder = into / sub / str(seed)
            folder.mkdir(parents=True, exist_ok=True)
            _extract_folder(sg[str(seed)], folder, f"runs/{run}/heads/{sub}/{seed}", run, root)
            out[sub].append(folder)
    return out


def _refit(run: str) -> str:
    return (f"the saved heads of run {run!r} are damaged: train it again with `mixsig train ... --name {run} "
            f"--overwrite --save-heads`")


def _extract_folder(fg, folder: Path, label: str, run: str, root) -> None:
    files = fg.attrs.get("files")
    if not isinstance(files, dict) or not files or set(files) != set(fg.array_keys()):
        raise CorruptChunk(f"{label}: its file list {sorted(files or {})} does not match its arrays "
                           f"{sorted(fg.array_keys())}; {_refit(run)}")
    for name, meta in files.items():
        if not _NAME.match(name):
            raise CorruptChunk(f"{label}: file name {name!r} is not a plain name; {_refit(run)}")
        a = fg[name]
        try:
            data = np.asarray(a[...], np.uint8).tobytes()
            check_tails(a, root, attr_digests(a), f"{label}/{name}")
        except ValueError as exc:  # zarr's crc32c codec: "Stored and computed checksum do not match"
            raise CorruptChunk(f"{label}/{name} fails its CRC32C checksum ({exc}); {_refit(run)}") from exc
        if len(data) != int(meta.get("bytes", -1)) or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            raise CorruptChunk(f"{label}/{name}: its bytes do not match the size and sha256 recorded when it was "
                               f"saved; {_refit(run)}")
        (folder / name).write_bytes(data)


def load_heads(store, run: str, loader: Callable) -> dict[str, list]:
    """``{subset: [head per seed]}`` of run ``run``: :func:`extract_heads` into a temporary folder, each seed's
    folder read by ``loader`` (``mixsig.heads.load_head``, which refuses pickles and checks the model files)."""
    with tempfile.TemporaryDirectory(prefix="mixsig-heads-") as tmp:
        folders = extract_heads(store, run, tmp)
        return {sub: [loader(f) for f in paths] for sub, paths in folders.items()}


class SavedHeads:
    """The :class:`~mixsig.cache.FeatureStore` methods of saved heads (a mixin; see the module doc)."""

    def save_heads(self, run: str, folders: dict) -> None:
        """Keep run ``run``'s fitted heads: ``{subset: [Head.save folder per seed]}``; attr ``saved_heads`` last."""
        save_heads(self, run, folders)

    def has_saved_heads(self, run: str) -> bool:
        """Whether run ``run`` keeps every fitted head."""
        return has_saved_heads(self, run)

    def extract_heads(self, run: str, into) -> dict:
        """Run ``run``'s saved heads written into folder ``into``, checked: ``{subset: [folder per seed]}``."""
        return extract_heads(self, run, into)

    def load_heads(self, run: str, loader: Callable) -> dict:
        """``{subset: [Head per seed]}`` of run ``run``'s saved heads, each folder read by ``loader``
        (``mixsig.heads.load_head``: the cache does not import the heads)."""
        return load_heads(self, run, loader)

    def head_saver(self) -> "HeadSaver":
        """A fit observer for ``train_run(..., save_heads=True)``: saves each fitted head (``rec.head.save``) into a
        temporary folder; its ``write(run)`` keeps them all with the written run, then removes the folder."""
        return HeadSaver(self)


class HeadSaver:
    """See :meth:`SavedHeads.head_saver`."""

    def __init__(self, store):
        self._store = store
        self._tmp = tempfile.TemporaryDirectory(prefix="mixsig-save-heads-")
        self.folders: dict[str, list[Path]] = {}

    def __call__(self, rec) -> None:
        # named by a count, never by the subset's (user-given) modality names: it stays inside the temp folder
        folder = Path(self._tmp.name) / str(sum(len(v) for v in self.folders.values()))
        rec.head.save(folder)
        self.folders.setdefault(rec.subset_name, []).append(folder)

    def write(self, run: str) -> None:
        try:
            save_heads(self._store, run, self.folders)
        finally:
            self._tmp.cleanup()
