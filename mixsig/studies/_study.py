"""The lifecycle of a study: create or resume it (``run``), join it (``worker``), search until its target.

After the search ``run_study`` hands over to :func:`~mixsig.studies.finalize_study` (``_finalize``) and returns
:func:`~mixsig.studies.study_summary` (``_summary``).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Callable, Mapping

from mixsig.errors import HeadError, MixsigError, StudyError, did_you_mean
from mixsig.features import parse_features
from mixsig.studies._common import (
    OVERRIDES_ATTR, RESULT_ATTR, load_study, n_finished, open_store_arg, settings_of, store_url,
)
from mixsig.studies._data import StudyData
from mixsig.studies._finalize import finalize_study
from mixsig.studies._objective import Objective
from mixsig.studies._pruning import make_pruner
from mixsig.studies._settings import SETTINGS_ATTR, SETTINGS_VERSION, StudySettings
from mixsig.studies._space import get_space
from mixsig.studies._storage import fail_dead_trials, open_storage, run_lock, uses_heartbeat
from mixsig.studies._summary import IN_SAMPLE_ATTR, study_summary

if TYPE_CHECKING:  # pragma: no cover
    import optuna

log = logging.getLogger(__name__)

#: study user attrs the dashboard shows beside the mixsig settings: the keys searched per modality and the hash of
#: the store's split (``Samples.split_hash``)
FEATURE_KEYS_ATTR = "feature_keys"
SPLIT_HASH_ATTR = "split_hash"


class _DropInterrupted(logging.Filter):
    """Drops Optuna's two records of a trial failed by a Ctrl-C ("Trial N failed ... KeyboardInterrupt" with its
    traceback, then "Trial N failed with value None."): the CLI says it in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: str | None = None  # "Trial N failed" of the interrupted trial

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyboardInterrupt) or "KeyboardInterrupt" in msg:
            self.dropped = msg.split(" with ")[0]
            return False
        return not (self.dropped and msg.startswith(self.dropped + " with value"))


def _sampler(seed: int | None) -> "optuna.samplers.BaseSampler":
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=10)


def _pruner(settings: StudySettings):
    warmups = {h: (0 if settings.cv else get_space(h).warmup_steps) for h in settings.heads}
    return make_pruner(warmups)




def _new_name(storage, name: str) -> str:
    import optuna

    names = set(optuna.study.get_all_study_names(storage))
    i = 2
    while f"{name}-{i}" in names:
        i += 1
    return f"{name}-{i}"




def _wait_for_settings(storage, name: str, seconds: float = 10.0) -> None:
    """Wait until the creator of study ``name`` has written its settings (it does so right after creating it)."""
    import time

    import optuna

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if SETTINGS_ATTR in optuna.load_study(study_name=name, storage=storage).user_attrs:
            return
        time.sleep(0.1)




def _optimize(study, objective: Objective, target: int | None, timeout: float | None,
              on_trial: Callable | None, check_workers: bool, n_trials: int | None = None) -> int:
    """Run trials in this process until the study has ``target`` finished trials (all workers together), or this
    process ran ``n_trials`` (when given instead), or ``timeout`` seconds passed. Returns the trials run here.

    With ``check_workers`` (journal and SQLite storages: no heartbeat) RUNNING trials of dead workers are marked
    FAIL at start and after every trial (:func:`fail_dead_trials`). A mixsig error hidden by Optuna behind an
    ``AssertionError`` (a ``tell`` that failed, e.g. on a full disk) is raised as itself."""
    import optuna
    from optuna.trial import TrialState

    if check_workers:
        fail_dead_trials(study)
    if n_trials is None and n_finished(study) >= target:
        return 0
    ran = [0]

    def count(st, tr):
        ran[0] += 1
        if on_trial is not None:
            on_trial(st, tr)

    callbacks = [count]
    if check_workers:
        callbacks.insert(0, lambda st, tr: fail_dead_trials(st))
    if n_trials is None:
        callbacks.insert(0, optuna.study.MaxTrialsCallback(target, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    quiet = _DropInterrupted()
    optuna_log = logging.getLogger("optuna.study._optimize")
    optuna_log.addFilter(quiet)
    try:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks,
                       catch=(HeadError, FloatingPointError), gc_after_trial=False)
    except AssertionError as exc:  # Optuna's, from a `finally`, when a trial's tell failed (e.g. a full disk)
        cause = mixsig_error_in(exc)
        if cause is None:
            raise
        raise cause from None
    finally:
        optuna_log.removeFilter(quiet)
    return ran[0]


def run_study(store, name: str, *, heads, features, trials: int = 100, timeout: float | None = None,
              metric: str = "macro_f1", cv: int | None = None, storage: str | None = None, seed: int = 0,
              new: bool = False, reeval_top: int = 3, reeval_seeds: int = 3, final: bool = True,
              threads: int | None = 1, on_trial: Callable | None = None, allow_group_leak: bool = False,
              allow_modality_mismatch: bool = False, on_reeval: Callable | None = None) -> dict:
    """Create (or resume) study ``name`` on ``store`` and search until it has ``trials`` finished trials.

    ``heads``: names (e.g. ``("gated", "lightgbm")``) or ``"gated,lightgbm"``; ``features``:
    ``{modality: key or (key, ...)}`` or ``"text=K1|K2,audio=K3"``. An existing study with the same name is
    resumed when its settings and the store still match; otherwise :class:`StudyError` says what changed
    (``new=True`` starts a fresh study named ``<name>-2``, ... instead). With ``final`` the best
    ``reeval_top`` configurations are re-evaluated over ``reeval_seeds`` seeds and the winner is trained on all
    modality subsets as run ``study-<name>`` (see :func:`finalize_study`). Returns :func:`study_summary`.

    Before any trial: groups of the store's samples in more than one split raise
    :class:`~mixsig.errors.GroupLeak` (exit 3) unless ``allow_group_leak``, and a key used as another modality
    than it holds raises :class:`~mixsig.errors.UsageError` (exit 2) unless ``allow_modality_mismatch``; what was
    allowed is recorded in the study's user attr ``overrides`` and in its ``result``, and passed to the run.

    The study's user attrs ``feature_keys`` ({modality: [key, ...]}) and ``split_hash`` and each trial's ``keys``
    (``text=K1, audio=K3``) and ``features`` are what optuna-dashboard shows of the data. ``on_reeval(done,
    total)`` is called before the re-evaluation (done 0) and after each of its models. A Ctrl-C marks the running
    trial FAIL with user attr ``fail_reason`` and raises ``KeyboardInterrupt`` (Optuna's traceback of it is not
    logged).

    >>> run_study("cache.zarr", "s1", heads="gated,lightgbm", features="text=K1,audio=K2", trials=30)  # doctest: +SKIP
    """
    st = open_store_arg(store)
    if isinstance(heads, str):
        heads = tuple(h.strip() for h in heads.split(",") if h.strip())
    from mixsig.heads import list_heads

    unknown = [h for h in heads if h not in list_heads()]
    if unknown:
        raise StudyError(f"--heads: unknown head(s) {unknown};{did_you_mean(unknown[0], list_heads())} heads: "
                         f"{', '.join(list_heads())}")
    fmap = parse_features(features, alternatives=True, error=StudyError)
    # each alternative a full key, a unique prefix or the modality alone (unknown: StudyError listing the keys;
    # ambiguous: UsageError listing the candidates); the study and its run record the full keys
    fmap = st.resolve_features(fmap, error=StudyError)
    overrides = check_inputs(st, fmap, allow_group_leak=allow_group_leak,
                             allow_modality_mismatch=allow_modality_mismatch)
    in_sample = warn_in_sample(st, fmap)
    data = StudyData(st, fmap, cv=cv, seed=seed)
    settings = StudySettings(
        heads=tuple(heads), features=tuple(fmap.items()), metric=metric, cv=cv, seed=seed, trials=trials,
        reeval_top=reeval_top, reeval_seeds=reeval_seeds, split_hash=st.split_hash(), rows_hash=data.rows_hash(),
        n_rows=len(data.rows),
    )
    with run_lock(storage, name):  # SQLite: one `study run` at a time, refused up front naming the holder
        stor = open_storage(store_url(st), storage, parallel=False)
        study = _create_or_resume(stor, name, settings, st, data, new=new)
        study.set_user_attr(OVERRIDES_ATTR, overrides)
        study.set_user_attr(IN_SAMPLE_ATTR, in_sample)
        study.set_user_attr(FEATURE_KEYS_ATTR, {m: list(k) for m, k in fmap.items()})
        study.set_user_attr(SPLIT_HASH_ATTR, settings.split_hash)
        objective = Objective(data, settings.heads, fmap, metric, seed=seed, threads=threads)
        _optimize(study, objective, trials, timeout, on_trial, not uses_heartbeat(stor))
        if final:
            prev = study.user_attrs.get(RESULT_ATTR) or {}
            if prev.get("n_finished") == n_finished(study) and prev.get("run") in st.runs() and \
                    _same_overrides(prev, overrides):
                log.info("study %s: no new trials since run %s was written; keeping it", study.study_name, prev["run"])
            else:
                _progress_of_reeval(study, settings, objective, on_reeval)
                finalize_study(st, study, settings, objective, allow_group_leak=allow_group_leak,
                               allow_modality_mismatch=allow_modality_mismatch)
        return study_summary(st, study.study_name, storage=storage, _study=study)


def _progress_of_reeval(study, settings: StudySettings, objective: Objective, on_reeval: Callable | None) -> None:
    """Make ``objective`` call ``on_reeval(done, total)`` after each re-evaluated model (total: the configurations
    re-evaluated, at most ``reeval_top``, times ``reeval_seeds``); ``on_reeval(0, total)`` now."""
    if on_reeval is None:
        return
    from mixsig.studies._finalize import top_configs

    total = len(top_configs(study, settings, settings.reeval_top)) * settings.reeval_seeds
    done = [0]

    def step() -> None:
        done[0] += 1
        on_reeval(done[0], total)

    objective.after_evaluation = step
    on_reeval(0, total)


def check_inputs(store, features: Mapping[str, tuple[str, ...]], *, allow_group_leak: bool = False,
                 allow_modality_mismatch: bool = False) -> dict:
    """The refusals of ``mixsig study run``, before any trial: a group leak across splits
    (:class:`~mixsig.errors.GroupLeak`, exit 3) and keys used as another modality than they hold
    (:class:`~mixsig.errors.UsageError`, exit 2, over every key of every modality), each unless allowed.

    Returns the record of what was allowed: ``{"allow_group_leak", "group_leak" (leak record or None),
    "allow_modality_mismatch", "modality_mismatch" ({key: {"used_as", "holds"}}, empty when none)}``.
    """
    leak = store.check_group_leak(allow_group_leak, "mixsig study run")
    mismatch = store.check_modalities(features, allow=allow_modality_mismatch)
    if leak:
        from mixsig.cache import describe_group_leak

        log.warning("group leak allowed (--allow-group-leak): %s; validation and test scores are inflated",
                    describe_group_leak(leak))
    for key, m in mismatch.items():
        log.warning("modality mismatch allowed (--allow-modality-mismatch): %s=%s holds %s features",
                    m["used_as"], key, m["holds"])
    return {"allow_group_leak": bool(allow_group_leak), "group_leak": leak,
            "allow_modality_mismatch": bool(allow_modality_mismatch), "modality_mismatch": mismatch}


def warn_in_sample(store, features: Mapping[str, tuple[str, ...]]) -> dict:
    """The study's fine-tuned keys whose train rows were embedded in-sample (:func:`mixsig.cache.in_sample_keys`
    over every key of every modality), each warned: trials on them learn from over-confident train features."""
    from mixsig.cache import describe_in_sample, in_sample_keys

    found = in_sample_keys(store, [k for keys in features.values() for k in keys])
    for key, entry in found.items():
        log.warning("%s", describe_in_sample(key, entry))
    return found


def _same_overrides(result: dict, overrides: dict) -> bool:
    """Whether the run of ``result`` was written with the same allowances as asked now."""
    return all(result.get(k, False) == overrides[k] for k in ("allow_group_leak", "allow_modality_mismatch"))


def _create_or_resume(storage, name: str, settings: StudySettings, store, data: StudyData, *, new: bool):
    import optuna

    if name in optuna.study.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(settings.seed),
                                  pruner=_pruner(settings))
        old = settings_of(study)
        problems = settings.search_differences(old) + old.store_differences(
            split_hash=store.split_hash(), rows_hash=data.rows_hash(), n_rows=len(data.rows), store_keys=store.keys())
        if old.trials != settings.trials and not problems:
            study.set_user_attr(SETTINGS_ATTR, {**old.to_dict(), "trials": settings.trials})
        if not problems:
            log.info("resuming study %s (%d finished trials)", name, n_finished(study))
            return study
        if not new:
            raise StudyError(
                f"study {name!r} exists and was made on different settings or data: " + "; ".join(problems)
                + ". Pass --new to start a new study beside it, or choose another --name."
            )
        name = _new_name(storage, name)
        log.warning("study exists with other settings (%s); starting new study %r", "; ".join(problems), name)
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                    sampler=_sampler(settings.seed), pruner=_pruner(settings))
    except optuna.exceptions.DuplicatedStudyError:  # another `study run` created it a moment ago: resume that
        _wait_for_settings(storage, name)
        return _create_or_resume(storage, name, settings, store, data, new=False)
    from mixsig import __version__

    study.set_user_attr(SETTINGS_ATTR, settings.to_dict())
    study.set_user_attr("mixsig_version", __version__)
    study.set_user_attr("store", store_url(store))
    study.set_user_attr("excluded_rows", {k: n for k, n in data.excluded.items() if n})
    return study


def join_study(store, name: str, *, storage: str | None = None, trials: int | None = None,
               timeout: float | None = None, threads: int | None = 1, on_trial: Callable | None = None) -> int:
    """Join study ``name`` as one more worker: same settings (read from the study); trials until the study has
    its target number of finished trials (all workers together), or until this process ran ``trials`` (when
    given), or ``timeout`` seconds. Returns the number of trials run here.

    Refuses SQLite storage, and a store whose keys, split or done rows changed since the study was created.
    """
    st = open_store_arg(store, mode="r")
    stor = open_storage(store_url(st), storage, parallel=True)
    study = load_study(stor, name)
    if SETTINGS_ATTR not in study.user_attrs:
        _wait_for_settings(stor, name)
        study = load_study(stor, name)
    settings = settings_of(study)
    if settings.version != SETTINGS_VERSION:
        raise StudyError(f"study {name!r} was made with search-space version {settings.version}; this mixsig "
                         f"searches version {SETTINGS_VERSION} and cannot add trials to it. Start a new study with "
                         "`mixsig study run ... --new`.")
    fmap = settings.feature_map
    problems = settings.store_differences(split_hash=st.split_hash(), rows_hash=settings.rows_hash,
                                          n_rows=settings.n_rows, store_keys=st.keys())
    if not problems:
        data = StudyData(st, fmap, cv=settings.cv, seed=settings.seed)
        problems = settings.store_differences(split_hash=st.split_hash(), rows_hash=data.rows_hash(),
                                              n_rows=len(data.rows), store_keys=st.keys())
    if problems:
        raise StudyError(f"study {name!r} was made on other data than this store now holds: " + "; ".join(problems)
                         + ". Start a new study with `mixsig study run ... --new`.")
    import optuna

    worker_seed = (settings.seed * 1_000_003 + os.getpid()) % (2**31)
    study = optuna.load_study(study_name=name, storage=stor, sampler=_sampler(worker_seed), pruner=_pruner(settings))
    objective = Objective(data, settings.heads, fmap, settings.metric, seed=settings.seed, threads=threads)
    return _optimize(study, objective, settings.trials, timeout, on_trial, not uses_heartbeat(stor), n_trials=trials)


def mixsig_error_in(exc: BaseException) -> MixsigError | None:
    """The :class:`~mixsig.errors.MixsigError` hidden behind ``exc`` when ``exc`` is an ``AssertionError`` raised
    inside Optuna: Optuna raises one from a ``finally`` when a trial's ``tell`` failed, hiding e.g. a full disk's
    error (its cause or context). None for anything else, so a real bug raised while a mixsig error was being
    handled (in mixsig, a callback, any library) propagates as itself."""
    if not isinstance(exc, AssertionError) or not _raised_in_optuna(exc):
        return None
    seen, inner = 0, exc.__cause__ or exc.__context__
    while inner is not None and seen < 20:
        if isinstance(inner, MixsigError):
            return inner
        inner, seen = inner.__cause__ or inner.__context__, seen + 1
    return None


def _raised_in_optuna(exc: BaseException) -> bool:
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0] == "optuna"
