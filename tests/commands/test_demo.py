"""End to end: `mixsig demo` on a small corpus, then again (reusing the cache and the study)."""

import json

from mixsig.cli import main


def test_demo_end_to_end_and_rerun_reuses_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--rows", "48", "--trials", "4", "--json"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "Report:" in first and (out / "report" / "report.html").is_file()
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
