"""Running studies: create or resume (``run``), join (``worker``), re-evaluate the best, write the winner as a run."""

from __future__ import annotations

import json
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from mixsig.errors import HeadError, StudyError
from mixsig.studies._data import StudyData
from mixsig.studies._objective import Objective
from mixsig.studies._pruning import make_pruner
from mixsig.studies._settings import SETTINGS_ATTR, StudySettings, parse_features
from mixsig.studies._space import TrialConfig, config_from_params, get_space
from mixsig.studies._storage import describe_storage, fail_dead_trials, open_storage

if TYPE_CHECKING:  # pragma: no cover
    import optuna

log = logging.getLogger(__name__)

RUN_ATTR = "run"


def run_name_for(study_name: str) -> str:
    """The run a study writes its winner to: ``study-<name>``."""
    return f"study-{study_name}"


def _open(store_or_url, mode: str = "r+"):
    from mixsig.cache import FeatureStore, open_store

    return store_or_url if isinstance(store_or_url, FeatureStore) else open_store(str(store_or_url), mode=mode)


def _store_url(store) -> str:
    path = getattr(store, "local_path", None)
    return str(path) if path is not None else store.url


def _sampler(seed: int | None) -> "optuna.samplers.BaseSampler":
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                          n_startup_trials=10)


def _pruner(settings: StudySettings):
    warmups = {h: (0 if settings.cv else get_space(h).warmup_steps) for h in settings.heads}
    return make_pruner(warmups)


def _n_finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _check_keys(store, features: Mapping[str, tuple[str, ...]]) -> None:
    have = set(store.keys())
    for m, keys in features.items():
        for k in keys:
            if k not in have:
                raise StudyError(
                    f"--features {m}={k}: no such key in the store {store.url}; keys: {', '.join(sorted(have)) or 'none'} "
                    "(`mixsig cache ls STORE` lists them)"
                )


def _new_name(storage, name: str) -> str:
    import optuna

    names = set(optuna.study.get_all_study_names(storage))
    i = 2
    while f"{name}-{i}" in names:
        i += 1
    return f"{name}-{i}"


def _load(storage, name: str):
    import optuna

    names = optuna.study.get_all_study_names(storage)
    if name not in names:
        raise StudyError(
            f"no study named {name!r} in this storage; studies: {', '.join(sorted(names)) or 'none'} "
            "(start one with `mixsig study run`)"
        )
    return optuna.load_study(study_name=name, storage=storage)


def _wait_for_settings(storage, name: str, seconds: float = 10.0) -> None:
    """Wait until the creator of study ``name`` has written its settings (it does so right after creating it)."""
    import time

    import optuna

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if SETTINGS_ATTR in optuna.load_study(study_name=name, storage=storage).user_attrs:
            return
        time.sleep(0.1)


def _settings_of(study) -> StudySettings:
    raw = study.user_attrs.get(SETTINGS_ATTR)
    if raw is None:
        raise StudyError(f"study {study.study_name!r} was not created by mixsig (no {SETTINGS_ATTR!r} user attribute)")
    return StudySettings.from_dict(raw)


def _optimize(study, objective: Objective, target: int | None, timeout: float | None,
              on_trial: Callable | None, is_rdb: bool, n_trials: int | None = None) -> int:
    """Run trials in this process until the study has ``target`` finished trials (all workers together), or this
    process ran ``n_trials`` (when given instead), or ``timeout`` seconds passed. Returns the trials run here."""
    import optuna
    from optuna.trial import TrialState

    if not is_rdb:
        fail_dead_trials(study)
    if n_trials is None and _n_finished(study) >= target:
        return 0
    ran = [0]

    def count(st, tr):
        ran[0] += 1
        if on_trial is not None:
            on_trial(st, tr)

    callbacks = [count]
    if n_trials is None:
        callbacks.insert(0, optuna.study.MaxTrialsCallback(target, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks,
                   catch=(HeadError, FloatingPointError), gc_after_trial=False)
    return ran[0]


def run_study(store, name: str, *, heads, features, trials: int = 100, timeout: float | None = None,
              metric: str = "macro_f1", cv: int | None = None, storage: str | None = None, seed: int = 0,
              new: bool = False, reeval_top: int = 3, reeval_seeds: int = 3, final: bool = True,
              threads: int | None = 1, on_trial: Callable | None = None) -> dict:
    """Create (or resume) study ``name`` on ``store`` and search until it has ``trials`` finished trials.

    ``heads``: names (e.g. ``("gated", "lightgbm")``) or ``"gated,lightgbm"``; ``features``:
    ``{modality: key or (key, ...)}`` or ``"text=K1|K2,audio=K3"``. An existing study with the same name is
    resumed when its settings and the store still match; otherwise :class:`StudyError` says what changed
    (``new=True`` starts a fresh study named ``<name>-2``, ... instead). With ``final`` the best
    ``reeval_top`` configurations are re-evaluated over ``reeval_seeds`` seeds and the winner is trained on all
    modality subsets as run ``study-<name>`` (see :func:`finalize_study`). Returns :func:`study_summary`.

    >>> run_study("cache.zarr", "s1", heads="gated,lightgbm", features="text=K1,audio=K2", trials=30)  # doctest: +SKIP
    """
    st = _open(store)
    if isinstance(heads, str):
        heads = tuple(h.strip() for h in heads.split(",") if h.strip())
    from mixsig.heads import list_heads

    unknown = [h for h in heads if h not in list_heads()]
    if unknown:
        raise StudyError(f"--heads: unknown head(s) {unknown}; heads: {', '.join(list_heads())}")
    fmap = parse_features(features)
    _check_keys(st, fmap)
    data = StudyData(st, fmap, cv=cv, seed=seed)
    settings = StudySettings(
        heads=tuple(heads), features=tuple(fmap.items()), metric=metric, cv=cv, seed=seed, trials=trials,
        reeval_top=reeval_top, reeval_seeds=reeval_seeds, split_hash=st.split_hash(), rows_hash=data.rows_hash(),
        n_rows=len(data.rows),
    )
    stor = open_storage(_store_url(st), storage, parallel=False)
    study = _create_or_resume(stor, name, settings, st, data, new=new)
    objective = Objective(data, settings.heads, fmap, metric, seed=seed, threads=threads)
    _optimize(study, objective, trials, timeout, on_trial, _is_rdb(stor))
    if final:
        prev = study.user_attrs.get("result") or {}
        if prev.get("n_finished") == _n_finished(study) and prev.get("run") in st.runs():
            log.info("study %s: no new trials since run %s was written; keeping it", study.study_name, prev["run"])
        else:
            finalize_study(st, study, settings, objective)
    return study_summary(st, study.study_name, storage=storage, _study=study)


def _is_rdb(storage) -> bool:
    import optuna

    return isinstance(storage, optuna.storages.RDBStorage)


def _create_or_resume(storage, name: str, settings: StudySettings, store, data: StudyData, *, new: bool):
    import optuna

    if name in optuna.study.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(settings.seed),
                                  pruner=_pruner(settings))
        old = _settings_of(study)
        problems = settings.search_differences(old) + old.store_differences(
            split_hash=store.split_hash(), rows_hash=data.rows_hash(), n_rows=len(data.rows), store_keys=store.keys())
        if old.trials != settings.trials and not problems:
            study.set_user_attr(SETTINGS_ATTR, {**old.to_dict(), "trials": settings.trials})
        if not problems:
            log.info("resuming study %s (%d finished trials)", name, _n_finished(study))
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
    study.set_user_attr("store", _store_url(store))
    study.set_user_attr("excluded_rows", {k: n for k, n in data.excluded.items() if n})
    return study


def join_study(store, name: str, *, storage: str | None = None, trials: int | None = None,
               timeout: float | None = None, threads: int | None = 1, on_trial: Callable | None = None) -> int:
    """Join study ``name`` as one more worker: same settings (read from the study); trials until the study has
    its target number of finished trials (all workers together), or until this process ran ``trials`` (when
    given), or ``timeout`` seconds. Returns the number of trials run here.

    Refuses SQLite storage, and a store whose keys, split or done rows changed since the study was created.
    """
    st = _open(store, mode="r")
    stor = open_storage(_store_url(st), storage, parallel=True)
    study = _load(stor, name)
    if SETTINGS_ATTR not in study.user_attrs:
        _wait_for_settings(stor, name)
        study = _load(stor, name)
    settings = _settings_of(study)
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
    return _optimize(study, objective, settings.trials, timeout, on_trial, _is_rdb(stor), n_trials=trials)


# --- after the search -------------------------------------------------------------------------------------------


def top_configs(study, settings: StudySettings, k: int) -> list[tuple[Any, TrialConfig]]:
    """The ``k`` best distinct configurations of finished trials: ``[(FrozenTrial, TrialConfig), ...]``."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = sorted(trials, key=lambda t: (-t.value, t.number))
    out, seen = [], set()
    for t in trials:
        cfg = config_from_params(t.params, settings.heads, settings.feature_map)
        sig = json.dumps(cfg.to_dict(), sort_keys=True)
        if sig in seen:
            continue
        seen.add(sig)
        out.append((t, cfg))
        if len(out) == k:
            break
    return out


def finalize_study(store, study, settings: StudySettings, objective: Objective) -> dict:
    """Re-evaluate the best configurations over several seeds, train the winner as a run, score test once.

    The best ``settings.reeval_top`` distinct completed configurations are each trained with seeds
    ``seed, seed+1, ...`` (``reeval_seeds`` of them) on the study's fold(s); the one with the best mean
    validation score wins and is trained with :func:`mixsig.heads.train_run` on every subset of the study's
    modalities (see :func:`run_features`) with the same seeds: run ``study-<name>``, attrs
    ``source="study:<name>"``. Study user attrs ``reeval``, ``run`` and ``result`` (winner, validation mean/std,
    the study metric on test for every subset of the run) record the outcome. Returns the ``result`` record.
    """
    from mixsig.heads import train_run

    top = top_configs(study, settings, settings.reeval_top)
    if not top:
        raise StudyError(f"study {study.study_name!r} has no completed trial to re-evaluate; run more trials")
    seeds = [settings.seed + i for i in range(settings.reeval_seeds)]
    results = []
    for trial, cfg in top:
        scores = [objective.evaluate(cfg, s) for s in seeds]
        results.append({"trial": trial.number, "value": trial.value, "config": cfg.to_dict(),
                        "scores": scores, "mean": float(np.mean(scores)), "std": float(np.std(scores))})
        log.info("re-evaluated trial %d over seeds %s: %s %.4f +- %.4f", trial.number, seeds, settings.metric,
                 results[-1]["mean"], results[-1]["std"])
    winner = max(results, key=lambda r: (r["mean"], r["value"]))
    cfg = config_from_params(next(t.params for t, _ in top if t.number == winner["trial"]), settings.heads,
                             settings.feature_map)
    name = run_name_for(study.study_name)
    st = _open(store)
    if getattr(st, "mode", "r+") != "r+":
        st = _open(str(st.url), mode="r+")
    head_params = objective.make_head(cfg).get_params()
    run = train_run(st, cfg.head, run_features(study, settings, cfg), seeds=list(seeds), params=head_params,
                    name=name, overwrite=True)
    _link_run(st, name, study, settings, winner)
    test = _test_scores(st, run, settings.metric)
    record = {"run": name, "trial": winner["trial"], "config": winner["config"], "val_mean": winner["mean"],
              "val_std": winner["std"], "metric": settings.metric, "test": test, "seeds": seeds,
              "n_finished": _n_finished(study)}
    study.set_user_attr("reeval", results)
    study.set_user_attr(RUN_ATTR, name)
    study.set_user_attr("result", record)
    return record


def run_features(study, settings: StudySettings, cfg: TrialConfig) -> dict[str, str]:
    """The keys the winner's run is trained on: every modality of the study, not only the winner's subset.

    The disagreement analysis compares the same head on every modality subset (PAPER.md), so the run covers all
    of the study's modalities. A modality in the winner's subset keeps the winner's key; any other takes the key of
    the best completed trial that used it (or its first alternative).
    """
    import optuna

    fmap = settings.feature_map
    out: dict[str, str] = {}
    done = sorted((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None),
                  key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)
    for m, keys in fmap.items():
        if m in cfg.features:
            out[m] = cfg.features[m]
            continue
        used = (t.params.get(f"key.{m}") for t in done if m in str(t.params.get("modalities", "")).split("+"))
        out[m] = next((k for k in used if k in keys), keys[0])
    return out


def _link_run(store, name: str, study, settings: StudySettings, winner: dict) -> None:
    """Mark run ``name`` as written by ``study`` (attrs ``source``, ``study``)."""
    g = store.root["runs"][name]
    g.attrs.update({
        "source": f"study:{study.study_name}",
        "study": {"name": study.study_name, "trial": winner["trial"], "settings_sha256": settings.sha256(),
                  "val_mean": winner["mean"], "val_std": winner["std"], "metric": settings.metric},
    })


def _test_scores(store, run, metric: str) -> dict:
    """The study metric on the test split for every subset of ``run``: {subset: {"mean", "std", "per_seed"}}."""
    from mixsig.metrics import get_metric

    fn = get_metric(metric)
    samples = store.samples
    rows = samples.rows("test")
    out = {}
    if len(rows) == 0:
        return out
    y = samples.label[rows]
    for sub, data in run.subsets.items():
        per_seed = []
        for s in range(data.probs.shape[0]):
            p = data.probs[s, rows]
            ok = np.all(np.isfinite(p), axis=1) & (y >= 0)
            per_seed.append(float(fn(y[ok], p[ok])) if ok.any() else float("nan"))
        out[sub] = {"mean": float(np.mean(per_seed)), "std": float(np.std(per_seed)), "per_seed": per_seed}
    return out


# --- show -----------------------------------------------------------------------------------------------------


def study_summary(store, name: str, *, storage: str | None = None, top: int = 5, _study=None) -> dict:
    """Everything ``mixsig study show`` prints, as a JSON-able dict.

    Keys: ``name``, ``storage``, ``settings``, ``states`` ({state: count}), ``best`` (the ``top`` best completed
    trials: number, value, params, duration_s), ``importances`` ({"all": {param: share}, "<head>": {...}} or
    ``{"unavailable": reason}``), ``reeval``, ``result`` and ``run`` (the linked run's attrs summary, if any).
    """
    from optuna.trial import TrialState

    st = _open(store, mode="r")
    study = _study
    if study is None:
        study = _load(open_storage(_store_url(st), storage, parallel=False), name)
    settings = _settings_of(study)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (-t.value, t.number))
    best = [{"number": t.number, "value": t.value, "params": t.params,
             "duration_s": t.duration.total_seconds() if t.duration else None} for t in complete[:top]]
    run_name = study.user_attrs.get(RUN_ATTR)
    run = None
    if run_name and run_name in st.runs():
        r = st.read_run(run_name)
        run = {"name": run_name, "head": r.attrs.get("head"), "features": r.attrs.get("features"),
               "seeds": r.attrs.get("seeds"), "source": r.attrs.get("source"), "subsets": list(r.subsets)}
    return {
        "name": study.study_name,
        "storage": describe_storage(_store_url(st), storage),
        "settings": settings.to_dict(),
        "n_trials": len(trials),
        "excluded_rows": study.user_attrs.get("excluded_rows", {}),
        "states": states,
        "best": best,
        "importances": _importances(complete, settings),
        "reeval": study.user_attrs.get("reeval"),
        "result": study.user_attrs.get("result"),
        "run": run,
    }


def _importances(complete: list, settings: StudySettings) -> dict:
    """fANOVA importances over the parameters every completed trial has, and per head over that head's trials."""
    import optuna

    out: dict[str, Any] = {}
    groups = {"all": complete}
    if len(settings.heads) > 1:
        for h in settings.heads:
            groups[h] = [t for t in complete if t.params.get("head") == h]
    for label, trials in groups.items():
        if len(trials) < 3:
            out[label] = {"unavailable": f"{len(trials)} completed trial(s); importances need at least 3"}
            continue
        common = set.intersection(*(set(t.params) for t in trials))
        varying = sorted(p for p in common if len({json.dumps(t.params[p]) for t in trials}) > 1)
        if not varying:
            out[label] = {"unavailable": "no parameter varies across the completed trials"}
            continue
        sub = optuna.create_study(direction="maximize")
        sub.add_trials(trials)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                imp = optuna.importance.get_param_importances(
                    sub, params=varying, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
            out[label] = {k: float(v) for k, v in imp.items()}
        except (RuntimeError, ValueError) as exc:
            out[label] = {"unavailable": str(exc).splitlines()[0]}
    return out
