"""Pruning: a median rule applied among trials of the same head.

Heads report on different step scales (torch heads: validation accuracy at every tenth of their optimizer-step
budget, step 0..9, so trials with different budgets and epoch counts meet at the same share of their training;
LightGBM: every few boosting rounds), so a trial is only compared with earlier trials of its own head, each head
with its own warm-up (:attr:`mixsig.studies.HeadSpace.warmup_steps`). With ``--cv K`` the step is the fold and the value the running
mean score over the folds done so far.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import optuna

N_STARTUP_TRIALS = 5


class _SameHeadView:
    """What a pruner sees of a study: only the trials that share ``head`` (duck-types ``optuna.Study``)."""

    def __init__(self, study: "optuna.Study", head: str | None):
        self._study = study
        self._head = head

    @property
    def direction(self):
        return self._study.direction

    @property
    def directions(self):
        return self._study.directions

    def get_trials(self, deepcopy: bool = True, states=None):
        trials = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [t for t in trials if t.params.get("head", self._head) == self._head]


def make_pruner(warmups: Mapping[str, int], *, n_startup_trials: int = N_STARTUP_TRIALS) -> "optuna.pruners.BasePruner":
    """A :class:`optuna.pruners.MedianPruner` per head (``warmups``: head -> warm-up steps), each blind to other heads."""
    import optuna

    class PerHeadMedianPruner(optuna.pruners.BasePruner):
        def __init__(self) -> None:
            self._pruners = {
                head: optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=w)
                for head, w in warmups.items()
            }
            self._default = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials)

        def prune(self, study: "optuna.Study", trial: "optuna.trial.FrozenTrial") -> bool:
            head = trial.params.get("head")
            if head is None and len(self._pruners) == 1:
                head = next(iter(self._pruners))
            pruner = self._pruners.get(head, self._default)
            return bool(pruner.prune(_SameHeadView(study, head), trial))  # type: ignore[arg-type]

    return PerHeadMedianPruner()
