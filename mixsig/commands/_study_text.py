"""The text form of a study summary (``mixsig study run|worker|show`` without ``--json``)."""

from __future__ import annotations


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
        picks = any(len(k) > 1 for k in s["features"].values())  # the study picks a key: show which
        rows = []
        for b in summary["best"]:
            p = dict(b["params"])
            head = p.pop("head", s["heads"][0])
            mods = p.pop("modalities", "+".join(s["features"]))
            hp = ", ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in p.items() if k.startswith(head + "."))
            keys = [", ".join(f"{m}={k}" for m, k in (b.get("features") or {}).items()
                              if len(s["features"].get(m, ())) > 1) or "-"] if picks else []
            rows.append([b["number"], f"{b['value']:.4f}" + (" (collapsed)" if b.get("collapsed") else ""), head,
                         mods, *keys, hp])
        header = ["trial", s["metric"], "head", "modalities", *(["keys picked"] if picks else []), "hyperparameters"]
        lines += ["", "best trials:", table(rows, header)]
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
