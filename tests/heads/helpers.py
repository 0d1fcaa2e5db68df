"""Synthetic data and stores for the heads tests: only modality ``a`` carries the label."""

from __future__ import annotations

import numpy as np

from mixsig.cache import Provenance, Samples, Status, create_store

WIDTHS = {"a": 12, "b": 8, "c": 10}   # different widths per modality on purpose


def synthetic(n: int, seed: int, widths=WIDTHS, signal: float = 2.0):
    """``({m: [n, D_m] float32}, y [n] int64)``: ``a``'s first column is ``signal * (2y - 1)`` + noise,
    the other modalities are pure noise (with other ``widths``: the first modality carries it)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int64)
    X = {m: rng.standard_normal((n, d)).astype(np.float32) for m, d in widths.items()}
    first = next(iter(X))  # "a" by default
    X[first][:, 0] += signal * (2 * y - 1)
    X[first][:, 1] -= signal * (2 * y - 1)
    return X, y


def make_store(path, n_train=160, n_val=60, n_test=80, seed=0, not_done: dict | None = None, votes=False,
               constant: bool = False, groups=None):
    """A store with keys ``a``/``b``/``c`` holding :func:`synthetic` features (each key's provenance holds its own
    modality, so ``{"a": keys["a"], ...}`` matches).

    ``not_done``: {modality: [row, ...]} rows written with a failed status (so not done).
    ``constant``: also a key ``z`` whose features are all 0 (any head predicts one class from it: a collapse).
    ``groups``: a group per row (``Samples.group``), e.g. to plant a group in two splits.
    Returns ``(store, {modality: key}, X, y)``.
    """
    n = n_train + n_val + n_test
    X, y = synthetic(n, seed)
    if constant:
        X["z"] = np.zeros((n, 4), np.float32)
    split = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    kw = {}
    if votes:
        rng = np.random.default_rng(seed + 1)
        flip = rng.random((n, 3)) < 0.2
        kw["votes"] = np.where(flip, 1 - y[:, None], y[:, None]).astype(np.int16)
    if groups is not None:
        kw["group"] = list(groups)
    samples = Samples(ids=[f"r{i:04d}" for i in range(n)], split=split, label=y, classes=("neutral", "empathetic"),
                      **kw)
    store = create_store(path, samples)
    keys = {}
    for m, x in X.items():
        prov = Provenance(modality=m, encoder=f"synthetic-{m}", revision="sha256:" + "0" * 64, pooling="cls",
                          extra={"modality_name": m})
        key = store.create_key(prov, x.shape[1], chunk_rows=64)
        bad = set((not_done or {}).get(m, ()))
        with store.writer(key) as w:
            for lo, hi in w.blocks():
                st = np.array([Status.DECODE_ERROR if r in bad else Status.OK for r in range(lo, hi)], np.int8)
                w.write_block(lo, hi, x[lo:hi], st)
        keys[m] = key
    return store, keys, X, y


#: The stores that the run tests of heads and of the CLI share (make_store arguments): ``gappy`` has rows not done
#: (b: 3, 170; c: 250) and votes; ``collapsing`` has a key ``z`` of zeros (a collapse) on 80/40/40 rows.
STORES = {"gappy": {"not_done": {"b": [3, 170], "c": [250]}, "votes": True},
          "collapsing": {"n_train": 80, "n_val": 40, "n_test": 40, "constant": True}}


def shared_store(tmp_path_factory, kind: str):
    """``(path, store, {modality: key})`` of a new :data:`STORES` store of ``kind`` (for module-scoped fixtures)."""
    path = tmp_path_factory.mktemp(kind) / "store.zarr"
    store, keys, X, y = make_store(path, **STORES[kind])
    return path, store, keys
