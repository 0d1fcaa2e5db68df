"""``mixsig validate MANIFEST``: list every problem of a manifest at once, then a summary.

Exit code 0 when there is no error (warnings allowed), 1 with errors, 2 on usage errors (missing file,
bad option). Imports only the standard library and :mod:`mixsig.manifest` (no torch, no zarr).
"""

from __future__ import annotations

import argparse
import json
import sys

from mixsig.commands import SUMMARIES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "validate",
        help=SUMMARIES["validate"],
        description=(
            "Check a manifest and list every problem at once (row, column, what is wrong and the fix): "
            "CSV rows that cannot be parsed (an unclosed quote) or have too few or too many fields, JSONL objects "
            "with a key given twice, a manifest without rows, empty, duplicate (also after Unicode NFC "
            "normalisation) or invisible-character ids, unknown splits, labels outside the label set or written "
            "as a missing value (NaN, None, null), missing or unreadable media, "
            "empty text, bad segments, malformed votes, rows without any modality, the same media under two ids "
            "(warning), ids that differ only in case (warning), media paths outside the manifest's folder "
            "(warning: absolute, '..' or symlinks out; their files are not opened, and extraction refuses them "
            "without --allow-outside-paths) and groups found in more than one split (leakage). Then a summary: "
            "rows and labels per split, modalities and votes present. Exit code 0 when there is no error, 1 with "
            "errors, 2 on usage errors."
        ),
    )
    p.add_argument("manifest", metavar="MANIFEST", help="the manifest file (.csv or .jsonl)")
    p.add_argument("--classes", default=None,
                   help="the label set in order, comma-separated (default: the sorted labels seen)")
    p.add_argument("--allow-splits", default=None, metavar="NAMES",
                   help="comma-separated split names accepted besides train, val and test")
    p.add_argument("--no-media", action="store_true", help="do not check that media files exist and are readable")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="also check media files whose paths lead outside the manifest's folder (absolute paths, "
                        "'..', symlinks out); by default they are listed as warnings and never opened")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _split_list(value: str | None, option: str) -> list[str] | None:
    from mixsig.errors import UsageError

    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not all(items):
        raise UsageError(f"{option} takes comma-separated names without empty entries; got {value!r}")
    return items


def run(args: argparse.Namespace) -> int:
    from mixsig.manifest import summarise, validate_manifest

    classes = _split_list(args.classes, "--classes")
    allowed = _split_list(args.allow_splits, "--allow-splits")
    manifest, problems = validate_manifest(args.manifest, classes=classes, check_media=not args.no_media,
                                           allowed_splits=allowed, allow_outside_paths=args.allow_outside_paths)
    errors = sum(1 for q in problems if q.severity == "error")
    warnings = len(problems) - errors
    summary = summarise(manifest) if manifest is not None else None
    if args.json:
        out = {
            "manifest": str(manifest.path) if manifest else args.manifest,
            "sha256": manifest.sha256 if manifest else None,
            "ok": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "problems": [q.to_dict() for q in problems],
            "summary": summary,
        }
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(args.manifest, problems, summary, errors, warnings)
    return 1 if errors else 0


def _print_text(path: str, problems, summary: dict | None, errors: int, warnings: int) -> None:
    w = sys.stdout.write
    for q in problems:
        w(q.format() + "\n")
    if problems:
        w("\n")
    if summary is not None:
        w(f"{path}: {summary['rows']} rows, classes: {', '.join(summary['classes']) or '(none)'}, "
          f"{summary['groups']} groups\n")
        for name, s in summary["splits"].items():
            labels = ", ".join(f"{k or '(no label)'} {v}" for k, v in s["labels"].items())
            w(f"  {name or '(no split)'}: {s['rows']} rows ({labels}); groups: {s['groups']}\n")
        mods = ", ".join(f"{m} {n}" for m, n in summary["modalities"].items() if n)
        w(f"  modalities (rows): {mods or 'none'}\n")
        v = summary["votes"]
        w(f"  votes: {v['rows']} rows, up to {v['max_annotators']} annotators\n" if v["rows"] else "  votes: none\n")
        for c, s in summary["votes_by_condition"].items():
            w(f"  votes@{c}: {s['rows']} rows, up to {s['max_annotators']} annotators\n")
        if summary["extra_columns"]:
            w(f"  extra columns (kept): {', '.join(summary['extra_columns'])}\n")
    verdict = "OK" if errors == 0 else "FAILED"
    w(f"{verdict}: {errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}\n")
