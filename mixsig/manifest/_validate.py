"""The entry points: :func:`validate_manifest` (parse and report every problem) and :func:`load_manifest`
(raise on errors); they run the readers, the row and column checks, the group-leak and duplicate-media checks."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence

from mixsig.errors import ManifestError, UsageError
from mixsig.manifest._checks import RowContext, check_row, column_problems, label_case_problems, looks_missing
from mixsig.manifest._ids import lookalike_problems
from mixsig.manifest._leaks import group_leak_problems
from mixsig.manifest._media import duplicate_media
from mixsig.manifest._outside import outside_items, outside_problems, refusal
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
    allow_outside_paths: bool = False,
) -> tuple[Manifest | None, list[Problem]]:
    """Parse and check a manifest; return it with *every* problem found.

    Args:
        path: CSV (``.csv``/``.tsv``) or JSONL (``.jsonl``/``.ndjson``) file; other suffixes are sniffed.
        classes: the label set in its order; default: the sorted set of labels seen in ``label``.
        check_media: check that every ``audio``/``video`` file exists and is readable (not decoded here),
            and look for the same media under two ids (warnings).
        allowed_splits: split names accepted besides ``train``/``val``/``test``.
        allow_outside_paths: media paths outside the manifest's folder (absolute, ``..``, symlinks out) are
            listed as ``outside_path`` warnings either way; only with True are their files checked (and later
            hashed by :func:`to_samples`). Default: no file outside the folder is opened.

    Returns:
        ``(manifest, problems)``. ``manifest`` is None only when the file cannot be parsed into rows
        (no ``id`` column, not UTF-8, empty). Problems are sorted: file-level first, then by row.

    Raises:
        UsageError: the file does not exist, or ``classes`` is empty / has duplicates.
    """
    manifest, problems, _ = _validate(path, classes, check_media, allowed_splits, allow_outside_paths)
    return manifest, problems


def _validate(path, classes, check_media, allowed_splits, allow_outside_paths) -> tuple[Manifest | None, list, list]:
    """:func:`validate_manifest`, and the media paths outside the folder (``outside_items``)."""
    p = check_path(path)
    classes = _given_classes(classes)
    splits_ok = tuple(KNOWN_SPLITS) + tuple(s for s in (allowed_splits or ()) if s not in KNOWN_SPLITS)
    data = p.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    fmt, records, columns, problems = read_records(p, data)
    if any(pr.code in _UNREADABLE for pr in problems) and not records:
        return None, sort_problems(problems), []
    if (records or columns) and "id" not in columns:
        problems.append(Problem(None, "id", "the manifest has no 'id' column; add one with a unique id per row",
                                "missing_column"))
        return None, sort_problems(problems), []
    if not records and not any(q.severity == "error" for q in problems):
        problems.append(Problem(None, None, "the manifest has no rows (only a header line); add one row per "
                                "sample", "no_rows"))
    problems.extend(column_problems(columns, records))
    conditions = tuple(sorted(c[len(VOTES_PREFIX):] for c in columns
                              if c.startswith(VOTES_PREFIX) and c[len(VOTES_PREFIX):].strip()))
    extra = tuple(c for c in columns if c and c not in STANDARD_COLUMNS and not c.startswith(VOTES_PREFIX)
                  and c not in ROW_KEYS)
    rows: list[Row] = []
    row_numbers: list[int] = []
    for rownum, rec in records:
        row, row_problems = normalise_row(rownum, rec, conditions, extra, fmt == "jsonl")  # Parquet: as CSV
        problems.extend(row_problems)
        rows.append(row)
        row_numbers.append(rownum)
    given = classes is not None
    if classes is None:
        classes = tuple(sorted({r.label for r in rows if r.label and not looks_missing(r.label)}))
    outside = outside_items(p.parent, rows, row_numbers)
    problems.extend(outside_problems(outside, p.parent, allow_outside_paths))
    skip = frozenset() if allow_outside_paths else frozenset((rownum, m) for rownum, _, m, _ in outside)
    ctx = RowContext(columns=frozenset(columns), classes=tuple(classes), splits_ok=splits_ok, conditions=conditions,
                     n_rows=len(rows), present={m: sum(1 for r in rows if r[m]) for m in MODALITIES}, root=p.parent,
                     check_media=check_media, classes_given=given, skip_media=skip)
    first_row_of_id: dict = {}
    for rownum, r in zip(row_numbers, rows):
        problems.extend(check_row(rownum, r, ctx, first_row_of_id))
    problems.extend(lookalike_problems(rows, row_numbers))
    problems.extend(label_case_problems(rows, row_numbers))
    problems.extend(group_leak_problems(rows, row_numbers))
    if check_media:
        problems.extend(duplicate_media(p.parent, rows, row_numbers, skip))
    manifest = Manifest(path=p, root=p.parent, rows=rows, classes=tuple(classes), conditions=conditions,
                        sha256=sha, extra_columns=extra, outside_paths_allowed=bool(allow_outside_paths))
    return manifest, sort_problems(problems), outside


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
    allow_outside_paths: bool = False,
) -> Manifest:
    """Load a manifest; raise :class:`ManifestError` listing every problem if any is an error.

    Warnings are logged. Arguments as in :func:`validate_manifest`. ``group_leak_errors=False``: groups found
    in more than one split do not fail loading here; the caller refuses or records them with
    :func:`check_group_leak` (``mixsig extract`` / ``finetune`` and their ``--allow-group-leak``).
    Then, unless ``allow_outside_paths``, media paths outside the manifest's folder raise
    :class:`~mixsig.errors.RefusedInput` (exit code 3) naming the rows and ``--allow-outside-paths``.
    """
    manifest, problems, outside = _validate(path, classes, check_media, allowed_splits, allow_outside_paths)
    if not group_leak_errors:
        problems = [q for q in problems if q.code != "group_leak"]
    errors = [q for q in problems if q.severity == "error"]
    refused = bool(outside) and not allow_outside_paths
    _log_warnings(path, [q for q in problems if q.severity == "warning" and not (refused and q.code == "outside_path")])
    if errors or manifest is None:
        shown = "\n  ".join(q.format() for q in errors[:MAX_LISTED])
        more = f"\n  ... and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        raise ManifestError(
            f"manifest {str(path)!r} has {len(errors)} error(s); run `mixsig validate {path}` to list them all:"
            f"\n  {shown}{more}", problems=problems)
    if refused:
        raise refusal(path, outside)
    return manifest


def _log_warnings(path: str | os.PathLike, warnings: list[Problem]) -> None:
    for q in warnings[:MAX_LISTED]:
        logger.warning("%s: %s", path, q.format())
    if len(warnings) > MAX_LISTED:
        logger.warning("%s: %d more warnings; run `mixsig validate %s` to see all", path,
                       len(warnings) - MAX_LISTED, path)
