"""Classification metrics (accuracy, macro-F1, weighted-F1, AUROC) with seeded bootstrap intervals.

Accuracy and the F1 scores depend on the data only through the confusion matrix, so their bootstrap
draws confusion matrices as ``Multinomial(n, cells / n)`` — exactly the distribution that resampling
the samples gives, at ``O(B x C^2)`` cost. AUROC is resampled from sample indices, with the number of
replicates capped for large ``n`` (the cap is recorded in the result).
"""

from __future__ import annotations

import numpy as np

from mixsig.analysis._stats import resample_counts

METRICS = ("accuracy", "macro_f1", "weighted_f1", "auroc")
#: AUROC bootstrap: at most this many sample draws in total (replicates x n).
_AUROC_BOOT_BUDGET = 20_000_000
_AUROC_MIN_BOOT = 100


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``[C, C]`` int64 confusion matrix, rows = true class, columns = predicted class."""
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and weighted-F1 from confusion matrices ``[..., C, C]``.

    F1 of a class with no true and no predicted samples counts as 0 in the macro mean (as scikit-learn
    with ``zero_division=0`` and ``labels`` = every class)."""
    cm = cm.astype(np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    n = support.sum(axis=-1)
    denom = support + predicted
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)
        acc = tp.sum(axis=-1) / n
        weighted = (f1 * support).sum(axis=-1) / n
    return {"accuracy": acc, "macro_f1": f1.mean(axis=-1), "weighted_f1": weighted}


def _auc_sorted(pos_w: np.ndarray, neg_w: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Weighted AUC from weights in ascending-score order; ``starts`` = first index of each tie group.

    pos_w, neg_w: ``[B, n]``. Returns ``[B]``."""
    gpos = np.add.reduceat(pos_w, starts, axis=1)
    gneg = np.add.reduceat(neg_w, starts, axis=1)
    below = np.cumsum(gneg, axis=1) - gneg
    num = (gpos * (below + 0.5 * gneg)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / (gpos.sum(axis=1) * gneg.sum(axis=1))


def auroc(y: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """AUROC: binary = score of class 1; multi-class = macro mean of one-vs-rest AUROCs over the classes
    present in ``y`` with at least one negative (as scikit-learn's ``multi_class="ovr"``).

    y: ``[n]`` int; probs: ``[n, C]``; weights: optional ``[B, n]`` bootstrap counts.
    Returns a float (no weights) or ``[B]`` (weights). NaN when fewer than two classes are present.
    """
    n, n_classes = probs.shape
    w = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64)
    classes = [1] if n_classes == 2 else list(range(n_classes))
    present = [c for c in classes if 0 < int((y == c).sum()) < n]
    if not present:
        out = np.full(w.shape[0], np.nan)
        return float(out[0]) if weights is None else out
    aucs = []
    for c in present:
        score = probs[:, c]
        order = np.argsort(score, kind="stable")
        s = score[order]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        pos = (y[order] == c).astype(np.float64)
        wo = w[:, order]
        aucs.append(_auc_sorted(wo * pos, wo * (1.0 - pos), starts))
    out = np.nanmean(np.stack(aucs), axis=0) if len(aucs) > 1 else aucs[0]
    return float(out[0]) if weights is None else out


def point_metrics(y: np.ndarray, pred: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1, weighted-F1 and AUROC of one set of predictions.

    y, pred: ``[n]`` int; probs: ``[n, C]`` float."""
    n_classes = probs.shape[1]
    scores = _scores_from_confusion(confusion(y, pred, n_classes))
    out = {k: float(v) for k, v in scores.items()}
    out["auroc"] = float(auroc(y, probs))
    return out


def bootstrap_metrics(
    y: np.ndarray, pred: np.ndarray, probs: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict]:
    """Point value and percentile bootstrap interval over samples of every metric.

    Returns ``{metric: {"value", "ci_low", "ci_high", "n_boot"}}``."""
    n_classes = probs.shape[1]
    point = point_metrics(y, pred, probs)
    rng = np.random.default_rng(seed)
    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    out: dict[str, dict] = {}
    n = len(y)
    if n_boot > 0 and n > 1:
        cm = confusion(y, pred, n_classes).ravel()
        draws = rng.multinomial(n, cm / n, size=n_boot).reshape(n_boot, n_classes, n_classes)
        boot = _scores_from_confusion(draws)
    else:
        boot = {}
    for name in ("accuracy", "macro_f1", "weighted_f1"):
        lo = hi = float("nan")
        if name in boot:
            lo, hi = (float(v) for v in np.nanquantile(boot[name], q))
        out[name] = {"value": point[name], "ci_low": lo, "ci_high": hi, "n_boot": int(n_boot)}
    b_auc = min(n_boot, max(_AUROC_MIN_BOOT, _AUROC_BOOT_BUDGET // max(n, 1)))
    lo = hi = float("nan")
    if b_auc > 0 and n > 1 and np.isfinite(point["auroc"]):
        reps = []
        step = max(1, 4_000_000 // n)
        for b0 in range(0, b_auc, step):
            w = resample_counts(np.ones(n, dtype=np.int64), min(step, b_auc - b0), rng)
            reps.append(auroc(y, probs, w))
        rep = np.concatenate(reps)
        rep = rep[np.isfinite(rep)]
        if rep.size:
            lo, hi = (float(v) for v in np.quantile(rep, q))
    out["auroc"] = {"value": point["auroc"], "ci_low": lo, "ci_high": hi, "n_boot": int(b_auc)}
    return out
