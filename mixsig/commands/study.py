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

    bar = tqdm(total=total, unit="trial", disable=True if disable else None, file=sys.stderr)

    def on_trial(study, trial):
        bar.update(1)
        try:
            bar.set_postfix_str(f"best {study.best_value:.4f}")
        except ValueError:
            pass

    return bar, on_trial


def run(args: argparse.Namespace) -> int:
    import optuna

    from mixsig.commands._util import print_json
    from mixsig.studies import join_study, run_study, study_summary

    # optuna resets its own logger to INFO when imported; one line per trial is the progress bar's job here
    optuna.logging.set_verbosity(optuna.logging.INFO if getattr(args, "debug", False) else optuna.logging.WARNING)
    cmd = args.study_command
    if cmd == "run":
        bar, on_trial = _progress(args.trials, args.json or args.quiet)
        try:
            summary = run_study(
                args.store, args.name, heads=args.heads, features=args.features, trials=args.trials,
                timeout=args.timeout, metric=args.metric, cv=args.cv, storage=args.storage, seed=args.seed,
                new=args.new, reeval_top=args.reeval_top, reeval_seeds=args.reeval_seeds,
                final=not args.no_final, threads=args.threads, on_trial=on_trial,
                allow_group_leak=args.allow_group_leak, allow_modality_mismatch=args.allow_modality_mismatch,
            )
        finally:
            bar.close()
    elif cmd == "worker":
        bar, on_trial = _progress(args.trials, args.json or args.quiet)
        try:
            ran = join_study(args.store, args.name, storage=args.storage, trials=args.trials,
                             timeout=args.timeout, threads=args.threads, on_trial=on_trial)
        finally:
            bar.close()
        summary = study_summary(args.store, args.name, storage=args.storage)
        summary["ran_here"] = ran
    else:
        summary = study_summary(args.store, args.name, storage=args.storage, top=args.top)
    if args.json:
        print_json(summary)
    else:
        print(render(summary))
    return 0


def render(summary: dict) -> str:
    """The text form of :func:`mixsig.studies.study_summary`."""
    from mixsig.cache import describe_collapse, describe_group_leak, describe_in_sample
    from mixsig.commands._util import table

    s = summary["settings"]
    lines = [
        f"study {summary['name']}  ({summary['storage']})",
        f"heads {','.join(s['heads'])}; metric {s['metric']}; " + (f"{s['cv']}-fold CV" if s.get("cv") else "val split")
        + f"; target {s['trials']} trials; {s['n_rows']} train/val rows; split {s['split_hash'][:12]}",
        "features: " + ", ".join(f"{m}={'|'.join(k)}" for m, k in s["features"].items()),
        "trials: " + (", ".join(f"{n} {k.lower()}" for k, n in sorted(summary["states"].items())) or "none"),
    ]
    if summary.get("excluded_rows"):
        lines.append("train/val rows left out, not done in a key: "
                     + ", ".join(f"{k}: {n}" for k, n in summary["excluded_rows"].items()))
    ov = summary.get("overrides") or {}
    if ov.get("group_leak"):
        lines.append(f"WARNING: group leak allowed (--allow-group-leak): {describe_group_leak(ov['group_leak'])}; "
                     "scores are inflated")
    for key, m in (ov.get("modality_mismatch") or {}).items():
        lines.append(f"WARNING: modality mismatch allowed (--allow-modality-mismatch): {m['used_as']}={key} holds "
                     f"{m['holds']} features")
    for key, entry in (summary.get("in_sample_keys") or {}).items():
        lines.append(f"WARNING: {describe_in_sample(key, entry)}")
    if "ran_here" in summary:
        lines.append(f"this worker ran {summary['ran_here']} trial(s)")
    failed = summary.get("failed") or {}
    if failed:
        lines.append(f"failed trials whose worker died: {', '.join(failed)} ({sorted(set(failed.values()))[0]})"
                     if len(set(failed.values())) == 1 else
                     "failed trials: " + "; ".join(f"{n} ({why})" for n, why in failed.items()))
    col = summary.get("collapsed") or {}
    if col.get("count"):
        shown = col["trials"][:20]
        lines += ["", f"collapsed trials: {col['count']} of {col['of_complete']} complete (their model predicts one "
                      "class or no better than chance on validation; re-evaluated last):"]
        lines += [f"  trial {t['number']} ({t['head']}, {t['modalities']}, {s['metric']} {t['value']:.4f}): {t['reason']}"
                  for t in shown]
        if col["count"] > len(shown):
            lines.append(f"  ... and {col['count'] - len(shown)} more (--json lists them all)")
    elif col:
        lines.append(f"collapsed trials: none of {col.get('of_complete', 0)} complete")
    if summary["best"]:
        rows = []
        for b in summary["best"]:
            p = dict(b["params"])
            head = p.pop("head", s["heads"][0])
            mods = p.pop("modalities", "+".join(s["features"]))
            hp = ", ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in p.items() if k.startswith(head + "."))
            rows.append([b["number"], f"{b['value']:.4f}" + (" (collapsed)" if b.get("collapsed") else ""), head,
                         mods, hp])
        lines += ["", "best trials:", table(rows, ["trial", s["metric"], "head", "modalities", "hyperparameters"])]
    imp = summary.get("importances") or {}
    if imp:
        lines += ["", "parameter importances (fANOVA):"]
        for label, vals in imp.items():
            if "unavailable" in vals:
                lines.append(f"  {label}: not available ({vals['unavailable']})")
            else:
                lines.append(f"  {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in list(vals.items())[:6]))
    res = summary.get("result")
    if res:
        lines += _render_result(res)
    run = summary.get("run")
    if run:
        lines.append(f"run {run['name']}: head {run['head']}, subsets {', '.join(run['subsets'])} (source {run['source']})")
        lines += _selection_lines(run)
    collapsed = (run or {}).get("collapsed") or (res or {}).get("collapsed") or []
    for entry in collapsed:
        lines.append(f"WARNING: {describe_collapse(entry)}")
    if collapsed:
        models = {(e["subset"], e["seed"]) for e in collapsed}
        lines.append(f"WARNING: {len(models)} models (subset x seed) of the winner's run {res['run'] if res else run['name']} "
                     "collapsed; their scores are not evidence of a signal")
    return "\n".join(lines)


def _selection_lines(run: dict) -> list[str]:
    """What selected the linked run, and its in-sample keys."""
    sel = run.get("selection_splits")
    if sel is None:
        lines = ["selected on: not recorded (a run written by an older mixsig)"]
    elif sel:
        lines = [f"selected on (trials scored, epochs chosen): {', '.join(sel)}; scores on these splits are "
                 "optimistic, report on the others (`mixsig report --split test`)"]
    else:
        lines = ["selected on: no split"]
    keys = list(run.get("in_sample_keys") or {})
    if keys:
        lines.append(f"WARNING: the winner's run {run['name']} was trained on in-sample key(s) {', '.join(keys)} "
                     "(train rows embedded by a model trained on them; fine-tune with `mixsig finetune ... --folds 5`)")
    return lines


def _render_result(res: dict) -> list[str]:
    from mixsig.commands._util import table

    metric = res["metric"]
    lines = ["", f"re-evaluated over seeds {res['seeds']} (ranking: {res.get('ranking', 'best mean')}):"]
    reeval = res.get("reeval")
    if reeval:
        rows = []
        for r in reeval:
            cfg = r["config"]
            coll = ", ".join(f"seed {c['seed']}" for c in r.get("collapsed_seeds") or []) or "-"
            rows.append([r["trial"], cfg["head"], "+".join(cfg["features"]), ", ".join(f"{v:.4f}" for v in r["scores"]),
                         f"{r['mean']:.4f}", _num(r.get("std")), _num(r.get("robust")), coll])
        lines.append(table(rows, ["trial", "head", "modalities", f"{metric} per seed", "mean", "std",
                                  "mean-std", "collapsed seeds"]))
    lines.append(f"winner trial {res['trial']} (val {metric} {res['val_mean']:.4f} ± {_num(res.get('val_std'))}"
                 + (f", robust {res['val_robust']:.4f}" if res.get("val_robust") is not None else "") + ")")
    for c in res.get("val_collapsed_seeds") or []:
        lines.append(f"WARNING: the winner collapsed on validation with seed {c['seed']}: {c['reason']}")
    test = res.get("test") or {}
    chosen = "+".join(res["config"]["features"])
    full = max(test, key=lambda k: k.count("+"), default=chosen)
    for sub in dict.fromkeys([chosen, full]):
        if sub in test:
            what = "the winner's subset" if sub == chosen else "all modalities"
            lines.append(f"test {metric} of {sub} ({what}): {test[sub]['mean']:.4f} ± {_num(test[sub].get('std'))} "
                         f"(per seed {', '.join(f'{v:.4f}' for v in test[sub]['per_seed'])})")
    if test:
        worst = min(test, key=lambda k: min(test[k]["per_seed"]))
        lines.append(f"lowest test {metric} of any subset x seed: {min(test[worst]['per_seed']):.4f} ({worst})")
    return lines


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
