"""What ``verify`` finds, and the chunk-by-chunk check of one array (its CRC, and its digest for the position),
used for feature keys, the samples table and runs alike (:mod:`mixsig.cache._verify`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mixsig.cache._chunks import array_dir, chunk_file, fast_layout, read_chunk_into
from mixsig.cache._digest import (DIGEST_ATTR, UNKNOWN, MisplacedChunk, attr_digests, chunk_grid, describe_mismatch, has_crc,
                                  stored_crc)
from mixsig.errors import CorruptChunk


@dataclass
class Finding:
    # corrupt_chunk | misplaced_chunk | digest_missing | unchecked_array | done_not_finite | done_missing |
    # bad_probs | provenance_mismatch | orphan_temp | stale_lease | lease_held
    kind: str
    where: str  # key/array/chunk or file
    message: str
    rows: list[int] = field(default_factory=list)


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    keys_checked: int = 0
    chunks_checked: int = 0
    removed: list[str] = field(default_factory=list)
    #: arrays written before checksums or digests (store format 1): read and listed, but not fully checked
    unchecked: list[str] = field(default_factory=list)
    #: the store's ``mixsig_store`` format: from 2 on, an array without crc32c or digests is a finding
    store_format: int = 1

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {"ok": self.ok, "keys_checked": self.keys_checked, "chunks_checked": self.chunks_checked,
                "removed": self.removed, "unchecked": self.unchecked, "findings": [asdict(f) for f in self.findings]}


def _where(arr, coords) -> str:
    """``c/<row-chunk>`` for arrays chunked over rows only, else every chunk coordinate."""
    if all(k == 1 for k in arr.cdata_shape[1:]):
        return str(coords[0])
    return "/".join(map(str, coords))


def _read_one(arr, coords, root, fast: bool, label: str, expect: int):
    """The values of one chunk, checked: CRC (zarr's codec, or the fast path) and the recorded digest."""
    c = coords[0]
    n, cr = arr.shape[0], arr.chunks[0]
    lo, hi = c * cr, min((c + 1) * cr, n)
    if fast:
        rows = np.empty((hi - lo,) + tuple(arr.shape[1:]), arr.dtype)
        if not read_chunk_into(chunk_file(array_dir(root, arr.path), c, arr.ndim), rows, tuple(arr.chunks),
                               arr.dtype, f"{label} chunk {_where(arr, coords)}", expect):
            rows[...] = arr.fill_value
        return rows
    sel = tuple(slice(k * s, min((k + 1) * s, d)) for k, s, d in zip(coords, arr.chunks, arr.shape))
    try:
        rows = arr[sel]
    except ValueError as exc:  # zarr's crc32c codec: "Stored and computed checksum do not match"
        raise CorruptChunk(f"{label} chunk {_where(arr, coords)} fails its CRC32C checksum ({exc})") from exc
    if expect != UNKNOWN:
        got = stored_crc(arr, coords, root)
        if got != expect:
            raise MisplacedChunk(describe_mismatch(label, _where(arr, coords), expect, got))
    return rows


def check_chunks(store, arr, report: VerifyReport, label: str, expect=None, collect=None, fix_hint: str = "",
                 rows: bool = False) -> set:
    """Read every chunk of ``arr`` once, checking its CRC and, where ``expect`` (one digest per chunk, C order)
    is given, that it is the chunk recorded for its position; returns the coordinates' first index (the row-chunk)
    of every chunk that failed. ``collect(lo, hi, rows)`` receives the rows of every readable row-chunk (arrays
    chunked over rows only; a chunk never written reads as the fill value). ``rows``: findings list the rows of
    the chunk (feature keys). ``fix_hint`` ends each finding's message (what to do)."""
    bad: set = set()
    root = store.local_path
    fast = root is not None and fast_layout(arr)
    if not has_crc(arr) and report.store_format >= 2:
        report.findings.append(Finding("unchecked_array", label, (
            f"{label} has no crc32c codec although store format {report.store_format} writes one on every array "
            "(its zarr.json was edited, or the array rewritten by another tool), so its chunks cannot be checked; "
            "restore it from a backup, or write it again (a feature key: extract it into a new store)")))
    elif not has_crc(arr):
        report.unchecked.append(f"{label} (no checksum: written before store format 2)")
    elif expect is None and report.store_format >= 2:
        report.findings.append(Finding("digest_missing", label, (
            f"{label} has no digests recorded (attr {DIGEST_ATTR!r} or the key's ledger) although store format "
            f"{report.store_format} records them (removed?), so its chunks' positions cannot be checked"
            f"{fix_hint}")))
    elif expect is None:
        report.unchecked.append(f"{label} (no digests: chunk positions not checked)")
    expect = list(expect) if expect is not None else [UNKNOWN] * len(chunk_grid(arr))
    for coords, want in zip(chunk_grid(arr), expect):
        report.chunks_checked += 1
        where = f"{label}/c/{_where(arr, coords)}"
        lo, hi = coords[0] * arr.chunks[0], min((coords[0] + 1) * arr.chunks[0], arr.shape[0])
        try:
            values = _read_one(arr, coords, root, fast, label, int(want))
        except Exception as exc:  # CorruptChunk, or zarr's codec-specific errors on bad bytes
            bad.add(coords[0])
            misplaced = isinstance(exc, MisplacedChunk)
            message = str(exc) if isinstance(exc, CorruptChunk) else \
                f"{label} chunk {_where(arr, coords)} cannot be read: {type(exc).__name__}: {exc}"
            message = message.split("; run `mixsig cache verify")[0] + fix_hint
            report.findings.append(Finding("misplaced_chunk" if misplaced else "corrupt_chunk", where, message,
                                           list(range(lo, hi)) if rows else []))
            continue
        if collect is not None and len(coords) and all(k == 1 for k in arr.cdata_shape[1:]):
            collect(lo, hi, values)
    return bad


def check_write_once(store, group, prefix: str, report: VerifyReport, fix_hint: str, on_values=None) -> None:
    """Check every array under zarr group ``group`` (recursively; ``prefix`` its path in the store) against the
    digests in its attrs. ``on_values(path, arr, values)`` gets each whole array that read cleanly."""
    for name in sorted(group.array_keys()):
        arr = group[name]
        label = f"{prefix}/{name}"
        got: dict = {}

        def keep(lo, hi, rows, got=got):
            got[lo] = rows

        if arr.size == 0:
            continue
        before = len(report.findings)
        check_chunks(store, arr, report, label, attr_digests(arr), keep, fix_hint)
        if on_values is not None and len(report.findings) == before and len(got) == arr.cdata_shape[0]:
            on_values(label, arr, np.concatenate([got[k] for k in sorted(got)]) if len(got) > 1 else got[0])
    for name in sorted(group.group_keys()):
        check_write_once(store, group[name], f"{prefix}/{name}", report, fix_hint, on_values)


__all__ = ["Finding", "VerifyReport", "check_chunks", "check_write_once"]
