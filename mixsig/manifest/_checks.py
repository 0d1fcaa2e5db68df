"""Checks of a manifest's columns (:func:`column_problems`) and of each normalised row (:func:`check_row`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixsig.manifest._ids import bad_id_problem, nfc
from mixsig.manifest._read import Records, as_plain
from mixsig.manifest._row import Row
from mixsig.manifest._schema import KNOWN_SPLITS, MEDIA_MODALITIES, MODALITIES, VOTES_PREFIX, Problem, resolve


def column_problems(columns: list[str], records: Records) -> list[Problem]:
    """Problems of the header of a manifest that has an ``id`` column: missing ``split``/``label``/modality
    columns (when there are rows or columns), ``votes@`` columns without a condition, unnamed columns."""
    problems: list[Problem] = []
    if records or columns:
        if "split" not in columns:
            problems.append(Problem(None, "split", "the manifest has no 'split' column; add one with "
                                    "train/val/test per row", "missing_column"))
        if "label" not in columns and any(as_plain(rec.get("split")) in KNOWN_SPLITS for _, rec in records):
            problems.append(Problem(None, "label", "the manifest has no 'label' column but has train/val/test rows; "
                                    "add a label to every train/val/test row", "missing_column"))
        if not any(m in columns for m in MODALITIES):
            problems.append(Problem(None, None, "the manifest has none of the columns text, audio, video; "
                                    "add at least one", "missing_column"))
    for c in columns:
        if c.startswith(VOTES_PREFIX) and not c[len(VOTES_PREFIX):].strip():
            problems.append(Problem(None, c, f"column {c!r} names no condition; call it votes@<condition>, "
                                    "e.g. votes@text", "bad_column"))
    if "" in columns:
        problems.append(Problem(None, None, "a column has no name in the header; its values are ignored (name it to "
                                "keep them, or delete it)", "unnamed_column", "warning"))
    return problems


@dataclass(frozen=True)
class RowContext:
    """What the per-row checks need to know about the whole manifest."""

    columns: frozenset
    classes: tuple[str, ...]
    splits_ok: tuple[str, ...]
    conditions: tuple[str, ...]
    n_rows: int
    present: dict          # {modality: rows that have it}
    root: Path
    check_media: bool
    classes_given: bool = False              # the label set was given (--classes), not read from the labels
    skip_media: frozenset = frozenset()      # (row, modality) not to open: paths outside the manifest's folder


def check_row(rownum: int, r: Row, ctx: RowContext, first_row_of_id: dict) -> list[Problem]:
    """Every problem of one normalised row (``first_row_of_id`` is updated: it finds duplicate ids)."""
    return [*_check_id(rownum, r, first_row_of_id), *_check_split(rownum, r, ctx), *_check_label(rownum, r, ctx),
            *_check_modalities(rownum, r, ctx), *_check_segment(rownum, r), *_check_votes(rownum, r, ctx),
            *(_check_media_files(rownum, r, ctx) if ctx.check_media else ())]


def _check_id(rownum: int, r: Row, first_row_of_id: dict[str, tuple[int, str]]) -> list[Problem]:
    """Empty, bad (invisible/control characters) and duplicate ids; ids are compared after NFC normalisation."""
    rid = r.id
    if not rid:
        return [Problem(rownum, "id", "empty id; give every row a unique id", "empty_id")]
    bad = bad_id_problem(rownum, rid)
    key = nfc(rid)
    if key in first_row_of_id:
        first, first_id = first_row_of_id[key]
        if first_id == rid:
            return [Problem(rownum, "id", f"duplicate id {rid!r} (first used in row "
                            f"{first}); give every row a unique id", "duplicate_id")]
        return [Problem(rownum, "id", f"duplicate id {rid!a}: the same text as id {first_id!a} of row "
                        f"{first} in another Unicode form (NFC-equal, e.g. 'é' precomposed or as 'e' + accent); "
                        "give every row a unique id", "duplicate_id")]
    first_row_of_id[key] = (rownum, rid)
    return [bad] if bad else []


def _check_split(rownum: int, r: Row, ctx: RowContext) -> list[Problem]:
    if "split" not in ctx.columns:
        return []
    known = ", ".join(ctx.splits_ok)
    if not r.split:
        return [Problem(rownum, "split", f"empty split; write one of {known}", "empty_split")]
    if r.split not in ctx.splits_ok:
        return [Problem(rownum, "split", f"unknown split {r.split!r}; write one of {known}, or "
                        "allow it (`--allow-splits NAME`, allowed_splits=[...])", "unknown_split")]
    return []


#: Labels that are a missing value written out by a tool (pandas, JSON, R, spreadsheets), compared casefolded.
MISSING_LABELS = frozenset({"nan", "-nan", "none", "null", "na", "n/a", "#n/a", "<na>"})


def looks_missing(label: str | None) -> bool:
    """True for a label such as ``NaN``/``None``/``null``: a missing value written out as text."""
    return label is not None and label.casefold() in MISSING_LABELS


def label_case_problems(rows: list, row_numbers: list[int]) -> list[Problem]:
    """One warning per set of labels that differ only by case or surrounding space (``Empathetic`` vs
    ``empathetic``): they are separate classes, which is almost never meant. The row is the first of the rarer
    spelling(s)."""
    seen: dict[str, dict[str, list[int]]] = {}
    for rownum, r in zip(row_numbers, rows):
        if r.label and not looks_missing(r.label):
            seen.setdefault(r.label.strip().casefold(), {}).setdefault(r.label, []).append(rownum)
    problems = []
    for spellings in seen.values():
        if len(spellings) < 2:
            continue
        ranked = sorted(spellings.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
        listed = " and ".join(f"{lab!r} ({len(rs)} rows, first row {rs[0]})" for lab, rs in ranked)
        problems.append(Problem(ranked[1][1][0], "label", f"labels {listed} differ only by case: they are "
                                f"{len(ranked)} separate classes; write one spelling (e.g. {ranked[0][0]!r}) "
                                "everywhere, or pass --classes naming each if they really are different classes",
                                "label_case", "warning"))
    return problems


def _check_label(rownum: int, r: Row, ctx: RowContext) -> list[Problem]:
    classes = ctx.classes
    if looks_missing(r.label) and not (ctx.classes_given and r.label in classes):
        return [Problem(rownum, "label", f"label {r.label!r} is a missing value written as text (by pandas, JSON "
                        "or a spreadsheet), not a class; leave the cell empty for an unlabelled row, or, if it is a "
                        "real class, name it in --classes", "missing_value_label")]
    if r.label is None:
        if r.split in KNOWN_SPLITS and "label" in ctx.columns:
            return [Problem(rownum, "label", f"missing label in split {r.split!r}; every train/val/test "
                            f"row needs one of: {', '.join(classes) or '(no labels seen)'}", "missing_label")]
    elif r.label not in set(classes):
        return [Problem(rownum, "label", f"label {r.label!r} is not in the label set "
                        f"({', '.join(classes)}); fix the label or pass it in --classes", "unknown_label")]
    return []


def _check_modalities(rownum: int, r: Row, ctx: RowContext) -> list[Problem]:
    problems: list[Problem] = []
    if r.blank_text:
        problems.append(Problem(rownum, "text", "empty text (only whitespace); write the transcript, or leave "
                                "the cell empty if the row has no text", "empty_text"))
    if not any(r[m] for m in MODALITIES):
        if not r.blank_text:
            problems.append(Problem(rownum, None, "the row has no text, audio or video; give at least one "
                                    "(or remove the row)", "no_modality"))
        return problems
    for m in MODALITIES:
        # a gap in a column that most rows fill is likely a mistake; partial modalities are allowed
        if m in ctx.columns and not r[m] and 2 * ctx.present[m] > ctx.n_rows and not (m == "text" and r.blank_text):
            problems.append(Problem(rownum, m, f"no {m} in this row while {ctx.present[m]} other rows have it; "
                                    f"its {m} features will be missing (status missing_input): fill it in if "
                                    "that is a mistake", "missing_modality", "warning"))
    return problems


def _check_segment(rownum: int, r: Row) -> list[Problem]:
    problems: list[Problem] = []
    start, end = r.start, r.end
    if start is not None and start < 0:
        problems.append(Problem(rownum, "start", f"negative start {start}; segments start at 0 s or later",
                                "negative_start"))
    if start is not None and end is not None and start >= end:
        problems.append(Problem(rownum, "end", f"start {start} >= end {end}; the segment must have "
                                "start < end (seconds)", "bad_segment"))
    return problems


def _check_votes(rownum: int, r: Row, ctx: RowContext) -> list[Problem]:
    problems: list[Problem] = []
    class_set = set(ctx.classes)
    for column, votes in [("votes", r.votes)] + [(VOTES_PREFIX + c, r.votes_by_condition.get(c))
                                                  for c in ctx.conditions]:
        if votes:
            unknown = sorted({v for v in votes if v not in class_set})
            if unknown:
                problems.append(Problem(rownum, column, f"unknown label(s) {unknown} in votes; the label set is "
                                        f"({', '.join(ctx.classes)}); fix the votes or pass --classes",
                                        "unknown_vote_label"))
    return problems


def _check_media_files(rownum: int, r: Row, ctx: RowContext) -> list[Problem]:
    problems: list[Problem] = []
    for m in MEDIA_MODALITIES:
        if r[m] and (rownum, m) not in ctx.skip_media:
            found = media_problem(resolve(ctx.root, r[m]))
            if found:
                code, msg = found
                problems.append(Problem(rownum, m, f"{m} file {r[m]!r} {msg}; the path is relative to the "
                                        f"manifest's folder ({ctx.root})", code))
    return problems


def media_problem(path: Path) -> tuple[str, str] | None:
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
