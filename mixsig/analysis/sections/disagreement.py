"""2. Disagreement with the full model: rates and 2x2 cells per unimodal model, the sample categories and
lone-modality following (report.json ``disagreement``; sets the context's per-sample ``category``,
``n_disagree``, ``followed`` and ``lone_follow``)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots
from mixsig.analysis._context import AGGREGATION_NOTE, NO_UNIMODAL, Context
from mixsig.analysis._intervals import interval_text, share_ci
from mixsig.analysis._format import num

LONE_FOLLOWING_NOTE = (
    "Lone-modality following: the full model's aggregated prediction equals the prediction of exactly one "
    "unimodal model m and differs from the prediction of every other unimodal model, of which there are "
    "at least two (so it needs three or more modalities)."
)
CATEGORY_NOTE = (
    "Sample categories (full model vs unimodal models): agreement = every unimodal model predicts what the "
    "full model predicts; rescued = some unimodal model disagrees and the full model is right; misled = the "
    "full model is wrong and at least one unimodal model is right; disagree_wrong = some unimodal model "
    "disagrees and every model is wrong (multi-class only). Disagreement = rescued + misled + disagree_wrong."
)
CATEGORIES = ("agreement", "rescued", "misled", "disagree_wrong")
#: Why the page has no disagree_wrong column for two classes.
TWO_CLASSES_NOTE = (
    "With two classes there is no disagree_wrong column: a unimodal model that disagrees with a wrong full "
    "model predicts the other class, which is the gold label, so the sample is misled; disagree_wrong is 0 by "
    "construction (report.json keeps the key)."
)


def definition(n_boot: int, seed: int, two_classes: bool) -> str:
    return ("Predictions are the seed-aggregated ones. " + AGGREGATION_NOTE + " Disagreement rate of modality "
            "m = share of analysed samples where m's prediction differs from the full model's; the four cells "
            "(both correct, both wrong, rescued = m wrong and full right, misled = m right and full wrong) are "
            "shares of the same samples. Intervals of every rate, cell and category share: "
            + interval_text(n_boot, seed) + "." + (" " + TWO_CLASSES_NOTE if two_classes else ""))


def compute(ctx: Context) -> dict:
    unimodal = ctx.unimodal
    if not unimodal:
        ctx.skipped["disagreement"] = NO_UNIMODAL
        return {"disagreement": None}
    y, full = ctx.y, ctx.full
    n = len(y)
    full_pred = ctx.agg[full].pred
    full_ok = full_pred == y
    per_mod = {}
    disagree = np.zeros((len(unimodal), n), dtype=bool)
    right = np.zeros((len(unimodal), n), dtype=bool)
    for i, m in enumerate(unimodal):
        p = ctx.agg[m].pred
        ok = p == y
        disagree[i] = p != full_pred
        right[i] = ok
        per_mod[m] = _cells(ok, full_ok, disagree[i], ctx.n_boot, ctx.seed)
    n_dis = disagree.sum(axis=0)
    any_right = right.any(axis=0)
    category = np.full(n, "agreement", dtype=object)
    dis = n_dis > 0
    category[dis & full_ok] = "rescued"
    category[~full_ok & any_right] = "misled"
    category[dis & ~full_ok & ~any_right] = "disagree_wrong"
    followed, lone = _following(unimodal, ~disagree)
    lone_possible = len(unimodal) >= 3
    lone_counts = {m: int((lone == m).sum()) for m in unimodal}
    lone_acc = {m: (float(full_ok[lone == m].mean()) if lone_counts[m] else None) for m in unimodal}
    hist = np.bincount(n_dis, minlength=len(unimodal) + 1)
    if len(unimodal) < 3:
        ctx.notes.append(f"lone-modality following needs three or more unimodal models; this run has "
                         f"{len(unimodal)} ({', '.join(unimodal)})")
    ctx.category, ctx.n_disagree, ctx.followed, ctx.lone_follow = category, n_dis, followed, lone
    two = ctx.n_classes == 2
    shares = {c: {"share": float((category == c).mean()) if n else float("nan"),
                  "ci": share_ci(int((category == c).sum()), n, n_boot=ctx.n_boot, seed=ctx.seed)}
              for c in CATEGORIES}
    return {"disagreement": {
        "full_subset": full,
        "unimodal_subsets": list(unimodal),
        "per_modality": per_mod,
        "n_disagree_histogram": {str(k): int(v) for k, v in enumerate(hist)},
        "categories": {c: int((category == c).sum()) for c in CATEGORIES},
        "category_shares": shares,
        "disagreement_rate_any": float(dis.mean()) if n else float("nan"),
        "disagreement_rate_any_ci": share_ci(int(dis.sum()), n, n_boot=ctx.n_boot, seed=ctx.seed),
        "disagree_wrong_possible": not two,
        "lone_following": {
            "defined": lone_possible,
            "definition": LONE_FOLLOWING_NOTE,
            "counts": lone_counts if lone_possible else None,
            "total": int(sum(lone_counts.values())) if lone_possible else None,
            "full_accuracy_when_following": lone_acc if lone_possible else None,
        },
        "category_definition": CATEGORY_NOTE,
        "definition": definition(ctx.n_boot, ctx.seed, two),
    }}


def _cells(ok: np.ndarray, full_ok: np.ndarray, disagree: np.ndarray, n_boot: int, seed: int) -> dict:
    """One unimodal model vs the full model: disagreement rate and the 2x2 correctness cells, each share with
    its bootstrap interval (``ci`` of ``rate``, ``cell_ci`` of ``cell_shares``)."""
    n = len(ok)
    cells = {
        "both_correct": int((ok & full_ok).sum()),
        "both_wrong": int((~ok & ~full_ok).sum()),
        "rescued": int((~ok & full_ok).sum()),
        "misled": int((ok & ~full_ok).sum()),
    }
    return {
        "rate": float(disagree.mean()) if n else float("nan"),
        "ci": share_ci(int(disagree.sum()), n, n_boot=n_boot, seed=seed),
        "n_disagree": int(disagree.sum()),
        "cells": cells,
        "cell_shares": {k: (v / n if n else float("nan")) for k, v in cells.items()},
        "cell_ci": {k: share_ci(v, n, n_boot=n_boot, seed=seed) for k, v in cells.items()},
        "both_wrong_different_class": int((~ok & ~full_ok & disagree).sum()),
    }


def _following(unimodal: list[str], agree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the unimodal model the full model followed (``several``/``all``/``none`` otherwise) and the
    one it followed alone (needs three or more unimodal models; "" otherwise). agree: ``[M, n]`` bool."""
    n = agree.shape[1]
    n_agree = agree.sum(axis=0)
    single = n_agree == 1
    which = np.argmax(agree, axis=0)
    followed = np.full(n, "", dtype=object)
    names_arr = np.array(unimodal, dtype=object)
    followed[single] = names_arr[which[single]]
    followed[n_agree > 1] = "several"
    followed[n_agree == 0] = "none"
    if len(unimodal) > 1:
        followed[n_agree == len(unimodal)] = "all"
    lone = np.full(n, "", dtype=object)
    if len(unimodal) >= 3:
        lone[single] = names_arr[which[single]]
    return followed, lone


def blocks(report: dict, figures: dict) -> list[tuple]:
    dis = report.get("disagreement")
    if not dis:
        return []
    b: list[tuple] = [("h2", "2. Disagreement with the full model")]
    b.append(("p", f"Full model: **{dis['full_subset']}**. Share of samples where at least one unimodal model "
                   f"disagrees: {_share(dis['disagreement_rate_any'], dis.get('disagreement_rate_any_ci'))}."))
    rows = []
    for m, d in dis["per_modality"].items():
        c, cs, cc = d["cells"], d["cell_shares"], d.get("cell_ci") or {}
        rows.append([m, _share(d["rate"], d.get("ci"))] + [f"{c[k]} · {_share(cs[k], cc.get(k))}" for k in
                                                           ("both_correct", "both_wrong", "rescued", "misled")])
    b.append(("p", "Per modality m: its disagreement rate, and the four cells as samples · share of samples "
                   "[95% CI]:"))
    b.append(("table", ["modality", "disagreement rate [95% CI]", "both correct", "both wrong",
                        "rescued (m wrong, full right)", "misled (m right, full wrong)"], rows))
    b.append(("table", ["unimodal models disagreeing"] + list(dis["n_disagree_histogram"]),
              [["samples"] + list(dis["n_disagree_histogram"].values())]))
    cats = [c for c in dis["categories"] if c != "disagree_wrong" or dis.get("disagree_wrong_possible", True)]
    shares = dis.get("category_shares") or {}
    b.append(("table", ["category"] + cats, [["samples"] + [dis["categories"][c] for c in cats],
                                             ["share [95% CI]"] + [_share(shares[c]["share"], shares[c]["ci"])
                                                                   if c in shares else "–" for c in cats]]))
    b.append(("p", dis["category_definition"]))
    lone = dis["lone_following"]
    b.append(("p", lone["definition"]))
    if lone["defined"]:
        b.append(("table", ["modality followed alone", "samples", "full model accuracy on them"],
                  [[m, lone["counts"][m], num(lone["full_accuracy_when_following"][m])] for m in lone["counts"]]))
    if dis.get("definition"):
        b.append(("p", f"**Definitions.** {dis['definition']}"))
    if "disagreement" in figures:
        b.append(("img", *figures["disagreement"]))
    return b


def _share(value, ci) -> str:
    return num(value) + (f" [{num(ci[0])}, {num(ci[1])}]" if ci else "")


def figures(report: dict) -> dict:
    if not report.get("disagreement"):
        return {}
    return {"disagreement": (_plot(report), "Share of samples in each cell, unimodal model vs full model, with the "
                             "disagreement rate and its 95% bootstrap interval.")}


def _plot(report: dict) -> bytes:
    plt = _plots.pyplot()
    per = report["disagreement"]["per_modality"]
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
        ci = per[m].get("ci") or [float("nan")] * 2
        ax.text(1.01, i, f"disagree {per[m]['rate']:.1%}\n[{ci[0]:.1%}, {ci[1]:.1%}]", va="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples (unimodal model vs full model)")
    ax.legend(ncol=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    ax.set_title("Disagreement cells per modality")
    return _plots.png(fig)
