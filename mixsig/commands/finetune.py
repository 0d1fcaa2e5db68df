"""``mixsig finetune``: fine-tune an encoder (classifier + last K blocks) on the train split, save the checkpoint
as safetensors beside the store, cache embeddings from it in a new key and its own class probabilities as a run.
"""

from __future__ import annotations

import argparse

from mixsig.commands._util import add_encoder_arguments

EPILOG = """\
outputs:
  checkpoint  STORE_PARENT/STORE_STEM.checkpoints/<modality>.<encoder>-ft.<hash>/{all,fold0,...}/ (save_pretrained,
              safetensors, with its tokenizer / feature extractor / image processor; loadable with from_pretrained)
  key         features/<modality>.<encoder>-ft.<pooling>.<hash>: provenance holds the checkpoint sha256(s) and the
              training config; with --folds an array `fold` [N] int8 (-1 = the model trained on all train rows)
  run         runs/finetune.<modality>.<encoder>.<hash> (or --name): the classifier's probabilities for every row

--folds K (K >= 2): K models, each trained without one fold of the train rows, give that fold's embeddings and
probabilities (out-of-fold); a model trained on all train rows gives val/test rows.

exit codes: 0 done, 1 rows failed to decode (they are skipped in training and left NaN), 2 usage error
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune an encoder on the train split, then cache its embeddings and class probabilities",
        description=(
            "Fine-tune a Hugging Face encoder with AutoModelFor{Sequence,Audio,Video}Classification: the classifier "
            "and the last --unfreeze-last blocks train (AdamW), the epoch with the best validation accuracy is kept. "
            "Paper defaults: --unfreeze-last 2 --lr 5e-6 --batch-size 8 --epochs 15."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_encoder_arguments(p)
    p.add_argument("--unfreeze-last", type=int, default=2, metavar="K", help="encoder blocks to train (2)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float, default=5e-6)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=1, metavar="K", help="out-of-fold models for train rows (1 = none)")
    p.add_argument("--checkpoint-dir", default=None, help="where checkpoints go (default: beside the store)")
    p.add_argument("--name", default=None, help="run name (default: finetune.<modality>.<encoder>.<hash>)")
    p.add_argument("--overwrite", action="store_true", help="replace a run of the same name")
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (only if trusted)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsig.commands._util import encoder_settings, print_json
    from mixsig.extract import FinetuneConfig, finetune

    config = FinetuneConfig(unfreeze_last=args.unfreeze_last, epochs=args.epochs, lr=args.lr,
                            batch_size=args.batch_size, weight_decay=args.weight_decay, seed=args.seed,
                            folds=args.folds)
    preprocess, classes = encoder_settings(args)
    res = finetune(args.manifest, args.store, args.modality, args.encoder, config=config, revision=args.revision,
                   pooling=args.pooling, layers=args.layers, dtype=args.dtype, preprocess=preprocess,
                   device=args.device, trust_remote_code=args.trust_remote_code, checkpoint_dir=args.checkpoint_dir,
                   run_name=args.name, classes=classes, workers=args.workers, overwrite=args.overwrite)
    failed = sum(sum(v["failed"].values()) for v in res.extraction.values())
    if args.json:
        print_json(res.to_dict())
    else:
        print(f"key {res.key}")
        print(f"run {res.run}")
        for tag, path in res.checkpoints.items():
            acc = res.val_accuracy[tag]
            acc_s = "n/a" if acc is None else f"{acc:.3f}"
            print(f"checkpoint {tag}: {path} (sha256 {res.checkpoint_sha256[tag][:12]}, best val accuracy {acc_s} "
                  f"at epoch {res.best_epoch[tag]})")
        for split, m in res.metrics.items():
            print(f"{split}: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f} ({m['rows']} rows)")
        if failed:
            print(f"{failed} rows failed to decode or encode; see `mixsig cache info` for the ledger (exit code 1)")
    return 1 if failed else 0
