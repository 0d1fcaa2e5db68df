"""``mixsig report STORE --run RUN``: the disagreement report of a run (PAPER.md, "Analyses").

Writes report.html (self-contained), report.md, report.json and samples.csv, then prints a short
summary and the top K misled / ambiguous samples (or one JSON object with ``--json``).
"""

from __future__ import annotations

import argparse
import sys

from mixsig.commands import SUMMARIES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help=SUMMARIES["report"],
        description=(
            "Analyse a run's cached predictions (every modality subset and seed) against the samples table and "
            "write report.html (one self-contained file, plots embedded), report.md, report.json (every number) "
            "and samples.csv (one row per sample). Seeds are aggregated by majority vote of predictions (ties: "
            "mean probabilities); confidences are seed-mean probabilities. Parts that need votes, unimodal "
            "subsets or media are skipped with the reason when those are missing. Warned under the report's title "
            "and on stderr: collapsed models, group leaks, modality mismatches, analysed rows of a split that "
            "selected the run (its epochs, early stopping or study trial: report on --split test), and fine-tuned "
            "keys whose train rows were embedded in-sample (`mixsig finetune --folds K` fixes it). A Provenance "
            "section names the keys (encoder, revision, preprocessing), head, hyperparameters, seeds, study and "
            "trial, split hash and library versions."
        ),
    )
    p.add_argument("store", metavar="STORE", help="the feature store (folder or URL)")
    p.add_argument("--run", required=True, help="the run inside the store: its full name or a unique prefix (`mixsig cache ls STORE` "
                   "lists them)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: report-<RUN>)")
    p.add_argument("--split", default="test",
                   help="rows to analyse: a split name, several joined by '+' (val+test), or 'all' (default: test; "
                        "rows of a split that selected the run are warned of)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="misled and ambiguous samples to list (default 10)")
    p.add_argument("--no-plots", action="store_true", help="leave the figures out (faster)")
    p.add_argument("--media-root", default=None, metavar="DIR",
                   help="folder the samples' audio paths are relative to (default: the folder of the manifest "
                        "the store was built from); used for duration and prosody descriptors")
    p.add_argument("--no-media", action="store_true", help="do not read audio files for prosody")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B",
                   help="bootstrap resamples for the confidence intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--json", action="store_true", help="print report.json's summary as one JSON object")
    p.set_defaults(func=run)


def _summary(result: dict) -> dict:
    """The few numbers printed on the terminal."""
    full = (result.get("disagreement") or {}).get("full_subset")
    out = {"run": result["run"]["name"], "split": result["split"], "n_samples": result["n_samples"],
           "macro_f1": {s: m["aggregated"]["macro_f1"]["value"] for s, m in result["metrics"].items()},
           "full_subset": full}
    dis = result.get("disagreement")
    if dis:
        out["disagreement_rate"] = {m: d["rate"] for m, d in dis["per_modality"].items()}
        out["categories"] = dis["categories"]
    join = result.get("join")
    if join:
        mw = join["entropy"]["mann_whitney"]
        out["entropy_disagreement_vs_agreement"] = {"mean_disagreement": mw["mean_a"], "mean_agreement": mw["mean_b"],
                                                    "p": mw["p"], "rank_biserial": mw["rank_biserial"]}
    unc = result.get("uncertainty")
    if unc:
        out["krippendorff_alpha"] = unc["krippendorff_alpha"]["alpha"]
    dom = result.get("dominance")
    if dom:
        out["n_misled"] = dom["n_misled"]
        out["dominant_modality"] = dom["dominant_modality"]
    att = result.get("attribution")
    if att:
        out["misleading_modality"] = att["misleading_modality"]
        out["misleading_modality_why_none"] = att["why_none"]
    out["skipped"] = result["skipped"]
    out["notes"] = result["notes"]
    out["warnings"] = list((result.get("warnings") or {}).get("messages") or [])
    return out


def _fmt(x, nd=3) -> str:
    if x is None:
        return "-"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if xf != xf:
        return "-"
    if 0 < abs(xf) < 1e-3:
        return f"{xf:.2e}"
    return f"{xf:.{nd}f}"


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from mixsig.analysis import analyse, write_report
    from mixsig.analysis import jsonable
    from mixsig.commands._util import table
    from mixsig.errors import UsageError

    if args.top < 0:
        raise UsageError(f"--top must be 0 or more; got {args.top}")
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 or more; got {args.bootstrap}")
    if args.media_root and not Path(args.media_root).is_dir():
        raise UsageError(f"--media-root {args.media_root} is not a folder; pass the folder of the manifest")
    from mixsig.cache import open_store
    from mixsig.errors import StoreError

    args.run = open_store(args.store).resolve_run(args.run, error=StoreError)  # a unique prefix -> the run
    out_dir = Path(args.out or f"report-{args.run}")
    result = analyse(args.store, args.run, split=args.split, media_root=args.media_root, n_boot=args.bootstrap,
                     seed=args.seed, top_k=args.top, media_descriptors=not args.no_media)
    paths = write_report(result, out_dir, plots=not args.no_plots)
    summary = _summary(result)
    if args.json:
        doc = {"summary": summary, "top": result["top"], "files": {k: str(v) for k, v in paths.items()}}
        json.dump(jsonable(doc), sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    w = sys.stdout.write
    w(f"run {summary['run']} on split {summary['split']}: {summary['n_samples']} samples\n")
    w(result["aggregation"] + "\n\n")
    rows = [[s, _fmt(v)] + ([_fmt(summary.get("disagreement_rate", {}).get(s))] if "disagreement_rate" in summary
                            else []) for s, v in summary["macro_f1"].items()]
    header = ["subset", "macro-F1"] + (["disagrees with full"] if "disagreement_rate" in summary else [])
    w(table(rows, header) + "\n\n")
    if "categories" in summary:
        w("categories: " + ", ".join(f"{k} {v}" for k, v in summary["categories"].items()) + "\n")
    if "entropy_disagreement_vs_agreement" in summary:
        e = summary["entropy_disagreement_vs_agreement"]
        w(f"vote entropy, disagreement vs agreement: {_fmt(e['mean_disagreement'])} vs {_fmt(e['mean_agreement'])} "
          f"bits (Mann-Whitney p = {_fmt(e['p'])}, rank-biserial {_fmt(e['rank_biserial'])})\n")
    if "krippendorff_alpha" in summary:
        w(f"Krippendorff's alpha (nominal): {_fmt(summary['krippendorff_alpha'])}\n")
    if summary.get("n_misled"):
        counts = (result.get("dominance") or {}).get("followed_counts", {})
        if "misleading_modality" in summary:
            w(f"misleading modality (removing it fixes the most misled samples): "
              f"{summary['misleading_modality'] or 'none named, ' + summary['misleading_modality_why_none']}\n")
        if summary["dominant_modality"]:
            w(f"misled samples: {summary['n_misled']}; most often followed exclusively: "
              f"{summary['dominant_modality']}\n")
        else:
            w(f"misled samples: {summary['n_misled']}; the full model followed no single modality alone "
              f"(several: {counts.get('several', 0)}, none: {counts.get('none', 0)})\n")
    for part, why in summary["skipped"].items():
        w(f"skipped {part}: {why}\n")
    for note in summary["notes"]:
        w(f"note: {note}\n")
    for message in summary["warnings"]:  # also under the report's title; stderr so a pipe of stdout still shows them
        print(f"WARNING: {message}", file=sys.stderr)
    top = result["top"]
    for name, title in (("misled", "most confidently misled"), ("ambiguous", "most ambiguous")):
        if top[name] and args.top:
            w(f"\ntop {len(top[name])} {title}:\n")
            w(table([[r["id"], r["label"], r["full_pred"], _fmt(r["full_conf"]), r["category"], r["followed"] or "",
                      _fmt(r["entropy"]), r["text"][:40]] for r in top[name]],
                    ["id", "label", "full", "conf", "category", "followed", "entropy", "text"]) + "\n")
    w(f"\nwrote {paths['html']}, {paths['md'].name}, {paths['json'].name}, {paths['csv'].name}\n")
    return 0
