"""`mixsig predict` applies the saved heads of an all-layer run ([N, L, D] keys, `mixsig extract --layers all`) row
for row, refuses a key whose layer count differs from the head's, and refuses run names zarr cannot hold."""

from __future__ import annotations

import numpy as np
import pytest

from mixsig.cache import Provenance, Samples, Status, create_store, open_store
from mixsig.cli import main
from mixsig.heads import load_head

L, D = 3, 4


def _layered(path, n: int, seed: int, layers: int = L):
    """A store with one all-layer key ``a`` [n, layers, D] (layer 1's first column carries the label)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.standard_normal((n, layers, D)).astype(np.float32)
    X[:, 1, 0] += 2.0 * (2 * y - 1)
    split = ["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4)
    store = create_store(str(path), Samples(ids=[f"r{i:03d}" for i in range(n)], split=split, label=y,
                                            classes=("neg", "pos")))
    key = store.create_key(Provenance(modality="a", encoder="synthetic-layers", revision="sha256:" + "0" * 64,
                                      pooling="mean", layers="all" if layers == L else f"all{layers}"), (layers, D))
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, X[lo:hi], np.full(hi - lo, Status.OK, np.int8))
    return key, X


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict_layers")
    key, _ = _layered(tmp / "src.zarr", 80, 0)
    assert main(["train", str(tmp / "src.zarr"), "--head", "logreg", "--features", f"a={key}", "--name", "all",
                 "--save-heads"]) == 0
    okey, oX = _layered(tmp / "other.zarr", 40, 1)
    assert okey == key
    return tmp, oX


def test_predict_applies_an_all_layer_run_row_for_row(layered, capsys):
    tmp, oX = layered
    capsys.readouterr()
    assert main(["predict", str(tmp / "src.zarr"), "--run", "all", "--into", str(tmp / "other.zarr"),
                 "--name", "onto"]) == 0, capsys.readouterr().err
    run = open_store(tmp / "other.zarr").read_run("onto")
    (head,) = open_store(tmp / "src.zarr").load_heads("all", load_head)["a"]
    assert head.layers_ == (L,)
    np.testing.assert_array_equal(run.subsets["a"].probs[0], head.predict_proba({"a": oX}))
    assert run.attrs["rows"]["used"] == 40 and np.isfinite(run.subsets["a"].probs).all()


@pytest.mark.parametrize("name", ["..", ".", "__x", "a/b"])
def test_predict_refuses_a_run_name_zarr_cannot_hold(layered, name, capsys):
    tmp, _ = layered
    capsys.readouterr()
    assert main(["predict", str(tmp / "src.zarr"), "--run", "all", "--into", str(tmp / "other.zarr"),
                 "--name", name]) == 2
    err = capsys.readouterr().err
    assert f"--name {name!r}" in err and "zarr reserves" in err
    assert "onto" in open_store(tmp / "other.zarr").runs() or open_store(tmp / "other.zarr").runs() == []
    assert name not in open_store(tmp / "other.zarr").runs()
