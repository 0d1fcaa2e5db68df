"""Report figures as PNG bytes (matplotlib, Agg backend, imported inside the functions)."""

from __future__ import annotations

import io

import numpy as np

#: Scatter plots draw at most this many points (a seeded random subset; the caption says so).
MAX_SCATTER_POINTS = 8_000
CATEGORY_COLOURS = {"agreement": "#9aa5b1", "rescued": "#2b8a3e", "misled": "#c92a2a", "disagree_wrong": "#e67700"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def metrics_plot(result: dict) -> bytes:
    plt = _plt()
    names = list(result["metrics"])
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(names) + 2), 3.2))
    width = 0.38
    for j, (metric, colour) in enumerate((("accuracy", "#1c7ed6"), ("macro_f1", "#f59f00"))):
        vals = np.array([result["metrics"][s]["aggregated"][metric]["value"] for s in names])
        lo = np.array([result["metrics"][s]["aggregated"][metric]["ci_low"] for s in names], dtype=float)
        hi = np.array([result["metrics"][s]["aggregated"][metric]["ci_high"] for s in names], dtype=float)
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        ax.bar(np.arange(len(names)) + (j - 0.5) * width, vals, width, yerr=err, capsize=3, color=colour,
               label=metric.replace("_", "-"))
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (seed-aggregated)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Metrics per modality subset, 95% bootstrap intervals")
    return _png(fig)


def disagreement_plot(result: dict) -> bytes:
    plt = _plt()
    per = result["disagreement"]["per_modality"]
    mods = list(per)
    cells = ("both_correct", "rescued", "misled", "both_wrong")
    colours = ("#9aa5b1", "#2b8a3e", "#c92a2a", "#495057")
    fig, ax = plt.subplots(figsize=(6.5, 0.6 * len(mods) + 1.4))
    left = np.zeros(len(mods))
    for cell, colour in zip(cells, colours):
        v = np.array([per[m]["cell_shares"][cell] for m in mods])
        ax.barh(mods, v, left=left, color=colour, label=cell.replace("_", " "))
        left += v
    for i, m in enumerate(mods):
        ax.text(1.01, i, f"disagree {per[m]['rate']:.1%}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples (unimodal model vs full model)")
    ax.legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    ax.set_title("Disagreement cells per modality")
    return _png(fig)


def confidence_plot(result: dict, samples: dict) -> tuple[bytes, str]:
    plt = _plt()
    full = result["disagreement"]["full_subset"]
    mods = result["disagreement"]["unimodal_subsets"]
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
        for c, colour in CATEGORY_COLOURS.items():
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
    return _png(fig), caption


def uncertainty_plot(result: dict, samples: dict) -> bytes:
    plt = _plt()
    ent = samples["entropy"]
    nd = samples["n_disagree"]
    cat = samples["category"]
    have = np.isfinite(ent)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    data, labels = [], []
    for c in ("agreement", "rescued", "misled", "disagree_wrong"):
        sel = have & (cat == c)
        if sel.sum():
            data.append(ent[sel])
            labels.append(f"{c}\n(n={int(sel.sum())})")
    if data:
        a1.boxplot(data, tick_labels=labels, showmeans=True, showfliers=False)
    a1.set_ylabel("vote entropy (bits)")
    a1.set_title("Annotator uncertainty by category")
    ks = np.unique(nd[have])
    means = [ent[have & (nd == k)].mean() for k in ks]
    counts = [int((have & (nd == k)).sum()) for k in ks]
    a2.plot(ks, means, marker="o")
    for k, m, c in zip(ks, means, counts):
        a2.annotate(f"n={c}", (k, m), textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center")
    a2.set_xlabel("unimodal models disagreeing with full")
    a2.set_ylabel("mean vote entropy (bits)")
    a2.set_xticks(ks)
    a2.set_title("Entropy vs number of disagreeing modalities")
    return _png(fig)


def dominance_plot(result: dict) -> bytes:
    plt = _plt()
    dom = result["dominance"]
    weights = dom.get("weights") or {}
    ncols = 1 + len(weights)
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.2), squeeze=False)
    counts = dom["followed_counts"]
    ax = axes[0][0]
    ax.bar(list(counts), list(counts.values()), color="#c92a2a")
    ax.set_title(f"Misled samples (n={dom['n_misled']}): followed model")
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
    return _png(fig)


def human_plot(result: dict) -> bytes:
    plt = _plt()
    conds = result["human_study"]["conditions"]
    names = list(conds)
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names) + 1.5), 3))
    acc = [conds[c]["vote_accuracy"] or 0.0 for c in names]
    alpha = [conds[c]["krippendorff_alpha"]["alpha"] for c in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, acc, 0.4, label="vote accuracy vs gold", color="#1c7ed6")
    ax.bar(x + 0.2, np.nan_to_num(alpha), 0.4, label="Krippendorff's alpha", color="#7048e8")
    ax.set_xticks(x, names)
    ax.set_ylim(min(0, float(np.nanmin(alpha)) if np.isfinite(alpha).any() else 0), 1)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.set_title("Human study per condition")
    return _png(fig)


def descriptors_plot(result: dict, max_rows: int = 20) -> bytes:
    plt = _plt()
    tests = result["descriptors"]["tests"][:max_rows]
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(tests) + 1.2))
    labels = [f"{t['descriptor']} | {t['comparison']}" for t in tests][::-1]
    r = [t["rank_biserial"] for t in tests][::-1]
    colours = ["#c92a2a" if t["significant_q05"] else "#9aa5b1" for t in tests][::-1]
    ax.barh(labels, r, color=colours)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlim(-1, 1)
    ax.set_xlabel("rank-biserial r (red: BH q < 0.05)")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Descriptors by category")
    return _png(fig)
