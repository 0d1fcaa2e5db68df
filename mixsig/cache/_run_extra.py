"""Paths of a run's extra per-subset arrays (``RunSubset.extra``): checked plain names, listed for reading."""

from __future__ import annotations

import re

from mixsig.errors import StoreError

EXTRA_PART = re.compile(r"^[A-Za-z0-9_.@+-]+$")
BASE_ARRAYS = ("probs", "gates", "attention")


def check_extra_path(run: str, sub: str, path: str) -> None:
    parts = str(path).split("/")
    if path in BASE_ARRAYS or any(not EXTRA_PART.match(p) or p in (".", "..") for p in parts):
        raise StoreError(f"run {run!r} subset {sub!r}: extra array path {path!r} is not allowed (plain names joined "
                         f"by '/', not probs/gates/attention)")


def extra_arrays(h, prefix: str = ""):
    """The path of every array under subset group ``h`` but probs/gates/attention, sorted."""
    for k in sorted(h.array_keys()):
        path = f"{prefix}{k}"
        if path not in BASE_ARRAYS:
            yield path
    for k in sorted(h.group_keys()):
        yield from extra_arrays(h[k], f"{prefix}{k}/")
