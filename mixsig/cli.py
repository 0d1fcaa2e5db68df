"""The one entry point, ``mixsig``. Thin: each subcommand lives in :mod:`mixsig.commands`.

Every command module defines ``register(subparsers)`` which adds its parser and sets
``func=run`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
Command modules import heavy libraries inside ``run`` only, so ``mixsig --help`` starts instantly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from mixsig import __version__
from mixsig.errors import MixsigError

# Order is the order in `mixsig --help`.
COMMANDS = ("validate", "extract", "finetune", "cache", "train", "study", "report", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixsig",
        description=(
            "Multimodal classification research: run encoders once and cache their embeddings in Zarr, "
            "iterate on fusion heads and Optuna studies over the cache, and report where unimodal and "
            "multimodal predictions disagree."
        ),
        epilog="Run `mixsig COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"mixsig {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mixsig.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    level = logging.DEBUG if args.debug else (logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("optuna", "matplotlib", "numcodecs", "zarr", "urllib3", "httpx", "fsspec", "asyncio"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        return int(args.func(args) or 0)
    except MixsigError as exc:
        if args.debug:
            raise
        print(f"mixsig {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `mixsig cache ls --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"mixsig {args.command}: interrupted; committed work is kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
