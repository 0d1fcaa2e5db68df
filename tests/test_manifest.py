"""mixsig.manifest: parsing, every validation problem, load_manifest, to_samples."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixsig.errors import ManifestError, UsageError
from mixsig.manifest import Problem, load_manifest, media_hash, text_hash, to_samples, validate_manifest

HEADER = ["id", "split", "label", "group", "text", "audio", "start", "end", "votes"]


def write_wav(path: Path, freq: float, seconds: float = 0.25) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000, subtype="PCM_16")
    return path


def write_csv(path: Path, rows: list[dict], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


def row(i, split="train", label="neutral", **kw):
    return {"id": f"r{i}", "split": split, "label": label, "group": f"g{i}", "text": f"text number {i}", **kw}


def codes(problems: list[Problem]) -> list[tuple[int | None, str | None, str]]:
    return [(p.row, p.column, p.code) for p in problems]


def test_clean_csv_normalised_rows(tmp_path):
    write_wav(tmp_path / "a" / "x.wav", 220)
    path = write_csv(tmp_path / "m.csv", [
        row(1, label="empathetic", audio="a/x.wav", start="0.5", end="1.25", votes='["empathetic","neutral"]'),
        row(2, split="test", text="  keep  spaces "),
    ])
    manifest, problems = validate_manifest(path)
    assert problems == []
    assert manifest.classes == ("empathetic", "neutral")
    assert manifest.conditions == ()
    assert manifest.path == path.resolve() and manifest.root == tmp_path.resolve()
    assert manifest.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    r1, r2 = manifest.rows
    assert r1 == {"id": "r1", "split": "train", "label": "empathetic", "group": "g1", "text": "text number 1",
                  "audio": "a/x.wav", "video": None, "start": 0.5, "end": 1.25,
                  "votes": ["empathetic", "neutral"], "votes_by_condition": {}}
    assert r2["text"] == "  keep  spaces " and r2["audio"] is None and r2["start"] is None and r2["votes"] is None
    assert manifest.media_path(r1, "audio") == tmp_path.resolve() / "a" / "x.wav"
    assert manifest.media_path(r2, "audio") is None


def test_every_row_problem_reported_once_with_row_and_column(tmp_path):
    write_wav(tmp_path / "ok.wav", 200)
    rows = [
        row(1),                                                         # clean
        row(2, id=""),                                                  # empty id
        row(3, id="r1"),                                                # duplicate of row 1
        row(4, split="dev"),                                            # unknown split
        row(5, label=""),                                               # missing label in train
        row(6, label="happy"),                                          # not in --classes
        row(7, text="   "),                                             # whitespace-only text
        row(8, audio="ok.wav", start="2", end="1"),                     # start >= end
        row(9, audio="ok.wav", start="-1", end="1"),                    # negative start (same file: different segment)
        row(10, votes="empathetic,neutral"),                            # not JSON
        row(11, votes='["neutral", "sad"]'),                            # unknown vote label
        row(12, votes='{"a": 1}'),                                      # JSON but not a list
        row(13, text=""),                                               # no modality at all
        row(14, audio="nope/missing.wav"),                              # missing media
        row(15, start="soon"),                                          # not a number
        row(16, audio="adir"),                                          # a folder, not a file
    ]
    (tmp_path / "adir").mkdir()
    path = write_csv(tmp_path / "m.csv", rows)
    manifest, problems = validate_manifest(path, classes=["empathetic", "neutral"])
    assert manifest is not None
    errors = [p for p in problems if p.severity == "error"]
    assert codes(errors) == [
        (2, "id", "empty_id"),
        (3, "id", "duplicate_id"),
        (4, "split", "unknown_split"),
        (5, "label", "missing_label"),
        (6, "label", "unknown_label"),
        (7, "text", "empty_text"),
        (8, "end", "bad_segment"),
        (9, "start", "negative_start"),
        (10, "votes", "malformed_votes"),
        (11, "votes", "unknown_vote_label"),
        (12, "votes", "malformed_votes"),
        (13, None, "no_modality"),
        (14, "audio", "missing_media"),
        (15, "start", "bad_time"),
        (16, "audio", "missing_media"),
    ]
    by_code = {p.code: p for p in errors}
    assert "first used in row 1" in by_code["duplicate_id"].message
    assert "'dev'" in by_code["unknown_split"].message and "train, val, test" in by_code["unknown_split"].message
    assert "'happy'" in by_code["unknown_label"].message and "empathetic, neutral" in by_code["unknown_label"].message
    assert "['sad']" in by_code["unknown_vote_label"].message
    assert "'nope/missing.wav' does not exist" in errors[12].message
    assert "'adir' is not a file" in errors[14].message
    # the audio column is mostly empty: no warnings about rows without audio
    assert [p for p in problems if p.severity == "warning"] == []


def test_group_leak_one_problem_per_group_with_counts(tmp_path):
    rows = [row(i, group="a") for i in range(1, 4)] + [row(4, split="test", group="a"), row(5, split="val", group="a")]
    rows += [row(6, group="b"), row(7, split="test", group="b"), row(8, group="c"), row(9, split="val", group="d")]
    path = write_csv(tmp_path / "m.csv", rows)
    _, problems = validate_manifest(path)
    leaks = [p for p in problems if p.code == "group_leak"]
    assert codes(leaks) == [(4, "group", "group_leak"), (7, "group", "group_leak")]
    assert "group 'a' is in 3 splits (train: 3 rows (1, 2, 3); test: 1 row (4); val: 1 row (5))" in leaks[0].message
    assert "group 'b' is in 2 splits (train: 1 row (6); test: 1 row (7))" in leaks[1].message
    assert len(problems) == 2


def test_group_leak_message_caps_row_list(tmp_path):
    rows = [row(i, group="big") for i in range(1, 15)] + [row(15, split="test", group="big")]
    _, problems = validate_manifest(write_csv(tmp_path / "m.csv", rows))
    (leak,) = problems
    assert "train: 14 rows (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ... (4 more))" in leak.message


def test_allowed_splits_and_unlabelled_rows(tmp_path):
    rows = [row(1), row(2, split="unlabelled", label="")]
    path = write_csv(tmp_path / "m.csv", rows)
    _, problems = validate_manifest(path)
    assert codes(problems) == [(2, "split", "unknown_split")]
    manifest, problems = validate_manifest(path, allowed_splits=["unlabelled"])
    assert problems == []  # no label needed outside train/val/test
    assert manifest.rows[1]["label"] is None


def test_duplicate_media_is_a_warning(tmp_path):
    write_wav(tmp_path / "a.wav", 300)
    (tmp_path / "copy.wav").write_bytes((tmp_path / "a.wav").read_bytes())
    write_wav(tmp_path / "b.wav", 301)
    rows = [row(1, audio="a.wav"), row(2, audio="a.wav"), row(3, audio="copy.wav"), row(4, audio="b.wav"),
            row(5, audio="a.wav", start="0", end="0.1")]  # another segment of a.wav: not a duplicate
    path = write_csv(tmp_path / "m.csv", rows)
    _, problems = validate_manifest(path)
    assert codes(problems) == [(2, "audio", "duplicate_media"), (3, "audio", "duplicate_media")]
    assert all(p.severity == "warning" for p in problems)
    assert "id 'r1' (row 1)" in problems[0].message and "same content" in problems[1].message
    # warnings do not fail loading
    assert len(load_manifest(path).rows) == 5
    # without media checks neither existence nor duplicates are looked at
    write_csv(tmp_path / "m2.csv", rows + [row(6, audio="gone.wav")])
    assert validate_manifest(tmp_path / "m2.csv", check_media=False)[1] == []


def test_gap_in_a_filled_column_is_a_warning(tmp_path):
    write_wav(tmp_path / "a.wav", 300)
    write_wav(tmp_path / "b.wav", 310)
    path = write_csv(tmp_path / "m.csv", [row(1, audio="a.wav"), row(2, audio="b.wav"), row(3)])
    _, problems = validate_manifest(path)
    assert codes(problems) == [(3, "audio", "missing_modality")]
    assert problems[0].severity == "warning"


def test_votes_by_condition_and_extra_columns(tmp_path):
    header = HEADER + ["votes@text", "votes@all", "planted"]
    rows = [row(1, **{"votes@text": '["neutral"]', "votes@all": '["neutral","empathetic"]', "planted": "ambiguous"}),
            row(2, label="empathetic", **{"votes@text": '["bad"]', "votes@all": "[oops"})]
    path = write_csv(tmp_path / "m.csv", rows, header)
    manifest, problems = validate_manifest(path)
    assert codes(problems) == [(2, "votes@all", "malformed_votes"), (2, "votes@text", "unknown_vote_label")]
    assert manifest.conditions == ("all", "text")
    assert manifest.rows[0]["votes_by_condition"] == {"text": ["neutral"], "all": ["neutral", "empathetic"]}
    assert manifest.rows[0]["planted"] == "ambiguous" and manifest.rows[1]["planted"] == ""
    assert manifest.extra_columns == ("planted",)


def test_file_level_problems(tmp_path):
    p = tmp_path / "noid.csv"
    p.write_text("name,split,text\na,train,hello\n")
    manifest, problems = validate_manifest(p)
    assert manifest is None
    assert codes(problems) == [(None, "id", "missing_column")]
    p = tmp_path / "nomod.csv"
    p.write_text("id,split,label\na,train,x\n")
    manifest, problems = validate_manifest(p)
    assert codes(problems) == [(None, None, "missing_column"), (1, None, "no_modality")]
    p = tmp_path / "nolabel.csv"
    p.write_text("id,split,text\na,train,hi\nb,test,ho\n")
    _, problems = validate_manifest(p)
    assert codes(problems) == [(None, "label", "missing_column")]
    p = tmp_path / "empty.csv"
    p.write_text("")
    assert validate_manifest(p) == (None, [Problem(None, None, validate_manifest(p)[1][0].message, "empty_manifest")])
    p = tmp_path / "array.json"
    p.write_text('[{"id": "a", "split": "train", "label": "x", "text": "hi"}]')
    manifest, problems = validate_manifest(p)
    assert manifest is None and codes(problems) == [(None, None, "unsupported_format")]
    p = tmp_path / "unnamed.csv"
    p.write_text(",id,split,label,text\n0,a,train,x,hi\n")
    manifest, problems = validate_manifest(p)
    assert codes(problems) == [(None, None, "unnamed_column")] and problems[0].severity == "warning"
    assert manifest.extra_columns == () and manifest.rows[0]["id"] == "a"
    p = tmp_path / "latin1.csv"
    p.write_bytes("id,split,label,text\na,train,x,caf\xe9\n".encode("latin-1"))
    manifest, problems = validate_manifest(p)
    assert manifest is None and codes(problems) == [(None, None, "encoding")]


def test_missing_manifest_and_bad_classes_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        validate_manifest(tmp_path / "missing.csv")
    with pytest.raises(UsageError, match="not a file"):
        validate_manifest(tmp_path)
    path = write_csv(tmp_path / "m.csv", [row(1)])
    with pytest.raises(UsageError, match="unique"):
        validate_manifest(path, classes=["a", "a"])


def test_classes_as_given_keep_their_order(tmp_path):
    path = write_csv(tmp_path / "m.csv", [row(1, label="neutral"), row(2, label="empathetic")])
    manifest = load_manifest(path, classes=["neutral", "empathetic", "other"])
    assert manifest.classes == ("neutral", "empathetic", "other")


def test_load_manifest_raises_with_every_problem(tmp_path):
    path = write_csv(tmp_path / "m.csv", [row(1), row(1), row(2, split="x")])
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert codes(info.value.problems) == [(2, "id", "duplicate_id"), (3, "split", "unknown_split")]
    assert "2 error(s)" in str(info.value) and "row 2, column id" in str(info.value)


def test_jsonl_manifest(tmp_path):
    write_wav(tmp_path / "v.wav", 250)
    lines = [
        {"id": "j1", "split": "train", "label": "neutral", "text": "hello", "audio": "v.wav", "start": 0, "end": 0.2,
         "votes": ["neutral", "neutral", "empathetic"], "votes@audio": ["neutral"], "score": 0.5},
        {"id": "j2", "split": "val", "label": "empathetic", "text": "I am sorry", "votes": '["empathetic"]'},
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n" + json.dumps(
        {"id": "j3", "split": "test", "label": "neutral", "text": "", "votes": "nope", "start": "x"}) + "\n{bad json\n")
    manifest, problems = validate_manifest(path)
    # row numbers are line numbers (line 3 is blank)
    assert codes(problems) == [(4, "start", "bad_time"), (4, "votes", "malformed_votes"), (4, "text", "empty_text"),
                               (5, None, "json_error")]
    r1 = manifest.rows[0]
    assert r1["start"] == 0.0 and r1["end"] == 0.2 and r1["votes"] == ["neutral", "neutral", "empathetic"]
    assert r1["votes_by_condition"] == {"audio": ["neutral"]} and r1["score"] == 0.5
    assert manifest.rows[1]["votes"] == ["empathetic"] and manifest.rows[1]["audio"] is None
    assert manifest.conditions == ("audio",)
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert len(load_manifest(good).rows) == 2


def test_to_samples_values(tmp_path):
    a = write_wav(tmp_path / "media" / "a.wav", 220)
    b = write_wav(tmp_path / "media" / "b.wav", 330)
    header = HEADER + ["votes@text", "planted"]
    rows = [
        row(1, label="empathetic", audio="media/a.wav", votes='["empathetic","neutral","empathetic"]',
            **{"votes@text": '["neutral"]', "planted": "ambiguous"}),
        row(2, audio="media/b.wav", start="0.1", end="0.2", votes='["neutral"]', text=""),
        row(3, split="extra", label="", votes=""),
    ]
    path = write_csv(tmp_path / "m.csv", rows, header)
    manifest = load_manifest(path, allowed_splits=["extra"])
    s = to_samples(manifest)
    assert s.ids.tolist() == ["r1", "r2", "r3"]
    assert s.split.tolist() == ["train", "train", "extra"]
    assert s.classes == ("empathetic", "neutral")
    assert s.label.tolist() == [0, 1, -1] and s.label.dtype == np.int64
    assert s.group.tolist() == ["g1", "g2", "g3"]
    assert s.text.tolist() == ["text number 1", "", "text number 3"]
    assert s.audio.tolist() == ["media/a.wav", "media/b.wav", ""]
    assert s.video.tolist() == ["", "", ""]
    np.testing.assert_array_equal(s.start, [np.nan, 0.1, np.nan])
    np.testing.assert_array_equal(s.end, [np.nan, 0.2, np.nan])
    assert s.votes.dtype == np.int16
    np.testing.assert_array_equal(s.votes, [[0, 1, 0], [1, -1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(s.votes_by_condition["text"], [[1], [-1], [-1]])
    assert s.content_hash["text"].tolist() == [
        hashlib.sha256(b"text number 1").hexdigest()[:16], "", hashlib.sha256(b"text number 3").hexdigest()[:16]]
    assert s.content_hash["audio"][0] == hashlib.sha256(a.read_bytes()).hexdigest()[:16]
    seg = hashlib.sha256(b.read_bytes() + b"\0segment=0.1,0.2").hexdigest()[:16]
    assert s.content_hash["audio"].tolist()[1:] == [seg, ""]
    assert s.content_hash["audio"][1] == media_hash(b, 0.1, 0.2) != media_hash(b)
    assert s.content_hash["video"].tolist() == ["", "", ""]
    assert text_hash("text number 1") == s.content_hash["text"][0]
    assert s.columns["planted"].tolist() == ["ambiguous", "", ""]
    assert s.rows("train").tolist() == [0, 1]


def test_to_samples_no_votes_gives_zero_width(tmp_path):
    path = write_csv(tmp_path / "m.csv", [row(1), row(2)], ["id", "split", "label", "text"])
    s = to_samples(load_manifest(path))
    assert s.votes.shape == (2, 0) and s.votes_by_condition == {}
