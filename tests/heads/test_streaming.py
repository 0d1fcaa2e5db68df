"""Streamed training (``train_run(stream=True)``, ``mixsig train --stream``): rows read window by window.

Planted: a streamed run is the in-memory run bit for bit when the training rows fit one window; with several windows
it is the in-memory fit over the same window order, reads each window once an epoch, and learns the planted signal
as well as the in-memory path does (null: no signal, chance accuracy). The slow test trains under ``ulimit -v`` on a
key twice the limit, where the in-memory path fails.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import numpy as np
import pytest

from mixsig.errors import UsageError
from mixsig.heads import get_head, train_run
from mixsig.heads._streaming import StoreRows, WindowLoader
from tests.synthetic import make_synthetic_store, make_wide_store

PARAMS = {"epochs": 2, "hidden": 16, "batch_size": 32}


def _store(tmp_path, n=240, signal=None):
    store, keys = make_synthetic_store(tmp_path / "s.zarr", n=n, dims={"text": 24, "audio": 12}, signal=signal,
                                       chunk_rows=32)
    return store, {m: k[0] for m, k in keys.items()}


def _same(a, b):
    for sub in a.subsets:
        for name in ("probs", "gates", "attention"):
            x, y = getattr(a.subsets[sub], name), getattr(b.subsets[sub], name)
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y, err_msg=f"{sub} {name}")
        assert set(a.subsets[sub].extra) == set(b.subsets[sub].extra)
        for path, x in a.subsets[sub].extra.items():
            np.testing.assert_array_equal(x, b.subsets[sub].extra[path], err_msg=f"{sub} {path}")


def test_streamed_run_in_one_window_is_the_in_memory_run_bit_for_bit(tmp_path, monkeypatch):
    store, feats = _store(tmp_path)
    monkeypatch.setenv("MIXSIG_BATCHED_SEEDS", "0")  # the streamed seeds train one after another, like this
    mem = train_run(store, "gated", feats, seeds=[0, 1], params=PARAMS, name="mem")
    streamed = train_run(store, "gated", feats, seeds=[0, 1], params=PARAMS, name="str", stream=True)
    _same(mem, streamed)  # probs, gates, attention, dynamics, missing-modality probabilities
    assert mem.attrs["metrics"] == streamed.attrs["metrics"]
    assert all(f["stream_windows"] == 1 for fits in streamed.attrs["fits"].values() for f in fits)
    assert all("stream_windows" not in f for fits in mem.attrs["fits"].values() for f in fits)
    # concat imputes absent modalities with train-row means: computed block by block when streamed
    _same(train_run(store, "concat", feats, params=PARAMS, name="c1"),
          train_run(store, "concat", feats, params=PARAMS, name="c2", stream=True))


def test_several_windows_are_the_in_memory_fit_over_the_same_window_order(tmp_path):
    store, feats = _store(tmp_path)
    rows = np.flatnonzero(store.samples.split == "train")
    y = store.samples.label[rows]
    mods = list(feats)
    lazy = [StoreRows(store, feats[m], rows, store.key_shape(feats[m])[1]) for m in mods]
    arrays = [store.read(feats[m], rows=rows).X for m in mods]
    fits, loaders = [], []
    for sources in (lazy, arrays):
        loader = WindowLoader(sources, window_rows=30)
        from mixsig.heads._base import FitInputs
        from mixsig.heads._targets import target_matrix

        h = get_head("gated", **PARAMS)
        inputs = FitInputs(modalities=tuple(mods), X=tuple(loader.modality(i) for i in range(len(mods))), y=y,
                           T=target_matrix(y, 2), n_classes=2, class_weight=None)
        fits.append(h.fit_validated(inputs, seed=3))
        loaders.append(loader)
        loader.close()
    X = {m: a for m, a in zip(mods, arrays)}
    np.testing.assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))
    n_windows = len(loaders[0].windows)
    assert n_windows == -(-rows.size // 30) > 2
    # each window read once an epoch (read-ahead included), less where an epoch starts on the window the last ended on
    e = PARAMS["epochs"]
    assert e * n_windows - (e - 1) <= loaders[0].reads <= e * n_windows
    # the in-memory fit (one randperm over all rows) is another order: other weights
    plain = get_head("gated", **PARAMS).fit(X, y, seed=3)
    assert not np.array_equal(plain.predict_proba(X), fits[0].predict_proba(X))


def test_window_order_is_a_permutation_of_whole_windows_and_randperm_in_one_window():
    import torch

    loader = WindowLoader([np.zeros((103, 2), np.float32)], window_rows=20)
    perm = loader.permutation(103, torch.Generator().manual_seed(5)).numpy()
    assert sorted(perm.tolist()) == list(range(103))
    assert len(loader.windows) == 6 and {b - a for a, b in loader.windows} == {17, 18}  # equal, not 5 x 20 + 3
    win = np.searchsorted([a for a, _ in loader.windows], perm, side="right") - 1
    changes = np.flatnonzero(np.diff(win))
    assert len(changes) == 5  # 6 windows, each contiguous in the order
    assert sorted(win[np.r_[0, changes + 1]].tolist()) == list(range(6))
    one = WindowLoader([np.zeros((103, 2), np.float32)], window_rows=200)
    np.testing.assert_array_equal(one.permutation(103, torch.Generator().manual_seed(5)).numpy(),
                                  torch.randperm(103, generator=torch.Generator().manual_seed(5)).numpy())


def test_windows_are_read_ahead_once_an_epoch_and_at_most_three_are_held():
    import torch

    from mixsig.training import batch_starts

    X = [np.random.default_rng(0).standard_normal((2010, 3)).astype(np.float32), np.zeros((2010, 2), np.float32)]
    loader = WindowLoader(X, window_rows=200)  # 11 windows of 182-183 rows: no 10-row tail window
    sizes = {b - a for a, b in loader.windows}
    assert len(loader.windows) == 11 and max(sizes) - min(sizes) <= 1
    gen, epochs = torch.Generator().manual_seed(1), 6
    for _ in range(epochs):
        perm = loader.permutation(2010, gen)
        for s in batch_starts(2010, 64):
            idx = perm[s:s + 64]
            for i, x in enumerate(X):  # the rows asked for, modality by modality, as the training step asks
                np.testing.assert_array_equal(loader.modality(i).index_select(0, idx).numpy(), x[idx.numpy()])
    assert loader.misses == 0  # every training window came from the read-ahead
    assert epochs * 11 - (epochs - 1) <= loader.reads <= epochs * 11 and loader.max_held <= 3
    # validation rows read in turn (no order), in slices of at most a window: each window read once a pass
    val = WindowLoader(X, window_rows=200)
    view = [val.modality(i) for i in range(2)]
    for _ in range(2):
        for a in range(0, 2010, view[0].chunk_rows):
            for v, x in zip(view, X):
                np.testing.assert_array_equal(v[a:a + v.chunk_rows].numpy(), x[a:a + view[0].chunk_rows])
    assert val.reads == 2 * 11 and val.max_held <= 2
    loader.close()
    val.close()


@pytest.mark.parametrize("signal,expect", [({"text": 1.5, "audio": 1.0}, "learns"), ({"text": 0.0, "audio": 0.0}, "chance")])
def test_windowed_stream_learns_the_planted_signal_and_nothing_without_one(tmp_path, signal, expect):
    store, feats = _store(tmp_path, n=500, signal=signal)
    params = dict(PARAMS, epochs=4)
    mem = train_run(store, "gated", feats, params=params, name="mem")
    win = train_run(store, "gated", feats, params=params, name="win", stream=True, stream_memory="64K")
    assert all(f["stream_windows"] >= 2 for fits in win.attrs["fits"].values() for f in fits)
    assert win.attrs["fits"]["text"][0]["stream_windows"] >= 3
    acc = lambda r: r.attrs["metrics"]["text"]["test"]["accuracy"]["mean"]  # noqa: E731
    if expect == "learns":
        assert acc(win) > 0.75 and acc(win) >= acc(mem) - 0.06, (acc(win), acc(mem))
    else:
        assert abs(acc(win) - 0.5) < 0.15 and abs(acc(mem) - 0.5) < 0.15, (acc(win), acc(mem))


def test_stream_refuses_what_it_cannot_train(tmp_path):
    store, feats = _store(tmp_path)
    with pytest.raises(UsageError, match="needs its training rows in memory"):
        train_run(store, "lightgbm", feats, stream=True)
    with pytest.raises(UsageError, match="stream-memory"):
        train_run(store, "gated", feats, stream=True, stream_memory="lots")
    for bad in ("inf", "1e400", "-5M"):
        with pytest.raises(UsageError, match="stream-memory"):
            train_run(store, "gated", feats, stream=True, stream_memory=bad)
    # a batch larger than a window (here every training row: batch_size=0) would hold more than the budget
    with pytest.raises(UsageError, match="do not fit windows"):
        train_run(store, "gated", feats, params=dict(PARAMS, batch_size=0), stream=True, stream_memory="64K")
    # batches that fit the one-modality windows but not the widest subset's: refused before the first fit
    fits = []
    with pytest.raises(UsageError, match=r"do not fit windows of \d+ rows of text\+audio"):
        train_run(store, "gated", feats, params=dict(PARAMS, batch_size=64), stream=True, stream_memory="64K",
                  progress=lambda *a: fits.append(a))
    assert fits == []
    rows = StoreRows(store, feats["text"], np.arange(10), 24)
    with pytest.raises(UsageError, match="train without --stream"):
        np.asarray(rows)
    np.testing.assert_array_equal(rows[2:5].read(), store.read(feats["text"], rows=np.arange(2, 5)).X)
    from mixsig.cache import Provenance, Status

    layered = store.create_key(Provenance(modality="audio", encoder="layers", revision="sha256:" + "0" * 64,
                                          pooling="mean", preprocessing={}), (3, 8))
    with store.writer(layered) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, np.ones((hi - lo, 3, 8), np.float32), np.full(hi - lo, Status.OK, np.int8))
    with pytest.raises(UsageError, match=r"pooled \[N, D\] keys"):
        train_run(store, "gated", {"text": feats["text"], "audio": layered}, stream=True)


def _mixsig(*args, env=None, preexec=None):
    cmd = [sys.executable, "-c", "import sys; from mixsig.cli import main; sys.exit(main(sys.argv[1:]))", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env,
                          preexec_fn=preexec, timeout=1200)


def test_cli_train_stream(tmp_path):
    store, feats = _store(tmp_path)
    fl = ",".join(f"{m}={k}" for m, k in feats.items())
    import json

    r = _mixsig("train", str(store.local_path), "--head", "gated", "--features", fl, "--params", json.dumps(PARAMS),
                "--stream", "--stream-memory", "64K", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["fits"]["text"][0]["stream_windows"] > 1
    r = _mixsig("train", str(store.local_path), "--head", "gated", "--features", fl, "--stream-memory", "64K")
    assert r.returncode != 0 and "add --stream" in r.stderr


#: the address-space limit of the slow test and the key's size: 250,000 x 4,096 float32 = 4.1 GB, twice the limit
LIMIT_BYTES, BIG_N, BIG_D = 2 << 30, 250_000, 4096


@pytest.mark.slow
def test_streamed_gated_head_trains_on_a_key_twice_the_address_space_limit(tmp_path):
    store, key = make_wide_store(tmp_path / "big.zarr", BIG_N, BIG_D)
    assert BIG_N * BIG_D * 4 >= 1.9 * LIMIT_BYTES
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))  # noqa: E731
    env = dict(os.environ, HF_HUB_OFFLINE="1", MALLOC_ARENA_MAX="2")  # glibc's per-thread arenas reserve 64 MB each
    args = ["train", str(store.local_path), "--head", "gated", "--features", f"text={key}",
            "--params", '{"epochs": 1, "batch_size": 1024, "hidden": 16}', "--json"]
    r = _mixsig(*args, "--name", "in-memory", env=env, preexec=limit)
    assert r.returncode != 0 and ("Unable to allocate" in r.stderr or "MemoryError" in r.stderr), r.stderr[-2000:]
    r = _mixsig(*args, "--name", "streamed", "--stream", "--stream-memory", "256M", env=env, preexec=limit)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    out = json.loads(r.stdout)
    assert out["fits"]["text"][0]["stream_windows"] > 10
    assert out["metrics"]["text"]["test"]["accuracy"]["mean"] > 0.7  # the planted signal, learnt in one epoch
