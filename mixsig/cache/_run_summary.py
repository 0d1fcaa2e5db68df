"""What a run's attrs report about it: per-split metrics of a subset, and the one-line warnings (collapsed
models, in-sample fine-tuned keys) that ``mixsig train``, ``mixsig study show`` and the report repeat."""

from __future__ import annotations

import numpy as np

from mixsig.errors import StoreError


#: The order of the splits in a run's metrics: train, val, test, then the others by name.
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def subset_metrics(samples, probs: np.ndarray, predicted: np.ndarray) -> dict:
    """One subset's entry of a run's ``metrics``: ``{split: aggregate([point_metrics(y, probs[s]) per seed])}``
    (:mod:`mixsig.metrics`; one seed: std None) over the labelled rows of each split that have probabilities
    (``predicted`` [N] bool), splits in :data:`SPLIT_ORDER`; a split without such rows is left out.
    ``probs``: [S, N, C]. What ``train_run`` and ``finetune`` both record."""
    from mixsig.metrics import aggregate, point_metrics

    out = {}
    for split in sorted(samples.splits, key=lambda x: (SPLIT_ORDER.get(x, 3), x)):
        rows = np.flatnonzero((samples.split == split) & (samples.label >= 0) & predicted)
        if rows.size:
            out[split] = aggregate([point_metrics(samples.label[rows], p[rows].astype(np.float64)) for p in probs])
    return out


def describe_collapse(entry: dict) -> str:
    """One line naming a collapsed model of a run's ``collapsed`` attr (``{"subset", "seed", "split", "reason"}``):
    ``"<subset> seed <seed> collapsed on <split>: <reason>"``. ``mixsig train`` prefixes it with ``WARNING: ``;
    the report and ``mixsig study show`` print the same line."""
    return (f"{entry.get('subset', '?')} seed {entry.get('seed', '?')} collapsed on {entry.get('split', '?')}: "
            f"{entry.get('reason') or 'no reason recorded'}")


def in_sample_keys(store, keys) -> dict:
    """The fine-tuned keys among ``keys`` whose labelled train rows were embedded by a model trained on those same
    rows (``mixsig finetune`` without ``--folds K``, K >= 2): ``{key: {"folds", "train_rows", "encoder"}}``
    (``train_rows``: train rows the key's array ``fold`` marks -1, the all-train model). Keys not fine-tuned, or
    fine-tuned with folds, are left out; a head trained on such a key learns from over-confident features."""
    samples, out = store.samples, {}
    train = (samples.split == "train") & (samples.label >= 0)
    for key in dict.fromkeys(keys):
        ft = ((store.provenance(key) or {}).get("extra") or {}).get("finetune")
        if not isinstance(ft, dict):
            continue
        folds = int((ft.get("config") or {}).get("folds") or 1)
        try:
            fold = np.asarray(store.read_array(key, "fold"))
            n = int((train & (fold < 0)).sum())
        except StoreError:  # a key written before the `fold` array: every train row came from the all-train model
            n = int(train.sum()) if folds < 2 else 0
        if n:
            out[key] = {"folds": folds, "train_rows": n, "encoder": ft.get("base_encoder")}
    return out


def describe_in_sample(key: str, entry: dict) -> str:
    """One line naming an in-sample key (an :func:`in_sample_keys` entry) and the fix; the CLI prefixes it with
    ``WARNING: ``, ``mixsig study show`` and the report show the same line."""
    return (f"key {key}: {entry.get('train_rows', '?')} train rows were embedded by the fine-tuned model trained on "
            f"those same rows (folds {entry.get('folds', 1)}), so a head trained on them learns from over-confident "
            f"features and its val/test scores drop; fine-tune again with `mixsig finetune ... --folds 5` "
            f"(out-of-fold train embeddings) and train on the new key")
