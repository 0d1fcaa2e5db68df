"""Torch heads trained on keys larger than memory: rows read from the store window by window while training.

``train_run(..., stream=True)`` (``mixsig train --stream``) never reads a key whole. The run's rows are lazy
:class:`StoreRows` (a key and sorted store rows); a fit reads its training rows through a :class:`WindowLoader`:
the rows cut into windows of ``window_rows`` consecutive rows (chunk-friendly: consecutive store rows), each
epoch's order is a random order of the windows and a random order of the rows within each window
(:meth:`WindowLoader.permutation`), and the next window in that order is read by a thread while the current one
trains. ``stream_memory`` bounds the feature rows held at once, however large the key: six windows' worth per
fit (:data:`WINDOWS_HELD`: three of training rows, two of validation rows, the chunks of the one being read).
Validation accuracy is scored in slices of at most a window. Predictions, gates and the missing-modality
probabilities are computed block by block (:func:`blockwise`), in whole multiples of the head's ``eval_batch_size``
when the budget holds three of them (every forward pass then sees the chunks it sees in memory).

Same results as in memory: when the training rows fit in one window (the default 1 GiB budget holds about 19,000
rows of three 768-d keys), the window order is exactly the in-memory path's ``torch.randperm`` drawn from the
same stream, and a streamed run is bit-identical to the in-memory run with one seed, or with the seeds trained one
after another (``MIXSIG_BATCHED_SEEDS=0``; in memory they train batched, equal within 1e-4). With several windows
the order is a windowed shuffle (each batch's rows come from one or two windows): other numbers, and on a planted
signal the same accuracy within 0.06 (tests/heads/test_streaming.py). :class:`WindowLoader` over in-memory arrays
gives that order in memory, for comparison. A batch must fit in a window (refused otherwise, naming the
``stream_memory`` it needs).

Limits: torch heads only (``gated``, ``concat``, ``late``; LightGBM and logistic regression need their rows in
memory) and pooled ``[N, D]`` keys; the seeds of a streamed run train one after another (not batched).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from mixsig.errors import StoreError, UsageError

log = logging.getLogger(__name__)

#: ``stream_memory`` default: bytes of feature rows a streamed fit keeps in memory (all windows, all modalities)
DEFAULT_STREAM_MEMORY = 1 << 30
#: windows of rows a streamed fit holds at most per modality, in its ``stream_memory``: three of the training rows
#: (the current one, the one read ahead, one a batch straddles into), two of the validation rows, and the chunks
#: of the window being read, mapped while they are checked
WINDOWS_HELD = 6
#: blocks of rows :func:`blockwise` holds at most: the one predicted, the one read ahead, the one being read
BLOCKS_HELD = 3


class StoreRows:
    """Rows ``rows`` (sorted store rows, all done) of ``key``: a lazy ``[len(rows), D]`` float32 array.

    ``x[positions]`` is another :class:`StoreRows` (nothing read); :meth:`read` reads ``rows[a:b]``."""

    def __init__(self, store, key: str, rows: np.ndarray, width: int):
        self.store, self.key, self.rows, self.width = store, key, np.asarray(rows, np.int64), int(width)
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.rows.size), self.width)

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, positions) -> "StoreRows":
        if isinstance(positions, slice):
            return StoreRows(self.store, self.key, self.rows[positions], self.width)
        pos = np.asarray(positions)
        if pos.dtype == bool:
            pos = np.flatnonzero(pos)
        return StoreRows(self.store, self.key, self.rows[pos.astype(np.int64)], self.width)

    def read(self, a: int = 0, b: int | None = None) -> np.ndarray:
        from mixsig.cache import forget_verified

        rows = self.rows[a:b]
        view = self.store.read(self.key, rows=rows, dtype="float32")
        forget_verified()  # a window is read once an epoch: keep no chunk mapped (they count towards ulimit -v)
        if view.X.shape[0] != rows.size:  # a row was marked not done since the run chose its rows
            raise StoreError(f"Key {self.key}: {rows.size - view.X.shape[0]} of rows {rows[0]}..{rows[-1]} are no "
                             f"longer done (another process is re-extracting?); rerun when it is finished.")
        return view.X

    def __array__(self, dtype=None, copy=None):
        raise UsageError(f"key {self.key} is streamed ({self.shape[0]} rows read window by window); this step "
                         f"needs its rows in memory: train without --stream.")


def _blocks(n: int, block_rows: int):
    return [(s, min(n, s + block_rows)) for s in range(0, n, block_rows)]


def block_rows_for(X: dict, eval_batch_size: int, memory: int = DEFAULT_STREAM_MEMORY) -> int:
    """Rows per block of :func:`blockwise`: :data:`BLOCKS_HELD` blocks of every modality's rows within ``memory``
    bytes, a whole multiple of ``eval_batch_size`` (the forward passes then see the chunks they see in memory) when
    the budget holds three eval batches, else fewer rows (streamed keys only)."""
    row_bytes = sum(4 * int(x.shape[1]) for x in X.values()) or 1
    k = memory // (BLOCKS_HELD * row_bytes * eval_batch_size)
    if k >= 1 or not any(isinstance(x, StoreRows) for x in X.values()):
        return int(eval_batch_size * max(1, k))
    return max(1, int(memory // (BLOCKS_HELD * row_bytes)))  # a budget under 3 eval batches: smaller blocks


def blockwise(fn, X: dict, block_rows: int):
    """``fn(X)`` for ``X`` of numpy arrays; for :class:`StoreRows` values ``fn`` applied to row blocks read in turn,
    the next block read by a thread meanwhile, and the results (arrays, dicts of arrays, or None) concatenated."""
    if not any(isinstance(x, StoreRows) for x in X.values()):
        return fn(X)
    n = len(next(iter(X.values())))
    parts = _blocks(n, block_rows)
    pool = ThreadPoolExecutor(1, thread_name_prefix="mixsig-stream")
    try:
        read = lambda a, b: {m: x.read(a, b) if isinstance(x, StoreRows) else x[a:b] for m, x in X.items()}  # noqa: E731
        nxt = pool.submit(read, *parts[0])
        out = []
        for j in range(len(parts)):
            block = nxt.result()
            if j + 1 < len(parts):
                nxt = pool.submit(read, *parts[j + 1])
            out.append(fn(block))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if out[0] is None:
        return None
    if isinstance(out[0], dict):
        return {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    return np.concatenate(out)


def predict_and_weights(head, X: dict) -> dict:
    """``{"probs": head.predict_proba(X), **head.modality_weights(X)}`` (gates and attention for heads with them)."""
    return {"probs": head.predict_proba(X), **(head.modality_weights(X) or {})}


def rows_mean(x, block_rows: int = 65536) -> np.ndarray:
    """Column means (float64) of an array or :class:`StoreRows`, read block by block."""
    if not isinstance(x, StoreRows):
        return np.asarray(x, np.float64).mean(axis=0)
    total = np.zeros(x.shape[1], np.float64)
    for a, b in _blocks(len(x), block_rows):
        total += x.read(a, b).sum(axis=0, dtype=np.float64)
    return total / max(1, len(x))


def n_windows(n: int, window_rows: int) -> int:
    """How many equal windows of at most ``window_rows`` rows ``n`` rows make (the largest holds ceil(n / that))."""
    return max(1, -(-n // max(2, int(window_rows))))


class WindowLoader:
    """The rows of one fit (every modality's :class:`StoreRows` over the same rows, or in-memory ``arrays``) read
    window by window for :func:`mixsig.training.train_epochs`: :meth:`permutation` draws an epoch's order and
    :meth:`modality` gives each modality a tensor-like view whose ``index_select(0, idx)`` gathers a batch.

    Windows are of equal size (within one row), so a batch no larger than a window spans at most two, consecutive
    in the epoch's order. Held: the window before the current one in that order, the current one, and the next
    (read ahead by a thread as soon as the current one is first asked for). Without an order (validation rows,
    read in turn) the last two windows asked for are held. ``reads`` counts windows read, ``misses`` the reads the
    caller had to wait for from the start (none of the training windows when batches come in the epoch's order)."""

    def __init__(self, sources: list, window_rows: int):
        self.sources = sources
        self.n = len(sources[0])
        k = n_windows(self.n, window_rows)
        cuts = [self.n * j // k for j in range(k + 1)]  # equal windows (sizes differ by one row at most)
        self.windows = [(cuts[j], cuts[j + 1]) for j in range(k)]
        self.W = max(b - a for a, b in self.windows)
        self._starts = np.array(cuts[:-1], np.int64)
        self._held: dict[int, list] = {}
        self._pending: dict[int, Future] = {}
        self._plan: list[int] = []
        self._at: dict[int, int] = {}  # window -> position in this epoch's order
        self._pos = -1  # the furthest position of this epoch's order asked for
        self._recent: list[int] = []  # without an order: the windows asked for last
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mixsig-window")
        self.reads = 0
        self.misses = 0
        self.max_held = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._held.clear()
        self._pending.clear()

    def permutation(self, n: int, generator=None):
        """An epoch's row order: with one window exactly ``torch.randperm(n, generator=generator)`` (the in-memory
        path's draw); with more, a random order of the windows, then each window's rows in random order."""
        import torch

        if n != self.n:
            raise ValueError(f"permutation of {n} rows asked of a loader of {self.n}")
        if len(self.windows) == 1:
            order, perm = [0], torch.randperm(n, generator=generator)
        else:
            order = torch.randperm(len(self.windows), generator=generator).tolist()
            perm = torch.cat([self.windows[w][0] + torch.randperm(self.windows[w][1] - self.windows[w][0],
                                                                  generator=generator) for w in order])
        self._plan, self._at, self._pos = order, {w: k for k, w in enumerate(order)}, -1
        self._ahead(order[0])
        return perm

    def _read(self, w: int) -> list:
        import torch

        a, b = self.windows[w]
        out = []
        for src in self.sources:
            x = src.read(a, b) if isinstance(src, StoreRows) else np.ascontiguousarray(src[a:b], np.float32)
            out.append(torch.from_numpy(x))
        self.reads += 1
        return out

    def _ahead(self, w: int) -> None:
        with self._lock:
            if w not in self._held and w not in self._pending:
                self._pending[w] = self._pool.submit(self._read, w)

    def _keep(self, w: int) -> set:
        k = self._at.get(w)
        if k is None:  # no order (rows read in turn): the last two asked for, and the next read ahead
            if w not in self._recent and w + 1 < len(self.windows):
                self._ahead(w + 1)
            self._recent = [v for v in self._recent if v != w][-1:] + [w]
            return set(self._recent)
        if k > self._pos:  # the order moved on: read the next window ahead
            self._pos = k
            if k + 1 < len(self._plan):
                self._ahead(self._plan[k + 1])
        return {self._plan[j] for j in (k - 1, k, k + 1) if 0 <= j < len(self._plan)}

    def window(self, w: int) -> list:
        """Window ``w``'s tensors (one per modality): held, taken from the read-ahead, or read now."""
        keep = self._keep(w)
        for old in [v for v in self._held if v not in keep]:
            del self._held[old]
        held = self._held.get(w)
        if held is None:
            with self._lock:
                fut = self._pending.pop(w, None)
            if fut is None:
                self.misses += 1
                fut = self._pool.submit(self._read, w)
            held = self._held[w] = fut.result()
            self.max_held = max(self.max_held, len(self._held))
        return held

    def gather(self, i: int, idx):
        import torch

        w_of = torch.from_numpy(np.searchsorted(self._starts, idx.numpy(), side="right") - 1)
        first, last = int(w_of.min()), int(w_of.max())
        if first == last:
            return self.window(first)[i].index_select(0, idx - self.windows[first][0])
        ws = sorted(torch.unique(w_of).tolist(), key=lambda w: self._at.get(w, w))  # in the epoch's order
        out = None
        for w in ws:
            sel = torch.nonzero(w_of == w).squeeze(1)
            part = self.window(w)[i].index_select(0, idx.index_select(0, sel) - self.windows[w][0])
            if out is None:
                out = part.new_empty((idx.numel(), part.shape[1]))
            out[sel] = part
        return out

    def modality(self, i: int) -> "_View":
        return _View(self, i)


class _View:
    """One modality of a :class:`WindowLoader`, used by the training loop in place of its ``[n, D]`` tensor."""

    def __init__(self, loader: WindowLoader, i: int):
        self.loader, self.i = loader, i
        self.shape = (loader.n, int(loader.sources[i].shape[1]))
        self.chunk_rows = loader.W  # slices of at most this many rows span two windows at most
        self.ndim = 2
        self.dtype = np.dtype(np.float32)
        self.permutation = loader.permutation

    def index_select(self, dim: int, idx):
        if dim != 0:
            raise ValueError("streamed rows are selected along dim 0 only")
        return self.loader.gather(self.i, idx)

    def __getitem__(self, sl: slice):
        import torch

        a, b, _ = sl.indices(self.shape[0])
        return self.loader.gather(self.i, torch.arange(a, b))

    def __len__(self) -> int:
        return self.shape[0]


def window_rows_for(X: dict, memory: int = DEFAULT_STREAM_MEMORY) -> int:
    """Rows per window: :data:`WINDOWS_HELD` windows of every modality's rows within ``memory`` bytes."""
    row_bytes = sum(4 * int(x.shape[1]) for x in X.values()) or 1
    return max(2, int(memory // (WINDOWS_HELD * row_bytes)))


def finite_check(x: StoreRows, block_rows: int) -> None:
    """One pass over a streamed key's rows: NaN/Inf in a done row raises :class:`StoreError` naming it."""
    for a, b in _blocks(len(x), block_rows):
        block = x.read(a, b)
        ok = np.isfinite(block).all(axis=1)
        if not ok.all():
            r = int(x.rows[a + int(np.flatnonzero(~ok)[0])])
            raise StoreError(f"Key {x.key}: rows marked done hold NaN/Inf (first: row {r}, id "
                             f"{str(x.store.samples.ids[r])!r}); run `mixsig cache verify` and re-extract them.")


def stream_features(store, features: dict[str, str], memory: int = DEFAULT_STREAM_MEMORY):
    """The streamed counterpart of reading every key: ``({modality: StoreRows over the used rows}, used rows (done
    in every key, sorted), {modality: rows not done})``, after one pass over each key's used rows that refuses
    NaN/Inf in a done row (:func:`finite_check`). Unlike the in-memory path, which checks every done row of each
    key, rows a run does not use (not done in another key) are not read, so not checked."""
    N = len(store.samples)
    common = np.ones(N, dtype=bool)
    not_done = {}
    for m, key in features.items():
        store.check_provenance(key)
        done = np.asarray(store.read_array(key, "done"), bool)
        not_done[m] = int(N - done.sum())
        common &= done
    used = np.flatnonzero(common).astype(np.int64)
    X = {m: StoreRows(store, key, used, store.key_shape(key)[1]) for m, key in features.items()}
    for x in X.values():
        finite_check(x, window_rows_for({"x": x}, memory))
    return X, used, not_done


def fit_streamed(head: str, params: dict, X: dict, y, X_val, y_val, soft_labels, seeds, n_classes, memory: int):
    """Fitted heads, one per seed (an iterator), each trained on ``X`` (:class:`StoreRows`) read window by window."""
    from mixsig.heads._base import FitInputs
    from mixsig.heads._registry import get_head
    from mixsig.heads._targets import target_matrix

    mods = list(X)
    window = window_rows_for(X, memory)
    for seed in seeds:
        h = get_head(head, **params)
        h._check_config()
        loader = WindowLoader([X[m] for m in mods], window)
        val = None
        if X_val is not None:
            val_loader = WindowLoader([X_val[m] for m in mods], window)
            val = tuple(val_loader.modality(i) for i in range(len(mods)))
        T = target_matrix(np.asarray(y, np.int64), n_classes, soft_labels=soft_labels,
                          class_weight=h.config.class_weight)
        inputs = FitInputs(modalities=tuple(mods), X=tuple(loader.modality(i) for i in range(len(mods))),
                           y=np.asarray(y, np.int64), T=T, n_classes=int(n_classes), class_weight=h.config.class_weight,
                           X_val=val, y_val=None if val is None else np.asarray(y_val, np.int64))
        log.debug("streamed fit: %d training rows in %d window(s) of %d rows", loader.n, len(loader.windows), window)
        try:
            h.fit_validated(inputs, seed=seed)
            h.stream_windows_ = len(loader.windows)
        finally:
            loader.close()
            if val is not None:
                val_loader.close()
        yield h


__all__ = ["DEFAULT_STREAM_MEMORY", "StoreRows", "WindowLoader", "blockwise", "block_rows_for", "finite_check",
           "fit_streamed", "n_windows", "predict_and_weights", "rows_mean", "stream_features", "window_rows_for"]
