"""``mixsig cache``: look into and maintain a feature store."""

from __future__ import annotations

import argparse

from mixsig.commands import SUMMARIES
from mixsig.commands._util import print_json, table


KEY_HELP = ("a feature key: the full key, a unique prefix (text.roberta-base) or the modality alone (text) when "
            "the store holds one key of it; `mixsig cache ls STORE` lists them")


def register(sub) -> None:
    p = sub.add_parser("cache", help=SUMMARIES["cache"],
                       description="Inspect and maintain a mixsig feature store (a Zarr v3 group).")
    cs = p.add_subparsers(dest="cache_command", metavar="ACTION")

    q = cs.add_parser("init", help="create a store's samples table from a manifest (no extraction)",
                      description="Create store STORE with the samples table of a manifest (ids, splits, labels, "
                                  "groups, votes, media paths and their hashes) and no feature key yet; `mixsig "
                                  "extract` creates the store itself when it does not exist, so init is for setting "
                                  "--classes or checking the manifest into a store first.")
    q.add_argument("store", help="store folder (or URL) to create")
    q.add_argument("--manifest", required=True, help="CSV, JSONL or Parquet manifest (see `mixsig validate --help`)")
    q.add_argument("--classes", help="comma-separated label set (default: labels seen, sorted)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing store at that path")
    q.add_argument("--allow-outside-paths", action="store_true",
                   help="accept media paths that are absolute or lead out of the manifest's folder (.., symlinks); "
                        "by default they are refused and no file outside the folder is opened or hashed")
    q.set_defaults(func=run_init)

    _register_inspect(cs)

    q = cs.add_parser("verify", help="find corrupt, moved or missing chunks, done rows that are not finite, orphan temp files",
                      description="Read every chunk of every array (feature keys and their digest ledgers, the "
                                  "samples table, runs and their saved heads, each saved head file also against its "
                                  "recorded sha256): its CRC32C checksum and the digest recorded for its position "
                                  "(a chunk copied over another is found), check that done rows are finite, that run "
                                  "probabilities are distributions and that each key's provenance still hashes to "
                                  "the key, check the study journal (a torn last record, damaged lines, trials of dead "
                                  "workers still RUNNING), and list temp files left by interrupted writes and stale "
                                  "leases. Arrays "
                                  "written before checksums (older stores) are listed as unchecked. Exit 0 when "
                                  "clean, 1 with findings.")
    q.add_argument("store")
    q.add_argument("--key", action="append",
                   help="only this key (repeatable; the samples table and runs are then not checked); a full key or a "
                        "unique prefix, as for `cache info`")
    q.add_argument("--fix", action="store_true",
                   help="unmark the rows of corrupt feature chunks (deleting the corrupt chunk files) and done rows "
                        "without data, so the next `mixsig extract` recomputes exactly those rows; record digests "
                        "an interrupted write left unrecorded; remove orphan temp files and stale leases; repair the "
                        "study journal (torn bytes removed, dead trials marked FAIL; stop study processes first). Corrupt "
                        "samples or runs are left as they are (the findings say what to do). Do not run while "
                        "extractions are writing")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_verify)

    _register_rm(cs)

    q = cs.add_parser("import-h5", help="import features computed elsewhere from HDF5, matched by id",
                      description="Import an [N, D] dataset of features computed elsewhere (e.g. OpenFace action "
                                  "units) from an HDF5 file as a new key of STORE, rows matched to the store's "
                                  "samples by the ids dataset; store rows missing from the file stay not done.")
    q.add_argument("store")
    q.add_argument("file")
    q.add_argument("--modality", help="modality name; any name works (e.g. face, prosody)")
    q.add_argument("--name", help="what the features are (e.g. openface-au); goes into the key and provenance")
    q.add_argument("--ids-dataset", default="ids", help="dataset of sample ids (default: ids)")
    q.add_argument("--dataset", default="embedding", help="dataset of features [N, D] (default: embedding)")
    q.add_argument("--columns", default=None, metavar="NAME,NAME,...",
                   help="names of the feature columns, one per column (e.g. duration,words), recorded in the key's "
                        "provenance; the report's descriptors then name them KEY[duration] instead of KEY[0]. "
                        "Default: the file's `columns` dataset or attr, if any. Columns that rank-duplicate a "
                        "descriptor mixsig computes itself (duration, word count) are not tested twice")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_import)

    _register_export(cs)
    for name, q in cs.choices.items():  # the arguments every action shares say what they are
        for action in q._actions:
            if action.help is None and action.dest in _SHARED_HELP:
                action.help = _SHARED_HELP[action.dest].format(io="read" if name.startswith("import") else "write")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


_SHARED_HELP = {"store": "the feature store (a folder or URL)", "file": "the HDF5 file to {io}",
                "json": "print one JSON object (machine-readable) instead of text"}


def _register_inspect(cs) -> None:
    q = cs.add_parser("ls", help="list feature keys with modality, width and done/failed counts, and runs",
                      description="One line per feature key (modality, encoder, pooling, width, rows done / failed "
                                  "/ to do) and per run (head, subsets, seeds) of STORE.")
    q.add_argument("store")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=run_ls)

    q = cs.add_parser("info", help="summary of the store, or everything about one key",
                      description="Without KEY: the store's rows per split, classes, keys and runs. With KEY: its "
                                  "provenance, shape, chunking, done/failed counts by status and the runs using it.")
    q.add_argument("store")
    q.add_argument("key", nargs="?", help=KEY_HELP)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_info)

    q = cs.add_parser("explain", help="what a key's hash covers: its provenance, field by field",
                      description="Print KEY's provenance (encoder, revision, pooling, layers, dtype, preprocessing, "
                                  "...) field by field: every field that changes the numbers is part of the key's "
                                  "hash, so changing any of them makes a new key instead of mixing embeddings.")
    q.add_argument("store")
    q.add_argument("key", help=KEY_HELP)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_explain)

    q = cs.add_parser("diff", help="how two keys' provenances differ (why they are different keys)",
                      description="The provenance fields in which KEY_A and KEY_B differ, one row per field (field | "
                                  "A | B); long values are wrapped, and --json gives them whole.")
    q.add_argument("store")
    q.add_argument("key_a", help=KEY_HELP)
    q.add_argument("key_b", help=KEY_HELP)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=run_diff)


def _register_rm(cs) -> None:
    q = cs.add_parser("rm", help="delete a feature key (refused while a run uses it, unless --force)",
                      description="Delete feature key KEY (its embeddings, done/status rows and provenance). Refused "
                                  "(exit 1) while a run of the store was trained on the key, naming the runs: delete "
                                  "them first (`mixsig runs rm STORE RUN`) or pass --force. Deleting is not undone; "
                                  "`mixsig extract` computes the key again.")
    q.add_argument("store")
    q.add_argument("key", help=KEY_HELP + "; the full key deleted is printed")
    q.add_argument("--force", action="store_true",
                   help="delete the key even though runs use it: their predictions stay and still report, their "
                        "provenance then says the key is gone")
    q.set_defaults(func=run_rm)


def _register_export(cs) -> None:
    q = cs.add_parser("export-h5", help="write a key (ids, embedding, done, status, provenance) to HDF5",
                      description="Write KEY of STORE to HDF5 FILE: the sample ids, the embedding [N, D], which rows "
                                  "are done and their status (int8 status, with status_name and the attr "
                                  "status_names), split, label (class index, -1 unlabelled) with label_name and "
                                  "classes, columns (when named) and the key's provenance, for tools outside mixsig.")
    q.add_argument("store")
    q.add_argument("key", help=KEY_HELP)
    q.add_argument("file")
    q.set_defaults(func=run_export)


def _open(path, mode="r"):
    from mixsig.cache import open_store

    return open_store(path, mode=mode)


def _key(store, name: str) -> str:
    """The full key ``name`` names (see KEY_HELP): unknown -> StoreError (exit 1), ambiguous -> UsageError."""
    from mixsig.errors import StoreError

    return store.resolve_key(name, error=StoreError)


def _verify_keys(store, names):
    """--key names of verify resolved like other keys; a name no ready key has (a key left half-created) is passed
    on as given, for verify to report."""
    from mixsig.errors import StoreError

    have, out = set(store.keys()), []
    for name in names or ():
        try:
            out.append(name if name in have else _key(store, name))
        except StoreError:
            out.append(name)
    return out or None


def run_init(args: argparse.Namespace) -> int:
    from mixsig.cache import create_store
    from mixsig.manifest import load_manifest, store_attrs, to_samples

    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
    manifest = load_manifest(args.manifest, classes=classes, allow_outside_paths=args.allow_outside_paths)
    store = create_store(args.store, to_samples(manifest), attrs=store_attrs(manifest, args.store),
                         overwrite=args.overwrite)
    s = store.samples
    counts = {sp: int((s.split == sp).sum()) for sp in s.splits}
    print(f"created {args.store}: {len(s)} rows {counts}, classes {list(s.classes)}")
    return 0


def run_ls(args) -> int:
    store = _open(args.store)
    infos = [store.key_info(k) for k in store.keys()]
    if args.json:
        print_json({"keys": [{k: v for k, v in i.items() if k != "provenance"} for i in infos], "runs": store.runs()})
        return 0
    if not infos:
        print("no feature keys yet (run `mixsig extract`)")
    else:
        print(table([(i["key"], i["modality"], i["width"], i["dtype"], f"{i['done']}/{i['rows']}", i["failed"])
                     for i in infos], ["key", "modality", "width", "dtype", "done", "failed"]))
    print(f"runs: {', '.join(store.runs()) or 'none'}")
    return 0


def run_info(args) -> int:
    store = _open(args.store)
    if args.key:
        info = store.key_info(_key(store, args.key))
        if args.json:
            print_json(info)
        else:
            for k, v in info.items():
                if k != "provenance":
                    print(f"{k:12s} {v}")
            print("provenance:")
            _print_nested(info["provenance"], indent=2)
        return 0
    s = store.samples
    info = {
        "url": store.url, "rows": len(s), "classes": list(s.classes),
        "splits": {sp: int((s.split == sp).sum()) for sp in s.splits},
        "annotators": int(s.votes.shape[1]), "vote_conditions": sorted(s.votes_by_condition),
        "split_hash": store.split_hash()[:16], "keys": store.keys(), "runs": store.runs(),
        **{k: v for k, v in store.attrs.items() if k != "mixsig_store"},
    }
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            print(f"{k:16s} {v}")
    return 0


def _print_nested(d: dict, indent: int = 0) -> None:
    for k, v in d.items():
        if isinstance(v, dict) and v:
            print(" " * indent + f"{k}:")
            _print_nested(v, indent + 2)
        else:
            print(" " * indent + f"{k}: {v}")


def run_explain(args) -> int:
    store = _open(args.store)
    args.key = _key(store, args.key)
    prov = store.provenance(args.key)
    matches, digest = store.provenance_matches(args.key)
    if args.json:
        print_json({"key": args.key, "sha256": digest, "matches_key": matches, "provenance": prov})
        return 0
    print(f"{args.key} = <modality>.<encoder, or the --name it was given>.<pooling>.<first 12 hex of sha256 of "
          "the provenance below>")
    print(f"sha256 {digest}  (matches key: {matches})")
    if not matches:
        print("the provenance was edited or damaged: train and study refuse this key; extract again for a key "
              "that matches")
    _print_nested(prov, indent=2)
    return 0


def run_diff(args) -> int:
    from mixsig.cache import diff_dicts

    store = _open(args.store)
    args.key_a, args.key_b = _key(store, args.key_a), _key(store, args.key_b)
    diffs = diff_dicts(store.provenance(args.key_a), store.provenance(args.key_b))
    if args.json:
        print_json([{"field": f, "a": a, "b": b} for f, a, b in diffs])
        return 0
    if not diffs:
        print("same provenance")
        return 0
    print(f"A = {args.key_a}\nB = {args.key_b}")
    print(wrapped_table([(f, _cell(a), _cell(b)) for f, a, b in diffs], ["field", "A", "B"]))
    return 0


def _cell(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def wrapped_table(rows, header, width: int = 48, lines_per_cell: int = 6) -> str:
    """:func:`table` whose cells are wrapped at ``width`` characters (a cell longer than ``lines_per_cell``
    lines is cut, ending in ``…``); each row's continuation lines are indented under their column."""
    import textwrap

    def wrap(cell: str) -> list[str]:
        lines = textwrap.wrap(str(cell), width, break_long_words=True, break_on_hyphens=False) or [""]
        if len(lines) > lines_per_cell:
            lines = lines[:lines_per_cell]
            lines[-1] = lines[-1][: width - 1] + "…"
        return lines

    out = []
    for row in rows:
        cells = [wrap(c) for c in row]
        height = max(len(c) for c in cells)
        out += [[c[i] if i < len(c) else "" for c in cells] for i in range(height)]
    return table(out, header)


def run_verify(args) -> int:
    from mixsig.cache import verify_store

    store = _open(args.store, "r+" if args.fix else "r")
    args.key = _verify_keys(store, args.key)
    report = verify_store(store, keys=args.key, fix=args.fix)
    journal = []
    if store.local_path is not None and not args.key:  # the store's study journal (torn tail, bad records, dead trials)
        from mixsig.studies import check_journals

        journal = check_journals(store.local_path, fix=args.fix)
    ok = report.ok and not journal
    if args.json:
        print_json(dict(report.to_dict(), ok=ok, journal=journal))
    else:
        for f in report.findings:
            rows = f" rows {f.rows[0]}..{f.rows[-1]} ({len(f.rows)})" if f.rows else ""
            print(f"{f.kind:16s} {f.where}{rows}: {f.message}")
        for j in journal:
            print(f"{j['kind']:16s} {j['where']}: {j['message']}")
        for r in report.removed:
            print(f"fixed: {r}")
        for u in report.unchecked:
            print(f"unchecked        {u}")
        state = "clean" if ok else f"{len(report.findings) + len(journal)} problem(s)"
        print(f"verify: {report.keys_checked} keys, {report.chunks_checked} chunks checked"
              f"{', study journal checked' if store.local_path is not None and not args.key else ''}: {state}")
    return 0 if ok else 1


def _runs_using(store, key: str) -> list[str]:
    """Runs whose recorded features name ``key`` (runs without readable attrs, e.g. interrupted ones, are skipped)."""
    from mixsig.cache import run_attrs
    from mixsig.errors import StoreError

    out = []
    for name in store.runs():
        try:
            features = run_attrs(store, name).get("features") or {}
        except StoreError:
            continue
        if key in features.values():
            out.append(name)
    return out


def run_rm(args) -> int:
    from mixsig.errors import StoreError

    store = _open(args.store, "r+")
    key = _key(store, args.key)
    users = _runs_using(store, key)
    if users and not args.force:
        raise StoreError(f"{key} is used by run(s) {', '.join(users)} of {args.store}: delete them first "
                         f"(`mixsig runs rm {args.store} RUN`) or pass --force to delete the key anyway")
    store.delete_key(key)
    kept = f" (runs {', '.join(users)} kept: their provenance now says the key is gone)" if users else ""
    print(f"deleted key {key}{kept}")
    return 0


def run_import(args) -> int:
    from mixsig.cache import import_h5

    store = _open(args.store, "r+")
    key, summary = import_h5(store, args.file, modality=args.modality, name=args.name,
                             ids_dataset=args.ids_dataset, dataset=args.dataset, columns=args.columns)
    if args.json:
        print_json(summary)
    else:
        print(f"imported {summary['matched']} of {summary['rows_in_file']} rows into {key} "
              f"({summary['missing_in_file']} store rows missing from the file, {summary['unknown_ids']} unknown ids)")
    return 0


def run_export(args) -> int:
    from mixsig.cache import export_h5

    store = _open(args.store)
    args.key = _key(store, args.key)
    path = export_h5(store, args.key, args.file)
    print(f"exported {args.key} to {path}")
    return 0
