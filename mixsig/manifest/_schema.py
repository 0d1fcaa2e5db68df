"""The manifest contract: its constants, :class:`Problem` (one finding) and :class:`Manifest` (a parsed file)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mixsig.modalities import MEDIA_MODALITIES, MODALITIES  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from mixsig.manifest._row import Row

#: The one logger of the package (its records name ``mixsig.manifest`` whichever module logs).
logger = logging.getLogger("mixsig.manifest")

KNOWN_SPLITS: tuple[str, ...] = ("train", "val", "test")
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
#: Rows listed per split in a group-leak message; also the errors/warnings :func:`load_manifest` shows.
MAX_LISTED = 10


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

    ``rows`` are :class:`~mixsig.manifest.Row` objects (typed fields, and read-only mappings with the keys
    of :data:`ROW_KEYS` plus the extra columns): ``id`` str, ``split`` str, ``label`` str|None, ``group`` str
    ("" if none), ``text``/``audio``/``video`` str|None (media paths as written, relative to ``root``),
    ``start``/``end`` float seconds|None, ``votes`` list[str]|None, ``votes_by_condition`` {condition: list[str]}.
    ``outside_paths_allowed``: it was loaded with ``allow_outside_paths=True``, so :func:`~mixsig.manifest.to_samples`
    hashes media files outside ``root`` too (by default it skips them).
    """

    path: Path
    root: Path
    rows: list[Row]
    classes: tuple[str, ...]
    conditions: tuple[str, ...]
    sha256: str
    extra_columns: tuple[str, ...] = field(default=())
    outside_paths_allowed: bool = False

    def media_path(self, row: Mapping, modality: str) -> Path | None:
        """Absolute path of the row's ``audio`` or ``video`` file, None when the row has none."""
        if modality not in MEDIA_MODALITIES:
            raise ValueError(f"media_path takes one of {MEDIA_MODALITIES}; got {modality!r}")
        value = row.get(modality)
        if not value:
            return None
        return resolve(self.root, value)

    def __len__(self) -> int:
        return len(self.rows)


def resolve(root: Path, value: str) -> Path:
    """A media path as written in the manifest, made absolute against the manifest's folder ``root``."""
    p = Path(value)
    return p if p.is_absolute() else root / p


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """File-level problems first, then by row; stable, so a row's problems keep the order they were found in."""
    return sorted(problems, key=lambda q: (q.row is not None, q.row or 0))
