"""The :class:`Head` interface every head implements, and the checks shared by all of them.

A head is a scikit-learn-style estimator over a dict of modalities:

* ``__init__(**params)`` only stores hyperparameters (a frozen dataclass ``Config`` per head; an
  unknown name is refused at once, values are checked in ``fit``); ``get_params(deep=True)`` /
  ``set_params(**params)`` follow scikit-learn's estimator protocol, so ``sklearn.base.clone(head)`` gives an
  unfitted head with the same hyperparameters;
* ``fit(X, y, ...)`` with ``X = {modality: [n, D_m] float32}`` returns ``self``; fitted state ends in ``_``.
  It is two steps, usable apart: ``validate_fit_inputs(X, y, ...) -> FitInputs`` (every check on the
  arrays, labels, weights and soft labels; the weighted targets) and ``fit_validated(inputs, seed=...)``;
* ``predict_proba(X) -> [n, C] float32``; ``modality_weights(X)`` where the head has gates/attention;
* ``save(dir)`` / ``mixsig.heads.load_head(dir)`` (any head; ``GatedFusionHead.load(dir)`` for one class): a
  folder with ``head.json`` plus ``model.safetensors`` (torch, logreg) or ``model.txt`` (LightGBM's text
  format). Nothing is ever unpickled.

This module does not import the registry (:mod:`mixsig.heads._registry` imports it, to load saved heads).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from mixsig.errors import HeadError
from mixsig.jsonutil import jsonable
from mixsig.heads._files import HEAD_FORMAT_VERSION, META_FILE, read_saved_head
from mixsig.heads._targets import target_matrix

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: compared by identity, like the head's own checks
class FitInputs:
    """Training inputs checked by :meth:`Head.validate_fit_inputs`, ready for :meth:`Head.fit_validated`.

    ``X``/``X_val``: one ``[n, D_m]`` C-contiguous float32 array per modality, in ``modalities`` order (the
    caller's arrays themselves where they already were); ``y``: ``[n]`` int64; ``T``: ``[n, C]`` float64 weighted
    targets (:func:`mixsig.heads._targets.target_matrix` of the labels or soft labels, sample weights and the
    head's ``class_weight``, recorded as ``class_weight``); ``y_val``: ``[n_val]`` int64 or None.
    """

    modalities: tuple[str, ...]
    X: tuple[np.ndarray, ...]
    y: np.ndarray
    T: np.ndarray
    n_classes: int
    class_weight: Any
    X_val: tuple[np.ndarray, ...] | None = None
    y_val: np.ndarray | None = None

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(int(x.shape[-1]) for x in self.X)  # D, also of [n, L, D] arrays

    @property
    def n_rows(self) -> int:
        return int(self.X[0].shape[0])


class Head:
    """Base class of every head. Subclasses set ``Config`` (a frozen dataclass of hyperparameters)
    and implement ``_fit``, ``_predict_proba``, ``_save_state`` and ``_load_state``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]

    def __init__(self, **params: Any) -> None:
        self._check_param_names(params)
        self.config = self.Config(**_canonical_params(params))

    # -- parameters (scikit-learn's estimator protocol) ---------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        """The hyperparameters: every field of ``Config``, defaults included, as stored (JSON-able: numpy
        scalars become Python numbers and ``class_weight`` keys strings when the head is built). ``deep`` is
        accepted for scikit-learn (a head holds no sub-estimators, so it changes nothing).

        >>> from mixsig.heads import get_head
        >>> get_head("logreg", C=0.5, class_weight={1: 2.0}).get_params()["class_weight"]
        {'1': 2.0}
        """
        return {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}

    def set_params(self, **params: Any) -> "Head":
        """Change hyperparameters in place (scikit-learn's ``set_params``); returns ``self``. Unknown names are
        refused with the valid ones listed; values are checked in ``fit``. A fitted head keeps its fitted
        state until the next ``fit``."""
        self._check_param_names(params)
        if params:
            self.config = dataclasses.replace(self.config, **_canonical_params(params))
        return self

    def _check_param_names(self, params: dict) -> None:
        fields = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise HeadError(
                f"Unknown parameter(s) {unknown} for head {self.name!r}. Valid parameters: {sorted(fields)}."
            )

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(self.config)
            if getattr(self.config, f.name) != f.default
        }
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # -- fitting ------------------------------------------------------------------------------------
    def fit(
        self,
        X: dict[str, np.ndarray],
        y: np.ndarray,
        *,
        X_val: dict[str, np.ndarray] | None = None,
        y_val: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        soft_labels: np.ndarray | None = None,
        seed: int = 0,
        callback: Callable[[int, float], bool] | None = None,
        n_classes: int | None = None,
    ) -> "Head":
        """Train on ``X = {modality: [n, D_m] float32}`` and ``y: [n] int64`` class indices.

        ``X_val``/``y_val`` (same modalities, [n_val] labels) select the best epoch / stop early.
        ``sample_weight: [n]`` multiplies each row's loss; ``soft_labels: [n, C]`` (rows summing to 1,
        e.g. the annotators' vote shares) replaces the one-hot targets of ``y``; ``seed`` fixes every
        random choice; ``callback(epoch, val_score) -> True`` stops training (Optuna pruning) — the
        score is validation accuracy for torch heads and LightGBM. ``n_classes`` (optional) is the
        size of the label set when ``y`` may not contain every class. Returns ``self``.

        The same as ``fit_validated(validate_fit_inputs(X, y, ...), seed=seed, callback=callback)``.
        """
        inputs = self.validate_fit_inputs(X, y, X_val=X_val, y_val=y_val, sample_weight=sample_weight,
                                          soft_labels=soft_labels, n_classes=n_classes)
        return self.fit_validated(inputs, seed=seed, callback=callback)

    def validate_fit_inputs(
        self,
        X: dict[str, np.ndarray],
        y: np.ndarray,
        *,
        X_val: dict[str, np.ndarray] | None = None,
        y_val: np.ndarray | None = None,
        sample_weight: np.ndarray | None = None,
        soft_labels: np.ndarray | None = None,
        n_classes: int | None = None,
    ) -> FitInputs:
        """Check this head's hyperparameters and the arguments of :meth:`fit` (same meaning) without training;
        :class:`HeadError` naming the first problem. Returns the :class:`FitInputs` that :meth:`fit_validated`
        trains on (they hold this head's ``class_weight``; validate again after changing it)."""
        self._check_config()
        mods, Xs = self._check_X(X, fitting=True)
        n = Xs[0].shape[0]
        y = _check_labels(y, n, "y")
        C = _n_classes(y, y_val, soft_labels, n_classes)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (n,) or not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
                raise HeadError(f"sample_weight must be [{n}] finite and >= 0; got shape {sample_weight.shape}.")
        if soft_labels is not None:
            soft_labels = np.asarray(soft_labels, dtype=np.float64)
            if soft_labels.shape != (n, C):
                raise HeadError(f"soft_labels must be [{n}, {C}]; got {soft_labels.shape}.")
            sums = soft_labels.sum(axis=1)
            bad = np.flatnonzero(~np.isfinite(sums) | (np.abs(sums - 1) > 1e-4) | np.any(soft_labels < 0, axis=1))
            if bad.size:
                raise HeadError(
                    f"soft_labels rows must be >= 0 and sum to 1; {bad.size} do not (first: row {bad[0]}, "
                    f"sum {sums[bad[0]]:.4g}). Rows without votes should carry the one-hot gold label."
                )
        Xs_val = None
        if X_val is not None:
            if y_val is None:
                raise HeadError("X_val was given without y_val; pass both or neither.")
            mods_val, Xs_val = self._check_X(X_val, fitting=False, modalities=mods,
                                              dims=[tuple(x.shape[1:]) for x in Xs])
            y_val = _check_labels(y_val, Xs_val[0].shape[0], "y_val")
            if np.any(y_val >= C):
                raise HeadError(f"y_val holds class {int(y_val.max())} but there are only {C} classes.")
        T = target_matrix(y, C, soft_labels=soft_labels, sample_weight=sample_weight,
                          class_weight=self.config.class_weight)
        return FitInputs(modalities=tuple(mods), X=tuple(Xs), y=y, T=T, n_classes=int(C),
                         class_weight=self.config.class_weight,
                         X_val=None if Xs_val is None else tuple(Xs_val), y_val=y_val if Xs_val is not None else None)

    def fit_validated(self, inputs: FitInputs, *, seed: int = 0,
                      callback: Callable[[int, float], bool] | None = None) -> "Head":
        """Train on inputs checked by :meth:`validate_fit_inputs` (``seed`` and ``callback`` as in :meth:`fit`);
        returns ``self``."""
        self._begin_fit(inputs)
        self._fit(list(inputs.X), inputs.T, None if inputs.X_val is None else list(inputs.X_val), inputs.y_val,
                  seed=int(seed), callback=callback)
        return self

    def _begin_fit(self, inputs: FitInputs) -> None:
        """Refuse inputs validated for other hyperparameters; record the fitted shape (``modalities_``,
        ``dims_``, ``n_classes_``), which ``_fit`` may use."""
        if not isinstance(inputs, FitInputs):
            raise HeadError(f"fit_validated takes the FitInputs of validate_fit_inputs(X, y, ...); got "
                            f"{type(inputs).__name__}.")
        if inputs.class_weight != self.config.class_weight:
            raise HeadError(f"These FitInputs were validated with class_weight={inputs.class_weight!r}, but this "
                            f"head has class_weight={self.config.class_weight!r}; call validate_fit_inputs again.")
        self._check_config()
        self.modalities_ = tuple(inputs.modalities)
        self.dims_ = inputs.dims
        self.layers_ = tuple(int(x.shape[1]) if x.ndim == 3 else 0 for x in inputs.X)  # L of [n, L, D] inputs, else 0
        self.n_classes_ = int(inputs.n_classes)

    def predict_proba(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities ``[n, C] float32`` for ``X = {modality: [n, D_m]}``."""
        self._check_fitted()
        _, Xs = self._check_X(X, fitting=False, modalities=self.modalities_, dims=self.dims_)
        return np.ascontiguousarray(self._predict_proba(Xs), dtype=np.float32)

    def modality_weights(self, X: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """``{"gates": [n, M], "attention": [n, M]}`` in ``modalities_`` order, or None if the head has none."""
        return None

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted head into folder ``path`` (created): ``head.json`` + the model file."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": HEAD_FORMAT_VERSION,
            "head": self.name,
            "params": jsonable(self.get_params()),
            "modalities": list(self.modalities_),
            "dims": list(self.dims_),
            "n_classes": self.n_classes_,
            "state": self._save_state(path),
        }
        from mixsig import __version__

        meta["mixsig_version"] = __version__
        tmp = path / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
        tmp.replace(path / META_FILE)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Head":
        """Load a head of this class saved by :meth:`save` (e.g. ``LightGBMHead.load(folder)``); a head of
        another class is refused. To load a saved head of any class use :func:`mixsig.heads.load_head`.
        Refuses pickles and torch ``.pt`` files."""
        if not cls.name:
            raise HeadError(f"{cls.__name__}.load needs a registered head class (e.g. GatedFusionHead.load); "
                            f"to load a saved head of any class use mixsig.heads.load_head({str(path)!r}).")
        meta = read_saved_head(path)
        if meta["head"] != cls.name:
            raise HeadError(f"{path} holds a {meta['head']!r} head, not a {cls.name!r} head; load it with "
                            f"mixsig.heads.load_head.")
        return cls._from_saved(Path(path), meta)

    @classmethod
    def _from_saved(cls, path: Path, meta: dict) -> "Head":
        """A head of this class from the ``head.json`` record ``meta`` of folder ``path`` (see read_saved_head)."""
        head = cls(**meta["params"])
        head.modalities_ = tuple(meta["modalities"])
        head.dims_ = tuple(int(d) for d in meta["dims"])
        head.n_classes_ = int(meta["n_classes"])
        head._load_state(path, meta["state"])
        return head

    # -- for subclasses -----------------------------------------------------------------------------
    def _check_config(self) -> None:
        cw = self.config.class_weight
        if cw is not None and cw != "balanced" and not isinstance(cw, dict):
            raise HeadError(f"class_weight must be None, 'balanced' or a dict {{class index: weight}}; got {cw!r}.")

    def _fit(self, Xs, T, Xs_val, y_val, *, seed, callback) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict_proba(self, Xs: list[np.ndarray]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _save_state(self, path: Path) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _load_state(self, path: Path, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_classes_"):
            raise HeadError(f"This {self.name!r} head is not fitted yet; call fit(X, y) first.")

    def _check_X(self, X, *, fitting: bool, modalities=None, dims=None) -> tuple[list[str], list[np.ndarray]]:
        """Checked arrays per modality: ``[n, D]`` as C-contiguous float32, or ``[n, L, D]`` (all layers of an
        encoder) kept in their float16/float32 dtype (other dtypes become float32), so that a large float16 key is
        never copied to float32 at once: the heads convert it batch by batch or reduce it to one layer.
        ``dims``: per modality the expected width ``D`` (with the fitted ``layers_``) or the expected ``a.shape[1:]``."""
        if not isinstance(X, dict) or not X:
            raise HeadError("X must be a non-empty dict {modality: [n, D] or [n, L, D] array}.")
        if modalities is None:
            mods = list(X)
        else:
            missing = [m for m in modalities if m not in X]
            if missing:
                raise HeadError(f"X lacks modalities {missing}; the head was fitted on {list(modalities)}.")
            mods = list(modalities)
        fitted_layers = getattr(self, "layers_", None) or (0,) * len(mods)
        Xs = []
        for i, m in enumerate(mods):
            a = np.asarray(X[m])
            if a.ndim not in (2, 3):
                raise HeadError(f"X[{m!r}] must be [n, D] (pooled) or [n, L, D] (all layers); got shape {a.shape}.")
            if dims is not None:
                want = tuple(dims[i]) if isinstance(dims[i], tuple) else (
                    (int(fitted_layers[i]), int(dims[i])) if fitted_layers[i] else (int(dims[i]),))
                if a.shape[1:] != want and a.ndim == 2 and len(want) == 1:
                    raise HeadError(f"X[{m!r}] has {a.shape[1]} columns; the head was fitted on {want[0]}.")
                if a.shape[1:] != want:
                    raise HeadError(f"X[{m!r}] has rows of shape {list(a.shape[1:])}; the head was fitted on rows of "
                                    f"shape {list(want)} ([L, D] = layers, width; [D] = pooled width).")
            keep = a.ndim == 3 and a.dtype in (np.float16, np.float32)
            a = np.ascontiguousarray(a, dtype=a.dtype if keep else np.float32)
            finite = _finite_rows(a)
            if not finite.all():
                bad = np.flatnonzero(~finite)
                raise HeadError(
                    f"X[{m!r}] has {bad.size} rows with NaN/Inf (first: row {bad[0]}); exclude rows whose "
                    f"features are not done before training or predicting."
                )
            Xs.append(a)
        n = {a.shape[0] for a in Xs}
        if len(n) != 1:
            raise HeadError(f"Modalities have different row counts {dict(zip(mods, (a.shape[0] for a in Xs)))}.")
        if fitting and Xs[0].shape[0] < 2:
            raise HeadError(f"Need at least 2 training rows; got {Xs[0].shape[0]}.")
        return mods, Xs


def _finite_rows(a: np.ndarray, block: int = 4096) -> np.ndarray:
    """``[n]`` bool: every value of the row is finite (checked in blocks of rows: no full-size temporary)."""
    if a.ndim == 2:
        return np.isfinite(a).all(axis=1)
    return np.concatenate([np.isfinite(a[s:s + block]).all(axis=(1, 2)) for s in range(0, a.shape[0], block)]
                          or [np.zeros(0, bool)])


def _canonical_params(params: dict) -> dict:
    """Hyperparameters in their stored, JSON-able form. A value already in that form is kept as the very same
    object (scikit-learn's ``clone`` checks that the constructor stores its arguments unchanged)."""
    return {k: _canonical(v) for k, v in params.items()}


def _canonical(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        out = {str(k): _canonical(x) for k, x in v.items()}
        if len(out) != len(v):
            raise HeadError(f"{v!r} names the same key twice (once as a number, once as a string).")
        same = all(type(k) is str for k in v) and all(out[k] is x for k, x in v.items())
        return v if same else out
    if isinstance(v, (list, tuple)):
        out = [_canonical(x) for x in v]
        return v if type(v) is list and all(a is b for a, b in zip(out, v)) else out
    return v


def _check_labels(y, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise HeadError(f"{what} must be [{n}] class indices; got shape {y.shape}.")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise HeadError(f"{what} must hold integer class indices; got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise HeadError(f"{what} holds {int((y < 0).sum())} negative (unlabelled) entries; drop those rows.")
    return y


def _n_classes(y, y_val, soft_labels, n_classes) -> int:
    seen = int(y.max()) + 1
    if y_val is not None and len(y_val):
        seen = max(seen, int(np.max(y_val)) + 1)
    if soft_labels is not None:
        seen = max(seen, int(np.shape(soft_labels)[1]))
    if n_classes is not None:
        if n_classes < seen:
            raise HeadError(f"n_classes={n_classes} but the labels hold class index {seen - 1}.")
        return int(n_classes)
    if seen < 2:
        raise HeadError("The training labels hold a single class; pass n_classes or include both classes.")
    return seen
