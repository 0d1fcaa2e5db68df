"""5c. Robustness to a missing modality (MultiBench, Liang et al. 2021): the full model evaluated with each
modality, and each pair, absent at test time — accuracy / macro-F1 per missing set, their relative robustness
against the full model with nothing missing, and their effective robustness against the subset model trained
without those modalities (report.json ``robustness``).

The probabilities come from the run (``missing/<set>/probs`` of the full subset, written at train time by
:func:`mixsig.heads.missing_modality_observer`); runs without them (imported runs, runs of an older mixsig) skip
the section with the reason."""

from __future__ import annotations

import numpy as np

from mixsig import metrics as _metrics
from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import AGGREGATION_NOTE, Context, aggregate_seeds
from mixsig.analysis._format import ci, num, pm

#: The metrics reported per missing set (and whose robustness is computed).
METRICS = ("accuracy", "macro_f1")
PREFIX, SUFFIX = "missing/", "/probs"


def definition(method: str, n_boot: int, seed: int) -> str:
    return ("The full model (every modality) predicts every analysed sample with the modalities of the missing set "
            f"absent at test time, made absent by {method}. Relative robustness = perf(full model, set missing) / "
            "perf(full model, nothing missing); effective robustness = perf(full model, set missing) − perf(the "
            "subset model trained on the remaining modalities) — positive: the full model without those modalities "
            "beats a model that never had them (MultiBench, Liang et al. 2021). Both for accuracy and macro-F1 "
            "(macro-F1 averages all classes, a class never predicted counting 0), scored on the seed-aggregated "
            f"predictions. {AGGREGATION_NOTE} “(seeds)”: each seed's own missing-set predictions scored, mean ± sd. "
            f"Intervals: 95% percentile bootstrap over samples ({n_boot} resamples, numpy default_rng({seed})); "
            "robustness intervals are paired: each resample scores both models on the same drawn samples.")


def _stored_sets(ctx: Context) -> dict[str, np.ndarray]:
    extra = ctx.inp.extra.get(ctx.full, {}) if isinstance(ctx.inp.extra, dict) else {}
    sets = {k[len(PREFIX):-len(SUFFIX)]: v for k, v in extra.items() if k.startswith(PREFIX) and k.endswith(SUFFIX)}
    order = {m: i for i, m in enumerate(ctx.inp.modalities)}
    key = lambda s: (s.count("+"), [order.get(m, len(order)) for m in s.split("+")])  # noqa: E731
    return {s: sets[s] for s in sorted(sets, key=key)}


def _skip(ctx: Context, why: str) -> dict:
    ctx.skipped["robustness"] = why
    return {"robustness": None}


def _paired(ctx: Context, a, b, op) -> dict:
    """``{metric: {"value", "ci"}}`` of ``op(score(a), score(b))`` with a paired bootstrap interval."""
    y = ctx.y
    pa, pb = _metrics.point_metrics(y, a.mean_probs, a.pred), _metrics.point_metrics(y, b.mean_probs, b.pred)
    boot = None
    if ctx.n_boot > 0 and y.size > 1:
        cm_a, cm_b = _stats.paired_resample_confusions(y, a.pred, b.pred, ctx.n_classes, n_boot=ctx.n_boot,
                                                       seed=ctx.seed)
        boot = (_metrics.scores_from_confusion(cm_a), _metrics.scores_from_confusion(cm_b))
    out = {}
    for m in METRICS:
        with np.errstate(divide="ignore", invalid="ignore"):
            lo, hi = _stats.percentile_interval(op(boot[0][m], boot[1][m])) if boot else (float("nan"),) * 2
            value = float(op(np.float64(pa[m]), np.float64(pb[m])))
        out[m] = {"value": value if np.isfinite(value) else None, "ci": [lo, hi], "of": float(pa[m]),
                  "against": float(pb[m])}
    return out


def _one_set(ctx: Context, name: str, probs: np.ndarray) -> dict:
    y = ctx.y
    agg = aggregate_seeds(probs)
    boot = _metrics.bootstrap_metrics(y, agg.mean_probs, agg.pred, n_boot=ctx.n_boot, seed=ctx.seed)
    per_seed = [_metrics.point_metrics(y, probs[i], agg.seed_pred[i]) for i in range(probs.shape[0])]
    over = _metrics.aggregate(per_seed)
    remaining = "+".join(m for m in ctx.inp.modalities if m not in name.split("+"))
    entry = {m: boot[m] for m in METRICS}
    entry.update({
        "over_seeds": {m: over[m] for m in METRICS}, "remaining": remaining, "n": int(y.size),
        "relative_robustness": _paired(ctx, agg, ctx.agg[ctx.full], np.divide),
        "effective_robustness": (_paired(ctx, agg, ctx.agg[remaining], np.subtract) if remaining in ctx.agg
                                 else None),
    })
    return entry


def compute(ctx: Context) -> dict:
    run = ctx.inp.run_name
    if len(ctx.inp.modalities) < 2:
        return _skip(ctx, f"run {run!r} has one modality: there is no modality to leave out")
    stored = _stored_sets(ctx)
    if not stored:
        return _skip(ctx, f"run {run!r} has no missing-modality probabilities (missing/<set>/probs of its full "
                          f"subset {ctx.full!r}): `mixsig train` stores them for the runs it trains; imported runs "
                          "and runs of an older mixsig have none. Train the run again with `mixsig train` to add them")
    from mixsig.heads import missing_method

    head = str(ctx.inp.run_attrs.get("head") or "")
    method = missing_method(head)
    missing, partial = {}, []
    for name, arr in stored.items():
        probs = np.asarray(arr, np.float64)[:, ctx.rows, :]
        if not np.isfinite(probs).all():
            partial.append(name)
            continue
        missing[name] = _one_set(ctx, name, probs)
    if partial:
        ctx.notes.append(f"robustness: missing set(s) {', '.join(partial)} lack probabilities on some analysed rows "
                         "and are left out")
    if not missing:
        return _skip(ctx, f"run {run!r}: no missing set has probabilities on every analysed row")
    full = ctx.agg[ctx.full]
    return {"robustness": {
        "full": ctx.full, "head": head, "method": method, "n": int(ctx.y.size),
        "full_model": {m: float(_metrics.point_metrics(ctx.y, full.mean_probs, full.pred)[m]) for m in METRICS},
        "missing": missing, "definition": definition(method, ctx.n_boot, ctx.seed),
    }}


def _pair_text(d: dict | None, m: str) -> str:
    if not d:
        return "–"
    v = d[m]
    return f"{num(v['value'])} [{num(v['ci'][0])}, {num(v['ci'][1])}]"


def blocks(report: dict, figures: dict) -> list[tuple]:
    rob = report.get("robustness")
    b: list[tuple] = [("h2", "5c. Robustness to a missing modality")]
    if not rob:
        return b + [("skip", f"Skipped: {report['skipped'].get('robustness')}.")]
    fm = rob["full_model"]
    b.append(("p", f"Full model **{rob['full']}** ({rob['head'] or 'head unknown'}; nothing missing: accuracy "
                   f"{num(fm['accuracy'])}, macro-F1 {num(fm['macro_f1'])}) on {rob['n']} samples, each set of "
                   f"modalities made absent by {rob['method']}."))
    rows = []
    for s, v in rob["missing"].items():
        eff = v["effective_robustness"]
        rows.append([s, v["remaining"], ci(v["accuracy"]), ci(v["macro_f1"]), pm(v["over_seeds"]["accuracy"]),
                     _pair_text(v["relative_robustness"], "accuracy"), _pair_text(v["relative_robustness"], "macro_f1"),
                     num(eff["accuracy"]["against"]) if eff else "–", _pair_text(eff, "accuracy"),
                     _pair_text(eff, "macro_f1")])
    b.append(("table", ["missing", "remaining", "accuracy [95% CI]", "macro-F1 [95% CI]", "accuracy (seeds)",
                        "relative robustness, accuracy", "relative robustness, macro-F1",
                        "accuracy of the model trained on the remaining", "effective robustness, accuracy",
                        "effective robustness, macro-F1"], rows))
    b.append(("p", "**Definitions.** " + rob["definition"]))
    if "robustness" in figures:
        b.append(("img", *figures["robustness"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("robustness"):
        return {}
    return {"robustness": (_plot(report["robustness"]), "Macro-F1 of the full model with each modality set missing "
                           "(bars, 95% bootstrap intervals), of the full model with nothing missing (dashed line) "
                           "and of the subset model trained on the remaining modalities (diamonds).")}


def _plot(rob: dict) -> bytes:
    plt = _plots.pyplot()
    names = list(rob["missing"])
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names) + 2), 3.2))
    x = np.arange(len(names))
    v = np.array([rob["missing"][s]["macro_f1"]["value"] for s in names], dtype=float)
    lo = np.array([rob["missing"][s]["macro_f1"]["ci_low"] for s in names], dtype=float)
    hi = np.array([rob["missing"][s]["macro_f1"]["ci_high"] for s in names], dtype=float)
    ax.bar(x, v, 0.6, yerr=np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)]), capsize=3, color="#1c7ed6",
           label="full model, set missing")
    eff = [rob["missing"][s]["effective_robustness"] for s in names]
    ax.scatter(x, [e["macro_f1"]["against"] if e else np.nan for e in eff], marker="D", color="#f59f00", zorder=3,
               label="trained on the remaining")
    ax.axhline(rob["full_model"]["macro_f1"], color="#495057", ls="--", lw=1, label="full model, nothing missing")
    ax.set_xticks(x, [f"−{s}" for s in names], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("macro-F1 (seed-aggregated)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Robustness to a missing modality")
    return _plots.png(fig)
