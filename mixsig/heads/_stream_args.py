"""What ``train_run(stream=True)`` / ``mixsig train --stream`` refuses before any work, and ``--stream-memory``
parsed (:mod:`mixsig.heads._streaming` does the streaming)."""

from __future__ import annotations

import numpy as np

from mixsig.errors import UsageError
from mixsig.heads._streaming import WINDOWS_HELD, n_windows, window_rows_for


def parse_memory(text) -> int:
    """``"512M"``, ``"2G"``, ``"1.5GiB"``, ``"1000000"`` -> bytes; :class:`UsageError` naming the forms."""
    if isinstance(text, (int, np.integer)):
        value = int(text)
    else:
        t = str(text).strip().upper().removesuffix("IB").removesuffix("B")
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
        try:
            value = int(float(t[:-1] if mult > 1 else t) * mult)
        except (ValueError, OverflowError):
            raise UsageError(f"--stream-memory takes bytes like 512M, 2G or 1500000; got {text!r}.") from None
    if value < (64 << 10):
        raise UsageError(f"--stream-memory {text!r} is under 64 KiB; give e.g. 256M.")
    return value


def check_streamable(head: str, store, features: dict) -> None:
    """Refuse, before any work, what streaming cannot train: heads that need their rows in memory, all-layer keys."""
    from mixsig.heads._registry import head_class
    from mixsig.heads._torch import TorchHead

    if not issubclass(head_class(head), TorchHead):
        raise UsageError(f"--stream trains torch heads (gated, concat, late); {head!r} needs its training rows in "
                         f"memory. Train it without --stream.")
    for key in features.values():
        shape = store.key_shape(key)
        if len(shape) != 2:
            raise UsageError(f"--stream reads pooled [N, D] keys; {key} is {list(shape)} (all layers). Pool it "
                             f"(`mixsig extract --layers last`) or train without --stream.")


def check_batches(head: str, params: dict, X: dict, n_train: int, memory: int) -> None:
    """Before any fit: a batch must fit in a window of the widest subset (every modality), else :class:`UsageError`
    naming the ``--stream-memory`` it needs (a batch larger than a window would hold more than the budget)."""
    from mixsig.heads._registry import get_head
    from mixsig.heads._torch import resolve_schedule

    c = get_head(head, **params).config
    batch = resolve_schedule(n_train, c.steps, c.batch_size, c.epochs).batch_size
    largest = -(-n_train // n_windows(n_train, window_rows_for(X, memory)))
    if batch > largest:
        row = sum(4 * int(x.shape[1]) for x in X.values())
        raise UsageError(f"--stream: batches of {batch} rows do not fit windows of {largest} rows of "
                         f"{'+'.join(X)} (--stream-memory {memory:,} bytes); give --stream-memory of at least "
                         f"{WINDOWS_HELD * batch * row:,} bytes or a smaller batch_size"
                         + (" (batch_size=0 is one batch of every training row)" if not c.batch_size else "") + ".")


__all__ = ["check_batches", "check_streamable", "parse_memory"]
