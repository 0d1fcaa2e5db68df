"""Fusion heads behind one interface (see :class:`Head`), a registry, and ``train_run``.

Heads: ``gated`` (the paper's gated-attention fusion head), ``concat``, ``late``, ``logreg``,
``lightgbm``. Heavy libraries (torch, lightgbm, scikit-learn) are imported only when a head is
fitted or loaded.

>>> from mixsig.heads import list_heads
>>> list_heads()
['concat', 'gated', 'late', 'lightgbm', 'logreg']
"""

from mixsig.heads._base import Head
from mixsig.heads._registry import get_head, list_heads, register_head
from mixsig.heads._torch import ConcatHead, GatedConfig, GatedFusionHead, LateFusionHead, TorchConfig
from mixsig.heads._lightgbm import LightGBMConfig, LightGBMData, LightGBMHead
from mixsig.heads._logreg import LogRegConfig, LogRegHead
from mixsig.heads._runs import modality_subsets, train_run

__all__ = [
    "ConcatHead", "GatedConfig", "GatedFusionHead", "Head", "LateFusionHead", "LightGBMConfig", "LightGBMData",
    "LightGBMHead", "LogRegConfig", "LogRegHead", "TorchConfig", "get_head", "list_heads", "modality_subsets",
    "register_head", "train_run",
]
