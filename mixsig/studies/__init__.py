"""Optuna studies over the cache: search heads, hyperparameters, modality subsets and keys; write the winner as a run.

Public API::

    from mixsig.studies import run_study, join_study, study_summary
    summary = run_study("cache.zarr", "s1", heads="gated,lightgbm",
                        features="text=K1|K2,audio=K3,video=K4", trials=100)
    join_study("cache.zarr", "s1")            # another process: one more worker on the same study
    study_summary("cache.zarr", "s1")         # best trials, collapsed trials, importances, states, the run

Storage: ``<store>/studies.journal`` (Optuna journal file, several local processes) unless ``storage=`` gives an
RDB URL (``postgresql://...``: heartbeats, dead workers' trials retried). The study is readable with
``optuna.load_study(study_name=..., storage=mixsig.studies.open_storage(store_url))``.
Search spaces per head: :func:`describe_spaces` (also in ``mixsig study run --help``); torch heads search a
budget of optimizer steps, with the batch sized from the training rows, so one space serves 200 to 200,000 rows.

A study never crowns a model that predicts one class without saying so: every trial's model is checked for
collapse (user attr ``collapsed``; such trials are re-evaluated last), re-evaluation ranks configurations with no
collapsed seed first and then by mean - std over seeds (:func:`rank_reevaluations`), and a winner whose run still
has collapsed models is written with a loud warning, listed by ``study show``.
"""

from mixsig.studies._data import Fold, StudyData
from mixsig.metrics import METRICS, get_metric
from mixsig.studies._objective import Objective
from mixsig.studies._settings import StudySettings, parse_features
from mixsig.studies._space import (
    HeadSpace, TrialConfig, config_from_params, describe_spaces, get_space, list_spaces, modality_subsets,
    register_space,
)
from mixsig.studies._storage import JOURNAL_NAME, fail_dead_trials, open_storage
from mixsig.studies._study import (
    check_inputs, finalize_study, join_study, rank_reevaluations, robust_score, run_name_for, run_study,
    study_summary, top_configs,
)

__all__ = [
    "JOURNAL_NAME", "METRICS", "Fold", "HeadSpace", "Objective", "StudyData", "StudySettings", "TrialConfig",
    "check_inputs", "config_from_params", "describe_spaces", "fail_dead_trials", "finalize_study", "get_metric", "get_space",
    "join_study", "list_spaces", "modality_subsets", "open_storage", "parse_features", "register_space",
    "rank_reevaluations", "robust_score", "run_name_for", "run_study", "study_summary", "top_configs",
]
