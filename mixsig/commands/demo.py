"""``mixsig demo``: the whole pipeline, offline, on the built-in demo corpus."""

from __future__ import annotations

import contextlib
import os
import sys
import time

from mixsig.commands import SUMMARIES


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help=SUMMARIES["demo"],
        description="Generate the demo corpus (text, WAV audio, MP4 video, simulated annotators), validate it, "
                    "extract all three modalities with tiny local encoders, fine-tune the text encoder briefly "
                    "(3 folds, so train rows are embedded out of fold), run an Optuna study over gated and "
                    "LightGBM heads (trials scored on val), and write the disagreement report on the held-out "
                    "test split. "
                    "Rerunning with the same --out reuses the cache and the study and only re-renders the report. "
                    "Nothing is downloaded.")
    p.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    p.add_argument("--rows", type=int, default=None, help="corpus size (default: 480)")
    p.add_argument("--trials", type=int, default=None, help="study trials (default: 16; --trials 40 searches longer)")
    p.add_argument("--seed", type=int, default=0, help="corpus and training seed (default: 0)")
    p.add_argument("--no-finetune", action="store_true", help="skip the fine-tuning stage")
    p.add_argument("--json", action="store_true",
                   help="print only the result (stages, report, findings, store, next commands) as one JSON object on "
                        "stdout; the stage lines go to stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import logging

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not args.debug:  # the demo speaks in stage lines; library logs only when something is wrong
        logging.getLogger("mixsig").setLevel(logging.WARNING)
        import optuna
        import transformers

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    from mixsig.commands._util import print_json
    from mixsig.demo.pipeline import DemoConfig, run_demo

    defaults = DemoConfig()
    cfg = DemoConfig(rows=args.rows or defaults.rows, trials=args.trials or defaults.trials, seed=args.seed,
                     finetune=not args.no_finetune)
    t0 = time.perf_counter()
    quiet = bool(getattr(args, "quiet", False))
    say = _printer(sys.stderr if args.json else sys.stdout, quiet)

    def show(stage) -> None:
        say(f"[{stage.name:>14s}] {stage.seconds:6.1f} s  {stage.what}")

    say(f"mixsig demo: {cfg.rows} rows, {cfg.trials} trials, seed {cfg.seed}, into {args.out}")
    with _stdout_to_stderr(args.json):  # --json: stdout holds the one JSON object, whatever a library prints
        result = run_demo(args.out, cfg, on_stage=show)
    total = time.perf_counter() - t0
    result["total_seconds"] = round(total, 2)
    say(f"done in {total:.1f} s. Report: {os.path.abspath(result['report'])}")
    for line in result["findings"]:
        say(f"  - {line}")
    say(f"store: {os.path.abspath(result['store'])}\nnext (ready to paste):")
    for line in result["next"]:
        say(f"  {line}")
    if args.json:
        print_json(result)
    sys.stdout.flush()
    return 0


def _printer(stream, quiet: bool):
    def say(line: str) -> None:
        if not quiet:
            print(line, file=stream, flush=True)

    return say


@contextlib.contextmanager
def _stdout_to_stderr(on: bool):
    """While ``on``: Python's stdout and (when it is a real file) file descriptor 1 write to stderr, so native
    libraries' prints (LightGBM) cannot land between the JSON object's lines."""
    if not on:
        yield
        return
    sys.stdout.flush()
    fd, err = _fileno(sys.stdout), _fileno(sys.stderr)
    saved = os.dup(fd) if fd is not None and err is not None else None
    try:
        if saved is not None:
            os.dup2(err, fd)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


def _fileno(stream) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
