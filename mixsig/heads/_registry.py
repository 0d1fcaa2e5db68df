"""The head registry: ``@register_head("name")`` on a :class:`~mixsig.heads.Head` subclass, then
``get_head(name, **params)`` builds one and ``list_heads()`` names them all.

Adding a head is one new class in one module plus an import in ``mixsig/heads/__init__.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from mixsig.errors import HeadError

if TYPE_CHECKING:  # pragma: no cover
    from mixsig.heads._base import Head

_HEADS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_head(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`Head` subclass under ``name`` (sets ``cls.name``)."""

    def decorate(cls: T) -> T:
        if name in _HEADS and _HEADS[name] is not cls:
            raise HeadError(f"A head named {name!r} is already registered ({_HEADS[name].__qualname__}).")
        cls.name = name  # type: ignore[attr-defined]
        _HEADS[name] = cls
        return cls

    return decorate


def head_class(name: str) -> type["Head"]:
    """The registered class for ``name``; :class:`HeadError` listing the valid names otherwise."""
    try:
        return _HEADS[name]
    except KeyError:
        raise HeadError(
            f"Unknown head {name!r}. Valid heads: {', '.join(list_heads())}."
        ) from None


def get_head(name: str, **params) -> "Head":
    """Build the head registered as ``name`` with hyperparameters ``params``.

    >>> from mixsig.heads import get_head
    >>> get_head("logreg", C=0.5).get_params()["C"]
    0.5
    """
    return head_class(name)(**params)


def list_heads() -> list[str]:
    """Names of every registered head, sorted."""
    return sorted(_HEADS)
