"""Torch threads for ``extract`` / ``finetune``: a default chosen from the cores, set for the command and restored.

On a machine of 2 busy cores a second torch thread mostly waits for a core shared with decoding and other
processes, so the default there is 1 (measurement in benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import logging
import os

from mixsig.errors import UsageError

log = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None) -> int:
    """1 on machines of 2 cores or fewer, else the number of cores."""
    cores = available_cores() if cores is None else int(cores)
    return 1 if cores <= 2 else cores


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` and restore the caller's count after (None: leave it).

    Results can differ in their last bits between thread counts (reduction order), which is why ``extract`` and
    ``finetune`` default to :func:`default_threads` from the CLI and the API alike."""
    if n is None:
        yield
        return
    if int(n) < 1:
        raise UsageError(f"--threads must be >= 1; got {n}")
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(int(n))
    log.debug("torch threads %d (were %d)", n, prev)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


__all__ = ["available_cores", "default_threads", "torch_threads"]
