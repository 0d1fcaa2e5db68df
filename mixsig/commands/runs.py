"""``mixsig runs``: bring predictions made elsewhere into a store (``import``), and list, show and delete runs."""

from __future__ import annotations

import argparse

from mixsig.commands import SUMMARIES
from mixsig.commands._util import print_json, table

IMPORT_DESCRIPTION = (
    "Import class probabilities made by any code as a run of STORE (made beforehand with `mixsig cache init STORE "
    "--manifest M`), so that `mixsig report STORE --run NAME` reports on them as on a trained run. Rows are matched "
    "to the store's samples by id; samples missing from FILE are not predicted (NaN) and the report leaves them out. "
    "FILE .csv (long form): columns id, subset (modalities joined by '+', e.g. text+audio), optional seed (integer, "
    "default 0), and one column per class of the store named exactly as the class; one row per (id, subset, seed). "
    "FILE .parquet: the same columns and rows as the CSV (read with pyarrow; messages count its rows from 1). "
    "FILE .npz: ids [n] str, and either subsets [k] str with probs [k, S, n, C] or one array probs@SUBSET [S, n, C] "
    "per subset (e.g. probs@text+audio); optional seeds [S] int (default 0..S-1) and classes [C] str (default: the "
    "store's order); loaded without pickles. Every check runs before anything is written; bad data is refused with "
    "exit code 3 naming the CSV line (the header is line 1), the Parquet row (from 1) or the id: an unknown id, a "
    "class column missing or unknown, a non-finite value, a probability outside [0, 1] or a row not summing to 1 "
    "within 1e-3, a subset naming an unknown modality, a duplicate (id, subset, seed), a subset or seed missing ids another has, no subset with every modality. A store "
    "problem (no store, a run of that name without --overwrite) is exit code 1. The run records source import, head "
    "imported, the file's sha256 (attrs imported_from) and per-split metrics; the report's gate and attention "
    "sections say they are skipped (an imported run has no gates)."
)


def register(sub) -> None:
    p = sub.add_parser("runs", help=SUMMARIES["runs"],
                       description="The runs of a store: import predictions made elsewhere, list, show, delete.")
    rs = p.add_subparsers(dest="runs_command", metavar="ACTION")

    q = rs.add_parser("import", help="import predictions (.csv, .parquet or .npz) as a run", description=IMPORT_DESCRIPTION)
    q.add_argument("store", metavar="STORE", help="the feature store (made by `mixsig cache init`)")
    q.add_argument("file", metavar="FILE", help="the predictions: .csv (long form), .parquet (the same columns) or .npz (see above)")
    q.add_argument("--name", required=True, help="the run's name (what `mixsig report --run` takes)")
    q.add_argument("--logits", action="store_true",
                   help="the class columns hold logits, not probabilities: softmax is applied per row (without it, "
                        "values outside [0, 1] or rows not summing to 1 are refused)")
    q.add_argument("--overwrite", action="store_true", help="replace a run of the same name")
    q.set_defaults(func=run_import)

    q = rs.add_parser("ls", help="list the runs: name, source, head, subsets, seeds, created")
    q.add_argument("store", metavar="STORE", help="the feature store")
    q.add_argument("--json", action="store_true", help="print one JSON list instead of a table")
    q.set_defaults(func=run_ls)

    q = rs.add_parser("show", help="one run: head, params, keys, seeds, metrics, source, whether its heads are saved")
    q.add_argument("store", metavar="STORE", help="the feature store")
    q.add_argument("run", metavar="RUN", help="the run's name or a unique prefix of it (see `mixsig runs ls STORE`)")
    q.add_argument("--json", action="store_true", help="print the run's attrs as one JSON object")
    q.set_defaults(func=run_show)

    q = rs.add_parser("rm", help="delete a run (its predictions and attrs); feature keys are kept")
    q.add_argument("store", metavar="STORE", help="the feature store")
    q.add_argument("run", metavar="RUN", help="the run's exact name (no prefixes: deleting is not undone; see "
                                              "`mixsig runs ls STORE`)")
    q.set_defaults(func=run_rm)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _open(url: str, mode: str = "r"):
    from mixsig.cache import open_store

    return open_store(url, mode)


def run_import(args: argparse.Namespace) -> int:
    from mixsig.cache import import_run

    store = _open(args.store, "r+")
    rec = import_run(store, args.file, args.name, logits=args.logits, overwrite=args.overwrite)
    n = rec.extra["imported_from"]["rows_predicted"]
    print(f"imported run {rec.name}: subsets {', '.join(rec.metrics)}; seeds {list(rec.seeds)}; {n} of "
          f"{len(store.samples.ids)} samples predicted")
    print(f"next: mixsig report {args.store} --run {rec.name}")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    from mixsig.cache import list_runs

    store = _open(args.store)
    rows = list_runs(store)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no runs in {store.url} (`mixsig train` and `mixsig runs import` write one)")
        return 0
    print(table([[r["name"] + ("" if r["complete"] else " (interrupted)"), r["source"], r["head"],
                  " ".join(r["subsets"]), ",".join(map(str, r["seeds"] or [])), r["created"]] for r in rows],
                ["run", "source", "head", "subsets", "seeds", "created"]))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from mixsig.cache import run_attrs

    from mixsig.errors import StoreError

    store = _open(args.store)
    args.run = store.resolve_run(args.run, error=StoreError)  # a full name or a unique prefix
    a = run_attrs(store, args.run)
    if args.json:
        print_json({"name": args.run, **a})
        return 0
    print(f"run {args.run}: source {a.get('source')}, head {a.get('head')}, created {a.get('created')}")
    print(f"params: {a.get('params')}")
    for m, k in (a.get("features") or {}).items():
        print(f"key {m}: {k}")
    print(f"seeds: {a.get('seeds')}; classes: {a.get('classes')}")
    if a.get("imported_from"):
        print(f"imported from: {a['imported_from']}")
    if a.get("predicted_from"):
        print(f"predicted with the saved heads of: {a['predicted_from']}")
    print("saved heads: yes (`mixsig predict` applies them)" if a.get("saved_heads") else
          "saved heads: no (`mixsig train ... --save-heads` keeps them)")
    rows = []
    for sub, splits in (a.get("metrics") or {}).items():
        for split, ms in splits.items():
            rows.append([sub, split] + [_fmt(ms.get(k)) for k in ("accuracy", "macro_f1", "auroc")])
    if rows:
        print(table(rows, ["subset", "split", "accuracy", "macro_f1", "auroc"]))
    return 0


def _fmt(d) -> str:
    if not isinstance(d, dict) or d.get("mean") is None:
        return "-"
    return f"{d['mean']:.3f}" + (f" ± {d['std']:.3f}" if d.get("std") is not None else "")


def run_rm(args: argparse.Namespace) -> int:
    from mixsig.cache import delete_run

    store = _open(args.store, "r+")
    delete_run(store, args.run)
    print(f"deleted run {args.run} from {store.url}")
    return 0
