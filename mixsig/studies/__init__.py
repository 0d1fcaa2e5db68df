"""Optuna studies over the cache: search heads, hyperparameters, modality subsets and keys; write the winner as a run.

Public API::

    from mixsig.studies import run_study, join_study, study_summary
    summary = run_study("cache.zarr", "s1", heads="gated,lightgbm",
                        features="text=K1|K2,audio=K3,video=K4", trials=100)
    join_study("cache.zarr", "s1")            # another process: one more worker on the same study
    study_summary("cache.zarr", "s1")         # best trials, collapsed trials, importances, states, the run

Storage: ``<store>/.mixsig/studies.journal`` (Optuna journal file, several local processes) unless ``storage=`` gives an
RDB URL (``postgresql://...``: heartbeats, dead workers' trials retried). The study is readable with
``optuna.load_study(study_name=..., storage=mixsig.studies.open_storage(store_url))``.
Search spaces per head: one :class:`HeadSpace` each, its parameters declared once as :class:`Float` /
:class:`Int` / :class:`Categorical` specs (the ``suggest_*`` call and the documented range);
:func:`describe_spaces` (``mixsig study spaces``, ``mixsig study run --help``) reads them. Torch heads search a
budget of optimizer steps, with the batch sized from the training rows, so one space serves 200 to 200,000 rows.

A study never crowns a model that predicts one class without saying so: every trial's model is checked for
collapse (user attr ``collapsed``; such trials are re-evaluated last), re-evaluation ranks configurations with no
collapsed seed first and then by mean - std over seeds (:func:`rank_reevaluations`), and a winner whose run still
has collapsed models is written with a loud warning, listed by ``study show``.

Modules by job: ``_study`` (run/join lifecycle), ``_finalize`` (top configs, re-evaluation ranking, robust score,
the winner's run), ``_summary`` (``study show``), ``_common`` (what they share), ``_space`` / ``_params``
(search spaces), ``_config`` (one point of the space: ``suggest_config``), ``_objective`` (one trial; per-head
fitters in :data:`FITTERS`), ``_data``, ``_pruning``, ``_settings``, ``_storage``. Importing this package is
cheap: names load on first use (PEP 562), and the spaces import neither numpy nor optuna.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixsig._lazy import lazy_exports

#: public name -> the module defining it (imported on first use: ``mixsig study --help`` imports no numpy)
_EXPORTS = {
    "Fold": "_data", "StudyData": "_data",
    "FITTERS": "_objective", "Objective": "_objective", "register_fitter": "_objective",
    "Categorical": "_params", "Float": "_params", "Int": "_params",
    "StudySettings": "_settings",
    "HeadSpace": "_space", "SPACES": "_space", "describe_spaces": "_space", "get_space": "_space",
    "list_spaces": "_space", "register_space": "_space",
    "TrialConfig": "_config", "config_from_params": "_config", "suggest_config": "_config",
    "check_journals": "_journal",
    "JOURNAL_NAME": "_storage", "fail_dead_trials": "_storage", "journal_file": "_storage",
    "open_storage": "_storage",
    "run_name_for": "_common",
    "check_inputs": "_study", "join_study": "_study", "run_study": "_study",
    "finalize_study": "_finalize", "rank_reevaluations": "_finalize", "robust_score": "_finalize",
    "top_configs": "_finalize",
    "study_summary": "_summary",
}
#: names of other modules, re-exported as before
_ALIASES = {"METRICS": "mixsig.metrics", "get_metric": "mixsig.metrics"}

__all__ = sorted([*_EXPORTS, *_ALIASES])

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from mixsig.metrics import METRICS, get_metric
    from mixsig.studies._common import run_name_for
    from mixsig.studies._data import Fold, StudyData
    from mixsig.studies._finalize import finalize_study, rank_reevaluations, robust_score, top_configs
    from mixsig.studies._objective import FITTERS, Objective, register_fitter
    from mixsig.studies._params import Categorical, Float, Int
    from mixsig.studies._settings import StudySettings
    from mixsig.studies._config import TrialConfig, config_from_params, suggest_config
    from mixsig.studies._space import SPACES, HeadSpace, describe_spaces, get_space, list_spaces, register_space
    from mixsig.studies._journal import check_journals
    from mixsig.studies._storage import JOURNAL_NAME, fail_dead_trials, journal_file, open_storage
    from mixsig.studies._study import check_inputs, join_study, run_study
    from mixsig.studies._summary import study_summary


__getattr__, __dir__ = lazy_exports(__name__, {**_EXPORTS, **_ALIASES}, globals())
