"""Fusion heads behind one interface (see :class:`Head`), a registry, and ``train_run``.

Heads: ``gated`` (the paper's gated-attention fusion head), ``concat``, ``late``, ``logreg``,
``lightgbm``. Importing this package is cheap: names are looked up on first use (PEP 562), and the
registry knows the built-in heads without importing them, so listing heads imports neither numpy nor torch.
Heavy libraries (torch, lightgbm, scikit-learn) are imported only when a head is fitted or loaded.

>>> from mixsig.heads import list_heads
>>> list_heads()
['concat', 'gated', 'late', 'lightgbm', 'logreg']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixsig._lazy import lazy_exports

#: public name -> the module defining it
_EXPORTS = {
    "FitInputs": "_base", "Head": "_base",
    "HEADS": "_registry", "get_head": "_registry", "list_heads": "_registry", "load_head": "_registry",
    "register_head": "_registry",
    "ConcatHead": "_torch", "GatedConfig": "_torch", "GatedFusionHead": "_torch", "LateFusionHead": "_torch",
    "Schedule": "_torch", "TorchConfig": "_torch", "resolve_schedule": "_torch",
    "LightGBMConfig": "_lightgbm", "LightGBMData": "_lightgbm", "LightGBMHead": "_lightgbm",
    "LogRegConfig": "_logreg", "LogRegHead": "_logreg",
    "modality_subsets": "_runs", "parse_seeds": "_runs", "train_run": "_runs",
    "missing_method": "_missing", "missing_modality_observer": "_missing", "missing_sets": "_missing",
    "predict_missing": "_missing",
    "SklearnHead": "_sklearn",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from mixsig.heads._base import FitInputs, Head
    from mixsig.heads._lightgbm import LightGBMConfig, LightGBMData, LightGBMHead
    from mixsig.heads._logreg import LogRegConfig, LogRegHead
    from mixsig.heads._missing import missing_method, missing_modality_observer, missing_sets, predict_missing
    from mixsig.heads._registry import HEADS, get_head, list_heads, load_head, register_head
    from mixsig.heads._runs import modality_subsets, parse_seeds, train_run
    from mixsig.heads._sklearn import SklearnHead
    from mixsig.heads._torch import (ConcatHead, GatedConfig, GatedFusionHead, LateFusionHead, Schedule, TorchConfig,
                                     resolve_schedule)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
