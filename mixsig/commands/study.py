"""``mixsig study run|worker|show STORE --name NAME``: Optuna searches over the cache.

``run`` creates (or resumes) a study and searches; then re-evaluates the best configurations over several
seeds and trains the winner on every modality subset as run ``study-<name>``. ``worker`` joins a running study
from another process or machine. ``show`` prints best trials, parameter importances, trials by state and the
linked run. ``spaces`` prints the search space of every head (read from its declared parameter specs).

Building this parser imports neither numpy nor optuna: ``--metric`` choices come from :data:`mixsig.metrics.METRICS`
and the heads and their spaces from :data:`mixsig.studies.SPACES` (declared specs).
"""

from __future__ import annotations

import argparse
import sys

from mixsig.commands import SUMMARIES
from mixsig.commands._study_text import render
from mixsig.metrics import METRICS
from mixsig.studies import describe_spaces, list_spaces  # numpy-free: the spaces are declared specs


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="STORE", help="the feature store (folder or URL)")
    p.add_argument("--name", required=True, help="study name (unique within the storage)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: default STORE/.mixsig/studies.journal (journal file, safe for several local "
                        "processes); postgresql://user@host/db for workers on several machines (heartbeats, "
                        "dead workers' trials retried); sqlite:// only for a single `run` process (a second `run` on "
                        "the same database is refused, naming the one that holds it)")


def _search_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=None, metavar="S", help="stop this process' search after S seconds")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="threads per trial for torch and LightGBM (default 1: run more workers for parallelism)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help=SUMMARIES["study"],
        description=(
            "run: create (or resume) a study and search; then re-evaluate the best configurations over several "
            "seeds and train the winner on every modality subset as run study-NAME. worker: join a running study "
            "from another process or machine. show: best trials, parameter importances, trials by state and the "
            "linked run. check: find and repair damage in the study journal. spaces: the search space of every head. Studies live in STORE/.mixsig/studies.journal unless "
            "--storage names a PostgreSQL database."
        ),
    )
    sub = p.add_subparsers(dest="study_command", metavar="{run,worker,show,check,spaces}")
    _add_run(sub)
    _add_others(sub)
    p.set_defaults(func=_no_sub, _parser=p)


def _add_run(sub) -> None:
    r = sub.add_parser(
        "run", help="create or resume a study, search, and write the winner as a run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Search heads, their hyperparameters, the modality subset and (with --features text=K1|K2) the key per\n"
            "modality; score on the val split or with --cv K group-aware folds over train+val. Trials are pruned\n"
            "early (median of earlier trials of the same head, torch heads compared at the same tenth of their\n"
            "step budget). Every trial's model is checked for collapse (one class predicted, or no better than\n"
            "chance); collapsed trials are marked and re-evaluated last. Afterwards the best --reeval-top\n"
            "configurations are trained again over --reeval-seeds seeds; configurations with no collapsed seed\n"
            "come first, then the best mean - std over the seeds wins and is trained on every modality subset as\n"
            "run study-NAME, scored once on test (collapsed models of that run are warned and listed by show).\n"
            "Rerunning resumes the study; a store whose keys, split or done rows changed is refused (or --new\n"
            "starts NAME-2 beside it). Splits sharing a group (exit 3) and keys used as another modality (exit 2)\n"
            "are refused before any trial unless --allow-group-leak / --allow-modality-mismatch. A fine-tuned\n"
            "key whose train rows were embedded by a model trained on them (`mixsig finetune` without --folds K)\n"
            "is warned of (its trials learn from over-confident features) and listed by show. The run records\n"
            "the splits that selected it (selection_splits: val, or train+val with --cv); `mixsig report` warns\n"
            "when it analyses them.\n\n"
            "Search space per head:\n" + describe_spaces()
        ),
    )
    _common(r)
    r.add_argument("--heads", required=True, metavar="H1,H2",
                   help=f"heads to search, comma-separated, e.g. gated,lightgbm; heads with a search space: "
                        f"{', '.join(list_spaces())}")
    r.add_argument("--features", required=True, metavar="M=K[|K2],...",
                   help="keys per modality, e.g. text=K1|K2,audio=K3,video=K4 (| = the study picks one); each a "
                        "full key, a unique prefix (text.roberta-base) or the modality alone (text=text) when the "
                        "store holds one key of it; the study records the full keys")
    r.add_argument("--trials", type=int, default=100,
                   help="finished (complete + pruned) trials the study should reach, over all workers (default 100)")
    r.add_argument("--metric", default="macro_f1", choices=sorted(METRICS), help="objective (default macro_f1)")
    r.add_argument("--cv", type=int, default=None, metavar="K",
                   help="score by K-fold CV over train+val; folds never split a group")
    r.add_argument("--seed", type=int, default=0, help="sampler and training seed (default 0)")
    r.add_argument("--reeval-top", type=int, default=3, metavar="K", help="configurations re-evaluated (default 3)")
    r.add_argument("--reeval-seeds", type=int, default=3, metavar="S",
                   help="seeds for the re-evaluation and the final run (default 3)")
    r.add_argument("--new", action="store_true",
                   help="if NAME exists with other settings or data, start a new study NAME-2 beside it")
    r.add_argument("--no-final", action="store_true", help="search only: no re-evaluation, no run")
    r.add_argument("--allow-group-leak", action="store_true",
                   help="search even though groups of the store's samples appear in more than one split (scores "
                        "are inflated by the leak); recorded in the study and its run, shown by show and the report")
    r.add_argument("--allow-modality-mismatch", action="store_true",
                   help="use keys under another modality than the one they hold (e.g. audio=<a text key>); "
                        "recorded in the study and its run, shown by show and the report")
    _search_opts(r)
    r.set_defaults(func=run, study_command="run")


def _add_others(sub) -> None:
    w = sub.add_parser(
        "worker", help="join an existing study as one more worker (settings read from the study)",
        description="Run trials of study NAME in this process until it reaches its target trial count (or --trials "
                    "more, or --timeout). Settings come from the study; the store must still match them. "
                    "Refuses SQLite storage (not safe for parallel workers).",
    )
    _common(w)
    w.add_argument("--trials", type=int, default=None,
                   help="run this many trials here (default: until the study reaches its target trial count)")
    _search_opts(w)
    w.set_defaults(func=run, study_command="worker")

    s = sub.add_parser("show", help="best trials, parameter importances, trials by state, in-sample keys, the "
                                    "linked run and the splits that selected it")
    _common(s)
    s.add_argument("--top", type=int, default=5, help="best trials to list (default 5)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run, study_command="show")

    c = sub.add_parser(
        "check", help="find (and with --fix repair) damage in the study journal and trials of dead workers",
        description="Check STORE/.mixsig/studies.journal (or the journal file of --storage journal:PATH) for: a torn last "
                    "record (a write cut short by a full disk or a killed process; readers ignore it and the next "
                    "write removes it), a line that is not a record (e.g. a record written onto a torn tail by an "
                    "older mixsig; no study of the journal loads until it is repaired), and RUNNING trials whose "
                    "worker process on this host is gone. --fix repairs each under the journal's lock: torn bytes "
                    "are removed (a record written onto them is kept) and dead trials are marked FAIL. Exit 0 when "
                    "clean or repaired, 1 with problems left.",
    )
    c.add_argument("store", metavar="STORE", help="the feature store whose .mixsig/studies.journal is checked")
    c.add_argument("--storage", default=None, metavar="journal:PATH",
                   help="check this journal file instead of STORE/.mixsig/studies.journal")
    c.add_argument("--fix", action="store_true",
                   help="repair what is found (stop the study processes first when a line is damaged: the journal "
                        "is rewritten)")
    c.add_argument("--json", action="store_true", help="print the problems as one JSON list")
    c.set_defaults(func=_check, study_command="check")

    sp = sub.add_parser("spaces", help="the search space of every head: searched ranges and fixed parameters",
                        description="One line per head: each searched hyperparameter with its range ([low, high] "
                                    "floats, low..high integers, {choices}; log = searched on a log scale) and the "
                                    "parameters fixed in every trial. Optuna names them <head>.<param>.")
    sp.set_defaults(func=_spaces, study_command="spaces")


def _check(args) -> int:
    from mixsig.commands._util import print_json
    from mixsig.errors import UsageError
    from mixsig.studies import check_journals

    target = args.store
    if args.storage is not None:
        if not args.storage.startswith("journal:"):
            raise UsageError(f"--storage {args.storage!r}: `study check` checks journal files only; pass "
                             "--storage journal:PATH, or omit it to check STORE/.mixsig/studies.journal")
        target = args.storage[len("journal:"):]
    problems = check_journals(target, fix=args.fix)
    if args.json:
        print_json(problems)
    else:
        for p in problems:
            print(f"{p['kind']:18s} {p['where']}: {p['message']}")
        state = ("clean" if not problems else f"{len(problems)} problem(s) repaired" if args.fix
                 else f"{len(problems)} problem(s); `--fix` repairs them")
        print(f"study check: {state}")
    return 0 if args.fix or not problems else 1


def _spaces(args) -> int:
    print(describe_spaces())
    return 0


def _no_sub(args) -> int:
    args._parser.print_help(sys.stderr)
    return 2


def _progress(total: int | None, disable: bool):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="trial", desc="search", disable=True if disable else None, file=sys.stderr)

    def on_trial(study, trial):
        bar.update(1)
        try:
            bar.set_postfix_str(f"best {study.best_value:.4f}")
        except ValueError:
            pass

    return bar, on_trial


def _reeval_progress(disable: bool):
    """``(bars, on_reeval(done, total))``: the re-evaluation's bar, opened on its first call."""
    from tqdm import tqdm

    bars: list = []

    def on_reeval(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="model", desc="re-evaluate", disable=True if disable else None,
                             file=sys.stderr))
        bars[0].n = done
        bars[0].refresh()

    return bars, on_reeval


def _interrupted(args) -> int:
    """One line for a Ctrl-C during `study run`/`worker` (no Optuna traceback); exit 130."""
    print(f"mixsig study {args.study_command}: interrupted; the running trial is marked FAIL (user attr "
          f"fail_reason), finished trials are kept; rerun the same command to resume", file=sys.stderr)
    return 130


def run(args: argparse.Namespace) -> int:
    import optuna

    from mixsig.commands._util import print_json
    from mixsig.studies import join_study, run_study, study_summary

    # optuna resets its own logger to INFO when imported; one line per trial is the progress bar's job here
    optuna.logging.set_verbosity(optuna.logging.INFO if getattr(args, "debug", False) else optuna.logging.WARNING)
    cmd = args.study_command
    if cmd in ("run", "worker"):
        from tqdm.contrib.logging import logging_redirect_tqdm

        try:
            with logging_redirect_tqdm():  # INFO/WARNING lines print above the bars instead of breaking them
                summary = _search(args, run_study, join_study, study_summary)
        except KeyboardInterrupt:
            return _interrupted(args)
    else:
        summary = study_summary(args.store, args.name, storage=args.storage, top=args.top)
    if args.json:
        print_json(summary)
    elif not args.quiet:
        print(render(summary))
    if cmd == "worker" and summary.get("new_best"):
        print(summary["new_best"], file=sys.stderr)
    return 0


def _search(args, run_study, join_study, study_summary) -> dict:
    """`study run` / `study worker` with their progress bars; the summary dict."""
    quiet = args.json or args.quiet
    bar, on_trial = _progress(args.trials, quiet)
    if args.study_command == "run":
        reeval_bars, on_reeval = _reeval_progress(quiet)
        try:
            return run_study(
                args.store, args.name, heads=args.heads, features=args.features, trials=args.trials,
                timeout=args.timeout, metric=args.metric, cv=args.cv, storage=args.storage, seed=args.seed,
                new=args.new, reeval_top=args.reeval_top, reeval_seeds=args.reeval_seeds,
                final=not args.no_final, threads=args.threads, on_trial=on_trial,
                allow_group_leak=args.allow_group_leak, allow_modality_mismatch=args.allow_modality_mismatch,
                on_reeval=lambda done, total: (bar.close(), on_reeval(done, total)),
            )
        finally:
            bar.close()
            for b in reeval_bars:
                b.close()
    try:
        ran = join_study(args.store, args.name, storage=args.storage, trials=args.trials,
                         timeout=args.timeout, threads=args.threads, on_trial=on_trial)
    finally:
        bar.close()
    summary = study_summary(args.store, args.name, storage=args.storage)
    summary["ran_here"] = ran
    summary["new_best"] = _worker_new_best(args, summary)
    return summary


def _worker_new_best(args, summary: dict) -> str | None:
    """The line a worker ends with when the study's best trial is newer than its winner run: the run is only
    updated by `study run` (it re-evaluates and retrains)."""
    best = summary["best"][0] if summary.get("best") else None
    res = summary.get("result") or {}
    if best is None or res.get("trial") == best["number"] or best["number"] in {r["trial"] for r in
                                                                                 res.get("reeval") or []}:
        return None
    run = res.get("run") or f"study-{summary['name']}"
    storage = f" --storage {args.storage}" if args.storage else ""
    return (f"mixsig study worker: trial {best['number']} is the study's new best ({best['value']:.4f}); the "
            f"winner run {run} is not updated by a worker: rerun `mixsig study run {args.store} --name "
            f"{summary['name']}{storage} ...` with the study's --heads/--features (it resumes, re-evaluates and "
            f"retrains the winner)")
