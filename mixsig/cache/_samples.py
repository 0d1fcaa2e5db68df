"""The samples table: one entry per row of the store, in store order (``samples/`` group)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from mixsig.cache._digest import attr_digests, check_tails, crc_codecs, record_digests
from mixsig.cache._dims import samples_dims
from mixsig.errors import CorruptChunk, StoreError

from mixsig.modalities import MODALITIES  # noqa: F401 - the one definition (re-exported by mixsig.cache)
_STR_COLUMNS = ("ids", "split", "group", "text", "audio", "video")


def _str_array(values) -> np.ndarray:
    return np.asarray(["" if v is None else str(v) for v in values], dtype=object).astype(str)


def _column_array(values) -> np.ndarray:
    """An extra column: int64 / float64 / bool values keep their dtype, anything else becomes str."""
    a = np.asarray(values)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind in "fb":
        return a.astype(np.float64) if a.dtype.kind == "f" else a
    return _str_array(values)


@dataclass
class Samples:
    """The samples table. Every array has one entry per row (``N``); row order is the store's row order.

    - ``ids`` [N] str, ``split`` [N] str, ``group`` [N] str ("" = none)
    - ``label`` [N] int64 index into ``classes`` (-1 = unlabelled)
    - ``text`` [N] str, ``audio``/``video`` [N] str paths relative to the manifest folder ("" = none)
    - ``start``/``end`` [N] float64 seconds (NaN = none)
    - ``content_hash`` {modality: [N] str}: 16 hex digits of sha256 over the row's input bytes + segment
    - ``votes`` [N, A] int16 class index per annotator (-1 = none); ``votes_by_condition`` {condition: [N, A_c]}
    - ``columns`` {name: [N]}: any other manifest columns: numbers as int64 or float64 (NaN = empty cell; what
      :func:`mixsig.manifest.to_samples` infers), anything else as str (e.g. ``planted``)
    """

    ids: np.ndarray
    split: np.ndarray
    label: np.ndarray
    classes: tuple[str, ...]
    group: np.ndarray | None = None
    text: np.ndarray | None = None
    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    start: np.ndarray | None = None
    end: np.ndarray | None = None
    content_hash: dict[str, np.ndarray] = field(default_factory=dict)
    votes: np.ndarray | None = None
    votes_by_condition: dict[str, np.ndarray] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.ids = _str_array(self.ids)
        self.split = _str_array(self.split)
        self.label = np.asarray(self.label, dtype=np.int64)
        self.classes = tuple(str(c) for c in self.classes)
        for name in ("group", "text", "audio", "video"):
            v = getattr(self, name)
            setattr(self, name, _str_array([""] * n if v is None else v))
        for name in ("start", "end"):
            v = getattr(self, name)
            setattr(self, name, np.full(n, np.nan) if v is None else np.asarray(v, dtype=np.float64))
        self.content_hash = {m: _str_array(v) for m, v in self.content_hash.items()}
        self.votes = np.zeros((n, 0), np.int16) if self.votes is None else np.asarray(self.votes, np.int16).reshape(n, -1)
        self.votes_by_condition = {c: np.asarray(v, np.int16).reshape(n, -1) for c, v in self.votes_by_condition.items()}
        self.columns = {c: _column_array(v) for c, v in self.columns.items()}
        if len(set(self.ids.tolist())) != n:
            raise StoreError("samples table has duplicate ids; run `mixsig validate` on the manifest and fix them")
        arrays = [self.split, self.label, self.group, self.text, self.audio, self.video, self.start, self.end,
                  self.votes, *self.content_hash.values(), *self.votes_by_condition.values(), *self.columns.values()]
        for a in arrays:
            if len(a) != n:
                raise StoreError(f"samples table columns differ in length: {len(a)} != {n} ids")
        if n and (self.label.max(initial=-1) >= len(self.classes) or self.label.min(initial=0) < -1):
            raise StoreError(f"labels must be -1 or an index into classes {self.classes}")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def splits(self) -> list[str]:
        """Split names in order of first appearance."""
        return list(dict.fromkeys(self.split.tolist()))

    def rows(self, split: str | Sequence[str] | None = None) -> np.ndarray:
        """Row indices [n] int64 of a split (``None`` = all rows; ``"val+test"`` or a list = several splits)."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        names = split.split("+") if isinstance(split, str) else list(split)
        unknown = [s for s in names if s not in set(self.split.tolist())]
        if unknown:
            raise StoreError(f"split {unknown[0]!r} has no rows; the store's splits are {self.splits}")
        return np.flatnonzero(np.isin(self.split, names)).astype(np.int64)

    def group_leak(self) -> dict | None:
        """Groups found in more than one split, or None: ``{"n_groups": int, "n_rows": int,
        "groups": {group: {split: rows}}}`` (at most 20 groups listed, sorted by name)."""
        if self.group is None:
            return None
        by: dict[str, dict[str, int]] = {}
        for g, s in zip(self.group.tolist(), self.split.tolist()):
            if g and s:
                d = by.setdefault(g, {})
                d[s] = d.get(s, 0) + 1
        leaked = sorted(g for g, d in by.items() if len(d) > 1)
        if not leaked:
            return None
        return {"n_groups": len(leaked), "n_rows": int(sum(sum(by[g].values()) for g in leaked)),
                "groups": {g: dict(sorted(by[g].items())) for g in leaked[:20]}}

    def split_hash(self) -> str:
        """sha256 over (id, split, label) of every row: what studies and runs record to detect changed splits."""
        h = hashlib.sha256()
        for i, s, y in zip(self.ids.tolist(), self.split.tolist(), self.label.tolist()):
            h.update(f"{i}\t{s}\t{y}\n".encode())
        h.update(("\t".join(self.classes)).encode())
        return h.hexdigest()

    def to_pandas(self):
        """The table as a ``pandas.DataFrame`` (index = store row): ``id``, ``split``, ``label`` (class name), ``group``,
        the modalities' inputs present, ``start``, ``end`` and the manifest's other columns with their dtypes
        (needs pandas: ``pip install pandas``)."""
        from mixsig.cache._frames import samples_frame

        return samples_frame(self)

    def vote_counts(self, votes: np.ndarray | None = None) -> np.ndarray:
        """[N, C] int64 count of votes per class (``votes`` defaults to ``self.votes``)."""
        v = self.votes if votes is None else votes
        c = len(self.classes)
        out = np.zeros((len(self), c), np.int64)
        for k in range(c):
            out[:, k] = (v == k).sum(axis=1)
        return out


# ----------------------------------------------------------------------------------------- zarr I/O

#: What to do about a samples array that fails its checks: extraction cannot recompute the samples table.
SAMPLES_FIX = ("the samples table cannot be recomputed by `mixsig extract`: restore the store from a backup, or "
               "build a new store from the manifest (`mixsig cache init NEW_STORE --manifest MANIFEST`) and "
               "extract into it")


def _root_of(group):
    from mixsig.cache._chunks import local_root

    return local_root(group.store)


def write_samples(group, samples: Samples) -> None:
    """Write ``samples`` into the zarr group ``group`` (the store's ``samples/``): one zstd + crc32c chunk per
    column, its digest recorded in the array's attrs (:mod:`mixsig.cache._digest`)."""
    n = len(samples)
    chunks = (max(n, 1),)
    root = _root_of(group)

    def put(name: str, data: np.ndarray) -> None:
        arr = group.create_array(name, shape=data.shape, dtype=data.dtype if data.dtype.kind != "U" else str,
                                 chunks=chunks + tuple(max(d, 1) for d in data.shape[1:]), overwrite=True,
                                 compressors=crc_codecs(True), dimension_names=samples_dims(name, data.ndim))
        if data.size:
            arr[...] = data
        record_digests(arr, root)

    put("id", samples.ids)
    put("split", samples.split)
    put("label", samples.label)
    for name in ("group", "text", "audio", "video"):
        put(name, getattr(samples, name))
    put("start", samples.start)
    put("end", samples.end)
    for m, v in samples.content_hash.items():
        put(f"content_hash@{m}", v)
    put("votes", samples.votes)
    for c, v in samples.votes_by_condition.items():
        put(f"votes@{c}", v)
    for c, v in samples.columns.items():
        put(f"column@{c}", v)
    group.attrs.update({"classes": list(samples.classes), "n_rows": n, "split_hash": samples.split_hash()})


#: where a local update writes the new table, and where the old one goes during the swap (``samples/`` beside)
SAMPLES_NEW, SAMPLES_OLD = "samples.new", "samples.old"
#: store attr set while a non-local store's samples table is rewritten in place (reads refuse it)
UPDATING_ATTR = "samples_updating"


def _complete(path) -> bool:
    """True when ``path`` holds a samples group written to its end (``split_hash``, written last, is there)."""
    try:
        return "split_hash" in json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False


def swap_samples(root, write) -> None:
    """Replace ``<root>/samples`` atomically on a local store: ``write(path)`` builds the new table at
    ``samples.new/``, then two renames swap it in (``samples`` -> ``samples.old``, ``samples.new`` -> ``samples``)
    and the old one is removed. An OSError (full disk) leaves the old table as it was. Call under the samples
    lock; :func:`finish_samples_swap` completes a swap interrupted between its renames."""
    new, old, cur = root / SAMPLES_NEW, root / SAMPLES_OLD, root / "samples"
    finish_samples_swap(root)
    shutil.rmtree(new, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    try:
        write(new)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    os.rename(cur, old)
    os.rename(new, cur)
    shutil.rmtree(old, ignore_errors=True)


def finish_samples_swap(root) -> None:
    """Complete a swap of the samples table interrupted between its renames (no ``samples/``): the complete new
    table, else the old one, becomes ``samples/``. Call under the samples lock."""
    cur = root / "samples"
    if (cur / "zarr.json").exists():
        return
    for src in (root / SAMPLES_NEW, root / SAMPLES_OLD):
        if src.is_dir() and _complete(src):
            shutil.rmtree(cur, ignore_errors=True)
            os.rename(src, cur)
            shutil.rmtree(root / SAMPLES_OLD, ignore_errors=True)
            return


def samples_group(group, root):
    """The store's ``samples/`` group (``group``: the store's root group; ``root``: its folder, None if not local).
    Local: a swap interrupted between its renames is completed first (waiting for an update that is running).
    Other stores: refused with :class:`StoreError` while an update rewrites the table in place."""
    if root is not None and not (root / "samples" / "zarr.json").exists():
        from mixsig.cache._lease import _mutex

        if (root / SAMPLES_NEW).is_dir() or (root / SAMPLES_OLD).is_dir():
            with _mutex(root / ".mixsig" / "locks" / "samples", timeout=600, what="an update of the samples table"):
                finish_samples_swap(root)
    elif root is None and group.attrs.get(UPDATING_ATTR):
        raise StoreError(f"the samples table of {group.store} is being updated, or an update was interrupted "
                         f"(store attr {UPDATING_ATTR!r} is set); wait for it, or rerun the command with "
                         "--update-samples to complete it")
    return group["samples"]


def read_samples(group, root=None) -> Samples:
    """Read the samples table back from the store's ``samples/`` group. Every column's CRC is checked (zarr) and,
    on a local store (``root``), its chunk against the digest recorded for it; :class:`CorruptChunk` names the
    array and says what to do."""
    names = set(group.array_keys())

    def get(name):
        a = group[name]
        if not a.size:
            return np.zeros(a.shape, dtype=a.dtype if a.dtype != np.dtypes.StringDType() else str)
        try:
            out = a[...]
            check_tails(a, root, attr_digests(a), f"array samples/{name}")
        except ValueError as exc:  # zarr's crc32c codec: "Stored and computed checksum do not match"
            raise CorruptChunk(f"array samples/{name} fails its CRC32C checksum ({exc}); {SAMPLES_FIX}") from exc
        except CorruptChunk as exc:
            raise CorruptChunk(f"{str(exc).split('; run ')[0]}; {SAMPLES_FIX}") from exc
        return out

    return Samples(
        ids=get("id"), split=get("split"), label=get("label"), classes=tuple(group.attrs["classes"]),
        group=get("group"), text=get("text"), audio=get("audio"), video=get("video"),
        start=get("start"), end=get("end"),
        content_hash={n.split("@", 1)[1]: get(n) for n in names if n.startswith("content_hash@")},
        votes=get("votes"),
        votes_by_condition={n.split("@", 1)[1]: get(n) for n in sorted(names) if n.startswith("votes@")},
        columns={n.split("@", 1)[1]: get(n) for n in sorted(names) if n.startswith("column@")},
    )
