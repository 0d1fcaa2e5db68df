"""Keys and runs named without hashes on the command line (issue 15 §3): train, study, report, cache, and the
demo's ready-to-paste next commands parsed by the real parser."""

import shlex

import pytest

from mixsig.cli import build_parser, main
from tests.synthetic import make_synthetic_store


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """Two text keys (enc-a, enc-b), one audio and one video key; no runs yet."""
    path = tmp_path_factory.mktemp("names") / "s.zarr"
    store, keys = make_synthetic_store(path, n=60, extra_keys={"text": 0.5})
    return str(path), store, keys


def test_train_takes_prefixes_and_the_modality_alone_and_records_full_keys(named, capsys):
    path, store, keys = named
    assert main(["train", path, "--head", "logreg", "--features", "text=text.synthetic-text-enc-b,audio=audio",
                 "--name", "by-prefix"]) == 0
    capsys.readouterr()
    assert store.read_run("by-prefix").attrs["features"] == {"text": keys["text"][1], "audio": keys["audio"][0]}


def test_train_refuses_an_ambiguous_or_unknown_key_and_writes_nothing(named, capsys):
    path, store, keys = named
    assert main(["train", path, "--head", "logreg", "--features", "text=text", "--name", "amb"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--features text=text is ambiguous" in err and keys["text"][0] in err and keys["text"][1] in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["train", path, "--head", "logreg", "--features", "audio=audio.bert", "--name", "unk"]) == 1
    err = capsys.readouterr().err
    assert "No feature key 'audio.bert' (nor one starting with it)" in err and keys["video"][0] in err
    assert "amb" not in store.runs() and "unk" not in store.runs()


def test_study_resolves_alternatives_and_refuses_an_ambiguous_one(named, capsys):
    path, store, keys = named
    assert main(["study", "run", path, "--name", "amb", "--heads", "logreg", "--features", "text=text|audio",
                 "--trials", "1", "--no-final"]) == 2
    err = capsys.readouterr().err
    assert "--features text=text is ambiguous" in err and keys["text"][1] in err
    assert main(["study", "run", path, "--name", "alt", "--heads", "logreg", "--features",
                 "text=text.synthetic-text-enc-a|text.synthetic-text-enc-b,audio=audio", "--trials", "2",
                 "--no-final", "--json"]) == 0
    capsys.readouterr()
    from mixsig.studies import study_summary

    summary = study_summary(path, "alt")
    assert keys["text"][1] in str(summary) and "text.synthetic-text-enc-b|" not in str(summary)


def test_report_takes_a_run_prefix(named, tmp_path, capsys):
    path, store, keys = named
    assert main(["train", path, "--head", "logreg", "--features", "audio=audio", "--name", "rep-audio"]) == 0
    capsys.readouterr()
    out = tmp_path / "rep"
    assert main(["report", path, "--run", "rep-", "--out", str(out), "--no-plots", "--no-media",
                 "--bootstrap", "0"]) == 0
    assert "run rep-audio on split test" in capsys.readouterr().out and (out / "report.json").exists()
    assert main(["report", path, "--run", "zzz", "--out", str(tmp_path / "x")]) == 1
    assert "no run named 'zzz' (nor one starting with it)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cache_explain_info_diff_take_short_names(named, capsys):
    path, store, keys = named
    a, b = keys["text"]
    assert main(["cache", "explain", path, "text.synthetic-text-enc-a"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{a} = <modality>") and "matches key: True" in out
    assert main(["cache", "info", path, "video", "--json"]) == 0
    assert keys["video"][0] in capsys.readouterr().out
    assert main(["cache", "diff", path, "text.synthetic-text-enc-a", "text.synthetic-text-enc-b"]) == 0
    assert a in capsys.readouterr().out
    assert main(["cache", "explain", path, "text"]) == 2
    err = capsys.readouterr().err
    assert "key 'text' is ambiguous" in err and a in err and b in err


def test_demo_next_commands_parse_and_run(named, tmp_path, capsys):
    from mixsig.demo.pipeline import next_commands

    path, store, keys = named
    base = {m: ks[0] for m, ks in keys.items()}
    assert main(["train", path, "--head", "logreg", "--features", "audio=audio", "--name", "study-demo"]) == 0
    capsys.readouterr()
    report, train = next_commands(store, "study-demo", base, "test", tmp_path)
    assert keys["text"][0].rsplit(".", 1)[-1] not in train  # no hash to copy
    parser = build_parser()
    r = parser.parse_args(shlex.split(report)[1:])
    assert (r.run, r.split, r.out) == ("study-demo", "test", str((tmp_path / "report-again").absolute()))
    t = parser.parse_args(shlex.split(train)[1:])
    assert t.features == "text=text.synthetic-text-enc-a,audio=audio,video=video" and t.head == "logreg"
    assert main(shlex.split(train)[1:]) == 0
    capsys.readouterr()
    assert store.read_run("logreg-demo").attrs["features"] == base
