"""The head registry and factory: ``@register_head("name")`` on a :class:`~mixsig.heads.Head` subclass, then
``get_head(name, **params)`` builds one, ``list_heads()`` names them all and ``load_head(folder)`` reads back a
head saved by :meth:`Head.save` whatever its class.

The registry is a :class:`mixsig._registry.Registry`; the built-in heads are lazy entries, so their names are
known (``mixsig train --help``, ``--head`` choices) without importing numpy, torch or LightGBM, and the module
defining a head is imported the first time the head is built or loaded. This module imports :mod:`._base` only
inside :func:`load_head`; ``_base`` never imports this module (no import cycle).

Adding a head is one new class with ``@register_head("name")`` (and, for a built-in head, one
``HEADS.register_lazy`` line below so its name is listed before its module is imported).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from mixsig._registry import Registry
from mixsig.errors import HeadError

if TYPE_CHECKING:  # pragma: no cover
    from mixsig.heads._base import Head

T = TypeVar("T", bound=type)


def _named(name: str, cls):
    cls.name = name  # the registered name is the head's name (saved in head.json, shown in errors)
    return cls


#: Every head by name (classes); built-in heads are lazy entries (imported on first use).
HEADS: Registry[type["Head"]] = Registry("head", error=HeadError, on_register=_named,
                                         hint="register one with @mixsig.heads.register_head")
HEADS.register_lazy("gated", "mixsig.heads._torch:GatedFusionHead")
HEADS.register_lazy("concat", "mixsig.heads._torch:ConcatHead")
HEADS.register_lazy("late", "mixsig.heads._torch:LateFusionHead")
HEADS.register_lazy("logreg", "mixsig.heads._logreg:LogRegHead")
HEADS.register_lazy("lightgbm", "mixsig.heads._lightgbm:LightGBMHead")


def register_head(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`Head` subclass under ``name`` (sets ``cls.name``). A name already
    taken by another class is refused (:class:`HeadError` naming the class that holds it)."""
    return HEADS.register(name)


def head_class(name: str) -> type["Head"]:
    """The registered class for ``name``; :class:`HeadError` listing the valid names otherwise."""
    return HEADS.get(name)


def get_head(name: str, **params) -> "Head":
    """Build the head registered as ``name`` with hyperparameters ``params``.

    >>> from mixsig.heads import get_head
    >>> get_head("logreg", C=0.5).get_params()["C"]
    0.5
    """
    return head_class(name)(**params)


def list_heads() -> list[str]:
    """Names of every registered head, sorted (nothing is imported)."""
    return HEADS.names()


def load_head(path: str | Path) -> "Head":
    """Load the head saved by :meth:`Head.save` in folder ``path``, of whichever registered class it is.
    Refuses pickles and torch ``.pt`` files, file names in ``head.json`` that lead outside the folder (absolute,
    ``..``, symlinks) and LightGBM texts that fail the checks of :mod:`mixsig.heads._lgb_check` (before LightGBM
    parses them); an unknown head name raises :class:`HeadError` listing the heads."""
    from mixsig.heads._files import read_saved_head

    meta = read_saved_head(path)
    return head_class(meta["head"])._from_saved(Path(path), meta)


__all__ = ["HEADS", "get_head", "head_class", "list_heads", "load_head", "register_head"]
