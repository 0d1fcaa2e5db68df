"""What a manifest gives the feature store: its samples table (:func:`to_samples`, content hashes computed
here) and the store-level attrs recorded from it (:func:`store_attrs`). numpy and :mod:`mixsig.cache` are
imported inside the functions."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from mixsig.errors import ManifestError
from mixsig.manifest._hash import media_hash, text_hash
from mixsig.manifest._outside import outside_reason
from mixsig.manifest._schema import MEDIA_MODALITIES, MODALITIES, VOTES_PREFIX, Manifest, logger


def store_attrs(manifest: Manifest, store_url) -> dict:
    """Store-level attrs recorded from a manifest: its sha256, and its path relative to the store folder when
    possible (so a store moved together with its corpus still finds the media)."""
    try:
        rel = os.path.relpath(manifest.path, Path(str(store_url)).resolve())
    except ValueError:
        rel = str(manifest.path)
    return {"manifest_sha256": manifest.sha256, "manifest_path": rel, "manifest_name": manifest.path.name}


def to_samples(manifest: Manifest):
    """Build the samples table (:class:`mixsig.cache.Samples`) of a manifest; content hashes are computed here.

    ``content_hash[m]`` is :func:`text_hash` of the text / :func:`media_hash` of the file and segment
    ([N] str, 16 hex; "" = no such modality, or a media file that cannot be read — logged; also a media path
    outside the manifest's folder, not opened unless ``manifest.outside_paths_allowed`` — logged).
    ``votes`` is [N, A] int16 class indices with A the largest number of votes in a row, -1 padding;
    ``votes_by_condition[c]`` likewise. Extra columns go to ``columns`` typed by :func:`extra_column`.
    """
    import numpy as np

    from mixsig.cache import Samples

    rows = manifest.rows
    index = {c: i for i, c in enumerate(manifest.classes)}
    labels = _labels(manifest, index)
    hashes = _content_hashes(manifest)
    return Samples(
        ids=_strings([r.id for r in rows]),
        split=_strings([r.split for r in rows]),
        label=np.asarray(labels, dtype=np.int64),
        group=_strings([r.group for r in rows]),
        classes=tuple(manifest.classes),
        text=_strings([r.text or "" for r in rows]),
        audio=_strings([r.audio or "" for r in rows]),
        video=_strings([r.video or "" for r in rows]),
        start=np.asarray([np.nan if r.start is None else r.start for r in rows], dtype=np.float64),
        end=np.asarray([np.nan if r.end is None else r.end for r in rows], dtype=np.float64),
        content_hash={m: _strings(v) for m, v in hashes.items()},
        votes=_vote_matrix(manifest, index, [r.votes for r in rows], "votes"),
        votes_by_condition={c: _vote_matrix(manifest, index, [r.votes_by_condition.get(c) for r in rows],
                                            VOTES_PREFIX + c)
                            for c in manifest.conditions},
        columns={c: extra_column([r.extra.get(c) for r in rows]) for c in manifest.extra_columns},
    )


def _strings(values: list[str]):
    import numpy as np

    return np.asarray(values, dtype=str) if values else np.zeros(0, dtype="<U1")


def _labels(manifest: Manifest, index: dict[str, int]) -> list[int]:
    """Each row's class index (-1 = no label); :class:`ManifestError` for a label outside the classes."""
    labels = []
    for r in manifest.rows:
        if r.label is None:
            labels.append(-1)
        elif r.label in index:
            labels.append(index[r.label])
        else:
            raise ManifestError(f"id {r.id!r}: label {r.label!r} is not in the classes {manifest.classes}; "
                                "validate the manifest first (`mixsig validate`)")
    return labels


def _vote_matrix(manifest: Manifest, index: dict[str, int], lists: list[list[str] | None], column: str):
    """[N, A] int16 class indices of the votes in ``lists`` (A the most votes of a row), -1 padding."""
    import numpy as np

    width = max((len(v) for v in lists if v), default=0)
    out = np.full((len(lists), width), -1, dtype=np.int16)
    for i, votes in enumerate(lists):
        for j, v in enumerate(votes or ()):
            if v not in index:
                raise ManifestError(f"id {manifest.rows[i].id!r}: unknown label {v!r} in {column}; validate the "
                                    "manifest first (`mixsig validate`)")
            out[i, j] = index[v]
    return out


def _content_hashes(manifest: Manifest) -> dict[str, list[str]]:
    """{modality: [N] content hash}; "" for no such input, or a media file that cannot be read (logged)."""
    hashes: dict[str, list[str]] = {m: [] for m in MODALITIES}
    unreadable, outside = [], []
    real_root = os.path.realpath(manifest.root)
    for r in manifest.rows:
        hashes["text"].append(text_hash(r.text) if r.text else "")
        for m in MEDIA_MODALITIES:
            if not r[m]:
                hashes[m].append("")
                continue
            if not manifest.outside_paths_allowed and outside_reason(manifest.root, r[m], real_root):
                hashes[m].append("")
                outside.append(f"{r.id}:{m}")
                continue
            try:
                hashes[m].append(media_hash(manifest.media_path(r, m), r.start, r.end))
            except OSError:
                hashes[m].append("")
                unreadable.append(f"{r.id}:{m}")
    if unreadable:
        logger.warning("%d media files cannot be read; their content hash is empty (first: %s)",
                       len(unreadable), ", ".join(unreadable[:5]))
    if outside:
        logger.warning("%d media paths lead outside the manifest's folder and were not opened; their content hash "
                       "is empty (first: %s); load the manifest with allow_outside_paths=True "
                       "(--allow-outside-paths) to hash them", len(outside), ", ".join(outside[:5]))
    return hashes


#: A number as a cell may write it: no leading zeros ("007" stays text), no "nan"/"inf", no "1_000".
_INT = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _number(value: Any):
    """``value`` as an int or a finite float, None for an empty cell, or the string itself when it is not one."""
    if value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return _cell_str(value)
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) and abs(value) < 2 ** 53 else _cell_str(value)
    v = value.strip()
    if _INT.fullmatch(v) and abs(int(v)) < 2 ** 53:
        return int(v)
    return float(v) if _FLOAT.fullmatch(v) and math.isfinite(float(v)) else value


def extra_column(values: list):
    """An extra manifest column as the samples table keeps it: int64 when every non-empty cell is an integer
    (CSV text such as ``12`` or a JSON/Parquet number) and none is empty; float64 (NaN = empty cell) when every
    non-empty cell is a number; str otherwise (JSON non-strings as JSON), as is a column of empty cells only."""
    import numpy as np

    parsed = [_number(v) for v in values]
    given = [p for p in parsed if p is not None]
    if given and all(isinstance(p, (int, float)) for p in given):
        if len(given) == len(parsed) and all(isinstance(p, int) for p in given):
            return np.asarray(parsed, dtype=np.int64)
        return np.asarray([np.nan if p is None else float(p) for p in parsed], dtype=np.float64)
    return _strings([_cell_str(v) for v in values])


def _cell_str(value: Any) -> str:
    """An extra column's value as the string the samples table keeps (JSONL non-strings as JSON)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)
