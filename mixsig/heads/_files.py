"""A saved head's folder on disk: its ``head.json`` record and its model file, checked before anything parses
them; pickles and torch ``.pt`` files are refused by their first bytes or their name, and every file name
``head.json`` holds (``state.file``, ...) must stay inside the folder: no absolute paths, no ``..``, no symlink
leading out."""

from __future__ import annotations

import json
from pathlib import Path

from mixsig.errors import HeadError

META_FILE = "head.json"
HEAD_FORMAT_VERSION = 1
_PICKLE_MAGIC = (b"\x80",)  # pickle protocol >= 2 starts with PROTO (0x80)
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default container


def read_saved_head(path: str | Path) -> dict:
    """The ``head.json`` record of a head saved in folder ``path``, after refusing files that are not such a
    folder (pickles and torch ``.pt`` files by name), missing or unreadable records and other format versions."""
    path = Path(path)
    if path.is_file():
        _refuse_foreign_file(path)
        raise HeadError(
            f"{path} is a file; a saved head is a folder with {META_FILE} and its model file "
            f"(written by Head.save)."
        )
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise HeadError(f"No saved head at {path}: {META_FILE} is missing. Save heads with Head.save(folder).")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise HeadError(f"{meta_path} is not valid JSON ({exc}); re-save the head.") from None
    if meta.get("format_version") != HEAD_FORMAT_VERSION:
        raise HeadError(f"{meta_path}: head format {meta.get('format_version')} is not supported "
                        f"(this mixsig reads {HEAD_FORMAT_VERSION}).")
    _check_inside(path, META_FILE, META_FILE, meta_path)
    for field, name in _file_names(meta.get("state"), "state"):
        _check_inside(path, name, field, meta_path)
    return meta


def _file_names(value, field: str):
    """``(dotted field, value)`` of every file name in ``head.json``'s ``state``: keys ``file`` / ``*_file`` (a
    name) and ``files`` / ``*_files`` (a list or dict of names), at any depth."""
    if not isinstance(value, dict):
        return
    for key, v in value.items():
        sub = f"{field}.{key}"
        if key == "file" or key.endswith("_file"):
            yield sub, v
        elif key == "files" or key.endswith("_files"):
            items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else [("", v)]
            for k, name in items:
                yield f"{sub}[{k!r}]" if k != "" else sub, name
        elif isinstance(v, dict):
            yield from _file_names(v, sub)


def _check_inside(folder: Path, name, field: str, meta_path: Path) -> None:
    """Refuse a file name of ``head.json`` that is not a plain name inside ``folder``: not a string, absolute, with
    ``..``, or a symlink (at any step) that leads out of the folder."""
    problem = None
    if not isinstance(name, str) or not name or "\0" in name:
        problem = "is not a file name"
    elif Path(name).is_absolute() or name.startswith(("/", "\\")) or ":" in Path(name).parts[0]:
        problem = "is an absolute path"
    elif ".." in Path(name).parts or ".." in name.split("\\"):
        problem = "climbs out of the folder with '..'"
    else:
        root = folder.resolve()
        target = (folder / name).resolve()
        if target != root and root not in target.parents:
            problem = f"is a symlink to {target}, outside the folder"
    if problem:
        raise HeadError(f"{meta_path}: {field} = {name!r} {problem}; a saved head's files must sit in its folder "
                        f"{folder}. Refusing to load it: save the head again with Head.save(folder).")


def check_model_file(path: Path, kind: str) -> Path:
    """Make sure ``path`` is a ``kind`` ("safetensors" | "lightgbm") file before anything parses it."""
    if not path.is_file():
        raise HeadError(f"Model file {path} is missing; the saved head is incomplete, save it again.")
    target, root = path.resolve(), path.parent.resolve()
    if root not in target.parents:
        raise HeadError(f"Model file {path} is a symlink to {target}, outside the head's folder {path.parent}; "
                        f"refusing to load it: save the head again with Head.save(folder).")
    with open(path, "rb") as fh:
        start = fh.read(9)
    ok = start[8:9] == b"{" if kind == "safetensors" else start.startswith(b"tree")
    if not ok:
        _refuse_foreign_file(path)
        raise HeadError(f"{path} is not a {kind} model file; the saved head is damaged, save it again.")
    return path


def _refuse_foreign_file(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:1] in _PICKLE_MAGIC or head == _ZIP_MAGIC or path.suffix in {".pkl", ".pickle", ".pt", ".pth", ".joblib"}:
        raise HeadError(
            f"Refusing to load {path}: it looks like a pickle / torch.save file. mixsig loads heads only "
            f"from safetensors or LightGBM text files written by Head.save; retrain and save the head."
        )
