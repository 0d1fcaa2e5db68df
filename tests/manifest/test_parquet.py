"""Parquet manifests: the same validation, row numbers and messages as CSV; typed cells; a damaged file or a missing
pyarrow in one line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from mixsig.cli import main  # noqa: E402
from mixsig.errors import UsageError  # noqa: E402
from mixsig.manifest import load_manifest, to_samples, validate_manifest  # noqa: E402
from tests.test_manifest import HEADER, row, write_csv, write_wav  # noqa: E402


def _problems(path):
    _, problems = validate_manifest(path, classes=["empathetic", "neutral"])
    return [(p.row, p.column, p.code, p.severity, p.message) for p in problems]


def test_a_parquet_manifest_gets_every_problem_of_the_same_csv_with_the_same_rows_and_messages(tmp_path):
    write_wav(tmp_path / "ok.wav", 200)
    (tmp_path / "adir").mkdir()
    rows = [row(1), row(2, id=""), row(3, id="r1"), row(4, split="dev"), row(5, label=""), row(6, label="happy"),
            row(7, text="   "), row(8, audio="ok.wav", start="2", end="1"), row(9, audio="ok.wav", start="-1", end="1"),
            row(10, votes="empathetic,neutral"), row(11, votes='["neutral", "sad"]'), row(12, votes='{"a": 1}'),
            row(13, text=""), row(14, audio="nope/missing.wav"), row(15, start="soon"), row(16, audio="adir")]
    csv_problems = _problems(write_csv(tmp_path / "m.csv", rows))
    pd.DataFrame([{k: r.get(k, "") for k in HEADER} for r in rows], columns=HEADER).to_parquet(tmp_path / "m.parquet")
    pq_problems = _problems(tmp_path / "m.parquet")
    assert len(csv_problems) == 15 and pq_problems == csv_problems
    # row N is the Parquet row of index N - 1: the duplicate id is the table's 3rd row (index 2)
    assert (3, "id", "duplicate_id") in [p[:3] for p in pq_problems]


def test_typed_parquet_cells_votes_lists_and_numeric_extra_columns(tmp_path):
    df = pd.DataFrame({"id": ["a", "b", "c"], "split": ["train", "train", "test"],
                       "label": ["neutral", "empathetic", "neutral"], "text": ["one", "two", "three"],
                       "votes": [["neutral", "neutral"], ["empathetic"], None],
                       "duration": [1.5, None, 3.25], "n_words": [3, 4, 5], "code": ["007", "010", "3"]})
    df.to_parquet(tmp_path / "m.parquet")
    manifest = load_manifest(tmp_path / "m.parquet")
    assert [r.votes for r in manifest.rows] == [["neutral", "neutral"], ["empathetic"], None]
    samples = to_samples(manifest)
    assert samples.columns["duration"].dtype == np.float64 and np.isnan(samples.columns["duration"][1])
    assert samples.columns["duration"][[0, 2]].tolist() == [1.5, 3.25]
    assert samples.columns["n_words"].dtype == np.int64 and samples.columns["n_words"].tolist() == [3, 4, 5]
    assert samples.columns["code"].tolist() == ["007", "010", "3"]  # text with leading zeros stays text
    assert main(["validate", str(tmp_path / "m.parquet")]) == 0


def test_a_damaged_parquet_file_is_one_file_level_problem(tmp_path, capsys):
    pd.DataFrame({"id": ["a"], "split": ["train"], "label": ["x"], "text": ["t"]}).to_parquet(tmp_path / "m.parquet")
    data = (tmp_path / "m.parquet").read_bytes()
    (tmp_path / "m.parquet").write_bytes(data[: len(data) // 2])  # cut short: no footer
    _, problems = validate_manifest(tmp_path / "m.parquet")
    assert [(p.row, p.code) for p in problems] == [(None, "unsupported_format")]
    assert problems[0].message.startswith("cannot read the Parquet file (")
    assert "or write the manifest as CSV or JSONL" in problems[0].message
    assert main(["validate", str(tmp_path / "m.parquet")]) == 1
    err = capsys.readouterr()
    assert "cannot read the Parquet file" in err.out + err.err and "Traceback" not in err.err


def test_without_pyarrow_a_parquet_manifest_names_the_install_command(tmp_path, monkeypatch):
    pd.DataFrame({"id": ["a"], "split": ["train"], "label": ["x"], "text": ["t"]}).to_parquet(tmp_path / "m.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import pyarrow.parquet -> ImportError
    with pytest.raises(UsageError, match=r"needs pyarrow; install it with `pip install pyarrow`"):
        validate_manifest(tmp_path / "m.parquet")


def test_date_time_decimal_duration_and_binary_cells_validate_and_init_as_the_same_csv(tmp_path, capsys):
    import datetime as dt
    from decimal import Decimal

    utc = dt.timezone.utc
    df = pd.DataFrame({"id": ["a", "b", "c"], "split": ["train", "train", "test"],
                       "label": ["neutral", "empathetic", "neutral"], "text": ["one", "two", "three"],
                       "group": [dt.date(2024, 1, 2), dt.date(2024, 1, 2), dt.date(2024, 3, 4)],
                       "day": [dt.date(2024, 1, 2), None, dt.date(1999, 12, 31)],
                       "at": [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc), dt.datetime(2024, 2, 3, tzinfo=utc),
                              None],
                       "clock": [dt.time(13, 5), dt.time(0, 0, 1), None],
                       "price": [Decimal("1.50"), Decimal("2.00"), Decimal("-0.25")],
                       "dur": pd.to_timedelta(["1.5s", "2s", "250ms"]),
                       "blob": [b"ab", b"\xff\x00", None]})
    df.to_parquet(tmp_path / "m.parquet")
    iso = {"group": ["2024-01-02", "2024-01-02", "2024-03-04"], "day": ["2024-01-02", "", "1999-12-31"],
           "at": ["2024-01-02T03:04:05+00:00", "2024-02-03T00:00:00+00:00", ""], "clock": ["13:05:00", "00:00:01", ""],
           "price": ["1.50", "2.00", "-0.25"], "dur": ["1.5", "2.0", "0.25"], "blob": ["ab", "ff00", ""]}
    header = ["id", "split", "label", "text", *iso]
    write_csv(tmp_path / "m.csv", [{**{k: df[k][i] for k in header[:4]}, **{k: v[i] for k, v in iso.items()}}
                                   for i in range(3)], header=header)
    assert main(["validate", str(tmp_path / "m.parquet")]) == 0
    assert main(["cache", "init", str(tmp_path / "s.zarr"), "--manifest", str(tmp_path / "m.parquet")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    got, ref = (to_samples(load_manifest(tmp_path / f"m.{s}")) for s in ("parquet", "csv"))
    assert got.group.tolist() == iso["group"]  # a date group: its ISO text, so rows of one day share a group
    for c in iso:
        if c != "group":
            assert got.columns[c].tolist() == ref.columns[c].tolist(), c  # the same cells as the CSV spelling
    assert got.columns["day"].tolist() == iso["day"] and got.columns["at"].tolist() == iso["at"]
    assert got.columns["price"].dtype == np.float64 and got.columns["price"].tolist() == [1.5, 2.0, -0.25]
    assert got.columns["dur"].tolist() == [1.5, 2.0, 0.25]  # a duration: its seconds
