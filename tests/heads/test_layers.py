"""Heads over all layers of an encoder ([n, L, D] inputs, ``mixsig extract --layers all``): the torch heads' learned
softmax weight per layer (the s3prl weighted-layer sum), LightGBM's and logreg's fixed ``layer``, the run's
``layer_weights/<modality>`` [S, L], and float16 inputs never copied to float32 at once."""

import tracemalloc

import numpy as np
import pytest

from mixsig.cache import Provenance, Samples, Status, create_store, open_store
from mixsig.errors import HeadError
from mixsig.heads import get_head, load_head, train_run

L, D = 3, 8
#: the planted layer: only layer 2 of 3 (index 1, 0-based) carries the label
INFORMATIVE = 1
#: null: with no informative layer the learned weights stay within this of 1/3 (measured: at most 0.027 over
#: 4 seeds of gated and concat heads)
NULL_TOL = 0.06
TORCH = {"epochs": 8, "hidden": 16, "n_layers": 1, "max_lr": 1e-2}
GATED = {**TORCH, "proj_dim": 16, "att_dim": 8}


def layered(n: int, informative, seed: int = 0, dtype=np.float16):
    """``({"a": [n, L, D]}, y)``: layer ``informative``'s first two columns are ``±1.5`` by label (None: pure noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.int64)
    X = rng.standard_normal((n, L, D)).astype(dtype)
    if informative is not None:
        X[:, informative, :2] += ((2 * y - 1) * 1.5)[:, None].astype(dtype)
    return {"a": X}, y


@pytest.fixture(scope="module")
def planted():
    X, y = layered(300, INFORMATIVE)
    return X, y, get_head("gated", **GATED).fit(X, y, X_val=X, y_val=y, seed=0)


def test_learned_layer_weights_peak_at_the_planted_layer(planted):
    X, y, head = planted
    w = head.layer_weights_["a"]
    assert w.shape == (L,) and abs(float(w.sum()) - 1) < 1e-5
    assert int(np.argmax(w)) == INFORMATIVE
    assert w[INFORMATIVE] - np.delete(w, INFORMATIVE).max() > 0.08, w
    assert (head.predict_proba(X).argmax(1) == y).mean() > 0.8


def test_layer_weights_stay_near_uniform_without_an_informative_layer():
    X, y = layered(300, None, seed=1)
    w = get_head("gated", **GATED).fit(X, y, X_val=X, y_val=y, seed=1).layer_weights_["a"]
    assert np.abs(w - 1 / L).max() < NULL_TOL, w


def test_a_layered_torch_head_saves_and_loads_the_same_probabilities(planted, tmp_path):
    X, y, head = planted
    again = load_head(head.save(tmp_path / "h"))
    np.testing.assert_array_equal(again.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(again.layer_weights_["a"], head.layer_weights_["a"])
    with pytest.raises(HeadError, match=r"rows of shape \[2, 8\]; the head was fitted on rows of shape \[3, 8\]"):
        head.predict_proba({"a": X["a"][:, :2]})


@pytest.mark.parametrize("name", ["lightgbm", "logreg"])
def test_fixed_layer_heads_use_the_chosen_layer_or_the_mean(name):
    X, y = layered(240, INFORMATIVE, seed=2)
    Xt, yt = layered(200, INFORMATIVE, seed=3)
    kw = {"n_estimators": 20} if name == "lightgbm" else {}
    acc = {layer: float((get_head(name, layer=layer, **kw).fit(X, y).predict_proba(Xt).argmax(1) == yt).mean())
           for layer in (0, INFORMATIVE)}
    assert acc[INFORMATIVE] > 0.85 and acc[0] < 0.65, acc
    # the default is the fixed mean: the same model as on the mean of the layers, given as [n, D]
    mean = {"a": X["a"].astype(np.float64).mean(axis=1).astype(np.float32)}
    h = get_head(name, **kw).fit(X, y)
    assert h.get_params()["layer"] == "mean"
    ref = get_head(name, **kw).fit(mean, y).predict_proba(mean)
    np.testing.assert_allclose(h.predict_proba(X), ref, atol=1e-6)


def test_bad_layer_values_are_refused_naming_the_fix():
    X, y = layered(40, INFORMATIVE)
    with pytest.raises(HeadError, match=r"layer=5 but X\['a'\] has 3 layers \(0..2\)"):
        get_head("logreg", layer=5).fit(X, y)
    with pytest.raises(HeadError, match="Invalid layer='weighted' for head 'lightgbm'.*'mean' or a layer index"):
        get_head("lightgbm", layer="weighted").fit(X, y)
    data = get_head("lightgbm", layer=0).make_dataset(X, y)  # binned from layer 0: not reusable for layer 1
    with pytest.raises(HeadError, match="layer=0 vs this head's layer=1"):
        get_head("lightgbm", layer=1).fit(X, y, dataset=data)


def test_float16_layers_are_never_copied_to_float32_whole():
    X, y = layered(2000, INFORMATIVE, seed=4)
    x = X["a"] = np.ascontiguousarray(np.repeat(X["a"], 8, axis=2))  # [2000, 3, 64] float16: 0.77 MB
    as_float32 = x.size * 4
    tracemalloc.start()
    try:
        head = get_head("concat", epochs=1, hidden=8, n_layers=1).fit(X, y, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < as_float32 / 2, (peak, as_float32)
    assert head.predict_proba(X).shape == (2000, 2)


@pytest.fixture(scope="module")
def layered_run(tmp_path_factory):
    """A store with a float16 [N, 3, 8] key ``a`` (layer index 1 informative) and a pooled noise key ``b``."""
    path = tmp_path_factory.mktemp("layers") / "store.zarr"
    n = 240
    X, y = layered(n, INFORMATIVE, seed=5)
    b = np.random.default_rng(6).standard_normal((n, 4)).astype(np.float32)
    split = ["train"] * 160 + ["val"] * 40 + ["test"] * 40
    store = create_store(path, Samples(ids=[f"r{i}" for i in range(n)], split=split, label=y, classes=("n", "p")))
    keys = {}
    for m, x, dim, dt in (("a", X["a"], (L, D), "float16"), ("b", b, 4, "float32")):
        prov = Provenance(modality=m, encoder=f"synthetic-{m}", revision="sha256:" + "0" * 64, pooling="cls",
                          layers="all" if m == "a" else "last", dtype=dt, extra={"modality_name": m})
        keys[m] = store.create_key(prov, dim, chunk_rows=64)
        with store.writer(keys[m]) as w:
            for lo, hi in w.blocks():
                w.write_block(lo, hi, x[lo:hi], np.full(hi - lo, Status.OK, np.int8))
    dtypes = set()

    def held(rec):  # what the fits train on: the float16 key stays float16 (no float32 copy of [N, L, D])
        dtypes.update(str(x.dtype) for m, x in rec.X.items() if m == "a")

    run = train_run(store, "gated", keys, seeds=[0], params={**GATED, "epochs": 20}, name="layered",
                    observers=[held])
    assert dtypes == {"float16"}
    return path, run


def test_a_run_stores_the_layer_weights_per_subset_and_seed(layered_run):
    path, run = layered_run
    back = open_store(path).read_run("layered")
    for sub in ("a", "a+b"):
        w = back.subsets[sub].extra["layer_weights/a"]
        assert w.shape == (1, L) and np.allclose(w.sum(axis=1), 1, atol=1e-5)  # [S, L]
        assert (w.argmax(axis=1) == INFORMATIVE).all(), w
    assert not any(p.startswith("layer_weights/") for p in back.subsets["b"].extra)
    fits = back.attrs["fits"]
    assert fits["a+b"][0]["layers"] == {"a": "weighted softmax over 3 layers"} and "layers" not in fits["b"][0]


def test_a_fixed_layer_run_says_which_layer_in_its_attrs(layered_run):
    path, _ = layered_run
    store = open_store(path, mode="r+")
    run = train_run(store, "logreg", {"a": "a"}, seeds=[0], params={"layer": 1}, name="fixed")
    assert run.attrs["params"]["layer"] == 1
    assert run.attrs["fits"]["a"][0]["layers"] == {"a": "layer 1 of 3"}
    assert run.attrs["metrics"]["a"]["test"]["accuracy"]["mean"] > 0.8


def test_a_study_searches_weighted_vs_mean_only_for_trials_on_an_nld_key(layered_run):
    import optuna

    from mixsig.studies import StudyData, suggest_config

    path, run = layered_run
    store = open_store(path)
    ka, kb = run.attrs["features"]["a"], run.attrs["features"]["b"]
    data = StudyData(store, {"a": (ka,), "b": (kb,)})
    assert data.layered_keys == {ka} and data.X[ka].shape[1:] == (L, D)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        config = suggest_config(study.ask(), ("concat",), {"a": (ka,), "b": (kb,)}, data.layered_keys)
        uses_a = "a" in config.features
        assert ("layer" in config.params) == uses_a
        if uses_a:
            seen.add(config.params["layer"])
    assert seen == {"weighted", "mean"}


def test_cache_import_h5_takes_nld_features_that_heads_then_train_on(layered_run, tmp_path):
    import h5py

    from mixsig.cli import main

    path, _ = layered_run
    store = open_store(path, mode="r+")
    X, _ = layered(len(store.samples), INFORMATIVE, seed=5)
    f = tmp_path / "layers.h5"
    with h5py.File(f, "w") as h:
        h["ids"] = np.asarray(store.samples.ids, dtype="S")
        h["embedding"] = X["a"]  # [N, 3, 8] float16
    assert main(["cache", "import-h5", str(path), str(f), "--modality", "audio", "--name", "all-layers"]) == 0
    key = next(k for k in open_store(path).keys() if k.startswith("audio."))
    assert open_store(path).key_shape(key)[1:] == (L, D)
    run = train_run(open_store(path, mode="r+"), "logreg", {"audio": key}, seeds=[0], params={"layer": INFORMATIVE},
                    name="h5", allow_modality_mismatch=True)
    assert run.attrs["metrics"]["audio"]["test"]["accuracy"]["mean"] > 0.8
