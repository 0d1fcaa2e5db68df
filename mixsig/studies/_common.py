"""What the lifecycle, the finalisation and the summary of a study share: attr names, the store and study lookups."""

from __future__ import annotations

from mixsig.errors import StudyError, did_you_mean
from mixsig.studies._settings import SETTINGS_ATTR, StudySettings

#: study user attrs: the winner's run name, what the last ``study run`` allowed, the re-evaluation, the result
RUN_ATTR = "run"
OVERRIDES_ATTR = "overrides"
REEVAL_ATTR = "reeval"
RESULT_ATTR = "result"


def run_name_for(study_name: str) -> str:
    """The run a study writes its winner to: ``study-<name>``."""
    return f"study-{study_name}"


def open_store_arg(store_or_url, mode: str = "r+"):
    """``store_or_url`` as a :class:`~mixsig.cache.FeatureStore` (opened with ``mode`` when it is a path/URL)."""
    from mixsig.cache import FeatureStore, open_store

    return store_or_url if isinstance(store_or_url, FeatureStore) else open_store(str(store_or_url), mode=mode)


def store_url(store) -> str:
    """The store's local folder (the journal lives beside it), else its URL."""
    path = getattr(store, "local_path", None)
    return str(path) if path is not None else store.url


def n_finished(study) -> int:
    """Complete + pruned trials of ``study`` (all workers together)."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def load_study(storage, name: str):
    """Study ``name`` of ``storage``; :class:`StudyError` listing the studies there otherwise."""
    import optuna

    names = optuna.study.get_all_study_names(storage)
    if name not in names:
        raise StudyError(
            f"no study named {name!r} in this storage;{did_you_mean(name, names)} studies: "
            f"{', '.join(sorted(names)) or 'none'} "
            "(start one with `mixsig study run`)"
        )
    return optuna.load_study(study_name=name, storage=storage)


def settings_of(study) -> StudySettings:
    """The :class:`StudySettings` a mixsig study records in its user attrs."""
    raw = study.user_attrs.get(SETTINGS_ATTR)
    if raw is None:
        raise StudyError(f"study {study.study_name!r} was not created by mixsig (no {SETTINGS_ATTR!r} user attribute)")
    return StudySettings.from_dict(raw)
