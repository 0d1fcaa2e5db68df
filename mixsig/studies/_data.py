"""The arrays a study trains on, loaded once per process; train/validation rows or group-aware CV folds.

Every key of the study is read into memory once (``store.read(key)``); a study uses only the rows done in
*every* key it may pick (so all trials score the same rows), and reports how many it left out.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from mixsig.errors import StudyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    """One train/validation split: row positions into :attr:`StudyData.rows` (``[n_train]``, ``[n_val]`` int64)."""

    train: np.ndarray
    val: np.ndarray


class StudyData:
    """Features of a study in memory, plus the folds its objective scores on.

    Attributes:
        rows: [n] int64 store rows usable by every key (done everywhere, split train or val)
        y: [n] int64 class index of each usable row
        X: {key: [n, D_key] or [n, L, D_key] float32} features of each key on ``rows``
        layered_keys: the keys holding all layers [n, L, D] (their trials also search the heads' ``layer``)
        folds: [Fold, ...] one (train -> val) fold, or K group-aware CV folds over train+val
        excluded: {key: rows of train/val left out because they are not done in that key}
        n_classes: number of classes of the store
    """

    def __init__(self, store, features: Mapping[str, tuple[str, ...]], *, cv: int | None = None, seed: int = 0):
        self.store = store
        samples = store.samples
        self.n_classes = len(samples.classes)
        train_rows = samples.rows("train")
        val_rows = samples.rows("val")
        if len(train_rows) == 0 or (len(val_rows) == 0 and not cv):
            raise StudyError(
                f"the store has {len(train_rows)} train and {len(val_rows)} val rows; a study needs both "
                "(or --cv K over train+val)"
            )
        wanted = np.union1d(train_rows, val_rows)
        usable = wanted.copy()
        full: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.excluded: dict[str, int] = {}
        for modality, keys in features.items():
            for key in keys:
                view = store.read(key, split=None)
                full[key] = (np.asarray(view.rows, np.int64), view.X)
                self.excluded[key] = int(len(np.setdiff1d(wanted, view.rows)))
                usable = np.intersect1d(usable, view.rows)
        for key, n in self.excluded.items():
            if n:
                log.warning("key %s: %d train/val rows not done; the study leaves them out", key, n)
        usable = usable[samples.label[usable] >= 0]
        self.rows = usable
        self.y = samples.label[usable].astype(np.int64)
        self.X: dict[str, np.ndarray] = {}
        self.layered_keys = frozenset(k for k, (_, X) in full.items() if X.ndim == 3)
        for key, (rows, X) in full.items():
            pos = np.searchsorted(rows, usable)
            self.X[key] = np.ascontiguousarray(X[pos], dtype=np.float32)
        split = samples.split[usable]
        if cv:
            self.folds = _group_folds(usable, self.y, samples.group[usable], samples.ids[usable], cv, seed)
        else:
            self.folds = [Fold(np.flatnonzero(split == "train"), np.flatnonzero(split == "val"))]
        for i, f in enumerate(self.folds):
            if len(f.train) == 0 or len(f.val) == 0:
                raise StudyError(f"fold {i} has {len(f.train)} train and {len(f.val)} val rows after leaving out rows not done")
            if len(np.unique(self.y[f.train])) < 2:
                raise StudyError(f"fold {i}: the training rows hold a single class; more labelled rows are needed")

    def rows_hash(self) -> str:
        """sha256 (16 hex) of the usable rows: changes when rows get done or undone in a key."""
        return hashlib.sha256(self.rows.astype("<i8").tobytes()).hexdigest()[:16]

    def inputs(self, features: Mapping[str, str], positions: np.ndarray) -> dict[str, np.ndarray]:
        """``{modality: [len(positions), D] float32}`` for a config's ``{modality: key}``."""
        return {m: self.X[k][positions] for m, k in features.items()}


def _group_folds(rows, y, group, ids, k: int, seed: int) -> list[Fold]:
    """K folds over ``rows`` that never split a group (rows without a group are their own group)."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.array([f"g:{g}" if g else f"id:{i}" for g, i in zip(group, ids)])
    n_groups = len(np.unique(groups))
    if k < 2 or k > n_groups:
        raise StudyError(f"--cv {k}: needs 2 <= K <= number of groups in train+val ({n_groups})")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [Fold(np.asarray(tr, np.int64), np.asarray(va, np.int64)) for tr, va in splitter.split(rows, y, groups)]
