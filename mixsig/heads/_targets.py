"""Training targets shared by every head: one weighted target matrix ``T [n, C]``.

``T[i, c] = sample_weight[i] * class_weight[c] * q[i, c]`` where ``q`` is the one-hot gold label
or, with soft labels, the annotators' vote distribution. Every head trains on ``T``:

* torch heads minimise ``-sum(T * log p) / sum(T)`` per batch — with unit weights and hard labels
  this is the ordinary cross-entropy, with class weights it equals ``CrossEntropyLoss(weight=...)``;
* LightGBM and logreg cannot take a distribution as a label, so :func:`expand_targets` turns ``T``
  into duplicated rows: row ``i`` appears once per class ``c`` with ``T[i, c] > 0``, labelled ``c``
  and weighted ``T[i, c]`` (sample duplication weighted by vote share). With hard labels this is the
  original rows in their original order, weighted by sample and class weight.

``class_weight="balanced"`` gives class ``c`` the weight ``n / (C * n_c)`` with ``n_c`` the (soft)
count of class ``c`` in the training rows (scikit-learn's rule); a class without rows gets 0.
A dict maps class index (int, or its string form from JSON) to weight; missing classes weigh 1.
"""

from __future__ import annotations

import numpy as np

from mixsig.errors import HeadError


def class_weights(q: np.ndarray, class_weight) -> np.ndarray:
    """``[C] float64`` class weights for target distribution ``q: [n, C]``."""
    n, C = q.shape
    if class_weight is None:
        return np.ones(C)
    if class_weight == "balanced":
        counts = q.sum(axis=0)
        with np.errstate(divide="ignore"):
            w = np.where(counts > 0, n / (C * np.maximum(counts, 1e-12)), 0.0)
        return w
    if isinstance(class_weight, dict):
        w = np.ones(C)
        for k, v in class_weight.items():
            try:
                c = int(k)
            except (TypeError, ValueError):
                raise HeadError(
                    f"class_weight keys must be class indices (0..{C - 1}); got {k!r}. "
                    f"Map class names to indices first."
                ) from None
            if not 0 <= c < C:
                raise HeadError(f"class_weight names class {c}, but there are only {C} classes (0..{C - 1}).")
            if not (np.isfinite(v) and v >= 0):
                raise HeadError(f"class_weight[{c}] must be finite and >= 0; got {v!r}.")
            w[c] = float(v)
        return w
    raise HeadError(f"class_weight must be None, 'balanced' or a dict; got {class_weight!r}.")


def target_matrix(y, n_classes: int, *, soft_labels=None, sample_weight=None, class_weight=None) -> np.ndarray:
    """Weighted targets ``T: [n, C] float64`` (see module docstring)."""
    y = np.asarray(y, dtype=np.int64)
    if soft_labels is not None:
        q = np.asarray(soft_labels, dtype=np.float64)
    else:
        q = np.zeros((y.shape[0], n_classes))
        q[np.arange(y.shape[0]), y] = 1.0
    T = q * class_weights(q, class_weight)[None, :]
    if sample_weight is not None:
        T = T * np.asarray(sample_weight, dtype=np.float64)[:, None]
    if not T.sum() > 0:
        raise HeadError("Every training row has weight 0 (check sample_weight / class_weight).")
    return T


def expand_targets(T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, labels and weights of the duplicated training set for ``T: [n, C]``.

    Returns ``(rows [k] int64, labels [k] int64, weights [k] float64)`` over the entries ``T > 0``,
    in row-major order (row 0's classes first), so hard labels give back the original row order.
    """
    rows, labels = np.nonzero(T > 0)
    return rows.astype(np.int64), labels.astype(np.int64), T[rows, labels]
