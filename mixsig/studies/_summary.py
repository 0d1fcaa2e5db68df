"""What ``mixsig study show`` prints: :func:`study_summary`, a JSON-able dict of a study and its linked run."""

from __future__ import annotations

import json
import warnings
from typing import Any

from mixsig.studies._common import (
    OVERRIDES_ATTR, REEVAL_ATTR, RESULT_ATTR, RUN_ATTR, load_study, open_store_arg, settings_of, store_url,
)
from mixsig.studies._objective import COLLAPSED_ATTR
from mixsig.studies._settings import StudySettings
from mixsig.studies._storage import FAILED_ATTR, describe_storage, open_storage

#: study user attr: the fine-tuned keys of the study made in-sample ({key: mixsig.cache.in_sample_keys entry})
IN_SAMPLE_ATTR = "in_sample_keys"


def study_summary(store, name: str, *, storage: str | None = None, top: int = 5, _study=None) -> dict:
    """Everything ``mixsig study show`` prints, as a JSON-able dict.

    Keys: ``name``, ``storage``, ``settings``, ``states`` ({state: count}), ``best`` (the ``top`` best completed
    trials: number, value, params, duration_s, collapsed, features: {modality: key} it trained on), ``collapsed`` (completed trials whose model collapsed:
    ``{"count", "trials": [{"number", "value", "head", "modalities", "reason"}]}``), ``failed`` (trials failed
    because their worker died: {number: reason}), ``importances`` ({"all": {param: share}, "<head>": {...}} or
    ``{"unavailable": reason}``), ``overrides`` (what the last ``study run`` allowed: group leak, modality
    mismatch), ``in_sample_keys`` (the study's fine-tuned keys whose train rows were embedded in-sample:
    {key: :func:`mixsig.cache.in_sample_keys` entry}), ``reeval``, ``result`` and ``run`` (the linked run's attrs
    summary, if any, with its ``selection_splits``).
    """
    from optuna.trial import TrialState

    st = open_store_arg(store, mode="r")
    study = _study
    if study is None:
        study = load_study(open_storage(store_url(st), storage, parallel=False), name)
    settings = settings_of(study)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: (-t.value, t.number))
    best = [{"number": t.number, "value": t.value, "params": t.params,
             "duration_s": t.duration.total_seconds() if t.duration else None,
             "collapsed": t.user_attrs.get(COLLAPSED_ATTR), "features": t.user_attrs.get("features")}
            for t in complete[:top]]
    return {
        "name": study.study_name,
        "storage": describe_storage(store_url(st), storage),
        "settings": settings.to_dict(),
        "n_trials": len(trials),
        "excluded_rows": study.user_attrs.get("excluded_rows", {}),
        "states": states,
        "best": best,
        "collapsed": _collapsed(complete, settings),
        "failed": _failed(study),
        "importances": _importances(complete, settings),
        "overrides": study.user_attrs.get(OVERRIDES_ATTR),
        "in_sample_keys": _in_sample(st, study, settings),
        "reeval": study.user_attrs.get(REEVAL_ATTR),
        "result": study.user_attrs.get(RESULT_ATTR),
        "run": _linked_run(st, study.user_attrs.get(RUN_ATTR)),
    }


def _collapsed(complete: list, settings: StudySettings) -> dict:
    """``{"count", "of_complete", "trials": [...]}``: the completed trials whose model collapsed, by number."""
    trials = [{"number": t.number, "value": t.value, "head": t.params.get("head", settings.heads[0]),
               "modalities": t.params.get("modalities", "+".join(settings.feature_map)),
               "reason": t.user_attrs[COLLAPSED_ATTR]}
              for t in sorted(complete, key=lambda t: t.number) if t.user_attrs.get(COLLAPSED_ATTR)]
    return {"count": len(trials), "of_complete": len(complete), "trials": trials}


def _failed(study) -> dict[str, str]:
    """``{trial number: reason}`` of the trials :func:`~mixsig.studies.fail_dead_trials` failed."""
    prefix = FAILED_ATTR + "."
    return {k[len(prefix):]: v for k, v in sorted(study.user_attrs.items(), key=lambda kv: kv[0])
            if k.startswith(prefix)}


def _linked_run(store, run_name: str | None) -> dict | None:
    """A summary of the run the study wrote (None when it has none, or it was removed)."""
    if not run_name or run_name not in store.runs():
        return None
    r = store.read_run(run_name)
    return {"name": run_name, "head": r.attrs.get("head"), "features": r.attrs.get("features"),
            "seeds": r.attrs.get("seeds"), "source": r.attrs.get("source"), "subsets": list(r.subsets),
            "collapsed": r.attrs.get("collapsed"), "group_leak": r.attrs.get("group_leak"),
            "modality_mismatch": r.attrs.get("modality_mismatch"), "selection_splits": r.attrs.get("selection_splits"),
            "in_sample_keys": r.attrs.get("in_sample_keys")}


def _in_sample(store, study, settings: StudySettings) -> dict:
    """What ``study run`` recorded (user attr ``in_sample_keys``); for a study made before, found in the store now."""
    if IN_SAMPLE_ATTR in study.user_attrs:
        return dict(study.user_attrs[IN_SAMPLE_ATTR] or {})
    from mixsig.cache import in_sample_keys

    have = set(store.keys())
    return in_sample_keys(store, [k for keys in settings.feature_map.values() for k in keys if k in have])


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
