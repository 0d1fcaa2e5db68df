"""``mixsig demo``: the whole pipeline, offline, on the built-in demo corpus."""

from __future__ import annotations

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
    p.add_argument("--trials", type=int, default=None, help="study trials (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="corpus and training seed (default: 0)")
    p.add_argument("--no-finetune", action="store_true", help="skip the fine-tuning stage")
    p.add_argument("--json", action="store_true", help="print the stage summary as JSON at the end")
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

    def show(stage) -> None:
        print(f"[{stage.name:>14s}] {stage.seconds:6.1f} s  {stage.what}", flush=True)

    print(f"mixsig demo: {cfg.rows} rows, {cfg.trials} trials, seed {cfg.seed}, into {args.out}", flush=True)
    result = run_demo(args.out, cfg, on_stage=show)
    total = time.perf_counter() - t0
    result["total_seconds"] = round(total, 2)
    print(f"done in {total:.1f} s. Report: {os.path.abspath(result['report'])}")
    for line in result["findings"]:
        print(f"  - {line}")
    print(f"store: {os.path.abspath(result['store'])}\nnext (ready to paste):")
    for line in result["next"]:
        print(f"  {line}")
    if args.json:
        print_json(result)
    sys.stdout.flush()
    return 0
