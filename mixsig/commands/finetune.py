"""``mixsig finetune``: fine-tune an encoder with a classification head, cache its embeddings and its own
class probabilities (placeholder parser until the trainer lands; see ``mixsig.extract.finetune``)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune an encoder on the train split, then cache its embeddings and probabilities",
        description="Fine-tune a Hugging Face encoder (classifier + last K blocks) on the train split.",
    )
    p.add_argument("manifest", metavar="MANIFEST")
    p.add_argument("--store", required=True)
    p.add_argument("--modality", required=True, choices=("text", "audio", "video"))
    p.add_argument("--encoder", required=True, metavar="NAME_OR_PATH")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mixsig.errors import UsageError

    raise UsageError("mixsig finetune is not available yet in this build")
