"""The resolved revision recorded in a key's provenance.

- A local folder: ``"sha256:<hex>"`` over the names and bytes of its weight, config, tokenizer and processor
  files (sorted), so changed weights or preprocessing configs give a new key.
- A hub name: the commit hash. Online it comes from the hub API; offline (``HF_HUB_OFFLINE=1``) from the
  local cache's snapshot folder, whose name is the commit hash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from mixsig.errors import ExtractionError

log = logging.getLogger(__name__)

_HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".msgpack", ".h5")
_IGNORED = {"mixsig_tiny.json", "training_args.json"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def folder_sha256(folder) -> str:
    """sha256 hex over (relative name, bytes) of the model files in ``folder`` (weights, configs, vocab)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _HASHED_SUFFIXES
                   and p.name not in _IGNORED and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not any(p.suffix in (".safetensors", ".bin", ".msgpack", ".h5") for p in files):
        raise ExtractionError(f"encoder folder {folder} holds no weight files (*.safetensors / *.bin); "
                              "save the model there with save_pretrained(folder)")
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(folder).as_posix()).encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def is_local(name_or_path: str) -> bool:
    return Path(name_or_path).expanduser().is_dir()


def _looks_like_path(name: str) -> bool:
    return (Path(name).is_absolute() or name.startswith(("./", "../", "~", ".\\")) or name.count("/") > 1
            or "\\" in name)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def resolve_revision(name_or_path: str, revision: str | None = None) -> str:
    """``"sha256:<hex>"`` for a local folder, the 40-hex commit hash for a hub name (offline-safe)."""
    if is_local(name_or_path):
        return "sha256:" + folder_sha256(Path(name_or_path).expanduser())
    if _looks_like_path(name_or_path):
        raise ExtractionError(f"encoder folder {name_or_path!r} does not exist; give a folder saved with "
                              "save_pretrained, or a hub name like 'roberta-base' (offline: one already in the cache)")
    if revision and _COMMIT.match(revision):
        return revision
    if not _offline():
        try:
            from huggingface_hub import HfApi

            return str(HfApi().model_info(name_or_path, revision=revision).sha)
        except Exception as exc:  # network or auth problem: fall back to the cache
            log.warning("could not ask the hub for %s@%s (%s); using the local cache", name_or_path, revision, exc)
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(name_or_path, "config.json", revision=revision or "main")
    except ValueError as exc:  # HFValidationError: not a valid repo id
        raise ExtractionError(f"encoder {name_or_path!r} is neither a local folder nor a valid hub name ({exc})") from exc
    if isinstance(hit, str):
        commit = Path(hit).parent.name
        if _COMMIT.match(commit):
            return commit
    raise ExtractionError(
        f"encoder {name_or_path!r} (revision {revision or 'main'}) is neither a local folder nor in the Hugging Face "
        "cache, and the hub is offline (HF_HUB_OFFLINE=1). Download it once with network access, or pass a local "
        "folder saved with save_pretrained.")


__all__ = ["folder_sha256", "is_local", "resolve_revision"]
