"""``mixsig train STORE --head H --features text=KEY,...``: train a head on every modality subset × seed
and write ``runs/<name>`` into the store; print a subset × split table of metrics (``--json`` for machines)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mixsig.commands import SUMMARIES


def register(subparsers) -> None:
    from mixsig.heads import HEADS  # light: the head names, no numpy/torch

    heads = HEADS.names()
    p = subparsers.add_parser(
        "train",
        help=SUMMARIES["train"],
        description=(
            f"Train a head ({', '.join(heads)}) on every non-empty subset of the given "
            "modalities for each seed, on the store's train split, selecting the epoch / stopping early on val. "
            "Predicts every row of every split and writes runs/<name> (probabilities [S, N, C] per subset, "
            "gates and attention for the gated head, metrics per split in attrs). Rows whose features are not "
            "done in every key are excluded with a count. Prints a subset x split table of mean ± std metrics. "
            "Every model is checked for collapse (one class predicted, or macro-F1 no better than chance) on val "
            "and test: each is warned on stderr and recorded in the run (attrs collapsed); the run is still written. "
            "The run records the splits that chose its epochs (attrs selection_splits: val), which `mixsig report` "
            "warns of when it analyses them, and any fine-tuned key whose train rows were embedded by a model "
            "trained on them (`mixsig finetune` without --folds K): warned on stderr, attrs in_sample_keys."
        ),
    )
    p.add_argument("store", metavar="STORE", help="the feature store (folder or URL)")
    p.add_argument("--head", required=True, choices=[*heads, "list"], metavar="HEAD",
                   help="the head to train, one of the registered heads: " + ", ".join(heads)
                        + " (`--head list` prints them, one per line)")
    p.add_argument("--features", required=False, metavar="M=KEY,...",
                   help="modality=key pairs in the run's modality order, e.g. text=KEY,audio=KEY,video=KEY; a "
                   "KEY is a full key, a unique prefix (text.roberta-base) or the modality alone (text=text) "
                   "when the store holds one key of it (`mixsig cache ls STORE` lists them); the run records "
                   "the full keys")
    p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="the seeds, always a comma list: 42,43,44,45; a single seed keeps its comma: 42, "
                        "(a bare number is refused: use --n-seeds for a count). Default: seed 0")
    p.add_argument("--n-seeds", default=None, metavar="N",
                   help="a number of seeds: 5 -> seeds 0,1,2,3,4 (not with --seeds)")
    p.add_argument("--params", default=None, metavar="JSON",
                   help='head hyperparameters as a JSON object, e.g. \'{"epochs": 30, "batch_size": 0}\'')
    p.add_argument("--name", default=None, help="run name (default: <head>-<hash of the configuration>)")
    p.add_argument("--soft-labels", action="store_true",
                   help="train on the annotators' vote shares instead of the gold label")
    p.add_argument("--class-weight", default=None, metavar="balanced|JSON",
                   help='"balanced" or a JSON object {class: weight}')
    p.add_argument("--overwrite", action="store_true", help="replace a run of the same name")
    p.add_argument("--allow-group-leak", action="store_true",
                   help="train although groups of the store's samples are in more than one split (refused with "
                        "exit 3 otherwise); recorded in the run's attrs (group_leak) and warned in the report")
    p.add_argument("--allow-modality-mismatch", action="store_true",
                   help="use a key under another modality than the one it holds (refused otherwise); recorded "
                        "in the run's attrs (modality_mismatch) and warned in the report")
    p.add_argument("--save-heads", action="store_true",
                   help="keep every fitted head (subset x seed) in the store with the run (safetensors / LightGBM "
                        "text and head.json under runs/<name>/heads/, never pickles; attrs saved_heads), so that "
                        "`mixsig predict STORE --run NAME --into OTHER` can apply them to another store")
    p.add_argument("--stream", action="store_true",
                   help="never read a key whole: a torch head (gated, concat, late) reads its rows window by window "
                        "while it trains, for pooled keys larger than memory; when the training rows fit one window "
                        "the run is the same, bit for bit, as without --stream with one seed (several: within 1e-4, as "
                        "seeds trained together are), else windows are shuffled, then rows within them; seeds train "
                        "one after another")
    p.add_argument("--stream-memory", default=None, metavar="BYTES",
                   help="with --stream: bytes of feature rows held at once (default 1G; e.g. 256M): windows of a "
                        "sixth of it (training, read-ahead, validation, chunks being read); keep it under the memory "
                        "you have beside Python and torch (under ulimit -v they take ~0.8 GB of address space with "
                        "MALLOC_ARENA_MAX=2, ~1.2 GB without)")
    p.add_argument("--json", action="store_true", help="print one JSON object (run name, attrs) instead of a table")
    p.set_defaults(func=run)


def _json_arg(text: str, option: str):
    from mixsig.errors import UsageError

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option} must be JSON; got {text!r} ({exc.msg} at position {exc.pos})") from None


def _fmt(d: dict | None) -> str:
    if not d or d.get("mean") is None:
        return "-"
    return f"{d['mean']:.3f}" + (f" ± {d['std']:.3f}" if d.get("std") is not None else "")


def run(args: argparse.Namespace) -> int:
    from mixsig.commands._util import parse_features, print_json, table
    from mixsig.errors import UsageError
    from mixsig.heads import list_heads, parse_seeds, train_run

    if args.head == "list":
        print("\n".join(list_heads()))
        return 0
    if not args.features:
        raise UsageError("--features is required: modality=key pairs, e.g. text=KEY,audio=KEY (see `mixsig cache ls`)")
    from mixsig.cache import check_modality_name, check_run_name

    features = parse_features(args.features)
    if args.name is not None:
        check_run_name(args.name, "--name")
    for m, k in features.items():
        check_modality_name(m, f"--features {m}={k}")
        if "|" in k:
            raise UsageError(f"--features {m}={k}: `mixsig train` takes one key per modality (alternatives "
                             f"separated by | are for `mixsig study`)")
    params = _json_arg(args.params, "--params") if args.params else None
    if params is not None and not isinstance(params, dict):
        raise UsageError(f"--params must be a JSON object; got {args.params!r}")
    cw = args.class_weight
    if cw is not None and cw != "balanced":
        cw = _json_arg(cw, "--class-weight")
    seeds = parse_seeds(args.seeds, args.n_seeds)
    if args.stream_memory is not None and not args.stream:
        raise UsageError("--stream-memory sizes the windows of --stream; add --stream (or drop --stream-memory).")

    from tqdm import tqdm

    bar = tqdm(total=None, desc="train", unit="fit", disable=None, file=sys.stderr, leave=False)

    def progress(done: int, total: int, what: str) -> None:
        bar.total = total
        bar.set_postfix_str(what)
        bar.update(done - bar.n)

    quiet = _DropCollapseRecords()  # collapses and in-sample keys are printed once, below, as WARNING lines
    logging.getLogger("mixsig.heads._runs").addFilter(quiet)
    try:
        result = train_run(args.store, args.head, features, seeds=seeds, params=params, name=args.name,
                           soft_labels=args.soft_labels, class_weight=cw, progress=progress,
                           overwrite=args.overwrite, allow_group_leak=args.allow_group_leak,
                           allow_modality_mismatch=args.allow_modality_mismatch, save_heads=args.save_heads,
                           stream=args.stream, stream_memory=args.stream_memory)
    finally:
        bar.close()
        logging.getLogger("mixsig.heads._runs").removeFilter(quiet)
    attrs = result.attrs
    if args.json:
        print_json({"run": result.name, "store": str(args.store), **attrs})
        _print_warnings(result)
        return 0
    rows = []
    for sub, by_split in attrs["metrics"].items():
        for split, m in by_split.items():
            rows.append([sub, split, _fmt(m["accuracy"]), _fmt(m["macro_f1"]), _fmt(m["weighted_f1"]),
                         _fmt(m["auroc"])])
    r = attrs["rows"]
    print(f"run {result.name}: head {attrs['head']}, {len(attrs['seeds'])} seed(s) {attrs['seeds']}, "
          f"{len(result.subsets)} subsets, {r['used']} of {r['total']} rows used "
          f"({r['excluded']} excluded: not done in every key), {attrs['train_seconds']:.1f} s")
    print(table(rows, ["subset", "split", "accuracy", "macro_f1", "weighted_f1", "auroc"]))
    if args.save_heads:
        print(f"saved heads: {len(result.subsets) * len(attrs['seeds'])} (next: mixsig predict {args.store} --run "
              f"{result.name} --into OTHER_STORE)")
    sys.stdout.flush()
    _print_warnings(result)
    return 0


class _DropCollapseRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(record, "mixsig_collapse", False) or getattr(record, "mixsig_in_sample", False))


def _print_warnings(result) -> None:
    """Fine-tuned keys made in-sample, collapsed models (one ``WARNING:`` line each and a summary line), on stderr."""
    from mixsig.cache import describe_collapse, describe_in_sample

    for key, entry in (result.attrs.get("in_sample_keys") or {}).items():
        print(f"WARNING: {describe_in_sample(key, entry)}", file=sys.stderr)

    collapsed = result.attrs.get("collapsed") or []
    for entry in collapsed:
        print(f"WARNING: {describe_collapse(entry)}", file=sys.stderr)
    if collapsed:
        models = {(e["subset"], e["seed"]) for e in collapsed}
        total = len(result.subsets) * len(result.attrs["seeds"])
        splits = sorted({e["split"] for e in collapsed}, key=lambda sp: ({"val": 0, "test": 1}.get(sp, 2), sp))
        print(f"WARNING: {len(models)} of {total} models (subset x seed) of run {result.name} collapsed on "
              f"{', '.join(splits)}; their metrics are not evidence of a signal. The run was written; its attrs "
              f"`collapsed` list them and the report repeats them.", file=sys.stderr)
