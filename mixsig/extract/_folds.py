"""Which fine-tuned model sees which rows: the train and val rows, out-of-fold models for train rows."""

from __future__ import annotations

import numpy as np

from mixsig.errors import ExtractionError


def plan_models(s, ok: dict, config, modality: str):
    """The labelled train and val rows with inputs, the fold of each row ([N] int8, -1 = the all-train model)
    and the rows each model predicts: ``{"fold<k>": fold k's rows, ..., "all": every other row}``."""
    n, label = len(s), s.label
    train_rows = np.array([r for r in s.rows("train") if r in ok and label[r] >= 0], np.int64)
    val_rows = (np.array([r for r in s.rows("val") if r in ok and label[r] >= 0], np.int64)
                if "val" in set(s.split) else np.zeros(0, np.int64))
    if len(train_rows) < 2:
        raise ExtractionError(f"finetune needs labelled train rows with {modality} input; found {len(train_rows)}")
    fold = np.full(n, -1, np.int8)
    models_rows: dict[str, np.ndarray] = {}
    if config.folds >= 2:
        f = _folds(train_rows, label, s.group, config.folds, config.seed)
        fold[train_rows] = f
        for k in range(config.folds):
            models_rows[f"fold{k}"] = train_rows[f == k]
    models_rows["all"] = np.array([r for r in range(n) if fold[r] < 0], np.int64)
    return train_rows, val_rows, fold, models_rows


def _folds(train_rows: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index [len(train_rows)] (stratified by label; grouped by ``group`` when groups are given)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = labels[train_rows]
    g = groups[train_rows]
    if (g != "").all() and len(set(g.tolist())) >= k:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(train_rows, y, g)
    else:
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(train_rows, y)
    fold = np.full(len(train_rows), -1, np.int8)
    for i, (_, held) in enumerate(splits):
        fold[held] = i
    return fold
