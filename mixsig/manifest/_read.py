"""Reading a manifest file into raw records, and cleaning up single cells.

:func:`read_records` turns the file's bytes into ``(row, {column: value})`` records, the column order and the
file-level problems (encoding, empty file, JSON array, CSV/JSON syntax); the ``as_*`` converters turn one cell
into its normalised value or raise :class:`Bad` with the problem text.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from mixsig.errors import UsageError
from mixsig.manifest._schema import Problem

Records = list[tuple[int, dict]]


def check_path(path: str | os.PathLike) -> Path:
    """The manifest's absolute path; :class:`UsageError` when it does not exist or is not a file."""
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


def read_records(path: Path, data: bytes) -> tuple[str, Records, list[str], list[Problem]]:
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


def _read_csv(text: str, delimiter: str) -> tuple[Records, list[str], list[Problem]]:
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
    records: Records = []
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


def _read_jsonl(text: str) -> tuple[Records, list[str], list[Problem]]:
    problems: list[Problem] = []
    records: Records = []
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
# cell clean-up


class Bad(Exception):
    """A cell that cannot be normalised; the message is the problem text."""


def as_str(value: Any) -> str | None:
    """Cell to str; None / "" (after strip for non-text columns is up to the caller) stay None/""."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Bad(f"expected a string, got {json.dumps(value)}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise Bad(f"expected a string, got {value}")
        return str(value)
    if isinstance(value, str):
        return value
    raise Bad(f"expected a string, got a JSON {type(value).__name__}")


def as_float(value: Any) -> float | None:
    """A ``start``/``end`` cell: seconds as a finite float; None / empty cell -> None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise Bad(f"expected a number of seconds, got {json.dumps(value)}")
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        if not value.strip():
            return None
        try:
            x = float(value)
        except ValueError:
            raise Bad(f"expected a number of seconds, got {value!r}") from None
    else:
        raise Bad(f"expected a number of seconds, got a JSON {type(value).__name__}")
    if not math.isfinite(x):
        raise Bad(f"expected a finite number of seconds, got {value!r}")
    return x


def as_votes(value: Any) -> list[str] | None:
    """A votes cell: a JSON list of labels (a list already in JSONL). Empty cell or [] -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise Bad(f"not a JSON list: {short(value)}; write the annotators' labels as a JSON list, "
                      'e.g. ["empathetic","neutral","empathetic"]') from None
    else:
        parsed = value
    if not isinstance(parsed, list):
        raise Bad(f"not a JSON list: {short(value)}; write the annotators' labels as a JSON list, "
                  'e.g. ["empathetic","neutral","empathetic"]')
    bad = [v for v in parsed if not isinstance(v, str) or not v.strip()]
    if bad:
        raise Bad(f"every vote must be a non-empty label string; got {short(json.dumps(bad[0]))} in "
                  f"{short(value if isinstance(value, str) else json.dumps(value))}")
    return [v.strip() for v in parsed] or None


def as_plain(value: Any) -> str:
    """A cell as a stripped str without raising ("" for anything but a string)."""
    return value.strip() if isinstance(value, str) else ""


def short(s: Any, n: int = 60) -> str:
    """``repr`` of ``str(s)`` cut to ``n`` characters (for cells quoted in a message)."""
    s = str(s)
    return repr(s if len(s) <= n else s[: n - 3] + "...")
