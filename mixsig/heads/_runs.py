"""``train_run``: train a head on every non-empty modality subset × seed over a feature store and
write the predictions as ``runs/<name>`` (see DESIGN.md and docs/INTERFACES.md).

Rows: only rows done in **every** modality's key are used (the same rows for every subset, so
subsets compare like with like); the others are excluded with a count that is logged and recorded
in the run's attrs (``rows``), and their probabilities stay NaN. The head trains on the ``train``
split's labelled rows, selects its epoch / stops early on ``val`` (trained without validation if the
store has no usable ``val`` rows), and predicts every used row of every split.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import time
from typing import Callable

import numpy as np

from mixsig.errors import HeadError, UsageError
from mixsig.metrics import aggregate, point_metrics
from mixsig.heads._registry import get_head, head_class

log = logging.getLogger(__name__)

TRAIN_SPLIT, VAL_SPLIT = "train", "val"
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def modality_subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, smallest first, each in the run's modality order."""
    return [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]


def parse_seeds(seeds) -> list[int]:
    """``5`` → [0..4]; ``"42,43"`` or ``[42, 43]`` → those seeds."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise UsageError(f"The number of seeds must be >= 1; got {seeds}.")
        return list(range(seeds))
    if isinstance(seeds, str):
        parts = [p.strip() for p in seeds.split(",") if p.strip()]
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise UsageError(f"--seeds takes a count (5) or a comma list (42,43,44); got {seeds!r}.") from None
        return list(range(vals[0])) if len(vals) == 1 and "," not in seeds else vals
    vals = [int(s) for s in seeds]
    if not vals or len(set(vals)) != len(vals):
        raise UsageError(f"seeds must be a non-empty list of distinct integers; got {seeds!r}.")
    return vals


def soft_label_matrix(samples, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """``[len(rows), C]`` vote shares of ``rows``; rows without votes get their one-hot gold label.
    Returns the matrix and how many rows had no votes."""
    C = len(samples.classes)
    counts = samples.vote_counts()[rows].astype(np.float64)
    tot = counts.sum(axis=1)
    q = np.zeros((rows.size, C))
    has = tot > 0
    q[has] = counts[has] / tot[has, None]
    gold = samples.label[rows]
    no = np.flatnonzero(~has)
    q[no, gold[no]] = 1.0
    return q, int(no.size)


def _class_weight(cw, classes: tuple[str, ...]):
    if cw is None or cw == "balanced":
        return cw
    if isinstance(cw, dict):
        out = {}
        for k, v in cw.items():
            if isinstance(k, str) and k in classes:
                out[classes.index(k)] = float(v)
            else:
                try:
                    out[int(k)] = float(v)
                except (TypeError, ValueError):
                    raise UsageError(f"class_weight key {k!r} is neither a class of the store {list(classes)} "
                                     f"nor a class index.") from None
        return out
    raise UsageError(f"class_weight must be 'balanced' or a dict {{class: weight}}; got {cw!r}.")


def _load_features(store, features: dict[str, str]):
    """Read each key in full; returns ({modality: FeatureView}, sorted common rows, per-modality not done)."""
    from mixsig.errors import StoreError

    N = len(store.samples)
    views, not_done = {}, {}
    common = np.ones(N, dtype=bool)
    keys = set(store.keys())
    for m, key in features.items():
        if key not in keys:
            same = sorted(k for k in keys if k.split(".")[0] == m)
            raise StoreError(f"No feature key {key!r} in {store.url} (for modality {m!r}). "
                             f"Keys of that modality: {same or sorted(keys) or 'none; run `mixsig extract` first'}.")
        view = store.read(key, split=None, only_done=True)
        if view.X.ndim != 2:
            raise HeadError(f"Key {key} holds [N, L, D] features {view.X.shape}; heads take pooled [N, D] "
                            f"features. Extract with --pooling cls or mean.")
        if view.modality and view.modality != m:
            log.warning("key %s holds modality %r but is used as %r", key, view.modality, m)
        bad = ~np.isfinite(view.X).all(axis=1)
        if bad.any():
            rows = view.rows[bad]
            raise StoreError(f"Key {key}: {rows.size} rows are marked done but hold NaN/Inf (first: row {rows[0]}, "
                             f"id {str(store.samples.ids[rows[0]])!r}); run `mixsig cache verify` and re-extract them.")
        mask = np.zeros(N, dtype=bool)
        mask[view.rows] = True
        not_done[m] = int(N - mask.sum())
        common &= mask
        views[m] = view
    return views, np.flatnonzero(common).astype(np.int64), not_done


def train_run(store, head: str, features: dict[str, str], *, seeds=(0,), params: dict | None = None,
              name: str | None = None, soft_labels: bool = False, class_weight=None,
              progress: Callable[[int, int, str], None] | None = None, overwrite: bool = False):
    """Train ``head`` on every non-empty subset of ``features``' modalities for each seed; write the run.

    ``store``: a :class:`~mixsig.cache.FeatureStore` opened ``"r+"`` or a store URL.
    ``features``: ``{modality: key}`` in the run's modality order. ``seeds``: list of ints (or a count).
    ``params``: head hyperparameters. ``soft_labels``: train on the annotators' vote shares
    (``samples.votes``; rows without votes keep their gold label). ``class_weight``: ``"balanced"`` or
    ``{class name or index: weight}``. ``progress(done, total, what)`` is called after each fit.
    ``name`` defaults to ``<head>-<12 hex of the run's configuration>``.

    Writes ``runs/<name>`` with ``probs [S, N, C]`` per subset (NaN rows = excluded), ``gates`` and
    ``attention [S, N, M]`` for heads that have them, and attrs (head, params, features, modalities,
    seeds, classes, split_hash, metrics {subset: {split: {metric: {mean, std, per_seed}}}}, rows,
    source "train", created, mixsig_version). Returns the :class:`~mixsig.cache.Run`.
    """
    from mixsig import __version__
    from mixsig.cache import Run, RunSubset, open_store, sha256_of, subset_name

    if isinstance(store, (str,)) or hasattr(store, "__fspath__"):
        store = open_store(store, mode="r+")
    if not features:
        raise UsageError("features must name at least one modality=key.")
    seeds = parse_seeds(seeds)
    samples = store.samples
    classes = tuple(samples.classes)
    C, N = len(classes), len(samples)
    params = dict(params or {})
    if class_weight is not None:
        params["class_weight"] = _class_weight(class_weight, classes)
    head_class(head)  # unknown head -> HeadError listing the valid ones
    resolved = get_head(head, **params).get_params()
    modalities = list(features)

    views, used, not_done = _load_features(store, features)
    if used.size < N:
        log.info("%d of %d rows excluded: not done in every key (%s)", N - used.size, N,
                 ", ".join(f"{m}: {k} not done" for m, k in not_done.items()))
    pos = {m: np.searchsorted(v.rows, used) for m, v in views.items()}
    X_used = {m: views[m].X[pos[m]] for m in modalities}
    labelled = samples.label[used] >= 0
    split_of = samples.split[used]
    tr = np.flatnonzero((split_of == TRAIN_SPLIT) & labelled)
    va = np.flatnonzero((split_of == VAL_SPLIT) & labelled)
    if tr.size < 2:
        raise HeadError(f"Only {tr.size} labelled '{TRAIN_SPLIT}' rows are done in every key of {features}; "
                        f"extract the missing rows (`mixsig cache info`) or check the manifest's splits.")
    if va.size == 0:
        log.warning("no labelled '%s' rows: training without epoch selection / early stopping", VAL_SPLIT)
    y_used = samples.label[used]
    q_tr, no_votes = (soft_label_matrix(samples, used[tr]) if soft_labels else (None, 0))
    if soft_labels and no_votes:
        log.info("%d of %d training rows have no votes; they train on their gold label", no_votes, tr.size)

    subsets = modality_subsets(modalities)
    total, step = len(subsets) * len(seeds), 0
    out: dict[str, RunSubset] = {}
    fit_info: dict[str, list] = {}
    t0 = time.perf_counter()
    for sub in subsets:
        sname = subset_name(sub)
        probs = np.full((len(seeds), N, C), np.nan, np.float32)
        gates = attention = None
        info = []
        for s_i, seed in enumerate(seeds):
            h = get_head(head, **params)
            h.fit({m: X_used[m][tr] for m in sub}, y_used[tr],
                  X_val={m: X_used[m][va] for m in sub} if va.size else None,
                  y_val=y_used[va] if va.size else None,
                  soft_labels=q_tr, seed=seed, n_classes=C)
            Xs = {m: X_used[m] for m in sub}
            probs[s_i, used] = h.predict_proba(Xs)
            w = h.modality_weights(Xs)
            if w:
                if gates is None:
                    gates = np.full((len(seeds), N, len(sub)), np.nan, np.float32)
                    attention = np.full((len(seeds), N, len(sub)), np.nan, np.float32)
                gates[s_i, used] = w["gates"]
                attention[s_i, used] = w["attention"]
            info.append({"seed": seed, "best_epoch": getattr(h, "best_epoch_", None),
                         "best_iteration": getattr(h, "best_iteration_", None)})
            step += 1
            if progress is not None:
                progress(step, total, f"{sname} seed {seed}")
        out[sname] = RunSubset(probs=probs, gates=gates, attention=attention)
        fit_info[sname] = info
    seconds = time.perf_counter() - t0

    metrics = {}
    for sname, rs in out.items():
        metrics[sname] = {}
        for split in sorted(samples.splits, key=lambda x: (_SPLIT_ORDER.get(x, 3), x)):
            rows = used[(split_of == split) & labelled]
            if rows.size == 0:
                continue
            per_seed = [point_metrics(samples.label[rows], rs.probs[i, rows].astype(np.float64))
                        for i in range(len(seeds))]
            metrics[sname][split] = aggregate(per_seed)

    config = {"head": head, "params": resolved, "features": dict(features), "seeds": seeds,
              "soft_labels": bool(soft_labels), "split_hash": store.split_hash()}
    name = name or f"{head}-{sha256_of(config)[:12]}"
    attrs = {
        "head": head, "params": resolved, "features": dict(features), "modalities": modalities,
        "seeds": seeds, "classes": list(classes), "split_hash": store.split_hash(), "metrics": metrics,
        "soft_labels": bool(soft_labels), "class_weight": resolved.get("class_weight"),
        "rows": {"total": N, "used": int(used.size), "excluded": int(N - used.size), "not_done": not_done,
                 "train": int(tr.size), "val": int(va.size), "train_without_votes": no_votes},
        "fits": fit_info, "train_seconds": round(seconds, 3),
        "source": "train", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mixsig_version": __version__,
    }
    store.write_run(name, attrs, out, overwrite=overwrite)
    log.info("wrote run %s: %d subsets x %d seeds in %.1f s", name, len(out), len(seeds), seconds)
    return Run(name=name, attrs=dict(attrs, complete=True), subsets=out)
