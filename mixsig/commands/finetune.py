"""``mixsig finetune``: fine-tune an encoder (classifier + last K blocks and what follows them, or all of it) on
the train split, save the checkpoint as safetensors beside the store, cache embeddings from it in a new key and its
own class probabilities as a run (metrics as every run has them).
"""

from __future__ import annotations

import argparse

from mixsig.commands import SUMMARIES
from mixsig.commands._util import add_encoder_arguments, add_input_trust_arguments

EPILOG = """\
outputs:
  checkpoint  STORE_PARENT/STORE_STEM.checkpoints/<modality>.<encoder>-ft.<hash>/{all,fold0,...}/ (save_pretrained,
              safetensors, with its tokenizer / feature extractor / image processor; loadable with from_pretrained)
  key         features/<modality>.<encoder>-ft.<pooling>.<hash> (--key-name NAME: <modality>.NAME.<pooling>.<hash>;
              the name is not hashed: the same hash means the same features): provenance holds the checkpoint
              sha256(s) and the training config; with --folds an array `fold` [N] int8 (-1 = the model trained on
              all train rows)
  run         runs/finetune.<modality>.<encoder>.<hash> (or --name): the classifier's probabilities for every row;
              attrs: metrics {modality: {split: {accuracy, macro_f1, weighted_f1, auroc: {mean, std, per_seed}}}}
              as every run, trained_parameters {unfreeze_last, trained, total, modules}, group_leak when allowed

--unfreeze-last K: what trains (AdamW; everything else stays frozen)
  0    the classification head only (the modules outside the base model, e.g. RoBERTa's classifier)
  K    the head, the last K encoder blocks, and the modules that run after the last block on the way to the
       classifier (BERT's pooler, a final layer norm such as Wav2Vec2's stable-layer-norm encoder.layer_norm);
       the embeddings and the earlier blocks stay frozen
  all  every parameter, embeddings included (a full fine-tune)
The log and `--json` say how many parameters trained of how many, and which modules.

--folds K (K >= 2): K models, each trained without one fold of the train rows, give that fold's embeddings and
probabilities (out-of-fold); a model trained on all train rows gives val/test rows.

exit codes: 0 done, 1 rows failed to decode (they are skipped in training and left NaN), 2 usage error,
  3 refused input: groups of the manifest cross splits (the error lists them); --allow-group-leak goes on and
  records the leak in the store's attr group_leak and the run's attrs group_leak. Or the manifest differs from
  the store's samples table (the error names rows and columns): restore it, use a new --store, or --update-samples
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help=SUMMARIES["finetune"],
        description=(
            "Fine-tune a Hugging Face encoder with AutoModelFor{Sequence,Audio,Video}Classification: the classifier, "
            "the last --unfreeze-last blocks and what follows them (pooler / final norm) train (AdamW), or every "
            "parameter with --unfreeze-last all; the epoch with the best validation accuracy is kept. "
            "Paper defaults: --unfreeze-last 2 --lr 5e-6 --batch-size 8 --epochs 15."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_encoder_arguments(p)
    p.add_argument("--unfreeze-last", type=_unfreeze, default=2, metavar="K|all",
                   help="0: the classification head only; K: the head, the last K encoder blocks and the pooler / "
                        "final norm after them; all: every parameter, embeddings included (default 2)")
    p.add_argument("--epochs", type=int, default=15, help="passes over the train rows; the best val epoch is kept (15)")
    p.add_argument("--lr", type=float, default=5e-6, help="AdamW learning rate (5e-6)")
    p.add_argument("--batch-size", type=int, default=8, help="train rows per step (8)")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (0.01)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and folds (0)")
    p.add_argument("--folds", type=int, default=1, metavar="K", help="out-of-fold models for train rows (1 = none)")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default: beside the store)")
    p.add_argument("--name", default=None, help="run name (default: finetune.<modality>.<encoder>.<hash>)")
    p.add_argument("--key-name", default=None, metavar="NAME",
                   help="readable name of the fine-tuned key (<modality>.NAME.<pooling>.<hash>; default "
                        "<encoder>-ft): lowercase letters, digits, '-', '_', '.'; not hashed")
    p.add_argument("--overwrite", action="store_true", help="replace a run of the same name")
    p.add_argument("--device", default=None, help="torch device (default: cuda:LOCAL_RANK if available, else cpu)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    add_input_trust_arguments(p)
    p.add_argument("--update-samples", action="store_true",
                   help="the manifest changed since the store was made (labels, splits, text, media, votes ...): "
                        "rewrite the store's samples table from it and mark the rows whose input changed not done "
                        "in every key (`mixsig extract` recomputes them). Refused while another process writes "
                        "any key. Runs made before keep their old split_hash. Without it a changed manifest is "
                        "refused (exit 3)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def _unfreeze(text: str):
    """``--unfreeze-last``: a number of blocks >= 0 or ``all``."""
    if str(text).strip().lower() == "all":
        return "all"
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number of blocks >= 0 or 'all'; got {text!r}") from None
    if k < 0:
        raise argparse.ArgumentTypeError(f"takes a number of blocks >= 0 or 'all'; got {k}")
    return k


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    from mixsig.commands._util import command_line, encoder_settings, print_json, threads_setting
    from mixsig.extract import FinetuneConfig, check_key_name, describe_allowed_leak, finetune
    from mixsig.metrics import METRICS

    config = FinetuneConfig(unfreeze_last=args.unfreeze_last, epochs=args.epochs, lr=args.lr,
                            batch_size=args.batch_size, weight_decay=args.weight_decay, seed=args.seed,
                            folds=args.folds)
    config.validate()
    check_key_name(args.key_name, "--key-name")
    threads = threads_setting(args)
    preprocess, classes = encoder_settings(args)
    res = finetune(args.manifest, args.store, args.modality, args.encoder, config=config, revision=args.revision,
                   pooling=args.pooling, layers=args.layers, dtype=args.dtype, preprocess=preprocess,
                   device=args.device, trust_remote_code=args.trust_remote_code, checkpoint_dir=args.checkpoint_dir,
                   run_name=args.name, classes=classes, workers=args.workers, overwrite=args.overwrite,
                   key_name=args.key_name, threads=threads, allow_group_leak=args.allow_group_leak,
                   allowed_by=command_line(args), update_samples=args.update_samples,
                   allow_outside_paths=args.allow_outside_paths)
    failed = sum(sum(v["failed"].values()) for v in res.extraction.values())
    if args.json:
        print_json(res.to_dict())
    else:
        if res.group_leak:
            print(describe_allowed_leak(res.group_leak))
        print(f"key {res.key}")
        print(f"run {res.run}")
        tp = res.trained_parameters
        print(f"trained {tp['trained']:,} of {tp['total']:,} parameters (--unfreeze-last {tp['unfreeze_last']}: "
              f"{', '.join(tp['modules'])}) with {threads} torch thread{'s' if threads != 1 else ''}")
        for tag, path in res.checkpoints.items():
            acc = res.val_accuracy[tag]
            print(f"checkpoint {tag}: {path} (sha256 {res.checkpoint_sha256[tag][:12]}, best val accuracy "
                  f"{_fmt(acc)} at epoch {res.best_epoch[tag]})")
        for subset, by_split in res.metrics.items():
            for split, m in by_split.items():
                shown = ", ".join(f"{k} {_fmt(m[k]['mean'])}" for k in METRICS)
                print(f"{subset} {split}: {shown} ({res.rows.get(split, 0)} rows)")
        if failed:
            print(f"{failed} rows failed to decode or encode; see `mixsig cache info` for the ledger (exit code 1)")
    return 1 if failed else 0
