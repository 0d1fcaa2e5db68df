"""Ids that look like other ids: invisible or control characters in an id (``bad_id`` errors), two ids that are one
text in two Unicode encodings (NFC-equal: ``duplicate_id`` errors, in :mod:`._checks`), and ids that differ only
in case or compatibility forms such as full-width letters (``lookalike_id`` warnings)."""

from __future__ import annotations

import unicodedata

from mixsig.manifest._row import Row
from mixsig.manifest._schema import Problem

#: Unicode categories refused in ids: controls (newline, tab, ...), format characters (bidi overrides, zero-width
#: space/joiners, BOM), surrogates, private use, line and paragraph separators.
BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_SHOWN = 3


def _char_name(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')}"


def bad_id_chars(rid: str) -> list[tuple[int, str]]:
    """``(position, char)`` of the characters an id may not hold: control/format/separator characters, and any
    space other than U+0020 (no-break, thin, ideographic ... spaces look like a plain space)."""
    return [(i, ch) for i, ch in enumerate(rid)
            if unicodedata.category(ch) in BAD_CATEGORIES or (unicodedata.category(ch) == "Zs" and ch != " ")]


def bad_id_problem(rownum: int, rid: str) -> Problem | None:
    """The ``bad_id`` error of an id holding invisible or control characters (the id is shown escaped)."""
    bad = bad_id_chars(rid)
    if not bad:
        return None
    listed = ", ".join(f"{_char_name(ch)} at position {i}" for i, ch in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return Problem(rownum, "id", f"id {rid!a} holds {listed}{more}; ids may not contain control, invisible "
                   "(zero-width, bidi) or line-break characters, which make different ids look alike: retype the "
                   "id with visible characters", "bad_id")


def nfc(rid: str) -> str:
    """The key ids are compared by: NFC-normalised (a precomposed 'é' equals 'e' + combining accent)."""
    return unicodedata.normalize("NFC", rid)


def _fold(rid: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", rid).casefold())


def lookalike_problems(rows: list[Row], row_numbers: list[int]) -> list[Problem]:
    """``lookalike_id`` warnings: ids that differ (after NFC) but are equal after case folding and NFKC."""
    first: dict[str, tuple[int, str]] = {}
    problems = []
    for rownum, r in zip(row_numbers, rows):
        if not r.id:
            continue
        key = _fold(r.id)
        if key not in first:
            first[key] = (rownum, r.id)
            continue
        frow, fid = first[key]
        if nfc(fid) != nfc(r.id):
            problems.append(Problem(rownum, "id", f"id {r.id!a} differs from id {fid!a} (row {frow}) only in "
                                    "case or in compatibility forms (e.g. full-width letters); rename one unless "
                                    "they are different samples", "lookalike_id", "warning"))
    return problems
