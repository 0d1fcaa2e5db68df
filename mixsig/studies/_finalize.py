"""After the search: re-evaluate the best configurations over seeds, rank them robustly, write the winner as a run.

:func:`top_configs` picks the best distinct completed configurations (collapsed trials last);
:func:`rank_reevaluations` orders their re-evaluations (no collapsed seed first, then mean - std over the seeds,
:func:`robust_score`); :func:`finalize_study` trains the winner on every modality subset of the study as run
``study-<name>`` (keys of :func:`run_features`), links it to the study and scores test once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from mixsig.errors import StudyError
from mixsig.studies._common import (
    REEVAL_ATTR, RESULT_ATTR, RUN_ATTR, n_finished, open_store_arg, run_name_for,
)
from mixsig.studies._objective import COLLAPSED_ATTR, Objective
from mixsig.studies._settings import StudySettings
from mixsig.studies._config import TrialConfig, config_from_params

log = logging.getLogger(__name__)

RANKING = "configs with no collapsed seed first, then mean - std (ddof=1) over the re-evaluation seeds"


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
    top = top_configs(study, settings, settings.reeval_top)
    if not top:
        raise StudyError(f"study {study.study_name!r} has no completed trial to re-evaluate; run more trials")
    seeds = [settings.seed + i for i in range(settings.reeval_seeds)]
    results = _reevaluate(top, objective, seeds, settings.metric)
    winner = results[0]
    if winner["collapsed_seeds"]:
        log.warning("every re-evaluated configuration collapsed on at least one seed; the winner, trial %d, "
                    "collapsed on seed(s) %s: %s", winner["trial"], [c["seed"] for c in winner["collapsed_seeds"]],
                    winner["collapsed_seeds"][0]["reason"])
    cfg = config_from_params(next(t.params for t, _ in top if t.number == winner["trial"]), settings.heads,
                             settings.feature_map)
    st, run = _train_winner(store, study, settings, objective, cfg, seeds, allow_group_leak=allow_group_leak,
                            allow_modality_mismatch=allow_modality_mismatch)
    selected = _link_run(st, run, study, settings, winner)
    test = _test_scores(st, run, settings.metric)
    run_collapsed = list(run.attrs.get("collapsed") or [])
    if run_collapsed:
        _warn_collapsed_run(run, run_collapsed, len(seeds))
    record = {"run": run.name, "trial": winner["trial"], "config": winner["config"], "val_mean": winner["mean"],
              "val_std": winner["std"], "val_robust": winner["robust"], "val_per_seed": winner["scores"],
              "val_collapsed_seeds": winner["collapsed_seeds"], "metric": settings.metric, "test": test,
              "seeds": seeds, "ranking": RANKING, "reeval": results, "collapsed": run_collapsed,
              "allow_group_leak": bool(allow_group_leak), "group_leak": run.attrs.get("group_leak"),
              "allow_modality_mismatch": bool(allow_modality_mismatch),
              "modality_mismatch": run.attrs.get("modality_mismatch") or {}, "n_finished": n_finished(study),
              "selection_splits": selected, "in_sample_keys": run.attrs.get("in_sample_keys") or {}}
    study.set_user_attr(REEVAL_ATTR, results)
    study.set_user_attr(RUN_ATTR, run.name)
    study.set_user_attr(RESULT_ATTR, record)
    return record


def _reevaluate(top: list[tuple[Any, TrialConfig]], objective: Objective, seeds: list[int], metric: str) -> list[dict]:
    """Train each configuration of ``top`` with every seed; the results ranked by :func:`rank_reevaluations`."""
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
                 metric, ", ".join(f"{v:.4f}" for v in r["scores"]), r["mean"],
                 "n/a" if r["std"] is None else f"{r['std']:.4f}", r["robust"],
                 f"; collapsed seeds {[c['seed'] for c in r['collapsed_seeds']]}" if r["collapsed_seeds"] else "")
    return results


def _train_winner(store, study, settings: StudySettings, objective: Objective, cfg: TrialConfig, seeds: list[int],
                  *, allow_group_leak: bool, allow_modality_mismatch: bool):
    """``(store opened for writing, run)``: ``cfg``'s head trained by ``train_run`` as run ``study-<name>``, its heads
    saved with it (``mixsig predict`` applies them)."""
    from mixsig.heads import train_run

    st = open_store_arg(store)
    if getattr(st, "mode", "r+") != "r+":
        st = open_store_arg(str(st.url), mode="r+")
    head_params = objective.make_head(cfg).get_params()
    quiet = _DropInSample()  # `study run` warned of the in-sample keys already, before the trials
    logging.getLogger("mixsig.heads._runs").addFilter(quiet)
    try:
        run = train_run(st, cfg.head, run_features(study, settings, cfg), seeds=list(seeds), params=head_params,
                        name=run_name_for(study.study_name), overwrite=True, allow_group_leak=allow_group_leak,
                        allow_modality_mismatch=allow_modality_mismatch, save_heads=True)
    finally:
        logging.getLogger("mixsig.heads._runs").removeFilter(quiet)
    return st, run


class _DropInSample(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "mixsig_in_sample", False)


def _warn_collapsed_run(run, run_collapsed: list[dict], n_seeds: int) -> None:
    models = sorted({(e["subset"], e["seed"]) for e in run_collapsed})
    total = len(run.subsets) * n_seeds
    log.warning("WINNER RUN %s HAS COLLAPSED MODELS: %d of %d models (subset x seed) predict one class or no "
                "better than chance on %s (%s); their scores are not evidence of a signal. The run was written; "
                "`mixsig study show` and the report list them.", run.name, len(models), total,
                "/".join(sorted({e["split"] for e in run_collapsed})),
                ", ".join(f"{sub} seed {sd}" for sub, sd in models))


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


def study_selection_splits(settings: StudySettings) -> list[str]:
    """The splits whose rows scored the study's trials and re-evaluations: ``["val"]``, or with ``--cv K`` the
    folds over ``["train", "val"]``."""
    return ["train", "val"] if settings.cv else ["val"]


def _link_run(store, run, study, settings: StudySettings, winner: dict) -> list[str]:
    """Mark ``run`` as written by ``study`` (attrs ``source``, ``study``, and ``selection_splits``: the study's
    scoring splits and those that chose the run's epochs). Returns the selection splits."""
    order = {"train": 0, "val": 1, "test": 2}
    selected = sorted(set(study_selection_splits(settings)) | set(run.attrs.get("selection_splits") or []),
                      key=lambda sp: (order.get(sp, 3), sp))
    store.update_run(run.name, source=f"study:{study.study_name}", selection_splits=selected,
                     study={"name": study.study_name, "trial": winner["trial"], "settings_sha256": settings.sha256(),
                            "val_mean": winner["mean"], "val_std": winner["std"], "val_robust": winner["robust"],
                            "metric": settings.metric, "scored_on": study_selection_splits(settings),
                            "cv": settings.cv})
    return selected


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
