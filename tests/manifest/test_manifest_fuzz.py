"""Manifest fuzz (issue 13): each malformed manifest is reported by `mixsig validate` naming its row or line, and
`load_manifest` as `mixsig extract` calls it (check_media=False, group_leak_errors=False) refuses it with the same
message; then a seeded random fuzz checks that validate and load_manifest agree on every mutated manifest and that
neither crashes."""

from __future__ import annotations

import csv
import io
import json
import random
import unicodedata
from pathlib import Path

import pytest

import mixsig.cli
from mixsig.errors import ManifestError, RefusedInput
from mixsig.manifest import load_manifest, to_samples, validate_manifest

HEADER = "id,split,label,text"


def _csv(tmp_path: Path, *lines: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def _validate(path: Path, capsys, *extra: str) -> tuple[int, list[dict]]:
    rc = mixsig.cli.main(["validate", str(path), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)["problems"]


def _errors(problems: list[dict]) -> list[tuple]:
    return [(p["row"], p["column"], p["code"]) for p in problems if p["severity"] == "error"]


def _refused(path: Path, **kw) -> str:
    """The message load_manifest raises, called as `mixsig extract` calls it."""
    with pytest.raises(ManifestError) as info:
        load_manifest(path, check_media=False, group_leak_errors=False, **kw)
    return str(info.value)


def test_unterminated_quote_is_an_error_naming_its_row_and_line(tmp_path, capsys):
    path = _csv(tmp_path, "r1,train,a,fine", 'r2,train,a,"never closed', "r3,train,b,swallowed", "r4,test,b,too")
    rc, problems = _validate(path, capsys)
    assert rc == 1
    assert _errors(problems) == [(2, None, "csv_error")]
    msg = problems[0]["message"]
    assert "line 3" in msg and "never closed" in msg and "up to line 5" in msg
    assert f"row 2: error: {msg}" in _refused(path)
    # the quote inside an unquoted field, and a stray quote after a quoted one: errors too, later rows still read
    path = _csv(tmp_path, 'r1,train,a,"say "hi" now"', "r2,train,a,ok", name="m2.csv")
    rc, problems = _validate(path, capsys)
    assert rc == 1 and _errors(problems) == [(1, None, "csv_error")] and "line 2" in problems[0]["message"]
    # a quoted field over several lines is fine, and later rows keep their numbers
    path = _csv(tmp_path, 'r1,train,a,"two\nlines"', "r2,train,a,x", "r3,train,a,y", name="m3.csv")
    manifest = load_manifest(path, check_media=False)
    assert [r.id for r in manifest.rows] == ["r1", "r2", "r3"] and manifest.rows[0].text == "two\nlines"


def test_rows_with_too_few_or_too_many_fields(tmp_path, capsys):
    path = _csv(tmp_path, "r1,train,a,ok", "r2,train,a", "r3,train,a,x,extra", "r4,train")
    rc, problems = _validate(path, capsys)
    assert rc == 1
    counts = [p for p in problems if p["code"] == "field_count"]
    assert [(p["row"], p["severity"]) for p in counts] == [(2, "error"), (3, "error"), (4, "error")]
    assert (4, None, "no_modality") in _errors(problems)  # and what the missing fields leave out is reported too
    problems = counts
    assert "(line 3) has 3 fields but the header has 4" in problems[0]["message"]
    assert "(line 4) has 5 fields but the header has 4" in problems[1]["message"]
    assert "(line 5) has 2 fields" in problems[2]["message"]
    msg = _refused(path)
    assert "row 2: error: the row (line 3) has 3 fields" in msg and "row 4: error: the row (line 5)" in msg


@pytest.mark.parametrize("label", ["NaN", "nan", "None", "null", "NULL", "N/A"])
def test_missing_value_labels_are_errors(tmp_path, capsys, label):
    path = _csv(tmp_path, "r1,train,a,ok", f"r2,train,{label},x", "r3,test,a,y")
    rc, problems = _validate(path, capsys)
    assert rc == 1 and _errors(problems) == [(2, "label", "missing_value_label")]
    assert f"label {label!r} is a missing value" in problems[0]["message"]
    assert "row 2, column label: error: label" in _refused(path)
    # named in --classes it is a class like any other
    rc, problems = _validate(path, capsys, "--classes", f"a,{label}")
    assert rc == 0 and problems == []


def test_empty_label_is_unlabelled_and_nan_is_not_a_class(tmp_path, capsys):
    path = _csv(tmp_path, "r1,train,a,ok", "r2,extra,,x", "r3,extra,   ,y", "r4,extra,nan,z")
    rc, problems = _validate(path, capsys, "--allow-splits", "extra")
    assert rc == 1 and _errors(problems) == [(4, "label", "missing_value_label")]
    manifest, _ = validate_manifest(path, allowed_splits=["extra"])
    assert manifest.classes == ("a",) and manifest.rows[1].label is None and manifest.rows[2].label is None
    # JSONL: null is no label (unlabelled), the string "NaN" is refused, the number NaN is not a string
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"id": "a", "split": "extra", "label": null, "text": "x"}\n'
                  '{"id": "b", "split": "train", "label": "NaN", "text": "y"}\n'
                  '{"id": "c", "split": "train", "label": NaN, "text": "z"}\n')
    rc, problems = _validate(jl, capsys, "--allow-splits", "extra")
    assert _errors(problems) == [(2, "label", "missing_value_label"), (3, "label", "bad_value"),
                                 (3, "label", "missing_label")]


def test_a_one_megabyte_field_is_accepted(tmp_path, capsys):
    limit = csv.field_size_limit()
    big = "word " * 200_000
    path = _csv(tmp_path, f'r1,train,a,"{big}"', "r2,train,a,short")
    rc, problems = _validate(path, capsys)
    assert rc == 0 and problems == []
    manifest = load_manifest(path, check_media=False)
    assert manifest.rows[0].text == big and len(big) == 1_000_000
    assert csv.field_size_limit() == limit  # the process-wide limit is left as it was


def test_header_only_manifest_has_no_rows(tmp_path, capsys):
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "\n\n")
    rc, problems = _validate(path, capsys)
    assert rc == 1 and _errors(problems) == [(None, None, "no_rows")] and "no rows" in problems[0]["message"]
    assert "no rows" in _refused(path)
    for name, text in (("e.csv", ""), ("e.jsonl", "\n\n"), ("trailing_comma.csv", HEADER + ",\n")):
        (tmp_path / name).write_text(text)
        rc, problems = _validate(tmp_path / name, capsys)
        assert rc == 1 and "no rows" in problems[0]["message"]
        assert "no rows" in _refused(tmp_path / name)


LOOKALIKES = [
    ("r\u202eab", "U+202E RIGHT-TO-LEFT OVERRIDE at position 1"),
    ("ab\u200b", "U+200B ZERO WIDTH SPACE at position 2"),
    ("a\u2066b", "U+2066 LEFT-TO-RIGHT ISOLATE"),
    ("a\nb", "U+000A"),
    ("a\u00a0b", "U+00A0 NO-BREAK SPACE"),
    ("a\x07b", "U+0007"),
]


@pytest.mark.parametrize("rid,named", LOOKALIKES, ids=[n.split()[0] for _, n in LOOKALIKES])
def test_invisible_or_control_characters_in_ids_are_errors(tmp_path, capsys, rid, named):
    path = tmp_path / "m.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerows([HEADER.split(","), ["r0", "train", "a", "x"], [rid, "train", "a", "y"]])
    rc, problems = _validate(path, capsys)
    assert rc == 1 and _errors(problems) == [(2, "id", "bad_id")]
    assert named in problems[0]["message"] and f"id {rid!a}" in problems[0]["message"]
    assert problems[0]["message"].isascii()  # the id is shown escaped: nothing invisible in the message
    assert "row 2, column id: error: id" in _refused(path)


def test_nfc_equal_ids_are_duplicates_and_case_only_differences_warned(tmp_path, capsys):
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert composed != decomposed
    path = _csv(tmp_path, f"{composed},train,a,x", f"{decomposed},train,a,y", "Clip1,train,a,z", "clip1,test,a,w",
                "ｃｌｉｐ２,train,a,v", "clip2,val,a,u")
    rc, problems = _validate(path, capsys)
    assert rc == 1 and _errors(problems) == [(2, "id", "duplicate_id")]
    assert "NFC" in problems[0]["message"] and "row 1" in problems[0]["message"]
    warned = [(p["row"], p["code"]) for p in problems if p["severity"] == "warning"]
    assert warned == [(4, "lookalike_id"), (6, "lookalike_id")]
    assert "row 2, column id: error: duplicate id" in _refused(path)


def test_jsonl_duplicate_key_is_an_error_naming_line_and_key(tmp_path, capsys):
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"id": "a", "split": "train", "label": "x", "text": "hi"}\n'
                  '{"id": "b", "split": "train", "label": "x", "label": "y", "text": "ho"}\n')
    rc, problems = _validate(jl, capsys)
    assert rc == 1 and _errors(problems) == [(2, None, "duplicate_key")]
    assert "line 2: key 'label' appears twice" in problems[0]["message"]
    assert "\"x\"" in problems[0]["message"] and "\"y\"" in problems[0]["message"]
    assert "row 2: error: line 2: key 'label' appears twice" in _refused(jl)


def test_jsonl_values_python_cannot_hold_are_errors(tmp_path, capsys):
    """Found by the fuzz below: a 5000-digit number, deep nesting, a lone surrogate, a NUL in a media path."""
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"id": "a", "split": "train", "label": "x", "text": "ok"}\n'
                  '{"id": "b", "split": "train", "label": "x", "text": "t", "n": ' + "9" * 5000 + "}\n"
                  '{"id": "c", "split": "train", "label": "x", "text": "t", "n": ' + "[" * 50000 + "]" * 50000 + "}\n"
                  '{"id": "d", "split": "train", "label": "x", "text": "\\ud800"}\n'
                  '{"id": "e", "split": "train", "label": "x", "text": "t", "audio": "a\\u0000.wav"}\n')
    rc, problems = _validate(jl, capsys)
    assert rc == 1
    assert _errors(problems) == [(2, None, "json_error"), (3, None, "json_error"), (4, None, "json_error"),
                                 (5, "audio", "bad_value")]
    assert "lone surrogate" in problems[2]["message"] and "U+0000" in problems[3]["message"]
    assert "4 error(s)" in _refused(jl)
    # a CSV votes cell nested too deeply for Python's JSON parser, or holding a 5000-digit number
    path = tmp_path / "v.csv"
    path.write_text("id,split,label,text,votes\na,train,x,t,\"[\"\"x\"\"]\"\nb,train,x,t," + "[" * 3000 + "\n"
                    "c,train,x,t," + "9" * 5000 + "\n")
    rc, problems = _validate(path, capsys)
    assert rc == 1 and _errors(problems) == [(2, "votes", "malformed_votes"), (3, "votes", "malformed_votes")]


# ---------------------------------------------------------------------------------------------------------------
# random fuzz: validate and load_manifest agree, and neither crashes

_SEED_CSV = ('id,split,label,group,text,audio,start,end,votes\n'
             'r1,train,a,g1,hello there,a.wav,0,1,"[""a"",""b""]"\n'
             'r2,val,b,g2,"quoted, with comma",,,,\n'
             'r3,test,a,g3,plain,b.wav,0.5,2,"[""a""]"\n'
             'r4,train,b,g4,last row,,,,\n')
_SEED_JSONL = ('{"id": "j1", "split": "train", "label": "a", "text": "hi", "votes": ["a", "b"], "start": 0, "end": 1}\n'
               '{"id": "j2", "split": "test", "label": "b", "text": "ho", "audio": "a.wav", "extra": {"k": [1, 2]}}\n'
               '{"id": "j3", "split": "val", "label": "a", "text": "yo"}\n')
_PIECES = ['"', ",", "\n", "\r", "\t", "\\", "{", "}", "[", "]", ":", "\x00", "\u202e", "\u200b", "e\u0301", "NaN",
           "null", "..", "/", "../x.wav", "\ufeff", "\u2028", "9" * 30, "é", " ", "train", "a", "r1",
           "9" * 5000, "[" * 2000, "\\u0000", "\\ud800"]


_JSON_VALUES = ["9" * 5000, "[" * 2000 + "]" * 2000, '"\\u0000"', '"a\\u0000.wav"', '"\\ud800"', "NaN", "Infinity",
                "1e999", '{"a": 1, "a": 2}', '"../x.wav"', '"/etc/passwd"', "null", "true", "[]", "{}", '"\\u202e"',
                '"nan"', '""', '"  "', "-0", '["a", null]', '"a\\nb"']
_CELLS = ["", " ", "nan", "None", "\u202er", "r1", "a", "b", "train", "x" * 200_000, '"', '""', "../x.wav",
          "a.wav", "-1", "1e999", "[", '["a"]', '["zz"]', "é", "e\u0301", "\u00a0", "\x07", "\n"]


def _mutate_cell(rng: random.Random, text: str, jsonl: bool) -> str:
    """Replace one value of a parsed seed with a nasty one (the file stays parseable, the values do not)."""
    if jsonl:
        lines = [line for line in text.split("\n") if line]
        i = rng.randrange(len(lines))
        keys = list(json.loads(lines[i])) + ["audio", "label", "id", "new"]
        key = rng.choice(keys)
        obj = {k: "__HOLE__" if k == key else v for k, v in json.loads(lines[i]).items()}
        obj.setdefault(key, "__HOLE__")
        lines[i] = json.dumps(obj).replace('"__HOLE__"', rng.choice(_JSON_VALUES))
        return "\n".join(lines) + "\n"
    rows = list(csv.reader(text.splitlines()))
    i, j = rng.randrange(len(rows)), rng.randrange(len(rows[0]))
    rows[i][j] = rng.choice(_CELLS)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _fuzzed(rng: random.Random, case: int) -> tuple[str, str]:
    """A mutated seed manifest (byte-level edits for even cases, a nasty value for odd ones) and its suffix."""
    jsonl = case % 4 >= 2
    seed = _SEED_JSONL if jsonl else _SEED_CSV
    text = _mutate(rng, seed) if case % 2 == 0 else _mutate_cell(rng, seed, jsonl)
    return text, ".jsonl" if jsonl else ".csv"


def _mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(text) + 1)
        op = rng.random()
        if op < 0.5:
            text = text[:i] + rng.choice(_PIECES) + text[i:]
        elif op < 0.75:
            text = text[:i] + text[i + rng.randint(1, 5):]
        elif op < 0.9:
            lines = text.split("\n")
            j = rng.randrange(len(lines))
            lines.insert(j, lines[rng.randrange(len(lines))])
            text = "\n".join(lines)
        else:
            text = text[:i]
    return text


def test_fuzzed_manifests_validate_and_load_agree(tmp_path):
    rng = random.Random(13)
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "b.wav").write_bytes(b"RIFF2")
    outcomes = set()
    for case in range(300):
        text, suffix = _fuzzed(rng, case)
        path = tmp_path / f"f{case}{suffix}"
        data = text.encode("utf-8")
        if case % 37 == 0:
            data = data[:5] + b"\xff\xfe" + data[5:]  # not UTF-8
        path.write_bytes(data)
        manifest, problems = validate_manifest(path, check_media=False)
        errors = [q for q in problems if q.severity == "error"]
        try:
            loaded = load_manifest(path, check_media=False)
        except ManifestError as exc:
            assert errors or manifest is None, (case, data)
            if errors:
                assert errors[0].format() in str(exc), (case, data)
            outcomes.add("refused")
            continue
        except RefusedInput as exc:  # outside paths: warned by validate, refused by load
            assert not errors and any(q.code == "outside_path" for q in problems), (case, data, exc)
            outcomes.add("outside")
            continue
        assert not errors and manifest is not None, (case, data)
        assert [r.id for r in loaded.rows] == [r.id for r in manifest.rows]
        to_samples(loaded)
        outcomes.add("loaded")
    assert outcomes >= {"refused", "loaded"}


def test_fuzzed_manifests_through_the_cli_never_crash(tmp_path, capsys):
    """`mixsig validate` on fuzzed files: exit 0 or 1 with one JSON object, never a traceback."""
    rng = random.Random(7)
    for case in range(80):
        text, suffix = _fuzzed(rng, case)
        path = tmp_path / f"c{case}{suffix}"
        path.write_text(text, encoding="utf-8")
        rc = mixsig.cli.main(["validate", str(path), "--json", "--no-media"])  # any crash fails the test
        out = capsys.readouterr().out
        data = json.loads(out)
        assert rc == (0 if data["ok"] else 1), (case, path.read_text())
