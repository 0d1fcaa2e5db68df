"""The one parser of ``--features``: which cached key feeds each modality.

``mixsig train`` takes one key per modality (``text=K1,audio=K2``); ``mixsig study`` may offer alternatives the
study picks from (``text=K1|K2,audio=K3``)::

    parse_features("text=K1,audio=K2")                        # {"text": "K1", "audio": "K2"}
    parse_features("text=K1|K2,audio=K3", alternatives=True)  # {"text": ("K1", "K2"), "audio": ("K3",)}

A mapping (``{modality: key}`` or, with ``alternatives``, ``{modality: key or (key, ...)}``) is checked the
same way, so the Python API and the CLI refuse the same things. Order is kept. Stdlib only.
"""

from __future__ import annotations

from typing import Any, Mapping

from mixsig.errors import MixsigError, UsageError


def parse_features(spec: str | Mapping[str, Any], *, alternatives: bool = False,
                   error: type[MixsigError] = UsageError) -> dict:
    """``"m=K,..."`` (or a mapping) -> ``{modality: key}``; with ``alternatives``, ``"m=K1|K2,..."`` ->
    ``{modality: (key, ...)}``.

    Refused with ``error`` (one line naming the part and the fix): a part without ``=``, a modality without a
    key, a modality named twice, a key listed twice for one modality, an empty spec, and (without
    ``alternatives``) a ``|`` alternative.
    """
    form = "MODALITY=KEY[|KEY...]" if alternatives else "MODALITY=KEY"
    items = _items(spec, form, error)
    out: dict[str, Any] = {}
    for m, keys in items:
        if not m:
            raise error(f"--features entry {'|'.join(keys)!r} names no modality; give {form}")
        if not keys:
            raise error(f"--features {m}= names no key; give {form}")
        if m in out:
            raise error(f"--features names modality {m!r} twice; "
                        + (f"list its keys once as {m}=K1|K2" if alternatives else "give one key per modality"))
        if len(set(keys)) != len(keys):
            raise error(f"--features {m}= lists a key twice: {'|'.join(keys)}")
        if not alternatives and len(keys) > 1:
            raise error(f"--features {m}={'|'.join(keys)}: `mixsig train` takes one key per modality (alternatives "
                        "separated by | are for `mixsig study`)")
        out[m] = keys if alternatives else keys[0]
    if not out:
        raise error(f"--features is empty; give {form} for at least one modality")
    return out


def _items(spec: str | Mapping[str, Any], form: str, error: type[MixsigError]) -> list[tuple[str, tuple[str, ...]]]:
    if isinstance(spec, Mapping):
        return [(str(m).strip(), (k,) if isinstance(k, str) else tuple(k)) for m, k in spec.items()]
    if not isinstance(spec, str):
        raise error(f"--features must be a string like text=K1,audio=K2 or a mapping; got {type(spec).__name__}")
    items = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if "=" not in part:
            raise error(f"--features part {part!r} is not {form} (e.g. "
                        + ("text=K1|K2,audio=K3)" if "|" in form else "text=K1,audio=K2)"))
        m, keys = part.split("=", 1)
        items.append((m.strip(), tuple(k.strip() for k in keys.split("|") if k.strip())))
    return items


__all__ = ["parse_features"]
