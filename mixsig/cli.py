"""The one entry point, ``mixsig``. Thin: each subcommand lives in :mod:`mixsig.commands`.

Every command module defines ``register(subparsers)`` which adds its parser and sets
``func=run`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
Command modules import heavy libraries inside ``run`` only, and :func:`main` imports the module of the command
being run only (``mixsig --help`` none: its lines are :data:`mixsig.commands.SUMMARIES`), so the CLI starts instantly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mixsig import __version__
from mixsig.commands import SUMMARIES
from mixsig.errors import MixsigError, did_you_mean

# Order is the order in `mixsig --help`.
COMMANDS = tuple(SUMMARIES)

#: Options of `mixsig` itself that may also be written after the command (`mixsig train ... -q`).
GLOBAL_FLAGS = ("-q", "--quiet", "--debug")


class _Parser(argparse.ArgumentParser):
    """argparse, with "Did you mean ...?" on an invalid choice (commands, ``--head``, ``--modality``, ...);
    every subparser is of this class too."""

    def _check_value(self, action, value):
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            hint = did_you_mean(value, [str(c) for c in action.choices or ()])
            if not hint:
                raise
            raise argparse.ArgumentError(action, exc.message + hint) from None


def hoist_global_flags(argv: list[str]) -> list[str]:
    """``argv`` with :data:`GLOBAL_FLAGS` written anywhere before a ``--`` moved to the front, so `mixsig -q
    train ...` and `mixsig train ... -q` are the same (no command has options of these names)."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    return flags + [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `mixsig` parser with every command's parser, or, with ``only``, with that command's parser (``""``:
    none) and placeholders for the others that carry their line of `mixsig --help` (all `mixsig --help` and an
    unknown command's error need)."""
    parser = _Parser(
        prog="mixsig",
        description=(
            "Multimodal classification research: run encoders once and cache their embeddings in Zarr, "
            "iterate on fusion heads and Optuna studies over the cache, and report where unimodal and "
            "multimodal predictions disagree."
        ),
        epilog="Run `mixsig COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"mixsig {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks and debug logging (also accepted after the command)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="only warnings and errors on stderr: no INFO logs, progress bars or stage lines, and no "
                             "text summary from study run/worker and demo (results such as extract's failed rows and "
                             "--json objects are still printed; also accepted after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is None or name == only:
            importlib.import_module(f"mixsig.commands.{name}").register(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    return parser


def _command(argv: list[str]) -> str:
    """The command ``argv`` names (its first word that is not an option: the global options take no value), or
    ``""`` when it names none."""
    first = next((a for a in argv if not a.startswith("-")), "")
    return first if first in SUMMARIES else ""


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = hoist_global_flags(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser(only=_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import logging

    level = logging.DEBUG if args.debug else (logging.WARNING if args.quiet else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("optuna", "matplotlib", "numcodecs", "zarr", "urllib3", "httpx", "fsspec", "asyncio", "botocore",
                  "aiobotocore", "s3fs", "boto3"):
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
