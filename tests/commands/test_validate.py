"""`mixsig validate` through mixsig.cli.main: problems listed once with their rows, exit codes, --json, and no heavy
import (numpy included) while validating."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mixsig.cli
from mixsig.demo import make_corpus
from tests.commands.helpers import HEAVY


@pytest.fixture
def cli():
    return mixsig.cli.main


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("demo"), n_rows=24, seed=3, media=True)


def _wav(path: Path, freq: float) -> None:
    t = np.arange(4000) / 16000
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000, subtype="PCM_16")


@pytest.fixture
def bad_manifest(tmp_path) -> Path:
    (tmp_path / "audio").mkdir()
    for i in (1, 2, 3, 4, 6, 7):
        _wav(tmp_path / "audio" / f"s{i}.wav", 100 + 37 * i)
    lines = [
        'id,split,label,group,text,audio,votes',
        's1,train,empathetic,g1,I am so sorry,audio/s1.wav,"[""empathetic"",""empathetic""]"',
        's2,train,neutral,g1,The bus leaves at nine,audio/s2.wav,"[""neutral""]"',
        's2,val,neutral,g2,See you then,audio/s3.wav,"[""neutral""]"',           # duplicate id
        's4,tets,neutral,g3,Noted,audio/s4.wav,"[""neutral""]"',                  # unknown split
        's5,train,neutral,g4,Fine,audio/s5.wav,"[""neutral""]"',                  # missing audio file
        's6,train,empathetic,g5,That must hurt,audio/s6.wav,"[""empathetic"", ""neutral"""',  # malformed votes
        's7,test,empathetic,g1,I hear you,audio/s7.wav,"[""empathetic""]"',       # group g1 in train and test
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "m.csv"


EXPECTED = [  # (row, column, code) of every problem of bad_manifest, in order
    (3, "id", "duplicate_id"),
    (4, "split", "unknown_split"),
    (5, "audio", "missing_media"),
    (6, "votes", "malformed_votes"),
    (7, "group", "group_leak"),
]


def test_must_show_bad_manifest_lists_each_problem_once(cli, bad_manifest, capsys):
    rc = cli(["validate", str(bad_manifest)])
    out = capsys.readouterr().out
    assert rc == 1
    problem_lines = [line for line in out.splitlines() if line.startswith("row ")]
    assert len(problem_lines) == len(EXPECTED)
    for (row, column, _), line in zip(EXPECTED, problem_lines):
        assert line.startswith(f"row {row}, column {column}: error: ")
    assert "duplicate id 's2' (first used in row 2)" in problem_lines[0]
    assert "unknown split 'tets'" in problem_lines[1]
    assert "'audio/s5.wav' does not exist" in problem_lines[2]
    assert "not a JSON list" in problem_lines[3]
    assert "group 'g1' is in 2 splits (train: 2 rows (1, 2); test: 1 row (7))" in problem_lines[4]
    assert "FAILED: 5 errors, 0 warnings" in out
    # the summary
    assert "train: 4 rows (empathetic 2, neutral 2)" in out
    assert "modalities (rows): text 7, audio 7" in out
    assert "votes: 6 rows, up to 2 annotators" in out


def test_bad_manifest_json(cli, bad_manifest, capsys):
    rc = cli(["validate", str(bad_manifest), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert data["ok"] is False and data["errors"] == 5 and data["warnings"] == 0
    assert [(p["row"], p["column"], p["code"]) for p in data["problems"]] == EXPECTED
    assert all(p["severity"] == "error" and p["message"] for p in data["problems"])
    s = data["summary"]
    assert s["rows"] == 7 and s["classes"] == ["empathetic", "neutral"]
    assert s["splits"]["train"] == {"rows": 4, "labels": {"empathetic": 2, "neutral": 2}, "groups": 3}
    assert s["splits"]["tets"]["rows"] == 1
    assert s["modalities"] == {"text": 7, "audio": 7, "video": 0}
    assert s["votes"] == {"rows": 6, "max_annotators": 2}


def test_classes_and_allow_splits_options(cli, bad_manifest, capsys):
    rc = cli(["validate", str(bad_manifest), "--json", "--classes", "neutral", "--allow-splits", "tets"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    got = [(p["row"], p["code"]) for p in data["problems"]]
    assert (4, "unknown_split") not in got
    # the empathetic rows (1, 6, 7) are now outside the label set, and so are the empathetic votes of row 1
    assert [r for r, c in got if c == "unknown_label"] == [1, 6, 7]
    assert (1, "unknown_vote_label") in got
    assert data["summary"]["classes"] == ["neutral"]


def test_demo_manifest_validates_clean(cli, demo_manifest, capsys):
    rc = cli(["validate", str(demo_manifest)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "OK: 0 errors, 0 warnings" in out
    assert not any(line.startswith("row ") for line in out.splitlines())
    rc = cli(["validate", str(demo_manifest), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["ok"] is True and data["problems"] == []
    assert data["summary"]["modalities"] == {"text": 24, "audio": 24, "video": 24}
    assert sorted(data["summary"]["votes_by_condition"]) == ["all", "audio", "text", "video"]


def test_warnings_do_not_fail(cli, tmp_path, capsys):
    _wav(tmp_path / "a.wav", 200)
    (tmp_path / "m.csv").write_text("id,split,label,audio\na,train,x,a.wav\nb,test,y,a.wav\n")
    rc = cli(["validate", str(tmp_path / "m.csv")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "row 2, column audio: warning: the same audio file and segment as id 'a' (row 1)" in out
    assert "OK: 0 errors, 1 warning" in out


def test_usage_errors_exit_2(cli, tmp_path, capsys):
    rc = cli(["validate", str(tmp_path / "nope.csv")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "nope.csv" in err and "does not exist" in err
    (tmp_path / "m.csv").write_text("id,split,label,text\na,train,x,hi\n")
    assert cli(["validate", str(tmp_path / "m.csv"), "--classes", "a,,b"]) == 2
    assert "--classes" in capsys.readouterr().err


def test_validate_imports_no_heavy_library(bad_manifest):
    code = textwrap.dedent(f"""
        import sys
        import mixsig.cli
        rc = mixsig.cli.main(["validate", {str(bad_manifest)!r}, "--json"])
        heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
        print("HEAVY", heavy, "RC", rc, file=sys.stderr)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY [] RC 1" in res.stderr, res.stderr


def test_unparseable_manifest_json_has_no_summary(cli, tmp_path, capsys):
    (tmp_path / "m.csv").write_text("name,split,text\na,train,hi\n")
    rc = cli(["validate", str(tmp_path / "m.csv"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert data["summary"] is None and data["sha256"] is None
    assert [(p["row"], p["column"], p["code"]) for p in data["problems"]] == [(None, "id", "missing_column")]
    rc = cli(["validate", str(tmp_path / "m.csv")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "column id: error: the manifest has no 'id' column" in out


def test_help_explains_allow_outside_paths(cli, capsys):
    with pytest.raises(SystemExit) as info:
        cli(["validate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert info.value.code == 0
    assert "--allow-outside-paths" in out and "outside the manifest's folder" in out and "never opened" in out


def test_outside_path_warned_and_not_reported_missing(cli, tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "m.csv").write_text("id,split,label,text,audio\na,train,x,hi,../gone.wav\n")
    rc = cli(["validate", str(tmp_path / "c" / "m.csv")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "row 1, column audio: warning: id 'a': audio path '../gone.wav' climbs out of the manifest's folder" in out
    assert cli(["validate", str(tmp_path / "c" / "m.csv"), "--allow-outside-paths"]) == 1
    assert "'../gone.wav' does not exist" in capsys.readouterr().out


def test_labels_differing_only_by_case_are_warned_once(cli, tmp_path, capsys):
    rows = [f"r{i},train,empathetic,hi {i}" for i in range(5)] + ["r5,val,Empathetic,hi", "r6,test,neutral,x",
                                                                  "r7,test,Empathetic,y", "r8,train,neutral,z"]
    (tmp_path / "m.csv").write_text("id,split,label,text\n" + "\n".join(rows) + "\n")
    assert cli(["validate", str(tmp_path / "m.csv"), "--json"]) == 0        # a warning: validation passes
    got = [p for p in json.loads(capsys.readouterr().out)["problems"] if p["code"] == "label_case"]
    assert len(got) == 1 and got[0]["row"] == 6 and got[0]["severity"] == "warning"
    assert "'empathetic' (5 rows, first row 1) and 'Empathetic' (2 rows, first row 6) differ only by case" \
        in got[0]["message"]
    # null: distinct labels, one spelling each
    (tmp_path / "ok.csv").write_text("id,split,label,text\na,train,empathetic,x\nb,test,neutral,y\n")
    assert cli(["validate", str(tmp_path / "ok.csv"), "--json"]) == 0
    assert not [p for p in json.loads(capsys.readouterr().out)["problems"] if p["code"] == "label_case"]
