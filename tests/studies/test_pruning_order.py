"""LightGBM's per-round callback (which feeds Optuna's pruning) runs before early stopping, in a defined order.

``lightgbm.train`` puts its callbacks in a set and sorts them by ``order``; callbacks of equal order run in set
iteration order, which follows the objects' addresses and so changes from run to run. The head's callback had
early stopping's order (30): whenever early stopping ran first and raised (at the stopping round, or at the last
round), that round's validation accuracy was never reported, so a trial's last intermediate value came and went.
"""

from __future__ import annotations

from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import optuna
import pytest

from mixsig.heads import LightGBMHead
from mixsig.heads._lightgbm import _user_callback
from mixsig.studies import FITTERS
from mixsig.studies._objective import LGB_REPORT_INTERVAL

REPEATS = 12


def _data(seed: int, n: int = 120, signal: float = 0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int64)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x[:, 0] += signal * (2 * y - 1)
    return {"a": x}, y


def test_the_callback_order_is_strictly_before_early_stopping():
    ours = _user_callback(lambda step, score: False).order
    early = lgb.early_stopping(5).order
    assert ours < early, (ours, early)
    assert ours > lgb.record_evaluation({}).order   # after the evaluation results are recorded


@pytest.mark.parametrize("rounds, n_estimators", [(5, 200), (200, 30)], ids=["early-stop", "last-round"])
def test_every_trained_round_reaches_the_callback(rounds, n_estimators):
    """The stopping round (``best + rounds``) or the last round is reported, in every one of several fits."""
    X, y = _data(0)
    Xv, yv = _data(1)
    missed = []
    for k in range(REPEATS):
        steps: list[int] = []
        head = LightGBMHead(n_estimators=n_estimators, early_stopping_rounds=rounds, num_leaves=4,
                         min_child_samples=5, learning_rate=0.3, feature_fraction=1.0)
        head.fit(X, y, X_val=Xv, y_val=yv, seed=k, callback=lambda step, score: steps.append(step) or False)
        last = min(head.best_iteration_ - 1 + rounds, n_estimators - 1)
        assert steps[:-1] == list(range(len(steps) - 1))
        if steps != list(range(last + 1)):
            missed.append((k, steps[-1], last))
    assert not missed, f"{len(missed)} of {REPEATS} fits did not report their last round: {missed}"


def test_a_trial_reports_the_last_round_every_time():
    """Through the studies' LightGBM fitter: an Optuna trial's intermediate values end at the last round."""
    X, y = _data(2)
    Xv, yv = _data(3)
    n_estimators = 6 * LGB_REPORT_INTERVAL           # the last round (index 29) is a reporting round
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    seen = []
    for k in range(REPEATS):
        trial = study.ask()
        head = LightGBMHead(n_estimators=n_estimators, early_stopping_rounds=1000, num_leaves=4,
                         min_child_samples=5, learning_rate=0.3, feature_fraction=1.0)
        obj = SimpleNamespace(datasets={}, data=SimpleNamespace(n_classes=2))
        config = SimpleNamespace(features={"a": "k"})
        FITTERS.get("lightgbm")(obj, head, config, 0, k, trial, X, y, Xv, yv)
        seen.append(sorted(study.trials[-1].intermediate_values))
        study.tell(trial, 0.0)
    expected = list(range(LGB_REPORT_INTERVAL - 1, n_estimators, LGB_REPORT_INTERVAL))
    assert all(s == expected for s in seen), [s[-1] if s else None for s in seen]
