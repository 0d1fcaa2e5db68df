"""Provenance records and the cache keys made from them.

A key is a readable prefix plus the first 12 hex digits of the sha256 of the provenance's canonical JSON,
e.g. ``text.roberta-base.cls.3f9a1c0d2b7e``. Anything that changes the numbers belongs in the provenance,
so a changed model, revision, preprocessing, pooling, layer choice or dtype gives a new key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

#: Bump when the meaning of stored features changes (layout, pooling implementation, ...).
FEATURE_FORMAT_VERSION = 1

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the bytes a hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_of(obj: Any) -> str:
    """sha256 hex digest of ``canonical_json(obj)``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def file_sha256(path) -> str:
    """sha256 hex digest of the bytes of the file at ``path`` (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def short_name(name: str) -> str:
    """A filesystem-safe short form of an encoder name or path (``facebook/hubert-base-ls960`` -> ``hubert-base-ls960``)."""
    base = name.rstrip("/\\").replace("\\", "/").split("/")[-1] or "encoder"
    return _SAFE.sub("-", base).strip("-.").lower()[:40] or "encoder"


@dataclass(frozen=True)
class Provenance:
    """Everything that determines a key's numbers. Frozen; ``to_dict()`` is stable; ``sha256()`` hashes it.

    ``encoder`` is the name as given (a hub name, or a local folder's basename — never an absolute path, so a
    store moved elsewhere keeps its keys); ``revision`` is the resolved commit hash or ``sha256:<weights hash>``.
    """

    modality: str
    encoder: str
    revision: str
    pooling: str
    layers: str = "last"
    dtype: str = "float32"
    preprocessing: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    format_version: int = FEATURE_FORMAT_VERSION

    def to_dict(self) -> dict:
        return json.loads(canonical_json(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "Provenance":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def sha256(self) -> str:
        return sha256_of(self.to_dict())

    def key(self, name: str | None = None) -> str:
        """``<modality>.<encoder-short>.<pooling>.<12 hex>``; ``name`` replaces the encoder part of the readable
        prefix. The name is not hashed: keys with the same hash hold the same features. An unsafe name (one that
        :func:`short_name` would change) raises ``ValueError``."""
        if name is not None and (not name or short_name(name) != name):
            raise ValueError(f"key name {name!r} is not safe in a key; use {short_name(name or 'x')!r}")
        part = name if name is not None else self.encoder
        prefix = ".".join(short_name(p) for p in (self.modality, part, self.pooling))
        return f"{prefix}.{self.sha256()[:12]}"


def provenance_matches(key: str, provenance: dict) -> tuple[bool, str]:
    """``(ok, sha256)``: whether ``provenance`` (a key's stored record) still hashes to ``key``'s hash part, and
    the sha256 it hashes to (what ``mixsig cache explain`` shows)."""
    try:
        digest = Provenance.from_dict(provenance).sha256() if set(provenance) <= set(Provenance.__dataclass_fields__) \
            else sha256_of(provenance)
    except (TypeError, ValueError):
        return False, "0" * 64
    return key.endswith("." + digest[:12]), digest


def diff_dicts(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Flattened differences between two nested dicts: ``[(dotted.path, value_in_a, value_in_b), ...]``."""
    out: list[tuple[str, Any, Any]] = []
    for k in sorted(set(a) | set(b)):
        path = f"{prefix}{k}"
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out.extend(diff_dicts(va, vb, path + "."))
        elif va != vb:
            out.append((path, va, vb))
    return out
