"""Split metrics recorded in a run's attrs: accuracy, macro-F1, weighted-F1, AUROC (names as in
:mod:`mixsig.analysis`), per seed and as mean ± std over seeds."""

from __future__ import annotations

import math

import numpy as np

METRICS = ("accuracy", "macro_f1", "weighted_f1", "auroc")


def point_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """``y: [n]`` int class indices, ``probs: [n, C]`` → the four metrics (AUROC NaN when undefined).

    Macro-F1 averages over every class (a class with no true and no predicted row counts as 0);
    AUROC is the score of class 1 for two classes, else the mean one-vs-rest AUROC over classes
    that have both positive and negative rows.
    """
    from sklearn.metrics import f1_score, roc_auc_score

    C = probs.shape[1]
    pred = probs.argmax(axis=1)
    labels = list(range(C))
    out = {
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y, pred, labels=labels, average="weighted", zero_division=0)),
    }
    aucs = []
    for c in ([1] if C == 2 else labels):
        pos = y == c
        if pos.any() and (~pos).any():
            aucs.append(roc_auc_score(pos, probs[:, c]))
    out["auroc"] = float(np.mean(aucs)) if aucs else math.nan
    return out


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, dict]:
    """``{metric: {"mean", "std", "per_seed"}}``; std uses ddof=1 (None for one seed); NaN → None."""
    out = {}
    for m in METRICS:
        vals = np.array([p[m] for p in per_seed], dtype=np.float64)
        finite = vals[np.isfinite(vals)]
        out[m] = {
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else None,
            "per_seed": [float(v) if np.isfinite(v) else None for v in vals],
        }
    return out
