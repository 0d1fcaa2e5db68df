"""Training dynamics (dataset cartography, Swayamdipta et al. 2020): how the probability of each training row's
gold label moves while a head trains.

* Torch heads record it for free during ``fit``: the probabilities of every mini-batch's training forward pass
  (the pass the loss is computed from, in train mode: dropout and modality dropout on, as in the reference
  implementation, allenai/cartography), one value per training row and epoch. ``head.dynamics_`` is a
  :class:`Dynamics` ``[epochs, n_train]``; a row not visited in an epoch (a skipped one-row last batch, the cut
  epoch of a ``steps`` budget) is NaN there.
* LightGBM: :meth:`mixsig.heads.LightGBMHead.round_dynamics` computes it after the fit from the kept booster,
  every ``k``-th boosting round (at most :data:`MAX_POINTS` points) on the training rows.
* logreg has no epochs: no dynamics.

Per row: **confidence** = mean over the points of p(gold), **variability** = their standard deviation (ddof 0),
**correctness** = the share of points where the predicted class (argmax, first on ties) is the gold label.
:func:`dynamics_observer` stores them per seed with the run as ``dynamics/confidence``, ``dynamics/variability``
and ``dynamics/correctness`` ``[S, N]`` (NaN off the training rows).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

#: LightGBM dynamics: at most this many evenly spaced boosting rounds
MAX_POINTS = 50
#: the run paths :func:`dynamics_observer` writes
PATHS = ("dynamics/confidence", "dynamics/variability", "dynamics/correctness")


@dataclass(frozen=True)
class Dynamics:
    """``p_gold`` ``[P, n]`` float32: p(gold label) of each training row at each point (epoch or boosting round;
    NaN = not seen); ``correct`` ``[P, n]`` float32 (1 = predicted the gold label, 0 = not, NaN = not seen);
    ``unit``: ``"epoch"`` or ``"round"``; ``points``: the 1-based epoch / round of each row of the arrays."""

    p_gold: np.ndarray
    correct: np.ndarray
    unit: str
    points: tuple[int, ...]

    def summary(self) -> dict[str, np.ndarray]:
        """``{"confidence", "variability", "correctness"}``: ``[n]`` float32 each (NaN for a row never seen)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN
            p = self.p_gold.astype(np.float64)
            return {"confidence": np.nanmean(p, axis=0).astype(np.float32),
                    "variability": np.nanstd(p, axis=0).astype(np.float32),
                    "correctness": np.nanmean(self.correct.astype(np.float64), axis=0).astype(np.float32)}


def gold_outcomes(probs: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(p(gold) [n], correct [n])`` float32 of probabilities ``[n, C]`` and gold labels ``[n]``."""
    p_gold = probs[np.arange(len(gold)), gold]
    return p_gold.astype(np.float32), (probs.argmax(axis=1) == gold).astype(np.float32)


class Recorder:
    """Collects a torch head's training-batch probabilities into a :class:`Dynamics` (see the module docstring):
    ``batch(idx, probs)`` after each forward pass, ``end_epoch(epoch)`` after each epoch."""

    def __init__(self, epochs: int, gold: np.ndarray) -> None:
        self.gold = np.asarray(gold, np.int64)
        self.p = np.full((int(epochs), self.gold.size), np.nan, np.float32)
        self.c = np.full((int(epochs), self.gold.size), np.nan, np.float32)
        self.epoch = 0

    def batch(self, idx, probs) -> None:
        if self.epoch >= self.p.shape[0]:
            return
        i = idx.numpy() if hasattr(idx, "numpy") else np.asarray(idx)
        pg, ok = gold_outcomes(probs.numpy() if hasattr(probs, "numpy") else np.asarray(probs), self.gold[i])
        self.p[self.epoch, i], self.c[self.epoch, i] = pg, ok

    def end_epoch(self, epoch: int) -> None:
        self.epoch += 1

    def result(self) -> Dynamics:
        seen = np.flatnonzero(np.isfinite(self.p).any(axis=1))
        return Dynamics(self.p[seen], self.c[seen], "epoch", tuple(int(e) + 1 for e in seen))


def round_points(n_rounds: int, max_points: int = MAX_POINTS) -> list[int]:
    """The 1-based boosting rounds LightGBM dynamics are taken at: every ``k``-th round (``k = ceil(n_rounds /
    max_points)``) and the last one."""
    k = max(1, -(-int(n_rounds) // max(1, int(max_points))))
    pts = list(range(k, int(n_rounds) + 1, k))
    if not pts or pts[-1] != n_rounds:
        pts.append(int(n_rounds))
    return pts


def booster_dynamics(booster, X: np.ndarray, gold: np.ndarray, n_classes: int, num_threads: int,
                     max_points: int = MAX_POINTS) -> Dynamics:
    """:class:`Dynamics` of a LightGBM booster on rows ``X`` ``[n, F]`` with gold labels ``gold``: the raw scores
    summed round chunk by round chunk (``predict(start_iteration=, num_iteration=, raw_score=True)``: one pass
    over the trees in all), turned into probabilities as the booster does (sigmoid / softmax)."""
    from scipy.special import expit, softmax

    n_rounds = int(booster.current_iteration())
    pts = round_points(n_rounds, max_points)
    raw = np.zeros((X.shape[0],) if n_classes == 2 else (X.shape[0], n_classes))
    p_gold = np.empty((len(pts), X.shape[0]), np.float32)
    correct = np.empty_like(p_gold)
    start = 0
    for j, end in enumerate(pts):
        raw = raw + booster.predict(X, start_iteration=start, num_iteration=end - start, raw_score=True,
                                    num_threads=num_threads)
        start = end
        if n_classes == 2:
            p1 = expit(raw)
            probs = np.stack([1.0 - p1, p1], axis=1)
        else:
            probs = softmax(raw, axis=1)
        p_gold[j], correct[j] = gold_outcomes(probs, gold)
    return Dynamics(p_gold, correct, "round", tuple(pts))


def training_dynamics(head, X_train: dict, y_train: np.ndarray) -> Dynamics | None:
    """The fitted ``head``'s dynamics on its training rows (``X_train``/``y_train``, as it was fitted on): torch
    heads' recorded ``dynamics_``, LightGBM's :meth:`round_dynamics`; None for heads without either."""
    dyn = getattr(head, "dynamics_", None)
    if dyn is None and hasattr(head, "round_dynamics"):
        dyn = head.round_dynamics(X_train, y_train)
    return dyn


def dynamics_observer(rec) -> dict[str, np.ndarray]:
    """A :func:`mixsig.heads.train_run` fit observer: ``{path: [N]}`` of :data:`PATHS` (the training rows'
    confidence, variability and correctness, NaN elsewhere); ``{}`` for heads without dynamics."""
    tr = rec.data.tr
    dyn = training_dynamics(rec.head, {m: x[tr] for m, x in rec.X.items()}, rec.data.y[tr])
    if dyn is None:
        return {}
    out = {}
    rows = rec.data.used[tr]
    for path, values in zip(PATHS, (dyn.summary()[k] for k in ("confidence", "variability", "correctness"))):
        full = np.full(rec.data.n, np.nan, np.float32)
        full[rows] = values
        out[path] = full
    return out


def layer_weights_observer(rec) -> dict[str, np.ndarray]:
    """A :func:`mixsig.heads.train_run` fit observer: ``{"layer_weights/<modality>": [L]}`` of a head with learned
    layer weights (``layer_weights_``, :mod:`mixsig.heads._layers`); ``{}`` otherwise."""
    weights = getattr(rec.head, "layer_weights_", None) or {}
    return {f"layer_weights/{m}": np.asarray(w, np.float32) for m, w in weights.items()}


#: the observers :func:`mixsig.heads.train_run` always runs (before the caller's)
DEFAULT_OBSERVERS = (layer_weights_observer, dynamics_observer)

__all__ = ["DEFAULT_OBSERVERS", "Dynamics", "MAX_POINTS", "PATHS", "Recorder", "booster_dynamics",
           "dynamics_observer", "gold_outcomes", "layer_weights_observer", "round_points", "training_dynamics"]
