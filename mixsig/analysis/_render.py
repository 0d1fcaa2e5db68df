"""``write_report``: report.html (self-contained), report.md, report.json and samples.csv.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and rendered to
HTML and Markdown from the same blocks, so both show the same numbers; report.json holds every number.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
import re
from pathlib import Path

import numpy as np

from mixsig.metrics import AUROC_BINS

log = logging.getLogger(__name__)

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#212529;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #dee2e6;padding-bottom:.3em}h2{font-size:1.25em;margin-top:1.8em;
border-bottom:1px solid #dee2e6}table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #dee2e6;padding:.25em .55em;text-align:right}th{background:#f1f3f5}
td:first-child,th:first-child,td.t{text-align:left}figure{margin:1em 0}figcaption{font-size:.85em;color:#495057}
img{max-width:100%}.note{background:#fff9db;border-left:4px solid #fab005;padding:.4em .8em;margin:.4em 0}
.skip{background:#f1f3f5;border-left:4px solid #868e96;padding:.4em .8em;margin:.4em 0}
.warn{background:#fff5f5;border-left:6px solid #e03131;color:#c92a2a;font-weight:600;padding:.4em .8em;margin:.4em 0}
"""


# ----------------------------------------------------------------------------------------------
# formatting


def _f(x, digits=3) -> str:
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        return "–"
    if x != 0 and (abs(x) < 10 ** (-digits) or abs(x) >= 1e6):
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def _ci(d: dict) -> str:
    return f"{_f(d['value'])} [{_f(d['ci_low'])}, {_f(d['ci_high'])}]"


def _pm(d: dict) -> str:
    return _f(d["mean"]) + (f" ± {_f(d['std'])}" if d.get("std") is not None else "")


def _p(p) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


# ----------------------------------------------------------------------------------------------
# blocks


def _blocks(result: dict, figures: dict[str, tuple[bytes, str]]) -> list[tuple]:
    b: list[tuple] = []
    run = result["run"]
    b.append(("h1", f"mixsig disagreement report — run {run['name']}"))
    for msg in (result.get("warnings") or {}).get("messages", []):
        b.append(("warn", msg))
    b.append(("p", f"Split **{result['split']}**: {result['n_samples']} samples analysed "
                   f"({', '.join(f'{k}: {v}' for k, v in result['label_counts'].items())}). "
                   f"Head: {run.get('head') or '–'}; modalities: {', '.join(run['modalities'])}; "
                   f"seeds: {', '.join(map(str, run['seeds'])) or '–'}; created {result['created']}; "
                   f"media root: {result.get('media_root') or '–'}."))
    b.append(("p", result["aggregation"]))
    for note in result["notes"]:
        b.append(("note", note))
    for part, why in result["skipped"].items():
        b.append(("skip", f"Skipped {part.replace('_', ' ')}: {why}."))

    # 1. metrics
    b.append(("h2", "1. Metrics per modality subset"))
    rows = []
    for s, m in result["metrics"].items():
        rows.append([s] + [_pm(m["over_seeds"][k]) for k in ("accuracy", "macro_f1", "weighted_f1", "auroc")]
                    + [_ci(m["aggregated"][k]) for k in ("accuracy", "macro_f1", "auroc")])
    b.append(("table", ["subset", "accuracy (seeds)", "macro-F1 (seeds)", "weighted-F1 (seeds)", "AUROC (seeds)",
                        "accuracy, aggregated [95% CI]", "macro-F1, aggregated [95% CI]",
                        "AUROC, aggregated [95% CI]"], rows))
    b.append(("p", "“(seeds)”: mean ± standard deviation over seeds; “aggregated”: the seed-aggregated "
                   f"predictions with percentile bootstrap intervals over samples ({result['bootstrap']['n_boot']} "
                   f"resamples; AUROC's interval is drawn on scores binned into at most {AUROC_BINS} bins per class and "
                   "shifted to the exact AUROC, see report.json)."))
    if "metrics" in figures:
        b.append(("img", *figures["metrics"]))

    # 2. disagreement
    dis = result.get("disagreement")
    if dis:
        b.append(("h2", "2. Disagreement with the full model"))
        b.append(("p", f"Full model: **{dis['full_subset']}**. Share of samples where at least one unimodal model "
                       f"disagrees: {_f(dis['disagreement_rate_any'])}."))
        rows = []
        for m, d in dis["per_modality"].items():
            c = d["cells"]
            rows.append([m, _f(d["rate"]), c["both_correct"], c["both_wrong"], c["rescued"], c["misled"]])
        b.append(("table", ["modality", "disagreement rate", "both correct", "both wrong",
                            "rescued (m wrong, full right)", "misled (m right, full wrong)"], rows))
        b.append(("table", ["unimodal models disagreeing"] + list(dis["n_disagree_histogram"]),
                  [["samples"] + list(dis["n_disagree_histogram"].values())]))
        b.append(("table", ["category"] + list(dis["categories"]), [["samples"] + list(dis["categories"].values())]))
        b.append(("p", dis["category_definition"]))
        lone = dis["lone_following"]
        b.append(("p", lone["definition"]))
        if lone["defined"]:
            b.append(("table", ["modality followed alone", "samples", "full model accuracy on them"],
                      [[m, lone["counts"][m], _f(lone["full_accuracy_when_following"][m])] for m in lone["counts"]]))
        if "disagreement" in figures:
            b.append(("img", *figures["disagreement"]))

    # 3-4. uncertainty and join
    unc = result.get("uncertainty")
    b.append(("h2", "3. Annotator uncertainty"))
    if unc:
        a = unc["krippendorff_alpha"]
        b.append(("table", ["measure", "value"], [
            ["samples with votes", unc["n_with_votes"]],
            ["votes per sample (mean / min / max)", f"{_f(unc['votes_per_sample']['mean'], 2)} / "
             f"{unc['votes_per_sample']['min']} / {unc['votes_per_sample']['max']}"],
            ["vote entropy, bits (mean ± sd, median)", f"{_pm(unc['entropy_bits'])}, {_f(unc['entropy_bits']['median'])}"],
            ["majority share (mean ± sd)", _pm(unc["majority_share"])],
            ["unanimous samples", _f(unc["unanimous_share"])],
            ["Krippendorff's alpha (nominal) [95% CI over units]",
             f"{_f(a['alpha'])} [{_f(a['ci_low'])}, {_f(a['ci_high'])}] ({a['n_units']} units, {a['n_values']} values)"],
        ]))
    else:
        b.append(("skip", f"Skipped: {result['skipped'].get('uncertainty')}."))
    b.append(("h2", "4. Does disagreement mark ambiguous samples?"))
    join = result.get("join")
    if join:
        rows = []
        for name in ("entropy", "majority_share"):
            j = join[name]
            mw, d, sp = j["mann_whitney"], j["mean_difference"], j["spearman_vs_n_disagree"]
            rows.append([name.replace("_", " "), _f(mw["mean_a"]), _f(mw["mean_b"]),
                         f"{_f(d['diff'])} [{_f(d['ci_low'])}, {_f(d['ci_high'])}]", _f(mw["u"], 1), _p(mw["p"]),
                         _f(mw["rank_biserial"]), f"{_f(sp['rho'])} (p {_p(sp['p'])})"])
        b.append(("table", ["measure", f"disagreement (n={join['groups']['disagreement']})",
                            f"agreement (n={join['groups']['agreement']})", "difference [95% CI]",
                            "Mann–Whitney U", "p", "rank-biserial r", "Spearman with # disagreeing"], rows))
        mm = join["entropy_misled_vs_others"]
        b.append(("p", f"Entropy in misled vs other samples: {_f(mm['mean_a'])} vs {_f(mm['mean_b'])}, "
                       f"U = {_f(mm['u'], 1)}, p = {_p(mm['p'])}, r = {_f(mm['rank_biserial'])}."))
        if "uncertainty" in figures:
            b.append(("img", *figures["uncertainty"]))
    else:
        b.append(("skip", f"Skipped: {result['skipped'].get('join')}."))

    # 5. dominance
    dom = result.get("dominance")
    if dom:
        b.append(("h2", "5. Dominance: which modality misled the fusion?"))
        b.append(("p", f"{dom['n_misled']} misled samples; dominant (most often followed alone): "
                       f"**{dom['dominant_modality'] or '–'}**. {dom['definition']}"))
        rows = []
        for m, c in dom["followed_counts"].items():
            conf = dom["followed_confidence"].get(m)
            rows.append([m, c, _f(dom["followed_shares"][m]),
                         _f(conf["when_followed_in_misled"]["mean"]) if conf else "",
                         _f(conf["elsewhere"]["mean"]) if conf else ""])
        b.append(("table", ["followed", "misled samples", "share", "its confidence when followed",
                            "its confidence elsewhere"], rows))
        for kind, w in (dom.get("weights") or {}).items():
            mods = dis["full_subset"].split("+")
            rows = [[c] + [_f(v.get(m)) if v else "–" for m in mods] for c, v in w["by_category"].items()]
            b.append(("table", [f"mean {kind} weight by category"] + mods, rows))
        if "dominance" in figures:
            b.append(("img", *figures["dominance"]))

    # 6. confidence
    conf = result.get("confidence")
    if conf:
        b.append(("h2", "6. Confidence in the true label: unimodal vs full"))
        rows = [[m, _f(c["mean_unimodal"]), _f(c["mean_full"]), _f(c["share_full_higher"]),
                 f"{_f(c['spearman_with_full']['rho'])} (p {_p(c['spearman_with_full']['p'])})"] for m, c in conf.items()]
        b.append(("table", ["modality", "mean unimodal", "mean full", "share full higher", "Spearman"], rows))
        if "confidence" in figures:
            b.append(("img", *figures["confidence"]))

    # 7. human study
    b.append(("h2", "7. Human study"))
    hs = result.get("human_study")
    if hs:
        rows = [[c, d["n_samples"], d["n_votes"], _f(d["vote_accuracy"]), _f(d["majority_accuracy"]),
                 f"{_f(d['krippendorff_alpha']['alpha'])} [{_f(d['krippendorff_alpha']['ci_low'])}, "
                 f"{_f(d['krippendorff_alpha']['ci_high'])}]"] for c, d in hs["conditions"].items()]
        b.append(("table", ["condition", "samples", "votes", "vote accuracy", "majority accuracy",
                            "alpha [95% CI]"], rows))
        cmp_ = hs.get("all_vs_best_single")
        if cmp_:
            b.append(("p", f"All-modalities condition `{cmp_['all_condition']}` vs the best single condition per "
                           f"sample ({cmp_['n_samples']} samples): beats {_f(cmp_['all_beats_best_single'])}, ties "
                           f"{_f(cmp_['tie'])}, worse {_f(cmp_['all_worse'])}. {cmp_['definition']}."))
        if "human" in figures:
            b.append(("img", *figures["human"]))
    else:
        b.append(("skip", f"Skipped: {result['skipped'].get('human_study')}."))

    # 8. descriptors
    b.append(("h2", "8. Descriptors"))
    d = result["descriptors"]
    if d["available"]:
        b.append(("table", ["descriptor", "n", "mean", "sd", "median"],
                  [[k, v["n"], _f(v["mean"]), _f(v["std"]), _f(v["median"])] for k, v in d["available"].items()]))
    if d["tests"]:
        b.append(("p", d["method"] + f" ({d['n_tests']} tests; the 25 with the smallest q shown, all in report.json)."))
        b.append(("table", ["descriptor", "comparison", "mean A", "mean B", "U", "p", "q (BH)", "rank-biserial r"],
                  [[t["descriptor"], t["comparison"], _f(t["mean_a"]), _f(t["mean_b"]), _f(t["u"], 1), _p(t["p"]),
                    _p(t["q"]), _f(t["rank_biserial"])] for t in d["tests"][:25]]))
        if "descriptors" in figures:
            b.append(("img", *figures["descriptors"]))
    else:
        b.append(("skip", "No descriptor had values that vary in this split."))

    # top
    top = result["top"]
    b.append(("h2", f"Top {top['k']} samples"))
    for name, title in (("misled", "Most confidently misled (full model's confidence)"),
                        ("ambiguous", f"Most ambiguous ({top['ambiguous_ranking']})")):
        b.append(("p", f"**{title}**"))
        if top[name]:
            b.append(("table", ["id", "label", "full pred", "full conf", "category", "followed", "entropy", "text"],
                      [[r["id"], r["label"], r["full_pred"], _f(r["full_conf"]), r["category"], r["followed"] or "",
                        _f(r["entropy"]), r["text"]] for r in top[name]]))
        else:
            b.append(("p", "none"))
    return b


def _td(c) -> str:
    text = str(c)
    numeric = text[:1].isdigit() or text[:2] in ("-0", "-1", "-2", "-3", "-4", "-5", "-6", "-7", "-8", "-9") or text == "–"
    return f"<td>{html.escape(text)}</td>" if numeric else f"<td class='t'>{html.escape(text)}</td>"


def _render_html(blocks, title) -> str:
    def inline(text):
        t = html.escape(text)
        parts = t.split("**")
        return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))

    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    for blk in blocks:
        kind = blk[0]
        if kind in ("h1", "h2"):
            out.append(f"<{kind}>{html.escape(blk[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{inline(blk[1])}</p>")
        elif kind in ("note", "skip"):
            out.append(f"<div class='{kind}'>{inline(blk[1])}</div>")
        elif kind == "warn":
            out.append(f"<div class='warn' role='alert'>WARNING: {inline(blk[1])}</div>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in blk[1])
            body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in blk[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(blk[1]).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(blk[2])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(blk[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def _render_md(blocks) -> str:
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")

    out = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h1":
            out.append(f"# {blk[1]}\n")
        elif kind == "h2":
            out.append(f"## {blk[1]}\n")
        elif kind == "p":
            out.append(blk[1] + "\n")
        elif kind == "note":
            out.append(f"> Note: {blk[1]}\n")
        elif kind == "warn":
            out.append(f"> **WARNING:** {blk[1]}\n")
        elif kind == "skip":
            out.append(f"> {blk[1]}\n")
        elif kind == "table":
            out.append("| " + " | ".join(cell(h) for h in blk[1]) + " |")
            out.append("|" + "---|" * len(blk[1]))
            out.extend("| " + " | ".join(cell(c) for c in r) + " |" for r in blk[2])
            out.append("")
        elif kind == "img":
            out.append(f"*Figure: {blk[2]} (embedded in report.html).*\n")
    return "\n".join(out)


def _figures(result: dict) -> dict[str, tuple[bytes, str]]:
    from mixsig.analysis import _plots

    s = result["samples"]
    figs: dict[str, tuple[bytes, str]] = {}
    figs["metrics"] = (_plots.metrics_plot(result), "Accuracy and macro-F1 of the seed-aggregated predictions per "
                       "subset; error bars: 95% bootstrap intervals over samples.")
    if result.get("disagreement"):
        figs["disagreement"] = (_plots.disagreement_plot(result), "Share of samples in each cell, unimodal model "
                                "vs full model, with the disagreement rate.")
        png, cap = _plots.confidence_plot(result, s)
        figs["confidence"] = (png, f"Confidence in the true label, unimodal (x) vs full model (y), one panel per "
                              f"modality, coloured by category; {cap}.")
        figs["dominance"] = (_plots.dominance_plot(result), "Which unimodal model the full model followed on "
                             "misled samples, and the mean gate/attention weights per category where the head has them.")
    if result.get("join"):
        figs["uncertainty"] = (_plots.uncertainty_plot(result, s), "Vote entropy by sample category (box: "
                               "quartiles, whiskers: 1.5 IQR, outliers not drawn, triangle: mean) and mean "
                               "entropy by the number of disagreeing modalities.")
    if result.get("human_study"):
        figs["human"] = (_plots.human_plot(result), "Annotator accuracy against the gold label and Krippendorff's "
                         "alpha per condition.")
    if result["descriptors"]["tests"]:
        figs["descriptors"] = (_plots.descriptors_plot(result), "Rank-biserial effect of each descriptor between "
                               "groups (first group larger: positive); red: Benjamini–Hochberg q < 0.05.")
    return figs


_NEEDS_QUOTES = re.compile(r'[,"\r\n]').search


def _csv_field(text: str) -> str:
    if _NEEDS_QUOTES(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_csv(path: Path, cols: dict) -> None:
    """RFC 4180 CSV (fields quoted only where needed), floats as ``%.6g``, NaN as an empty field.

    Rows are formatted with one ``%`` per row (much faster than one call per cell)."""
    fmt = "{:.6g}".format
    lists, specs = [], []
    for name in cols:
        v = np.asarray(cols[name])
        if v.dtype.kind == "f":
            bad = ~np.isfinite(v)
            if bad.any():
                s = list(map(fmt, v.tolist()))
                for i in np.flatnonzero(bad).tolist():
                    s[i] = ""
                lists.append(s)
                specs.append("%s")
            else:
                lists.append(v.tolist())
                specs.append("%.6g")
        elif v.dtype.kind in "iub":
            lists.append(v.astype(np.int64).tolist())
            specs.append("%d")
        else:
            values = [str(x) for x in v.tolist()]
            quoted = {x: _csv_field(x) for x in set(values)}
            lists.append([quoted[x] for x in values])
            specs.append("%s")
    row = ",".join(specs)
    header = ",".join(_csv_field(str(c)) for c in cols)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\r\n")
        if lists and lists[0]:
            fh.write("\r\n".join([row % r for r in zip(*lists)]) + "\r\n")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(result: dict, out_dir, plots: bool = True) -> dict[str, Path]:
    """Write ``report.html`` (self-contained: CSS inline, figures as base64 PNG), ``report.md``,
    ``report.json`` (every number; per-sample data is in ``samples.csv``) and ``samples.csv`` into
    ``out_dir`` (created if missing). ``plots=False`` leaves the figures out. Returns ``{name: path}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(result) if plots else {}
    blocks = _blocks(result, figures)
    title = f"mixsig report — {result['run']['name']}"
    paths = {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json",
             "csv": out / "samples.csv"}
    _atomic_write(paths["html"], _render_html(blocks, title))
    _atomic_write(paths["md"], _render_md(blocks))
    doc = {k: v for k, v in result.items() if k != "samples"}
    doc["figures"] = list(figures)
    doc["samples_csv"] = "samples.csv"
    _atomic_write(paths["json"], json.dumps(jsonable(doc), indent=1, allow_nan=False))
    tmp = paths["csv"].with_name(f".samples.csv.tmp-{os.getpid()}")
    _write_csv(tmp, result["samples"])
    os.replace(tmp, paths["csv"])
    log.debug("report written to %s", out)
    return paths
