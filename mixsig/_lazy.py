"""Packages whose public names are imported on first use (PEP 562), so importing the package costs nothing.

In the package's ``__init__``::

    _EXPORTS = {"train_run": "_runs", ...}          # public name -> the module of the package defining it
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

A module name that does not start with ``_`` is absolute (a name the package re-exports from another package).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str],
                 namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: a name of ``exports`` is imported from its
    module when first asked for, then kept in ``namespace`` (the package's ``globals()``); any other name raises
    :class:`AttributeError`."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        where = f"{package}.{module}" if module.startswith("_") else module
        value = getattr(importlib.import_module(where), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
