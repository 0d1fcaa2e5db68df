"""`mixsig report` through mixsig.cli.main on a planted run: the files it writes (self-contained HTML, JSON, CSV,
Markdown), what it prints, --json/--no-plots, and errors that name the fix."""

import csv
import json
import re

import numpy as np
import pytest

from mixsig.analysis import analyse
from mixsig.cli import main
from tests.analysis.helpers import planted, to_store


def test_cli_report_writes_self_contained_files(tmp_path, capsys):
    inp, amb = planted(n=300, seed=1)
    to_store(tmp_path / "s.zarr", inp)
    out = tmp_path / "rep"
    rc = main(["report", str(tmp_path / "s.zarr"), "--run", "planted", "--out", str(out), "--top", "3",
               "--bootstrap", "100"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "misleading modality (removing it fixes the most misled samples): audio" in printed
    assert "most often followed exclusively: audio" in printed
    assert "top 3 most confidently misled" in printed and "majority vote" in printed
    html = (out / "report.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", html)  # nothing fetched from a network
    assert html.count("<script") == 2 and "<link" not in html  # the sample browser's JSON blob and inline script
    doc = json.loads((out / "report.json").read_text())
    assert html.count("<img") == len(doc["figures"]) == 10
    assert html.count("data:image/png;base64,") == 10
    assert doc["dominance"]["dominant_modality"] == "audio"
    assert doc["n_samples"] == 300 and "majority vote" in doc["aggregation"]
    rows = list(csv.DictReader(open(out / "samples.csv", newline="", encoding="utf-8")))
    assert len(rows) == 300
    assert {"id", "split", "label", "pred[text]", "conf[text+audio+video]", "category", "entropy", "text"} <= set(rows[0])
    quoted = [r for r in rows if r["category"] == "misled"][0]
    assert quoted["text"] == 'an ambiguous, "quoted" remark'  # CSV quoting round-trips
    assert float(quoted["entropy"]) == pytest.approx(
        float(np.round(analyse(inp, split="test", n_boot=0)["samples"]["entropy"][int(quoted["id"][1:])], 6)),
        abs=1e-5)
    md = (out / "report.md").read_text()
    assert "## 5. Which modality misled the fusion?" in md and "| text+audio+video |" in md
    # --json prints one object, --no-plots leaves the figures out
    rc = main(["report", str(tmp_path / "s.zarr"), "--run", "planted", "--out", str(tmp_path / "r2"), "--json",
               "--no-plots", "--bootstrap", "0"])
    assert rc == 0
    j = json.loads(capsys.readouterr().out)
    assert j["summary"]["dominant_modality"] == "audio" and j["summary"]["misleading_modality"] == "audio"
    assert json.loads((tmp_path / "r2" / "report.json").read_text())["figures"] == []



def test_errors_name_the_fix(tmp_path, capsys):
    inp, _ = planted(n=50, seed=4)
    to_store(tmp_path / "s.zarr", inp)
    assert main(["report", str(tmp_path / "s.zarr"), "--run", "nope", "--out", str(tmp_path / "x")]) == 1
    assert "no run named 'nope'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "s.zarr"), "--run", "planted", "--split", "val"]) == 2
    assert "split 'val' has no rows" in capsys.readouterr().err
