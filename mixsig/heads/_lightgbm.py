"""The ``lightgbm`` head: gradient-boosted trees on the concatenated modalities.

Deterministic settings (``deterministic=True``, ``force_col_wise=True``, a fixed ``num_threads``,
``seed``) make the same inputs, seed, LightGBM version and machine give identical probabilities.
Early stopping watches the validation log-loss (``early_stopping_rounds``); the saved model keeps
the best iteration. Fast defaults for ~2,000-d inputs: ``max_bin=63``, ``feature_fraction=0.3``.

Soft labels and class weights: LightGBM cannot take a label distribution, so each training row is
duplicated once per class with a non-zero share, labelled with that class and weighted by the
share (times sample and class weight) — see :mod:`mixsig.heads._targets`.

Reusing a constructed Dataset (binning ~2,000 features is a large part of a fit): build it once
with :meth:`LightGBMHead.make_dataset` and pass it to every ``fit`` that trains on the same rows::

    data = LightGBMHead(max_bin=63).make_dataset(X, y, X_val=X_val, y_val=y_val)
    for params in trials:                       # any parameter except the binning ones
        head = LightGBMHead(**params, max_bin=63).fit(X, y, X_val=X_val, y_val=y_val, dataset=data, seed=s)

``fit`` refuses a dataset built from other rows, labels, weights or binning parameters
(``max_bin``, ``min_data_in_bin``) with a :class:`HeadError` naming what differs, so a reused
Dataset can never silently train on the wrong data. The arrays are compared by identity first and by
value when they are other objects. With inputs validated once (:meth:`Head.validate_fit_inputs`), the
steps are explicit: ``data = head.dataset(inputs)``, then ``head.fit_validated(inputs, dataset=data)``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixsig.errors import HeadError
from mixsig.heads._base import FitInputs, Head
from mixsig.heads._dynamics import MAX_POINTS, booster_dynamics
from mixsig.heads._files import check_model_file
from mixsig.heads._layers import check_layer, check_layer_index, reduce_layers
from mixsig.heads._lgb_check import check_lightgbm_text
from mixsig.heads._registry import register_head
from mixsig.heads._targets import expand_targets
from mixsig.heads._torch import available_cores

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
DATASET_PARAMS = ("max_bin", "min_data_in_bin")


@dataclass(frozen=True)
class LightGBMConfig:
    """LightGBM hyperparameters (LightGBM's names). ``n_estimators`` is the most boosting rounds;
    ``early_stopping_rounds=0`` turns early stopping off. ``num_threads`` defaults to 1 (capped at the
    cores this process may use): parallel study workers would otherwise oversubscribe the cores, and
    a fixed count keeps results reproducible. ``layer``: what an ``[n, L, D]`` modality becomes (``"mean"`` of its
    layers, the default, or a layer index; :mod:`mixsig.heads._layers`)."""

    n_estimators: int = 1000
    learning_rate: float = 0.05
    num_leaves: int = 31
    max_depth: int = -1
    min_child_samples: int = 20
    feature_fraction: float = 0.3
    bagging_fraction: float = 1.0
    bagging_freq: int = 0
    lambda_l1: float = 0.0
    lambda_l2: float = 0.0
    max_bin: int = 63
    min_data_in_bin: int = 3
    early_stopping_rounds: int = 50
    class_weight: Any = None
    num_threads: int | None = None
    layer: Any = "mean"


@dataclass
class LightGBMData:
    """Constructed LightGBM Datasets for one training set (and its validation set), reusable across
    fits. Build with :meth:`LightGBMHead.make_dataset` (or :meth:`LightGBMHead.dataset` from validated
    inputs); pass as ``fit(..., dataset=...)`` / ``fit_validated(..., dataset=...)``."""

    train: Any                      # lightgbm.Dataset, constructed
    valid: Any | None               # lightgbm.Dataset with reference=train, or None
    dataset_params: dict
    n_classes: int
    targets_sha: str                # sha256 of the weighted target matrix T
    X: list[np.ndarray]             # the training arrays, kept for the identity/value check
    X_val: list[np.ndarray] | None
    y_val: np.ndarray | None
    layer: Any = "mean"             # how [n, L, D] modalities were reduced (see mixsig.heads._layers)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _same_arrays(a: list[np.ndarray] | None, b: list[np.ndarray] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return len(a) == len(b) and all(x is y or (x.shape == y.shape and np.array_equal(x, y)) for x, y in zip(a, b))


@register_head("lightgbm")
class LightGBMHead(Head):
    """Gradient-boosted trees (LightGBM) on ``[n, sum D_m]``; see the module docstring."""

    Config = LightGBMConfig

    def fit(self, X, y, *, dataset: LightGBMData | None = None, seed: int = 0, callback=None,
            **kwargs) -> "LightGBMHead":
        """:meth:`Head.fit`, plus ``dataset``: a :class:`LightGBMData` from :meth:`make_dataset` built
        on these same arrays and options, reused instead of binning the features again."""
        inputs = self.validate_fit_inputs(X, y, **kwargs)
        return self.fit_validated(inputs, seed=seed, callback=callback, dataset=dataset)

    def fit_validated(self, inputs: FitInputs, *, seed: int = 0, callback=None,
                      dataset: LightGBMData | None = None) -> "LightGBMHead":
        """:meth:`Head.fit_validated`, plus ``dataset`` (see :meth:`fit`); without one, the inputs are binned
        for this fit only."""
        if dataset is None:
            dataset = self.dataset(inputs)
        else:
            self._check_dataset(dataset, inputs)
        self._begin_fit(inputs)
        self._train(dataset, seed=int(seed), callback=callback)
        return self

    def make_dataset(self, X, y, *, X_val=None, y_val=None, sample_weight=None, soft_labels=None,
                     n_classes=None) -> LightGBMData:
        """Bin ``X`` once (and ``X_val``) into constructed LightGBM Datasets for repeated fits (the arguments
        of :meth:`fit`); the same as ``dataset(validate_fit_inputs(X, y, ...))``."""
        return self.dataset(self.validate_fit_inputs(X, y, X_val=X_val, y_val=y_val, sample_weight=sample_weight,
                                                     soft_labels=soft_labels, n_classes=n_classes))

    def dataset(self, inputs: FitInputs) -> LightGBMData:
        """Constructed LightGBM Datasets of validated ``inputs`` with this head's binning parameters
        (``max_bin``, ``min_data_in_bin``), reusable by every head with the same binning and class weights."""
        import lightgbm as lgb

        if not isinstance(inputs, FitInputs):
            raise HeadError(f"dataset() takes the FitInputs of validate_fit_inputs(X, y, ...); got "
                            f"{type(inputs).__name__}.")
        self._check_config()
        check_layer_index(self.config.layer, tuple(x.shape[1] if x.ndim == 3 else 0 for x in inputs.X),
                          inputs.modalities)
        rows, labels, weights = expand_targets(inputs.T)
        Xs = list(inputs.X)
        Xc = self._matrix(Xs)
        if rows.shape[0] != Xc.shape[0] or np.any(rows != np.arange(Xc.shape[0])):
            Xc = Xc[rows]
        params = {**self._dataset_params(), "num_threads": self._threads()}
        train = lgb.Dataset(Xc, label=labels, weight=weights, params=params, free_raw_data=True).construct()
        valid = None
        if inputs.X_val is not None:
            Xv = self._matrix(list(inputs.X_val))
            valid = lgb.Dataset(Xv, label=inputs.y_val, reference=train, params=params,
                                free_raw_data=True).construct()
        return LightGBMData(train, valid, self._dataset_params(), inputs.n_classes, _sha(inputs.T), Xs,
                            None if inputs.X_val is None else list(inputs.X_val), inputs.y_val, self.config.layer)

    def _matrix(self, Xs: list[np.ndarray]) -> np.ndarray:
        """``[n, sum D_m]`` float32: the modalities side by side, ``[n, L, D]`` ones reduced by ``layer``."""
        Xs = [reduce_layers(x, self.config.layer) for x in Xs]
        return np.hstack(Xs) if len(Xs) > 1 else Xs[0]

    def round_dynamics(self, X: dict, y, max_points: int = MAX_POINTS):
        """Training dynamics (:mod:`mixsig.heads._dynamics`) of the fitted booster on rows ``X`` with gold labels
        ``y`` (the training rows): p(gold) and correctness every ``k``-th boosting round of the kept model (at most
        ``max_points`` rounds). Returns a :class:`~mixsig.heads._dynamics.Dynamics`."""
        self._check_fitted()
        _, Xs = self._check_X(X, fitting=False, modalities=self.modalities_, dims=self.dims_)
        gold = np.asarray(y, np.int64)
        return booster_dynamics(self.booster_, self._matrix(Xs), gold, self.n_classes_, self._threads(), max_points)

    def _check_config(self) -> None:
        super()._check_config()
        c = self.config
        checks = {
            "n_estimators": c.n_estimators >= 1, "learning_rate": c.learning_rate > 0, "num_leaves": c.num_leaves >= 2,
            "feature_fraction": 0 < c.feature_fraction <= 1, "bagging_fraction": 0 < c.bagging_fraction <= 1,
            "max_bin": c.max_bin >= 2, "early_stopping_rounds": c.early_stopping_rounds >= 0,
            "num_threads": c.num_threads is None or c.num_threads >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise HeadError("Invalid value(s) for head 'lightgbm': "
                            + ", ".join(f"{k}={getattr(c, k)!r}" for k in bad) + ".")
        check_layer(self.name, c.layer, weighted_ok=False)

    def _dataset_params(self) -> dict:
        c = self.config
        return {"max_bin": c.max_bin, "min_data_in_bin": c.min_data_in_bin, "feature_pre_filter": False,
                "verbosity": -1}

    def _params(self, seed: int) -> dict:
        c = self.config
        C = self.n_classes_
        obj = {"objective": "binary"} if C == 2 else {"objective": "multiclass", "num_class": C}
        return {
            **obj, **self._dataset_params(),
            "learning_rate": c.learning_rate, "num_leaves": c.num_leaves, "max_depth": c.max_depth,
            "min_child_samples": c.min_child_samples, "feature_fraction": c.feature_fraction,
            "bagging_fraction": c.bagging_fraction, "bagging_freq": c.bagging_freq,
            "lambda_l1": c.lambda_l1, "lambda_l2": c.lambda_l2,
            "deterministic": True, "force_col_wise": True, "seed": seed,
            "num_threads": self._threads(),
        }

    def _threads(self) -> int:
        return min(available_cores(), self.config.num_threads or 1)

    def _check_dataset(self, data: LightGBMData, inputs: FitInputs) -> None:
        if not isinstance(data, LightGBMData):
            raise HeadError(f"dataset= takes the LightGBMData of make_dataset() / dataset(); got {type(data).__name__}.")
        problems = []
        if data.dataset_params != self._dataset_params():
            problems.append(f"binning parameters {data.dataset_params} vs this head's {self._dataset_params()}")
        if data.layer != self.config.layer:
            problems.append(f"layer={data.layer!r} vs this head's layer={self.config.layer!r}")
        if data.n_classes != inputs.n_classes:
            problems.append(f"{data.n_classes} classes vs {inputs.n_classes}")
        if data.targets_sha != _sha(inputs.T):
            problems.append("labels, soft labels, sample weights or class weights")
        if not _same_arrays(data.X, list(inputs.X)):
            problems.append("training features")
        X_val = None if inputs.X_val is None else list(inputs.X_val)
        if not _same_arrays(data.X_val, X_val) or (inputs.y_val is not None
                                                    and not np.array_equal(data.y_val, inputs.y_val)):
            problems.append("validation features or labels")
        if problems:
            raise HeadError("The LightGBMData passed as dataset= was built from different inputs: "
                            + "; ".join(problems) + ". Build one per training set with make_dataset().")

    def _train(self, data: LightGBMData, *, seed: int, callback) -> None:
        import lightgbm as lgb

        callbacks, feval = [], None
        c = self.config
        if data.valid is not None and c.early_stopping_rounds:
            callbacks.append(lgb.early_stopping(c.early_stopping_rounds, first_metric_only=True, verbose=False))
        if callback is not None and data.valid is not None:
            feval = _accuracy_feval
            callbacks.append(_user_callback(callback))
        params = self._params(seed)
        params["metric"] = "binary_logloss" if self.n_classes_ == 2 else "multi_logloss"
        booster = lgb.train(params, data.train, num_boost_round=c.n_estimators,
                            valid_sets=[data.valid] if data.valid is not None else None,
                            valid_names=["val"] if data.valid is not None else None,
                            feval=feval, callbacks=callbacks)
        if booster.best_iteration <= 0:
            booster.best_iteration = booster.current_iteration()
        # Round-trip through the text format so the in-memory model is exactly the saved one.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
        self.best_iteration_ = int(booster.best_iteration)

    def _predict_proba(self, Xs):
        Xc = self._matrix(Xs)
        p = self.booster_.predict(Xc, num_threads=self._threads())
        if self.n_classes_ == 2:
            p = np.stack([1.0 - p, p], axis=1)
        return p

    def _save_state(self, path: Path) -> dict:
        import lightgbm as lgb

        tmp = path / (MODEL_FILE + ".tmp")
        self.booster_.save_model(str(tmp))
        tmp.replace(path / MODEL_FILE)
        return {"file": MODEL_FILE, "best_iteration": self.best_iteration_, "lightgbm_version": lgb.__version__,
                "layers": list(self.layers_)}

    def _load_state(self, path: Path, state: dict) -> None:
        import lightgbm as lgb

        f = check_model_file(path / state.get("file", MODEL_FILE), "lightgbm")
        # Checked in Python first (a crafted text can abort or hang LightGBM); LightGBM parses the checked text.
        text = check_lightgbm_text(f, n_features=sum(self.dims_), n_classes=self.n_classes_)
        try:
            self.booster_ = lgb.Booster(model_str=text)
        except (lgb.basic.LightGBMError, ValueError) as exc:
            raise HeadError(f"LightGBM could not read {f}: {exc}. Save the head again.") from None
        if state.get("lightgbm_version") != lgb.__version__:
            log.warning("%s was saved with LightGBM %s; this is %s: probabilities may differ slightly",
                        f, state.get("lightgbm_version"), lgb.__version__)
        self.best_iteration_ = int(state.get("best_iteration", self.booster_.current_iteration()))
        self.layers_ = tuple(int(L) for L in state.get("layers") or (0,) * len(self.dims_))


def _accuracy_feval(preds, data):
    y = data.get_label()
    pred = (preds > 0.5).astype(int) if preds.ndim == 1 else preds.argmax(axis=1)
    return "accuracy", float(np.mean(pred == y)), True


def _user_callback(callback):
    def cb(env):
        acc = next(v for _, name, v, _ in env.evaluation_result_list if name == "accuracy")
        if callback(env.iteration, acc):
            import lightgbm as lgb

            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    # LightGBM sorts its callbacks by ``order`` and breaks ties by set iteration order (object addresses, so
    # run-dependent); early stopping is 30 and raises at its stopping round and at the last round. 25 runs this
    # after record_evaluation (20) and before early stopping, so every finished round reaches ``callback``.
    cb.order = 25
    return cb
