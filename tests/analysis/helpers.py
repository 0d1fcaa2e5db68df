"""Builders for the analysis tests: a planted run where the ambiguous samples are known."""

from __future__ import annotations

from itertools import combinations

import numpy as np

from mixsig.analysis import AnalysisInput


def one_hot_probs(pred, n_classes, conf=0.8):
    """``[n, C]`` probabilities with ``conf`` on ``pred`` and the rest spread evenly."""
    pred = np.asarray(pred)
    p = np.full((len(pred), n_classes), (1 - conf) / (n_classes - 1))
    p[np.arange(len(pred)), pred] = conf
    return p


def planted(n=600, seed=0, n_seeds=3, modalities=("text", "audio", "video"), dominant="audio", n_classes=2,
            votes=True, n_annotators=5, ambiguous_share=0.25):
    """A run where a known ``ambiguous`` subset has split annotator votes and a confidently wrong
    ``dominant`` modality that every subset containing it follows; elsewhere models are right with
    random independent slips, annotators agree.

    Returns ``(AnalysisInput, ambiguous [n] bool)``; every row is in split "test".
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    amb = rng.random(n) < ambiguous_share
    wrong = (y + 1 + rng.integers(0, n_classes - 1, n)) % n_classes  # a wrong class per sample
    subsets = ["+".join(c) for k in range(1, len(modalities) + 1) for c in combinations(modalities, k)]
    probs = {}
    for s in subsets:
        p = np.zeros((n_seeds, n, n_classes))
        for i in range(n_seeds):
            slip = (rng.random(n) < 0.05) & ~amb  # independent random errors on clear samples
            pred = np.where(slip, wrong, y)
            conf = np.clip(0.8 + 0.08 * rng.standard_normal(n), 0.55, 0.99)
            if dominant in s.split("+"):
                pred = np.where(amb, wrong, pred)
                conf = np.where(amb, np.clip(0.93 + 0.03 * rng.standard_normal(n), 0.6, 0.99), conf)
            else:
                conf = np.where(amb, np.clip(0.65 + 0.05 * rng.standard_normal(n), 0.55, 0.9), conf)
            p[i] = (1 - conf)[:, None] / (n_classes - 1)
            p[i, np.arange(n), pred] = conf
        probs[s] = p
    full = "+".join(modalities)
    m = len(modalities)
    gates = rng.uniform(0.3, 0.6, (n_seeds, n, m))
    gates[:, amb, modalities.index(dominant)] = rng.uniform(0.85, 0.99, (n_seeds, int(amb.sum())))
    v = None
    by_cond = {}
    if votes:
        p_right = np.where(amb, 0.55, 0.95)
        right = rng.random((n, n_annotators)) < p_right[:, None]
        other = (y[:, None] + 1 + rng.integers(0, n_classes - 1, (n, n_annotators))) % n_classes
        v = np.where(right, y[:, None], other).astype(np.int16)
        v[rng.random((n, n_annotators)) < 0.05] = -1  # a few missing votes
        for c, acc in (("text", 0.75), ("audio", 0.7), ("video", 0.72), ("all", 0.8)):
            r = rng.random((n, 3)) < acc
            by_cond[c] = np.where(r, y[:, None], (y[:, None] + 1) % n_classes).astype(np.int16)
    inp = AnalysisInput(
        ids=[f"p{i:04d}" for i in range(n)], split=np.full(n, "test"), labels=y,
        classes=tuple(f"class{k}" for k in range(n_classes)), modalities=modalities, probs=probs,
        gates={full: gates}, votes=v, votes_by_condition=by_cond,
        text=[("an ambiguous, \"quoted\" remark" if a else "a plain sentence here") for a in amb],
        start=np.zeros(n), end=np.where(amb, 4.0, 2.0) + rng.random(n), seeds=tuple(range(n_seeds)),
        run_name="planted",
    )
    return inp, amb


def to_store(path, inp: AnalysisInput, attrs=None, run_attrs=None, group=None):
    """Write ``inp`` as a store (samples table + run ``inp.run_name``); returns the store.

    ``attrs``: the store's root attrs; ``run_attrs``: added to the run's attrs (e.g. a planted ``collapsed``);
    ``group``: the samples' ``group`` column."""
    from mixsig.cache import RunSubset, Samples, create_store

    samples = Samples(ids=inp.ids, split=inp.split, label=inp.labels, classes=inp.classes, text=inp.text,
                      audio=inp.audio, start=inp.start, end=inp.end,
                      votes=inp.votes if inp.votes.shape[1] else None,
                      votes_by_condition=inp.votes_by_condition, group=group)
    store = create_store(path, samples, attrs=attrs or {})
    subsets = {k: RunSubset(probs=v.astype(np.float32), gates=inp.gates.get(k), attention=inp.attention.get(k))
               for k, v in inp.probs.items()}
    store.write_run(inp.run_name, {"head": "gated", "modalities": list(inp.modalities), "seeds": list(inp.seeds),
                                   "classes": list(inp.classes), **(run_attrs or {})}, subsets)
    return store


def constant_run(y, preds, mods=("text", "audio", "video"), n_classes=2, n_seeds=2, run_name="run"):
    """A run whose every seed predicts ``preds[subset]`` (``[n]`` class indices) with probability 0.8, the other
    classes sharing the rest, on ``n`` test rows labelled ``y``."""
    n = len(y)
    probs = {}
    for s, p in preds.items():
        one = np.full((n, n_classes), 0.2 / (n_classes - 1))
        one[np.arange(n), p] = 0.8
        probs[s] = np.repeat(one[None], n_seeds, axis=0)
    return AnalysisInput(ids=[f"{run_name[0]}{i:04d}" for i in range(n)], split=np.full(n, "test"),
                         labels=np.asarray(y), classes=tuple(f"c{k}" for k in range(n_classes)), modalities=mods,
                         probs=probs, seeds=tuple(range(n_seeds)), run_name=run_name)
