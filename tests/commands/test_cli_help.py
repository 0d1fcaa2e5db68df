"""A CLI that helps: "Did you mean ...?" on unknown names (one helper, mixsig.errors.did_you_mean), the global
-q/--quiet and --debug before or after the command, a description for every `cache` action, readable `cache diff`."""

import argparse
import json

import pytest

from mixsig.cli import build_parser, main
from mixsig.errors import HeadError, StoreError, StudyError, UsageError, did_you_mean
from tests.cache.helpers import D, fill_key, make_samples, prov


def test_did_you_mean_finds_close_names_and_nothing_for_far_ones():
    assert did_you_mean("gatd", ["concat", "gated", "late"]) == " Did you mean 'gated'?"
    assert did_you_mean("Text", ["text", "audio"]) == " Did you mean 'text'?"          # case-insensitive
    assert did_you_mean("mlp", ["concat", "gated", "late"]) == ""                       # null: nothing close
    assert did_you_mean("gated", ["gated"]) == "" and did_you_mean("x", []) == ""


def test_unknown_head_and_modality_suggest_the_close_name():
    from mixsig.heads import get_head
    from mixsig.modalities import INPUTS

    with pytest.raises(HeadError, match=r"Unknown head 'gatd'\. Did you mean 'gated'\? Valid heads: concat, gated"):
        get_head("gatd")
    with pytest.raises(UsageError, match=r"Unknown modality 'audoi'\. Did you mean 'audio'\?"):
        INPUTS.get("audoi")


@pytest.mark.parametrize("argv, said", [
    (["valdate", "m.csv"], "Did you mean 'validate'?"),
    (["train", "s.zarr", "--head", "gatd", "--features", "text=t"], "Did you mean 'gated'?"),
    (["extract", "m.csv", "--store", "s", "--modality", "txt", "--encoder", "e"], "Did you mean 'text'?"),
])
def test_argparse_choices_suggest_the_close_name(argv, said, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and said in capsys.readouterr().err


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mixsig.cache import create_store

    path = tmp_path_factory.mktemp("cli") / "store.zarr"
    s = create_store(path, make_samples(), attrs={"manifest_sha256": "x"})
    a = s.create_key(prov(), D, chunk_rows=16)
    fill_key(s, a)
    b = s.create_key(prov(pooling="mean",
                          preprocessing={"max_length": 64, "note": "a long value " * 30}), D, chunk_rows=16)
    return s, a, b


def test_unknown_key_and_study_suggest_the_close_name(store, capsys):
    s, a, b = store
    assert main(["cache", "info", s.url, "text.tiny-robrta"]) == 1
    err = capsys.readouterr().err
    assert "Did you mean 'text.tiny-roberta" in err and len(err.strip().splitlines()) == 1
    assert main(["cache", "info", s.url, "zzz"]) == 1
    assert "Did you mean" not in capsys.readouterr().err                                 # null: nothing close

    import optuna

    from mixsig.studies._common import load_study

    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="emotion", storage=storage)
    with pytest.raises(StudyError, match=r"no study named 'emotin' in this storage; Did you mean 'emotion'\?"):
        load_study(storage, "emotin")


def test_unknown_run_suggests_the_close_name(store):
    import numpy as np

    from mixsig.cache import RunSubset

    s, a, _ = store
    if "logreg-text" not in s.runs():
        s.write_run("logreg-text", {"head": "logreg"}, {"text": RunSubset(np.full((1, len(s.samples), 2), 0.5, "f4"))})
    with pytest.raises(UsageError, match=r"no run named 'logreg-txet'.*Did you mean 'logreg-text'\?"):
        s.resolve_run("logreg-txet")


@pytest.mark.parametrize("argv", [["-q", "cache", "ls"], ["cache", "ls", "-q"], ["cache", "-q", "ls"]])
def test_quiet_and_debug_work_before_or_after_the_command(argv, store, capsys):
    s, a, _ = store
    assert main([*argv, s.url, "--json"]) == 0
    assert a in capsys.readouterr().out
    with pytest.raises(StoreError):        # --debug after the command: the traceback (the exception) comes out
        main(["cache", "info", s.url, "zzz", "--debug"])


def test_every_cache_action_has_a_description_and_every_option_a_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["cache"]
    actions = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"init", "ls", "info", "explain", "diff", "verify", "rm", "import-h5", "export-h5"} <= set(actions)
    for name, p in actions.items():
        assert p.description and len(p.description) > 40, name
        for act in p._actions:
            if not isinstance(act, argparse._HelpAction):
                assert act.help, (name, act.dest)


def test_cache_diff_prints_readable_rows(store, capsys):
    s, a, b = store
    assert main(["cache", "diff", s.url, a, b]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"A = {a}" and lines[1] == f"B = {b}"
    assert max(len(line) for line in lines[2:]) < 130                       # not one 500-character cell
    assert any(line.startswith("pooling") and "cls" in line and "mean" in line for line in lines)
    assert "…" in out                                                         # the long value is cut
    assert main(["cache", "diff", s.url, a, b, "--json"]) == 0
    fields = {d["field"]: d["b"] for d in json.loads(capsys.readouterr().out)}
    assert fields["preprocessing.note"] == "a long value " * 30               # --json: whole


@pytest.mark.slow
def test_unknown_split_of_the_report_suggests_the_close_name(tmp_path, capsys):
    from tests.synthetic import make_synthetic_store

    store, keys = make_synthetic_store(tmp_path / "r.zarr", n=60, dims={"text": 4, "audio": 4})
    from mixsig.heads import train_run

    train_run(store, "logreg", {m: k[0] for m, k in keys.items()}, name="lr")
    assert main(["report", str(store.local_path), "--run", "lr", "--split", "tset", "--out", str(tmp_path / "o"),
                 "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "split 'tset' has no rows; Did you mean 'test'?" in err
