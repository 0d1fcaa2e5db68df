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
from mixsig.studies._objective import COLLAPSED_ATTR, Objective
from mixsig.studies._pruning import make_pruner
from mixsig.studies._settings import SETTINGS_ATTR, SETTINGS_VERSION, StudySettings, parse_features
from mixsig.studies._space import TrialConfig, config_from_params, get_space
from mixsig.studies._storage import describe_storage, fail_dead_trials, open_storage

if TYPE_CHECKING:  # pragma: no cover
    import optuna

log = logging.getLogger(__name__)

RUN_ATTR = "run"
OVERRIDES_ATTR = "overrides"
RANKING = "configs with no collapsed seed first, then mean - std (ddof=1) over the re-evaluation seeds"


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
              threads: int | None = 1, on_trial: Callable | None = None, allow_group_leak: bool = False,
              allow_modality_mismatch: bool = False) -> dict:
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
    overrides = check_inputs(st, fmap, allow_group_leak=allow_group_leak,
                             allow_modality_mismatch=allow_modality_mismatch)
    data = StudyData(st, fmap, cv=cv, seed=seed)
    settings = StudySettings(
        heads=tuple(heads), features=tuple(fmap.items()), metric=metric, cv=cv, seed=seed, trials=trials,
        reeval_top=reeval_top, reeval_seeds=reeval_seeds, split_hash=st.split_hash(), rows_hash=data.rows_hash(),
        n_rows=len(data.rows),
    )
    stor = open_storage(_store_url(st), storage, parallel=False)
    study = _create_or_resume(stor, name, settings, st, data, new=new)
    study.set_user_attr(OVERRIDES_ATTR, overrides)
    objective = Objective(data, settings.heads, fmap, metric, seed=seed, threads=threads)
    _optimize(study, objective, trials, timeout, on_trial, _is_rdb(stor))
    if final:
        prev = study.user_attrs.get("result") or {}
        if prev.get("n_finished") == _n_finished(study) and prev.get("run") in st.runs() and \
                _same_overrides(prev, overrides):
            log.info("study %s: no new trials since run %s was written; keeping it", study.study_name, prev["run"])
        else:
            finalize_study(st, study, settings, objective, allow_group_leak=allow_group_leak,
                           allow_modality_mismatch=allow_modality_mismatch)
    return study_summary(st, study.study_name, storage=storage, _study=study)


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


def _same_overrides(result: dict, overrides: dict) -> bool:
    """Whether the run of ``result`` was written with the same allowances as asked now."""
    return all(result.get(k, False) == overrides[k] for k in ("allow_group_leak", "allow_modality_mismatch"))


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
    return _optimize(study, objective, settings.trials, timeout, on_trial, _is_rdb(stor), n_trials=trials)


# --- after the search -------------------------------------------------------------------------------------------


def top_configs(study, settings: StudySettings, k: int) -> list[tuple[Any, TrialConfig]]:
    """The ``k`` best distinct configurations of completed trials: ``[(FrozenTrial, TrialConfig), ...]``.

    Trials whose model collapsed (user attr ``collapsed``) come after every other trial, whatever their score;
    within each group the best score first (then the earlier trial)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = sorted(trials, key=lambda t: (bool(t.user_attrs.get(COLLAPSED_ATTR)), -t.value, t.number))
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


def robust_score(scores) -> tuple[float, float | None, float]:
    """``(mean, std with ddof=1 or None for one seed, mean - std)`` of per-seed scores; a non-finite score makes
    the robust score ``-inf`` (ranked last)."""
    vals = np.asarray(list(scores), dtype=np.float64)
    if vals.size == 0 or not np.all(np.isfinite(vals)):
        mean = float(np.mean(vals)) if vals.size else float("nan")
        return mean, None, float("-inf")
    mean = float(vals.mean())
    std = float(vals.std(ddof=1)) if vals.size > 1 else None
    return mean, std, mean - (std or 0.0)


def rank_reevaluations(results: list[dict]) -> list[dict]:
    """Re-evaluated configurations, best first: those with no collapsed seed first, then by the robust score
    ``mean - std`` (ddof=1) over the seeds, then by the search's score (``value``), then the earlier trial.

    Each result needs ``scores`` (one per seed) and may have ``collapsed_seeds`` (``[{"seed", "reason"}]``),
    ``value`` and ``trial``; ``mean``, ``std`` and ``robust`` are (re)computed and set on copies. A mean that
    hides a collapsed or a poor seed never wins: ``(0.85, 0.34, 0.34)`` (robust 0.22) ranks below
    ``(0.80, 0.79, 0.81)`` (robust 0.79).
    """
    out = []
    for r in results:
        mean, std, robust = robust_score(r["scores"])
        out.append({**r, "mean": mean, "std": std, "robust": robust,
                    "collapsed_seeds": list(r.get("collapsed_seeds") or [])})
    def value(r):
        v = r.get("value")
        return v if v is not None and np.isfinite(v) else float("-inf")

    return sorted(out, key=lambda r: (bool(r["collapsed_seeds"]), -r["robust"], -value(r), r.get("trial", 0)))


def finalize_study(store, study, settings: StudySettings, objective: Objective, *, allow_group_leak: bool = False,
                   allow_modality_mismatch: bool = False) -> dict:
    """Re-evaluate the best configurations over several seeds, train the winner as a run, score test once.

    The best ``settings.reeval_top`` distinct completed configurations (collapsed trials last, see
    :func:`top_configs`) are each trained with seeds ``seed, seed+1, ...`` (``reeval_seeds`` of them) on the
    study's fold(s), and every model is checked for collapse on validation. They are ranked by
    :func:`rank_reevaluations` (no collapsed seed first, then mean - std over the seeds); the first wins and is
    trained with :func:`mixsig.heads.train_run` on every subset of the study's modalities (see
    :func:`run_features`) with the same seeds: run ``study-<name>``, attrs ``source="study:<name>"``.
    ``allow_group_leak`` / ``allow_modality_mismatch`` are passed to ``train_run``.

    A winner whose run has collapsed models (run attrs ``collapsed``) is still written, with a loud warning, and
    the list is recorded in the result. Study user attrs ``reeval`` (ranked, best first), ``run`` and ``result``
    record the outcome; ``result`` holds the winner, its per-seed validation scores, mean, std (ddof=1), robust
    score and collapsed seeds, every re-evaluated configuration (``reeval``), the ``ranking`` rule, the study
    metric on test for every subset of the run, the run's ``collapsed`` list and what was allowed. Returns it.
    """
    from mixsig.heads import train_run

    top = top_configs(study, settings, settings.reeval_top)
    if not top:
        raise StudyError(f"study {study.study_name!r} has no completed trial to re-evaluate; run more trials")
    seeds = [settings.seed + i for i in range(settings.reeval_seeds)]
    results = []
    for trial, cfg in top:
        scores, collapsed = [], []
        for s in seeds:
            value, reason = objective.evaluate_detail(cfg, s)
            scores.append(value)
            if reason:
                collapsed.append({"seed": s, "reason": reason})
        results.append({"trial": trial.number, "value": trial.value, "config": cfg.to_dict(), "scores": scores,
                        "collapsed_seeds": collapsed, "trial_collapsed": trial.user_attrs.get(COLLAPSED_ATTR)})
    results = rank_reevaluations(results)
    for r in results:
        log.info("re-evaluated trial %d over seeds %s: %s %s, mean %.4f, std %s, robust %.4f%s", r["trial"], seeds,
                 settings.metric, ", ".join(f"{v:.4f}" for v in r["scores"]), r["mean"],
                 "n/a" if r["std"] is None else f"{r['std']:.4f}", r["robust"],
                 f"; collapsed seeds {[c['seed'] for c in r['collapsed_seeds']]}" if r["collapsed_seeds"] else "")
    winner = results[0]
    if winner["collapsed_seeds"]:
        log.warning("every re-evaluated configuration collapsed on at least one seed; the winner, trial %d, "
                    "collapsed on seed(s) %s: %s", winner["trial"], [c["seed"] for c in winner["collapsed_seeds"]],
                    winner["collapsed_seeds"][0]["reason"])
    cfg = config_from_params(next(t.params for t, _ in top if t.number == winner["trial"]), settings.heads,
                             settings.feature_map)
    name = run_name_for(study.study_name)
    st = _open(store)
    if getattr(st, "mode", "r+") != "r+":
        st = _open(str(st.url), mode="r+")
    head_params = objective.make_head(cfg).get_params()
    run = train_run(st, cfg.head, run_features(study, settings, cfg), seeds=list(seeds), params=head_params,
                    name=name, overwrite=True, allow_group_leak=allow_group_leak,
                    allow_modality_mismatch=allow_modality_mismatch)
    _link_run(st, name, study, settings, winner)
    test = _test_scores(st, run, settings.metric)
    run_collapsed = list(run.attrs.get("collapsed") or [])
    if run_collapsed:
        models = sorted({(e["subset"], e["seed"]) for e in run_collapsed})
        total = len(run.subsets) * len(seeds)
        log.warning("WINNER RUN %s HAS COLLAPSED MODELS: %d of %d models (subset x seed) predict one class or no "
                    "better than chance on %s (%s); their scores are not evidence of a signal. The run was written; "
                    "`mixsig study show` and the report list them.", name, len(models), total,
                    "/".join(sorted({e["split"] for e in run_collapsed})),
                    ", ".join(f"{sub} seed {sd}" for sub, sd in models))
    record = {"run": name, "trial": winner["trial"], "config": winner["config"], "val_mean": winner["mean"],
              "val_std": winner["std"], "val_robust": winner["robust"], "val_per_seed": winner["scores"],
              "val_collapsed_seeds": winner["collapsed_seeds"], "metric": settings.metric, "test": test,
              "seeds": seeds, "ranking": RANKING, "reeval": results, "collapsed": run_collapsed,
              "allow_group_leak": bool(allow_group_leak), "group_leak": run.attrs.get("group_leak"),
              "allow_modality_mismatch": bool(allow_modality_mismatch),
              "modality_mismatch": run.attrs.get("modality_mismatch") or {}, "n_finished": _n_finished(study)}
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
    store.update_run(name, source=f"study:{study.study_name}",
                     study={"name": study.study_name, "trial": winner["trial"], "settings_sha256": settings.sha256(),
                            "val_mean": winner["mean"], "val_std": winner["std"], "val_robust": winner["robust"],
                            "metric": settings.metric})


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
        out[sub] = {"mean": float(np.mean(per_seed)), "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
                    "per_seed": per_seed}
    return out


# --- show -----------------------------------------------------------------------------------------------------


def study_summary(store, name: str, *, storage: str | None = None, top: int = 5, _study=None) -> dict:
    """Everything ``mixsig study show`` prints, as a JSON-able dict.

    Keys: ``name``, ``storage``, ``settings``, ``states`` ({state: count}), ``best`` (the ``top`` best completed
    trials: number, value, params, duration_s, collapsed), ``collapsed`` (completed trials whose model collapsed:
    ``{"count", "trials": [{"number", "value", "head", "modalities", "reason"}]}``), ``importances``
    ({"all": {param: share}, "<head>": {...}} or ``{"unavailable": reason}``), ``overrides`` (what the last
    ``study run`` allowed: group leak, modality mismatch), ``reeval``, ``result`` and ``run`` (the linked run's
    attrs summary, if any).
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
             "duration_s": t.duration.total_seconds() if t.duration else None,
             "collapsed": t.user_attrs.get(COLLAPSED_ATTR)} for t in complete[:top]]
    collapsed = [{"number": t.number, "value": t.value, "head": t.params.get("head", settings.heads[0]),
                  "modalities": t.params.get("modalities", "+".join(settings.feature_map)),
                  "reason": t.user_attrs[COLLAPSED_ATTR]}
                 for t in sorted(complete, key=lambda t: t.number) if t.user_attrs.get(COLLAPSED_ATTR)]
    run_name = study.user_attrs.get(RUN_ATTR)
    run = None
    if run_name and run_name in st.runs():
        r = st.read_run(run_name)
        run = {"name": run_name, "head": r.attrs.get("head"), "features": r.attrs.get("features"),
               "seeds": r.attrs.get("seeds"), "source": r.attrs.get("source"), "subsets": list(r.subsets),
               "collapsed": r.attrs.get("collapsed"), "group_leak": r.attrs.get("group_leak"),
               "modality_mismatch": r.attrs.get("modality_mismatch")}
    return {
        "name": study.study_name,
        "storage": describe_storage(_store_url(st), storage),
        "settings": settings.to_dict(),
        "n_trials": len(trials),
        "excluded_rows": study.user_attrs.get("excluded_rows", {}),
        "states": states,
        "best": best,
        "collapsed": {"count": len(collapsed), "of_complete": len(complete), "trials": collapsed},
        "importances": _importances(complete, settings),
        "overrides": study.user_attrs.get(OVERRIDES_ATTR),
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
