"""A synthetic store with a learnable signal, built through the cache API (test data for tests and benchmarks;
not part of the package).

Not a demo corpus (that is :mod:`mixsig.demo`): no media, just features whose class means differ, so heads
and studies have something real to find without running any encoder.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def make_synthetic_store(path, *, n: int = 240, dims: Mapping[str, int] | None = None, signal: Mapping[str, float] | None = None,
                         extra_keys: Mapping[str, float] | None = None, n_groups: int | None = None,
                         split=(0.7, 0.15, 0.15), seed: int = 0, chunk_rows: int | None = None,
                         leak_groups: int = 0, constant: tuple[str, ...] = ()):
    """Create a store at ``path`` with ``n`` rows, 2 classes and one key per modality; returns ``(store, keys)``.

    ``dims``: {modality: D} (default text/audio/video 16 each); ``signal``: {modality: class-mean shift in units
    of the noise std, spread over the first 4 dims} (default text 1.0, audio 0.6, video 0.3);
    ``extra_keys``: {modality: signal} adds a second key for that modality (another "encoder");
    ``n_groups`` groups rows (consecutive blocks; a group never spans splits, except that ``leak_groups`` > 0
    moves the first row of that many train groups to val: a planted group leak). ``constant``: modalities that
    get one more key whose features are all 0 (every head predicts one class from it: a planted collapse).
    ``keys`` is ``{modality: [key, ...]}`` in creation order.
    """
    from mixsig.cache import Provenance, Samples, Status, create_store

    dims = dict(dims or {"text": 16, "audio": 16, "video": 16})
    signal = dict(signal or {"text": 1.0, "audio": 0.6, "video": 0.3})
    rng = np.random.default_rng(seed)
    n_groups = n_groups or n
    group_of = np.arange(n) * n_groups // n
    g_split = rng.permutation(n_groups)
    n_tr, n_va = int(round(split[0] * n_groups)), int(round(split[1] * n_groups))
    split_of_group = np.empty(n_groups, dtype=object)
    split_of_group[g_split[:n_tr]] = "train"
    split_of_group[g_split[n_tr:n_tr + n_va]] = "val"
    split_of_group[g_split[n_tr + n_va:]] = "test"
    split_of_row = split_of_group[group_of].astype(object)
    if leak_groups:
        if n_groups == n:
            raise ValueError("leak_groups needs n_groups < n (groups of several rows)")
        for g in g_split[:n_tr][:leak_groups]:
            split_of_row[np.flatnonzero(group_of == g)[0]] = "val"
    label = rng.integers(0, 2, size=n)
    samples = Samples(
        ids=[f"r{i:05d}" for i in range(n)], split=list(split_of_row), label=label,
        classes=("neutral", "empathetic"), group=[f"g{g}" if n_groups < n else "" for g in group_of],
    )
    store = create_store(str(path), samples, attrs={"manifest_sha256": "synthetic"})
    keys: dict[str, list[str]] = {}
    specs = [(m, dims[m], signal.get(m, 0.0), "enc-a") for m in dims]
    specs += [(m, dims[m], s, "enc-b") for m, s in (extra_keys or {}).items()]
    specs += [(m, dims[m], None, "constant") for m in constant]
    for modality, d, s, enc in specs:
        prov = Provenance(modality=modality, encoder=f"synthetic-{modality}-{enc}", revision="sha256:" + "0" * 64,
                          pooling="cls", preprocessing={"seed": seed, "signal": s})
        key = store.create_key(prov, d, chunk_rows=chunk_rows)
        if s is None:
            X = np.zeros((n, d), np.float32)
        else:
            X = rng.standard_normal((n, d)).astype(np.float32)
            X[:, : min(4, d)] += (s * (2 * label - 1))[:, None].astype(np.float32) / 2
        with store.writer(key) as w:
            for lo, hi in w.blocks():
                w.write_block(lo, hi, X[lo:hi], np.full(hi - lo, Status.OK, np.int8))
        keys.setdefault(modality, []).append(key)
    return store, keys


def make_wide_store(path, n: int, d: int):
    """A store of ``n`` rows with one ``[n, d]`` float32 text key (planted signal 0.8 in its first 4 dims, splits
    80/10/10), written block by block so the caller never holds the key; returns ``(store, key)``. For keys larger
    than memory (tests/heads/test_streaming.py, benchmarks/bench_stream.py)."""
    from mixsig.cache import Provenance, Samples, Status, create_store

    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, n)
    split = np.array(["train", "val", "test"], dtype=object)[rng.choice(3, n, p=[0.8, 0.1, 0.1])]
    store = create_store(str(path), Samples(ids=[f"r{i:07d}" for i in range(n)], split=list(split), label=label,
                                            classes=("a", "b"), group=[""] * n), attrs={"manifest_sha256": "wide"})
    prov = Provenance(modality="text", encoder="wide-text", revision="sha256:" + "0" * 64, pooling="cls",
                      preprocessing={"seed": 0})
    key = store.create_key(prov, d)
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            X = np.random.default_rng([0, lo]).standard_normal((hi - lo, d), dtype=np.float32)
            X[:, :4] += (0.8 * (2 * label[lo:hi] - 1))[:, None].astype(np.float32) / 2
            w.write_block(lo, hi, X, np.full(hi - lo, Status.OK, np.int8))
    return store, key
