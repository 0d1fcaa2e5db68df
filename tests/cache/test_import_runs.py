"""mixsig.cache.import_run: predictions from a CSV (long form) or an NPZ become a run; every bad input is refused
before anything is written, naming the file line (or id) and the fix, and leaves the store's runs as they were."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from mixsig.cache import RunRecord, delete_run, import_run, list_runs, open_store, run_attrs
from mixsig.cli import main
from mixsig.errors import RefusedInput, StoreError, UsageError

IDS = ["a", "b", "c", "d"]
SPLITS = ["train", "val", "test", "test"]
LABELS = ["neg", "pos", "pos", "neg"]
SUBSETS = ("text", "audio", "text+audio")


def make_store(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("id,split,label,text\n" + "".join(f"{i},{s},{y},t {i}\n" for i, s, y in zip(IDS, SPLITS, LABELS)))
    assert main(["cache", "init", str(tmp_path / "s.zarr"), "--manifest", str(m)]) == 0
    return open_store(tmp_path / "s.zarr", "r+")


def good_rows():
    rows = []
    for sub in SUBSETS:
        for i, y in zip(IDS, LABELS):
            p = 0.8 if y == "pos" else 0.3
            rows.append([i, sub, "0", f"{1 - p:.3f}", f"{p:.3f}"])
    return rows


def write_csv(path, rows, header=("id", "subset", "seed", "neg", "pos")):
    path.write_text(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_csv_imports_as_a_run(tmp_path):
    store = make_store(tmp_path)
    rows = [r for r in good_rows() if r[0] != "d"]  # d is not predicted
    rec = import_run(store, write_csv(tmp_path / "p.csv", rows), "imp")
    assert isinstance(rec, RunRecord) and rec.source == "import" and rec.head == "imported" and rec.params == {}
    run = open_store(tmp_path / "s.zarr").read_run("imp")
    assert list(run.subsets) == ["text", "audio", "text+audio"] and run.modalities == ["text", "audio"]
    p = run.subsets["text+audio"].probs
    assert p.shape == (1, 4, 2) and np.isnan(p[0, 3]).all()
    np.testing.assert_allclose(p[0, 1], [0.2, 0.8], atol=1e-6)
    assert run.attrs["split_hash"] == store.split_hash() and run.attrs["seeds"] == [0]
    assert run.attrs["imported_from"]["format"] == "csv" and len(run.attrs["imported_from"]["sha256"]) == 64
    assert run.attrs["metrics"]["text"]["test"]["accuracy"]["mean"] == 1.0
    assert [r["name"] for r in list_runs(store)] == ["imp"] and run_attrs(store, "imp")["source"] == "import"


def test_logits_need_the_flag_and_get_a_softmax(tmp_path):
    store = make_store(tmp_path)
    rows = [[i, s, "0", "2.0", "-1.0"] for s in SUBSETS for i in IDS]
    f = write_csv(tmp_path / "l.csv", rows)
    with pytest.raises(RefusedInput, match=r"line 2: id 'a'.*not a distribution.*within 0.001.*--logits"):
        import_run(store, f, "l")
    assert store.runs() == []
    import_run(store, f, "l", logits=True)
    p = store.read_run("l").subsets["text"].probs[0, 0]
    np.testing.assert_allclose(p, np.exp([2.0, -1.0]) / np.exp([2.0, -1.0]).sum(), atol=1e-6)


def _edit(rows, i, col, value):
    rows = [list(r) for r in rows]
    rows[i][col] = value
    return rows


BAD_CSV = {
    "unknown_id": (lambda: _edit(good_rows(), 2, 0, "zz"), None, r"line 4: id 'zz' is not a sample of the store.*cache init"),
    "class_missing": (good_rows, ("id", "subset", "seed", "neg", "positive"),
                      r"line 1 \(header\): columns \['pos'\] missing; columns \['positive'\] unknown.*\['neg', 'pos'\]"),
    "above_one": (lambda: _edit(good_rows(), 5, 4, "1.5"), None, r"line 7: id 'b'.*not a distribution"),
    "negative": (lambda: _edit(_edit(good_rows(), 0, 4, "-0.2"), 0, 3, "1.2"), None, r"line 2: id 'a'.*\[0, 1\]"),
    "sum_not_one": (lambda: _edit(good_rows(), 3, 4, "0.9"), None, r"line 5: id 'd'.*summing to 1 within 0.001"),
    "non_finite": (lambda: _edit(good_rows(), 1, 3, "nan"), None, r"line 3: id 'b' has a non-finite value"),
    "unknown_modality": (lambda: _edit(good_rows(), 4, 1, "speech"), None,
                         r"line 6: subset 'speech' must name distinct modalities.*\['speech'\] unknown"),
    "duplicate": (lambda: _edit(good_rows(), 1, 0, "a"), None, r"line 3: id 'a' subset text seed 0 repeats line 2"),
    "subset_missing_id": (lambda: good_rows()[:-1], None,
                          r"subset text\+audio seed 0: 1 ids that other subsets or seeds have are missing.*'d'"),
    "no_full_subset": (lambda: [r for r in good_rows() if r[1] != "text+audio"], None,
                       r"no subset holds every modality"),
    "not_a_number": (lambda: _edit(good_rows(), 0, 2, "x"), None, r"line 2: id 'a': a seed or probability"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_is_refused_naming_the_line_and_nothing_is_written(tmp_path, case):
    rows, header, message = BAD_CSV[case]
    store = make_store(tmp_path)
    import_run(store, write_csv(tmp_path / "ok.csv", good_rows()), "kept")
    before = store.read_run("kept").subsets["text"].probs.copy()
    f = write_csv(tmp_path / "bad.csv", rows(), header or ("id", "subset", "seed", "neg", "pos"))
    with pytest.raises(RefusedInput, match=message):
        import_run(store, f, "bad")
    with pytest.raises(RefusedInput, match=message):  # even replacing: the existing run is left as it was
        import_run(store, f, "kept", overwrite=True)
    fresh = open_store(tmp_path / "s.zarr")
    assert fresh.runs() == ["kept"]
    np.testing.assert_array_equal(fresh.read_run("kept").subsets["text"].probs, before)


def test_cli_exit_codes_and_one_line(tmp_path, capsys):
    store = make_store(tmp_path)
    s = str(tmp_path / "s.zarr")
    bad = write_csv(tmp_path / "bad.csv", _edit(good_rows(), 2, 0, "zz"))
    assert main(["runs", "import", s, str(bad), "--name", "x"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "line 4: id 'zz' is not a sample of the store" in err
    pq = tmp_path / "p.parquet"
    pq.write_bytes(b"PAR1")
    assert main(["runs", "import", s, str(pq), "--name", "x"]) == 3
    assert "p.parquet: the file: not a readable Parquet file" in capsys.readouterr().err
    ok = write_csv(tmp_path / "ok.csv", good_rows())
    assert main(["runs", "import", s, str(ok), "--name", "x"]) == 0
    assert main(["runs", "import", s, str(ok), "--name", "x"]) == 1
    err = capsys.readouterr().err
    assert "run 'x' already exists" in err and "pass --overwrite" in err
    assert store.runs() == ["x"]


def test_npz_forms_and_bad_npz(tmp_path):
    store = make_store(tmp_path)
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1], size=(3, 2, 4))  # [k, S, n, C]
    np.savez(tmp_path / "a.npz", ids=np.array(IDS), subsets=np.array(SUBSETS), probs=p, seeds=np.array([5, 7]))
    import_run(store, tmp_path / "a.npz", "a")
    # the same as one array per subset, classes in another order
    np.savez(tmp_path / "b.npz", ids=np.array(IDS), classes=np.array(["pos", "neg"]), seeds=np.array([5, 7]),
             **{f"probs@{s}": p[i][..., ::-1] for i, s in enumerate(SUBSETS)})
    import_run(store, tmp_path / "b.npz", "b")
    ra, rb = store.read_run("a"), store.read_run("b")
    assert ra.attrs["seeds"] == [5, 7]
    for s in SUBSETS:
        np.testing.assert_allclose(ra.subsets[s].probs, rb.subsets[s].probs, atol=1e-7)
    bad = p.copy()
    bad[2, 1, 3] = [0.7, 0.7]
    np.savez(tmp_path / "c.npz", ids=np.array(IDS), subsets=np.array(SUBSETS), probs=bad)
    with pytest.raises(RefusedInput, match=r"ids\[3\] subset text\+audio seed 1: id 'd'.*not a distribution"):
        import_run(store, tmp_path / "c.npz", "c")
    np.savez(tmp_path / "d.npz", ids=np.array(["a", "b", "c", "q"]), subsets=np.array(SUBSETS), probs=p)
    with pytest.raises(RefusedInput, match=r"ids\[3\]: id 'q' is not a sample of the store"):
        import_run(store, tmp_path / "d.npz", "d")
    np.savez(tmp_path / "e.npz", ids=np.array(IDS), subsets=np.array(["text", "smell", "text+audio"]), probs=p)
    with pytest.raises(RefusedInput, match=r"subset 'smell' must name distinct modalities"):
        import_run(store, tmp_path / "e.npz", "e")
    np.savez(tmp_path / "f.npz", ids=np.array(IDS, dtype=object), subsets=np.array(SUBSETS), probs=p)
    with pytest.raises(RefusedInput, match=r"not a readable .npz without pickles"):
        import_run(store, tmp_path / "f.npz", "f")
    assert open_store(tmp_path / "s.zarr").runs() == ["a", "b"]


def test_a_write_failing_with_enospc_leaves_no_run(tmp_path, monkeypatch):
    """A full disk while the arrays are written (the real write path, its digest step failing on the 2nd
    subset): the error propagates and no half-written run is left; the other runs are intact."""
    import mixsig.cache._runs as runs_mod

    store = make_store(tmp_path)
    import_run(store, write_csv(tmp_path / "ok.csv", good_rows()), "kept")
    real, calls = runs_mod.record_digests, []

    def full_disk(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(runs_mod, "record_digests", full_disk)
    with pytest.raises(OSError, match="No space left"):
        import_run(store, tmp_path / "ok.csv", "new")
    monkeypatch.undo()
    fresh = open_store(tmp_path / "s.zarr")
    assert fresh.runs() == ["kept"] and fresh.read_run("kept").subsets["text"].probs.shape == (1, 4, 2)


def test_delete_run_and_unknown_names(tmp_path):
    store = make_store(tmp_path)
    import_run(store, write_csv(tmp_path / "ok.csv", good_rows()), "x")
    with pytest.raises(StoreError, match=r"no run named 'y'.*runs: \['x'\].*mixsig runs ls"):
        delete_run(store, "y")
    with pytest.raises(StoreError, match=r"read-only"):
        delete_run(open_store(tmp_path / "s.zarr"), "x")
    delete_run(store, "x")
    assert open_store(tmp_path / "s.zarr").runs() == []
    with pytest.raises(UsageError, match="no such predictions file"):
        import_run(store, tmp_path / "missing.csv", "z")


CHILD = """
import sys, time
from pathlib import Path
import mixsig.cache._runs as runs_mod
from mixsig.cache import import_run, open_store
real, calls = runs_mod.record_digests, []
def slow(*a, **k):
    calls.append(1)
    if len(calls) == 2:  # the first subset's arrays are on disk: say so, then wait to be killed
        Path(sys.argv[3]).write_text("go")
        time.sleep(60)
    return real(*a, **k)
runs_mod.record_digests = slow
import_run(open_store(sys.argv[1], "r+"), sys.argv[2], "new")
"""


def test_an_import_killed_mid_write_is_listed_interrupted_and_replaced_or_removed(tmp_path, capsys):
    """kill -9 (by PID) of an import while it writes arrays: `runs ls` marks the run interrupted, the report and
    a plain re-import refuse it naming the fix, `--overwrite` replaces it, `runs rm` removes it; the run imported
    before is intact."""
    import os
    import signal
    import subprocess
    import sys
    import time

    store = make_store(tmp_path)
    f = write_csv(tmp_path / "ok.csv", good_rows())
    import_run(store, f, "kept")
    marker = tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "s.zarr"), str(f), str(marker)])
    deadline = time.time() + 60
    while not marker.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never reached the write"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    s = str(tmp_path / "s.zarr")
    capsys.readouterr()
    assert main(["runs", "ls", s]) == 0
    assert "new (interrupted)" in capsys.readouterr().out
    assert main(["report", s, "--run", "new", "--out", str(tmp_path / "r")]) == 1
    assert "interrupted" in capsys.readouterr().err
    assert main(["runs", "import", s, str(f), "--name", "new"]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["runs", "import", s, str(f), "--name", "new", "--overwrite"]) == 0
    assert open_store(s).read_run("new").subsets["text+audio"].probs.shape == (1, 4, 2)
    assert main(["runs", "rm", s, "new"]) == 0
    fresh = open_store(s)
    assert fresh.runs() == ["kept"] and fresh.read_run("kept").attrs["complete"]


def _parquet(path, rows, header=("id", "subset", "seed", "neg", "pos")):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = list(zip(*rows))
    data = {h: (pa.array([int(v) for v in c]) if h == "seed" else pa.array([float(v) for v in c])
                if h in ("neg", "pos") else pa.array(list(c))) for h, c in zip(header, cols)}
    pq.write_table(pa.table(data), path)
    return path


def test_csv_parquet_and_npz_give_the_same_run(tmp_path):
    store = make_store(tmp_path)
    rows = good_rows()
    runs = {}
    runs["csv"] = import_run(store, write_csv(tmp_path / "p.csv", rows), "from-csv")
    runs["parquet"] = import_run(store, _parquet(tmp_path / "p.parquet", rows), "from-parquet")
    probs = np.array([[[float(r[3]), float(r[4])] for r in rows if r[1] == sub] for sub in SUBSETS], np.float32)
    np.savez(tmp_path / "p.npz", ids=np.array(IDS), subsets=np.array(SUBSETS), probs=probs[:, None])
    runs["npz"] = import_run(store, tmp_path / "p.npz", "from-npz")
    read = {k: store.read_run(r.name) for k, r in runs.items()}
    assert runs["parquet"].extra["imported_from"]["format"] == "parquet"
    for k in ("parquet", "npz"):
        assert list(read[k].subsets) == list(read["csv"].subsets) == ["text", "audio", "text+audio"]
        for sub in SUBSETS:
            np.testing.assert_array_equal(read[k].subsets[sub].probs, read["csv"].subsets[sub].probs)
        assert runs[k].metrics == runs["csv"].metrics and runs[k].seeds == runs["csv"].seeds


def test_bad_parquet_is_refused_naming_the_row(tmp_path, capsys):
    store = make_store(tmp_path)
    s = str(tmp_path / "s.zarr")
    bad = _parquet(tmp_path / "bad.parquet", _edit(good_rows(), 2, 0, "zz"))
    assert main(["runs", "import", s, str(bad), "--name", "x"]) == 3
    assert "bad.parquet: row 3: id 'zz' is not a sample of the store" in capsys.readouterr().err
    over = _parquet(tmp_path / "over.parquet", _edit(good_rows(), 0, 4, "1.5"))
    with pytest.raises(RefusedInput, match=r"over.parquet: row 1: id 'a': \[0.7, 1.5\] is not a distribution"):
        import_run(store, over, "x")
    assert store.runs() == []


@pytest.mark.parametrize("name", [".", "..", "__runs", "a/b"])
def test_import_refuses_a_run_name_zarr_cannot_hold(tmp_path, capsys, name):
    make_store(tmp_path)
    ok = write_csv(tmp_path / "ok.csv", good_rows())
    assert main(["runs", "import", str(tmp_path / "s.zarr"), str(ok), "--name", name]) == 2
    assert f"--name {name!r}: a run's name" in capsys.readouterr().err
    assert open_store(tmp_path / "s.zarr").runs() == []
