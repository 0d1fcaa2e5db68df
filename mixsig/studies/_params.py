"""Search parameters declared once: each spec makes its Optuna ``suggest_*`` call and describes its range.

::

    Float("max_lr", 1e-3, 3e-2, log=True, note="one-cycle peak")
    Int("steps", 100, 800, log=True)
    Categorical("hidden", (32, 64, 128))

``spec.suggest(trial, prefix)`` asks ``trial`` for ``prefix + spec.name`` (the Optuna parameter name, e.g.
``gated.max_lr``) and returns the value; ``spec.describe()`` is the documented range (``max_lr [0.001, 0.03]
log (one-cycle peak)``, ``steps 100..800 log``, ``hidden {32, 64, 128}``) that ``mixsig study spaces``,
``mixsig study run --help`` and :func:`mixsig.studies.describe_spaces` show, so the docs cannot drift from the
search. Stdlib only (no optuna import: the trial is duck-typed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pragma: no cover
    import optuna


def format_number(v: Any) -> str:
    """A short, exact-enough text of a bound: ``0.001``, ``1e-6``, ``10``, ``0.5``."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    text = f"{v:g}"
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


def _suffix(log: bool, note: str) -> str:
    return (" log" if log else "") + (f" ({note})" if note else "")


class _Spec:
    """Immutable value object over ``__slots__`` (plain classes, not dataclasses: building ``mixsig --help``
    imports this module, and ``dataclasses`` alone costs more than the rest of it)."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **values: Any) -> None:
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def _values(self) -> tuple:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(other, k) == getattr(self, k) for k in self.__slots__)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def describe(self) -> str:
        """``name range``: what ``mixsig study spaces`` shows for this parameter."""
        return f"{self.name} {self.range_text()}"  # type: ignore[attr-defined]


class Float(_Spec):
    """A float searched in ``[low, high]`` (log-uniform with ``log``); ``note`` is added to the description."""

    __slots__ = ("name", "low", "high", "log", "note")

    def __init__(self, name: str, low: float, high: float, log: bool = False, note: str = "") -> None:
        self._set(name=name, low=low, high=high, log=bool(log), note=note)

    def suggest(self, trial: "optuna.Trial", prefix: str = "") -> float:
        return trial.suggest_float(prefix + self.name, self.low, self.high, log=self.log)

    def range_text(self) -> str:
        return f"[{format_number(self.low)}, {format_number(self.high)}]" + _suffix(self.log, self.note)


class Int(_Spec):
    """An integer searched in ``low..high`` (both included; log-uniform with ``log``)."""

    __slots__ = ("name", "low", "high", "log", "note")

    def __init__(self, name: str, low: int, high: int, log: bool = False, note: str = "") -> None:
        self._set(name=name, low=int(low), high=int(high), log=bool(log), note=note)

    def suggest(self, trial: "optuna.Trial", prefix: str = "") -> int:
        return trial.suggest_int(prefix + self.name, self.low, self.high, log=self.log)

    def range_text(self) -> str:
        return f"{self.low}..{self.high}" + _suffix(self.log, self.note)


class Categorical(_Spec):
    """One of ``choices`` (kept in the given order: Optuna's parameter is defined by it)."""

    __slots__ = ("name", "choices", "note")

    def __init__(self, name: str, choices, note: str = "") -> None:
        self._set(name=name, choices=tuple(choices), note=note)

    def suggest(self, trial: "optuna.Trial", prefix: str = "") -> Any:
        return trial.suggest_categorical(prefix + self.name, list(self.choices))

    def range_text(self) -> str:
        return "{" + ", ".join(format_number(c) for c in self.choices) + "}" + _suffix(False, self.note)


Param = Union[Float, Int, Categorical]

__all__ = ["Categorical", "Float", "Int", "Param", "format_number"]
