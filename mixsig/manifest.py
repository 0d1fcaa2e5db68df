"""The manifest: schema, loading and validation (the one place raw input is checked).

A manifest is a CSV or JSONL file with one row per sample (columns in DESIGN.md):
``id``, ``split``, ``label``, ``group``, ``text``, ``audio``, ``video``, ``start``, ``end``,
``votes`` and ``votes@<condition>``. Any other column is kept as is in the rows (ground-truth columns
of the demo corpus, descriptors such as facial action units).

:func:`validate_manifest` reports *every* problem at once, each with its row, column and a fix;
:func:`load_manifest` raises :class:`~mixsig.errors.ManifestError` when any of them is an error;
:func:`to_samples` builds the samples table of the feature store (content hashes are computed there).

Row numbers are 1-based data rows: in a CSV file line 2 (below the header) is row 1; in a JSONL file
row N is line N (blank lines are skipped but counted).

Example::

    >>> manifest, problems = validate_manifest("data/manifest.csv")        # doctest: +SKIP
    >>> [p.format() for p in problems if p.severity == "error"]             # doctest: +SKIP
    ['row 4, column split: unknown split "tets"; ...']

This module imports only the standard library at import time (``mixsig validate`` starts instantly);
numpy and :mod:`mixsig.cache` are imported inside :func:`to_samples`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsig.errors import ManifestError, UsageError

logger = logging.getLogger(__name__)

KNOWN_SPLITS: tuple[str, ...] = ("train", "val", "test")
MODALITIES: tuple[str, ...] = ("text", "audio", "video")
MEDIA_MODALITIES: tuple[str, ...] = ("audio", "video")
VOTES_PREFIX = "votes@"
#: Columns with a meaning in mixsig; any other column is kept as an extra column in the rows.
STANDARD_COLUMNS: tuple[str, ...] = (
    "id", "split", "label", "group", "text", "audio", "video", "start", "end", "votes",
)
#: Keys of a normalised row (extra columns are added under their own names).
ROW_KEYS: tuple[str, ...] = (
    "id", "split", "label", "group", "text", "audio", "video", "start", "end", "votes", "votes_by_condition",
)
SEVERITIES = ("error", "warning")
_HASH_CHARS = 16
_MAX_LISTED = 10  # rows listed per split in a group-leak message


@dataclass(frozen=True)
class Problem:
    """One problem of a manifest.

    ``row`` is the 1-based data row (None for file-level problems), ``column`` the column it concerns,
    ``message`` says what is wrong and the fix, ``code`` is a short machine code (``duplicate_id``,
    ``unknown_split``, ``group_leak`` ...). ``severity`` is ``"error"`` (validation fails) or
    ``"warning"`` (reported, validation passes).
    """

    row: int | None
    column: str | None
    message: str
    code: str
    severity: str = "error"

    def format(self) -> str:
        """One line: ``row 3, column split: error: <message>``."""
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column}")
        place = ", ".join(where) if where else "file"
        return f"{place}: {self.severity}: {self.message}"

    def to_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "severity": self.severity, "code": self.code,
                "message": self.message}


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest.

    ``rows`` are normalised dicts (keys in :data:`ROW_KEYS`, plus extra columns under their own names):
    ``id`` str, ``split`` str, ``label`` str|None, ``group`` str ("" if none), ``text``/``audio``/``video``
    str|None (media paths as written, relative to ``root``), ``start``/``end`` float seconds|None,
    ``votes`` list[str]|None, ``votes_by_condition`` {condition: list[str]}.
    """

    path: Path
    root: Path
    rows: list[dict]
    classes: tuple[str, ...]
    conditions: tuple[str, ...]
    sha256: str
    extra_columns: tuple[str, ...] = field(default=())

    def media_path(self, row: dict, modality: str) -> Path | None:
        """Absolute path of the row's ``audio`` or ``video`` file, None when the row has none."""
        if modality not in MEDIA_MODALITIES:
            raise ValueError(f"media_path takes one of {MEDIA_MODALITIES}; got {modality!r}")
        value = row.get(modality)
        if not value:
            return None
        return _resolve(self.root, value)

    def __len__(self) -> int:
        return len(self.rows)


# ----------------------------------------------------------------------------------------------------------
# hashing (shared with the cache, which records the hash each row was computed from)


def text_hash(text: str) -> str:
    """Content hash of a text: first 16 hex chars of sha256 over its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_CHARS]


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
    return digest.hexdigest()[:_HASH_CHARS]


# ----------------------------------------------------------------------------------------------------------
# reading


def _resolve(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"manifest {str(path)!r} does not exist; give the path of a CSV or JSONL manifest file")
    if not p.is_file():
        raise UsageError(f"manifest {str(path)!r} is not a file; give the path of a CSV or JSONL manifest file")
    return p.resolve()


def _detect_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _read_records(path: Path, data: bytes) -> tuple[str, list[tuple[int, dict]], list[str], list[Problem]]:
    """The format, raw records ``(row, {column: value})``, the column order, and file-level problems."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return "", [], [], [Problem(None, None, f"the manifest is not UTF-8 ({exc}); save it as UTF-8", "encoding")]
    fmt = _detect_format(path, text)
    if fmt != "jsonl" and text.lstrip().startswith("["):
        return fmt, [], [], [Problem(None, None, "the manifest is a JSON array; write JSONL (one JSON object per "
                                                 "line, suffix .jsonl) or CSV", "unsupported_format")]
    if fmt == "jsonl":
        return (fmt, *_read_jsonl(text))
    return (fmt, *_read_csv(text, delimiter="\t" if path.suffix.lower() == ".tsv" else ","))


def _read_csv(text: str, delimiter: str) -> tuple[list[tuple[int, dict]], list[str], list[Problem]]:
    problems: list[Problem] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return [], [], [Problem(None, None, "the manifest is empty; write a header line (id,split,label,...) "
                                            "and one row per sample", "empty_manifest")]
    except csv.Error as exc:
        return [], [], [Problem(None, None, f"cannot parse the CSV header: {exc}", "csv_error")]
    columns = [c.strip() for c in header]
    dupes = sorted(c for c, n in Counter(columns).items() if n > 1)
    for c in dupes:
        problems.append(Problem(None, c, f"column {c!r} appears more than once in the header; keep one",
                                "duplicate_column"))
    records: list[tuple[int, dict]] = []
    row = 0
    try:
        for values in reader:
            if not values or all(not v.strip() for v in values):
                continue
            row += 1
            if len(values) > len(columns):
                problems.append(Problem(row, None, f"the row has {len(values)} fields but the header has "
                                        f"{len(columns)}; quote fields that contain '{delimiter}'", "field_count"))
            rec = {c: (values[i] if i < len(values) else "") for i, c in enumerate(columns)}
            records.append((row, rec))
    except csv.Error as exc:
        problems.append(Problem(row + 1, None, f"cannot parse the CSV row: {exc}; check its quoting", "csv_error"))
    return records, columns, problems


def _read_jsonl(text: str) -> tuple[list[tuple[int, dict]], list[str], list[Problem]]:
    problems: list[Problem] = []
    records: list[tuple[int, dict]] = []
    columns: dict[str, None] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno}); "
                                    "write one JSON object per line", "json_error"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(lineno, None, f"a JSONL row must be a JSON object, got {type(obj).__name__}; "
                                    'write {"id": ..., "split": ...} per line', "json_error"))
            continue
        for k in obj:
            columns.setdefault(str(k), None)
        records.append((lineno, {str(k): v for k, v in obj.items()}))
    if not records and not problems:
        problems.append(Problem(None, None, "the manifest has no rows; write one JSON object per sample",
                                "empty_manifest"))
    return records, list(columns), problems


# ----------------------------------------------------------------------------------------------------------
# normalising values


class _Bad(Exception):
    """A cell that cannot be normalised; the message is the problem text."""


def _as_str(value: Any) -> str | None:
    """Cell to str; None / "" (after strip for non-text columns is up to the caller) stay None/""."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Bad(f"expected a string, got {json.dumps(value)}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise _Bad(f"expected a string, got {value}")
        return str(value)
    if isinstance(value, str):
        return value
    raise _Bad(f"expected a string, got a JSON {type(value).__name__}")


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Bad(f"expected a number of seconds, got {json.dumps(value)}")
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        if not value.strip():
            return None
        try:
            x = float(value)
        except ValueError:
            raise _Bad(f"expected a number of seconds, got {value!r}") from None
    else:
        raise _Bad(f"expected a number of seconds, got a JSON {type(value).__name__}")
    if not math.isfinite(x):
        raise _Bad(f"expected a finite number of seconds, got {value!r}")
    return x


def _as_votes(value: Any) -> list[str] | None:
    """A votes cell: a JSON list of labels (a list already in JSONL). Empty cell or [] -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise _Bad(f"not a JSON list: {_short(value)}; write the annotators' labels as a JSON list, "
                       'e.g. ["empathetic","neutral","empathetic"]') from None
    else:
        parsed = value
    if not isinstance(parsed, list):
        raise _Bad(f"not a JSON list: {_short(value)}; write the annotators' labels as a JSON list, "
                   'e.g. ["empathetic","neutral","empathetic"]')
    bad = [v for v in parsed if not isinstance(v, str) or not v.strip()]
    if bad:
        raise _Bad(f"every vote must be a non-empty label string; got {_short(json.dumps(bad[0]))} in "
                   f"{_short(value if isinstance(value, str) else json.dumps(value))}")
    return [v.strip() for v in parsed] or None


def _as_plain(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _short(s: Any, n: int = 60) -> str:
    s = str(s)
    return repr(s if len(s) <= n else s[: n - 3] + "...")


# ----------------------------------------------------------------------------------------------------------
# validation


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
    p = _check_path(path)
    if classes is not None:
        classes = tuple(str(c).strip() for c in classes)
        if not classes or any(not c for c in classes):
            raise UsageError(f"classes must be non-empty labels; got {list(classes)}")
        dup = [c for c, n in Counter(classes).items() if n > 1]
        if dup:
            raise UsageError(f"classes must be unique; {dup} given twice")
    splits_ok = tuple(KNOWN_SPLITS) + tuple(s for s in (allowed_splits or ()) if s not in KNOWN_SPLITS)
    data = p.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    fmt, records, columns, problems = _read_records(p, data)
    is_jsonl = fmt == "jsonl"
    if any(pr.code in ("encoding", "empty_manifest", "unsupported_format") for pr in problems) and not records:
        return None, _sorted(problems)
    if records or columns:
        if "id" not in columns:
            problems.append(Problem(None, "id", "the manifest has no 'id' column; add one with a unique id per row",
                                    "missing_column"))
            return None, _sorted(problems)
        if "split" not in columns:
            problems.append(Problem(None, "split", "the manifest has no 'split' column; add one with "
                                    "train/val/test per row", "missing_column"))
        if "label" not in columns and any(_as_plain(rec.get("split")) in KNOWN_SPLITS for _, rec in records):
            problems.append(Problem(None, "label", "the manifest has no 'label' column but has train/val/test rows; "
                                    "add a label to every train/val/test row", "missing_column"))
        if not any(m in columns for m in MODALITIES):
            problems.append(Problem(None, None, "the manifest has none of the columns text, audio, video; "
                                    "add at least one", "missing_column"))
    for c in columns:
        if c.startswith(VOTES_PREFIX) and not c[len(VOTES_PREFIX):].strip():
            problems.append(Problem(None, c, f"column {c!r} names no condition; call it votes@<condition>, "
                                    "e.g. votes@text", "bad_column"))
    conditions = tuple(sorted(c[len(VOTES_PREFIX):] for c in columns
                              if c.startswith(VOTES_PREFIX) and c[len(VOTES_PREFIX):].strip()))
    if "" in columns:
        problems.append(Problem(None, None, "a column has no name in the header; its values are ignored (name it to "
                                "keep them, or delete it)", "unnamed_column", "warning"))
    extra = tuple(c for c in columns if c and c not in STANDARD_COLUMNS and not c.startswith(VOTES_PREFIX)
                  and c not in ROW_KEYS)

    rows: list[dict] = []
    row_numbers: list[int] = []
    # per-row normalisation ------------------------------------------------------------------------------
    for rownum, rec in records:
        norm, row_problems = _normalise(rownum, rec, conditions, extra, is_jsonl)
        problems.extend(row_problems)
        rows.append(norm)
        row_numbers.append(rownum)

    if classes is None:
        classes = tuple(sorted({r["label"] for r in rows if r["label"]}))
    present = {m: sum(1 for r in rows if r[m]) for m in MODALITIES}
    ctx = _RowContext(columns=frozenset(columns), classes=tuple(classes), splits_ok=splits_ok, conditions=conditions,
                      n_rows=len(rows), present=present, root=p.parent, check_media=check_media)
    first_row_of_id: dict[str, int] = {}
    for rownum, r in zip(row_numbers, rows):
        problems.extend(_check_row(rownum, r, ctx, first_row_of_id))

    problems.extend(_group_leaks(rows, row_numbers))
    if check_media:
        problems.extend(_duplicate_media(p.parent, rows, row_numbers))

    manifest = Manifest(path=p, root=p.parent, rows=rows, classes=tuple(classes), conditions=conditions,
                        sha256=sha, extra_columns=extra)
    return manifest, _sorted(problems)


@dataclass(frozen=True)
class _RowContext:
    """What the per-row checks need to know about the whole manifest."""

    columns: frozenset
    classes: tuple[str, ...]
    splits_ok: tuple[str, ...]
    conditions: tuple[str, ...]
    n_rows: int
    present: dict          # {modality: rows that have it}
    root: Path
    check_media: bool


def _check_row(rownum: int, r: dict, ctx: _RowContext, first_row_of_id: dict[str, int]) -> list[Problem]:
    """Every problem of one normalised row (``first_row_of_id`` is updated: it finds duplicate ids)."""
    problems: list[Problem] = []
    columns, classes, splits_ok, conditions = ctx.columns, ctx.classes, ctx.splits_ok, ctx.conditions
    class_set = set(classes)
    known = ", ".join(splits_ok)
    # id
    rid = r["id"]
    if not rid:
        problems.append(Problem(rownum, "id", "empty id; give every row a unique id", "empty_id"))
    elif rid in first_row_of_id:
        problems.append(Problem(rownum, "id", f"duplicate id {rid!r} (first used in row "
                                f"{first_row_of_id[rid]}); give every row a unique id", "duplicate_id"))
    else:
        first_row_of_id[rid] = rownum
    # split
    split = r["split"]
    if "split" in columns:
        if not split:
            problems.append(Problem(rownum, "split", f"empty split; write one of {known}", "empty_split"))
        elif split not in splits_ok:
            problems.append(Problem(rownum, "split", f"unknown split {split!r}; write one of {known}, or "
                                    "allow it (`--allow-splits NAME`, allowed_splits=[...])", "unknown_split"))
    # label
    label = r["label"]
    if label is None:
        if split in KNOWN_SPLITS and "label" in columns:
            problems.append(Problem(rownum, "label", f"missing label in split {split!r}; every train/val/test "
                                    f"row needs one of: {', '.join(classes) or '(no labels seen)'}",
                                    "missing_label"))
    elif label not in class_set:
        problems.append(Problem(rownum, "label", f"label {label!r} is not in the label set "
                                f"({', '.join(classes)}); fix the label or pass it in --classes",
                                "unknown_label"))
    # modalities
    blank_text = r.pop("_blank_text", False)
    if blank_text:
        problems.append(Problem(rownum, "text", "empty text (only whitespace); write the transcript, or leave "
                                "the cell empty if the row has no text", "empty_text"))
    if not any(r[m] for m in MODALITIES):
        if not blank_text:
            problems.append(Problem(rownum, None, "the row has no text, audio or video; give at least one "
                                    "(or remove the row)", "no_modality"))
    else:
        for m in MODALITIES:
            # a gap in a column that most rows fill is likely a mistake; partial modalities are allowed
            if m in columns and not r[m] and 2 * ctx.present[m] > ctx.n_rows and not (m == "text" and blank_text):
                problems.append(Problem(rownum, m, f"no {m} in this row while {ctx.present[m]} other rows have it; "
                                    f"its {m} features will be missing (status missing_input): fill it in if "
                                    "that is a mistake", "missing_modality", "warning"))
    # segment
    start, end = r["start"], r["end"]
    if start is not None and start < 0:
        problems.append(Problem(rownum, "start", f"negative start {start}; segments start at 0 s or later",
                                "negative_start"))
    if start is not None and end is not None and start >= end:
        problems.append(Problem(rownum, "end", f"start {start} >= end {end}; the segment must have "
                                "start < end (seconds)", "bad_segment"))
    # votes
    for column, votes in [("votes", r["votes"])] + [(VOTES_PREFIX + c, r["votes_by_condition"].get(c))
                                                     for c in conditions]:
        if votes:
            unknown = sorted({v for v in votes if v not in class_set})
            if unknown:
                problems.append(Problem(rownum, column, f"unknown label(s) {unknown} in votes; the label set is "
                                        f"({', '.join(classes)}); fix the votes or pass --classes",
                                        "unknown_vote_label"))
    # media files
    if ctx.check_media:
        for m in MEDIA_MODALITIES:
            if r[m]:
                found = _media_problem(_resolve(ctx.root, r[m]))
                if found:
                    code, msg = found
                    problems.append(Problem(rownum, m, f"{m} file {r[m]!r} {msg}; the path is relative to the "
                                            f"manifest's folder ({ctx.root})", code))
    return problems


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda q: (q.row is not None, q.row or 0))


def _normalise(rownum: int, rec: dict, conditions: tuple[str, ...], extra: tuple[str, ...],
               is_jsonl: bool) -> tuple[dict, list[Problem]]:
    problems: list[Problem] = []

    def get(column: str, conv):
        try:
            return conv(rec.get(column))
        except _Bad as exc:
            problems.append(Problem(rownum, column, f"{exc}", "bad_value"))
            return None

    def stripped(column: str) -> str | None:
        v = get(column, _as_str)
        return v.strip() or None if v is not None else None

    row: dict[str, Any] = {}
    row["id"] = stripped("id") or ""
    row["split"] = stripped("split") or ""
    row["label"] = stripped("label")
    row["group"] = stripped("group") or ""
    text = get("text", _as_str)
    if text is not None and not text.strip():
        # CSV: an empty cell means "no text"; only whitespace is an empty text. JSONL: "" is given on purpose.
        if text or is_jsonl:
            row["_blank_text"] = True
        text = None
    row["text"] = text
    row["audio"] = stripped("audio")
    row["video"] = stripped("video")
    for column in ("start", "end"):
        try:
            row[column] = _as_float(rec.get(column))
        except _Bad as exc:
            problems.append(Problem(rownum, column, f"{exc}; write seconds as a number, e.g. 1.25", "bad_time"))
            row[column] = None
    by_condition: dict[str, list[str]] = {}
    for column in ["votes"] + [VOTES_PREFIX + c for c in conditions]:
        try:
            votes = _as_votes(rec.get(column))
        except _Bad as exc:
            problems.append(Problem(rownum, column, str(exc), "malformed_votes"))
            votes = None
        if column == "votes":
            row["votes"] = votes
        elif votes:
            by_condition[column[len(VOTES_PREFIX):]] = votes
    row["votes_by_condition"] = by_condition
    for c in extra:
        row[c] = rec.get(c, "" if not is_jsonl else None)
    return row, problems


def _media_problem(path: Path) -> tuple[str, str] | None:
    """None when the file exists and is readable; else ``(code, what is wrong)`` (the file is not decoded)."""
    try:
        if not path.exists():
            return "missing_media", "does not exist"
        if not path.is_file():
            return "missing_media", "is not a file"
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return "unreadable_media", f"cannot be read ({exc.strerror or exc})"
    return None


def _group_leaks(rows: list[dict], row_numbers: list[int]) -> list[Problem]:
    """One problem per group found in more than one split (row: first row of its second split)."""
    by_group: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for rownum, r in zip(row_numbers, rows):
        if r["group"] and r["split"]:
            by_group[r["group"]][r["split"]].append(rownum)
    problems = []
    for group, splits in by_group.items():
        if len(splits) < 2:
            continue
        order = sorted(splits, key=lambda s: splits[s][0])
        parts = []
        for s in order:
            rs = splits[s]
            listed = ", ".join(map(str, rs[:_MAX_LISTED])) + (f", ... ({len(rs) - _MAX_LISTED} more)"
                                                              if len(rs) > _MAX_LISTED else "")
            parts.append(f"{s}: {len(rs)} row{'s' if len(rs) != 1 else ''} ({listed})")
        problems.append(Problem(
            splits[order[1]][0], "group",
            f"group {group!r} is in {len(splits)} splits ({'; '.join(parts)}); a group must stay in one split "
            f"(leakage): move all its rows to one split", "group_leak"))
    return problems


def _duplicate_media(root: Path, rows: list[dict], row_numbers: list[int]) -> list[Problem]:
    """Warnings for the same media (same file + segment, or same bytes + segment) under two ids.

    Files are compared only when another file has the same size: first by their first and last 64 KiB, then,
    where those match, by their full sha256 — a clean manifest costs one stat per file and a few reads.
    """
    problems = []
    for m in MEDIA_MODALITIES:
        seen_path: dict[tuple, tuple[int, str]] = {}
        by_size: dict[tuple, list[tuple[int, str, Path]]] = defaultdict(list)
        for rownum, r in zip(row_numbers, rows):
            if not r[m]:
                continue
            fp = _resolve(root, r[m])
            try:
                real = os.path.realpath(fp)
                size = os.path.getsize(fp)
            except OSError:
                continue  # reported as missing/unreadable
            seg = (r["start"], r["end"])
            key = (real, seg)
            if key in seen_path:
                first_row, first_id = seen_path[key]
                problems.append(Problem(rownum, m, f"the same {m} file and segment as id {first_id!r} (row "
                                        f"{first_row}); two ids for one sample inflate results (and leak across "
                                        "splits): remove one or fix the path", "duplicate_media", "warning"))
                continue
            seen_path[key] = (rownum, r["id"])
            by_size[(size, seg)].append((rownum, r["id"], fp))
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
        for items in candidates:
            first_by_hash: dict[str, tuple[int, str, Path]] = {}
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
    warnings = [q for q in problems if q.severity == "warning"]
    for q in warnings[:_MAX_LISTED]:
        logger.warning("%s: %s", path, q.format())
    if len(warnings) > _MAX_LISTED:
        logger.warning("%s: %d more warnings; run `mixsig validate %s` to see all", path,
                       len(warnings) - _MAX_LISTED, path)
    if errors or manifest is None:
        shown = "\n  ".join(q.format() for q in errors[:_MAX_LISTED])
        more = f"\n  ... and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        raise ManifestError(
            f"manifest {str(path)!r} has {len(errors)} error(s); run `mixsig validate {path}` to list them all:"
            f"\n  {shown}{more}", problems=problems)
    return manifest


def group_leak(manifest: Manifest) -> dict | None:
    """Groups of ``manifest`` found in more than one split, or None; the record has the shape of
    :meth:`mixsig.cache.FeatureStore.group_leak` (``n_groups``, ``n_rows``, ``groups: {group: {split: rows}}``)."""
    from mixsig.cache import Samples

    rows = manifest.rows
    return Samples(ids=[r["id"] for r in rows], split=[r["split"] for r in rows], label=[-1] * len(rows),
                   classes=manifest.classes, group=[r["group"] for r in rows]).group_leak()


def check_group_leak(manifest: Manifest, allow: bool, command: str) -> dict | None:
    """Raise :class:`~mixsig.errors.GroupLeak` (exit code 3) naming ``<command> --allow-group-leak`` when groups
    of ``manifest`` cross splits and ``allow`` is false; else return the leak record (None when there is none)."""
    from mixsig.errors import GroupLeak

    leak = group_leak(manifest)
    if leak and not allow:
        from mixsig.cache import describe_group_leak

        raise GroupLeak(f"manifest {manifest.path}: {describe_group_leak(leak)}. Results on such splits are inflated "
                        f"(leakage): move each group's rows to one split (`mixsig validate` lists them), or, to "
                        f"reproduce a published split anyway, pass `{command} --allow-group-leak` (the leak is then "
                        f"recorded in the store, and in the run where one is written, and printed).", leak)
    return leak


# ----------------------------------------------------------------------------------------------------------
# summary and samples


def summarise(manifest: Manifest) -> dict:
    """Counts for ``mixsig validate``: rows and labels per split, modalities, votes, groups."""
    splits: dict[str, dict] = {}
    for r in manifest.rows:
        s = splits.setdefault(r["split"], {"rows": 0, "labels": Counter(), "groups": set()})
        s["rows"] += 1
        s["labels"][r["label"] if r["label"] is not None else ""] += 1
        if r["group"]:
            s["groups"].add(r["group"])
    split_summary = {
        name: {"rows": s["rows"], "labels": dict(sorted(s["labels"].items())), "groups": len(s["groups"])}
        for name, s in sorted(splits.items(), key=lambda kv: (_split_order(kv[0]), kv[0]))
    }
    votes = [len(r["votes"]) for r in manifest.rows if r["votes"]]
    conditions = {}
    for c in manifest.conditions:
        counts = [len(r["votes_by_condition"][c]) for r in manifest.rows if c in r["votes_by_condition"]]
        conditions[c] = {"rows": len(counts), "max_annotators": max(counts, default=0)}
    return {
        "rows": len(manifest.rows),
        "classes": list(manifest.classes),
        "splits": split_summary,
        "modalities": {m: sum(1 for r in manifest.rows if r[m]) for m in MODALITIES},
        "votes": {"rows": len(votes), "max_annotators": max(votes, default=0)},
        "votes_by_condition": conditions,
        "groups": len({r["group"] for r in manifest.rows if r["group"]}),
        "extra_columns": list(manifest.extra_columns),
    }


def _split_order(name: str) -> int:
    return KNOWN_SPLITS.index(name) if name in KNOWN_SPLITS else len(KNOWN_SPLITS)


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
    ([N] str, 16 hex; "" = no such modality, or a media file that cannot be read — logged).
    ``votes`` is [N, A] int16 class indices with A the largest number of votes in a row, -1 padding;
    ``votes_by_condition[c]`` likewise. Extra columns go to ``columns`` as strings.
    """
    import numpy as np

    from mixsig.cache import Samples

    rows = manifest.rows
    index = {c: i for i, c in enumerate(manifest.classes)}

    def strings(values: list[str]) -> np.ndarray:
        return np.asarray(values, dtype=str) if values else np.zeros(0, dtype="<U1")

    def vote_matrix(lists: list[list[str] | None], column: str) -> np.ndarray:
        width = max((len(v) for v in lists if v), default=0)
        out = np.full((len(lists), width), -1, dtype=np.int16)
        for i, votes in enumerate(lists):
            for j, v in enumerate(votes or ()):
                if v not in index:
                    raise ManifestError(f"id {rows[i]['id']!r}: unknown label {v!r} in {column}; validate the "
                                        "manifest first (`mixsig validate`)")
                out[i, j] = index[v]
        return out

    labels = []
    for r in rows:
        if r["label"] is None:
            labels.append(-1)
        elif r["label"] in index:
            labels.append(index[r["label"]])
        else:
            raise ManifestError(f"id {r['id']!r}: label {r['label']!r} is not in the classes {manifest.classes}; "
                                "validate the manifest first (`mixsig validate`)")
    hashes: dict[str, list[str]] = {m: [] for m in MODALITIES}
    unreadable = []
    for r in rows:
        hashes["text"].append(text_hash(r["text"]) if r["text"] else "")
        for m in MEDIA_MODALITIES:
            if not r[m]:
                hashes[m].append("")
                continue
            try:
                hashes[m].append(media_hash(manifest.media_path(r, m), r["start"], r["end"]))
            except OSError:
                hashes[m].append("")
                unreadable.append(f"{r['id']}:{m}")
    if unreadable:
        logger.warning("%d media files cannot be read; their content hash is empty (first: %s)",
                       len(unreadable), ", ".join(unreadable[:5]))

    return Samples(
        ids=strings([r["id"] for r in rows]),
        split=strings([r["split"] for r in rows]),
        label=np.asarray(labels, dtype=np.int64),
        group=strings([r["group"] for r in rows]),
        classes=tuple(manifest.classes),
        text=strings([r["text"] or "" for r in rows]),
        audio=strings([r["audio"] or "" for r in rows]),
        video=strings([r["video"] or "" for r in rows]),
        start=np.asarray([np.nan if r["start"] is None else r["start"] for r in rows], dtype=np.float64),
        end=np.asarray([np.nan if r["end"] is None else r["end"] for r in rows], dtype=np.float64),
        content_hash={m: strings(v) for m, v in hashes.items()},
        votes=vote_matrix([r["votes"] for r in rows], "votes"),
        votes_by_condition={c: vote_matrix([r["votes_by_condition"].get(c) for r in rows], VOTES_PREFIX + c)
                            for c in manifest.conditions},
        columns={c: strings([_cell_str(r.get(c)) for r in rows]) for c in manifest.extra_columns},
    )


def _cell_str(value: Any) -> str:
    """An extra column's value as the string the samples table keeps (JSONL non-strings as JSON)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


__all__ = [
    "KNOWN_SPLITS", "MODALITIES", "Manifest", "Problem", "load_manifest", "media_hash", "summarise", "text_hash",
    "to_samples", "validate_manifest",
]
