"""The ``logreg`` head: scikit-learn's LogisticRegression (lbfgs) on the concatenated modalities,
standardised with the training rows' mean and standard deviation.

Probabilities are computed from the stored coefficients (``expit`` for two classes, ``softmax``
otherwise — scikit-learn's own rule), by the same code before and after ``save``/``load``; the
coefficients, intercepts, classes and scaling live in ``model.safetensors`` (no pickle).
Soft labels and class weights: rows duplicated per class, weighted by vote share (see
:mod:`mixsig.heads._targets`). The validation set is not used (there is no epoch to select).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixsig.errors import HeadError
from mixsig.heads._base import Head
from mixsig.heads._files import check_model_file
from mixsig.heads._layers import check_layer, check_layer_index, reduce_layers
from mixsig.heads._registry import register_head
from mixsig.heads._targets import expand_targets

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"


@dataclass(frozen=True)
class LogRegConfig:
    """``C``: inverse L2 strength; ``standardize``: z-score features with training statistics; ``layer``: what an
    ``[n, L, D]`` modality becomes (``"mean"`` of its layers, the default, or a layer index; :mod:`mixsig.heads._layers`)."""

    C: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-4
    standardize: bool = True
    class_weight: Any = None
    layer: Any = "mean"


@register_head("logreg")
class LogRegHead(Head):
    """L2 logistic regression (scikit-learn) on ``[n, sum D_m]``; see the module docstring."""

    Config = LogRegConfig

    def _check_config(self) -> None:
        super()._check_config()
        c = self.config
        if not (c.C > 0 and c.max_iter >= 1 and c.tol > 0):
            raise HeadError(f"Invalid logreg parameters C={c.C}, max_iter={c.max_iter}, tol={c.tol} "
                            f"(need > 0, >= 1, > 0).")
        check_layer(self.name, c.layer, weighted_ok=False)

    def _matrix(self, Xs) -> np.ndarray:
        """``[n, sum D_m]`` float64: the modalities side by side, ``[n, L, D]`` ones reduced by ``layer``."""
        Xs = [reduce_layers(x, self.config.layer) for x in Xs]
        return np.hstack(Xs).astype(np.float64) if len(Xs) > 1 else Xs[0].astype(np.float64)

    def _fit(self, Xs, T, Xs_val, y_val, *, seed, callback) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        check_layer_index(self.config.layer, self.layers_, self.modalities_)
        X = self._matrix(Xs)
        if self.config.standardize:
            self.mean_ = X.mean(axis=0)
            sd = X.std(axis=0)
            self.scale_ = np.where(sd > 0, sd, 1.0)
        else:
            self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
        rows, labels, weights = expand_targets(T)
        classes = np.unique(labels)
        if classes.size < 2:
            raise HeadError(f"logreg needs at least two classes with weight > 0 in the training rows; got {classes}.")
        model = LogisticRegression(C=self.config.C, max_iter=self.config.max_iter, tol=self.config.tol,
                                   random_state=seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit((X[rows] - self.mean_) / self.scale_, labels, sample_weight=weights)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log.warning("logreg did not converge in max_iter=%d iterations; raise max_iter or lower C",
                        self.config.max_iter)
        self.coef_ = model.coef_.astype(np.float64)
        self.intercept_ = model.intercept_.astype(np.float64)
        self.classes_ = model.classes_.astype(np.int64)

    def _predict_proba(self, Xs):
        from scipy.special import expit, softmax

        X = self._matrix(Xs)
        d = ((X - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_
        if self.classes_.size == 2:
            p1 = expit(d[:, 0])
            p = np.stack([1.0 - p1, p1], axis=1)
        else:
            p = softmax(d, axis=1)
        out = np.zeros((X.shape[0], self.n_classes_))
        out[:, self.classes_] = p
        return out

    def _save_state(self, path: Path) -> dict:
        from safetensors.numpy import save_file

        tmp = path / (MODEL_FILE + ".tmp")
        save_file({"coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_,
                   "mean": self.mean_, "scale": self.scale_}, str(tmp), metadata={"head": self.name})
        tmp.replace(path / MODEL_FILE)
        return {"file": MODEL_FILE, "layers": list(self.layers_)}

    def _load_state(self, path: Path, state: dict) -> None:
        from safetensors.numpy import load_file

        f = check_model_file(path / state.get("file", MODEL_FILE), "safetensors")
        t = load_file(str(f))
        try:
            self.coef_, self.intercept_, self.classes_ = t["coef"], t["intercept"], t["classes"]
            self.mean_, self.scale_ = t["mean"], t["scale"]
        except KeyError as exc:
            raise HeadError(f"{f} lacks tensor {exc}; it was not written by the logreg head.") from None
        self.layers_ = tuple(int(L) for L in state.get("layers") or (0,) * len(self.dims_))
