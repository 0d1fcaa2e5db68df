"""Optuna studies over the cache: search heads, hyperparameters, modality subsets and keys; write the winner as a run.

Public API::

    from mixsig.studies import run_study, join_study, study_summary
    summary = run_study("cache.zarr", "s1", heads="gated,lightgbm",
                        features="text=K1|K2,audio=K3,video=K4", trials=100)
    join_study("cache.zarr", "s1")            # another process: one more worker on the same study
    study_summary("cache.zarr", "s1")         # best trials, importances, trials by state, the linked run

Storage: ``<store>/studies.journal`` (Optuna journal file, several local processes) unless ``storage=`` gives an
RDB URL (``postgresql://...``: heartbeats, dead workers' trials retried). The study is readable with
``optuna.load_study(study_name=..., storage=mixsig.studies.open_storage(store_url))``.
Search spaces per head: :func:`describe_spaces` (also in ``mixsig study run --help``).
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
from mixsig.studies._study import finalize_study, join_study, run_name_for, run_study, study_summary, top_configs

__all__ = [
    "JOURNAL_NAME", "METRICS", "Fold", "HeadSpace", "Objective", "StudyData", "StudySettings", "TrialConfig",
    "config_from_params", "describe_spaces", "fail_dead_trials", "finalize_study", "get_metric", "get_space",
    "join_study", "list_spaces", "modality_subsets", "open_storage", "parse_features", "register_space",
    "run_name_for", "run_study", "study_summary", "top_configs",
]
