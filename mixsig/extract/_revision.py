"""The resolved revision recorded in a key's provenance.

- A local folder: ``"sha256:<hex>"`` over the names and bytes of its weight, config, tokenizer and processor
  files (sorted), so changed weights or preprocessing configs give a new key.
- A hub name: the commit hash. Online it comes from the hub API; offline (``HF_HUB_OFFLINE=1``) from the
  local cache's snapshot folder, whose name is the commit hash.

Custom model code (``auto_map`` in config.json + ``*.py`` files, run only with ``trust_remote_code``) is not part
of the revision (without trust_remote_code it never runs, so it cannot change the numbers): :func:`remote_code_record`
hashes it into a provenance field of its own, ``extra.remote_code`` = ``{"sha256", "files": {name: sha256}}``,
over every ``*.py`` of the local folder or of the hub snapshot, code that ``auto_map`` takes from another repo
(``repo--module.Class``), and the module files the loaded classes were actually imported from.
"""

from __future__ import annotations

import hashlib
import logging
import os
import json
import re
import sys
from pathlib import Path

from mixsig.cache import file_sha256
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


def code_files_sha256(folder) -> dict[str, str]:
    """``{relative name: sha256}`` of every ``*.py`` file under ``folder`` (hidden folders and ``__pycache__``
    left out)."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*.py")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            out[rel.as_posix()] = file_sha256(p)
    return out


def _snapshot_folder(name: str, revision: str) -> Path:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(name, "config.json", revision=revision)
    if not isinstance(hit, str):
        raise ExtractionError(f"encoder {name!r}: cannot find its snapshot {revision} in the Hugging Face cache to hash "
                              "its custom code; load it once with network access (or pass a local folder)")
    return Path(hit).parent


def _external_code(folder: Path) -> dict[str, str]:
    """``auto_map`` references to code in another hub repo (``repo--module.Class``) in the folder's configs,
    hashed from the cache: ``{"repo--module.py": sha256}``."""
    from huggingface_hub import try_to_load_from_cache

    refs = set()
    for cfg in ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json"):
        try:
            amap = json.loads((folder / cfg).read_text()).get("auto_map") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for v in amap.values() if isinstance(amap, dict) else ():
            refs.update(r for r in (v if isinstance(v, list) else [v]) if isinstance(r, str) and "--" in r)
    out = {}
    for ref in sorted(refs):
        repo, _, cls = ref.partition("--")
        module = cls.rsplit(".", 1)[0].replace(".", "/") + ".py"
        try:
            hit = try_to_load_from_cache(repo, module)
        except ValueError:
            hit = None
        if not isinstance(hit, str):
            raise ExtractionError(f"{folder / 'config.json'}: auto_map takes code from {ref!r}, which is not in the "
                                  f"Hugging Face cache, so it cannot be hashed into the key; load the encoder once with "
                                  f"network access, or copy {module} into the model folder")
        out[f"{repo}--{module}"] = file_sha256(Path(hit))
    return out


def _loaded_code(files: dict[str, str], objects, where: Path) -> None:
    """Add (or check against ``files``) the module file each remote-code class in ``objects`` was imported from:
    transformers keeps a remote class imported once per process, so code edited since then would not be the code
    that runs."""
    for obj in objects:
        module = sys.modules.get(type(obj).__module__)
        path = getattr(module, "__file__", None)
        if not type(obj).__module__.startswith("transformers_modules.") or not path or not Path(path).is_file():
            continue
        name, sha = Path(path).name, file_sha256(Path(path))
        if name not in files:
            files[name] = sha
        elif files[name] != sha:
            raise ExtractionError(f"{where / name} is not the code of the {type(obj).__name__} this process runs: it "
                                  f"changed after this process imported it (transformers keeps the first import; or another "
                                  f"model with this model_type was loaded first, from {path}). Run the extraction in a new "
                                  "process")


def remote_code_record(name_or_path: str, revision: str, loaded=()) -> dict | None:
    """The provenance field of an encoder's custom code (run with ``trust_remote_code``): ``{"sha256": <hex over
    the files>, "files": {name: sha256}}`` over every ``*.py`` of the local folder or hub snapshot at ``revision``,
    external ``auto_map`` code and the module files of the remote-code classes in ``loaded`` (config, model);
    None when there is no code at all (so a plain model keeps its key)."""
    folder = Path(name_or_path).expanduser() if is_local(name_or_path) else _snapshot_folder(name_or_path, revision)
    files = {**code_files_sha256(folder), **_external_code(folder)}
    _loaded_code(files, loaded, folder)
    if not files:
        return None
    h = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode())
    return {"sha256": h.hexdigest(), "files": dict(sorted(files.items()))}


__all__ = ["code_files_sha256", "folder_sha256", "is_local", "remote_code_record", "resolve_revision"]
