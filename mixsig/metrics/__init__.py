"""The one definition of mixsig's classification metrics, used by heads, studies, fine-tuning and the report.

Definitions (``y``: ``[n]`` int class indices; ``probs``: ``[n, C]`` class probabilities, ``C`` = every class of
the store's label set; ``pred``: ``[n]`` predicted classes, by default ``probs.argmax(1)``):

- ``accuracy``: share of rows with ``pred == y``.
- ``macro_f1``: unweighted mean of the per-class F1 over **all C classes**; a class with no true and no
  predicted row has F1 0 (scikit-learn's ``f1_score(labels=range(C), average="macro", zero_division=0)``).
- ``weighted_f1``: per-class F1 weighted by the class' support in ``y`` (scikit-learn's ``average="weighted"``
  with the same ``labels`` and ``zero_division``).
- ``auroc``: two classes: AUROC of the class-1 probability; more: the mean of the one-vs-rest AUROCs of the
  classes present in ``y`` with at least one negative row (scikit-learn's ``multi_class="ovr"`` where every class
  is present; it refuses absent classes, this skips them). Ties count half. NaN when ``y`` holds one class.

A model has **collapsed** on a split (:func:`collapse`) when ``y`` holds two or more classes and either it predicts
one class only, or its macro-F1 is no better than the expected macro-F1 of predictions with the same class shares
drawn independently of the labels (:func:`chance_macro_f1`).

Calibration (top-label ECE with equal-mass bins, reliability bins, vote cross-entropy): definitions in
:mod:`mixsig.metrics._calibration`.

``METRICS`` (the names) imports without numpy, for ``--help``; the functions load numpy on first use.
"""

from __future__ import annotations

METRICS = ("accuracy", "macro_f1", "weighted_f1", "auroc")

_LAZY = ("AUROC_BINS", "aggregate", "auroc", "auroc_bootstrap", "bootstrap_metrics", "chance_macro_f1", "collapse",
         "confusion", "get_metric", "point_metrics", "score", "scores_from_confusion")

_CALIBRATION = ("ECE_BINS", "calibration_bins", "ece_bootstrap", "expected_calibration_error", "vote_cross_entropy")

__all__ = ["METRICS", *_LAZY, *_CALIBRATION]


def __getattr__(name: str):
    if name in _LAZY:
        from mixsig.metrics import _core

        return getattr(_core, name)
    if name in _CALIBRATION:
        from mixsig.metrics import _calibration

        return getattr(_calibration, name)
    raise AttributeError(f"module 'mixsig.metrics' has no attribute {name!r}")
