"""The same media under two ids (``duplicate_media`` warnings): the same file and segment, or the same bytes
and segment in two files.

Files are compared only when another file has the same size and segment: first by their first and last 64 KiB,
then, where those match, by their full sha256 — a clean manifest costs one stat per file and a few reads.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path

from mixsig.manifest._hash import media_hash
from mixsig.manifest._row import Row
from mixsig.manifest._schema import MEDIA_MODALITIES, Problem, resolve

_Item = tuple[int, str, Path]  # (row number, id, absolute path)


def duplicate_media(root: Path, rows: list[Row], row_numbers: list[int],
                    skip: frozenset = frozenset()) -> list[Problem]:
    """Warnings for the same media (same file + segment, or same bytes + segment) under two ids; per modality,
    same-file warnings first, then same-content ones. ``skip``: ``(row number, modality)`` not looked at (paths
    outside the manifest's folder)."""
    problems = []
    for m in MEDIA_MODALITIES:
        same_file, by_size = _same_file(m, root, rows, row_numbers, skip)
        problems.extend(same_file)
        for items in _candidates(by_size):
            problems.extend(_same_content(m, items))
    return problems


def _same_file(m: str, root: Path, rows: list[Row], row_numbers: list[int],
               skip: frozenset) -> tuple[list[Problem], dict[tuple, list[_Item]]]:
    """Warnings for rows naming a file + segment an earlier row named; the other rows by (size, segment)."""
    problems = []
    seen_path: dict[tuple, tuple[int, str]] = {}
    by_size: dict[tuple, list[_Item]] = defaultdict(list)
    for rownum, r in zip(row_numbers, rows):
        if not r[m] or (rownum, m) in skip:
            continue
        fp = resolve(root, r[m])
        try:
            real = os.path.realpath(fp)
            size = os.path.getsize(fp)
        except OSError:
            continue  # reported as missing/unreadable
        seg = (r.start, r.end)
        key = (real, seg)
        if key in seen_path:
            first_row, first_id = seen_path[key]
            problems.append(Problem(rownum, m, f"the same {m} file and segment as id {first_id!r} (row "
                                    f"{first_row}); two ids for one sample inflate results (and leak across "
                                    "splits): remove one or fix the path", "duplicate_media", "warning"))
            continue
        seen_path[key] = (rownum, r.id)
        by_size[(size, seg)].append((rownum, r.id, fp))
    return problems, by_size


def _candidates(by_size: dict[tuple, list[_Item]]) -> list[list[_Item]]:
    """Groups of files with the same size, segment, and first and last 64 KiB."""
    candidates = []
    for items in by_size.values():
        if len(items) < 2:
            continue
        by_ends: dict[bytes, list] = defaultdict(list)
        for item in items:
            try:
                by_ends[_ends_digest(item[2])].append(item)
            except OSError:
                continue
        candidates.extend(group for group in by_ends.values() if len(group) > 1)
    return candidates


def _same_content(m: str, items: list[_Item]) -> list[Problem]:
    """Warnings for files of one candidate group whose full content hash an earlier file of the group has."""
    problems = []
    first_by_hash: dict[str, _Item] = {}
    for rownum, rid, fp in items:
        try:
            h = media_hash(fp)
        except OSError:
            continue
        if h in first_by_hash:
            frow, fid, fpath = first_by_hash[h]
            problems.append(Problem(rownum, m, f"{m} file {fp.name!r} has the same content and segment as "
                                    f"{fpath.name!r} of id {fid!r} (row {frow}); remove the copy or fix "
                                    "the path", "duplicate_media", "warning"))
        else:
            first_by_hash[h] = (rownum, rid, fp)
    return problems


def _ends_digest(path: Path, size: int = 1 << 16) -> bytes:
    """sha256 of a file's first and last ``size`` bytes (a cheap pre-filter before the full hash)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(size))
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        fh.seek(max(size, end - size))
        digest.update(fh.read(size))
    return digest.digest()
