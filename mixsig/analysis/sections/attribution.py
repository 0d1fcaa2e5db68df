"""5. Which modality misled the fusion, by counterfactual: for each misled sample and each modality m of the full
model, the run's subset without m (full minus m) is right ⇒ removing m fixes the sample (report.json
``attribution``). The followed-exclusively count of the dominance section is a secondary table here."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import NO_UNIMODAL, Context
from mixsig.analysis._format import num, pval

#: The leader by fixes is named only when it is ahead of every other modality at this two-sided p.
ALPHA = 0.05

DEFINITION = (
    "Misled sample: the full model is wrong and at least one unimodal model is right (section 2). Removing m fixes "
    "it when the run's subset without m (the full subset minus m; with two modalities, the other unimodal model) "
    "predicts it right. share = fixes / misled samples; one sample can be fixed by removing several modalities, "
    "so shares need not sum to 1.")
NO_EFFECT = (
    "No-effect reference: if no single modality drove the errors, removing each modality would fix the same share "
    "of misled samples. The modality with the most fixes is named only when it leads strictly and, against every "
    f"other modality, a two-sided exact sign test (McNemar) on the misled samples that exactly one of the two "
    f"removals fixes gives p < {ALPHA}; otherwise no modality is named (ties are stated as ties).")


def _without(ctx: Context) -> tuple[dict[str, str], list[str]]:
    """``{m: the subset without m}`` for the full model's modalities, and those whose subset the run lacks."""
    mods = ctx.full.split("+")
    by_set = {frozenset(s.split("+")): s for s in ctx.subsets}
    found, missing = {}, []
    for m in mods:
        need = frozenset(mods) - {m}
        if need in by_set:
            found[m] = by_set[need]
        else:
            missing.append("+".join(x for x in mods if x != m))
    return found, missing


def compute(ctx: Context) -> dict:
    if not ctx.unimodal:
        ctx.skipped["attribution"] = NO_UNIMODAL
        return {"attribution": None}
    without, missing = _without(ctx)
    if missing:
        ctx.skipped["attribution"] = (
            f"run {ctx.inp.run_name!r} lacks the subset(s) {', '.join(missing)} (the full subset {ctx.full!r} "
            "minus one modality) that counterfactual attribution needs; `mixsig train` trains every subset")
        return {"attribution": None}
    misled = ctx.category == "misled"
    n_mis = int(misled.sum())
    fixed = {m: misled & (ctx.agg[s].pred == ctx.y) for m, s in without.items()}
    n_fixing = np.sum([f for f in fixed.values()], axis=0)
    by_mod = {}
    for m, f in fixed.items():
        k = int(f.sum())
        by_mod[m] = {"fixes": k, "share": (k / n_mis if n_mis else None), "subset_without": without[m],
                     "fixes_only_this": int((f & (n_fixing == 1)).sum())}
    out = {"n_misled": n_mis, "by_modality": by_mod, **_leader(fixed, n_mis),
           "fixed_by_no_removal": int((misled & (n_fixing == 0)).sum()),
           "fixed_by_several_removals": int((misled & (n_fixing > 1)).sum()),
           "definition": DEFINITION, "no_effect_reference": NO_EFFECT}
    return {"attribution": out}


def _leader(fixed: dict[str, np.ndarray], n_mis: int) -> dict:
    """``misleading_modality`` (or None), ``leader`` by count, ``tied`` and the leader's sign tests."""
    counts = {m: int(f.sum()) for m, f in fixed.items()}
    top = max(counts.values()) if counts else 0
    tied = [m for m, k in counts.items() if k == top]
    out = {"misleading_modality": None, "leader": None, "tied": None, "lead_tests": None, "why_none": None}
    if n_mis == 0:
        out["why_none"] = "no misled samples"
        return out
    if top == 0:
        out["why_none"] = "removing no single modality fixes any misled sample"
        return out
    if len(tied) > 1:
        out["tied"] = tied
        out["why_none"] = f"tied: removing {' or '.join(tied)} fixes {top} misled samples each"
        return out
    lead = tied[0]
    out["leader"] = lead
    tests = {}
    for m, f in fixed.items():
        if m == lead:
            continue
        b, c = int((fixed[lead] & ~f).sum()), int((f & ~fixed[lead]).sum())
        tests[m] = {"leader_only": b, "other_only": c, "p": _stats.mcnemar_exact(b, c)}
    out["lead_tests"] = tests
    worst = max(t["p"] for t in tests.values())
    if worst < ALPHA:
        out["misleading_modality"] = lead
    else:
        out["why_none"] = (f"{lead} leads with {counts[lead]} fixes, but not separated from every other modality "
                           f"(largest sign-test p = {pval(worst)} ≥ {ALPHA})")
    return out


def blocks(report: dict, figures: dict) -> list[tuple]:
    att = report.get("attribution")
    b: list[tuple] = [("h2", "5. Which modality misled the fusion? Removing each modality")]
    if not att:
        return b + [("skip", f"Skipped: {report['skipped'].get('attribution')}.")]
    named = att["misleading_modality"]
    verdict = (f"misleading modality: **{named}** (removing it fixes the most misled samples, separated from every "
               "other modality by the sign test below)" if named else
               f"no misleading modality is named: {att['why_none']}")
    b.append(("p", f"{att['n_misled']} misled samples; {verdict}."))
    followed = ((report.get("dominance") or {}).get("followed_counts")) or {}
    rows = [[m, v["subset_without"], v["fixes"], num(v["share"]), v["fixes_only_this"], followed.get(m, "–")]
            for m, v in att["by_modality"].items()]
    b.append(("table", ["modality m", "subset without m", "removing m fixes (misled samples)", "share of misled",
                        "only removing m fixes", "followed exclusively (secondary, section 5b)"], rows))
    b.append(("p", f"Misled samples no single removal fixes: {att['fixed_by_no_removal']}; fixed by removing any of "
                   f"several modalities: {att['fixed_by_several_removals']}."))
    if att.get("lead_tests"):
        b.append(("table", [f"{att['leader']} vs", f"only removing {att['leader']} fixes", "only removing the other "
                            "fixes", "sign test p (two-sided, exact)"],
                  [[m, t["leader_only"], t["other_only"], pval(t["p"])] for m, t in att["lead_tests"].items()]))
    b.append(("p", att["definition"] + " " + att["no_effect_reference"]))
    if "attribution" in figures:
        b.append(("img", *figures["attribution"]))
    return b


def figures(report: dict) -> dict:
    att = report.get("attribution")
    if not att:
        return {}
    return {"attribution": (_plot(report), "Misled samples that removing each modality fixes (the subset without it "
                            "is right), beside how often the full model followed that modality exclusively; the "
                            "dashed line is the number of misled samples.")}


def _plot(report: dict) -> bytes:
    plt = _plots.pyplot()
    att = report["attribution"]
    followed = ((report.get("dominance") or {}).get("followed_counts")) or {}
    mods = list(att["by_modality"])
    x = np.arange(len(mods))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(mods) + 2), 3.2))
    ax.bar(x - 0.2, [att["by_modality"][m]["fixes"] for m in mods], 0.4, color="#c92a2a", label="removing it fixes")
    ax.bar(x + 0.2, [followed.get(m, 0) for m in mods], 0.4, color="#adb5bd", label="followed exclusively")
    ax.axhline(att["n_misled"], color="#495057", ls="--", lw=1, label=f"misled samples (n={att['n_misled']})")
    ax.set_xticks(x, mods)
    ax.set_ylabel("misled samples")
    named = att["misleading_modality"]
    ax.set_title("Which modality misled the fusion?\n" + (f"named: {named}" if named else "none named (see the text)"),
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    return _plots.png(fig)
