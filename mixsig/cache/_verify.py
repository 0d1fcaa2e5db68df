"""``verify``: find missing or corrupt chunks, done rows that are not finite, and orphan temp files."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from mixsig.cache._chunks import PARTIAL_SUFFIX, array_dir, chunk_file, fast_layout, read_chunk_into
from mixsig.cache._lease import holder_is_stale
from mixsig.errors import CorruptChunk

log = logging.getLogger(__name__)


@dataclass
class Finding:
    kind: str  # corrupt_chunk | done_not_finite | done_missing | orphan_temp | stale_lease | unreadable
    where: str  # key/array/chunk or file
    message: str
    rows: list[int] = field(default_factory=list)


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    keys_checked: int = 0
    chunks_checked: int = 0
    removed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {"ok": self.ok, "keys_checked": self.keys_checked, "chunks_checked": self.chunks_checked,
                "removed": self.removed, "findings": [asdict(f) for f in self.findings]}


def _check_array_chunks(store, arr, report: VerifyReport, label: str, collect=None) -> set[int]:
    """Read every chunk of ``arr`` once; returns the indices of corrupt chunks.

    ``collect(lo, hi, rows)`` receives the rows [lo, hi) of every readable chunk (a chunk never written reads as
    the fill value), so callers check values without reading the array a second time.
    """
    bad: set[int] = set()
    n, cr = arr.shape[0], arr.chunks[0]
    count = -(-n // cr) if n else 0
    root = store.local_path
    fast = root is not None and fast_layout(arr)
    adir = array_dir(root, arr.path) if fast else None
    for c in range(count):
        report.chunks_checked += 1
        lo, hi = c * cr, min((c + 1) * cr, n)
        try:
            if fast:
                rows = np.empty((hi - lo,) + tuple(arr.shape[1:]), arr.dtype)
                if not read_chunk_into(chunk_file(adir, c, arr.ndim), rows, tuple(arr.chunks), arr.dtype,
                                       f"{label} chunk {c}"):
                    rows[...] = arr.fill_value
            else:
                rows = arr[lo:hi]
        except Exception as exc:  # CorruptChunk, or zarr's codec-specific errors on bad bytes
            bad.add(c)
            message = str(exc) if isinstance(exc, CorruptChunk) else \
                f"{label} chunk {c} cannot be read: {type(exc).__name__}: {exc}"
            report.findings.append(Finding("corrupt_chunk", f"{label}/c/{c}", message, list(range(lo, hi))))
            continue
        if collect is not None:
            collect(lo, hi, rows)
    return bad


def verify_store(store, keys=None, fix: bool = False) -> VerifyReport:
    """Check ``keys`` (default: all) of ``store``; with ``fix`` remove orphan temp files and stale leases."""
    from mixsig.cache._status import Status

    report = VerifyReport()
    for key in keys or store.keys():
        report.keys_checked += 1
        g = store.key_group(key)
        n = int(g["embedding"].shape[0])
        cr = int(g["embedding"].chunks[0])
        done = np.zeros(n, bool)
        finite = np.ones(n, bool)   # every value of the row is finite
        empty = np.zeros(n, bool)   # every value of the row is NaN (never written, or its chunk is gone)

        def rows_of_embedding(lo, hi, rows):
            flat = rows.reshape(hi - lo, -1)
            finite[lo:hi] = np.isfinite(flat).all(axis=1)
            empty[lo:hi] = np.isnan(flat).all(axis=1)

        def rows_of_done(lo, hi, rows):
            done[lo:hi] = rows

        corrupt = _check_array_chunks(store, g["embedding"], report, f"features/{key}/embedding", rows_of_embedding)
        corrupt |= _check_array_chunks(store, g["done"], report, f"features/{key}/done", rows_of_done)
        for name in ("status", "message", "input_hash"):
            _check_array_chunks(store, g[name], report, f"features/{key}/{name}")
        for c in range(-(-n // cr)):
            if c in corrupt:
                continue
            lo, hi = c * cr, min((c + 1) * cr, n)
            bad = np.flatnonzero(done[lo:hi] & ~finite[lo:hi]) + lo
            if not len(bad):
                continue
            all_nan = bool(empty[bad].all())
            kind = "done_missing" if all_nan else "done_not_finite"
            what = "have no data (chunk file missing or all NaN)" if all_nan else "hold NaN/Inf"
            report.findings.append(Finding(kind, f"features/{key}/embedding/c/{c}",
                                           f"{len(bad)} rows marked done {what}; re-extract them "
                                           f"(`mixsig extract` after `mixsig cache verify --fix`)", bad.tolist()))
            if fix:
                st = g["status"][lo:hi]
                dd = done[lo:hi].copy()
                dd[bad - lo] = False
                st[bad - lo] = Status.PENDING
                g["status"][lo:hi] = st
                g["done"][lo:hi] = dd
                report.removed.append(f"done mark of {len(bad)} rows in features/{key} chunk {c}")
    root = store.local_path
    if root is not None:
        for p in sorted(root.rglob(f"*{PARTIAL_SUFFIX}")):
            report.findings.append(Finding("orphan_temp", str(p.relative_to(root)),
                                           "temp file left by an interrupted write; `verify --fix` removes it"))
            if fix:
                p.unlink(missing_ok=True)
                report.removed.append(str(p.relative_to(root)))
        for p in sorted((root / ".mixsig" / "leases").glob("*/shard-*.json")):
            try:
                info = json.loads(p.read_text())
            except (OSError, ValueError):
                info = {}
            if not info or holder_is_stale(info):
                report.findings.append(Finding("stale_lease", str(p.relative_to(root)),
                                               f"lease of a process that is gone (pid {info.get('pid')}); "
                                               "`verify --fix` removes it"))
                if fix:
                    p.unlink(missing_ok=True)
                    report.removed.append(str(p.relative_to(root)))
    return report
