"""A samples table that changed under the store: :func:`diff_samples` (what changed, row by row),
:func:`describe_samples_diff` (the refusal's text) and :func:`update_samples` (the explicit update).

:func:`update_samples` rewrites ``samples/`` and marks the rows whose input changed for each key's modality not
done (status pending) in every key, under the leases of every key (refused while another process writes one),
so that the next ``extract`` recomputes exactly those rows. Keys are invalidated before the table is rewritten,
and the rewrite is atomic on a local store (the new table is written to ``samples.new/`` and swapped in by two
renames; a full disk leaves the old table as it was); on other stores the table is rewritten in place under the
store attr ``samples_updating``, and reads refuse the store while it is set. So an update that is interrupted
leaves at most more rows pending, and is completed by running it again. Runs
keep the ``split_hash`` they recorded; a run or study made before the update no longer matches the store's.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import numpy as np

from mixsig.cache._lease import Lease, _mutex
from mixsig.cache._samples import UPDATING_ATTR, Samples, read_samples, swap_samples, write_samples
from mixsig.cache._store import _now
from mixsig.errors import StoreError

log = logging.getLogger(__name__)

#: the samples columns each modality's embeddings are computed from
INPUT_COLUMNS = {"text": ("text", "content_hash@text"),
                 "audio": ("audio", "start", "end", "content_hash@audio"),
                 "video": ("video", "start", "end", "content_hash@video")}


def _columns(s: Samples) -> dict[str, np.ndarray]:
    cols = {"split": s.split, "label": s.label, "group": s.group, "text": s.text, "audio": s.audio,
            "video": s.video, "start": s.start, "end": s.end, "votes": s.votes}
    cols.update({f"content_hash@{m}": v for m, v in s.content_hash.items()})
    cols.update({f"votes@{c}": v for c, v in s.votes_by_condition.items()})
    cols.update({f"column@{c}": v for c, v in s.columns.items()})
    return cols


def _rows_differ(a, b, n: int) -> np.ndarray:
    """[n] bool: rows where column values ``a`` and ``b`` differ (None = column absent)."""
    if a is None or b is None:
        return np.ones(n, bool)
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 2 or b.ndim == 2:  # votes: pad the narrower matrix with -1 (no vote)
        a, b = a.reshape(n, -1), b.reshape(n, -1)
        w = max(a.shape[1], b.shape[1])
        a = np.pad(a, ((0, 0), (0, w - a.shape[1])), constant_values=-1)
        b = np.pad(b, ((0, 0), (0, w - b.shape[1])), constant_values=-1)
        return (a != b).any(axis=1)
    if a.dtype.kind in "iufb" or b.dtype.kind in "iufb":  # a column stored as text by an older mixsig: by value
        fa, fb = _as_numbers(a), _as_numbers(b)
        if fa is not None and fb is not None:
            return ~((fa == fb) | (np.isnan(fa) & np.isnan(fb)))
    return a.astype(str) != b.astype(str)


def _as_numbers(x: np.ndarray) -> np.ndarray | None:
    """``x`` as float64 (text cells parsed, "" = NaN), or None when a cell is not a number."""
    if x.dtype.kind in "iufb":
        return x.astype(np.float64)
    try:
        return np.asarray([float(v) if str(v).strip() else np.nan for v in x.tolist()], np.float64)
    except ValueError:
        return None


def diff_samples(old: Samples, new: Samples) -> dict[str, np.ndarray]:
    """``{column: rows [k] int64}`` of the rows whose value differs between ``old`` and ``new`` (same ids in the
    same order); columns are those of :func:`describe_samples_diff` (``label``, ``text``, ``content_hash@audio``,
    ``votes@text``, ``column@planted`` ...). A column only one side has differs where the other's is non-empty.
    Raises :class:`StoreError` when the ids or the classes differ (no update can fix that: use a new store)."""
    n = len(old)
    if len(new) != n or old.ids.tolist() != new.ids.tolist():
        raise StoreError(f"the ids differ ({len(old)} rows in the store, {len(new)} given, first difference at "
                         f"row {_first_id_difference(old.ids, new.ids)}); rows cannot be added, removed or "
                         "reordered in a store: use the manifest the store was made from, or a new store")
    if tuple(old.classes) != tuple(new.classes):
        raise StoreError(f"the classes differ (store {list(old.classes)}, given {list(new.classes)}); the store's "
                         "labels, keys and runs index its classes: use a new store, or pass the store's classes")
    a, b = _columns(old), _columns(new)
    out = {}
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None or y is None:  # a column one side lacks: differs where the other side holds something
            have = np.asarray(x if y is None else y)
            rows = np.flatnonzero((have != -1).any(axis=1) if have.ndim == 2 else
                                  ~np.isnan(have) if have.dtype.kind == "f" else have.astype(str) != "")
        else:
            rows = np.flatnonzero(_rows_differ(x, y, n))
        if len(rows):
            out[name] = rows.astype(np.int64)
    return out


def _first_id_difference(a: np.ndarray, b: np.ndarray) -> int:
    for i, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        if x != y:
            return i
    return min(len(a), len(b))


def describe_samples_diff(diff: dict[str, np.ndarray], ids: np.ndarray, limit: int = 5) -> str:
    """``"3 rows differ (ids a, b, c): label (2 rows: a, b), text (1 row: c)"``."""
    rows = np.unique(np.concatenate(list(diff.values()))) if diff else np.zeros(0, np.int64)
    shown = ", ".join(str(ids[r]) for r in rows[:limit]) + (f" and {len(rows) - limit} more" if len(rows) > limit else "")
    cols = "; ".join(f"{c} ({len(r)} row{'s' if len(r) != 1 else ''}: "
                     f"{', '.join(str(ids[x]) for x in r[:3])}{' ...' if len(r) > 3 else ''})"
                     for c, r in sorted(diff.items()))
    return f"{len(rows)} row{'s' if len(rows) != 1 else ''} differ (ids {shown}) in {cols}"


def affected_rows(diff: dict[str, np.ndarray], modality: str) -> np.ndarray:
    """Rows whose input for ``modality`` changed (what a key of that modality must recompute)."""
    parts = [diff[c] for c in INPUT_COLUMNS.get(modality, ()) if c in diff]
    return np.unique(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)


@dataclass
class SamplesUpdate:
    """What :func:`update_samples` did: the changed ``columns`` {column: rows}, the ``invalidated`` rows of each
    key {key: count}, the split hashes before and after, and the fine-tuned keys trained on the old split."""

    columns: dict = field(default_factory=dict)
    invalidated: dict = field(default_factory=dict)
    split_hash_before: str = ""
    split_hash_after: str = ""
    finetuned_on_old_split: list = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.columns)

    def to_dict(self) -> dict:
        return {"columns": {c: len(r) for c, r in self.columns.items()}, "invalidated": dict(self.invalidated),
                "split_hash_before": self.split_hash_before, "split_hash_after": self.split_hash_after,
                "finetuned_on_old_split": list(self.finetuned_on_old_split)}


def update_samples(store, samples: Samples, *, attrs: dict | None = None,
                   break_lease: bool = False, command: str | None = None) -> SamplesUpdate:
    """Replace the samples table of ``store`` (open "r+") by ``samples`` (same ids, order and classes) and mark
    the rows whose input changed (:data:`INPUT_COLUMNS` of each key's modality) not done in every key, so the next
    extraction recomputes exactly them. Holds every key's lease meanwhile (:class:`~mixsig.errors.LeaseHeld`
    while another process writes one). ``attrs`` (e.g. the new manifest's sha256) are merged into the store's
    attrs, and the update is appended to the store attr ``samples_updates``. Nothing changes when nothing differs.
    Runs keep the split_hash they recorded (a study or run made before no longer matches a changed split).
    A full disk raises one :class:`StoreError`; the old table is kept (local stores) and the rerun completes it.
    ``command``: the command updating (``"mixsig extract"``), named with its fixes when a lease is held."""
    store._require_writable()
    try:
        return _update(store, samples, attrs, break_lease, command)
    except OSError as exc:
        raise StoreError(f"updating the samples table of {store.url} failed ({exc}); "
                         + ("the old table was kept" if store.local_path is not None else
                            f"the store is refused until the update completes (attr {UPDATING_ATTR!r})")
                         + " and rows already marked for re-extraction stay pending. Free disk space and rerun the "
                         "command with --update-samples") from exc


def _update(store, samples: Samples, attrs, break_lease: bool, command) -> SamplesUpdate:
    root = store.local_path
    # a non-local update interrupted in place is completed by rerunning it: read what the table holds now
    old = read_samples(store.root["samples"], root) if store.root.attrs.get(UPDATING_ATTR) else store.samples
    diff = diff_samples(old, samples)
    res = SamplesUpdate(columns=diff, split_hash_before=old.split_hash(), split_hash_after=samples.split_hash())
    if not diff and not store.root.attrs.get(UPDATING_ATTR):
        return res
    with contextlib.ExitStack() as stack:
        if root is not None:
            stack.enter_context(_mutex(root / ".mixsig" / "locks" / "samples", timeout=600,
                                       what=f"another update of the samples of {store.url}"))
        for key in store.keys():  # every lease first: refuse before anything changes
            if root is not None:
                stack.enter_context(Lease(root, key, (0, 1), break_lease=break_lease, command=command))
        for key in store.keys():
            modality = store.key_group(key).attrs.get("modality")
            rows = affected_rows(diff, str(modality))
            if len(rows):
                with store.writer(key, lease=False) as w:
                    done = w.done_mask()
                    w.invalidate(rows)
                res.invalidated[key] = int(done[rows].sum())
            ft = (store.provenance(key).get("extra") or {}).get("finetune") or {}
            if ft.get("split_hash") and ft["split_hash"] != res.split_hash_after:
                res.finetuned_on_old_split.append(key)
        _rewrite(store, samples)
        store.__dict__.pop("samples", None)  # the cached table
        history = list(store.attrs.get("samples_updates", []))
        history.append({"at": _now(), "rows": int(len(np.unique(np.concatenate([[], *diff.values()])))),
                        "columns": sorted(diff), "split_hash_before": res.split_hash_before,
                        "split_hash_after": res.split_hash_after})
        store.update_attrs(**dict(attrs or {}), samples_updates=history[-20:])
    log.info("samples of %s updated: %s; rows marked for re-extraction: %s", store.url,
             describe_samples_diff(diff, samples.ids), res.invalidated or "none")
    return res


def _rewrite(store, samples: Samples) -> None:
    """Replace the samples table: atomically on a local store, else in place under :data:`UPDATING_ATTR`."""
    import zarr

    root = store.local_path
    if root is not None:
        swap_samples(root, lambda path: write_samples(zarr.open_group(store=str(path), mode="w"), samples))
        return
    store.root.attrs[UPDATING_ATTR] = True
    write_samples(store.root["samples"], samples)
    _drop_columns(store.root["samples"], samples)
    del store.root.attrs[UPDATING_ATTR]


def _drop_columns(group, samples: Samples) -> None:
    """Remove the optional columns (``content_hash@``, ``votes@``, ``column@``) ``samples`` no longer has."""
    keep = ({f"content_hash@{m}" for m in samples.content_hash} | {f"votes@{c}" for c in samples.votes_by_condition}
            | {f"column@{c}" for c in samples.columns})
    for name in list(group.array_keys()):
        if name.startswith(("content_hash@", "votes@", "column@")) and name not in keep:
            del group[name]


__all__ = ["INPUT_COLUMNS", "SamplesUpdate", "affected_rows", "describe_samples_diff", "diff_samples",
           "update_samples"]
