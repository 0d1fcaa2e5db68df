"""A run trained on another samples table than the store holds now (labels changed by `--update-samples`) is
refused by the report, naming the run and how to retrain it; an unchanged one reports."""

import dataclasses

import numpy as np
from tests.analysis.helpers import planted, to_store

from mixsig.cache import open_store, update_samples
from mixsig.cli import main


def test_report_refuses_a_run_whose_split_hash_no_longer_matches(tmp_path, capsys):
    inp, _ = planted(n=120, seed=5, modalities=("text", "audio"))
    path = tmp_path / "s.zarr"
    split_hash = to_store(tmp_path / "probe.zarr", inp).split_hash()  # the samples table the run was trained on
    to_store(path, inp, run_attrs={"split_hash": split_hash})
    args = ["report", str(path), "--run", inp.run_name, "--no-plots", "--bootstrap", "0"]
    assert main(args + ["--out", str(tmp_path / "before")]) == 0
    store = open_store(path, "r+")
    label = store.samples.label.copy()
    label[:10] = 1 - label[:10]
    update_samples(store, dataclasses.replace(store.samples, label=label))
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "after")]) == 3
    err = capsys.readouterr().err
    assert f"run {inp.run_name!r} was trained on another samples table" in err
    assert f"--name {inp.run_name} --overwrite" in err and "updated 1 time(s)" in err
    assert not (tmp_path / "after" / "report.json").exists()
    assert np.array_equal(open_store(path).samples.label, label)
