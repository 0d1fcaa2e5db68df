"""``mixsig extract``: run one encoder over one modality of a manifest and cache pooled embeddings in a store.

Exit code 0 when every row with input for the modality is done, 1 when some rows failed (decode_error,
too_short, nonfinite, error: the summary and the key's ledger list them; rerunning retries them), 2 on usage
errors, 3 on refused input (groups that cross splits, unless ``--allow-group-leak``). ``--strict`` stops at the
first failed row (exit 1), keeping the blocks finished before it.
"""

from __future__ import annotations

import argparse
import sys

from mixsig.commands import SUMMARIES
from mixsig.commands._util import add_encoder_arguments, add_input_trust_arguments

EPILOG = """\
exit codes:
  0  every row with input for the modality is done
  1  some rows failed (status decode_error / too_short / nonfinite / error; see the summary, `--json`
     and the key's ledger: `mixsig cache info STORE KEY`); rerun to retry them. With --strict: stopped at the first.
  2  usage error
  3  refused input: groups of the manifest cross splits (leakage); the error lists them. Fix the splits, or pass
     --allow-group-leak to go on (recorded in the store's attr group_leak and printed). Or the manifest differs
     from the store's samples table (labels, splits, groups, text, media paths/content, segments, votes); the
     error names the rows and columns. Restore it, use a new --store, or pass --update-samples

key names: <modality>.<encoder>.<pooling>.<12 hex of the provenance's sha256>; --name NAME puts NAME in place of
the encoder (e.g. a local folder called `model`). The name is not hashed: two keys with the same hash hold the
same features.

Rows already done are skipped, so an interrupted run resumes where it stopped. Shards: start N processes with
--shard 0/N .. N-1/N (or under torchrun, which sets RANK/WORLD_SIZE); shard 0 creates the store and the key.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "extract",
        help=SUMMARIES["extract"],
        description=(
            "Run a Hugging Face encoder (hub name or local folder) over the text, audio or video of a manifest and "
            "write pooled embeddings into a feature key of STORE. The key is named by its provenance (encoder, "
            "resolved revision, preprocessing, pooling, layers, dtype), so changed settings give a new key."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_encoder_arguments(p)
    p.add_argument("--shard", default=None, metavar="I/N", help="process shard I of N (default: RANK/WORLD_SIZE or 0/1)")
    p.add_argument("--device", default=None, help="torch device (default: cuda:LOCAL_RANK if available, else cpu)")
    p.add_argument("--batch-budget", type=int, default=None,
                   help="padded size per batch: tokens (text), samples (audio) or clips (video)")
    p.add_argument("--max-batch", type=int, default=128, help="at most this many rows per batch (128)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (2)")
    p.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk of a new key (unit of sharding/resume)")
    p.add_argument("--strict", action="store_true", help="stop at the first row that fails")
    p.add_argument("--refresh-stale", action="store_true",
                   help="re-extract done rows whose input hash recorded in the key differs from the samples "
                        "table's (default: only report them). A manifest that changed under the store is refused "
                        "before that; --update-samples takes it in")
    p.add_argument("--update-samples", action="store_true",
                   help="the manifest changed since the store was made (labels, splits, text, media, votes ...): "
                        "rewrite the store's samples table from it and mark the rows whose input changed not done "
                        "in every key, so this run (and later ones of other keys) recompute exactly those. Hashes "
                        "every modality's media once. Refused while another process writes any key. Runs made "
                        "before keep their old split_hash. Without it a changed manifest is refused (exit 3)")
    p.add_argument("--break-lease", action="store_true",
                   help="take over the lease of another writer of this key. Safe only when that writer is gone "
                        "(e.g. it died on another host, so its lease cannot be seen as stale here); two live "
                        "writers on one key lose data. Leases of dead processes on this host are taken over "
                        "without it")
    add_input_trust_arguments(p)
    p.add_argument("--name", default=None, metavar="NAME",
                   help="readable name in the key in place of the encoder's (<modality>.NAME.<pooling>.<hash>): "
                        "lowercase letters, digits, '-', '_', '.'; not hashed, so the same hash means the same "
                        "features")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def _options(args):
    from mixsig.extract import RunOptions

    return RunOptions(batch_budget=args.batch_budget, max_batch=args.max_batch, workers=args.workers,
                      strict=args.strict, refresh_stale=args.refresh_stale)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from mixsig.commands._util import command_line, encoder_settings, print_json, threads_setting
    from mixsig.errors import UsageError
    from mixsig.extract import check_key_name, extract, resolve_shard

    if args.max_batch < 1 or (args.batch_budget is not None and args.batch_budget < 1):
        raise UsageError("--max-batch and --batch-budget must be positive")
    check_key_name(args.name, "--name")
    threads = threads_setting(args)
    shard = resolve_shard(args.shard)
    preprocess, classes = encoder_settings(args)
    # smoothing=0: the rate is rows done / time since the rows to compute were known (not a moving average of
    # the first, warm-up batches); the clock starts there, not while the model loads and the media are hashed
    quiet = getattr(args, "quiet", False)
    bar = tqdm(total=0, unit="row", desc=f"extract {args.modality}", disable=True if quiet else None,
               file=sys.stderr, dynamic_ncols=True, smoothing=0)

    def on_total(n):
        bar.reset(total=n)

    try:
        with logging_redirect_tqdm():  # log lines print above the bar instead of breaking it
            res = extract(args.manifest, args.store, args.modality, args.encoder, revision=args.revision,
                          pooling=args.pooling, layers=args.layers, dtype=args.dtype, preprocess=preprocess,
                          options=_options(args), shard=shard, device=args.device,
                          trust_remote_code=args.trust_remote_code, chunk_rows=args.chunk_rows, classes=classes,
                          on_rows=bar.update, on_total=on_total, name=args.name, threads=threads,
                          allow_group_leak=args.allow_group_leak, allowed_by=command_line(args),
                          update_samples=args.update_samples, break_lease=args.break_lease,
                          allow_outside_paths=args.allow_outside_paths)
    finally:
        bar.close()
    if args.json:
        print_json(res.to_dict())
    else:
        print(res.summary())
        for entry in res.ledger[:20]:
            print(f"  {entry['id']}: {entry['status']}: {entry['message']}")
        if len(res.ledger) > 20:
            print(f"  ... and {len(res.ledger) - 20} more (use --json for all)")
        if not res.ok:
            print(f"{res.n_failed} rows failed; rerun to retry them (exit code 1)")
    return 0 if res.ok else 1
