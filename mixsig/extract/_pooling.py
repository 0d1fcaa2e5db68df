"""Pooling of token/frame sequences into one vector per row, behind a registry.

Every pooling takes ``hidden`` [B, T, D] and a boolean ``mask`` [B, T] (True = a real token/frame, padding False)
and returns [B, D]. Padding never changes a row's numbers: ``cls`` takes position 0, ``mean`` averages the masked
positions only.
"""

from __future__ import annotations

from typing import Callable

_POOLINGS: dict[str, Callable] = {}


def register_pooling(name: str):
    def deco(fn):
        _POOLINGS[name] = fn
        return fn
    return deco


def list_poolings() -> list[str]:
    return sorted(_POOLINGS)


def get_pooling(name: str) -> Callable:
    try:
        return _POOLINGS[name]
    except KeyError:
        from mixsig.errors import UsageError

        raise UsageError(f"The 'pooling' parameter of extract must be one of {set(list_poolings())}. "
                         f"Got {name!r} instead.") from None


@register_pooling("cls")
def cls_pool(hidden, mask):
    """The first token/frame (the ``[CLS]``/``<s>`` token for text encoders): [B, T, D] -> [B, D]."""
    return hidden[:, 0]


@register_pooling("mean")
def mean_pool(hidden, mask):
    """Mean over the positions where ``mask`` is True: [B, T, D] -> [B, D]."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


def pool(hidden, mask, method: str):
    """Apply the pooling ``method`` (see :func:`list_poolings`) to ``hidden`` [B, T, D] with ``mask`` [B, T]."""
    return get_pooling(method)(hidden, mask)


__all__ = ["register_pooling", "list_poolings", "get_pooling", "pool", "cls_pool", "mean_pool"]
