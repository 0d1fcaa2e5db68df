"""Torch heads' training schedule: a budget of optimizer steps with the batch sized from the training rows.

A fixed batch of 512 made a train split of a few hundred rows one full batch: 4-15 optimizer steps per trial, and
a third of the trials of a study on the demo store predicted one class. ``resolve_schedule`` turns the searched
``steps`` into a batch and an epoch count that hold from 200 to 200,000 training rows.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

from mixsig.errors import HeadError
from mixsig.heads import get_head, resolve_schedule
from mixsig.heads._torch import AUTO_BATCH_MAX, AUTO_BATCH_MIN, EVAL_POINTS
from mixsig.studies import get_space, suggest_config

ROWS = [200, 334, 1_000, 1_228, 5_000, 20_000, 200_000]
STEPS = [100, 250, 800]


@pytest.mark.parametrize("n_train", ROWS)
@pytest.mark.parametrize("steps", STEPS)
def test_auto_schedule_takes_the_budget_with_a_sane_batch(n_train, steps):
    sch = resolve_schedule(n_train, steps, "auto")
    assert sch.steps == steps                                     # the budget, whatever the data size
    bs = sch.batch_size
    assert bs & (bs - 1) == 0 and AUTO_BATCH_MIN <= bs <= AUTO_BATCH_MAX  # a power of two in [16, 1024]
    want = n_train * 8 / steps                                    # ~8 epochs of rows over the budget ...
    if AUTO_BATCH_MIN <= want <= AUTO_BATCH_MAX:
        assert want / math.sqrt(2) <= bs <= want * math.sqrt(2)  # ... to the nearest power of two
    else:
        assert bs == (AUTO_BATCH_MIN if want < AUTO_BATCH_MIN else AUTO_BATCH_MAX)
    assert sch.steps_per_epoch == math.ceil(n_train / bs) or sch.steps_per_epoch == n_train // bs  # 1-row tail dropped
    assert (sch.epochs - 1) * sch.steps_per_epoch < steps <= sch.epochs * sch.steps_per_epoch
    assert sch.epochs == math.ceil(steps / sch.steps_per_epoch)
    assert len(sch.eval_at) == EVAL_POINTS and sch.eval_at[-1] == steps  # validation at every tenth
    assert all(b > a for a, b in zip(sch.eval_at, sch.eval_at[1:]))


@pytest.mark.parametrize("n_train, steps, batch, epochs", [
    (200, 100, 16, 8), (334, 100, 32, 10), (334, 800, 16, 39), (1_228, 400, 32, 11), (20_000, 400, 512, 10),
    (200_000, 100, 1024, 1), (200_000, 800, 1024, 5),
])
def test_schedule_table(n_train, steps, batch, epochs):
    sch = resolve_schedule(n_train, steps, "auto")
    assert (sch.batch_size, sch.epochs, sch.steps) == (batch, epochs, steps)


def test_explicit_epochs_and_batch_size_keep_their_meaning():
    assert resolve_schedule(334, None, 64, 15).to_dict() == {"batch_size": 64, "steps_per_epoch": 6, "epochs": 15,
                                                              "steps": 90}
    full = resolve_schedule(334, None, 0, 4)
    assert (full.batch_size, full.steps, full.eval_at) == (334, 4, (1, 2, 3, 4))   # full batch, every epoch
    fixed = resolve_schedule(334, 300, 32)                         # a steps budget with a fixed batch
    assert (fixed.batch_size, fixed.steps, fixed.epochs) == (32, 300, 28)
    assert resolve_schedule(10, 100, "auto").batch_size == 10     # fewer rows than the smallest batch
    with pytest.raises(HeadError, match="needs a steps budget"):
        resolve_schedule(334, None, "auto")
    with pytest.raises(HeadError, match="'auto'"):
        resolve_schedule(334, 100, "big")


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = {"a": rng.standard_normal((n, 6)).astype(np.float32)}
    X["a"][:, 0] += 1.5 * (2 * y - 1)
    return X, y


@pytest.mark.parametrize("head", ["gated", "concat", "late"])
def test_a_head_with_a_steps_budget_takes_exactly_those_steps_and_reports_tenths(head, monkeypatch):
    X, y = _data(200)
    Xv, yv = _data(60, seed=1)
    counted = []
    real_step = torch.optim.Adam.step

    def step(self, *a, **k):
        counted.append(1)
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    reports = []
    h = get_head(head, steps=130, batch_size="auto", hidden=16, n_layers=1)
    h.fit(X, y, X_val=Xv, y_val=yv, seed=0, callback=lambda point, acc: reports.append(point) or False)
    assert len(counted) == 130
    assert reports == list(range(EVAL_POINTS)) and len(h.history_) == EVAL_POINTS
    assert h.schedule_ == {"batch_size": 16, "steps_per_epoch": 13, "epochs": 10, "steps": 130}
    assert h.best_step_ in resolve_schedule(200, 130, "auto").eval_at
    assert h.best_epoch_ == (h.best_step_ - 1) // 13
    # the old way still works: 3 epochs of batch 64 over 200 rows = 3 x 4 steps, validation per epoch
    counted.clear()
    old = get_head(head, epochs=3, batch_size=64, hidden=16, n_layers=1).fit(X, y, X_val=Xv, y_val=yv, seed=0)
    assert len(counted) == 12 and len(old.history_) == 3


def test_head_refuses_auto_batch_without_steps():
    X, y = _data(40)
    with pytest.raises(HeadError, match="batch_size='auto'.*steps"):
        get_head("gated", batch_size="auto").fit(X, y)
    with pytest.raises(HeadError, match="steps=0"):
        get_head("concat", steps=0, batch_size="auto").fit(X, y)


def test_torch_spaces_search_steps_with_an_auto_batch():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for head in ("gated", "concat", "late"):
        assert get_space(head).fixed["batch_size"] == "auto"
        for _ in range(20):
            trial = study.ask()
            cfg = suggest_config(trial, (head,), {"text": ("K",)})
            assert 100 <= cfg.params["steps"] <= 800 and cfg.params["batch_size"] == "auto"
            assert "epochs" not in cfg.params
            study.tell(trial, 0.5)
    # the smallest budget on a small train split still takes 100 optimizer steps (a fixed batch of 512: 1 per epoch)
    assert resolve_schedule(200, 100, "auto").steps == 100
