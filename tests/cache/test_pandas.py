"""The store as pandas objects: samples.to_pandas (numeric manifest columns stay numbers), run.to_pandas (long),
a key's rows as a DataFrame / xarray.DataArray, and a missing pandas in one line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from mixsig.cache import RunSubset, Status, create_store, diff_samples, open_store  # noqa: E402
from mixsig.errors import UsageError  # noqa: E402
from mixsig.manifest import load_manifest, to_samples  # noqa: E402
from tests.cache.helpers import fill_key, make_samples, prov, row_values  # noqa: E402
from tests.test_manifest import row, write_csv  # noqa: E402

N = 50


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = create_store(tmp_path_factory.mktemp("pd") / "store.zarr", make_samples(N), attrs={"manifest_sha256": "x"})
    key = s.create_key(prov(), 6)
    fill_key(s, key)
    return open_store(s.url), key


def test_manifest_numbers_stay_numbers_in_the_store_and_in_samples_to_pandas(tmp_path):
    rows = [row(1, duration="1.5", n_words="12", planted="conflict:text", code="007"),
            row(2, duration="", n_words="7", planted="", code="010"),
            row(3, split="test", label="empathetic", duration="2e1", n_words="3", planted="ambiguous", code="1")]
    path = write_csv(tmp_path / "m.csv", rows, header=["id", "split", "label", "group", "text", "duration", "n_words",
                                                       "planted", "code"])
    store = create_store(tmp_path / "s.zarr", to_samples(load_manifest(path)))
    df = open_store(store.url).samples.to_pandas()  # read back from the Zarr arrays
    assert list(df.columns) == ["id", "split", "label", "group", "text", "start", "end", "code", "duration",
                                "n_words", "planted"]  # the manifest's other columns by name
    assert df["duration"].dtype == np.float64 and df["duration"].tolist()[::2] == [1.5, 20.0]
    assert np.isnan(df["duration"][1])
    assert df["n_words"].dtype == np.int64 and df["n_words"].tolist() == [12, 7, 3]
    assert df["planted"].tolist() == ["conflict:text", "", "ambiguous"]  # text stays text
    assert df["code"].tolist() == ["007", "010", "1"]                    # so do leading zeros
    assert df["label"].tolist() == ["neutral", "neutral", "empathetic"] and df["id"].tolist() == ["r1", "r2", "r3"]
    assert df["split"].tolist() == ["train", "train", "test"] and np.isnan(df["start"]).all()


def test_an_older_store_with_numbers_as_text_does_not_differ_from_the_same_numbers():
    old, new = make_samples(4), make_samples(4)
    old.columns = {"duration": np.asarray(["1.5", "", "2", "3"])}         # how an older mixsig stored them
    new.columns = {"duration": np.asarray([1.5, np.nan, 2.0, 3.0])}
    old.__post_init__(), new.__post_init__()
    assert diff_samples(old, new) == {}
    new.columns["duration"][3] = 4.0
    assert {k: v.tolist() for k, v in diff_samples(old, new).items()} == {"column@duration": [3]}


def test_a_key_as_a_dataframe_and_a_dataarray(store):
    s, key = store
    view = s.read(key, split="val")
    df = view.to_pandas()
    assert df.shape == (10, 6) and np.array_equal(df.to_numpy(), row_values(view.rows))
    assert df.index.names == ["id", "split", "label"]
    assert df.index.get_level_values("id").tolist() == s.samples.ids[view.rows].tolist()
    assert set(df.index.get_level_values("split")) == {"val"}
    assert df.index.get_level_values("label").tolist() == [("empathetic", "neutral")[r % 2] for r in view.rows]
    da = s.read(key).to_xarray()
    assert da.dims == ("sample", "feature") and da.name == key and da.attrs["modality"] == "text"
    assert np.array_equal(da.values, row_values(range(N)))
    assert da["id"].values.tolist() == s.samples.ids.tolist() and da["split"].values.tolist() == s.samples.split.tolist()
    assert da.sel(sample=da["split"] == "test").shape == (10, 6)


def test_a_layered_key_has_no_flat_table_but_a_dataarray(tmp_path):
    s = create_store(tmp_path / "s.zarr", make_samples(8))
    key = s.create_key(prov("layers"), (3, 4))
    with s.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, np.arange((hi - lo) * 12, dtype=np.float32).reshape(hi - lo, 3, 4) + lo * 12,
                          np.full(hi - lo, Status.OK, np.int8), input_hash=["h"] * (hi - lo))
    view = s.read(key)
    with pytest.raises(UsageError, match=r"\[N, L, D\] rows \(3 layers\).*to_xarray\(\)"):
        view.to_pandas()
    da = view.to_xarray()
    assert da.dims == ("sample", "layer", "feature") and np.array_equal(da.values, np.arange(96).reshape(8, 3, 4))


def test_run_to_pandas_is_long_one_row_per_predicted_subset_seed_sample(store):
    s, key = store
    rng = np.random.default_rng(0)
    probs = {sub: rng.dirichlet([1, 1], size=(2, N)).astype(np.float32) for sub in ("text", "audio", "text+audio")}
    probs["audio"][1, :5] = np.nan  # seed 7 of audio predicted no row 0..4
    s_rw = open_store(s.url, "r+")
    s_rw.write_run("r", {"head": "logreg", "seeds": [3, 7], "classes": ["empathetic", "neutral"],
                         "modalities": ["text", "audio"]}, {k: RunSubset(probs=v) for k, v in probs.items()},
                   overwrite=True)
    df = s.read_run("r").to_pandas()
    assert list(df.columns) == ["id", "split", "label", "subset", "seed", "p_empathetic", "p_neutral", "pred"]
    assert len(df) == 3 * 2 * N - 5
    assert df.groupby(["subset", "seed"]).size().to_dict() == {
        ("audio", 3): N, ("audio", 7): N - 5, ("text", 3): N, ("text", 7): N, ("text+audio", 3): N,
        ("text+audio", 7): N}
    for (sub, seed), part in df.groupby(["subset", "seed"]):  # the arrays back from the long table
        p = probs[sub][[3, 7].index(seed)]
        rows = np.flatnonzero(~np.isnan(p[:, 0]))
        assert part["id"].tolist() == s.samples.ids[rows].tolist()
        assert np.array_equal(part[["p_empathetic", "p_neutral"]].to_numpy(), p[rows])
        assert part["pred"].tolist() == [("empathetic", "neutral")[i] for i in p[rows].argmax(axis=1)]
        assert part["label"].tolist() == [("empathetic", "neutral")[i % 2] for i in rows]


def test_without_pandas_the_methods_name_the_install_command(store, monkeypatch):
    s, key = store
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(UsageError, match=r"pandas is not installed.*`pip install pandas`"):
        s.samples.to_pandas()
    with pytest.raises(UsageError, match=r"`pip install pandas`"):
        s.read(key).to_pandas()
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(UsageError, match=r"xarray is not installed.*`pip install xarray`"):
        s.read(key).to_xarray()
