"""``verify``: find corrupt, misplaced or missing chunks of every array (feature keys, their ledgers and added
arrays, the samples table, runs and their saved heads), done rows that are not finite, run probabilities that are not distributions,
keys whose provenance no longer hashes to them, and orphan temp files and stale leases.

``fix`` unmarks the rows of every corrupt feature row-chunk (deleting its corrupt chunk files), so that the next
``mixsig extract`` recomputes exactly those rows; the samples table, runs and added arrays cannot be recomputed by
extraction and are left as they are, each finding saying what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging

import numpy as np

from mixsig.cache._check import Finding, VerifyReport, check_chunks, check_write_once
from mixsig.cache._digest import (ABSENT, LEDGER, LEDGER_COLUMNS, UNKNOWN, Ledger, attr_digests, create_ledger,
                                  delete_chunk, ledger_problems, stored_crc)
from mixsig.cache._chunks import PARTIAL_SUFFIX
from mixsig.cache._keys import provenance_matches
from mixsig.cache._lease import Lease, holder_is_stale
from mixsig.cache._runs import check_probs
from mixsig.cache._samples import SAMPLES_FIX
from mixsig.errors import CorruptChunk, LeaseHeld, StoreError

log = logging.getLogger(__name__)

__all__ = ["Finding", "VerifyReport", "verify_store"]

ROW_ARRAYS = LEDGER_COLUMNS[1:]
_FIX_ROWS = "; `mixsig cache verify --fix` unmarks its rows so that `mixsig extract` recomputes them"


def verify_store(store, keys=None, fix: bool = False) -> VerifyReport:
    """Check ``keys`` (default: every key, and then the samples table and every run) of ``store``. With ``fix``,
    unmark the rows of corrupt feature chunks (so extraction recomputes them), unmark done rows without data,
    record digests an interrupted write left unrecorded, and remove orphan temp files and stale leases."""
    report = VerifyReport(store_format=int(store.attrs.get("mixsig_store") or 1))
    for key in keys or store.keys():
        report.keys_checked += 1
        _verify_key(store, key, report, fix)
    if not keys:
        check_write_once(store, store.root["samples"], "samples", report, f"; {SAMPLES_FIX}")
        for run in store.runs():
            _verify_run(store, run, report)
    _verify_files(store, report, fix)
    return report


def _verify_run(store, run: str, report: VerifyReport) -> None:
    g = store.root["runs"][run]
    if "heads" in set(g.group_keys()):
        _verify_heads(store, run, g["heads"], report)
    if "subsets" not in set(g.group_keys()):
        return
    seeds = g.attrs.get("seeds")
    hint = (f"; a run cannot be recomputed by `mixsig extract`: train it again (`mixsig train STORE ... --name {run} "
            f"--overwrite`, or the study or finetune that wrote it)")

    def on_values(label, arr, values):
        parts = label.split("/")
        if parts[-1] != "probs" or values.ndim != 3:
            return
        try:
            check_probs(run, parts[-2], values, seeds)
        except CorruptChunk as exc:
            report.findings.append(Finding("bad_probs", label, str(exc)))

    check_write_once(store, g["subsets"], f"runs/{run}/subsets", report, hint, on_values)


def _verify_heads(store, run: str, hg, report: VerifyReport) -> None:
    """The saved heads' file arrays (``runs/<run>/heads/<subset>/<seed>/<file>``): every chunk against its digests
    (CRC32C, digest, position), and each whole file against the size and sha256 its seed group recorded."""
    hint = (f"; saved heads cannot be recomputed by `mixsig extract`: train the run again keeping them (`mixsig train "
            f"STORE ... --name {run} --overwrite --save-heads`, or the study or predict that wrote it)")

    def on_values(label, arr, values):
        seed_path, name = label.rsplit("/", 1)
        meta = (store.root[seed_path].attrs.get("files") or {}).get(name) or {}
        data = np.asarray(values, np.uint8).tobytes()
        if len(data) != meta.get("bytes") or hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            report.findings.append(Finding("corrupt_chunk", label, (
                f"{label}: its bytes do not match the size and sha256 recorded when the head was saved{hint}")))

    check_write_once(store, hg, f"runs/{run}/heads", report, hint, on_values)


def _read_ledger(store, g, key: str, n_chunks: int, report: VerifyReport, bad: dict) -> np.ndarray | None:
    """The key's ledger, each entry checked (CRC, chunk index); entries that fail are UNKNOWN, their row-chunk
    in ``bad``."""
    if LEDGER not in set(g.array_keys()):
        return None
    table = np.full((n_chunks, len(LEDGER_COLUMNS)), UNKNOWN, np.int64)

    def keep(lo, hi, rows):
        table[lo:hi] = rows

    label = f"features/{key}/{LEDGER}"
    for c in check_chunks(store, g[LEDGER], report, label, [UNKNOWN] * n_chunks, keep, _FIX_ROWS):
        bad.setdefault(c, set()).add(LEDGER)
    for c, problem in ledger_problems(table):
        report.findings.append(Finding("misplaced_chunk", f"{label}/c/{c}", f"{label} chunk {c} {problem}{_FIX_ROWS}"))
        bad.setdefault(c, set()).add(LEDGER)
    for c in bad:
        table[c] = UNKNOWN
    return table


def _verify_key(store, key: str, report: VerifyReport, fix: bool) -> None:
    g = store.key_group(key)
    root = store.local_path
    emb = g["embedding"]
    n, cr = int(emb.shape[0]), int(emb.chunks[0])
    n_chunks = -(-n // cr)
    ok, digest = provenance_matches(key, dict(g.attrs.get("provenance") or {}))
    if not ok:
        report.findings.append(Finding(
            "provenance_mismatch", f"features/{key}",
            f"key {key}: its provenance hashes to {digest[:12]}, not to the key: edited or damaged, so train and "
            f"study refuse it; see `mixsig cache explain {store.url} {key}`, and extract again for a key that "
            f"matches"))
    bad: dict[int, set] = {}
    table = _read_ledger(store, g, key, n_chunks, report, bad)
    no_ledger = table is None and report.store_format >= 2
    if no_ledger:  # one finding for the key, not one per array
        report.findings.append(Finding("digest_missing", f"features/{key}/{LEDGER}", (
            f"key {key} has no digest ledger ({LEDGER}) although store format {report.store_format} writes one "
            f"(removed?), so the positions of its chunks cannot be checked; `mixsig cache verify --fix` makes a "
            f"new ledger and unmarks the key's rows so that `mixsig extract` recomputes them"), list(range(n))))
        for c in range(n_chunks):
            bad.setdefault(c, set()).add(LEDGER)
    done = np.zeros(n, bool)
    finite = np.ones(n, bool)   # every value of the row is finite
    empty = np.zeros(n, bool)   # every value of the row is NaN (never written, or its chunk is gone)

    def rows_of_embedding(lo, hi, rows):
        flat = rows.reshape(hi - lo, -1)
        finite[lo:hi] = np.isfinite(flat).all(axis=1)
        empty[lo:hi] = np.isnan(flat).all(axis=1)

    def rows_of_done(lo, hi, rows):
        done[lo:hi] = rows

    collect = {"embedding": rows_of_embedding, "done": rows_of_done}
    for name in ROW_ARRAYS:
        expect = [UNKNOWN] * n_chunks if no_ledger else None if table is None else \
            table[:, LEDGER_COLUMNS.index(name)]
        for c in check_chunks(store, g[name], report, f"features/{key}/{name}", expect, collect.get(name),
                              _FIX_ROWS, rows=True):
            bad.setdefault(c, set()).add(name)
    _verify_added(store, g, key, report)
    unrecorded = _unrecorded(store, g, key, table, bad, report) if table is not None else []
    with _fixing(store, key, report, fix) as fix:
        _done_without_data(g, key, done, finite, empty, cr, bad, report, fix, root)
        if fix:
            _fix_key(store, g, key, bad, unrecorded, cr, report)


@contextlib.contextmanager
def _fixing(store, key: str, report: VerifyReport, fix: bool):
    """Whether to fix ``key``: yes (holding its whole-key lease meanwhile, so that no writer starts) unless another
    live writer holds a lease on it, which is then a ``lease_held`` finding (its begin-write-record window looks
    like damage: fixing would delete what it writes). A full disk while fixing is one :class:`StoreError`."""
    root = store.local_path
    if not fix or root is None:
        yield fix
        return
    try:
        lease = Lease(root, key, (0, 1), command="mixsig cache verify --fix")
    except LeaseHeld as exc:
        report.findings.append(Finding("lease_held", f"features/{key}", f"{exc} `verify --fix` left key {key} as "
                                                                        "it is (a running writer is not damage)"))
        yield False
        return
    try:
        yield True
    except OSError as exc:
        raise StoreError(f"`mixsig cache verify --fix` of key {key} failed writing ({exc}); free space and rerun "
                         f"`mixsig cache verify {store.url} --fix`") from exc
    finally:
        lease.release()


def _verify_added(store, g, key: str, report: VerifyReport) -> None:
    """Arrays added with add_key_array (fine-tuning's fold): checked against the digests in their attrs."""
    for name in sorted(set(g.array_keys()) - set(ROW_ARRAYS) - {LEDGER}):
        arr = g[name]
        hint = (f"; extraction does not recompute it: add it again with the command that wrote it (`mixsig "
                f"finetune` for `fold`)")
        check_chunks(store, arr, report, f"features/{key}/{name}", attr_digests(arr), None, hint, rows=True)


def _unrecorded(store, g, key: str, table: np.ndarray, bad: dict, report: VerifyReport) -> list[int]:
    """Row-chunks whose digests are not recorded: left by an interrupted write (the next writer, or ``--fix``,
    records them; returned), or never recorded although the chunk has data (a ledger chunk lost: its rows are
    unmarked by ``--fix``, added to ``bad``)."""
    root = store.local_path
    interrupted = []
    for c in range(len(table)):
        if c in bad or (table[c, 1:] != UNKNOWN).any():
            continue
        where = f"features/{key}/{LEDGER}/c/{c}"
        if table[c, 0] == c:
            interrupted.append(c)
            report.findings.append(Finding("digest_missing", where, (
                f"row-chunk {c} of {key}: an interrupted write left its digests unrecorded; the next `mixsig "
                f"extract` of its shard records them, or `mixsig cache verify --fix`")))
        elif any(stored_crc(g[name], c, root) != ABSENT for name in ROW_ARRAYS):
            bad.setdefault(c, set()).add(LEDGER)
            report.findings.append(Finding("digest_missing", where, (
                f"row-chunk {c} of {key} has data but no digests recorded (its ledger chunk is gone), so its "
                f"chunks' positions cannot be checked{_FIX_ROWS}")))
    return interrupted


def _done_without_data(g, key, done, finite, empty, cr, bad, report, fix, root) -> None:
    n = len(done)
    for c in range(-(-n // cr)):
        if c in bad:
            continue
        lo, hi = c * cr, min((c + 1) * cr, n)
        rows = np.flatnonzero(done[lo:hi] & ~finite[lo:hi]) + lo
        if not len(rows):
            continue
        all_nan = bool(empty[rows].all())
        kind = "done_missing" if all_nan else "done_not_finite"
        what = "have no data (chunk file missing or all NaN)" if all_nan else "hold NaN/Inf"
        report.findings.append(Finding(kind, f"features/{key}/embedding/c/{c}",
                                       f"{len(rows)} rows marked done {what}; re-extract them "
                                       f"(`mixsig extract` after `mixsig cache verify --fix`)", rows.tolist()))
        if fix:
            _unmark(g, c, cr, n, set(), rows, root)
            report.removed.append(f"done mark of {len(rows)} rows in features/{key} chunk {c}")


def _unmark(g, c: int, cr: int, n: int, corrupt: set, rows, root) -> None:
    """Mark ``rows`` of row-chunk ``c`` (every row when None) not done, first deleting the chunk files named in
    ``corrupt``; the row-chunk's digests are recorded afterwards."""
    from mixsig.cache._status import Status

    ledger = Ledger(g, root)
    lo, hi = c * cr, min((c + 1) * cr, n)
    ledger.begin([c])
    for name in sorted(corrupt - {LEDGER}):
        delete_chunk(g[name], c, root)
    if rows is None:
        g["done"][lo:hi] = np.zeros(hi - lo, bool)
        g["status"][lo:hi] = np.full(hi - lo, Status.PENDING, np.int8)
    else:
        dd, st = g["done"][lo:hi], g["status"][lo:hi]
        dd[rows - lo], st[rows - lo] = False, Status.PENDING
        g["status"][lo:hi] = st
        g["done"][lo:hi] = dd
    ledger.record([c])


def _fix_key(store, g, key: str, bad: dict, unrecorded: list[int], cr: int, report: VerifyReport) -> None:
    root = store.local_path
    n = int(g["embedding"].shape[0])
    if bad and LEDGER not in set(g.array_keys()) and store.attrs.get("mixsig_store", 1) >= 2:
        create_ledger(g, n, cr)
    for c in sorted(bad):
        lo, hi = c * cr, min((c + 1) * cr, n)
        _unmark(g, c, cr, n, bad[c], None, root)
        report.removed.append(f"done marks of rows {lo}..{hi - 1} of features/{key} (corrupt chunk {c} of "
                              f"{', '.join(sorted(bad[c]))}): `mixsig extract` recomputes them")
    if unrecorded:
        Ledger(g, root).record(unrecorded)
        report.removed.append(f"recorded the digests of row-chunks {unrecorded} of features/{key}")


def _verify_files(store, report: VerifyReport, fix: bool) -> None:
    root = store.local_path
    if root is None:
        return
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
