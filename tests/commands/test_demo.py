"""End to end: `mixsig demo` on a small corpus, then again (reusing the cache and the study)."""

import json

from mixsig.cli import main


def test_demo_end_to_end_and_rerun_reuses_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--rows", "48", "--trials", "4", "--json"]
    assert main(args) == 0
    first = capsys.readouterr()
    printed = json.loads(first.out)   # --json: stdout is one JSON object, the stage lines are on stderr
    assert printed["run"] == "study-demo" and printed["next"] and "[        corpus]" in first.err
    assert "Report:" in first.err and (out / "report" / "report.html").is_file()
    for name in ("report.md", "report.json", "samples.csv"):
        assert (out / "report" / name).is_file()
    summary = json.loads((out / "demo-summary.json").read_text())
    stages = {s["name"]: s for s in summary["stages"]}
    for m in ("text", "audio", "video"):
        assert stages[f"extract {m}"]["data"]["written"] == 48
    assert summary["run"] == "study-demo" and len(summary["findings"]) >= 2
    report = json.loads((out / "report" / "report.json").read_text())
    assert len(report["metrics"]) == 7  # every modality subset of the winning head

    from mixsig.cache import open_store

    created = open_store(out / "cache.zarr").read_run("study-demo").attrs["created"]
    assert main(args) == 0
    capsys.readouterr()
    assert open_store(out / "cache.zarr").read_run("study-demo").attrs["created"] == created  # not retrained
    again = json.loads((out / "demo-summary.json").read_text())
    stages2 = {s["name"]: s for s in again["stages"]}
    assert stages2["corpus"]["what"].startswith("reused")
    for m in ("text", "audio", "video"):
        assert stages2[f"extract {m}"]["data"]["written"] == 0
        assert stages2[f"extract {m}"]["data"]["skipped"] == 48
    assert stages2["study"]["data"]["trials"] == stages["study"]["data"]["trials"]


def _fake_demo(out_dir, config, on_stage=None):
    """What run_demo returns, after a library print to stdout (LightGBM-style) and one stage."""
    import sys
    from types import SimpleNamespace

    print("[LightGBM] [Warning] a library talking on stdout")
    sys.stdout.flush()
    on_stage(SimpleNamespace(name="corpus", seconds=0.1, what="generated 4 rows"))
    return {"stages": [], "report": str(out_dir) + "/report/report.html", "findings": ["f1"], "store": str(out_dir),
            "next": ["mixsig report x --run y"], "run": "study-demo"}


def test_demo_json_prints_one_object_on_stdout_and_the_stage_lines_on_stderr(tmp_path, capsys, monkeypatch):
    import mixsig.demo.pipeline as pipeline

    monkeypatch.setattr(pipeline, "run_demo", _fake_demo)
    assert main(["demo", "--out", str(tmp_path), "--json"]) == 0
    got = capsys.readouterr()
    assert json.loads(got.out)["next"] == ["mixsig report x --run y"]          # nothing else on stdout
    assert "a library talking on stdout" in got.err and "generated 4 rows" in got.err and "Report:" in got.err
    assert main(["demo", "--out", str(tmp_path)]) == 0                          # without --json: all on stdout
    got = capsys.readouterr()
    assert "generated 4 rows" in got.out and "Report:" in got.out and not got.out.lstrip().startswith("{")
    assert main(["demo", "--out", str(tmp_path), "--json", "-q"]) == 0          # -q after the command: no stage lines
    got = capsys.readouterr()
    assert json.loads(got.out)["run"] == "study-demo" and "generated 4 rows" not in got.err + got.out
