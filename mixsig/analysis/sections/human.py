"""7. Human study: annotator accuracy against the gold label and Krippendorff's alpha per condition
(``votes@<condition>`` columns); the all-modalities condition against each single condition separately, paired
per sample, with a test and an interval (``all_vs``); and the "all vs the best single condition" shares beside
their no-effect expectation (``all_vs_best_single``) (report.json ``human_study``)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _paired_human as ph
from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import Context
from mixsig.analysis._format import num, pval

COMPARISON_NOTE = ("Per sample, the share of correct votes in the all-modalities condition vs the highest share "
                   "among the single conditions (samples with votes in every condition)")
BIAS_NOTE = ("Biased by construction: one condition against the best of several loses even with no effect, so "
             "these shares are shown beside their no-effect expectation (the votes of each sample pooled and "
             "dealt back at random to the conditions, each keeping its number of votes)")


def definition(n_boot: int, seed: int) -> str:
    return ("Per-sample annotator accuracy = the share of a condition's annotators voting the gold label. The "
            "all-modalities condition is compared with each single condition separately, over the samples with "
            "votes in both: diff = mean over samples of (all − condition); no effect: diff 0. p: "
            f"{ph.TEST_NAME} (the two conditions of a sample swapped at random; ties and zero differences leave "
            f"the statistic unchanged, so the test stays valid with them), exact over every sign pattern up to "
            f"{ph.EXACT_MAX} patterns, otherwise {ph.N_FLIPS} random patterns (seed {seed}) with "
            "p = (1 + #{|T*| ≥ |T|}) / (1 + patterns); q: Benjamini–Hochberg over the single conditions. "
            f"Interval: 95% percentile paired bootstrap of the mean difference (samples resampled with "
            f"replacement, each keeping its pair; {n_boot} resamples, seed {seed}). Vote accuracy = correct votes "
            "/ votes; majority accuracy = share of samples whose most voted class is the gold label, a tie "
            "between the most voted classes counting as wrong; Krippendorff's alpha (nominal) with a 95% "
            f"percentile bootstrap interval over units (samples with two or more votes resampled with "
            f"replacement; {n_boot} resamples, seed {seed}).")


def compute(ctx: Context) -> dict:
    rows = ctx.rows
    conds = {c: v[rows] for c, v in ctx.inp.votes_by_condition.items() if v.shape[1] > 0 and (v[rows] >= 0).any()}
    if not conds:
        ctx.skipped["human_study"] = ("the samples table has no columns of votes per condition (`votes@text`, "
                                      "`votes@all`, ...) with votes in this split")
        return {"human_study": None}
    y, n_classes = ctx.y, ctx.n_classes
    per = {}
    share = {c: ph.share_correct(v, y) for c, v in conds.items()}
    for c, v in conds.items():
        valid = v >= 0
        counts = _stats.vote_counts(v, n_classes)
        top2 = np.sort(counts, axis=1)[:, -2] if n_classes > 1 else np.zeros(len(y), int)
        maj_ok = (counts.argmax(axis=1) == y) & (counts.max(axis=1) > top2)
        have = valid.sum(axis=1) > 0
        per[c] = {
            "n_samples": int(have.sum()),
            "n_votes": int(valid.sum()),
            "vote_accuracy": float(((v == y[:, None]) & valid).sum() / valid.sum()) if valid.any() else None,
            "majority_accuracy": float(maj_ok[have].mean()) if have.any() else None,
            "krippendorff_alpha": _stats.krippendorff_alpha_bootstrap(v, n_classes, n_boot=ctx.n_boot, seed=ctx.seed),
        }
    all_name = next((c for c in share if c in ("all", "+".join(ctx.inp.modalities))), None)
    singles = [c for c in share if c != all_name]
    out = {"conditions": per, "all_condition": all_name, "all_vs": None, "all_vs_best_single": None,
           "definition": definition(ctx.n_boot, ctx.seed)}
    if not (all_name and singles):
        ctx.notes.append("human study: no `votes@all` condition next to single conditions, so the comparisons "
                         "of the all-modalities condition are skipped")
        return {"human_study": out}
    out["all_vs"] = _all_vs(share, all_name, singles, ctx)
    out["all_vs_best_single"] = _all_vs_best_single(conds, share, all_name, singles, y, ctx.seed)
    return {"human_study": out}


def _all_vs(share: dict, all_name: str, singles: list[str], ctx: Context) -> dict:
    """The all-modalities condition vs each single condition, paired per sample, with BH q over the family."""
    res = {c: ph.paired_comparison(share[all_name], share[c], n_boot=ctx.n_boot, seed=ctx.seed) for c in singles}
    p = np.array([r["p"] if r["p"] is not None else np.nan for r in res.values()], dtype=np.float64)
    for r, q in zip(res.values(), _stats.benjamini_hochberg(p)):
        r["q"] = float(q) if np.isfinite(q) else None
    return res


def _all_vs_best_single(conds: dict, share: dict, all_name: str, singles: list[str], y, seed: int) -> dict:
    """The all-modalities condition vs the best single condition per sample, and its no-effect expectation."""
    names = [all_name] + singles
    ok = np.all([np.isfinite(share[c]) for c in names], axis=0)
    out = {"all_condition": all_name, "single_conditions": singles, "n_samples": int(ok.sum()),
           "all_beats_best_single": None, "tie": None, "all_worse": None, "no_effect_expectation": None,
           "definition": COMPARISON_NOTE, "bias": BIAS_NOTE}
    if not ok.any():
        return out
    obs = ph.best_single_shares(share[all_name][ok], np.vstack([share[c][ok] for c in singles]))
    out.update(all_beats_best_single=obs["beats"], tie=obs["tie"], all_worse=obs["worse"])
    valid = [conds[c][ok] >= 0 for c in names]
    correct = [(conds[c][ok] == y[ok][:, None]) & v for c, v in zip(names, valid)]
    out["no_effect_expectation"] = ph.best_single_null(correct, valid, seed=seed)
    return out


def blocks(report: dict, figures: dict) -> list[tuple]:
    b: list[tuple] = [("h2", "7. Human study")]
    hs = report.get("human_study")
    if not hs:
        b.append(("skip", f"Skipped: {report['skipped'].get('human_study')}."))
        return b
    rows = [[c, d["n_samples"], d["n_votes"], num(d["vote_accuracy"]), num(d["majority_accuracy"]),
             f"{num(d['krippendorff_alpha']['alpha'])} [{num(d['krippendorff_alpha']['ci_low'])}, "
             f"{num(d['krippendorff_alpha']['ci_high'])}]"] for c, d in hs["conditions"].items()]
    b.append(("table", ["condition", "samples", "votes", "vote accuracy", "majority accuracy (ties wrong)",
                        "alpha [95% CI]"], rows))
    if hs.get("all_vs"):
        a = hs["all_condition"]
        b.append(("p", f"**All-modalities condition `{a}` vs each single condition**, paired per sample "
                       "(per-sample annotator accuracy):"))
        b.append(("table", ["condition", "samples", f"accuracy {a}", "accuracy condition",
                            f"difference {a} − condition [95% CI] (no effect: 0)", "p (two-sided)", "q (BH)"],
                  [[c, r["n"], num(r["accuracy_all"]), num(r["accuracy_condition"]),
                    f"{num(r['diff'])} [{num(r['ci'][0])}, {num(r['ci'][1])}]", pval(r["p"]), pval(r["q"])]
                   for c, r in hs["all_vs"].items()]))
    cmp_ = hs.get("all_vs_best_single")
    if cmp_ and cmp_["no_effect_expectation"]:
        e = cmp_["no_effect_expectation"]
        b.append(("p", f"Secondary: `{cmp_['all_condition']}` vs the best single condition per sample "
                       f"({cmp_['n_samples']} samples): beats {num(cmp_['all_beats_best_single'])} (no effect: "
                       f"{num(e['beats'])}), ties {num(cmp_['tie'])} (no effect: {num(e['tie'])}), worse "
                       f"{num(cmp_['all_worse'])} (no effect: {num(e['worse'])}). {cmp_['definition']}. "
                       f"{cmp_['bias']}; {e['n_sims']} simulations, seed {e['seed']}."))
    b.append(("p", f"**Definitions.** {hs['definition']}"))
    if "human" in figures:
        b.append(("img", *figures["human"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("human_study"):
        return {}
    return {"human": (_plot(report["human_study"]), "Left: annotator accuracy against the gold label and "
                      "Krippendorff's alpha per condition. Right: the all-modalities condition minus each single "
                      "condition, mean per-sample accuracy difference with its 95% paired bootstrap interval "
                      "(no effect: 0).")}


def _plot(hs: dict) -> bytes:
    plt = _plots.pyplot()
    conds = hs["conditions"]
    names = list(conds)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(4, 1.1 * len(names) + 1.5) + 3.5, 3),
                                  gridspec_kw={"width_ratios": [max(2, len(names)), 2]})
    acc = [conds[c]["vote_accuracy"] or 0.0 for c in names]
    alpha = [conds[c]["krippendorff_alpha"]["alpha"] for c in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, acc, 0.4, label="vote accuracy vs gold", color="#1c7ed6")
    ax.bar(x + 0.2, np.nan_to_num(alpha), 0.4, label="Krippendorff's alpha", color="#7048e8")
    ax.set_xticks(x, names)
    ax.set_ylim(min(0, float(np.nanmin(alpha)) if np.isfinite(alpha).any() else 0), 1)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.set_title("Human study per condition")
    vs = {c: r for c, r in (hs.get("all_vs") or {}).items() if r["diff"] is not None}
    if vs:
        d = np.array([r["diff"] for r in vs.values()])
        lo = np.array([r["ci"][0] for r in vs.values()], dtype=float)
        hi = np.array([r["ci"][1] for r in vs.values()], dtype=float)
        yy = np.arange(len(vs))
        ax2.errorbar(d, yy, xerr=np.vstack([np.nan_to_num(d - lo), np.nan_to_num(hi - d)]), fmt="o", capsize=3)
        ax2.set_yticks(yy, list(vs))
        ax2.set_ylim(len(vs) - 0.5, -0.5)  # the table's order, top to bottom
        ax2.locator_params(axis="x", nbins=4)
    ax2.axvline(0, color="black", lw=0.6, ls="--")
    ax2.set_xlabel(f"{hs.get('all_condition') or 'all'} − condition")
    ax2.set_title("Paired difference, 95% CI")
    return _plots.png(fig)
