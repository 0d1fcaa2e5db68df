"""``verify``: find missing or corrupt chunks, done rows that are not finite, and orphan temp files."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from mixsig.cache._chunks import array_dir, chunk_file, fast_layout, read_chunk_into
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


def _check_array_chunks(store, arr, report: VerifyReport, label: str) -> set[int]:
    """Read every chunk of ``arr``; returns the indices of corrupt chunks."""
    bad: set[int] = set()
    n, cr = arr.shape[0], arr.chunks[0]
    count = -(-n // cr) if n else 0
    root = store.local_path
    if root is not None and fast_layout(arr):
        adir = array_dir(root, arr.path)
        buf = np.empty(arr.chunks, arr.dtype)
        for c in range(count):
            report.chunks_checked += 1
            try:
                read_chunk_into(chunk_file(adir, c, arr.ndim), buf, tuple(arr.chunks), arr.dtype, f"{label} chunk {c}")
            except CorruptChunk as exc:
                bad.add(c)
                report.findings.append(Finding("corrupt_chunk", f"{label}/c/{c}", str(exc),
                                               list(range(c * cr, min((c + 1) * cr, n)))))
        return bad
    for c in range(count):
        report.chunks_checked += 1
        lo, hi = c * cr, min((c + 1) * cr, n)
        try:
            arr[lo:hi]
        except Exception as exc:  # zarr raises codec-specific errors on bad bytes
            bad.add(c)
            report.findings.append(Finding("corrupt_chunk", f"{label}/c/{c}",
                                           f"{label} chunk {c} cannot be read: {type(exc).__name__}: {exc}",
                                           list(range(lo, hi))))
    return bad


def verify_store(store, keys=None, fix: bool = False) -> VerifyReport:
    """Check ``keys`` (default: all) of ``store``; with ``fix`` remove orphan temp files and stale leases."""
    report = VerifyReport()
    for key in keys or store.keys():
        report.keys_checked += 1
        g = store.key_group(key)
        corrupt = {}
        for name in ("embedding", "done", "status", "message", "input_hash"):
            corrupt[name] = _check_array_chunks(store, g[name], report, f"features/{key}/{name}")
        if corrupt["done"] or corrupt["embedding"]:
            cr = g["embedding"].chunks[0]
            skip = {c for c in corrupt["done"] | corrupt["embedding"]}
        else:
            cr, skip = g["embedding"].chunks[0], set()
        try:
            done = g["done"][...] if not corrupt["done"] else None
        except Exception:
            done = None
        if done is None:
            continue
        n = len(done)
        for c in range(-(-n // cr)):
            if c in skip:
                continue
            lo, hi = c * cr, min((c + 1) * cr, n)
            d = done[lo:hi]
            if not d.any():
                continue
            emb = store._read_embedding(key, g["embedding"], np.arange(lo, hi))
            flat = emb.reshape(hi - lo, -1)
            finite = np.isfinite(flat).all(axis=1)
            bad_rows = (np.flatnonzero(d & ~finite) + lo).tolist()
            if not bad_rows:
                continue
            all_nan = np.isnan(flat[d & ~finite]).all()
            kind = "done_missing" if all_nan else "done_not_finite"
            what = "have no data (chunk file missing or all NaN)" if all_nan else "hold NaN/Inf"
            report.findings.append(Finding(kind, f"features/{key}/embedding/c/{c}",
                                           f"{len(bad_rows)} rows marked done {what}; re-extract them "
                                           f"(`mixsig extract` after `mixsig cache verify --fix`)", bad_rows))
            if fix:
                from mixsig.cache._status import Status

                st = g["status"][lo:hi]
                dd = d.copy()
                dd[np.asarray(bad_rows) - lo] = False
                st[np.asarray(bad_rows) - lo] = Status.PENDING
                g["status"][lo:hi] = st
                g["done"][lo:hi] = dd
                report.removed.append(f"done mark of {len(bad_rows)} rows in features/{key} chunk {c}")
    root = store.local_path
    if root is not None:
        for p in sorted(root.rglob("*.partial")):
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
