"""Content hashes of inputs, shared with the cache (which records the hash each row was computed from)."""

from __future__ import annotations

import hashlib
import os

HASH_CHARS = 16


def text_hash(text: str) -> str:
    """Content hash of a text: first 16 hex chars of sha256 over its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def media_hash(path: str | os.PathLike, start: float | None = None, end: float | None = None) -> str:
    """Content hash of a media file and segment: first 16 hex chars of sha256.

    Without a segment (``start`` and ``end`` None) it is the sha256 of the file bytes; with one,
    the bytes are followed by ``b"\\0segment=<start>,<end>"`` (each ``repr(float)`` or empty).
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if start is not None or end is not None:
        seg = f"{'' if start is None else repr(float(start))},{'' if end is None else repr(float(end))}"
        digest.update(b"\0segment=" + seg.encode("ascii"))
    return digest.hexdigest()[:HASH_CHARS]
