"""The typed manifest row, :class:`Row`, and :func:`normalise_row`, which builds one from a raw record."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mixsig.manifest._read import Bad, as_float, as_str, as_votes
from mixsig.manifest._schema import ROW_KEYS, VOTES_PREFIX, Problem

_FIELD_KEYS = frozenset(ROW_KEYS)


@dataclass(frozen=True, slots=True, eq=False)
class Row(Mapping):
    """One normalised manifest row.

    Read its fields as attributes (``row.split``) or as keys (``row["split"]``): a Row is a read-only mapping
    whose keys are :data:`~mixsig.manifest.ROW_KEYS` followed by the manifest's extra columns (``row["planted"]``,
    held in ``extra``), and it compares equal to a dict with the same items. ``blank_text`` is True when the text
    cell held only whitespace (or, in JSONL, an empty string): ``text`` is then None and the row check reports
    ``empty_text``; it is an attribute, not a key.
    """

    id: str
    split: str
    label: str | None
    group: str
    text: str | None
    audio: str | None
    video: str | None
    start: float | None
    end: float | None
    votes: list[str] | None
    votes_by_condition: dict[str, list[str]]
    extra: dict[str, Any] = field(default_factory=dict)
    blank_text: bool = False

    def __getitem__(self, key: str) -> Any:
        if key in _FIELD_KEYS:
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from ROW_KEYS
        yield from self.extra

    def __len__(self) -> int:
        return len(ROW_KEYS) + len(self.extra)


def normalise_row(rownum: int, rec: dict, conditions: tuple[str, ...], extra: tuple[str, ...],
                  is_jsonl: bool) -> tuple[Row, list[Problem]]:
    """The :class:`Row` of raw record ``rec`` (data row ``rownum``) and the problems of its cells
    (``bad_value``, ``bad_time``, ``malformed_votes``); a bad cell becomes None."""
    problems: list[Problem] = []

    def get(column: str, conv):
        try:
            return conv(rec.get(column))
        except Bad as exc:
            problems.append(Problem(rownum, column, f"{exc}", "bad_value"))
            return None

    def stripped(column: str) -> str | None:
        v = get(column, as_str)
        return v.strip() or None if v is not None else None

    ident, split = stripped("id") or "", stripped("split") or ""
    label, group = stripped("label"), stripped("group") or ""
    text = get("text", as_str)
    blank_text = False
    if text is not None and not text.strip():
        # CSV: an empty cell means "no text"; only whitespace is an empty text. JSONL: "" is given on purpose.
        blank_text = bool(text or is_jsonl)
        text = None
    audio, video = _media_cell(rownum, "audio", stripped("audio"), problems), \
        _media_cell(rownum, "video", stripped("video"), problems)
    start, end = (_seconds(rownum, rec, column, problems) for column in ("start", "end"))
    votes, by_condition = _votes(rownum, rec, conditions, problems)
    extras = {c: rec.get(c, "" if not is_jsonl else None) for c in extra}
    row = Row(id=ident, split=split, label=label, group=group, text=text, audio=audio, video=video, start=start,
              end=end, votes=votes, votes_by_condition=by_condition, extra=extras, blank_text=blank_text)
    return row, problems


def _media_cell(rownum: int, column: str, value: str | None, problems: list[Problem]) -> str | None:
    """A media path; None with a ``bad_value`` problem when it holds a control character (NUL, newline ...),
    which no file name on disk should."""
    bad = next((ch for ch in value or "" if ord(ch) < 32 or ord(ch) == 127), None)
    if bad is None:
        return value
    problems.append(Problem(rownum, column, f"the {column} path {value!a} holds the control character "
                            f"U+{ord(bad):04X}; write the file's real path", "bad_value"))
    return None


def _seconds(rownum: int, rec: dict, column: str, problems: list[Problem]) -> float | None:
    try:
        return as_float(rec.get(column))
    except Bad as exc:
        problems.append(Problem(rownum, column, f"{exc}; write seconds as a number, e.g. 1.25", "bad_time"))
        return None


def _votes(rownum: int, rec: dict, conditions: tuple[str, ...],
           problems: list[Problem]) -> tuple[list[str] | None, dict[str, list[str]]]:
    """The ``votes`` cell and the non-empty ``votes@<condition>`` cells of a record."""
    votes_all: list[str] | None = None
    by_condition: dict[str, list[str]] = {}
    for column in ["votes"] + [VOTES_PREFIX + c for c in conditions]:
        try:
            votes = as_votes(rec.get(column))
        except Bad as exc:
            problems.append(Problem(rownum, column, str(exc), "malformed_votes"))
            votes = None
        if column == "votes":
            votes_all = votes
        elif votes:
            by_condition[column[len(VOTES_PREFIX):]] = votes
    return votes_all, by_condition
