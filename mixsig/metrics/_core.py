"""Classification metrics (accuracy, macro-F1, weighted-F1, AUROC; definitions in :mod:`mixsig.metrics`), their
aggregation over seeds, the collapse check, and seeded bootstrap intervals.

Accuracy and the F1 scores depend on the data only through the confusion matrix, so their bootstrap
draws confusion matrices as ``Multinomial(n, cells / n)`` — exactly the distribution that resampling
the samples gives, at ``O(B x C^2)`` cost. AUROC is resampled from sample indices, with the number of
replicates drawn over (label, score-bin) cells: see :func:`auroc_bootstrap`.
"""

from __future__ import annotations


import functools

import numpy as np

from mixsig.metrics import METRICS
#: AUROC bootstrap: at most this many sample draws in total (replicates x n).
_AUROC_BOOT_BUDGET = 20_000_000
_AUROC_MIN_BOOT = 100
#: AUROC bootstrap: scores are binned into at most this many bins per class (exact below it).
AUROC_BINS = 256


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


#: Public name (``mixsig.metrics.scores_from_confusion``): the report's paired bootstrap scores resampled
#: confusion matrices with the same definitions.
scores_from_confusion = _scores_from_confusion


def _binary_auc(pos: np.ndarray, score: np.ndarray) -> float:
    """Exact AUROC (ties count half) of one score: ``[n]`` bool positives, ``[n]`` float scores."""
    order = np.argsort(score)
    s = score[order]
    p = pos[order]
    m = int(p.sum())
    n = p.size
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    gpos = np.add.reduceat(p.astype(np.float64), starts)
    gneg = np.diff(np.r_[starts, n]) - gpos
    below = np.cumsum(gneg) - gneg
    return float((gpos * (below + 0.5 * gneg)).sum() / (m * (n - m)))


def auroc(y: np.ndarray, probs: np.ndarray) -> float:
    """AUROC: binary = score of class 1; multi-class = macro mean of one-vs-rest AUROCs over the classes
    present in ``y`` with at least one negative (as scikit-learn's ``multi_class="ovr"``, which needs
    every class present). Exact, ties count half (the Mann–Whitney U statistic). NaN when fewer than
    two classes are present.

    y: ``[n]`` int; probs: ``[n, C]``."""
    n, n_classes = probs.shape
    classes = [1] if n_classes == 2 else list(range(n_classes))
    aucs = []
    for c in classes:
        pos = y == c
        m = int(pos.sum())
        if m == 0 or m == n:
            continue
        aucs.append(_binary_auc(pos, probs[:, c]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _pred(probs: np.ndarray, pred: np.ndarray | None) -> np.ndarray:
    return np.asarray(probs).argmax(axis=1) if pred is None else np.asarray(pred)


def point_metrics(y: np.ndarray, probs: np.ndarray, pred: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, macro-F1, weighted-F1 and AUROC of one set of predictions.

    y: ``[n]`` int; probs: ``[n, C]`` float; pred: ``[n]`` int (default ``probs.argmax(1)``)."""
    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1]
    scores = _scores_from_confusion(confusion(y, _pred(probs, pred).astype(np.int64), n_classes))
    out = {k: float(v) for k, v in scores.items()}
    out["auroc"] = float(auroc(y, probs))
    return out


def score(name: str, y: np.ndarray, probs: np.ndarray) -> float:
    """One metric of :data:`METRICS` by name (higher is better); ``ValueError`` naming the valid ones otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    if name == "auroc":
        return float(auroc(np.asarray(y, dtype=np.int64), np.asarray(probs, dtype=np.float64)))
    y = np.asarray(y, dtype=np.int64)
    cm = confusion(y, np.asarray(probs).argmax(axis=1).astype(np.int64), np.asarray(probs).shape[1])
    return float(_scores_from_confusion(cm)[name])


def get_metric(name: str):
    """``fn(y, probs) -> float`` computing metric ``name`` (for objectives); :class:`UsageError` listing the valid
    names otherwise."""
    if name not in METRICS:
        from mixsig.errors import UsageError

        raise UsageError(f"The metric must be one of {sorted(METRICS)}. Got {name!r} instead.")
    return functools.partial(score, name)


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, dict]:
    """``{metric: {"mean", "std", "per_seed"}}`` over seeds; std uses ddof=1 (None for one seed); NaN → None."""
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


def chance_macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Expected macro-F1 of predictions with ``pred``'s class shares drawn independently of ``y``.

    With true shares ``p_c`` and predicted shares ``q_c`` the expected true positives of class c are
    ``n p_c q_c``, so its F1 is ``2 p_c q_c / (p_c + q_c)`` (0 where both are 0), averaged over all classes."""
    n = max(len(y), 1)
    p = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes) / n
    q = np.bincount(np.asarray(pred, dtype=np.int64), minlength=n_classes) / n
    den = p + q
    f1 = np.divide(2 * p * q, den, out=np.zeros(n_classes), where=den > 0)
    return float(f1.mean())


def collapse(y: np.ndarray, probs: np.ndarray, pred: np.ndarray | None = None) -> str | None:
    """Why a model collapsed on a split (see :mod:`mixsig.metrics`), or None when it did not.

    Never a collapse when ``y`` holds fewer than two classes or no rows (nothing to tell apart)."""
    y = np.asarray(y, dtype=np.int64)
    probs = np.asarray(probs)
    if y.size == 0 or np.unique(y).size < 2:
        return None
    n_classes = probs.shape[1]
    pr = _pred(probs, pred).astype(np.int64)
    classes = np.unique(pr)
    if classes.size == 1:
        return f"predicts one class ({int(classes[0])}) for all {y.size} rows"
    mf1 = float(_scores_from_confusion(confusion(y, pr, n_classes))["macro_f1"])
    chance = chance_macro_f1(y, pr, n_classes)
    if mf1 <= chance + 1e-12:
        return f"macro-F1 {mf1:.3f} is no better than chance {chance:.3f} (same class shares, independent of labels)"
    return None


def _binary_auc_cells(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC from counts per score bin (ascending), ``[..., K]`` -> ``[...]``; pairs in one bin count half."""
    below = np.cumsum(neg, axis=-1) - neg
    with np.errstate(divide="ignore", invalid="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=-1) / (pos.sum(axis=-1) * neg.sum(axis=-1))


def _score_bins(score: np.ndarray, n_bins: int) -> tuple[np.ndarray, int]:
    """Bin index per sample, ``[n]`` int64, and the number of bins. Exact (one bin per distinct score)
    when there are at most ``n_bins`` distinct scores, else quantile bins (ties share a bin)."""
    s = np.sort(score)
    distinct = s[np.r_[True, s[1:] != s[:-1]]]
    if distinct.size <= n_bins:
        return np.searchsorted(distinct, score).astype(np.int64), int(distinct.size)
    edges = np.unique(s[(np.arange(1, n_bins) * s.size) // n_bins])
    return np.searchsorted(edges, score, side="right").astype(np.int64), int(edges.size + 1)


def auroc_bootstrap(y: np.ndarray, probs: np.ndarray, *, n_boot: int, rng: np.random.Generator,
                    n_bins: int = AUROC_BINS) -> tuple[np.ndarray, np.ndarray, str]:
    """Bootstrap replicates of AUROC on scores binned into at most ``n_bins`` bins per class.

    Returns ``(replicates [B], value on the binned scores, method)``. Binary: the binned statistic
    depends on the data only through the (bin, label) cell counts, so resamples are drawn exactly as
    multinomial cell counts (``O(B x bins)``). Multi-class (macro one-vs-rest): sample indices are
    resampled (at most ``_AUROC_BOOT_BUDGET / n`` replicates) and counted per cell.
    """
    n, n_classes = probs.shape
    classes = [1] if n_classes == 2 else [c for c in range(n_classes) if 0 < int((y == c).sum()) < n]
    cells = []
    for c in classes:
        b, k = _score_bins(probs[:, c], n_bins)
        cells.append((c, (y == c).astype(np.int64) * k + b, k))
    if n_classes == 2:
        c, cell, k = cells[0]
        counts = np.bincount(cell, minlength=2 * k)
        binned = float(_binary_auc_cells(counts[k:].astype(float), counts[:k].astype(float)))
        draws = rng.multinomial(n, counts / n, size=n_boot).astype(np.float64)
        reps = _binary_auc_cells(draws[:, k:], draws[:, :k])
        return reps, binned, f"multinomial over (label, score bin) cells, <= {n_bins} bins"
    b_auc = min(n_boot, max(_AUROC_MIN_BOOT, _AUROC_BOOT_BUDGET // max(n, 1)))
    point = np.nanmean([_binary_auc_cells(*(lambda cnt, k: (cnt[k:], cnt[:k]))(
        np.bincount(cell, minlength=2 * k).astype(float), k)) for _, cell, k in cells])
    reps = np.empty(b_auc)
    for i in range(b_auc):
        idx = rng.integers(0, n, size=n)
        vals = []
        for _, cell, k in cells:
            cnt = np.bincount(cell[idx], minlength=2 * k).astype(float)
            vals.append(_binary_auc_cells(cnt[k:], cnt[:k]))
        reps[i] = np.nanmean(vals)
    return reps, float(point), (f"resampled sample indices ({b_auc} replicates), one-vs-rest cells with "
                                f"<= {n_bins} score bins per class")


def bootstrap_metrics(
    y: np.ndarray, probs: np.ndarray, pred: np.ndarray | None = None, *, n_boot: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict]:
    """Point value and percentile bootstrap interval over samples of every metric.

    AUROC's interval is the exact AUROC shifted by the bootstrap quantiles of (replicate - original)
    of AUROC computed on binned scores (see :func:`auroc_bootstrap`); with at most ``AUROC_BINS``
    distinct scores it is the plain percentile interval.
    Returns ``{metric: {"value", "ci_low", "ci_high", "n_boot"}}`` (AUROC also has ``"method"``)."""
    n_classes = probs.shape[1]
    pred = _pred(probs, pred)
    point = point_metrics(y, probs, pred)
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
    lo = hi = float("nan")
    method, b_used = None, 0
    if n_boot > 0 and n > 1 and np.isfinite(point["auroc"]):
        reps, binned, method = auroc_bootstrap(y, probs, n_boot=n_boot, rng=rng)
        reps = reps[np.isfinite(reps)]
        b_used = int(reps.size)
        if reps.size:
            lo, hi = (float(point["auroc"] + v - binned) for v in np.quantile(reps, q))
    out["auroc"] = {"value": point["auroc"], "ci_low": lo, "ci_high": hi, "n_boot": b_used, "method": method}
    return out
