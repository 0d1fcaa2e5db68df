"""Reading a manifest file into raw records, and cleaning up single cells.

:func:`read_records` turns the file's bytes into ``(row, {column: value})`` records, the column order and the
file-level problems (encoding, empty file, JSON array, CSV/JSON syntax); the ``as_*`` converters turn one cell
into its normalised value or raise :class:`Bad` with the problem text.

Row numbers: CSV/TSV row 1 is the first data row (line 2, under the header); JSONL rows are line numbers; a
Parquet manifest (``.parquet``, read with pyarrow) numbers its rows from 1 too: row N is the Parquet row of index
N - 1 (the header convention of CSV, with the schema as the header). Its cells keep their types (numbers, a list of
labels for ``votes``) but follow CSV's conventions otherwise: an empty string, like a null, is an empty cell; a
date, time, duration, Decimal or binary cell becomes the plain value :func:`plain_cell` says.
"""

from __future__ import annotations

import csv
import datetime
import decimal
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
        raise UsageError(f"manifest {str(path)!r} does not exist; give the path of a CSV, JSONL or Parquet manifest "
                         "file")
    if not p.is_file():
        raise UsageError(f"manifest {str(path)!r} is not a file; give the path of a CSV, JSONL or Parquet manifest "
                         "file")
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
    if path.suffix.lower() in (".parquet", ".pq") or data[:4] == b"PAR1":
        return ("parquet", *_read_parquet(data))
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
    """Records of a CSV/TSV text. Quoting is parsed strictly (an unclosed quote is an error, not a field that
    swallows the rest of the file); a field may be as long as the file (no csv field-size limit)."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(text) + 1))
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            return [], [], [Problem(None, None, "the manifest is empty (no header, no rows); write a header line "
                                                "(id,split,label,...) and one row per sample", "empty_manifest")]
        except csv.Error as exc:
            return [], [], [Problem(None, None, f"cannot parse the CSV header (line 1): {exc}; check its quoting",
                                    "csv_error")]
        columns = [c.strip() for c in header]
        problems = [Problem(None, c, f"column {c!r} appears more than once in the header; keep one",
                            "duplicate_column") for c in sorted(c for c, n in Counter(columns).items() if n > 1)]
        records = _csv_rows(reader, columns, delimiter, problems)
    finally:
        csv.field_size_limit(old_limit)
    return records, columns, problems


def _csv_rows(reader, columns: list[str], delimiter: str, problems: list[Problem]) -> Records:
    """The data records of ``reader`` (past the header); parse errors and field-count mismatches go to
    ``problems`` (a row that cannot be parsed counts as a row, so later rows keep their numbers)."""
    records: Records = []
    row = 0
    while True:
        first_line = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row += 1
            problems.append(_csv_error(row, first_line, reader.line_num, str(exc)))
            continue
        if not values or all(not v.strip() for v in values):
            continue
        row += 1
        lines = f"line {first_line}" if reader.line_num == first_line else f"lines {first_line}-{reader.line_num}"
        if len(values) > len(columns):
            problems.append(Problem(row, None, f"the row ({lines}) has {len(values)} fields but the header has "
                                    f"{len(columns)}; quote fields that contain '{delimiter}', or delete the extra "
                                    "fields", "field_count"))
        elif len(values) < len(columns):
            problems.append(Problem(row, None, f"the row ({lines}) has {len(values)} field"
                                    f"{'s' if len(values) != 1 else ''} but the header has {len(columns)}; add the "
                                    f"missing fields (an empty cell still needs its '{delimiter}')", "field_count"))
        records.append((row, {c: (values[i] if i < len(values) else "") for i, c in enumerate(columns)}))
    return records


def _csv_error(row: int, first_line: int, last_line: int, error: str) -> Problem:
    """The ``csv_error`` problem of a row the reader refused (``error`` as the csv module says it)."""
    if "unexpected end of data" in error:
        return Problem(row, None, f"a quote opened in this row (line {first_line}) is never closed, so the row would "
                       f"swallow every line after it (up to line {last_line}); close the quote, and double any quote "
                       'inside a quoted field ("")', "csv_error")
    return Problem(row, None, f"cannot parse the CSV row (line {first_line}"
                   f"{'' if last_line <= first_line else f'-{last_line}'}): {error}; a field with a quote must be "
                   'quoted as a whole, with inner quotes doubled ("a ""b"" c")', "csv_error")


def _read_parquet(data: bytes) -> tuple[Records, list[str], list[Problem]]:
    """Records of a Parquet file's bytes: row N (1-based) is the Parquet row of index N - 1, cells as pyarrow gives
    them as Python values (str, int, float, bool, None, a list for a votes column)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading a Parquet manifest needs pyarrow; install it with `pip install pyarrow` (or "
                         "`pip install mixsig[parquet]`), or write the manifest as CSV or JSONL") from None
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow.ArrowInvalid / OSError for a damaged or truncated file
        return [], [], [Problem(None, None, f"cannot read the Parquet file ({type(exc).__name__}: {short(exc, 120)}); "
                                "write it again (pandas: df.to_parquet(path)), or write the manifest as CSV or JSONL",
                                "unsupported_format")]
    columns = [str(c).strip() for c in table.column_names]
    problems = [Problem(None, c, f"column {c!r} appears more than once in the Parquet schema; keep one",
                        "duplicate_column") for c in sorted(c for c, n in Counter(columns).items() if n > 1)]
    if not columns:
        return [], [], [Problem(None, None, "the Parquet manifest has no columns; write one column per field "
                                "(id, split, label, ...) and one row per sample", "empty_manifest")]
    values = [[plain_cell(x) for x in table.column(i).to_pylist()] for i in range(table.num_columns)]
    records: Records = [(r + 1, {c: v[r] for c, v in zip(columns, values)}) for r in range(table.num_rows)]
    return records, columns, problems


def plain_cell(value: Any) -> Any:
    """A Parquet cell as the plain value CSV/JSONL would give (what validation and the samples table both see):
    a date, datetime or time as its ISO 8601 text (``2024-01-02``, ``2024-01-02T03:04:05+00:00``), a duration
    as its seconds (float), a Decimal as its text (``"1.50"``: a number to the samples table, exact to an id),
    bytes as their UTF-8 text (their hex when they are not UTF-8), a numpy scalar as the Python number, lists and
    structs item by item; anything else pyarrow may give as its ``str``."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_cell(v) for k, v in value.items()}
    if isinstance(value, (datetime.date, datetime.time)):  # datetime.datetime is a date
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    item = getattr(value, "item", None)  # numpy scalars (a float16 column)
    if callable(item):
        try:
            return plain_cell(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook`` of the JSONL reader: a key given twice in one object raises :class:`Bad`."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise Bad(f"key {k!r} appears twice in the object ({short(json.dumps(out[k]), 30)} and "
                      f"{short(json.dumps(v), 30)}); keep one")
        out[k] = v
    return out


def _json_line(lineno: int, line: str, problems: list[Problem]) -> Any:
    """One parsed JSONL line, or None with its problem added (invalid JSON, a duplicate key, numbers or nesting
    Python refuses, a string that is not text: a lone surrogate escape such as ``"\\ud800"``)."""
    try:
        obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        problems.append(Problem(lineno, None, f"not valid JSON ({exc.msg} at column {exc.colno}); "
                                "write one JSON object per line", "json_error"))
    except Bad as exc:
        problems.append(Problem(lineno, None, f"line {lineno}: {exc}", "duplicate_key"))
    except UnicodeEncodeError as exc:
        problems.append(Problem(lineno, None, f"line {lineno}: a string holds a lone surrogate escape "
                                f"(\\u{ord(exc.object[exc.start]):04x}), which is not text; write the character "
                                "itself or its full surrogate pair", "json_error"))
    except (ValueError, RecursionError) as exc:
        problems.append(Problem(lineno, None, f"line {lineno}: cannot read this JSON ({type(exc).__name__}: "
                                f"{short(exc, 80)}); write plain numbers and strings", "json_error"))
    else:
        return obj
    return None


def _read_jsonl(text: str) -> tuple[Records, list[str], list[Problem]]:
    problems: list[Problem] = []
    records: Records = []
    columns: dict[str, None] = {}
    # split on "\n" only: str.splitlines() would also split inside strings at U+2028, U+0085, ... (valid JSON)
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = _json_line(lineno, line, problems)
        if obj is None:
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
        except (ValueError, RecursionError):  # JSONDecodeError, a 5000-digit number, nesting too deep
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
