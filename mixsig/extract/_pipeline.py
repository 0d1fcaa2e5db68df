"""The extraction loop: pending rows of one shard -> decoded in worker threads (text: tokenised in one) a sort
window ahead of the model -> length-sorted batches under a budget within fixed sort windows (see
:mod:`mixsig.extract._batches`) -> pooled embeddings -> whole chunk-aligned blocks written by a writer thread.

Resumable: only rows not ``done`` are computed; a block is written once all its pending rows have a result,
and rows already done keep their bytes. Rows that fail get a status and a ledger message and the run goes on
(``strict=True`` stops at the first failure instead).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from mixsig.cache import Status
from mixsig.errors import ExtractionError, StoreError
from mixsig.extract._batches import batches_to_run, plan_windows, sort_window
from mixsig.extract._decode import RowFailure, has_input
from mixsig.extract._encoders import RowInput, RowSource
from mixsig.extract._model import Encoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run (none of it changes the numbers, so none of it is in the provenance)."""

    batch_budget: int | None = None   # padded length units per batch (tokens / samples / clips); None = adapter default
    max_batch: int = 128              # at most this many rows per batch
    workers: int = 2                  # decoding threads
    window_rows: int | None = None    # rows per sort window (batches never cross one; the next is decoded ahead);
    #                                   None = the modality's SORT_WINDOW. Set it the same for every run of a key.
    strict: bool = False              # stop at the first failed row
    refresh_stale: bool = False       # re-extract done rows whose input changed


@dataclass
class ExtractResult:
    """Summary of one extraction run (of one shard)."""

    key: str
    shard: tuple[int, int]
    rows: int = 0                     # rows of this shard
    written: int = 0                  # rows newly marked done
    skipped_done: int = 0             # rows already done before this run
    failed: dict = field(default_factory=dict)   # {status name: count} of rows that failed in this run
    no_input: int = 0                 # rows without input for this modality (not failures)
    stale: list = field(default_factory=list)    # ids of done rows whose input changed (reported)
    refreshed: int = 0                # stale rows invalidated and recomputed (--refresh-stale)
    seconds: float = 0.0
    ledger: list = field(default_factory=list)   # [{"row", "id", "status", "message"}] of this run's failures
    group_leak: dict | None = None    # groups crossing splits, allowed by --allow-group-leak (store attr group_leak)
    threads: int | None = None        # torch threads it ran with
    samples_update: dict | None = None  # what --update-samples changed (SamplesUpdate.to_dict()), if asked

    @property
    def n_failed(self) -> int:
        return int(sum(self.failed.values()))

    @property
    def rows_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.n_failed == 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(n_failed=self.n_failed, rows_per_s=round(self.rows_per_s, 3), ok=self.ok, shard=list(self.shard))
        return d

    def summary(self) -> str:
        failed = ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items())) or "none"
        parts = [f"{self.key} shard {self.shard[0]}/{self.shard[1]}: {self.written} rows written",
                 f"{self.skipped_done} skipped as done", f"failed: {failed}"]
        if self.no_input:
            parts.append(f"{self.no_input} without input")
        if self.stale:
            parts.append(f"{len(self.stale)} stale" + (" (re-extracted)" if self.refreshed else
                                                      " (rerun with --refresh-stale to re-extract)"))
        parts.append(f"{self.seconds:.1f} s, {self.rows_per_s:.1f} rows/s")
        text = "; ".join(parts)
        if self.samples_update and self.samples_update.get("columns"):
            u = self.samples_update
            text += (f"\nsamples table updated from the manifest (changed: {', '.join(sorted(u['columns']))}); rows "
                     f"marked for re-extraction per key: {u['invalidated'] or 'none'}")
        if self.group_leak:
            text += "\n" + describe_allowed_leak(self.group_leak)
        return text


def describe_allowed_leak(record: dict) -> str:
    """One line for a group leak that was allowed: what leaks and what allowed it."""
    from mixsig.cache import describe_group_leak

    return (f"warning: {describe_group_leak(record)}; allowed by `{record.get('allowed_by')}` (recorded in the "
            "store as group_leak): results on these splits are inflated by leakage")


@dataclass
class _Block:
    start: int
    stop: int
    emb: np.ndarray
    status: np.ndarray
    messages: list
    hashes: list
    waiting: set


def row_sources(samples, root: Path, modality: str, rows: Iterable[int], current_hash: np.ndarray) -> dict[int, RowSource]:
    """:class:`RowSource` per row of the samples table (media paths resolved against the manifest folder)."""
    out = {}
    col = getattr(samples, modality)
    for r in rows:
        r = int(r)
        value = col[r]
        start = float(samples.start[r]) if np.isfinite(samples.start[r]) else None
        end = float(samples.end[r]) if np.isfinite(samples.end[r]) else None
        h = str(current_hash[r]) if current_hash is not None else ""
        if modality == "text":
            out[r] = RowSource(r, text=str(value) if has_input(value) else None, input_hash=h)
        else:
            path = None
            if has_input(value):
                p = Path(str(value))
                path = p if p.is_absolute() else Path(root) / p
            out[r] = RowSource(r, path=path, start=start, end=end, input_hash=h)
    return out


def prepare_row(inputs, src: RowSource):
    """``inputs.prepare(src)``, or the :class:`RowFailure` of a row that cannot be prepared (an unexpected error
    is the row's ``error`` status, not the run's end)."""
    try:
        return inputs.prepare(src)
    except RowFailure as exc:
        return exc
    except Exception as exc:  # a bug or an odd file: the row fails, the run goes on
        log.debug("row %d failed to prepare", src.row, exc_info=True)
        return RowFailure(Status.ERROR, f"row {src.row}: {type(exc).__name__}: {exc}")


def run_extraction(store, key: str, encoder: Encoder, sources_for: Callable[[Iterable[int]], dict[int, RowSource]],
                   *, shard: tuple[int, int] = (0, 1), options: RunOptions = RunOptions(),
                   current_hash: np.ndarray | None = None, on_rows: Callable[[int], None] | None = None,
                   on_block: Callable[[int, int], None] | None = None, on_total: Callable[[int], None] | None = None,
                   rows: np.ndarray | None = None, writer=None) -> ExtractResult:
    """Fill the pending rows of shard ``shard`` of ``key`` with ``encoder``'s embeddings.

    ``sources_for(rows)`` maps row indices to :class:`RowSource`. ``on_rows(n)`` is called as rows finish,
    ``on_block(start, stop)`` after each block is durably written, ``on_total(n)`` once with the rows to compute.
    ``rows`` restricts the run to those rows (others stay as they are; e.g. one fold of a fine-tuned key).
    ``writer``: an open writer of ``key`` (its lease taken early by the caller; left open), else one is opened.
    """
    import contextlib

    t0 = time.perf_counter()
    res = ExtractResult(key=key, shard=tuple(shard))
    with (contextlib.nullcontext(writer) if writer is not None else store.writer(key, shard=shard)) as writer:
        lo, hi = writer.row_range
        res.rows = hi - lo
        if current_hash is not None and hi > lo:
            _check_stale(store, writer, key, current_hash, options.refresh_stale, res)
        pending = _pending_rows(writer, rows, res)
        blocks = [(a, b) for a, b in writer.blocks() if ((pending >= a) & (pending < b)).any()]
        if on_total:
            on_total(len(pending))
        if not len(pending):
            res.seconds = time.perf_counter() - t0
            return res
        block_of = _plan_blocks(blocks, pending, store.key_shape(key)[1:])
        windows = plan_windows(pending, sort_window(encoder.modality, options.window_rows), store.key_shape(key)[0],
                               None if rows is None else np.asarray(rows, np.int64))
        sources = sources_for(np.concatenate([pending] + [ctx for _, ctx in windows]))
        for r in pending.tolist():
            blk = block_of[r]
            blk.hashes[r - blk.start] = sources[r].input_hash
        run = _Run(writer, encoder, options, block_of, store.samples.ids, res, on_rows, on_block)
        run.run(windows, sources)
        res.written = writer.rows_written
        res.failed = dict(run.failures)
    res.seconds = time.perf_counter() - t0
    return res


def _check_stale(store, writer, key: str, current_hash: np.ndarray, refresh: bool, res: ExtractResult) -> None:
    """Record the done rows of the writer's range whose input changed in ``res.stale``; with ``refresh``,
    invalidate them so they are computed again."""
    lo, hi = writer.row_range
    stale = store.stale_rows(key, current_hash)
    stale = stale[(stale >= lo) & (stale < hi)]
    res.stale = [str(store.samples.ids[r]) for r in stale]
    if len(stale):
        if refresh:
            writer.invalidate(stale)
            res.refreshed = int(len(stale))
            log.info("key %s: %d stale rows invalidated; re-extracting them", key, len(stale))
        else:
            log.warning("key %s: %d done rows have changed input (stale), e.g. id %s; rerun with "
                        "--refresh-stale to re-extract them", key, len(stale), res.stale[0])


def _pending_rows(writer, rows: np.ndarray | None, res: ExtractResult) -> np.ndarray:
    """The writer's rows not done (of ``rows`` only, when given); sets ``res.rows`` for ``rows`` and
    ``res.skipped_done``."""
    lo, hi = writer.row_range
    pending = writer.pending_rows()
    if rows is not None:
        subset = np.asarray(rows, np.int64)
        subset = subset[(subset >= lo) & (subset < hi)]
        res.rows = int(len(subset))
        pending = np.intersect1d(pending, subset)
    res.skipped_done = int(res.rows - len(pending))
    return pending


def _plan_blocks(blocks: list[tuple[int, int]], pending: np.ndarray, tail: tuple) -> dict[int, _Block]:
    """The :class:`_Block` of each row of ``blocks``, waiting for its ``pending`` rows."""
    block_of: dict[int, _Block] = {}
    for a, b in blocks:
        # rows already done are passed as PENDING + NaN: the writer keeps their stored bytes and status
        blk = _Block(a, b, np.full((b - a,) + tail, np.nan, np.float32), np.full(b - a, int(Status.PENDING), np.int8),
                     [""] * (b - a), [""] * (b - a), set())
        wanted = set(pending[(pending >= a) & (pending < b)].tolist())
        for r in range(a, b):
            if r in wanted:  # rows outside ``rows`` (not done) stay pending for another run
                blk.waiting.add(r)
            block_of[r] = blk
    return block_of


class _Run:
    """One run over sort windows: decodes the next window (its pending and context rows) in worker threads while
    this thread encodes the current one's length-sorted batches, and hands each block to a writer thread once none
    of its rows is waiting. Context rows are encoded only as members of a batch with a pending row; their output
    is dropped."""

    def __init__(self, writer, encoder: Encoder, options: RunOptions, block_of: dict[int, _Block], ids,
                 res: ExtractResult, on_rows, on_block):
        self.writer, self.encoder, self.options, self.block_of, self.ids = writer, encoder, options, block_of, ids
        self.res, self.on_rows, self.on_block = res, on_rows, on_block
        self.failures: Counter = Counter()
        self.writes: list[Future] = []
        self.write_pool: ThreadPoolExecutor | None = None

    def run(self, windows: list[tuple[np.ndarray, np.ndarray]], sources: dict[int, RowSource]) -> None:
        encoder, options = self.encoder, self.options
        budget = int(options.batch_budget or encoder.inputs.default_budget(encoder.device))
        decode_pool = ThreadPoolExecutor(max_workers=max(1, options.workers), thread_name_prefix="mixsig-decode")
        self.write_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixsig-write")
        try:
            inline = options.workers <= 0 or encoder.inputs.prepare_inline(encoder.device)

            def submit(win: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, Future]]:
                rows = np.union1d(win[0], win[1]).tolist()
                if options.workers <= 0:  # no threads: prepare in this thread, when the window is reached
                    return [(r, _Done(prepare_row, encoder.inputs, sources[r])) for r in rows]
                if inline:  # cheap inputs (tokenising): the whole window as one task, overlapping the forward pass
                    fut = decode_pool.submit(_prepare_all, encoder.inputs, [sources[r] for r in rows])
                    return [(r, _Done(_nth, fut, i)) for i, r in enumerate(rows)]
                return [(r, decode_pool.submit(prepare_row, encoder.inputs, sources[r])) for r in rows]

            submitted = submit(windows[0])
            for w in range(len(windows)):
                current = submitted
                if w + 1 < len(windows):  # decode the next window while this one runs through the model
                    submitted = submit(windows[w + 1])
                self._encode_window(windows[w], current, budget)
        finally:
            decode_pool.shutdown(wait=True, cancel_futures=True)
            self.write_pool.shutdown(wait=True)
        _raise_write_errors(self.writes, wait=True)

    def _encode_window(self, window: tuple[np.ndarray, np.ndarray], prepared: list[tuple[int, Future]],
                       budget: int) -> None:
        wanted = set(window[0].tolist())
        items: list[RowInput] = []
        for r, fut in prepared:
            got = fut.result()
            if not isinstance(got, RowFailure):
                items.append(got)
            elif r in wanted:  # a context row that fails is simply in no batch, as in the run that writes it
                self._record_failure(r, got.status, got.message)
                self._finish(self.block_of[r], r)
                if self.on_rows:
                    self.on_rows(1)
        exact = self.encoder.inputs.exact_length
        for batch in batches_to_run(items, wanted, budget, self.options.max_batch, exact):
            self._encode_batch(batch, wanted)

    def _encode_batch(self, batch: list[RowInput], wanted: set) -> None:
        encoder, ids = self.encoder, self.ids
        out = _encode_checked(encoder, batch)
        n = 0
        for it, vec in zip(batch, out):
            if it.row not in wanted:  # context row: computed for its batch's sake only
                continue
            n += 1
            blk = self.block_of[it.row]
            if vec is None:
                self._record_failure(it.row, Status.NONFINITE, f"id {ids[it.row]}: the encoder produced NaN/Inf"
                                     + (" (also when retried in float32)" if encoder.autocast else ""))
            elif encoder.dtype == "float16" and not np.isfinite(vec.astype(np.float16)).all():
                self._record_failure(it.row, Status.NONFINITE, f"id {ids[it.row]}: values beyond the float16 "
                                     "range; extract with --dtype float32")
            else:
                blk.emb[it.row - blk.start] = vec
                blk.status[it.row - blk.start] = Status.OK
            self._finish(blk, it.row)
        if self.on_rows:
            self.on_rows(n)
        _raise_write_errors(self.writes)

    def _finish(self, blk: _Block, r: int) -> None:
        blk.waiting.discard(r)
        if not blk.waiting:
            self.writes.append(self.write_pool.submit(self._write, blk))

    def _write(self, blk: _Block) -> None:
        self.writer.write_block(blk.start, blk.stop, blk.emb, blk.status, blk.messages, blk.hashes)
        if self.on_block:
            self.on_block(blk.start, blk.stop)

    def _record_failure(self, r: int, status: Status, message: str) -> None:
        blk, ids, name = self.block_of[r], self.ids, Status.name_of(status)
        blk.status[r - blk.start] = status
        blk.messages[r - blk.start] = message
        if status == Status.MISSING_INPUT:
            self.res.no_input += 1
            return
        self.failures[name] += 1
        self.res.ledger.append({"row": int(r), "id": str(ids[r]), "status": name, "message": message})
        log.warning("id %s (row %d): %s: %s", ids[r], r, name, message)
        if self.options.strict:
            raise ExtractionError(f"--strict: id {str(ids[r])!r} (row {r}) failed with {name}: {message}. Blocks "
                                  "finished before it are kept; fix the input or run without --strict to record "
                                  "failures and go on.")


def _prepare_all(inputs, srcs: list[RowSource]) -> list:
    return [prepare_row(inputs, s) for s in srcs]


def _nth(fut: Future, i: int):
    return fut.result()[i]


class _Done:
    """A deferred call with a Future's ``result()``: runs when asked, in the asking thread."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def result(self):
        return self.fn(*self.args)


def _encode_checked(encoder: Encoder, batch: list[RowInput]) -> list:
    """Embeddings of ``batch`` as a list (None for rows that stay non-finite after an fp32 retry)."""
    out = encoder.encode(batch)
    flat = out.reshape(len(batch), -1)
    ok = np.isfinite(flat).all(axis=1)
    rows = [out[i] if ok[i] else None for i in range(len(batch))]
    if not ok.all() and encoder.autocast:
        for i in np.flatnonzero(~ok):
            log.info("row %d: non-finite under float16 autocast; retrying in float32", batch[i].row)
            again = encoder.encode([batch[i]], fp32=True)[0]
            rows[i] = again if np.isfinite(again).all() else None
    return rows


def _raise_write_errors(writes: list[Future], wait: bool = False) -> None:
    for f in list(writes):
        if wait or f.done():
            exc = f.exception()
            if exc is not None:
                if isinstance(exc, StoreError):
                    raise exc
                raise StoreError(f"writing a block failed: {type(exc).__name__}: {exc}") from exc
            writes.remove(f)


__all__ = ["ExtractResult", "RunOptions", "describe_allowed_leak", "prepare_row", "row_sources", "run_extraction"]
