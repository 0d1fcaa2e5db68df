"""``train_run``: train a head on every non-empty modality subset × seed over a feature store and
write the predictions as ``runs/<name>`` (see docs/INTERFACES.md).

Rows: only rows done in **every** modality's key are used (the same rows for every subset, so
subsets compare like with like); the others are excluded with a count that is logged and recorded
in the run's attrs (``rows``), and their probabilities stay NaN. The head trains on the ``train``
split's labelled rows, selects its epoch / stops early on ``val`` (trained without validation if the
store has no usable ``val`` rows), and predicts every used row of every split.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from mixsig.errors import HeadError, StoreError, UsageError
from mixsig.metrics import collapse
from mixsig.heads._batched import fit_heads
from mixsig.heads._dynamics import DEFAULT_OBSERVERS
from mixsig.heads._layers import gather_rows, layer_use
from mixsig.heads._missing import missing_modality_observer
from mixsig.heads._fitrecord import FitRecord, stack_seeds
from mixsig.heads._registry import get_head, head_class
from mixsig.heads._stream_args import check_batches, check_streamable, parse_memory
from mixsig.heads._streaming import (DEFAULT_STREAM_MEMORY, block_rows_for, blockwise, fit_streamed, predict_and_weights,
                                     stream_features)
from mixsig.heads._runargs import _class_weight, check_seeds, parse_seeds, soft_label_matrix  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT = "train", "val", "test"
#: Splits each fitted model is checked for collapse on (see :func:`mixsig.metrics.collapse`).
COLLAPSE_SPLITS = (VAL_SPLIT, TEST_SPLIT)


def modality_subsets(modalities: list[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset, smallest first, each in the run's modality order."""
    return [c for r in range(1, len(modalities) + 1) for c in itertools.combinations(modalities, r)]


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
        # [n, D] as float32; [n, L, D] (heads._layers) in its stored dtype: a float16 key never copied to float32
        view = store.read(key, split=None, only_done=True, dtype=None if len(store.key_shape(key)) == 3 else "float32")
        flat, step = view.X.reshape(len(view.X), -1), max(1, (1 << 18) // max(int(np.prod(view.X.shape[1:])), 1))
        bad = np.zeros(len(flat), bool)  # checked in blocks of rows (256 KiB temporaries), not one full-size one
        for s in range(0, len(flat), step):
            bad[s:s + step] = ~np.isfinite(flat[s:s + step]).all(axis=1)
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


def _check_names(features: dict, name) -> None:
    """Modality names (they become parts of the store's paths) and the run's name, before any work."""
    from mixsig.cache import check_modality_name, check_run_name

    if not features:
        raise UsageError("features must name at least one modality=key.")
    for m in features:
        check_modality_name(m, f"features {m}={features[m]}")
    if name is not None:
        check_run_name(name, "name")


def _check_store(store, features: dict[str, str], allow_modality_mismatch: bool, allow_group_leak: bool):
    """Refuse (or warn of, where allowed) keys used as another modality and groups crossing splits; returns
    ``(modality_mismatch, group_leak)`` for the run's record."""
    mismatch = store.check_modalities(features, allow=allow_modality_mismatch)
    for key, mm in mismatch.items():
        log.warning("key %s holds %s features but is used as %s (allowed: --allow-modality-mismatch)",
                    key, mm["holds"], mm["used_as"])
    leak = store.check_group_leak(allow_group_leak, "mixsig train")
    if leak:
        from mixsig.cache import describe_group_leak

        log.warning("%s; training anyway (allowed: --allow-group-leak), results may be inflated",
                    describe_group_leak(leak))
    return mismatch, leak


def warn_in_sample(store, keys) -> dict:
    """:func:`mixsig.cache.in_sample_keys` of ``keys``, each logged as a warning (record attr ``mixsig_in_sample``;
    ``mixsig train`` prints them as ``WARNING:`` lines instead)."""
    from mixsig.cache import describe_in_sample, in_sample_keys

    found = in_sample_keys(store, keys)
    for key, entry in found.items():
        log.warning("%s", describe_in_sample(key, entry), extra={"mixsig_in_sample": True})
    return found


def selection_splits(n_val: int, fit_info: dict, params: dict) -> list[str]:
    """``[VAL_SPLIT]`` when some fit chose its epoch or stopped early on the ``n_val`` validation rows (a torch head's
    ``best_epoch``; LightGBM's ``best_iteration`` unless its resolved ``params`` turn early stopping off), else
    ``[]`` (no val rows; logistic regression; LightGBM with ``early_stopping_rounds=0``)."""
    stops = params.get("early_stopping_rounds", 1) != 0
    used = any(f.get("best_epoch") is not None or (stops and f.get("best_iteration") is not None)
               for fits in fit_info.values() for f in fits)
    return [VAL_SPLIT] if n_val and used else []


@dataclass
class _TrainData:
    """The rows a run uses (``used``: done in every key, sorted) and what the fits take from them: ``X``
    {modality: [len(used), D]}, ``y`` labels, ``tr``/``va`` positions (into ``used``) of the labelled train /
    val rows, ``q_tr`` soft labels of ``tr`` (or None), ``check`` {split: positions} checked for collapse."""

    n: int
    used: np.ndarray
    X: dict
    y: np.ndarray
    tr: np.ndarray
    va: np.ndarray
    q_tr: np.ndarray | None
    no_votes: int
    not_done: dict
    check: dict

    stream: int | None = None  # stream_memory of a streamed run (X holds heads._streaming.StoreRows), else None

    @classmethod
    def load(cls, store, features: dict[str, str], soft_labels: bool, stream: int | None = None) -> "_TrainData":
        samples = store.samples
        N = len(samples)
        if stream:
            X, used, not_done = stream_features(store, features, stream)  # nothing read whole: heads._streaming
        else:
            views, used, not_done = _load_features(store, features)
            X = {m: views[m].X if np.array_equal(views[m].rows, used) else  # every row read is used: no copy
                 gather_rows(views[m].X, np.searchsorted(views[m].rows, used), store.provenance(k).get("dtype"))
                 for m, k in features.items()}  # [N, L, D] float16 keys held as float16 (heads._layers)
        if used.size < N:
            log.info("%d of %d rows excluded: not done in every key (%s)", N - used.size, N,
                     ", ".join(f"{m}: {k} not done" for m, k in not_done.items()))
        labelled = samples.label[used] >= 0
        split_of = samples.split[used]
        tr = np.flatnonzero((split_of == TRAIN_SPLIT) & labelled)
        va = np.flatnonzero((split_of == VAL_SPLIT) & labelled)
        if tr.size < 2:
            raise HeadError(f"Only {tr.size} labelled '{TRAIN_SPLIT}' rows are done in every key of {features}; "
                            f"extract the missing rows (`mixsig cache info`) or check the manifest's splits.")
        if va.size == 0:
            log.warning("no labelled '%s' rows: training without epoch selection / early stopping", VAL_SPLIT)
        q_tr, no_votes = (soft_label_matrix(samples, used[tr]) if soft_labels else (None, 0))
        if soft_labels and no_votes:
            log.info("%d of %d training rows have no votes; they train on their gold label", no_votes, tr.size)
        check = {sp: np.flatnonzero((split_of == sp) & labelled) for sp in COLLAPSE_SPLITS}
        return cls(N, used, X, samples.label[used], tr, va, q_tr, no_votes, not_done, check, stream)


def _fit_subsets(data: _TrainData, head: str, params: dict, seeds: list[int], n_classes: int, progress,
                 observers=()):
    """Fit ``head`` on every subset x seed; returns ``({subset: RunSubset}, fits, collapsed)``.

    ``observers``: callables ``observer(rec: FitRecord) -> {path: array} | None`` run after each fit; each returned
    array is one seed's value, stacked over the seeds into ``RunSubset.extra[path]`` ``[S, ...]`` (NaN for a seed
    that returned none), so analyses that need the fitted model (saved heads, missing-modality robustness,
    training dynamics, layer weights) add to the run without changing this loop."""
    from mixsig.cache import RunSubset, describe_collapse, subset_name

    if data.stream:  # a batch must fit a window of the widest subset: refused before any fit
        check_batches(head, params, data.X, int(data.tr.size), data.stream)
    subsets = modality_subsets(list(data.X))
    total, step = len(subsets) * len(seeds), 0
    out: dict[str, RunSubset] = {}
    fit_info: dict[str, list] = {}
    collapsed: list[dict] = []
    tr, va, used, S, N = data.tr, data.va, data.used, len(seeds), data.n
    for sub in subsets:
        sname = subset_name(sub)
        probs = np.full((S, N, n_classes), np.nan, np.float32)
        gates = attention = None
        info = []
        extra_seeds: dict[str, dict[int, np.ndarray]] = {}
        fit = partial(fit_streamed, memory=data.stream) if data.stream else fit_heads  # seeds batched: _batched.py
        fitted = fit(head, params, {m: data.X[m][tr] for m in sub}, data.y[tr],
                     {m: data.X[m][va] for m in sub} if va.size else None, data.y[va] if va.size else None,
                     data.q_tr, seeds, n_classes)
        for s_i, (seed, h) in enumerate(zip(seeds, fitted)):
            Xs = {m: data.X[m] for m in sub}
            blocks = block_rows_for(Xs, getattr(h.config, "eval_batch_size", 8192), data.stream or 0)
            # in memory: one call each; streamed: block by block, one read for both
            both = blockwise(partial(predict_and_weights, h), Xs, blocks)
            p_used = both.pop("probs")
            probs[s_i, used] = p_used
            rec = FitRecord(head=h, subset=sub, subset_name=sname, seed_index=s_i, seed=seed, n_seeds=S, X=Xs,
                            data=data, probs=p_used)
            for observer in observers:
                for path, value in (observer(rec) or {}).items():
                    extra_seeds.setdefault(path, {})[s_i] = np.asarray(value, np.float32)
            for sp, rows in data.check.items():
                reason = collapse(data.y[rows], probs[s_i, used[rows]]) if rows.size else None
                if reason:
                    entry = {"subset": sname, "seed": int(seed), "split": sp, "reason": reason}
                    collapsed.append(entry)
                    log.warning("%s", describe_collapse(entry), extra={"mixsig_collapse": True})
            w = both or None
            if w:
                if gates is None:
                    gates = np.full((S, N, len(sub)), np.nan, np.float32)
                    attention = np.full((S, N, len(sub)), np.nan, np.float32)
                gates[s_i, used] = w["gates"]
                attention[s_i, used] = w["attention"]
            info.append({"seed": seed, "best_epoch": getattr(h, "best_epoch_", None),
                         "best_iteration": getattr(h, "best_iteration_", None),
                         **layer_use(h, sub), **({"stream_windows": h.stream_windows_} if data.stream else {})})
            step += 1
            if progress is not None:
                progress(step, total, f"{sname} seed {seed}")
        out[sname] = RunSubset(probs=probs, gates=gates, attention=attention,
                               extra={path: stack_seeds(vals, S) for path, vals in extra_seeds.items()})
        fit_info[sname] = info
    return out, fit_info, collapsed


def _stream_memory(head: str, store, features: dict, stream: bool, stream_memory) -> int | None:
    """The bytes a streamed run holds (None: not streamed), after refusing what streaming cannot train."""
    if not stream:
        return None
    check_streamable(head, store, features)
    return DEFAULT_STREAM_MEMORY if stream_memory is None else parse_memory(stream_memory)


def train_run(store, head: str, features: dict[str, str], *, seeds=(0,), params: dict | None = None,
              name: str | None = None, soft_labels: bool = False, class_weight=None,
              progress: Callable[[int, int, str], None] | None = None, overwrite: bool = False,
              allow_group_leak: bool = False, allow_modality_mismatch: bool = False, observers=(), save_heads=False,
              stream: bool = False, stream_memory=None):
    """Train ``head`` on every non-empty subset of ``features``' modalities for each seed; write the run.

    ``store``: a :class:`~mixsig.cache.FeatureStore` opened ``"r+"`` or a store URL.
    ``features``: ``{modality: key}`` in the run's modality order, each key its full name, a unique prefix or the
    modality alone (:meth:`~mixsig.cache.FeatureStore.resolve_key`; the run records full keys); a key holding another modality than the one
    it is used as raises :class:`UsageError` unless ``allow_modality_mismatch``. ``seeds``: a list of distinct
    ints >= 0 (``[42]`` for one seed, ``list(range(5))`` for five; an int is refused, see :func:`check_seeds`).
    Groups of the store's samples in more than one split raise :class:`~mixsig.errors.GroupLeak` (exit 3)
    unless ``allow_group_leak``.
    ``params``: head hyperparameters. ``soft_labels``: train on the annotators' vote shares
    (``samples.votes``; rows without votes keep their gold label). ``class_weight``: ``"balanced"`` or
    ``{class name or index: weight}``. ``progress(done, total, what)`` is called after each fit.
    ``name`` defaults to ``<head>-<12 hex of the run's configuration>``.

    Writes ``runs/<name>`` with ``probs [S, N, C]`` per subset (NaN rows = excluded), ``gates`` and
    ``attention [S, N, M]`` for heads that have them, and attrs (head, params, features, modalities,
    seeds, classes, split_hash, metrics {subset: {split: {metric: {mean, std, per_seed}}}}, rows,
    source "train", created, mixsig_version, and the warnings the report repeats:
    ``collapsed`` — ``[{"subset", "seed", "split", "reason"}]`` for every model that collapsed
    (:func:`mixsig.metrics.collapse`) on ``val`` or ``test``, ``[]`` when none (logged as warnings; the run
    is written anyway); ``group_leak`` — the store's leak record allowed for this run, or None;
    ``modality_mismatch`` — ``{key: {"used_as", "holds"}}`` allowed for this run, ``{}`` when none;
    ``selection_splits`` — ``["val"]`` when val chose the epochs / stopped early (:func:`selection_splits`);
    ``in_sample_keys`` — fine-tuned keys made without folds (:func:`warn_in_sample`), ``{}`` when none).
    ``observers``: callables run after every fit (:class:`FitRecord`), after the default ones (``layer_weights/<m>``,
    ``dynamics/*``: :mod:`mixsig.heads._dynamics`; the full subset's ``missing/<set>/probs``: :mod:`mixsig.heads._missing`);
    the arrays they return are written with the
    run as ``runs/<name>/subsets/<subset>/<path>`` ``[S, ...]`` (``Run.subsets[sub].extra``).
    ``save_heads``: keep every fitted head in the store (``runs/<name>/heads/<subset>/<seed>/``, attr ``saved_heads``;
    ``store.load_heads(name, mixsig.heads.load_head)`` reads them, ``mixsig predict`` applies them).
    ``stream``: keys read window by window, within ``stream_memory`` bytes (default 1G): :mod:`mixsig.heads._streaming`.
    Returns the :class:`~mixsig.cache.Run`.
    """
    from mixsig.cache import Run, RunRecord, open_store, sha256_of, subset_metrics

    store = open_store(store, mode="r+") if isinstance(store, str) or hasattr(store, "__fspath__") else store
    _check_names(features, name)  # none, a bad modality or run name: UsageError
    # prefixes, the modality alone -> full keys (recorded); unknown: StoreError listing the keys
    features = store.resolve_features(dict(features), error=StoreError)
    seeds = check_seeds(seeds)
    samples = store.samples
    N = len(samples)
    params = dict(params or {})
    if class_weight is not None:
        params["class_weight"] = _class_weight(class_weight, tuple(samples.classes))
    head_class(head)  # unknown head -> HeadError listing the valid ones
    resolved = get_head(head, **params).get_params()
    mismatch, leak = _check_store(store, features, allow_modality_mismatch, allow_group_leak)
    data = _TrainData.load(store, features, soft_labels, _stream_memory(head, store, features, stream, stream_memory))
    in_sample = warn_in_sample(store, features.values())
    t0 = time.perf_counter()
    saver = store.head_saver() if save_heads else None
    out, fit_info, collapsed = _fit_subsets(data, head, params, seeds, len(samples.classes), progress,
                                            [*DEFAULT_OBSERVERS, missing_modality_observer, *observers] + ([saver] if saver else []))
    seconds = time.perf_counter() - t0
    predicted = np.zeros(N, bool)
    predicted[data.used] = True
    config = {"head": head, "params": resolved, "features": dict(features), "seeds": seeds,
              "soft_labels": bool(soft_labels), "split_hash": store.split_hash()}
    record = RunRecord(
        name=name or f"{head}-{sha256_of(config)[:12]}", head=head, params=resolved, features=dict(features),
        modalities=list(features), seeds=seeds, classes=samples.classes, split_hash=store.split_hash(),
        metrics={sname: subset_metrics(samples, rs.probs, predicted) for sname, rs in out.items()},
        source="train", soft_labels=bool(soft_labels), class_weight=resolved.get("class_weight"),
        rows={"total": N, "used": int(data.used.size), "excluded": int(N - data.used.size),
              "not_done": data.not_done, "train": int(data.tr.size), "val": int(data.va.size),
              "train_without_votes": data.no_votes},
        fits=fit_info, train_seconds=round(seconds, 3), collapsed=collapsed, group_leak=leak,
        modality_mismatch=mismatch, selection_splits=selection_splits(data.va.size, fit_info, resolved),
        in_sample_keys=in_sample)
    store.write_run(record, out, overwrite=overwrite)
    saver and saver.write(record.name)  # the heads after the run; its attr saved_heads last
    log.info("wrote run %s: %d subsets x %d seeds in %.1f s", record.name, len(out), len(seeds), seconds)
    saved = {"saved_heads": True} if saver else {}
    return Run(name=record.name, attrs=dict(record.to_attrs(), complete=True, **saved), subsets=out)
