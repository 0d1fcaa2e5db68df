"""The report repeats, under its title, what makes a run's numbers misleading: collapsed models, a group leak
allowed for the run or present in the store, keys used as another modality; and shows none for a clean run."""

import json

import numpy as np
from tests.analysis.helpers import planted, to_store

from mixsig.analysis import analyse, write_report
from mixsig.cache import describe_collapse, open_store
from mixsig.cli import main

COLLAPSED = [{"subset": "text", "seed": 1, "split": "val", "reason": "predicts one class (0) for all 40 rows"},
             {"subset": "text+audio", "seed": 0, "split": "test", "reason": "macro-F1 0.310 is no better than chance "
                                                                           "0.480 (same class shares, independent of "
                                                                           "labels)"}]
LEAK = {"n_groups": 1, "n_rows": 3, "groups": {"speaker-7": {"train": 2, "test": 1}}}
MISMATCH = {"audio.hubert.mean.0123456789ab": {"used_as": "text", "holds": "audio"}}


def _header(md: str) -> str:
    """report.md above its first section."""
    return md.split("\n## ", 1)[0]


def _report(tmp_path, store_path, run, name="rep"):
    out = tmp_path / name
    assert main(["report", str(store_path), "--run", run, "--out", str(out), "--no-plots", "--bootstrap", "0"]) == 0
    return (out / "report.md").read_text(), (out / "report.html").read_text(), json.loads(
        (out / "report.json").read_text())


def test_clean_run_has_no_warning(tmp_path):
    inp, _ = planted(n=200, seed=3, modalities=("text", "audio"))
    to_store(tmp_path / "s.zarr", inp, run_attrs={"collapsed": [], "group_leak": None, "modality_mismatch": {}})
    md, html, doc = _report(tmp_path, tmp_path / "s.zarr", "planted")
    assert doc["warnings"] == {"collapsed": [], "collapsed_checked_by": "run",
                               "group_leak": {"run": None, "store": None}, "modality_mismatch": {},
                               "selection_splits": None, "selection_overlap": None, "in_sample": {}, "messages": []}
    assert "WARNING" not in md and "class='warn'" not in html
    assert "notes" in doc and "skipped" in doc  # the existing fields stay


def test_planted_run_warnings_are_repeated_at_the_top(tmp_path):
    inp, _ = planted(n=200, seed=3, modalities=("text", "audio"))
    to_store(tmp_path / "s.zarr", inp,
             run_attrs={"collapsed": COLLAPSED, "group_leak": LEAK, "modality_mismatch": MISMATCH})
    md, html, doc = _report(tmp_path, tmp_path / "s.zarr", "planted")
    w = doc["warnings"]
    assert w["collapsed"] == COLLAPSED and w["collapsed_checked_by"] == "run"
    assert w["group_leak"] == {"run": LEAK, "store": None} and w["modality_mismatch"] == MISMATCH
    head = _header(md)
    for e in COLLAPSED:
        assert f"> **WARNING:** Collapsed: {describe_collapse(e)}" in head
    assert "2 of 9 models (subset x seed) of run 'planted' collapsed" in head
    assert "Group leak allowed for this run (`mixsig train --allow-group-leak`): 1 group(s) (3 rows)" in head
    assert "'speaker-7' in train (2), test (1)" in head
    assert "Key audio.hubert.mean.0123456789ab holds audio features but was used as text" in head
    assert len(w["messages"]) == 5 and md.count("**WARNING:**") == 5
    top = html.split("<h2>", 1)[0]
    assert top.count("<div class='warn' role='alert'>WARNING: ") == 5
    assert "speaker-7" in top and "Collapsed: text seed 1 collapsed on val" in top


def test_store_group_leak_recorded_by_extract_and_found_in_samples(tmp_path):
    inp, _ = planted(n=120, seed=4, modalities=("text", "audio"))
    recorded = dict(LEAK, allowed_by="mixsig extract m.csv --store a.zarr --allow-group-leak")
    to_store(tmp_path / "a.zarr", inp, attrs={"group_leak": recorded})
    md, _, doc = _report(tmp_path, tmp_path / "a.zarr", "planted", "a")
    assert doc["warnings"]["group_leak"] == {"run": None, "store": recorded}
    assert ("The store's splits share groups (allowed by `mixsig extract m.csv --store a.zarr --allow-group-leak`, "
            "recorded in the store): 1 group(s) (3 rows)") in _header(md)
    # the same leak allowed for the run too: one line, not two
    to_store(tmp_path / "a2.zarr", inp, attrs={"group_leak": recorded}, run_attrs={"group_leak": LEAK})
    md, _, doc = _report(tmp_path, tmp_path / "a2.zarr", "planted", "a2")
    assert doc["warnings"]["group_leak"] == {"run": LEAK, "store": recorded}
    assert _header(md).count("speaker-7") == 1 and "Group leak allowed for this run" in _header(md)

    inp.split = np.where(np.arange(120) < 60, "val", "test")
    group = [f"g{i}" for i in range(120)]
    group[0] = group[100] = "speaker-9"           # one group in val and test
    to_store(tmp_path / "b.zarr", inp, group=group)
    md, _, doc = _report(tmp_path, tmp_path / "b.zarr", "planted", "b")
    assert doc["warnings"]["group_leak"]["store"]["groups"] == {"speaker-9": {"test": 1, "val": 1}}
    assert "The store's splits share groups (found in the store's samples)" in _header(md)


def test_run_without_collapse_record_is_checked_by_the_report(tmp_path):
    clean, _ = planted(n=200, seed=5, n_seeds=2, modalities=("text", "audio"))
    assert analyse(clean, split="test", n_boot=0, media_descriptors=False)["warnings"]["messages"] == []
    inp, _ = planted(n=200, seed=5, n_seeds=2, modalities=("text", "audio"))
    inp.probs["text"][1] = np.tile([0.3, 0.7], (200, 1))   # seed 1 of text predicts class 1 for every row
    r = analyse(inp, split="test", n_boot=0, media_descriptors=False)
    w = r["warnings"]
    assert w["collapsed_checked_by"] == "report"
    assert [(e["subset"], e["seed"], e["split"]) for e in w["collapsed"]] == [
        ("text", 1, "test (checked by the report)")]
    assert w["collapsed"][0]["reason"] == "predicts one class (1) for all 200 rows"
    paths = write_report(r, tmp_path / "r", plots=False)
    assert "Collapsed: text seed 1 collapsed on test (checked by the report): predicts one class" in _header(
        paths["md"].read_text())


def test_trained_run_collapse_and_mismatch_reach_the_report(tmp_path, capsys):
    from mixsig.heads import train_run
    from tests.heads.helpers import make_store

    path = tmp_path / "t.zarr"
    store, keys, X, y = make_store(path, n_train=80, n_val=40, n_test=40, constant=True)
    run = train_run(store, "logreg", {"a": keys["a"], "z": keys["z"]}, seeds=[0], name="collapse")
    assert {(e["subset"], e["split"]) for e in run.attrs["collapsed"]} == {("z", "val"), ("z", "test")}
    capsys.readouterr()
    md, _, doc = _report(tmp_path, path, "collapse", "c")
    assert doc["warnings"]["collapsed"] == run.attrs["collapsed"]
    err = capsys.readouterr().err  # the terminal summary repeats each warning on stderr
    for e in run.attrs["collapsed"]:
        assert describe_collapse(e) in err and "WARNING:" in err
    for e in run.attrs["collapsed"]:
        assert f"Collapsed: {describe_collapse(e)}" in _header(md)

    swapped = train_run(store, "logreg", {"a": keys["b"], "b": keys["a"]}, seeds=[0], name="swap",
                        allow_modality_mismatch=True)
    md, _, doc = _report(tmp_path, path, "swap", "s")
    assert doc["warnings"]["modality_mismatch"] == swapped.attrs["modality_mismatch"] != {}
    assert f"Key {keys['b']} holds b features but was used as a" in _header(md)
    # a run written without the attr (another writer): the report asks the store
    st = open_store(path, mode="r+")
    old = st.read_run("swap")
    st.write_run("swap-old", {k: v for k, v in old.attrs.items() if k != "modality_mismatch"}, old.subsets)
    md, _, doc = _report(tmp_path, path, "swap-old", "o")
    assert doc["warnings"]["modality_mismatch"] == swapped.attrs["modality_mismatch"]


def test_many_collapses_are_capped_in_the_header_but_all_in_json(tmp_path):
    n_extra = 25
    inp, _ = planted(n=100, seed=6, modalities=("text", "audio"))
    many = [{"subset": "text", "seed": s, "split": "val", "reason": "predicts one class (0) for all 9 rows"}
            for s in range(n_extra)]
    to_store(tmp_path / "s.zarr", inp, run_attrs={"collapsed": many})
    md, _, doc = _report(tmp_path, tmp_path / "s.zarr", "planted")
    assert len(doc["warnings"]["collapsed"]) == n_extra
    assert _header(md).count("Collapsed: text seed") == 20 and "... and 5 more collapsed" in _header(md)
