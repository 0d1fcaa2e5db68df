"""``analyse``: run every analysis on one split of a run and collect every number in one dict."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import numpy as np

from mixsig.analysis import _core, _descriptors
from mixsig.analysis._data import AnalysisInput, input_from_run, input_from_store, split_names
from mixsig.errors import UsageError

log = logging.getLogger(__name__)

SNIPPET_CHARS = 80
#: The report's header lists at most this many collapsed models one by one (report.json lists all).
MAX_COLLAPSE_LINES = 20


def analyse(store_or_run, run=None, split: str | None = "test", *, media_root=None, descriptors=None,
            n_boot: int = 1000, seed: int = 0, top_k: int = 10, media_descriptors: bool = True) -> dict:
    """Every analysis of PAPER.md on one run, for the rows of ``split``.

    store_or_run: a store URL/path or open ``FeatureStore`` (then ``run`` is the run's name), a
    ``mixsig.cache.Samples`` table (then ``run`` is a ``mixsig.cache.Run``), or an
    :class:`AnalysisInput` (then ``run`` is ignored).
    split: ``"test"``, ``"val+test"``, ..., or ``"all"``/``None`` for every row.
    descriptors: extra per-sample columns ``{name: [N] float}`` over every row of the samples table.
    Returns the report dict (JSON-ready except ``result["samples"]``, the per-sample columns).

    Example::

        result = analyse("cache.zarr", "gated-5seeds", split="val+test")
        write_report(result, "report/")
    """
    if isinstance(store_or_run, AnalysisInput):
        inp = store_or_run
        if descriptors:
            inp.descriptors.update({k: np.asarray(v, np.float64) for k, v in descriptors.items()})
        if media_root is not None:
            inp.media_root = media_root
    elif hasattr(store_or_run, "ids") and hasattr(store_or_run, "classes"):
        inp = input_from_run(store_or_run, run, media_root=media_root, descriptors=descriptors)
    else:
        if not isinstance(run, str):
            raise UsageError("analyse(store, run): `run` must be the name of a run in the store")
        inp = input_from_store(store_or_run, run, media_root=media_root, descriptors=descriptors)
    return analyse_input(inp, split, n_boot=n_boot, seed=seed, top_k=top_k, media_descriptors=media_descriptors)


def _select_rows(inp: AnalysisInput, split) -> tuple[np.ndarray, dict]:
    names = split_names(split)
    if names is None:
        in_split = np.ones(len(inp.ids), dtype=bool)
    else:
        have = list(dict.fromkeys(inp.split.tolist()))
        unknown = [s for s in names if s not in have]
        if unknown:
            raise UsageError(f"split {unknown[0]!r} has no rows; the store's splits are {have} "
                             "(use e.g. --split test, --split val+test or --split all)")
        in_split = np.isin(inp.split, names)
    labelled = inp.labels >= 0
    predicted = np.ones(len(inp.ids), dtype=bool)
    not_pred = {}
    for name, p in inp.probs.items():
        ok = np.isfinite(p).all(axis=(0, 2))
        not_pred[name] = int((in_split & labelled & ~ok).sum())
        predicted &= ok
    rows = np.flatnonzero(in_split & labelled & predicted)
    excl = {"in_split": int(in_split.sum()), "unlabelled": int((in_split & ~labelled).sum()),
            "not_predicted_by_subset": not_pred, "analysed": int(rows.size)}
    return rows, excl


def analyse_input(inp: AnalysisInput, split: str | None = "test", *, n_boot: int = 1000, seed: int = 0,
                  top_k: int = 10, media_descriptors: bool = True) -> dict:
    """:func:`analyse` on an :class:`AnalysisInput` (plain arrays)."""
    notes = list(inp.notes)
    skipped: dict[str, str] = {}
    rows, exclusions = _select_rows(inp, split)
    if rows.size == 0:
        raise UsageError(f"split {split!r} has no labelled rows predicted by every subset of run "
                         f"{inp.run_name!r}; exclusions: {exclusions}")
    if exclusions["analysed"] < exclusions["in_split"]:
        notes.append(f"{exclusions['in_split'] - exclusions['analysed']} row(s) of the split are left out "
                     f"(unlabelled: {exclusions['unlabelled']}; not predicted by some subset: "
                     f"{exclusions['not_predicted_by_subset']})")
    y = inp.labels[rows]
    n_classes = len(inp.classes)
    full = inp.full_subset
    if full not in inp.probs:
        raise UsageError(f"run {inp.run_name!r} has no full subset {full!r}; its subsets are {list(inp.probs)}")
    every_row = rows.size == len(inp.ids)
    subsets = {name: (p if every_row else p[:, rows, :]) for name, p in inp.probs.items()}
    agg = {name: _core.aggregate_seeds(p) for name, p in subsets.items()}
    unimodal = [m for m in inp.modalities if m in subsets and m != full]
    n_seeds = {name: int(p.shape[0]) for name, p in subsets.items()}
    if max(n_seeds.values()) == 1:
        notes.append("one seed: standard deviations over seeds are not defined and are left out")

    result: dict = {
        "mixsig_report_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": {"name": inp.run_name, "source": inp.source, "head": inp.run_attrs.get("head"),
                "features": inp.run_attrs.get("features"), "modalities": list(inp.modalities),
                "subsets": list(subsets), "seeds": [int(s) if isinstance(s, (int, np.integer)) else s
                                                    for s in inp.seeds],
                "n_seeds": n_seeds, "classes": list(inp.classes)},
        "split": split or "all",
        "n_samples": int(rows.size),
        "label_counts": {c: int((y == k).sum()) for k, c in enumerate(inp.classes)},
        "exclusions": exclusions,
        "aggregation": _core.AGGREGATION_NOTE,
        "media_root": str(inp.media_root) if inp.media_root else None,
        "bootstrap": {"n_boot": n_boot, "seed": seed, "level": 0.95, "interval": "percentile"},
    }
    never = {name: [inp.classes[k] for k in range(n_classes) if not (agg[name].pred == k).any()]
             for name in subsets}
    never = {k: v for k, v in never.items() if v}
    if never:
        notes.append("classes never predicted (their F1 is 0 and counts as such in macro-F1): "
                     + "; ".join(f"{k}: {', '.join(v)}" for k, v in never.items()))
    if len(set(y.tolist())) < 2:
        notes.append("only one class among the analysed labels: AUROC is not defined")

    result["warnings"] = run_warnings(inp, y, subsets, split)

    # 1. metrics
    result["metrics"] = _core.metrics_section(y, subsets, agg, n_boot=n_boot, seed=seed)

    # 2. disagreement
    per_sample: dict = {}
    if unimodal:
        dis, cols = _core.disagreement_section(y, unimodal, full, agg, list(inp.classes))
        result["disagreement"] = dis
        per_sample.update(cols)
        if len(unimodal) < 3:
            notes.append(f"lone-modality following needs three or more unimodal models; this run has "
                         f"{len(unimodal)} ({', '.join(unimodal)})")
    else:
        result["disagreement"] = None
        skipped["disagreement"] = "the run has no unimodal subset to compare with the full model"
        n = rows.size
        per_sample.update({"n_disagree": np.zeros(n, int), "category": np.full(n, "agreement", dtype=object),
                           "lone_follow": np.full(n, "", dtype=object), "followed": np.full(n, "", dtype=object)})
    category = per_sample["category"]

    # 3-4. annotator uncertainty and the join
    votes = inp.votes[rows]
    has_votes = votes.shape[1] > 0 and bool((votes >= 0).any())
    entropy = np.full(rows.size, np.nan)
    share = np.full(rows.size, np.nan)
    if has_votes:
        unc, ucols = _core.uncertainty_section(votes, n_classes, n_boot=n_boot, seed=seed)
        result["uncertainty"] = unc
        entropy, share = ucols["entropy"], ucols["majority_share"]
        per_sample["n_votes"] = ucols["n_votes"]
        if unimodal:
            result["join"] = _core.join_section(entropy, share, per_sample["n_disagree"], category,
                                                n_boot=n_boot, seed=seed)
        else:
            result["join"] = None
            skipped["join"] = skipped["disagreement"]
    else:
        why = ("the samples table has no `votes` (the manifest had no votes column)" if votes.shape[1] == 0
               else f"no sample of split {split!r} has a vote")
        result["uncertainty"] = None
        result["join"] = None
        skipped["uncertainty"] = why
        skipped["join"] = why
    per_sample["entropy"] = entropy
    per_sample["majority_share"] = share

    # 5. dominance, 6. confidence
    if unimodal:
        result["dominance"] = _core.dominance_section(unimodal, full, agg, category, per_sample["followed"],
                                                      inp.gates, inp.attention, rows)
        if result["dominance"]["weights"] is None:
            notes.append(f"the head of run {inp.run_name!r} has no gate or attention weights; dominance "
                         "reports the followed modality and its confidence only")
        conf, p_true = _core.confidence_section(y, unimodal, full, agg, category)
        result["confidence"] = conf
    else:
        result["dominance"] = result["confidence"] = None
        skipped["dominance"] = skipped["confidence"] = skipped["disagreement"]
        _, p_true = _core.confidence_section(y, [], full, agg, category)

    # 7. human study
    conds = {c: v[rows] for c, v in inp.votes_by_condition.items() if v.shape[1] > 0 and (v[rows] >= 0).any()}
    if conds:
        result["human_study"] = _core.human_section(y, conds, inp.modalities, n_classes, n_boot=n_boot, seed=seed)
        if result["human_study"]["all_vs_best_single"] is None:
            notes.append("human study: no `votes@all` condition next to single conditions, so the "
                         "all-vs-best-single comparison is skipped")
    else:
        result["human_study"] = None
        skipped["human_study"] = "the samples table has no `votes@<condition>` columns with votes in this split"

    # 8. descriptors
    desc: dict[str, np.ndarray] = {}
    if media_descriptors:
        mcols, mnotes = _descriptors.media_descriptors(inp.audio[rows], inp.start[rows], inp.end[rows],
                                                       inp.media_root, inp.video[rows])
        notes.extend(mnotes)
        desc.update(mcols)
    else:
        desc["duration_s"] = np.where(np.isfinite(inp.start[rows]) & np.isfinite(inp.end[rows]),
                                      inp.end[rows] - inp.start[rows], np.nan)
        notes.append("prosody not computed (media descriptors turned off)")
    desc["word_count"] = _descriptors.word_count(inp.text[rows])
    for name, col in inp.descriptors.items():
        desc[name] = col[rows]
    usable = {k: v for k, v in desc.items() if np.isfinite(v).sum() >= 2 and np.nanstd(v) > 0}
    unusable = sorted(set(desc) - set(usable))
    if unusable:
        notes.append(f"descriptors without variation or values in this split, left out: {', '.join(unusable)}")
    groups = {}
    if unimodal:
        groups["disagreement vs agreement"] = (category != "agreement", category == "agreement")
        groups["misled vs others"] = (category == "misled", category != "misled")
    if n_classes == 2:
        groups[f"label {inp.classes[1]} vs {inp.classes[0]}"] = (y == 1, y == 0)
    else:
        for k, c in enumerate(inp.classes):
            groups[f"label {c} vs rest"] = (y == k, y != k)
    result["descriptors"] = {"available": {k: _core._describe(v) for k, v in usable.items()},
                             **_descriptors.compare(usable, groups)}

    # top K
    result["top"] = _top(inp, rows, y, agg, full, unimodal, per_sample, top_k)
    result["notes"] = notes
    result["skipped"] = skipped

    # per-sample columns (samples.csv and plots; not part of report.json)
    cols: dict = {"id": inp.ids[rows], "split": inp.split[rows], "label": np.array(inp.classes, dtype=object)[y]}
    cls = np.array(inp.classes, dtype=object)
    for name in subsets:
        cols[f"pred[{name}]"] = cls[agg[name].pred]
        cols[f"conf[{name}]"] = agg[name].mean_probs.max(axis=1)
    for name in [*unimodal, full]:  # confidence in the true label, as in the confidence plot
        cols[f"p_true[{name}]"] = p_true[name]
    cols["category"] = category
    cols["n_disagree"] = per_sample["n_disagree"]
    cols["followed"] = per_sample["followed"]
    cols["lone_follow"] = per_sample["lone_follow"]
    cols["entropy"] = entropy
    cols["majority_share"] = share
    for k, v in usable.items():
        cols[f"desc[{k}]"] = v
    cols["text"] = np.array([t[:SNIPPET_CHARS] for t in inp.text[rows]], dtype=object)
    result["samples"] = cols
    return result


def run_warnings(inp: AnalysisInput, y: np.ndarray, subsets: dict[str, np.ndarray], split) -> dict:
    """What makes the run's numbers misleading, for the top of the report (report.json ``warnings``).

    - ``collapsed``: the run's ``collapsed`` attr (``[{"subset", "seed", "split", "reason"}]``, see
      :func:`mixsig.heads.train_run`); for a run without that attr (written before the check, or by another
      writer) the report checks every subset x seed on the analysed rows itself (``collapsed_checked_by``:
      ``"run"`` or ``"report"``).
    - ``group_leak``: ``{"run": the leak allowed for the run (``mixsig train --allow-group-leak``) or None,
      "store": the store's leak (recorded by ``extract --allow-group-leak``, or found in its samples) or None}``.
    - ``modality_mismatch``: ``{key: {"used_as", "holds"}}``, from the run's attrs or the store's keys.
    - ``messages``: the lines the report shows, loudly, under its title (empty for a clean run).
    """
    from mixsig.cache import describe_collapse, describe_group_leak
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
    return {"collapsed": collapsed, "collapsed_checked_by": checked_by,
            "group_leak": {"run": run_leak, "store": store_leak}, "modality_mismatch": mismatch, "messages": msgs}


def _leak_text(leak, describe) -> str:
    try:
        return describe(leak)
    except (KeyError, TypeError, AttributeError):  # a record of another shape: show it as it is
        return str(leak)


def _top(inp, rows, y, agg, full, unimodal, per_sample, k) -> dict:
    """The K most confidently misled samples and the K most ambiguous ones (highest vote entropy, then
    most disagreeing modalities)."""
    cls = inp.classes
    cat = per_sample["category"]
    ent = per_sample["entropy"]
    full_conf = agg[full].mean_probs.max(axis=1)

    def row(i):
        d = {"id": str(inp.ids[rows[i]]), "label": cls[y[i]], "full_pred": cls[agg[full].pred[i]],
             "full_conf": float(full_conf[i]), "category": str(cat[i]), "n_disagree": int(per_sample["n_disagree"][i]),
             "followed": str(per_sample["followed"][i]) or None,
             "entropy": float(ent[i]) if np.isfinite(ent[i]) else None,
             "unimodal_preds": {m: cls[agg[m].pred[i]] for m in unimodal},
             "text": str(inp.text[rows[i]])[:SNIPPET_CHARS]}
        return d

    mis = np.flatnonzero(cat == "misled")
    mis = mis[np.argsort(-full_conf[mis], kind="stable")][:k]
    order_key = np.where(np.isfinite(ent), ent, -1.0)
    amb = np.lexsort((-per_sample["n_disagree"], -order_key))[:k]
    if not np.isfinite(ent).any():
        amb = np.lexsort((-full_conf, -per_sample["n_disagree"]))[:k]
    return {"k": k, "misled": [row(i) for i in mis], "ambiguous": [row(i) for i in amb],
            "ambiguous_ranking": ("vote entropy, then number of disagreeing modalities" if np.isfinite(ent).any()
                                  else "number of disagreeing modalities (no votes)")}
