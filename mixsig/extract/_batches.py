"""Length-sorted batches under a padded-size budget (extraction and fine-tuning batch alike), and the fixed sort
windows that extraction batches within.

A *sort window* is a fixed range of manifest rows ``[k * W, (k + 1) * W)`` (``W`` from :data:`SORT_WINDOW`):
extraction sorts and batches the rows of one window together, never across two. Windows depend on the row
order alone, not on the run, so a fresh run, a run resumed after a kill and a sharded run put every row in the
same batch (and so give it the same bits): a run computes the rows of a window that it does not write (done
already, or another shard's) as *context* when they share a window with rows it writes, and drops their output.
"""

from __future__ import annotations

import numpy as np

from mixsig.extract._encoders import RowInput

#: Rows per sort window by modality. Much larger than a chunk for text, whose padding saving needs many rows of
#: similar length together (1,535 MiniLM transcripts: 33.4k padded tokens sorted as one window against 37.1k
#: sorted within 128-row chunks, in 19 batches against 88; benchmarks/README.md); smaller for audio and video,
#: whose context rows cost decoding. Changing a value changes which rows share a batch, so the last bits of new
#: extractions (never those of rows already done).
SORT_WINDOW = {"text": 2048, "audio": 256, "video": 64}
#: Sort window of a modality not in :data:`SORT_WINDOW`.
DEFAULT_SORT_WINDOW = 256


def sort_window(modality: str, override: int | None = None) -> int:
    """Rows per sort window of ``modality`` (``override`` when given; must be >= 1)."""
    w = int(override) if override is not None else int(SORT_WINDOW.get(modality, DEFAULT_SORT_WINDOW))
    if w < 1:
        raise ValueError(f"sort window must be >= 1 rows; got {w}")
    return w


def plan_windows(pending: np.ndarray, window: int, n_rows: int,
                 universe: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(pending rows, context rows) of each sort window of ``window`` rows that holds ``pending`` rows, in row
    order. Context rows: the window's other rows of ``universe`` (all ``n_rows`` rows when None; e.g. the rows of
    one fold), computed only to make the same batches as a run that writes them."""
    pending = np.unique(np.asarray(pending, np.int64))
    out = []
    for k in np.unique(pending // window):
        lo, hi = int(k) * window, min((int(k) + 1) * window, n_rows)
        rows = np.arange(lo, hi, dtype=np.int64) if universe is None else \
            np.unique(np.asarray(universe, np.int64)[(universe >= lo) & (universe < hi)])
        mine = pending[(pending >= lo) & (pending < hi)]
        out.append((mine, np.setdiff1d(rows, mine)))
    return out


def make_batches(items: list[RowInput], budget: int, max_batch: int, exact_length: bool = False,
                 max_padding: float = 1.2) -> list[list[RowInput]]:
    """Length-sorted batches (longest first). A row joins the current batch while the padded size
    ``len(batch) * max_length`` stays within ``budget`` and within ``max_padding`` times the batch's real size
    (so short rows are not padded to a long one just because the budget allows it). A single over-budget row
    gets its own batch. With ``exact_length`` a batch holds rows of one length."""
    order = sorted(items, key=lambda it: (-it.length, it.row))
    batches: list[list[RowInput]] = []
    cur: list[RowInput] = []
    real = 0
    for it in order:
        if cur:
            longest = cur[0].length
            padded = (len(cur) + 1) * longest
            fits = (padded <= budget and len(cur) < max_batch and padded <= max_padding * (real + it.length))
            if not fits or (exact_length and it.length != longest):
                batches.append(cur)
                cur, real = [], 0
        cur.append(it)
        real += it.length
    if cur:
        batches.append(cur)
    return batches


def batches_to_run(items: list[RowInput], wanted: set, budget: int, max_batch: int,
                   exact_length: bool = False) -> list[list[RowInput]]:
    """The batches of one sort window's ``items`` (its pending and context rows) that hold a ``wanted`` row."""
    return [b for b in make_batches(items, budget, max_batch, exact_length) if any(it.row in wanted for it in b)]
