"""``SklearnHead``: any registered head as a plain scikit-learn classifier on one 2-D array.

A head takes ``X = {modality: [n, D_m]}``; scikit-learn's tools (``cross_val_score``, ``GridSearchCV``,
``Pipeline``) pass one ``[n, D]`` array. ``columns`` says which columns are which modality:

* ``{"text": slice(0, 384), "audio": slice(384, 768)}`` or ``{"text": [0, 384], "audio": [384, 768]}``
  (``[start, stop]``), or ``{"text": [0, 5, 7]}`` (more than two indices: those columns);
* a list with one modality name per column (``["text"] * 384 + ["audio"] * 384``);
* ``None``: every column is one modality, ``"x"``.

The head's hyperparameters are the adapter's own (``SklearnHead(head="logreg", C=0.5)``), so
``GridSearchCV(SklearnHead(head="logreg", columns=...), {"C": [0.1, 1.0]})`` works and ``clone`` gives an
unfitted twin. Labels may be any values (``classes_`` holds them sorted; ``predict`` returns them).

>>> import numpy as np
>>> from mixsig.heads import SklearnHead
>>> X = np.r_[np.zeros((10, 4)), np.ones((10, 4))].astype("float32"); y = np.r_[[0] * 10, [1] * 10]
>>> SklearnHead(head="logreg", columns={"a": [0, 2], "b": [2, 4]}).fit(X, y).score(X, y)
1.0
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from mixsig.errors import HeadError
from mixsig.heads._registry import head_class

_OWN = ("head", "columns", "seed")


class SklearnHead(ClassifierMixin, BaseEstimator):
    """A registered head (``head``, built with ``**params``) as a scikit-learn classifier on ``[n, D]``
    arrays split into modalities by ``columns`` (see the module docstring); ``seed`` is passed to ``fit``."""

    def __init__(self, head: str = "logreg", columns: Any = None, seed: int = 0, **params: Any) -> None:
        self.head = head
        self.columns = columns
        self.seed = seed
        self._params = dict(params)
        self._check_names(params)

    # -- parameters ----------------------------------------------------------------------------------------
    def _head_fields(self) -> dict:
        return {f.name: f.default for f in dataclasses.fields(head_class(self.head).Config)}

    def _check_names(self, params: dict) -> None:
        fields = self._head_fields()
        unknown = sorted(set(params) - set(fields) - set(_OWN))
        if unknown:
            raise HeadError(f"Unknown parameter(s) {unknown} for head {self.head!r}. Valid parameters: "
                            f"{sorted(set(fields) | set(_OWN))}.")

    def get_params(self, deep: bool = True) -> dict:
        """``head``, ``columns``, ``seed`` and every hyperparameter of the head (defaults included)."""
        out = {k: getattr(self, k) for k in _OWN}
        for name, default in self._head_fields().items():
            out[name] = self._params.get(name, default)
        return out

    def set_params(self, **params: Any) -> "SklearnHead":
        """Change ``head``/``columns``/``seed`` or head hyperparameters; unknown names are refused."""
        if "head" in params:
            self.head = params.pop("head")
        self._check_names(params)
        for k in ("columns", "seed"):
            if k in params:
                setattr(self, k, params.pop(k))
        self._params.update(params)
        return self

    # -- the column -> modality split ------------------------------------------------------------------------
    def _split(self, X) -> dict[str, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise HeadError(f"SklearnHead takes a 2-D [n, D] array; got shape {X.shape}.")
        return {m: X[:, idx] for m, idx in _column_index(self.columns, X.shape[1]).items()}

    # -- estimator -----------------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None) -> "SklearnHead":
        """Fit the head on ``X [n, D]`` and labels ``y [n]`` (any values); returns ``self``."""
        y = np.asarray(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.n_features_in_ = int(np.shape(X)[1]) if np.ndim(X) == 2 else 0
        head = head_class(self.head)(**self._params)
        self.head_ = head.fit(self._split(X), codes.astype(np.int64), sample_weight=sample_weight,
                              seed=int(self.seed), n_classes=len(self.classes_))
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``[n, n_classes]`` probabilities, columns in ``classes_`` order."""
        if not hasattr(self, "head_"):
            raise HeadError("This SklearnHead is not fitted yet; call fit(X, y) first.")
        return self.head_.predict_proba(self._split(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row (values of ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


def _column_index(columns, width: int) -> dict[str, Any]:
    """``{modality: slice or index array}`` for a ``columns`` spec on an array of ``width`` columns."""
    if columns is None:
        return {"x": slice(0, width)}
    if isinstance(columns, dict):
        out = {}
        for m, spec in columns.items():
            if isinstance(spec, slice):
                idx = np.arange(width)[spec]
            elif isinstance(spec, (list, tuple, np.ndarray)) and len(spec) == 2 and not isinstance(spec[0], str):
                idx = np.arange(int(spec[0]), int(spec[1]))
            else:
                idx = np.asarray(spec, dtype=np.int64)
            if idx.size == 0 or idx.min() < 0 or idx.max() >= width:
                raise HeadError(f"columns[{m!r}] = {spec!r} selects no columns or columns outside 0..{width - 1}; "
                                f"the array has {width} columns.")
            out[str(m)] = idx
        return out
    names = list(columns)
    if len(names) != width:
        raise HeadError(f"columns names {len(names)} columns but the array has {width}; give one modality name "
                        f"per column, or a dict {{modality: [start, stop]}}.")
    order = list(dict.fromkeys(names))
    arr = np.asarray(names, dtype=object)
    return {str(m): np.flatnonzero(arr == m) for m in order}
