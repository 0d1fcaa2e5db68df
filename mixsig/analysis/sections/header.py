"""The report's header: what was analysed (run, split, labels, exclusions, bootstrap), the notes that apply
to the whole report, and the warnings that make its numbers misleading (report.json ``warnings``)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from mixsig.analysis._context import AGGREGATION_NOTE, Context

#: The report's header lists at most this many collapsed models one by one (report.json lists all).
MAX_COLLAPSE_LINES = 20


def compute(ctx: Context) -> dict:
    inp, y = ctx.inp, ctx.y
    excl = ctx.exclusions
    if excl["analysed"] < excl["in_split"]:
        ctx.notes.append(f"{excl['in_split'] - excl['analysed']} row(s) of the split are left out "
                         f"(unlabelled: {excl['unlabelled']}; not predicted by some subset: "
                         f"{excl['not_predicted_by_subset']})")
    n_seeds = {name: int(p.shape[0]) for name, p in ctx.subsets.items()}
    if max(n_seeds.values()) == 1:
        ctx.notes.append("one seed: standard deviations over seeds are not defined and are left out")
    part = {
        "mixsig_report_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": {"name": inp.run_name, "source": inp.source, "head": inp.run_attrs.get("head"),
                "features": inp.run_attrs.get("features"), "modalities": list(inp.modalities),
                "subsets": list(ctx.subsets), "seeds": [int(s) if isinstance(s, (int, np.integer)) else s
                                                        for s in inp.seeds],
                "n_seeds": n_seeds, "classes": list(inp.classes)},
        "split": ctx.split or "all",
        "n_samples": int(ctx.rows.size),
        "label_counts": {c: int((y == k).sum()) for k, c in enumerate(inp.classes)},
        "exclusions": excl,
        "aggregation": AGGREGATION_NOTE,
        "media_root": str(inp.media_root) if inp.media_root else None,
        "bootstrap": {"n_boot": ctx.n_boot, "seed": ctx.seed, "level": 0.95, "interval": "percentile"},
    }
    never = {name: [inp.classes[k] for k in range(ctx.n_classes) if not (ctx.agg[name].pred == k).any()]
             for name in ctx.subsets}
    never = {k: v for k, v in never.items() if v}
    if never:
        ctx.notes.append("classes never predicted (their F1 is 0 and counts as such in macro-F1): "
                         + "; ".join(f"{k}: {', '.join(v)}" for k, v in never.items()))
    if len(set(y.tolist())) < 2:
        ctx.notes.append("only one class among the analysed labels: AUROC is not defined")
    part["warnings"] = run_warnings(inp, y, ctx.subsets, ctx.split, rows=ctx.rows)
    if part["warnings"]["selection_splits"] is None and inp.run_attrs.get("source") == "import":
        ctx.notes.append(f"run {inp.run_name!r} holds imported predictions: mixsig cannot know which rows selected "
                         "the model that made them (epochs, hyperparameters); if it was tuned on some of the "
                         "analysed rows, their scores are optimistic")
    elif part["warnings"]["selection_splits"] is None:
        ctx.notes.append(f"run {inp.run_name!r} does not record which splits selected it (attr selection_splits; "
                         "written by an older mixsig): runs of `mixsig train` and of studies chose their epochs "
                         "(and a study its trial) on val, so scores on val are optimistic")
    return part


def run_warnings(inp, y: np.ndarray, subsets: dict[str, np.ndarray], split, rows: np.ndarray | None = None) -> dict:
    """What makes the run's numbers misleading, for the top of the report (report.json ``warnings``).

    - ``collapsed``: the run's ``collapsed`` attr (``[{"subset", "seed", "split", "reason"}]``, see
      :func:`mixsig.heads.train_run`); for a run without that attr (written before the check, or by another
      writer) the report checks every subset x seed on the analysed rows itself (``collapsed_checked_by``:
      ``"run"`` or ``"report"``).
    - ``group_leak``: ``{"run": the leak allowed for the run (``mixsig train --allow-group-leak``) or None,
      "store": the store's leak (recorded by ``extract --allow-group-leak``, or found in its samples) or None}``.
    - ``modality_mismatch``: ``{key: {"used_as", "holds"}}``, from the run's attrs or the store's keys.
    - ``selection_splits``: the splits that selected the run (:func:`selection_splits_of`; None = not recorded)
      and ``selection_overlap``: ``{"splits", "rows", "why"}`` when analysed ``rows`` (indices into ``inp``'s rows;
      None = every row) lie in them, else None.
    - ``in_sample``: ``{key: {"folds", "train_rows", "encoder"}}``: fine-tuned keys the head was trained on whose
      train rows were embedded by a model trained on them (the run's ``in_sample_keys``, or found in the store).
    - ``messages``: the lines the report shows, loudly, under its title (empty for a clean run).
    """
    from mixsig.cache import describe_collapse, describe_group_leak, describe_in_sample
    from mixsig.metrics import collapse

    attrs = inp.run_attrs
    checks = inp.store_checks or {}
    if "collapsed" in attrs:
        collapsed = [dict(e) for e in (attrs.get("collapsed") or [])]
        checked_by = "run"
    else:
        collapsed, checked_by = [], "report"
        where = f"{split or 'all'} (checked by the report)"
        for name, p in subsets.items():
            for i in range(p.shape[0]):
                reason = collapse(y, p[i])
                if reason:
                    seed = inp.seeds[i] if i < len(inp.seeds) else i
                    collapsed.append({"subset": name, "seed": int(seed) if isinstance(seed, (int, np.integer))
                                      else seed, "split": where, "reason": reason})
    run_leak = attrs.get("group_leak") or None
    store_leak = checks.get("group_leak") or None
    mismatch = dict(attrs.get("modality_mismatch") or checks.get("modality_mismatch") or {})

    msgs: list[str] = []
    if collapsed:
        models = {(e.get("subset"), e.get("seed")) for e in collapsed}
        n_models = sum(int(p.shape[0]) for p in subsets.values())
        msgs.append(f"{len(models)} of {n_models} models (subset x seed) of run {inp.run_name!r} collapsed "
                    f"(one class predicted, or macro-F1 no better than chance): their metrics below are not "
                    f"evidence of a signal.")
        msgs.extend(f"Collapsed: {describe_collapse(e)}" for e in collapsed[:MAX_COLLAPSE_LINES])
        if len(collapsed) > MAX_COLLAPSE_LINES:
            msgs.append(f"... and {len(collapsed) - MAX_COLLAPSE_LINES} more collapsed (report.json "
                        f"warnings.collapsed lists them all).")
    if run_leak:
        msgs.append(f"Group leak allowed for this run (`mixsig train --allow-group-leak`): "
                    f"{_leak_text(run_leak, describe_group_leak)}. Scores may be inflated by leakage.")
    same = isinstance(store_leak, dict) and {k: v for k, v in store_leak.items() if k != "allowed_by"} == run_leak
    if store_leak and not same:
        if checks.get("group_leak_recorded_by_extract"):
            by = store_leak.get("allowed_by") if isinstance(store_leak, dict) else None
            how = f"allowed by `{by}`, recorded in the store" if by else \
                "recorded by `mixsig extract --allow-group-leak`"
        else:
            how = "found in the store's samples"
        msgs.append(f"The store's splits share groups ({how}): {_leak_text(store_leak, describe_group_leak)}. "
                    f"Scores may be inflated by leakage.")
    for key, mm in mismatch.items():
        msgs.append(f"Key {key} holds {mm.get('holds')} features but was used as {mm.get('used_as')} "
                    f"(`--allow-modality-mismatch`): subsets named {mm.get('used_as')} are not that modality.")
    selected = selection_splits_of(attrs)
    overlap = _selection_overlap(inp, selected, rows)
    if overlap:
        msgs.append(overlap["why"])
    in_sample = dict(attrs["in_sample_keys"] or {}) if "in_sample_keys" in attrs else \
        ({} if attrs.get("source") == "finetune" else dict(checks.get("in_sample_keys") or {}))
    msgs.extend(f"In-sample embeddings: {describe_in_sample(k, e)}." for k, e in in_sample.items())
    return {"collapsed": collapsed, "collapsed_checked_by": checked_by,
            "group_leak": {"run": run_leak, "store": store_leak}, "modality_mismatch": mismatch,
            "selection_splits": selected, "selection_overlap": overlap, "in_sample": in_sample, "messages": msgs}


def selection_splits_of(attrs: dict) -> list[str] | None:
    """The splits whose rows selected the run (epochs, early stopping, a study's trial): its ``selection_splits``
    attr; for a fine-tune run without it, ``["val"]`` when a model recorded a validation accuracy; else None."""
    if "selection_splits" in attrs:
        return list(attrs["selection_splits"] or [])
    if attrs.get("source") == "finetune" and isinstance(attrs.get("val_accuracy"), dict):
        return ["val"] if any(v is not None for v in attrs["val_accuracy"].values()) else []
    return None


def _selection_overlap(inp, selected: list[str] | None, rows) -> dict | None:
    """``{"splits", "rows", "why"}`` when analysed rows lie in the splits that selected the run, else None."""
    if not selected:
        return None
    analysed = inp.split if rows is None else inp.split[np.asarray(rows, np.int64)]
    hit = np.isin(analysed, selected)
    if not hit.any():
        return None
    splits = [sp for sp in selected if (analysed == sp).any()]
    rest = sorted(set(analysed.tolist()) - set(selected), key=lambda sp: ({"train": 0, "val": 1, "test": 2}.get(sp, 3), sp))
    study = inp.run_attrs.get("study") if isinstance(inp.run_attrs.get("study"), dict) else {}
    how = (f"study {study.get('name')!r} scored its trials on {'+'.join(study.get('scored_on') or ['val'])}"
           if study else "its epochs were chosen / it stopped early there")
    fix = f"`mixsig report STORE --run {inp.run_name} --split {'+'.join(rest) or 'test'}`"
    why = (f"{int(hit.sum())} of the {analysed.size} analysed rows are in {', '.join(splits)}, the split(s) that "
           f"selected this run ({how}; run attr selection_splits {selected}): its scores there are optimistic. "
           f"Analyse held-out rows only: {fix}.")
    return {"splits": splits, "rows": int(hit.sum()), "why": why}


def _leak_text(leak, describe) -> str:
    try:
        return describe(leak)
    except (KeyError, TypeError, AttributeError):  # a record of another shape: show it as it is
        return str(leak)


def blocks(report: dict, figures: dict) -> list[tuple]:
    run = report["run"]
    b: list[tuple] = [("h1", f"mixsig disagreement report — run {run['name']}")]
    for msg in (report.get("warnings") or {}).get("messages", []):
        b.append(("warn", msg))
    b.append(("p", f"Split **{report['split']}**: {report['n_samples']} samples analysed "
                   f"({', '.join(f'{k}: {v}' for k, v in report['label_counts'].items())}). "
                   f"Head: {run.get('head') or '–'}; modalities: {', '.join(run['modalities'])}; "
                   f"seeds: {', '.join(map(str, run['seeds'])) or '–'}; created {report['created']}; "
                   f"media root: {report.get('media_root') or '–'}."))
    b.append(("p", report["aggregation"]))
    for note in report["notes"]:
        b.append(("note", note))
    for part, why in report["skipped"].items():
        b.append(("skip", f"Skipped {part.replace('_', ' ')}: {why}."))
    return b


def figures(report: dict) -> dict:
    return {}
