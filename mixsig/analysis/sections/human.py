"""7. Human study: annotator accuracy against the gold label and Krippendorff's alpha per condition
(``votes@<condition>`` columns), and how often the all-modalities condition beats the best single condition
per sample (report.json ``human_study``)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import Context
from mixsig.analysis._format import num

COMPARISON_NOTE = ("Per sample, the share of correct votes in the all-modalities condition vs the highest share "
                   "among the single conditions (samples with votes in every condition)")


def compute(ctx: Context) -> dict:
    rows = ctx.rows
    conds = {c: v[rows] for c, v in ctx.inp.votes_by_condition.items() if v.shape[1] > 0 and (v[rows] >= 0).any()}
    if not conds:
        ctx.skipped["human_study"] = ("the samples table has no columns of votes per condition (`votes@text`, "
                                      "`votes@all`, ...) with votes in this split")
        return {"human_study": None}
    y, n_classes = ctx.y, ctx.n_classes
    per = {}
    share_correct = {}
    for c, v in conds.items():
        valid = v >= 0
        correct = (v == y[:, None]) & valid
        nv = valid.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(nv > 0, correct.sum(axis=1) / np.maximum(nv, 1), np.nan)
        share_correct[c] = share
        counts = _stats.vote_counts(v, n_classes)
        maj_ok = (counts.argmax(axis=1) == y) & (counts.max(axis=1) > np.sort(counts, axis=1)[:, -2]
                                                  if n_classes > 1 else True)
        have = nv > 0
        per[c] = {
            "n_samples": int(have.sum()),
            "n_votes": int(valid.sum()),
            "vote_accuracy": float(correct.sum() / valid.sum()) if valid.any() else None,
            "majority_accuracy": float(maj_ok[have].mean()) if have.any() else None,
            "krippendorff_alpha": _stats.krippendorff_alpha_bootstrap(v, n_classes, n_boot=ctx.n_boot, seed=ctx.seed),
        }
    comparison = _all_vs_best_single(share_correct, ctx.inp.modalities)
    if comparison is None:
        ctx.notes.append("human study: no `votes@all` condition next to single conditions, so the "
                         "all-vs-best-single comparison is skipped")
    return {"human_study": {"conditions": per, "all_vs_best_single": comparison}}


def _all_vs_best_single(share_correct: dict[str, np.ndarray], modalities) -> dict | None:
    """The all-modalities condition (``all`` or the modalities joined by ``+``) vs the best single condition."""
    all_name = next((c for c in share_correct if c in ("all", "+".join(modalities))), None)
    singles = [c for c in share_correct if c != all_name]
    if not (all_name and singles):
        return None
    s_all = share_correct[all_name]
    best = np.vstack([share_correct[c] for c in singles])
    ok = np.isfinite(s_all) & np.isfinite(best).all(axis=0)
    b = best[:, ok].max(axis=0)
    a = s_all[ok]
    return {
        "all_condition": all_name,
        "single_conditions": singles,
        "n_samples": int(ok.sum()),
        "all_beats_best_single": float((a > b).mean()) if ok.any() else None,
        "tie": float((a == b).mean()) if ok.any() else None,
        "all_worse": float((a < b).mean()) if ok.any() else None,
        "definition": COMPARISON_NOTE,
    }


def blocks(report: dict, figures: dict) -> list[tuple]:
    b: list[tuple] = [("h2", "7. Human study")]
    hs = report.get("human_study")
    if not hs:
        b.append(("skip", f"Skipped: {report['skipped'].get('human_study')}."))
        return b
    rows = [[c, d["n_samples"], d["n_votes"], num(d["vote_accuracy"]), num(d["majority_accuracy"]),
             f"{num(d['krippendorff_alpha']['alpha'])} [{num(d['krippendorff_alpha']['ci_low'])}, "
             f"{num(d['krippendorff_alpha']['ci_high'])}]"] for c, d in hs["conditions"].items()]
    b.append(("table", ["condition", "samples", "votes", "vote accuracy", "majority accuracy",
                        "alpha [95% CI]"], rows))
    cmp_ = hs.get("all_vs_best_single")
    if cmp_:
        b.append(("p", f"All-modalities condition `{cmp_['all_condition']}` vs the best single condition per "
                       f"sample ({cmp_['n_samples']} samples): beats {num(cmp_['all_beats_best_single'])}, ties "
                       f"{num(cmp_['tie'])}, worse {num(cmp_['all_worse'])}. {cmp_['definition']}."))
    if "human" in figures:
        b.append(("img", *figures["human"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("human_study"):
        return {}
    return {"human": (_plot(report["human_study"]["conditions"]), "Annotator accuracy against the gold label and "
                      "Krippendorff's alpha per condition.")}


def _plot(conds: dict) -> bytes:
    plt = _plots.pyplot()
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
    return _plots.png(fig)
