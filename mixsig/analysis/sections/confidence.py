"""6. Confidence in the true label (seed-mean probability), unimodal vs full, per modality (report.json
``confidence``; sets the context's per-sample ``p_true`` for every subset)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import NO_UNIMODAL, Context
from mixsig.analysis._format import num, pval
from mixsig.analysis.sections.disagreement import CATEGORIES

#: Scatter plots draw at most this many points (a seeded random subset; the caption says so).
MAX_SCATTER_POINTS = 8_000


DEFINITION = ("Confidence in the true label = the seed-mean probability of the gold class. Share full higher = "
              "share of samples where the full model's confidence is strictly higher than the unimodal model's; "
              "with no difference between the two (exchangeable), its expectation is half the samples where they "
              "differ, shown beside it. "
              "Spearman's rho between the two confidences over the analysed samples, two-sided p (scipy); no "
              "interval.")


def compute(ctx: Context) -> dict:
    y, full, category = ctx.y, ctx.full, ctx.category
    idx = np.arange(len(y))
    p_true = {name: a.mean_probs[idx, y] for name, a in ctx.agg.items()}
    ctx.p_true = p_true
    if not ctx.unimodal:
        ctx.skipped["confidence"] = NO_UNIMODAL
        return {"confidence": None, "confidence_definition": DEFINITION}
    out = {}
    for m in ctx.unimodal:
        out[m] = {
            "spearman_with_full": _stats.spearman(p_true[m], p_true[full]),
            "mean_unimodal": float(p_true[m].mean()),
            "mean_full": float(p_true[full].mean()),
            "share_full_higher": float((p_true[full] > p_true[m]).mean()),
            "share_full_higher_no_effect": float((p_true[full] != p_true[m]).mean() / 2),
            "by_category": {c: ({"unimodal": float(p_true[m][category == c].mean()),
                                 "full": float(p_true[full][category == c].mean())}
                                if (category == c).any() else None) for c in CATEGORIES},
        }
    return {"confidence": out, "confidence_definition": DEFINITION}


def blocks(report: dict, figures: dict) -> list[tuple]:
    conf = report.get("confidence")
    if not conf:
        return []
    b: list[tuple] = [("h2", "6. Confidence in the true label: unimodal vs full")]
    rows = []
    for m, c in conf.items():
        sp = c["spearman_with_full"]
        rows.append([m, num(c["mean_unimodal"]), num(c["mean_full"]),
                     f"{num(c['share_full_higher'])} (no effect: {num(c.get('share_full_higher_no_effect'))})",
                     f"{num(sp['rho'])} (p {pval(sp['p'])})"])
    b.append(("table", ["modality", "mean unimodal", "mean full", "share full higher", "Spearman (two-sided p)"],
              rows))
    b.append(("p", "**Definitions.** " + (report.get("confidence_definition") or DEFINITION)))
    if "confidence" in figures:
        b.append(("img", *figures["confidence"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("confidence"):
        return {}
    png, cap = _plot(report["disagreement"], report["samples"])
    return {"confidence": (png, f"Confidence in the true label, unimodal (x) vs full model (y), one panel per "
                           f"modality, coloured by category; {cap}.")}


def _plot(dis: dict, samples: dict) -> tuple[bytes, str]:
    plt = _plots.pyplot()
    full = dis["full_subset"]
    mods = dis["unimodal_subsets"]
    n = len(samples["id"])
    idx = np.arange(n)
    caption = f"all {n} samples"
    if n > MAX_SCATTER_POINTS:
        idx = np.sort(np.random.default_rng(0).choice(n, MAX_SCATTER_POINTS, replace=False))
        caption = f"a random {MAX_SCATTER_POINTS} of {n} samples (seed 0)"
    cat = samples["category"][idx]
    fig, axes = plt.subplots(1, len(mods), figsize=(3.3 * len(mods), 3.4), squeeze=False)
    for ax, m in zip(axes[0], mods):
        x = samples[f"p_true[{m}]"][idx]
        y = samples[f"p_true[{full}]"][idx]
        for c, colour in _plots.CATEGORY_COLOURS.items():
            sel = cat == c
            if sel.any():
                ax.scatter(x[sel], y[sel], s=6, alpha=0.5, color=colour, label=c, rasterized=True, linewidths=0)
        ax.plot([0, 1], [0, 1], color="black", lw=0.6, ls="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"{m}: confidence in true label")
        ax.set_title(m)
    axes[0][0].set_ylabel(f"{full}: confidence in true label")
    axes[0][-1].legend(fontsize=7, loc="lower right", markerscale=2)
    return _plots.png(fig), caption
