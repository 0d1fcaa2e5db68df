"""The demo reports on held-out rows (``test``: val chose the study's winner and its epochs) and fine-tunes with
out-of-fold train embeddings (``finetune --folds K``), so its report carries neither issue-14 warning; its audio key
holds all layers, so the report shows the winner's learned layer weights."""

from __future__ import annotations

import json

import pytest

from mixsig.demo.pipeline import DemoConfig


def test_demo_defaults_are_held_out_and_out_of_fold():
    cfg = DemoConfig()
    assert cfg.split == "test" and cfg.finetune_folds >= 2


@pytest.mark.slow
def test_small_demo_report_is_on_test_without_selection_or_in_sample_warnings(tmp_path):
    from mixsig.cache import open_store
    from mixsig.demo.pipeline import run_demo

    out = tmp_path / "demo"
    result = run_demo(out, DemoConfig(rows=60, trials=4))
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["split"] == "test"
    w = report["warnings"]
    assert w["selection_splits"] == ["val"] and w["selection_overlap"] is None and w["in_sample"] == {}
    assert not [m for m in w["messages"] if "selected this run" in m or m.startswith("In-sample")]
    store = open_store(out / "cache.zarr")
    ft_key = next(s["data"]["key"] for s in result["stages"] if s["name"] == "finetune text")
    assert store.provenance(ft_key)["extra"]["finetune"]["config"]["folds"] == DemoConfig().finetune_folds
    assert "planted conflicts are" in result["planted"]["what"]
    md = (out / "report" / "report.md").read_text()
    prov = md.split("\n## Provenance", 1)[1]
    assert all(key in prov for key in report["run"]["features"].values())
    # audio is extracted with all its encoder's layers (embeddings + 2 blocks): the gated winner learns a softmax
    # weight per layer and the report shows them (6c)
    assert store.key_shape(result["keys"]["audio"]) == (60, 3, 32)
    assert report["run"]["head"] == "gated" and store.read_run(result["run"]).attrs["params"]["layer"] == "weighted"
    full = report["layers"]["subsets"]["text+audio+video"]["audio"]
    assert full["layers"] == 3 and full["n_seeds"] >= 1 and abs(sum(full["mean"]) - 1) < 1e-5
    assert set(report["layers"]["subsets"]) == {"audio", "text+audio", "audio+video", "text+audio+video"}
    assert "## 6c. Learned layer weights\n" in md and "Skipped: the run has no learned layer weights" not in md
