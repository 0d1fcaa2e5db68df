"""Pooling of token/frame sequences into one vector per row, behind a registry (:data:`POOLINGS`).

Every pooling takes ``hidden`` [B, T, D] and a boolean ``mask`` [B, T] (True = a real token/frame, padding False)
and returns [B, D]. Padding never changes a row's numbers: ``cls`` takes position 0, ``mean`` averages the masked
positions only. A new pooling is one function with ``@register_pooling("name")``; ``mixsig extract --pooling``
offers every registered name, and the first line of its docstring is its ``--help`` text. This module imports
no numpy or torch (the functions work on the tensors they are given).
"""

from __future__ import annotations

from typing import Callable

from mixsig._registry import Registry
from mixsig.errors import UsageError

#: Every pooling by name: ``fn(hidden [B, T, D], mask [B, T] bool) -> [B, D]``.
POOLINGS: Registry[Callable] = Registry("pooling", error=UsageError,
                                        hint="register one with @mixsig.extract.register_pooling")


def register_pooling(name: str):
    """Decorator: register ``fn(hidden, mask) -> [B, D]`` as pooling ``name`` (a taken name is refused)."""
    return POOLINGS.register(name)


def list_poolings() -> list[str]:
    """Every registered pooling, sorted."""
    return POOLINGS.names()


def get_pooling(name: str) -> Callable:
    """The pooling registered as ``name``; :class:`UsageError` listing the valid names otherwise."""
    return POOLINGS.get(name)


def describe_poolings() -> str:
    """``name: first docstring line`` of every pooling, joined by ``; `` (the ``--pooling`` help text)."""
    parts = []
    for name in POOLINGS.names():
        doc = (POOLINGS.get(name).__doc__ or "").strip().splitlines()
        line = doc[0].rstrip(".") if doc else ""
        if line[:2].istitle():  # "First token" -> "first token" (not "CLS ...")
            line = line[0].lower() + line[1:]
        parts.append(f"{name}: {line}" if line else name)
    return "; ".join(parts)


@register_pooling("cls")
def cls_pool(hidden, mask):
    """First token/frame (the [CLS] / <s> token of text encoders).

    [B, T, D] -> [B, D]."""
    return hidden[:, 0]


@register_pooling("mean")
def mean_pool(hidden, mask):
    """Average over the real (unpadded) positions.

    The mean over the positions where ``mask`` is True: [B, T, D] -> [B, D]."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


def pool(hidden, mask, method: str):
    """Apply the pooling ``method`` (see :func:`list_poolings`) to ``hidden`` [B, T, D] with ``mask`` [B, T]."""
    return get_pooling(method)(hidden, mask)


__all__ = ["POOLINGS", "register_pooling", "list_poolings", "get_pooling", "describe_poolings", "pool", "cls_pool",
           "mean_pool"]
