"""4. Does disagreement mark ambiguous samples? Annotator uncertainty in disagreement vs agreement samples and
its rank correlation with the number of disagreeing modalities (report.json ``join``)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import NO_UNIMODAL, Context
from mixsig.analysis._format import num, pval
from mixsig.analysis.sections.disagreement import CATEGORIES
from mixsig.analysis.sections.uncertainty import missing_votes


def definition(n_boot: int, seed: int) -> str:
    return ("Samples with votes; disagreement = some unimodal model disagrees with the full model (categories "
            "rescued, misled, disagree_wrong), agreement = every one agrees. Mann–Whitney U: two-sided (scipy: "
            "exact for small samples without ties, otherwise the normal approximation with tie correction); U is "
            "the first-named group's. Rank-biserial r = 2U / (n₁ n₂) − 1 = P(first larger) − P(first smaller): "
            "positive = the first-named group (disagreement; misled) larger. Difference = mean(disagreement) − "
            "mean(agreement) with a 95% percentile bootstrap interval, each group's samples resampled with "
            f"replacement separately ({n_boot} resamples, numpy default_rng({seed})). Spearman's rho between the "
            "number of disagreeing unimodal models and the measure, two-sided p (scipy).")


def compute(ctx: Context) -> dict:
    why = missing_votes(ctx) or (None if ctx.unimodal else NO_UNIMODAL)
    if why:
        ctx.skipped["join"] = why
        return {"join": None}
    entropy, category = ctx.entropy, ctx.category
    have = np.isfinite(entropy)
    dis = (category != "agreement") & have
    agr = (category == "agreement") & have
    out = {"groups": {"disagreement": int(dis.sum()), "agreement": int(agr.sum())}}
    for name, vals in (("entropy", entropy), ("majority_share", ctx.majority_share)):
        mw = _stats.mann_whitney(vals[dis], vals[agr])
        diff = _stats.bootstrap_mean_difference(vals[dis], vals[agr], n_boot=ctx.n_boot, seed=ctx.seed)
        out[name] = {"mann_whitney": mw, "mean_difference": diff,
                     "spearman_vs_n_disagree": _stats.spearman(ctx.n_disagree[have], vals[have])}
    mis = (category == "misled") & have
    out["entropy_misled_vs_others"] = _stats.mann_whitney(entropy[mis], entropy[have & ~mis])
    out["definition"] = definition(ctx.n_boot, ctx.seed)
    return {"join": out}


def blocks(report: dict, figures: dict) -> list[tuple]:
    b: list[tuple] = [("h2", "4. Does disagreement mark ambiguous samples?")]
    join = report.get("join")
    if not join:
        b.append(("skip", f"Skipped: {report['skipped'].get('join')}."))
        return b
    rows = []
    for name in ("entropy", "majority_share"):
        j = join[name]
        mw, d, sp = j["mann_whitney"], j["mean_difference"], j["spearman_vs_n_disagree"]
        rows.append([name.replace("_", " "), num(mw["mean_a"]), num(mw["mean_b"]),
                     f"{num(d['diff'])} [{num(d['ci_low'])}, {num(d['ci_high'])}]", num(mw["u"], 1), pval(mw["p"]),
                     num(mw["rank_biserial"]), f"{num(sp['rho'])} (p {pval(sp['p'])})"])
    b.append(("table", ["measure", f"disagreement (n={join['groups']['disagreement']})",
                        f"agreement (n={join['groups']['agreement']})", "difference [95% CI]",
                        "Mann–Whitney U", "p", "rank-biserial r", "Spearman with # disagreeing"], rows))
    mm = join["entropy_misled_vs_others"]
    b.append(("p", f"Entropy in misled vs other samples: {num(mm['mean_a'])} vs {num(mm['mean_b'])}, "
                   f"U = {num(mm['u'], 1)}, p = {pval(mm['p'])}, r = {num(mm['rank_biserial'])}."))
    if join.get("definition"):
        b.append(("p", f"**Definitions.** {join['definition']}"))
    if "uncertainty" in figures:
        b.append(("img", *figures["uncertainty"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("join"):
        return {}
    return {"uncertainty": (_plot(report["samples"]), "Vote entropy by sample category (box: quartiles, whiskers: "
                            "1.5 IQR, outliers not drawn, triangle: mean) and mean entropy by the number of "
                            "disagreeing modalities.")}


def _plot(samples: dict) -> bytes:
    plt = _plots.pyplot()
    ent = samples["entropy"]
    nd = samples["n_disagree"]
    cat = samples["category"]
    have = np.isfinite(ent)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    data, labels = [], []
    for c in CATEGORIES:
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
    return _plots.png(fig)
