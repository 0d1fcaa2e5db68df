"""8. Descriptors: interpretable per-sample columns (duration, word count, prosody, imported columns) and their
comparison between sample groups with effect sizes and Benjamini–Hochberg control (report.json
``descriptors``; sets the context's ``descriptors``, the usable columns)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _descriptors, _plots, _stats
from mixsig.analysis._context import Context
from mixsig.analysis._format import num, pval

METHOD = ("two-sided Mann–Whitney U; rank-biserial r (positive: first group larger); Benjamini–Hochberg q over "
          "every test in this table")
DEFINITION = ("Each comparison is “A vs B”: mean A / mean B are the first- and second-named groups' means. Mann–"
              "Whitney U: two-sided (scipy: exact for small samples without ties, otherwise the normal "
              "approximation with tie correction); U is group A's. Rank-biserial r = 2U / (n_A n_B) − 1, positive "
              "= the first-named group A larger. q: Benjamini–Hochberg over every test of the section (all in "
              "report.json). Samples without a value of a descriptor are left out of its tests; no interval.")
DUPLICATES_RULE = (f"an imported column whose ranks agree with a computed descriptor's, or with another imported "
                   f"column's (|Spearman rho| >= {_descriptors.DUPLICATE_RHO} over the rows where both have values, "
                   f"at least {_descriptors.DUPLICATE_MIN_ROWS} of them) is not tested: its tests would repeat that "
                   f"column's and count twice in the Benjamini–Hochberg family; of two imported duplicates the one "
                   f"named by --columns is kept (else the first by name)")
#: The report's table shows this many tests with the smallest q (report.json has all).
TABLE_ROWS = 25


def compute(ctx: Context) -> dict:
    inp, rows = ctx.inp, ctx.rows
    desc: dict[str, np.ndarray] = {}
    if ctx.media_descriptors:
        mcols, mnotes = _descriptors.media_descriptors(inp.audio[rows], inp.start[rows], inp.end[rows],
                                                       inp.media_root, inp.video[rows])
        ctx.notes.extend(mnotes)
        desc.update(mcols)
    else:
        desc["duration_s"] = np.where(np.isfinite(inp.start[rows]) & np.isfinite(inp.end[rows]),
                                      inp.end[rows] - inp.start[rows], np.nan)
        ctx.notes.append("prosody not computed (media descriptors turned off)")
    desc["word_count"] = _descriptors.word_count(inp.text[rows])
    computed = list(desc)
    for name, col in inp.descriptors.items():
        desc[name] = col[rows]
    usable = {k: v for k, v in desc.items() if np.isfinite(v).sum() >= 2 and np.nanstd(v) > 0}
    unusable = sorted(set(desc) - set(usable))
    if unusable:
        ctx.notes.append(f"descriptors without variation or values in this split, left out: {', '.join(unusable)}")
    ctx.descriptors = usable
    dups = _descriptors.duplicate_columns({k: v for k, v in usable.items() if k in computed},
                                          {k: v for k, v in usable.items() if k not in computed})
    again = {d["descriptor"] for d in dups}
    dups += _descriptors.duplicate_imported({k: v for k, v in usable.items() if k not in computed and k not in again})
    if dups:
        ctx.notes.append("imported descriptors that duplicate one mixsig computes or another imported one, not "
                         "tested again: "
                         + "; ".join(f"{d['descriptor']} (= {d['duplicate_of']})" for d in dups))
    dropped = {d["descriptor"] for d in dups}
    tested = {k: v for k, v in usable.items() if k not in dropped}
    return {"descriptors": {"available": {k: _stats.describe(v) for k, v in usable.items()},
                            **compare(tested, _groups(ctx)), "duplicates": dups,
                            "duplicates_rule": DUPLICATES_RULE}}


def _groups(ctx: Context) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The comparisons: disagreement vs agreement and misled vs others (with unimodal subsets), and each label."""
    category, y, classes = ctx.category, ctx.y, ctx.inp.classes
    groups = {}
    if ctx.unimodal:
        groups["disagreement vs agreement"] = (category != "agreement", category == "agreement")
        groups["misled vs others"] = (category == "misled", category != "misled")
    if len(classes) == 2:
        groups[f"label {classes[1]} vs {classes[0]}"] = (y == 1, y == 0)
    else:
        for k, c in enumerate(classes):
            groups[f"label {c} vs rest"] = (y == k, y != k)
    return groups


def compare(descriptors: dict[str, np.ndarray], groups: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Mann–Whitney U and rank-biserial effect for every descriptor and every comparison, with
    Benjamini–Hochberg q-values over all tests together.

    descriptors: ``{name: [n] float}``; groups: ``{comparison: (mask_a [n] bool, mask_b [n] bool)}``.
    """
    tests = []
    for comp, (a, b) in groups.items():
        if a.sum() == 0 or b.sum() == 0:
            continue
        for name, vals in descriptors.items():
            fa, fb = vals[a], vals[b]
            fa, fb = fa[np.isfinite(fa)], fb[np.isfinite(fb)]
            if fa.size < 2 or fb.size < 2 or np.ptp(np.concatenate([fa, fb])) == 0:
                continue
            mw = _stats.mann_whitney(fa, fb)
            tests.append({"comparison": comp, "descriptor": name, **mw})
    q = _stats.benjamini_hochberg(np.array([t["p"] for t in tests])) if tests else np.array([])
    for t, qv in zip(tests, q):
        t["q"] = float(qv) if np.isfinite(qv) else None
        t["significant_q05"] = bool(np.isfinite(qv) and qv < 0.05)
    tests.sort(key=lambda t: (t["q"] if t["q"] is not None else 2.0, -abs(t["rank_biserial"])))
    return {"tests": tests, "n_tests": len(tests), "method": METHOD, "definition": DEFINITION}


def blocks(report: dict, figures: dict) -> list[tuple]:
    b: list[tuple] = [("h2", "8. Descriptors")]
    d = report["descriptors"]
    if d["available"]:
        b.append(("table", ["descriptor", "n", "mean", "sd", "median"],
                  [[k, v["n"], num(v["mean"]), num(v["std"]), num(v["median"])] for k, v in d["available"].items()]))
    if not d["tests"]:
        b.append(("skip", "No descriptor had values that vary in this split."))
        return b
    b.append(("p", d["method"] + f" ({d['n_tests']} tests; the {TABLE_ROWS} with the smallest q shown, all in "
                                 "report.json)."))
    if d.get("duplicates"):
        b.append(("p", "**Not tested (duplicates)**: " + "; ".join(
            f"{x['descriptor']} duplicates {x['duplicate_of']} (Spearman {num(x['spearman'])})" for x in d["duplicates"])
            + f" — {d.get('duplicates_rule') or DUPLICATES_RULE}."))
    b.append(("table", ["descriptor", "comparison", "mean A", "mean B", "U", "p", "q (BH)", "rank-biserial r"],
              [[t["descriptor"], t["comparison"], num(t["mean_a"]), num(t["mean_b"]), num(t["u"], 1), pval(t["p"]),
                pval(t["q"]), num(t["rank_biserial"])] for t in d["tests"][:TABLE_ROWS]]))
    b.append(("p", f"**Definitions.** {d.get('definition') or DEFINITION}"))
    if "descriptors" in figures:
        b.append(("img", *figures["descriptors"]))
    return b


def figures(report: dict) -> dict:
    if not report["descriptors"]["tests"]:
        return {}
    return {"descriptors": (_plot(report["descriptors"]["tests"]), "Rank-biserial effect of each descriptor between "
                            "groups (first group larger: positive); red: Benjamini–Hochberg q < 0.05.")}


def _plot(tests: list[dict], max_rows: int = 20) -> bytes:
    plt = _plots.pyplot()
    tests = tests[:max_rows]
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
    return _plots.png(fig)
