"""The entry points: :func:`validate_manifest` (parse and report every problem) and :func:`load_manifest`
(raise on errors); they run the readers, the row and column checks, the group-leak and duplicate-media checks."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence

from mixsig.errors import ManifestError, UsageError
from mixsig.manifest._checks import RowContext, check_row, column_problems
from mixsig.manifest._leaks import group_leak_problems
from mixsig.manifest._media import duplicate_media
from mixsig.manifest._read import check_path, read_records
from mixsig.manifest._row import Row, normalise_row
from mixsig.manifest._schema import (
    KNOWN_SPLITS, MAX_LISTED, MODALITIES, ROW_KEYS, STANDARD_COLUMNS, VOTES_PREFIX, Manifest, Problem, logger,
    sort_problems,
)

_UNREADABLE = ("encoding", "empty_manifest", "unsupported_format")  # file-level codes that leave no rows


def validate_manifest(
    path: str | os.PathLike,
    classes: Sequence[str] | None = None,
    check_media: bool = True,
    *,
    allowed_splits: Iterable[str] | None = None,
) -> tuple[Manifest | None, list[Problem]]:
    """Parse and check a manifest; return it with *every* problem found.

    Args:
        path: CSV (``.csv``/``.tsv``) or JSONL (``.jsonl``/``.ndjson``) file; other suffixes are sniffed.
        classes: the label set in its order; default: the sorted set of labels seen in ``label``.
        check_media: check that every ``audio``/``video`` file exists and is readable (not decoded here),
            and look for the same media under two ids (warnings).
        allowed_splits: split names accepted besides ``train``/``val``/``test``.

    Returns:
        ``(manifest, problems)``. ``manifest`` is None only when the file cannot be parsed into rows
        (no ``id`` column, not UTF-8, empty). Problems are sorted: file-level first, then by row.

    Raises:
        UsageError: the file does not exist, or ``classes`` is empty / has duplicates.
    """
    p = check_path(path)
    classes = _given_classes(classes)
    splits_ok = tuple(KNOWN_SPLITS) + tuple(s for s in (allowed_splits or ()) if s not in KNOWN_SPLITS)
    data = p.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    fmt, records, columns, problems = read_records(p, data)
    if any(pr.code in _UNREADABLE for pr in problems) and not records:
        return None, sort_problems(problems)
    if (records or columns) and "id" not in columns:
        problems.append(Problem(None, "id", "the manifest has no 'id' column; add one with a unique id per row",
                                "missing_column"))
        return None, sort_problems(problems)
    problems.extend(column_problems(columns, records))
    conditions = tuple(sorted(c[len(VOTES_PREFIX):] for c in columns
                              if c.startswith(VOTES_PREFIX) and c[len(VOTES_PREFIX):].strip()))
    extra = tuple(c for c in columns if c and c not in STANDARD_COLUMNS and not c.startswith(VOTES_PREFIX)
                  and c not in ROW_KEYS)
    rows: list[Row] = []
    row_numbers: list[int] = []
    for rownum, rec in records:
        row, row_problems = normalise_row(rownum, rec, conditions, extra, fmt == "jsonl")
        problems.extend(row_problems)
        rows.append(row)
        row_numbers.append(rownum)
    if classes is None:
        classes = tuple(sorted({r.label for r in rows if r.label}))
    ctx = RowContext(columns=frozenset(columns), classes=tuple(classes), splits_ok=splits_ok, conditions=conditions,
                     n_rows=len(rows), present={m: sum(1 for r in rows if r[m]) for m in MODALITIES}, root=p.parent,
                     check_media=check_media)
    first_row_of_id: dict[str, int] = {}
    for rownum, r in zip(row_numbers, rows):
        problems.extend(check_row(rownum, r, ctx, first_row_of_id))
    problems.extend(group_leak_problems(rows, row_numbers))
    if check_media:
        problems.extend(duplicate_media(p.parent, rows, row_numbers))
    manifest = Manifest(path=p, root=p.parent, rows=rows, classes=tuple(classes), conditions=conditions,
                        sha256=sha, extra_columns=extra)
    return manifest, sort_problems(problems)


def _given_classes(classes: Sequence[str] | None) -> tuple[str, ...] | None:
    """``classes`` stripped, as a tuple; :class:`UsageError` when empty, with an empty label or a duplicate."""
    if classes is None:
        return None
    classes = tuple(str(c).strip() for c in classes)
    if not classes or any(not c for c in classes):
        raise UsageError(f"classes must be non-empty labels; got {list(classes)}")
    dup = [c for c, n in Counter(classes).items() if n > 1]
    if dup:
        raise UsageError(f"classes must be unique; {dup} given twice")
    return classes


def load_manifest(
    path: str | os.PathLike,
    classes: Sequence[str] | None = None,
    check_media: bool = True,
    *,
    allowed_splits: Iterable[str] | None = None,
    group_leak_errors: bool = True,
) -> Manifest:
    """Load a manifest; raise :class:`ManifestError` listing every problem if any is an error.

    Warnings are logged. Arguments as in :func:`validate_manifest`. ``group_leak_errors=False``: groups found
    in more than one split do not fail loading here; the caller refuses or records them with
    :func:`check_group_leak` (``mixsig extract`` / ``finetune`` and their ``--allow-group-leak``).
    """
    manifest, problems = validate_manifest(path, classes, check_media, allowed_splits=allowed_splits)
    if not group_leak_errors:
        problems = [q for q in problems if q.code != "group_leak"]
    errors = [q for q in problems if q.severity == "error"]
    _log_warnings(path, [q for q in problems if q.severity == "warning"])
    if errors or manifest is None:
        shown = "\n  ".join(q.format() for q in errors[:MAX_LISTED])
        more = f"\n  ... and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        raise ManifestError(
            f"manifest {str(path)!r} has {len(errors)} error(s); run `mixsig validate {path}` to list them all:"
            f"\n  {shown}{more}", problems=problems)
    return manifest


def _log_warnings(path: str | os.PathLike, warnings: list[Problem]) -> None:
    for q in warnings[:MAX_LISTED]:
        logger.warning("%s: %s", path, q.format())
    if len(warnings) > MAX_LISTED:
        logger.warning("%s: %d more warnings; run `mixsig validate %s` to see all", path,
                       len(warnings) - MAX_LISTED, path)
