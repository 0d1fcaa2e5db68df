"""`mixsig train` through mixsig.cli.main: the printed table and --json, collapse warnings, --seeds/--n-seeds,
--head choices from the registry."""

import json
import logging

import pytest

from mixsig.cache import open_store
from mixsig.cli import main
from tests.heads.helpers import shared_store


@pytest.fixture(scope="module")
def gappy(tmp_path_factory):
    """Keys a (the label), b, c (noise) with rows not done (b: 3, 170; c: 250) and votes."""
    return shared_store(tmp_path_factory, "gappy")


@pytest.fixture(scope="module")
def collapsing(tmp_path_factory):
    """Keys a (signal), b, c (noise) and z (all zeros), each held under its own modality."""
    return shared_store(tmp_path_factory, "collapsing")


def _feats(**kw):
    return ",".join(f"{m}={k}" for m, k in kw.items())


def test_cli_train_prints_the_table_and_json(gappy, capsys):
    path, store, keys = gappy
    feats = ",".join(f"{m}={k}" for m, k in keys.items())
    assert main(["train", str(path), "--head", "logreg", "--features", feats, "--n-seeds", "3", "--name", "cli"]) == 0
    out = capsys.readouterr().out
    assert "run cli: head logreg, 3 seed(s) [0, 1, 2], 7 subsets, 297 of 300 rows used (3 excluded" in out
    lines = [ln.split() for ln in out.splitlines()]
    row = next(ln for ln in lines if ln[:2] == ["a+b+c", "test"])
    run = store.read_run("cli")
    assert float(row[2]) == pytest.approx(run.attrs["metrics"]["a+b+c"]["test"]["accuracy"]["mean"], abs=5e-4)
    assert main(["train", str(path), "--head", "lightgbm", "--features", f"a={keys['a']}", "--seeds", "42,43",
                 "--params", '{"n_estimators": 30}', "--name", "cli2", "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["run"] == "cli2" and js["seeds"] == [42, 43] and js["params"]["n_estimators"] == 30
    assert set(js["metrics"]["a"]) == {"train", "val", "test"}
    assert main(["train", str(path), "--head", "logreg", "--features", "a"]) == 2
    assert "MODALITY=KEY" in capsys.readouterr().err
    assert main(["train", str(path), "--head", "logreg", "--features", f"a={keys['a']}", "--params", "{bad"]) == 2


def test_cli_warns_each_collapse_once_and_still_writes_the_run(collapsing, capsys, caplog):
    path, store, keys = collapsing
    with caplog.at_level(logging.WARNING):
        rc = main(["train", str(path), "--head", "logreg", "--features", _feats(a=keys["a"], z=keys["z"]),
                   "--seeds", "0,1", "--name", "cli-collapse"])
    assert rc == 0
    cap = capsys.readouterr()
    err = cap.err.splitlines()
    for seed in (0, 1):
        for split in ("val", "test"):
            line = next(ln for ln in err if ln.startswith(f"WARNING: z seed {seed} collapsed on {split}: "))
            assert "predicts one class" in line and err.count(line) == 1
    assert "WARNING: 2 of 6 models (subset x seed) of run cli-collapse collapsed on val, test" in cap.err
    assert "collapsed" not in cap.out and "2 seed(s) [0, 1]" in cap.out
    # the CLI prints the WARNING lines itself; its logger does not repeat them
    assert not [r for r in caplog.records if "collapsed on" in r.getMessage()]
    assert len(open_store(path).read_run("cli-collapse").attrs["collapsed"]) == 4


def test_cli_clean_run_prints_no_warning(collapsing, capsys):
    path, store, keys = collapsing
    assert main(["train", str(path), "--head", "logreg", "--features", _feats(a=keys["a"]), "--seeds", "5,",
                 "--name", "cli-clean", "--json"]) == 0
    cap = capsys.readouterr()
    js = json.loads(cap.out)
    assert js["collapsed"] == [] and js["seeds"] == [5] and "WARNING" not in cap.err


@pytest.mark.parametrize("argv, seeds", [
    (["--seeds", "42,"], [42]),
    (["--seeds", "0,1,2"], [0, 1, 2]),
    (["--seeds", " 3, 1 "], [3, 1]),
    (["--n-seeds", "3"], [0, 1, 2]),
    ([], [0]),
])
def test_seeds_accepted(collapsing, capsys, argv, seeds):
    path, store, keys = collapsing
    assert main(["train", str(path), "--head", "logreg", "--features", _feats(a=keys["a"]), "--json",
                 "--overwrite", "--name", "seeds"] + argv) == 0
    assert json.loads(capsys.readouterr().out)["seeds"] == seeds


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "42"], ["--seeds 42,", "--n-seeds 42"]),
    (["--seeds", "0"], ["--seeds", "--n-seeds"]),
    (["--seeds", "1,1"], ["[1] given more than once"]),
    (["--seeds", "0,,1"], ["empty entry"]),
    (["--seeds", ","], ["empty entry"]),
    (["--seeds=-1,2"], [">= 0"]),
    (["--seeds", "a,b"], ["integers"]),
    (["--n-seeds", "0"], [">= 1"]),
    (["--n-seeds", "2,3"], ["count"]),
    (["--seeds", "0,1", "--n-seeds", "2"], ["not both"]),
])
def test_seeds_refused(collapsing, capsys, argv, message):
    path, store, keys = collapsing
    assert main(["train", str(path), "--head", "logreg", "--features", _feats(a=keys["a"]), "--name", "bad-seeds"]
                + argv) == 2
    err = capsys.readouterr().err
    for part in message:
        assert part in err, (part, err)
    assert "bad-seeds" not in store.runs()


def test_train_head_choices_come_from_the_registry(capsys):
    from mixsig.cli import main
    from mixsig.heads import HEADS, LogRegHead, register_head

    with pytest.raises(SystemExit) as exc:
        main(["train", "store.zarr", "--head", "tree"])
    assert exc.value.code == 2 and "invalid choice: 'tree'" in capsys.readouterr().err

    @register_head("logreg2")
    class LogReg2(LogRegHead):
        """A second logistic-regression head, registered only to show up in the CLI's choices."""

    try:
        assert main(["train", "store.zarr", "--head", "list"]) == 0
        assert capsys.readouterr().out.split() == ["concat", "gated", "late", "lightgbm", "logreg", "logreg2"]
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        assert "concat, gated, late, lightgbm, logreg, logreg2" in " ".join(capsys.readouterr().out.split())
    finally:
        HEADS.unregister("logreg2")
    assert "logreg2" not in HEADS
