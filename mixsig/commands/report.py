"""``mixsig report STORE --run RUN``: the disagreement report of a run (README.md, "The disagreement report").

One-shot form, ``mixsig report --manifest M --predictions FILE --out DIR``: a store is made from the manifest in a
temporary folder, FILE is imported as a run (as by ``mixsig runs import``), the report is written into DIR and the
temporary store is deleted.

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
            "trial, split hash and library versions. report.html's sample browser lists every analysed sample "
            "(sortable, filterable; a click shows its text, every subset's prediction, gate/attention weights and its audio/video "
            "segment, embedded for the --embed-media N most misled and ambiguous samples, linked for the others). "
            "One-shot form for predictions made elsewhere: `mixsig report "
            "--manifest M --predictions FILE --out DIR` (no STORE) makes a store from M in a temporary folder, "
            "imports FILE as by `mixsig runs import`, writes the report into DIR and deletes the temporary store."
        ),
    )
    p.add_argument("store", metavar="STORE", nargs="?", default=None,
                   help="the feature store (folder or URL); leave it out with --manifest")
    p.add_argument("--run", default=None, help="the run inside the store: its full name or a unique prefix (`mixsig "
                   "runs ls STORE` lists them); with --manifest, the name given to the imported predictions "
                   "(default: predictions)")
    p.add_argument("--manifest", default=None, metavar="M",
                   help="one-shot form (no STORE): the manifest (CSV, JSONL or Parquet) the predictions' ids belong to; a "
                        "store is made from it in a temporary folder and deleted after the report")
    p.add_argument("--predictions", default=None, metavar="FILE",
                   help="with --manifest: the predictions to report on, .csv or .parquet (long form) or .npz, as `mixsig runs "
                        "import --help` describes")
    p.add_argument("--logits", action="store_true",
                   help="with --predictions: the class columns hold logits; softmax is applied per row")
    p.add_argument("--classes", default=None, metavar="A,B,...",
                   help="with --manifest: the comma-separated class set in the order of the predictions' class "
                        "columns (an .npz whose probs have no classes array); default: the manifest's labels, sorted")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: report-<RUN>)")
    p.add_argument("--split", default="test",
                   help="rows to analyse: a split name, several joined by '+' (val+test), or 'all' (default: test; "
                        "rows of a split that selected the run are warned of)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="misled and ambiguous samples to list (default 10)")
    p.add_argument("--no-plots", action="store_true", help="leave the figures out (faster)")
    p.add_argument("--media-root", default=None, metavar="DIR",
                   help="folder the samples' audio paths are relative to (default: the folder of the manifest "
                        "the store was built from); used for duration and prosody descriptors and for the sample "
                        "browser's media")
    p.add_argument("--no-media", action="store_true", help="do not read audio files for prosody")
    p.add_argument("--embed-media", type=int, default=40, metavar="N",
                   help="the sample browser in report.html embeds the audio/video segment (start-end, re-encoded "
                        "small as WebM) of the N most misled and most ambiguous samples, so the file plays them "
                        "when mailed; the other samples link to their media by relative path (default 40; 0 embeds "
                        "nothing, for a small file). The report states its size and which samples were embedded")
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


def _size_line(result: dict, paths: dict) -> str:
    """``report.html: N bytes; media of K samples embedded (...), M linked`` (stderr)."""
    from mixsig.analysis.sections.browser import statement

    size = paths["html"].stat().st_size
    line = f"{paths['html']}: {size:,} bytes ({size / 1e6:.2f} MB)"
    browser = result.get("browser")
    return line + (f". Sample browser: {statement(browser)}" if browser else "")


def _check_form(args: argparse.Namespace) -> None:
    """One UsageError line unless the arguments are one of the two forms (STORE --run RUN, or --manifest +
    --predictions without STORE)."""
    from pathlib import Path

    from mixsig.errors import UsageError

    if args.manifest and args.store:
        raise UsageError(f"give STORE ({args.store}) or --manifest ({args.manifest}), not both: `mixsig report STORE "
                         "--run RUN` reports a run of a store, `mixsig report --manifest M --predictions FILE --out "
                         "DIR` reports predictions without a store")
    if args.manifest:
        if not args.predictions:
            raise UsageError(f"--manifest {args.manifest} needs --predictions FILE (the .csv, .parquet or .npz to report on; "
                             "see `mixsig runs import --help`)")
        for option, path in (("--manifest", args.manifest), ("--predictions", args.predictions)):
            if not Path(path).is_file():
                raise UsageError(f"{option} {path}: no such file; pass the path of an existing file")
        args.run = args.run or "predictions"
        return
    if args.predictions or args.logits:
        option = "--predictions" if args.predictions else "--logits"
        raise UsageError(f"{option} needs --manifest M (one-shot form: `mixsig report --manifest M --predictions "
                         f"FILE --out DIR`); for a run already in a store use `mixsig runs import` then `mixsig "
                         "report STORE --run RUN`")
    if not args.store:
        raise UsageError("give STORE --run RUN (a run of a store) or --manifest M --predictions FILE (one-shot)")
    if not args.run:
        raise UsageError(f"--run RUN is required with STORE; `mixsig runs ls {args.store}` lists the runs")


def _one_shot(args: argparse.Namespace, report):
    """Make a store from --manifest in a temporary folder, import --predictions as run ``args.run``, and call
    ``report(store_url)``; the temporary folder is deleted afterwards (also on errors)."""
    import tempfile
    from pathlib import Path

    from mixsig.cache import create_store, import_run
    from mixsig.manifest import load_manifest, store_attrs, to_samples

    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    manifest = load_manifest(args.manifest, classes=classes)
    if args.media_root is None:  # the temporary store is not beside the corpus: media are relative to the manifest
        args.media_root = str(Path(args.manifest).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="mixsig-report-") as tmp:
        url = str(Path(tmp) / "store.zarr")
        store = create_store(url, to_samples(manifest), attrs=store_attrs(manifest, url))
        import_run(store, args.predictions, args.run, logits=args.logits)
        return report(url)


def _analyse(args: argparse.Namespace, store_url: str):
    """analyse() run ``args.run`` of ``store_url`` and write the report; returns (result, paths)."""
    from pathlib import Path

    from mixsig.analysis import analyse, write_report

    out_dir = Path(args.out or f"report-{args.run}")
    result = analyse(store_url, args.run, split=args.split, media_root=args.media_root, n_boot=args.bootstrap,
                     seed=args.seed, top_k=args.top, media_descriptors=not args.no_media,
                     embed_media=args.embed_media)
    if args.manifest:  # the temporary store is deleted after the report: name what it was made from instead
        where = f"a temporary store made from {args.manifest} (deleted; `mixsig report --manifest`)"
        for part in (result.get("provenance") or {}, result.get("run") or {}):
            for k in ("store", "source"):
                if part.get(k) == store_url:
                    part[k] = where
    return result, write_report(result, out_dir, plots=not args.no_plots)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from mixsig.analysis import jsonable
    from mixsig.analysis.sections.top import snippet
    from mixsig.commands._util import table
    from mixsig.errors import UsageError

    if args.top < 0:
        raise UsageError(f"--top must be 0 or more; got {args.top}")
    if args.embed_media < 0:
        raise UsageError(f"--embed-media must be 0 or more; got {args.embed_media} (0 embeds no media)")
    if args.classes and not args.manifest:
        raise UsageError("--classes is for the one-shot form (--manifest M --predictions FILE); a store's runs use "
                         "the store's classes")
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 or more; got {args.bootstrap}")
    if args.media_root and not Path(args.media_root).is_dir():
        raise UsageError(f"--media-root {args.media_root} is not a folder; pass the folder of the manifest")
    _check_form(args)

    if args.manifest:
        result, paths = _one_shot(args, lambda url: _analyse(args, url))
    else:
        from mixsig.cache import open_store
        from mixsig.errors import StoreError

        args.run = open_store(args.store).resolve_run(args.run, error=StoreError)  # a unique prefix -> the run
        result, paths = _analyse(args, args.store)
    summary = _summary(result)
    print(_size_line(result, paths), file=sys.stderr)
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
                      _fmt(r["entropy"]), snippet(r["text"], 40)] for r in top[name]],
                    ["id", "label", "full", "conf", "category", "followed", "entropy", "text"]) + "\n")
    w(f"\nwrote {paths['html']}, {paths['md'].name}, {paths['json'].name}, {paths['csv'].name}\n")
    return 0
