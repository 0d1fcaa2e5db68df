"""Builders shared by the cache tests."""

import os
import time

import numpy as np

from mixsig.cache import Provenance, Samples, Status

D = 6


def row_values(rows, d=D):
    """Deterministic features of rows: row r -> N(0, 1) draws seeded by r."""
    return np.stack([np.random.default_rng(int(r)).standard_normal(d).astype(np.float32) for r in rows])


def make_samples(n=50):
    return Samples(
        ids=[f"s{i:03d}" for i in range(n)],
        split=(["train"] * (n - 2 * (n // 5))) + ["val"] * (n // 5) + ["test"] * (n // 5),
        label=np.arange(n) % 2,
        classes=("empathetic", "neutral"),
        group=[f"g{i // 5}" for i in range(n)],
        text=[f"text {i}" for i in range(n)],
        content_hash={"text": [f"{i:016x}" for i in range(n)]},
        votes=np.stack([np.arange(n) % 2, np.arange(n) % 2, (np.arange(n) // 3) % 2], axis=1),
        votes_by_condition={"text": np.stack([np.arange(n) % 2] * 2, axis=1)},
    )


def prov(pooling="cls", **kw):
    kw.setdefault("preprocessing", {"max_length": 32})
    return Provenance(modality="text", encoder="tiny-roberta", revision="sha256:" + "0" * 64, pooling=pooling, **kw)


def fill_key(store, key, rows_fail=()):
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            st = np.full(hi - lo, Status.OK, np.int8)
            for r in rows_fail:
                if lo <= r < hi:
                    st[r - lo] = Status.DECODE_ERROR
            w.write_block(lo, hi, row_values(range(lo, hi)), st, input_hash=[f"{r:016x}" for r in range(lo, hi)])




def age_files(root, seconds: float = 10.0) -> None:
    """Every file under ``root`` last modified ``seconds`` ago: this process keeps the chunks it checks only when
    they were written at least 2 s before (mixsig/cache/_small_seen.py, RACY_NS), and tests write them moments
    before they read them."""
    then = time.time_ns() - int(seconds * 1e9)
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), ns=(then, then))
