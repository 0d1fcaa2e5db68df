"""6d. Training dynamics: the data map of the full model's training rows (dataset cartography, Swayamdipta et al.
2020) and whether the samples the models disagree on are its "ambiguous" region (report.json ``dynamics``; the
samples table's ``confidence@<subset>`` / ``variability@<subset>`` columns, :func:`sample_columns`).

The run holds, per subset and seed, each training row's confidence, variability and correctness over the epochs
(torch heads) or boosting rounds (LightGBM) of its fit (``dynamics/*``, :mod:`mixsig.heads._dynamics`); logreg runs
and imported runs have none, and the section is skipped with the reason.
"""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots
from mixsig.analysis._context import Context, aggregate_seeds
from mixsig.analysis._format import num, pval
from mixsig.analysis.sections.disagreement import CATEGORIES

PATHS = {"confidence": "dynamics/confidence", "variability": "dynamics/variability",
         "correctness": "dynamics/correctness"}
REGIONS = ("easy-to-learn", "ambiguous", "hard-to-learn", "other")
#: the data map draws at most this many training rows (a seeded random subset; the caption says so)
MAX_MAP_POINTS = 3000
TRAIN_SPLIT = "train"

DEFINITION = (
    "Training dynamics of each training row (split 'train'), recorded while the head trained: p(gold) = the "
    "probability of the row's gold label in the training forward pass of each epoch (torch heads: the mini-batch "
    "the loss is computed from, dropout on) or at every k-th boosting round (LightGBM, at most 50 rounds). Per seed: "
    "confidence = mean of p(gold) over the epochs, variability = its standard deviation (ddof 0), correctness = "
    "share of epochs whose predicted class is the gold label. Over seeds, each seed weighs the same: confidence "
    "and correctness are the seed means, variability is the standard deviation of the pooled epochs of all seeds "
    "(sqrt(mean_s(sd_s^2 + mean_s^2) - confidence^2)). Regions (by thirds of the training rows, as the 33% subsets "
    "of Swayamdipta et al. 2020): ambiguous = variability in the top third; of the others, hard-to-learn = "
    "confidence in the bottom third, easy-to-learn = confidence in the top third, other = the rest. Categories of "
    "the training rows: the disagreement section's rule (full model vs unimodal models, seed-aggregated "
    "predictions) applied to the training rows. Test of 'disagreement samples are the ambiguous region': Fisher's "
    "exact test (two-sided, scipy) of disagreement (rescued, misled or disagree_wrong) vs agreement x ambiguous vs "
    "not, with its odds ratio; and a two-sided Mann-Whitney U test of variability, disagreement vs agreement "
    "samples, with the rank-biserial r (positive: disagreement samples vary more).")


def combine(extra: dict) -> dict[str, np.ndarray] | None:
    """``{"confidence", "variability", "correctness"}`` ``[N]`` over the seeds of one subset's ``dynamics/*``
    ``[S, N]`` arrays (see :data:`DEFINITION`), or None when the subset has none. NaN where no seed has the row."""
    if any(p not in extra for p in PATHS.values()):
        return None
    c, v, k = (np.asarray(extra[PATHS[n]], np.float64) for n in ("confidence", "variability", "correctness"))
    conf, corr = _seed_mean(c), _seed_mean(k)
    var = np.sqrt(np.maximum(_seed_mean(v ** 2 + c ** 2) - conf ** 2, 0.0))
    return {"confidence": conf, "variability": var, "correctness": corr}


def _seed_mean(a: np.ndarray) -> np.ndarray:
    """Mean over the seeds (axis 0) of the finite values; NaN where no seed has one."""
    have = np.isfinite(a).sum(axis=0)
    return np.where(have > 0, np.nansum(a, axis=0) / np.maximum(have, 1), np.nan)


def regions(confidence: np.ndarray, variability: np.ndarray) -> tuple[np.ndarray, dict]:
    """The region of each row (:data:`REGIONS`, by thirds: see :data:`DEFINITION`) and the thresholds used."""
    v_hi = float(np.quantile(variability, 2 / 3))
    c_lo, c_hi = (float(q) for q in np.quantile(confidence, [1 / 3, 2 / 3]))
    out = np.full(confidence.shape, "other", dtype=object)
    amb = variability >= v_hi
    out[amb] = "ambiguous"
    out[~amb & (confidence <= c_lo)] = "hard-to-learn"
    out[~amb & (confidence >= c_hi) & (confidence > c_lo)] = "easy-to-learn"
    return out, {"variability_top_third": v_hi, "confidence_bottom_third": c_lo, "confidence_top_third": c_hi}


def categories(probs: dict[str, np.ndarray], full: str, unimodal: list[str], y: np.ndarray) -> np.ndarray:
    """The disagreement section's sample categories for rows with ``probs`` ``{subset: [S, n, C]}`` and labels
    ``y``: agreement / rescued / misled / disagree_wrong (its CATEGORY_NOTE)."""
    full_pred = aggregate_seeds(probs[full]).pred
    full_ok = full_pred == y
    preds = [aggregate_seeds(probs[m]).pred for m in unimodal]
    dis = np.zeros(len(y), bool)
    any_right = np.zeros(len(y), bool)
    for p in preds:
        dis |= p != full_pred
        any_right |= p == y
    cat = np.full(len(y), "agreement", dtype=object)
    cat[dis & full_ok] = "rescued"
    cat[~full_ok & any_right] = "misled"
    cat[dis & ~full_ok & ~any_right] = "disagree_wrong"
    return cat


def ambiguity_test(disagree: np.ndarray, region: np.ndarray, variability: np.ndarray) -> dict:
    """Fisher's exact test (two-sided) of ``disagree`` x ambiguous, and Mann-Whitney U of variability."""
    from scipy.stats import fisher_exact

    from mixsig.analysis._stats import mann_whitney

    amb = region == "ambiguous"
    table = [[int((disagree & amb).sum()), int((disagree & ~amb).sum())],
             [int((~disagree & amb).sum()), int((~disagree & ~amb).sum())]]
    if disagree.any() and (~disagree).any():
        odds, p = fisher_exact(table, alternative="two-sided")
        odds, p = float(odds), float(p)
    else:
        odds = p = float("nan")
    return {"table": {"rows": ["disagreement", "agreement"], "columns": ["ambiguous", "not ambiguous"],
                      "counts": table},
            "share_ambiguous_disagreement": table[0][0] / max(1, sum(table[0])) if disagree.any() else None,
            "share_ambiguous_agreement": table[1][0] / max(1, sum(table[1])) if (~disagree).any() else None,
            "fisher": {"odds_ratio": odds if np.isfinite(odds) else None, "p": p if np.isfinite(p) else None},
            "mann_whitney_variability": mann_whitney(variability[disagree], variability[~disagree])}


def _why_skipped(ctx: Context) -> str | None:
    if combine(ctx.inp.extra.get(ctx.full, {})) is None:
        return (f"the run has no training dynamics for its full subset {ctx.full!r} (recorded by torch and LightGBM "
                "heads in `mixsig train`; logreg and imported runs have none)")
    if not ((ctx.inp.split == TRAIN_SPLIT) & (ctx.inp.labels >= 0)).any():
        return f"the store has no labelled {TRAIN_SPLIT!r} rows"
    return None


def compute(ctx: Context) -> dict:
    why = _why_skipped(ctx)
    if why:
        ctx.skipped["dynamics"] = why
        return {"dynamics": None}
    inp, full = ctx.inp, ctx.full
    dyn = combine(inp.extra[full])
    rows = np.flatnonzero((inp.split == TRAIN_SPLIT) & (inp.labels >= 0) & np.isfinite(dyn["confidence"])
                          & np.all([np.isfinite(p).all(axis=(0, 2)) for p in inp.probs.values()], axis=0))
    conf, var, corr = (dyn[k][rows] for k in ("confidence", "variability", "correctness"))
    region, thresholds = regions(conf, var)
    y = inp.labels[rows]
    unimodal = [m for m in ctx.unimodal if m in inp.probs]
    cat = categories({k: p[:, rows] for k, p in inp.probs.items()}, full, unimodal, y) if unimodal else \
        np.full(rows.size, "agreement", dtype=object)
    out = {"subset": full, "n_train_rows": int(rows.size), "thresholds": thresholds,
           "regions": {r: int((region == r).sum()) for r in REGIONS},
           "by_category": {c: {r: int(((cat == c) & (region == r)).sum()) for r in REGIONS} for c in CATEGORIES},
           "means": {"confidence": float(conf.mean()), "variability": float(var.mean()),
                     "correctness": float(corr.mean())},
           "per_subset": {s: _means(combine(ex), rows) for s, ex in inp.extra.items() if combine(ex) is not None},
           "ambiguity_test": ambiguity_test(cat != "agreement", region, var) if unimodal else None,
           "map": _map_points(conf, var, cat, ctx.seed),
           "definition": DEFINITION}
    if not unimodal:
        ctx.notes.append("training dynamics: the run has no unimodal subset, so the data map has no disagreement "
                         "categories and the ambiguity test is not run")
    return {"dynamics": out}


def _means(d: dict, rows: np.ndarray) -> dict:
    return {k: float(np.nanmean(d[k][rows])) if np.isfinite(d[k][rows]).any() else None
            for k in ("confidence", "variability", "correctness")}


def _map_points(conf, var, cat, seed: int) -> dict:
    """The rows the data map draws (all, or a random :data:`MAX_MAP_POINTS` of them with ``default_rng(seed)``)."""
    n = conf.size
    idx = np.arange(n)
    if n > MAX_MAP_POINTS:
        idx = np.sort(np.random.default_rng(seed).choice(n, MAX_MAP_POINTS, replace=False))
    return {"n_drawn": int(idx.size), "n_rows": int(n), "seed": int(seed),
            "confidence": [round(float(x), 4) for x in conf[idx]],
            "variability": [round(float(x), 4) for x in var[idx]], "category": [str(c) for c in cat[idx]]}


def sample_columns(ctx: Context) -> dict[str, np.ndarray]:
    """``{"confidence@<subset>", "variability@<subset>"}`` ``[n]`` on the analysed rows for each subset with
    training dynamics (NaN on rows that are not training rows)."""
    cols = {}
    for sub, ex in ctx.inp.extra.items():
        d = combine(ex)
        if d is not None:
            cols[f"confidence@{sub}"] = d["confidence"][ctx.rows]
            cols[f"variability@{sub}"] = d["variability"][ctx.rows]
    return cols


def blocks(report: dict, figures: dict) -> list[tuple]:
    d = report.get("dynamics")
    b: list[tuple] = [("h2", "6d. Training dynamics: the data map")]
    if not d:
        b.append(("skip", f"Skipped: {report['skipped'].get('dynamics')}."))
        return b
    b.append(("p", f"Full model **{d['subset']}**, {d['n_train_rows']} training rows: mean confidence "
                   f"{num(d['means']['confidence'])}, variability {num(d['means']['variability'])}, correctness "
                   f"{num(d['means']['correctness'])}."))
    b.append(("table", ["category"] + list(REGIONS),
              [[c] + [d["by_category"][c][r] for r in REGIONS] for c in CATEGORIES if any(d["by_category"][c].values())]
              + [["all"] + [d["regions"][r] for r in REGIONS]]))
    t = d.get("ambiguity_test")
    if t:
        mw, f = t["mann_whitney_variability"], t["fisher"]
        b.append(("p", f"Disagreement samples in the ambiguous region: {num(t['share_ambiguous_disagreement'])} vs "
                       f"{num(t['share_ambiguous_agreement'])} of agreement samples; Fisher's exact odds ratio "
                       f"{num(f['odds_ratio'])}, p {pval(f['p'])}. Variability, disagreement vs agreement: "
                       f"Mann-Whitney p {pval(mw['p'])}, rank-biserial r {num(mw['rank_biserial'])}."))
    b.append(("table", ["subset", "mean confidence", "mean variability", "mean correctness"],
              [[s, num(m["confidence"]), num(m["variability"]), num(m["correctness"])]
               for s, m in d["per_subset"].items()]))
    b.append(("p", f"**Definitions.** {d['definition']}"))
    if "dynamics" in figures:
        b.append(("img", *figures["dynamics"]))
    return b


def figures(report: dict) -> dict:
    d = report.get("dynamics")
    if not d:
        return {}
    m = d["map"]
    what = (f"all {m['n_rows']} training rows" if m["n_drawn"] == m["n_rows"] else
            f"a random {m['n_drawn']} of {m['n_rows']} training rows (seed {m['seed']})")
    return {"dynamics": (_plot(d), f"Data map of the full model {d['subset']}: variability (x) vs confidence (y) "
                                   f"of {what}, coloured by disagreement category; dashed: the region thresholds.")}


def _plot(d: dict) -> bytes:
    plt = _plots.pyplot()
    m, th = d["map"], d["thresholds"]
    x, y, cat = np.array(m["variability"]), np.array(m["confidence"]), np.array(m["category"], dtype=object)
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for c, colour in _plots.CATEGORY_COLOURS.items():
        sel = cat == c
        if sel.any():
            ax.scatter(x[sel], y[sel], s=7, alpha=0.6, color=colour, label=c, rasterized=True, linewidths=0)
    ax.axvline(th["variability_top_third"], color="black", lw=0.6, ls="--")
    for q in (th["confidence_bottom_third"], th["confidence_top_third"]):
        ax.axhline(q, color="black", lw=0.6, ls="--")
    ax.set_xlabel("variability (sd of p(gold) over epochs)")
    ax.set_ylabel("confidence (mean p(gold))")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower right", markerscale=2)
    ax.set_title("Training dynamics: data map")
    return _plots.png(fig)
