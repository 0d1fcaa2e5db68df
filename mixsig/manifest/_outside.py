"""Media paths outside the manifest's folder: absolute paths, paths that climb out with ``..``, and symlinks (or
paths through a symlinked folder) that resolve outside it.

Deciding opens no file: it only resolves the path (``os.path.realpath``: lstat/readlink of its parts). By default
such files are not opened at all: validation lists them as ``outside_path`` warnings and skips their media checks,
:func:`~mixsig.manifest.to_samples` does not hash them, and :func:`~mixsig.manifest.load_manifest` refuses the
manifest (:class:`~mixsig.errors.RefusedInput`) unless ``allow_outside_paths=True`` (``--allow-outside-paths``).
"""

from __future__ import annotations

import os
from pathlib import Path

from mixsig.errors import RefusedInput
from mixsig.manifest._row import Row
from mixsig.manifest._schema import MEDIA_MODALITIES, Manifest, Problem

#: Rows named in the refusal message (then a count).
LISTED = 5
OPTION = "--allow-outside-paths"


def _inside(path: str, root: str) -> bool:
    """``path`` is ``root`` or under it (both absolute and normalised: realpath / normpath output)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


def _resolved(target: str, folders: dict | None) -> str:
    """``os.path.realpath(target)``; with ``folders`` (a cache of resolved folders, one per call of
    :func:`outside_items`) the folder is resolved once and each file costs one ``lstat``: realpath(folder/name) is
    realpath(realpath(folder)/name) for a plain name, and a name that is a symlink is resolved in full."""
    if folders is None:
        return os.path.realpath(target)
    folder, name = os.path.split(target)
    if name in ("", ".", ".."):
        return os.path.realpath(target)
    real_folder = folders.get(folder)
    if real_folder is None:
        real_folder = folders[folder] = os.path.realpath(folder)
    candidate = os.path.join(real_folder, name)
    return os.path.realpath(candidate) if os.path.islink(candidate) else candidate


def outside_reason(root: Path, value: str, real_root: str | None = None, folders: dict | None = None) -> str | None:
    """Why the media path ``value`` (as written, relative to the folder ``root``) leads outside ``root``; None
    when it stays inside (a symlink inside the folder that points inside is fine). ``real_root``: the resolved
    ``root``, when the caller has it already; ``folders``: resolved folders kept between calls."""
    root = os.path.abspath(root)
    real_root = real_root or os.path.realpath(root)
    absolute = os.path.isabs(value)
    target = value if absolute else os.path.join(root, value)
    real = _resolved(target, folders)
    if _inside(real, real_root):
        return None
    lexical = os.path.normpath(target)
    if not _inside(lexical, real_root):
        if absolute:
            return "is an absolute path outside the manifest's folder"
        return "climbs out of the manifest's folder with '..'"
    return f"goes through a symlink that resolves to {real!r}, outside the manifest's folder"


def outside_items(root: Path, rows: list[Row], row_numbers: list) -> list[tuple[int | None, Row, str, str]]:
    """``(row number, row, modality, reason)`` for every audio/video path of ``rows`` that leads outside ``root``."""
    found, folders = [], {}
    real_root = os.path.realpath(root)
    for rownum, r in zip(row_numbers, rows):
        for m in MEDIA_MODALITIES:
            if r[m]:
                reason = outside_reason(root, r[m], real_root, folders)
                if reason:
                    found.append((rownum, r, m, reason))
    return found


def outside_paths(manifest: Manifest) -> list[tuple[str, str, str, str]]:
    """``(id, modality, path as written, reason)`` for every media path of ``manifest`` outside its folder."""
    return [(r.id, m, r[m], reason) for _, r, m, reason in
            outside_items(manifest.root, manifest.rows, [None] * len(manifest.rows))]


def outside_problems(items: list[tuple[int, Row, str, str]], root: Path, allowed: bool) -> list[Problem]:
    """One ``outside_path`` warning per item of :func:`outside_items`."""
    if allowed:
        then = f"it is checked and hashed because {OPTION} (allow_outside_paths=True) was given"
    else:
        then = (f"its file is not opened (not checked, not hashed) and extraction refuses the manifest: move the "
                f"file into {str(root)!r} and write a relative path, or pass {OPTION} if you trust it")
    return [Problem(rownum, m, f"id {r.id!r}: {m} path {r[m]!r} {reason}; {then}", "outside_path", "warning")
            for rownum, r, m, reason in items]


def refusal(path, items: list[tuple[int | None, Row, str, str]], command: str | None = None) -> RefusedInput:
    """The :class:`RefusedInput` for media paths outside the manifest's folder (first few rows, then a count)."""
    shown = "; ".join(f"{'' if rownum is None else f'row {rownum}, '}id {r.id!r}: {m} {r[m]!r} {reason}"
                      for rownum, r, m, reason in items[:LISTED])
    more = f"; ... and {len(items) - LISTED} more" if len(items) > LISTED else ""
    how = f"`{command} {OPTION}`" if command else f"{OPTION} (allow_outside_paths=True)"
    return RefusedInput(
        f"manifest {str(path)!r} has {len(items)} media path(s) outside its folder, which mixsig does not open "
        f"unless asked: {shown}{more}; move the files into the manifest's folder and write relative paths, or "
        f"pass {how} if you trust them (`mixsig validate` lists them all)")


def check_outside_paths(manifest: Manifest, allow: bool, command: str) -> list[tuple[str, str, str, str]]:
    """Raise :class:`~mixsig.errors.RefusedInput` (exit code 3) naming ``<command> --allow-outside-paths`` when
    media paths of ``manifest`` lead outside its folder and ``allow`` is False; return :func:`outside_paths`."""
    items = outside_items(manifest.root, manifest.rows, [None] * len(manifest.rows))
    if items and not allow:
        raise refusal(manifest.path, items, command)
    return [(r.id, m, r[m], reason) for _, r, m, reason in items]
