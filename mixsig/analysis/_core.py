"""The analyses of PAPER.md on plain arrays: seed aggregation, metrics, disagreement, annotator
uncertainty, the join, dominance, confidence, the human study.

Every function takes checked arrays for the selected rows (``n`` of them) and returns JSON-ready
dicts; per-sample results are returned separately as arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixsig import metrics as _metrics
from mixsig.analysis import _stats

AGGREGATION_NOTE = (
    "Seeds are aggregated per sample by majority vote of their predicted classes (a tie is broken by the "
    "highest mean probability among the tied classes); confidences are the seed-mean probabilities."
)
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


@dataclass
class Aggregated:
    """Seed-aggregated predictions of one subset on the selected rows.

    mean_probs: ``[n, C]``; pred: ``[n]`` int64; seed_pred: ``[S, n]`` int64."""

    mean_probs: np.ndarray
    pred: np.ndarray
    seed_pred: np.ndarray


def argmax_last(x: np.ndarray) -> np.ndarray:
    """``x.argmax(axis=-1)`` (first maximum wins) in ``C`` vectorised passes: much faster than numpy's
    argmax along a short last axis."""
    best = x[..., 0].copy()
    idx = np.zeros(best.shape, dtype=np.int64)
    for k in range(1, x.shape[-1]):
        better = x[..., k] > best
        idx[better] = k
        np.maximum(best, x[..., k], out=best)
    return idx


def aggregate_seeds(probs: np.ndarray) -> Aggregated:
    """Majority vote of per-seed argmax predictions, ties broken by the mean probability.

    probs: ``[S, n, C]`` finite."""
    s, n, c = probs.shape
    seed_pred = argmax_last(probs)
    mean = probs.mean(axis=0)
    votes = np.zeros((n, c))
    for k in range(c):
        votes[:, k] = (seed_pred == k).sum(axis=0)
    # mean probabilities lie in [0, 1]; scaled by 0.5 they only decide between classes with equal votes
    pred = argmax_last(votes + 0.5 * mean)
    return Aggregated(mean_probs=mean, pred=pred, seed_pred=seed_pred)


# ----------------------------------------------------------------------------------------------
# 1. metrics


def metrics_section(y, subsets: dict[str, np.ndarray], agg: dict[str, Aggregated], *, n_boot, seed) -> dict:
    """Per subset: per-seed metrics (mean, std over seeds, per seed) and the seed-aggregated predictions'
    metrics with bootstrap intervals over samples."""
    out = {}
    for name, probs in subsets.items():
        per_seed = [_metrics.point_metrics(y, probs[i], agg[name].seed_pred[i]) for i in range(probs.shape[0])]
        seeds = {}
        for metric in _metrics.METRICS:
            vals = np.array([p[metric] for p in per_seed])
            seeds[metric] = {
                "mean": float(np.mean(vals)),
                "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                "per_seed": [float(v) for v in vals],
            }
        boot = _metrics.bootstrap_metrics(y, agg[name].mean_probs, agg[name].pred, n_boot=n_boot, seed=seed)
        out[name] = {"over_seeds": seeds, "aggregated": boot,
                     "predicted_classes": np.bincount(agg[name].pred, minlength=probs.shape[2]).tolist()}
    return out


# ----------------------------------------------------------------------------------------------
# 2. disagreement


def disagreement_section(y, unimodal: list[str], full: str, agg: dict[str, Aggregated], names: list[str]) -> tuple[dict, dict]:
    """Rates and 2x2 cells per modality against the full model, and the per-sample categories.

    Returns (section, per-sample columns ``{"n_disagree", "category", "lone_follow", "followed"}``)."""
    n = len(y)
    full_pred = agg[full].pred
    full_ok = full_pred == y
    per_mod = {}
    disagree = np.zeros((len(unimodal), n), dtype=bool)
    right = np.zeros((len(unimodal), n), dtype=bool)
    for i, m in enumerate(unimodal):
        p = agg[m].pred
        ok = p == y
        disagree[i] = p != full_pred
        right[i] = ok
        cells = {
            "both_correct": int((ok & full_ok).sum()),
            "both_wrong": int((~ok & ~full_ok).sum()),
            "rescued": int((~ok & full_ok).sum()),
            "misled": int((ok & ~full_ok).sum()),
        }
        per_mod[m] = {
            "rate": float(disagree[i].mean()) if n else float("nan"),
            "n_disagree": int(disagree[i].sum()),
            "cells": cells,
            "cell_shares": {k: (v / n if n else float("nan")) for k, v in cells.items()},
            "both_wrong_different_class": int((~ok & ~full_ok & disagree[i]).sum()),
        }
    n_dis = disagree.sum(axis=0)
    any_right = right.any(axis=0)
    category = np.full(n, "agreement", dtype=object)
    dis = n_dis > 0
    category[dis & full_ok] = "rescued"
    category[~full_ok & any_right] = "misled"
    category[dis & ~full_ok & ~any_right] = "disagree_wrong"

    agree = ~disagree  # [M, n] unimodal model agrees with full
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
    lone_possible = len(unimodal) >= 3
    lone = np.full(n, "", dtype=object)
    if lone_possible:
        lone[single] = names_arr[which[single]]
    lone_counts = {m: int((lone == m).sum()) for m in unimodal}
    lone_acc = {m: (float(full_ok[lone == m].mean()) if lone_counts[m] else None) for m in unimodal}
    hist = np.bincount(n_dis, minlength=len(unimodal) + 1)
    section = {
        "full_subset": full,
        "unimodal_subsets": list(unimodal),
        "per_modality": per_mod,
        "n_disagree_histogram": {str(k): int(v) for k, v in enumerate(hist)},
        "categories": {c: int((category == c).sum()) for c in CATEGORIES},
        "disagreement_rate_any": float(dis.mean()) if n else float("nan"),
        "lone_following": {
            "defined": lone_possible,
            "definition": LONE_FOLLOWING_NOTE,
            "counts": lone_counts if lone_possible else None,
            "total": int(sum(lone_counts.values())) if lone_possible else None,
            "full_accuracy_when_following": lone_acc if lone_possible else None,
        },
        "category_definition": CATEGORY_NOTE,
    }
    return section, {"n_disagree": n_dis, "category": category, "lone_follow": lone, "followed": followed}


# ----------------------------------------------------------------------------------------------
# 3-4. annotator uncertainty and the join


def uncertainty_section(votes, n_classes, *, n_boot, seed) -> tuple[dict, dict]:
    """Vote entropy (bits), majority share, Krippendorff's alpha with a bootstrap interval over units."""
    counts = _stats.vote_counts(votes, n_classes)
    ent = _stats.vote_entropy(counts)
    share = _stats.majority_share(counts)
    n_votes = counts.sum(axis=1)
    have = n_votes > 0
    alpha = _stats.krippendorff_alpha_bootstrap(votes, n_classes, n_boot=n_boot, seed=seed)
    section = {
        "n_with_votes": int(have.sum()),
        "votes_per_sample": {"mean": float(n_votes[have].mean()), "min": int(n_votes[have].min()),
                             "max": int(n_votes[have].max())},
        "entropy_bits": _describe(ent[have]),
        "majority_share": _describe(share[have]),
        "unanimous_share": float((share[have] == 1.0).mean()),
        "krippendorff_alpha": alpha,
    }
    return section, {"entropy": ent, "majority_share": share, "n_votes": n_votes}


def join_section(entropy, share, n_disagree, category, *, n_boot, seed) -> dict:
    """Uncertainty in disagreement vs agreement samples, and its rank correlation with the number of
    disagreeing modalities."""
    have = np.isfinite(entropy)
    dis = (category != "agreement") & have
    agr = (category == "agreement") & have
    out = {"groups": {"disagreement": int(dis.sum()), "agreement": int(agr.sum())}}
    for name, vals in (("entropy", entropy), ("majority_share", share)):
        mw = _stats.mann_whitney(vals[dis], vals[agr])
        diff = _stats.bootstrap_mean_difference(vals[dis], vals[agr], n_boot=n_boot, seed=seed)
        out[name] = {"mann_whitney": mw, "mean_difference": diff,
                     "spearman_vs_n_disagree": _stats.spearman(n_disagree[have], vals[have])}
    mis = (category == "misled") & have
    out["entropy_misled_vs_others"] = _stats.mann_whitney(entropy[mis], entropy[have & ~mis])
    return out


# ----------------------------------------------------------------------------------------------
# 5. dominance


def dominance_section(unimodal, full, agg, category, followed, gates, attention, rows) -> dict:
    """For misled samples: which modality the full model followed, that modality's confidence, and the
    gate/attention weights per modality by category."""
    misled = category == "misled"
    n_mis = int(misled.sum())
    counts = {m: int((misled & (followed == m)).sum()) for m in unimodal}
    counts["several"] = int((misled & (followed == "several")).sum())
    counts["none"] = int((misled & (followed == "none")).sum())
    single_counts = {m: counts[m] for m in unimodal}
    dominant = max(single_counts, key=single_counts.get) if n_mis and max(single_counts.values()) > 0 else None
    conf = {}
    for m in unimodal:
        c = agg[m].mean_probs.max(axis=1)
        sel = misled & (followed == m)
        conf[m] = {
            "when_followed_in_misled": _describe(c[sel]),
            "elsewhere": _describe(c[~sel]),
            "mann_whitney": _stats.mann_whitney(c[sel], c[~sel]) if sel.any() else None,
        }
    weights = {}
    mods = full.split("+")
    for kind, store in (("gates", gates), ("attention", attention)):
        arr = store.get(full)
        if arr is None:
            continue
        w = arr[:, rows, :].mean(axis=0)  # [n, M]
        by_cat = {}
        for cat in CATEGORIES:
            sel = category == cat
            by_cat[cat] = {m: (float(w[sel, j].mean()) if sel.any() else None) for j, m in enumerate(mods)}
        by_followed = {}
        for m in unimodal:
            sel = misled & (followed == m)
            if sel.any():
                by_followed[m] = {k: float(w[sel, j].mean()) for j, k in enumerate(mods)}
        weights[kind] = {"by_category": by_cat, "misled_by_followed_modality": by_followed}
    return {
        "n_misled": n_mis,
        "followed_counts": counts,
        "followed_shares": {k: (v / n_mis if n_mis else None) for k, v in counts.items()},
        "dominant_modality": dominant,
        "followed_confidence": conf,
        "weights": weights or None,
        "definition": ("followed = the single unimodal model whose aggregated prediction equals the full "
                       "model's; 'several' when more than one (but not all) do, 'all' when every one does, 'none' "
                       "when none does. Confidence = the "
                       "followed model's seed-mean probability of its predicted class."),
    }


# ----------------------------------------------------------------------------------------------
# 6. confidence


def confidence_section(y, unimodal, full, agg, category) -> tuple[dict, dict]:
    """Confidence in the true label (seed-mean probability), unimodal vs full, per modality."""
    idx = np.arange(len(y))
    p_true = {name: a.mean_probs[idx, y] for name, a in agg.items()}
    out = {}
    for m in unimodal:
        out[m] = {
            "spearman_with_full": _stats.spearman(p_true[m], p_true[full]),
            "mean_unimodal": float(p_true[m].mean()),
            "mean_full": float(p_true[full].mean()),
            "share_full_higher": float((p_true[full] > p_true[m]).mean()),
            "by_category": {c: ({"unimodal": float(p_true[m][category == c].mean()),
                                 "full": float(p_true[full][category == c].mean())}
                                if (category == c).any() else None) for c in CATEGORIES},
        }
    return out, p_true


# ----------------------------------------------------------------------------------------------
# 7. human study


def human_section(y, votes_by_condition: dict[str, np.ndarray], modalities, n_classes, *, n_boot, seed) -> dict:
    """Annotator accuracy against the gold label and alpha per condition, and how often the
    all-modalities condition beats the best single condition per sample."""
    per = {}
    share_correct = {}
    for c, v in votes_by_condition.items():
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
            "krippendorff_alpha": _stats.krippendorff_alpha_bootstrap(v, n_classes, n_boot=n_boot, seed=seed),
        }
    all_name = next((c for c in votes_by_condition if c in ("all", "+".join(modalities))), None)
    singles = [c for c in votes_by_condition if c != all_name]
    comparison = None
    if all_name and singles:
        s_all = share_correct[all_name]
        best = np.vstack([share_correct[c] for c in singles])
        ok = np.isfinite(s_all) & np.isfinite(best).all(axis=0)
        b = best[:, ok].max(axis=0)
        a = s_all[ok]
        comparison = {
            "all_condition": all_name,
            "single_conditions": singles,
            "n_samples": int(ok.sum()),
            "all_beats_best_single": float((a > b).mean()) if ok.any() else None,
            "tie": float((a == b).mean()) if ok.any() else None,
            "all_worse": float((a < b).mean()) if ok.any() else None,
            "definition": ("Per sample, the share of correct votes in the all-modalities condition vs the "
                           "highest share among the single conditions (samples with votes in every condition)"),
        }
    return {"conditions": per, "all_vs_best_single": comparison}


def _describe(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": None, "std": None, "median": None}
    return {"n": int(x.size), "mean": float(x.mean()), "std": float(x.std()), "median": float(np.median(x))}
