"""Length-sorted batches under a padded-size budget (extraction and fine-tuning batch alike)."""

from __future__ import annotations

from mixsig.extract._encoders import RowInput


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
