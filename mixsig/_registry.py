"""One registry type for everything mixsig looks up by name: heads, poolings, input adapters (modalities),
study fitters and search spaces.

A :class:`Registry` maps names to objects (classes, functions, specs)::

    POOLINGS = Registry("pooling", error=UsageError, hint="register one with mixsig.extract.register_pooling")

    @POOLINGS.register("max")          # decorator form; POOLINGS.register("max", fn) registers directly
    def max_pool(hidden, mask): ...

    POOLINGS.get("max")                # the object; an unknown name raises ``error`` listing the valid names
    POOLINGS.names()                   # sorted names (``list()`` is the same), e.g. for argparse ``choices``

A name is registered once: registering another object under a taken name raises ``error`` naming the entry
that holds it (registering the same object again is a no-op, so re-importing a module is harmless).

Lazy entries keep name lists cheap: ``register_lazy("gated", "mixsig.heads._torch:GatedFusionHead")`` makes
``"gated"`` known (``names()``, ``in``) without importing torch or numpy; ``get`` imports the module on first
use. When that module registers the same object under the name itself (a ``@register`` decorator), the lazy
entry is simply resolved. This module imports nothing beyond the standard library and :mod:`mixsig.errors`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar, overload

from mixsig.errors import MixsigError, UsageError, did_you_mean

T = TypeVar("T")


class _Lazy:
    """An entry not imported yet: ``"package.module:attr"``."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


def _describe(obj: Any) -> str:
    if isinstance(obj, _Lazy):
        return obj.target
    module = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None)
    return f"{module}:{qual}" if module and qual else repr(obj)


class Registry(Generic[T]):
    """Names -> objects of one ``kind`` ("head", "pooling", ...).

    ``error``: the exception class raised for unknown and duplicate names (a :class:`~mixsig.errors.MixsigError`
    subclass, so the CLI prints it as one line with its exit code). ``plural``: how messages name several
    entries (default ``kind + "s"``). ``hint``: appended to the unknown-name message (how to add one).
    ``on_register(name, obj)``: called when an object is stored (e.g. to set ``cls.name``); it may return a
    replacement object.
    """

    def __init__(self, kind: str, *, error: type[MixsigError] = UsageError, plural: str | None = None,
                 hint: str = "", on_register: Callable[[str, Any], Any] | None = None) -> None:
        self.kind = kind
        self.plural = plural or kind + "s"
        self.error = error
        self.hint = hint
        self._on_register = on_register
        self._entries: dict[str, Any] = {}

    # -- registering -------------------------------------------------------------------------------------------
    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: Any = None) -> Any:
        """Register ``obj`` under ``name`` and return it; without ``obj``, a decorator that does so."""
        if obj is None:
            return lambda o: self.register(name, o)
        if not isinstance(name, str) or not name:
            raise self.error(f"A {self.kind} name must be a non-empty string; got {name!r}.")
        held = self._entries.get(name)
        if held is not None and held is not obj:
            if not (isinstance(held, _Lazy) and held.target == _describe(obj)):
                raise self.error(f"A {self.kind} named {name!r} is already registered ({_describe(held)}); "
                                 f"pick another name or unregister it first.")
        if self._on_register is not None:
            obj = self._on_register(name, obj) or obj
        self._entries[name] = obj
        return obj

    def register_lazy(self, name: str, target: str) -> None:
        """Make ``name`` known now and import ``target`` (``"package.module:attr"``) on the first :meth:`get`."""
        if ":" not in target:
            raise ValueError(f"lazy target must look like 'package.module:attr'; got {target!r}")
        held = self._entries.get(name)
        if held is not None and _describe(held) != target:
            raise self.error(f"A {self.kind} named {name!r} is already registered ({_describe(held)}); "
                             f"pick another name or unregister it first.")
        if held is None:
            self._entries[name] = _Lazy(target)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. at the end of a test that registered it); unknown names raise ``error``."""
        self.get(name)
        del self._entries[name]

    # -- looking up --------------------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as ``name``; ``error`` listing the valid names otherwise."""
        try:
            obj = self._entries[name]
        except (KeyError, TypeError):
            hint = f" ({self.hint})" if self.hint else ""
            raise self.error(f"Unknown {self.kind} {name!r}.{did_you_mean(name, self.names())} Valid {self.plural}: "
                             f"{', '.join(self.names())}{hint}."
                             ) from None
        if isinstance(obj, _Lazy):
            loaded = obj.load()  # importing the module may register it (decorator) under this very name
            obj = self._entries[name]
            if isinstance(obj, _Lazy):
                obj = self._entries[name] = (self._on_register(name, loaded) or loaded) if self._on_register \
                    else loaded
        return obj

    def names(self) -> list[str]:
        """Every registered name, sorted (lazy entries included, nothing is imported)."""
        return sorted(self._entries)

    list = names

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


__all__ = ["Registry"]
