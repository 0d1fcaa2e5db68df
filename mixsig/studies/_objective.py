"""The objective: train one configuration on the study's fold(s) and score it on validation.

Features come from :class:`~mixsig.studies._data.StudyData` (in memory, loaded once per process); heads come
from :mod:`mixsig.heads`. Torch heads report validation accuracy through the head's ``callback``;
LightGBM reports per boosting round through optuna-integration's ``LightGBMPruningCallback`` and reuses
its constructed ``lightgbm.Dataset`` per (features, fold) across trials.

Torch heads search a ``steps`` budget and report at every tenth of it (step = the tenth's index, 0..9),
whatever their epoch count, so the per-head median pruner compares trials at the same share of their budget.

Every fitted model is checked for collapse (:func:`mixsig.metrics.collapse` on the validation rows: one class
predicted, or no better than label-independent predictions); a collapsed trial keeps its score and gets the
user attribute ``collapsed`` (the reason), which ``study show`` lists and re-evaluation takes last.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

from mixsig._registry import Registry
from mixsig.errors import StudyError
from mixsig.studies._data import StudyData
from mixsig.metrics import collapse, get_metric
from mixsig.studies._config import TrialConfig, suggest_config
from mixsig.studies._storage import WORKER_ATTR, worker_identity

if TYPE_CHECKING:  # pragma: no cover
    import optuna

COLLAPSED_ATTR = "collapsed"
#: trial user attrs: the keys the trial trained on, one readable line (``text=K1, audio=K3``; the dashboard's
#: trials table shows it), and why a trial failed when mixsig knows (``interrupted (Ctrl-C) ...``)
KEYS_ATTR = "keys"
FAIL_REASON_ATTR = "fail_reason"
INTERRUPTED = "interrupted (Ctrl-C / SIGINT) while the trial was training"


class Objective:
    """Callable ``objective(trial) -> validation score`` (higher is better) over one study's data.

    ``heads``: head names searched; ``features``: {modality: (key, ...)}; ``metric``: a name of
    :data:`mixsig.metrics.METRICS`; ``seed``: the training seed of every trial.
    """

    def __init__(self, data: StudyData, heads: tuple[str, ...], features: dict[str, tuple[str, ...]],
                 metric: str, seed: int = 0, threads: int | None = 1):
        self.data = data
        self.heads = tuple(heads)
        self.features = {m: tuple(k) for m, k in features.items()}
        self.metric_name = metric
        self.metric = get_metric(metric)
        self.seed = seed
        self.threads = threads
        self._inputs: dict = {}
        #: constructed datasets a fitter reuses across trials (LightGBM: per features, fold and binning)
        self.datasets: dict = {}
        self._identity = worker_identity()
        #: called with no argument after each evaluation outside a trial (the re-evaluation's progress bar)
        self.after_evaluation: Callable[[], None] | None = None

    def inputs(self, features, fold_index: int):
        """``(X_train, y_train, X_val, y_val)`` of ``features`` on fold ``fold_index``, built once and reused
        (the same array objects every trial, so LightGBM's Dataset check is an identity check)."""
        cache_key = (tuple(features.items()), fold_index)
        hit = self._inputs.get(cache_key)
        if hit is None:
            d, fold = self.data, self.data.folds[fold_index]
            hit = (d.inputs(features, fold.train), d.y[fold.train], d.inputs(features, fold.val), d.y[fold.val])
            self._inputs[cache_key] = hit
        return hit

    def make_head(self, config: TrialConfig):
        """The head of ``config``, with this process' thread count where the head takes one."""
        from mixsig.heads import get_head

        head = get_head(config.head, **config.params)
        if self.threads and "num_threads" in head.get_params() and "num_threads" not in config.params:
            head = get_head(config.head, **config.params, num_threads=self.threads)
        return head

    # -- one fit ---------------------------------------------------------------------------------------------
    def fit_predict(self, config: TrialConfig, fold_index: int, seed: int, trial: "optuna.Trial | None" = None) -> np.ndarray:
        """Fit ``config`` on fold ``fold_index``'s training rows; its validation probabilities ``[n_val, C]``.

        With a ``trial`` the head's validation accuracy at each report point (tenths of a torch head's step
        budget, LightGBM rounds) goes to ``trial.report`` and a pruned trial raises :class:`optuna.TrialPruned`.
        """
        Xtr, ytr, Xva, yva = self.inputs(config.features, fold_index)
        head = self.make_head(config)
        fitter = FITTERS.get(config.head) if config.head in FITTERS else _fit_default
        fitter(self, head, config, fold_index, seed, trial, Xtr, ytr, Xva, yva)
        return head.predict_proba(Xva)

    def evaluate(self, config: TrialConfig, seed: int, trial: "optuna.Trial | None" = None) -> float:
        """Mean validation score of ``config`` over the study's fold(s), trained with ``seed``
        (:meth:`evaluate_detail` without the collapse check's result)."""
        return self.evaluate_detail(config, seed, trial)[0]

    def evaluate_detail(self, config: TrialConfig, seed: int,
                        trial: "optuna.Trial | None" = None) -> tuple[float, str | None]:
        """``(mean validation score over the fold(s), collapse reason or None)`` of ``config`` trained with ``seed``.

        The reason is :func:`mixsig.metrics.collapse` of the first fold whose model collapsed on its validation
        rows (prefixed ``fold i:`` with several folds). With a ``trial`` and one fold the head reports while it
        trains; with several folds the running mean is reported after each fold (step = fold index) so a bad
        configuration stops early.
        """
        import optuna

        folds = self.data.folds
        scores = []
        reason = None
        for i, fold in enumerate(folds):
            proba = self.fit_predict(config, i, seed, trial if len(folds) == 1 else None)
            y_val = self.data.y[fold.val]
            score = self.metric(y_val, proba)
            if reason is None:
                why = collapse(y_val, proba)
                if why:
                    reason = why if len(folds) == 1 else f"fold {i}: {why}"
            if not math.isfinite(score):
                scores = [float("nan")]
                break
            scores.append(score)
            if trial is not None and len(folds) > 1:
                trial.report(float(np.mean(scores)), i)
                if i < len(folds) - 1 and trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {i}")
        if trial is None and self.after_evaluation is not None:
            self.after_evaluation()
        return float(np.mean(scores)), reason

    def __call__(self, trial: "optuna.Trial") -> float:
        trial.set_user_attr(WORKER_ATTR, self._identity)
        config = suggest_config(trial, self.heads, self.features, getattr(self.data, "layered_keys", frozenset()))
        trial.set_user_attr("features", dict(config.features))
        trial.set_user_attr(KEYS_ATTR, ", ".join(f"{m}={k}" for m, k in config.features.items()))
        try:
            value, reason = self.evaluate_detail(config, self.seed, trial)
        except KeyboardInterrupt:  # Optuna marks the trial FAIL and re-raises; record why first
            trial.set_user_attr(FAIL_REASON_ATTR, INTERRUPTED)
            raise
        if reason:
            trial.set_user_attr(COLLAPSED_ATTR, reason)
        return value


# --- head-specific fitting (a registry, like the heads themselves) --------------------------------------------

#: head -> ``fitter(objective, head, config, fold_index, seed, trial, Xtr, ytr, Xva, yva)``; heads without one
#: are fitted by ``head.fit(..., callback=<pruning callback>)``
FITTERS: Registry[Callable] = Registry("fitter", error=StudyError)


def register_fitter(head: str) -> Callable[[Callable], Callable]:
    """Decorator: ``fitter(objective, head, config, fold_index, seed, trial, Xtr, ytr, Xva, yva)`` fits ``head``
    in a study (one per head; another fitter for a head that has one is refused)."""
    return FITTERS.register(head)


def _pruning_callback(trial: "optuna.Trial | None"):
    """``callback(step, val_score) -> stop`` reporting to ``trial``; raises TrialPruned when the pruner says so.
    ``step``: the head's report point (for torch heads with a ``steps`` budget, the tenth of it: 0..9)."""
    import optuna

    if trial is None:
        return None

    def callback(step: int, score: float) -> bool:
        trial.report(float(score), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} (validation accuracy {score:.4f})")
        return False

    return callback


def _fit_default(obj: Objective, head, config, fold_index, seed, trial, Xtr, ytr, Xva, yva) -> None:
    head.fit(Xtr, ytr, X_val=Xva, y_val=yva, seed=seed, callback=_pruning_callback(trial),
             n_classes=obj.data.n_classes)


LGB_REPORT_INTERVAL = 5


@register_fitter("lightgbm")
def _fit_lightgbm(obj: Objective, head, config, fold_index, seed, trial, Xtr, ytr, Xva, yva) -> None:
    """LightGBM: reuse the constructed Dataset of (features, fold); prune with optuna-integration's
    ``LightGBMPruningCallback`` on validation accuracy every ``LGB_REPORT_INTERVAL`` rounds.

    The head runs ``lightgbm.train`` itself and hands each round's validation accuracy to its ``callback``;
    that value is passed on to ``LightGBMPruningCallback`` as the round's evaluation result.
    """
    cache_key = (tuple(config.features.items()), fold_index, head.config.max_bin, head.config.min_data_in_bin)
    data = obj.datasets.get(cache_key)
    if data is None:
        data = head.make_dataset(Xtr, ytr, X_val=Xva, y_val=yva, n_classes=obj.data.n_classes)
        obj.datasets[cache_key] = data
    callback = None
    if trial is not None:
        from types import SimpleNamespace

        from optuna_integration import LightGBMPruningCallback

        pruning = LightGBMPruningCallback(trial, "accuracy", valid_name="val", report_interval=LGB_REPORT_INTERVAL)

        def callback(step: int, score: float) -> bool:
            pruning(SimpleNamespace(iteration=step, evaluation_result_list=[("val", "accuracy", score, True)]))
            return False

    head.fit(Xtr, ytr, X_val=Xva, y_val=yva, seed=seed, callback=callback, dataset=data,
             n_classes=obj.data.n_classes)
