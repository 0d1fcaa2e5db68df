"""Naming keys and runs without copying hashes: a full name, a unique prefix, or (keys) the modality alone.

A key ``text.roberta-base.cls.0123456789ab`` can be named ``text.roberta-base.cls.0123456789ab`` (exact),
``text.roberta-base`` or ``text.rob`` (a prefix that only it has), or ``text`` (the modality alone, when the store
holds one key of that modality). Under a modality (``--features text=…``) the modality may be left off:
``text=roberta-base`` is ``text=text.roberta-base``. A run is named by its full name or a unique prefix.

An ambiguous name is one error line listing its candidates; an unknown one lists what the store holds.
"""

from __future__ import annotations

from typing import Iterable

from mixsig.errors import MixsigError, UsageError, did_you_mean

#: Candidates or known names listed in one message at most (the rest are counted).
SHOWN = 12


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _candidates(name: str, have: list[str]) -> list[str]:
    """Names of ``have`` that ``name`` names: itself when present; else those starting ``name.`` (whole parts);
    else those starting with ``name``."""
    if name in have:
        return [name]
    whole = [h for h in have if h.startswith(name + ".")]
    return whole or [h for h in have if h.startswith(name)]


def match_name(name: str, have: Iterable[str], *, what: str, option: str, store_url: str, listing: str,
               modality: str | None = None, error: type[MixsigError] = UsageError, noun: str = "") -> str:
    """The one name of ``have`` that ``name`` names (see the module doc); an ambiguous name raises
    :class:`UsageError` listing the candidates, an unknown one ``error`` listing ``have``.

    ``what`` ("key", "run"), ``noun`` ("feature key") and ``option`` (``--features text=``, ``--run ``, or ``""``
    for a positional argument) word the message; ``listing`` is the command that lists the store's names. With
    ``modality``, ``name`` not starting with it is also tried as ``<modality>.<name>``."""
    have = sorted(have)
    name = str(name).strip()
    if not name:
        raise error(f"{option}: empty {what} name; give a {what} of the store {store_url} (`{listing}` lists them)")
    found = _candidates(name, have)
    if not found and modality and not name.startswith(modality + "."):
        found = _candidates(f"{modality}.{name}", have)
    if len(found) == 1:
        return found[0]
    said = f"{option}{name}" if option else f"{what} {name!r}"
    if found:
        raise UsageError(f"{said} is ambiguous in the store {store_url}: it names {len(found)} {what}s "
                         f"({_listed(found)}); give more of the name, or the full {what}")
    hint = did_you_mean(name, _suggestable(have)) or (
        did_you_mean(f"{modality}.{name}", _suggestable(have)) if modality else "")
    if modality:  # the store's keys, those of the modality first
        same = [h for h in have if h.split(".")[0] == modality]
        others = [h for h in have if h not in same]
        raise error(f"No {noun or what} {name!r} (nor one starting with it) in {store_url} (for modality "
                    f"{modality!r}).{hint} Keys of that modality: {_listed(same) or 'none'}; other keys: "
                    f"{_listed(others) or 'none'} (`{listing}` lists them).")
    head = f"{said}: no {what} of that name or prefix" if option else \
        f"no {noun or what} {name!r} (nor one starting with it)"
    raise error(f"{head} in the store {store_url};{hint} {what}s: {_listed(have) if have else 'none'} "
                f"(`{listing}` lists them)")


def _suggestable(have: list[str]) -> list[str]:
    """What a "did you mean" may offer for ``have``: each name and each leading run of its dot-separated parts
    that names it alone (``text.roberta-base`` for ``text.roberta-base.cls.0123…``), so a mistyped prefix is
    compared with prefixes of its own length."""
    out = set(have)
    for h in have:
        parts = h.split(".")
        out.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if _candidates(p, have) == [h])
    return sorted(out)


def resolve_features(store, features: dict, *, error: type[MixsigError] = UsageError) -> dict:
    """``{modality: name}`` (or ``{modality: (name, ...)}``, a study's alternatives) -> the same with full keys.

    Order is kept; two names resolving to one key under one modality are refused."""
    have = store.keys()
    out: dict = {}
    for m, names in features.items():
        many = not isinstance(names, str)
        keys = tuple(store_key(store, n, have, m, error) for n in (names if many else (names,)))
        if len(set(keys)) != len(keys):
            raise error(f"--features {m}={'|'.join(names)}: names the same key twice ({'|'.join(keys)}); "
                        "list each key once")
        out[m] = keys if many else keys[0]
    return out


def store_key(store, name: str, have: list[str], modality: str | None, error: type[MixsigError]) -> str:
    option = f"--features {modality}=" if modality else ""
    return match_name(name, have, what="key", option=option, store_url=store.url, modality=modality,
                      listing=f"mixsig cache ls {store.url}", error=error, noun="feature key")


def shortest_name(key: str, have: Iterable[str]) -> str:
    """The shortest leading run of ``key``'s dot-separated parts (``text``, ``text.roberta-base``, ...) that
    names ``key`` alone among ``have`` (what a ready-to-paste command can say instead of the hash)."""
    have = sorted(have)
    parts = key.split(".")
    for i in range(1, len(parts)):
        name = ".".join(parts[:i])
        if _candidates(name, have) == [key]:
            return name
    return key
