"""1b. Paired comparisons: the full model against every other subset of the run on the same analysed samples —
the discordant counts, the exact McNemar test, Benjamini–Hochberg over the family of subsets, and a paired
bootstrap interval of the difference (full − other) in accuracy and macro-F1 (report.json ``paired``)."""

from __future__ import annotations

import numpy as np

from mixsig import metrics as _metrics
from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import Context
from mixsig.analysis._format import num, pval

#: The metrics whose difference gets a paired bootstrap interval.
DIFF_METRICS = ("accuracy", "macro_f1")
#: A comparison is called a difference on the page when its BH-adjusted McNemar p is below this.
ALPHA = 0.05


def definition(n_boot: int) -> str:
    return ("Seed-aggregated predictions. b = full right, other wrong; c = full wrong, other right. McNemar p: exact two-sided "
            "binomial test of b against b + c discordant samples with probability 1/2, p = min(1, 2·P(X ≤ "
            "min(b, c))), X ~ Bin(b + c, 1/2) (p = 1 when b + c = 0); BH q: Benjamini–Hochberg adjusted over the "
            "comparisons of this table. Δ = full − other (positive: the full model scores higher), with a 95% "
            f"percentile paired bootstrap interval: {n_boot} resamples of the samples with replacement, each "
            "resample scoring both models on the same drawn samples (each interval on its own, not adjusted for "
            "the family; the verdict below uses BH q).")


def compute(ctx: Context) -> dict:
    others = [s for s in ctx.subsets if s != ctx.full]
    if not others:
        ctx.skipped["paired"] = (f"run {ctx.inp.run_name!r} has only its full subset {ctx.full!r}: nothing to "
                                 "compare it with (`mixsig train` trains every subset)")
        return {"paired": None}
    y, c = ctx.y, ctx.n_classes
    full = ctx.agg[ctx.full]
    full_ok = full.pred == y
    full_point = _metrics.point_metrics(y, full.mean_probs, full.pred)
    out = {}
    for s in others:
        other = ctx.agg[s]
        ok = other.pred == y
        b, d = int((full_ok & ~ok).sum()), int((~full_ok & ok).sum())
        point = _metrics.point_metrics(y, other.mean_probs, other.pred)
        diff = {}
        if ctx.n_boot > 0 and y.size > 1:
            cm_f, cm_o = _stats.paired_resample_confusions(y, full.pred, other.pred, c, n_boot=ctx.n_boot,
                                                           seed=ctx.seed)
            boot_f, boot_o = _metrics.scores_from_confusion(cm_f), _metrics.scores_from_confusion(cm_o)
        for m in DIFF_METRICS:
            lo = hi = float("nan")
            if ctx.n_boot > 0 and y.size > 1:
                lo, hi = _stats.percentile_interval(boot_f[m] - boot_o[m])
            diff[m] = {"value": float(full_point[m] - point[m]), "ci": [lo, hi], "full": float(full_point[m]),
                       "other": float(point[m])}
        out[s] = {"full_right_other_wrong": b, "full_wrong_other_right": d,
                  "mcnemar_p": _stats.mcnemar_exact(b, d), "diff": diff, "n": int(y.size), "n_boot": int(ctx.n_boot)}
    q = _stats.benjamini_hochberg(np.array([v["mcnemar_p"] for v in out.values()]))
    for v, qi in zip(out.values(), q):
        v["mcnemar_p_bh"] = float(qi)
    return {"paired": out}


def _full_name(report: dict) -> str:
    subsets = (report.get("run") or {}).get("subsets") or []
    rest = [s for s in subsets if s not in report["paired"]]
    return rest[0] if len(rest) == 1 else "the full model"


def _ci(d: dict) -> str:
    return f"{num(d['value'])} [{num(d['ci'][0])}, {num(d['ci'][1])}]"


def blocks(report: dict, figures: dict) -> list[tuple]:
    paired = report.get("paired")
    b: list[tuple] = [("h2", "1b. Paired comparisons: the full model against each subset")]
    if not paired:
        return b + [("skip", f"Skipped: {report['skipped'].get('paired')}.")]
    full = _full_name(report)
    n = next(iter(paired.values()))["n"]
    b.append(("p", f"Full model: **{full}**, against each other subset on the same {n} samples. "
                   + definition(report["bootstrap"]["n_boot"])))
    rows = [[s, v["full_right_other_wrong"], v["full_wrong_other_right"], pval(v["mcnemar_p"]),
             pval(v["mcnemar_p_bh"]), _ci(v["diff"]["accuracy"]), _ci(v["diff"]["macro_f1"])]
            for s, v in paired.items()]
    b.append(("table", ["other subset", "b: full right, other wrong", "c: full wrong, other right",
                        "McNemar p", "BH q", "Δ accuracy (full − other) [95% CI]",
                        "Δ macro-F1 (full − other) [95% CI]"], rows))
    better = [s for s, v in paired.items() if v["mcnemar_p_bh"] < ALPHA and v["full_right_other_wrong"]
              > v["full_wrong_other_right"]]
    worse = [s for s, v in paired.items() if v["mcnemar_p_bh"] < ALPHA and v["full_right_other_wrong"]
             < v["full_wrong_other_right"]]
    same = [s for s in paired if s not in better and s not in worse]
    b.append(("p", f"At BH q < {ALPHA}, the full model is right more often than: {', '.join(better) or 'none'}; "
                   f"less often than: {', '.join(worse) or 'none'}; no difference shown against: "
                   f"{', '.join(same) or 'none'} (a difference not shown is not an equality shown)."))
    if "paired" in figures:
        b.append(("img", *figures["paired"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("paired"):
        return {}
    return {"paired": (_plot(report), "Difference full − other in accuracy and macro-F1 per subset, with 95% "
                       "paired bootstrap intervals (the same resampled samples for both models); right of 0: "
                       "the full model scores higher.")}


def _plot(report: dict) -> bytes:
    plt = _plots.pyplot()
    paired = report["paired"]
    names = list(paired)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.5))
    ypos = np.arange(len(names))
    for j, (m, colour) in enumerate((("accuracy", "#1c7ed6"), ("macro_f1", "#f59f00"))):
        v = np.array([paired[s]["diff"][m]["value"] for s in names])
        lo = np.array([paired[s]["diff"][m]["ci"][0] for s in names], dtype=float)
        hi = np.array([paired[s]["diff"][m]["ci"][1] for s in names], dtype=float)
        err = np.vstack([np.nan_to_num(v - lo), np.nan_to_num(hi - v)])
        ax.errorbar(v, ypos + (j - 0.5) * 0.3, xerr=err, fmt="o", capsize=3, color=colour,
                    label=f"Δ {m.replace('_', '-')}")
    ax.axvline(0, color="#495057", lw=1)
    ax.set_yticks(ypos, [f"vs {s}" for s in names])
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ = {_full_name(report)} − other subset (right of 0: the full model scores higher)")
    ax.legend(fontsize=8, loc="best")
    ax.set_title("Paired differences, 95% bootstrap intervals")
    return _plots.png(fig)
