"""5b. Dominance: for misled samples, which unimodal model the full model followed exclusively, that model's
confidence, and the head's gate/attention weights per modality by category (report.json ``dominance``).

Following is not attribution: which modality misled the fusion is measured by counterfactual in the attribution
section (5.); ``dominant_modality`` here is only the modality most often followed exclusively (None on a tie)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import NO_UNIMODAL, Context
from mixsig.analysis._format import num
from mixsig.analysis.sections.disagreement import CATEGORIES

DEFINITION = ("followed exclusively = the single unimodal model whose aggregated prediction equals the full "
              "model's; 'several' when more than one (but not all) do, 'all' when every one does, 'none' when none "
              "does. Confidence = the followed model's seed-mean probability of its predicted class.")


def compute(ctx: Context) -> dict:
    if not ctx.unimodal:
        ctx.skipped["dominance"] = NO_UNIMODAL
        return {"dominance": None}
    unimodal, category, followed = ctx.unimodal, ctx.category, ctx.followed
    misled = category == "misled"
    n_mis = int(misled.sum())
    counts = {m: int((misled & (followed == m)).sum()) for m in unimodal}
    counts["several"] = int((misled & (followed == "several")).sum())
    counts["none"] = int((misled & (followed == "none")).sum())
    single_counts = {m: counts[m] for m in unimodal}
    top = max(single_counts.values())
    leaders = [m for m, k in single_counts.items() if k == top] if n_mis and top > 0 else []
    dominant = leaders[0] if len(leaders) == 1 else None
    conf = {}
    for m in unimodal:
        c = ctx.agg[m].mean_probs.max(axis=1)
        sel = misled & (followed == m)
        conf[m] = {
            "when_followed_in_misled": _stats.describe(c[sel]),
            "elsewhere": _stats.describe(c[~sel]),
            "mann_whitney": _stats.mann_whitney(c[sel], c[~sel]) if sel.any() else None,
        }
    weights = _weights(ctx)
    if not weights:
        ctx.notes.append(f"the head of run {ctx.inp.run_name!r} has no gate or attention weights; dominance "
                         "reports the followed modality and its confidence only")
    return {"dominance": {
        "n_misled": n_mis,
        "followed_counts": counts,
        "followed_shares": {k: (v / n_mis if n_mis else None) for k, v in counts.items()},
        "dominant_modality": dominant,
        "dominant_tied": leaders if len(leaders) > 1 else None,
        "followed_confidence": conf,
        "weights": weights or None,
        "definition": DEFINITION,
    }}


def _weights(ctx: Context) -> dict:
    """``{"gates"|"attention": {"by_category", "misled_by_followed_modality"}}`` for the kinds the head has."""
    category, followed = ctx.category, ctx.followed
    misled = category == "misled"
    weights = {}
    mods = ctx.full.split("+")
    for kind, store in (("gates", ctx.inp.gates), ("attention", ctx.inp.attention)):
        arr = store.get(ctx.full)
        if arr is None:
            continue
        w = arr[:, ctx.rows, :].mean(axis=0)  # [n, M]
        by_cat = {}
        for cat in CATEGORIES:
            sel = category == cat
            by_cat[cat] = {m: (float(w[sel, j].mean()) if sel.any() else None) for j, m in enumerate(mods)}
        by_followed = {}
        for m in ctx.unimodal:
            sel = misled & (followed == m)
            if sel.any():
                by_followed[m] = {k: float(w[sel, j].mean()) for j, k in enumerate(mods)}
        weights[kind] = {"by_category": by_cat, "misled_by_followed_modality": by_followed}
    return weights


def blocks(report: dict, figures: dict) -> list[tuple]:
    dom = report.get("dominance")
    if not dom:
        return []
    b: list[tuple] = [("h2", "5b. Following: which unimodal model the full model followed on misled samples")]
    if dom["dominant_modality"]:
        most = f"most often followed exclusively: {dom['dominant_modality']}"
    elif dom.get("dominant_tied"):
        most = f"most often followed exclusively: tied between {' and '.join(dom['dominant_tied'])}"
    else:
        most = "no modality was followed exclusively"
    b.append(("p", f"{dom['n_misled']} misled samples; {most}. Following is not attribution: a misled sample the "
                   "full model shares with several unimodal models counts for none of them here; which modality "
                   f"misled the fusion is measured by removing it (section 5). {dom['definition']}"))
    rows = []
    for m, c in dom["followed_counts"].items():
        conf = dom["followed_confidence"].get(m)
        rows.append([m, c, num(dom["followed_shares"][m]),
                     num(conf["when_followed_in_misled"]["mean"]) if conf else "",
                     num(conf["elsewhere"]["mean"]) if conf else ""])
    b.append(("table", ["followed exclusively", "misled samples", "share", "its confidence when followed",
                        "its confidence elsewhere"], rows))
    for kind, w in (dom.get("weights") or {}).items():
        mods = list(w["by_category"][CATEGORIES[0]])  # the full subset's modalities, in its order
        rows = [[c] + [num(v.get(m)) if v else "–" for m in mods] for c, v in w["by_category"].items()]
        b.append(("table", [f"mean {kind} weight by category"] + mods, rows))
    if "dominance" in figures:
        b.append(("img", *figures["dominance"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("dominance"):
        return {}
    return {"dominance": (_plot(report["dominance"]), "Which unimodal model the full model followed exclusively on "
                          "misled samples ('several': more than one), and the mean gate/attention weights per "
                          "category where the head has them.")}


def _plot(dom: dict) -> bytes:
    plt = _plots.pyplot()
    weights = dom.get("weights") or {}
    ncols = 1 + len(weights)
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.2), squeeze=False)
    counts = dom["followed_counts"]
    ax = axes[0][0]
    ax.bar(list(counts), list(counts.values()), color="#c92a2a")
    ax.set_title(f"Misled samples (n={dom['n_misled']}): followed exclusively")
    ax.set_ylabel("samples")
    ax.tick_params(axis="x", rotation=30)
    for ax, (kind, w) in zip(axes[0][1:], weights.items()):
        cats = [c for c, v in w["by_category"].items() if v and all(x is not None for x in v.values())]
        mods = list(w["by_category"][cats[0]]) if cats else []
        width = 0.8 / max(len(mods), 1)
        for j, m in enumerate(mods):
            ax.bar(np.arange(len(cats)) + j * width, [w["by_category"][c][m] for c in cats], width, label=m,
                   color=f"C{j}")
        ax.set_xticks(np.arange(len(cats)) + 0.4 - width / 2, cats, rotation=30, ha="right")
        ax.set_title(f"Mean {kind} weight by category")
    if weights:
        handles, labels = axes[0][-1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, -0.16),
                   title="modality weight")
    return _plots.png(fig)
