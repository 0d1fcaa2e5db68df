"""Small helpers shared by the command modules (terminal output only; no heavy imports)."""

from __future__ import annotations

import json
import sys
from typing import Any, Sequence

from mixsig.features import parse_features  # noqa: F401  (the one --features parser; train uses it from here)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str, allow_nan=True)
    sys.stdout.write("\n")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in header]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); None -> (0, 1)."""
    from mixsig.errors import UsageError

    if not text:
        return (0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like I/N (e.g. 0/4); got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard I/N needs 0 <= I < N; got {text!r}")
    return (i, n)


def add_encoder_arguments(p) -> None:
    """The options `extract` and `finetune` share: manifest, store, encoder, pooling and preprocessing.
    ``--modality`` and ``--pooling`` offer what the registries hold when the parser is built (light modules:
    no numpy or torch), so a registered pooling or input adapter is usable from the command line."""
    from mixsig.extract import POOLINGS, describe_poolings
    from mixsig.modalities import INPUTS

    p.add_argument("manifest", metavar="MANIFEST", help="the manifest file (.csv or .jsonl)")
    p.add_argument("--store", required=True, help="the store folder (created from the manifest if missing)")
    p.add_argument("--modality", required=True, choices=INPUTS.names(),
                   help="the manifest column to encode, one of the modalities with an input adapter: %(choices)s")
    p.add_argument("--encoder", required=True, metavar="NAME_OR_PATH",
                   help="hub name (e.g. roberta-base) or a local folder saved with save_pretrained")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit (the resolved commit is recorded)")
    p.add_argument("--pooling", default="cls", choices=POOLINGS.names(),
                   help=describe_poolings().replace("%", "%%") + " (default: cls)")
    p.add_argument("--layers", default="last",
                   help="last (rows [N, D]), all, or comma-separated hidden-state indices (rows [N, L, D]); default last")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16"),
                   help="stored dtype; float16 also computes under autocast on CUDA (non-finite rows retried in float32)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="audio/video: first seconds of each segment (10)")
    p.add_argument("--no-peak-normalize", action="store_true", help="audio: do not divide by the peak amplitude")
    p.add_argument("--frames", type=int, default=None, help="video: frames per clip (default: the model's, else 16)")
    p.add_argument("--text-max-length", type=int, default=None, help="text: max tokens (default: the tokenizer's, <= 512)")
    p.add_argument("--classes", default=None, help="the label set in order, comma-separated (as for validate)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads for this command, restored after (default: 1 on machines of <= 2 cores, "
                        "where a second thread contends with decoding, else the number of cores). On an idle "
                        "2-core machine, 2 made audio extraction 1.2-1.3x faster and video slower (benchmarks/README.md)"
                        "; the last bits of the embeddings can differ between thread counts")
    p.add_argument("--allow-group-leak", action="store_true",
                   help="go on although groups of the manifest cross splits (e.g. to reproduce a published split); "
                        "without it such a manifest is refused with exit code 3. The leak and this command line are "
                        "printed and recorded in the store's attr group_leak (and a fine-tune run's attrs), not in "
                        "the key: the same features keep the same key")


def add_input_trust_arguments(p) -> None:
    """``--allow-outside-paths`` and ``--trust-remote-code``, for the commands that read media and load encoders."""
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="accept media paths that are absolute or lead out of the manifest's folder (.., symlinks); "
                        "by default they are refused (exit 3) and no file outside the folder is opened or hashed")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the model's own code (auto_map + *.py in its folder or hub repo; never without this "
                        "flag; only for code you trust). Its *.py files are hashed into the key, so edited code "
                        "gives a new key")


def command_line(args) -> str:
    """The command line of ``args`` with every option spelled out (``mixsig CMD MANIFEST --opt value ...``): what
    is recorded as ``allowed_by`` of an allowed group leak."""
    import shlex

    skip = {"func", "command", "debug", "quiet", "json", "manifest"}
    words = ["mixsig", str(args.command), str(args.manifest)]
    for dest, value in vars(args).items():
        if dest in skip or value is None or value is False:
            continue
        words.append("--" + dest.replace("_", "-"))
        if value is not True:
            words.append(str(value))
    return shlex.join(words)


def threads_setting(args) -> int:
    """``--threads`` or its default (:func:`mixsig.extract.default_threads`); >= 1 or :class:`UsageError`."""
    from mixsig.errors import UsageError
    from mixsig.extract import default_threads

    if args.threads is None:
        return default_threads()
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1; got {args.threads}")
    return int(args.threads)


def encoder_settings(args) -> tuple:
    """(Preprocess, classes) from the options of :func:`add_encoder_arguments`."""
    from mixsig.extract import Preprocess

    preprocess = Preprocess(max_seconds=args.max_seconds, peak_normalize=not args.no_peak_normalize,
                            frames=args.frames, text_max_length=args.text_max_length)
    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
    return preprocess, classes
