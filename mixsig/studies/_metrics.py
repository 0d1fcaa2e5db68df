"""Objective metrics on class probabilities, in plain numpy (called once per epoch while pruning).

Every metric takes ``y`` [n] int64 class indices and ``proba`` [n, C] float probabilities and returns a
float where higher is better.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mixsig.errors import StudyError


def _f1_per_class(y: np.ndarray, pred: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 [C] and support [C]; F1 of a class never predicted nor present is 0."""
    tp = np.bincount(y[pred == y], minlength=n_classes).astype(np.float64)
    support = np.bincount(y, minlength=n_classes).astype(np.float64)
    predicted = np.bincount(pred, minlength=n_classes).astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return f1, support


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Share of rows whose arg-max class is the label."""
    return float(np.mean(np.argmax(proba, axis=1) == y))


def macro_f1(y: np.ndarray, proba: np.ndarray) -> float:
    """Unweighted mean of the per-class F1 over the classes present in ``y`` or predicted."""
    n_classes = proba.shape[1]
    pred = np.argmax(proba, axis=1)
    f1, support = _f1_per_class(y, pred, n_classes)
    seen = (support > 0) | (np.bincount(pred, minlength=n_classes) > 0)
    return float(f1[seen].mean()) if seen.any() else 0.0


def weighted_f1(y: np.ndarray, proba: np.ndarray) -> float:
    """Per-class F1 weighted by the class support in ``y``."""
    f1, support = _f1_per_class(y, np.argmax(proba, axis=1), proba.shape[1])
    return float((f1 * support).sum() / support.sum()) if support.sum() else 0.0


def auroc(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC: binary on the positive class' probability, else one-vs-rest macro average."""
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=np.arange(proba.shape[1])))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "macro_f1": macro_f1,
    "weighted_f1": weighted_f1,
    "accuracy": accuracy,
    "auroc": auroc,
}


def get_metric(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The metric function registered as ``name``; :class:`StudyError` listing the valid ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise StudyError(
            f"The 'metric' parameter of a study must be one of {sorted(METRICS)}. Got {name!r} instead."
        ) from None
