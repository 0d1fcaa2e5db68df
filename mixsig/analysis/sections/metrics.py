"""1. Metrics per modality subset: per-seed metrics (mean, std over seeds, per seed) and the seed-aggregated
predictions' metrics with bootstrap intervals over samples (report.json ``metrics``)."""

from __future__ import annotations

import numpy as np

from mixsig import metrics as _metrics
from mixsig.analysis import _plots
from mixsig.analysis._context import AGGREGATION_NOTE, Context
from mixsig.analysis._format import ci, pm
from mixsig.metrics import AUROC_BINS


def definition(n_boot: int, seed: int) -> str:
    return ("“(seeds)”: each seed's own predictions scored, mean ± standard deviation (n − 1) over seeds; "
            "“aggregated”: the seed-aggregated predictions scored. " + AGGREGATION_NOTE + " Intervals: 95% "
            f"percentile bootstrap over samples (the analysed rows resampled with replacement; {n_boot} "
            f"resamples, numpy default_rng({seed})); AUROC's interval is drawn on scores binned into at most "
            f"{AUROC_BINS} bins per class and shifted to the exact AUROC. Macro-F1 averages the classes with "
            "equal weight, a class never predicted counting with F1 0.")


def compute(ctx: Context) -> dict:
    out = {}
    identical = []
    y = ctx.y
    for name, probs in ctx.subsets.items():
        agg = ctx.agg[name]
        per_seed = [_metrics.point_metrics(y, probs[i], agg.seed_pred[i]) for i in range(probs.shape[0])]
        same = probs.shape[0] > 1 and bool((probs == probs[:1]).all())
        seeds = {}
        for metric in _metrics.METRICS:
            vals = np.array([p[metric] for p in per_seed])
            seeds[metric] = {
                "mean": float(np.mean(vals)),
                "std": (0.0 if same else float(np.std(vals, ddof=1))) if len(vals) > 1 else None,
                "per_seed": [float(v) for v in vals],
            }
        boot = _metrics.bootstrap_metrics(y, agg.mean_probs, agg.pred, n_boot=ctx.n_boot, seed=ctx.seed)
        if same:
            identical.append(name)
        out[name] = {"over_seeds": seeds, "aggregated": boot,
                     "predicted_classes": np.bincount(agg.pred, minlength=probs.shape[2]).tolist(),
                     "seeds_identical": same}
    if identical:
        ctx.notes.append(f"every seed gives identical predictions for {', '.join(identical)} (a deterministic "
                         "head): their standard deviation over seeds is 0 and says nothing about seed variation")
    return {"metrics": out, "metrics_definition": definition(ctx.n_boot, ctx.seed)}


def blocks(report: dict, figures: dict) -> list[tuple]:
    b: list[tuple] = [("h2", "1. Metrics per modality subset")]
    rows = []
    for s, m in report["metrics"].items():
        rows.append([s] + [pm(m["over_seeds"][k]) for k in ("accuracy", "macro_f1", "weighted_f1", "auroc")]
                    + [ci(m["aggregated"][k]) for k in ("accuracy", "macro_f1", "auroc")])
    b.append(("table", ["subset", "accuracy (seeds)", "macro-F1 (seeds)", "weighted-F1 (seeds)", "AUROC (seeds)",
                        "accuracy, aggregated [95% CI]", "macro-F1, aggregated [95% CI]",
                        "AUROC, aggregated [95% CI]"], rows))
    b.append(("p", "**Definitions.** " + (report.get("metrics_definition") or "")))
    if "metrics" in figures:
        b.append(("img", *figures["metrics"]))
    return b


def figures(report: dict) -> dict:
    return {"metrics": (_plot(report), "Accuracy and macro-F1 of the seed-aggregated predictions per subset; error "
                        "bars: 95% bootstrap intervals over samples.")}


def _plot(report: dict) -> bytes:
    plt = _plots.pyplot()
    names = list(report["metrics"])
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names) + 2), 3.2))
    width = 0.38
    for j, (metric, colour) in enumerate((("accuracy", "#1c7ed6"), ("macro_f1", "#f59f00"))):
        vals = np.array([report["metrics"][s]["aggregated"][metric]["value"] for s in names])
        lo = np.array([report["metrics"][s]["aggregated"][metric]["ci_low"] for s in names], dtype=float)
        hi = np.array([report["metrics"][s]["aggregated"][metric]["ci_high"] for s in names], dtype=float)
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        ax.bar(np.arange(len(names)) + (j - 0.5) * width, vals, width, yerr=err, capsize=3, color=colour,
               label=metric.replace("_", "-"))
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (seed-aggregated)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Metrics per modality subset, 95% bootstrap intervals")
    return _plots.png(fig)
