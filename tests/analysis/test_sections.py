"""The report is its sections in order: every section module has compute/blocks/figures, report.md's headings and
report.json's keys and figures come in the order of version 1 of the report."""

import json

from tests.analysis.helpers import planted

from mixsig.analysis import analyse, sections, write_report

JSON_KEYS = ["mixsig_report_version", "created", "run", "split", "n_samples", "label_counts", "exclusions",
             "aggregation", "media_root", "bootstrap", "warnings", "metrics", "metrics_definition", "paired",
             "disagreement", "uncertainty", "join", "attribution", "dominance", "robustness", "confidence",
             "confidence_definition", "calibration", "calibration_definition", "layers", "dynamics",
             "human_study", "descriptors", "top", "browser", "provenance", "notes", "skipped", "figures", "samples_csv"]
HEADINGS = ["1. Metrics per modality subset", "1b. Paired comparisons: the full model against each subset",
            "2. Disagreement with the full model", "3. Annotator uncertainty",
            "4. Does disagreement mark ambiguous samples?",
            "5. Which modality misled the fusion? Removing each modality",
            "5b. Following: which unimodal model the full model followed on misled samples",
            "5c. Robustness to a missing modality", "6. Confidence in the true label: unimodal vs full",
            "6b. Calibration and soft labels", "6c. Learned layer weights",
            "6d. Training dynamics: the data map", "7. Human study", "8. Descriptors", "Top 10 samples",
            "Sample browser", "Provenance"]
FIGURES = ["metrics", "disagreement", "confidence", "dominance", "uncertainty", "human", "descriptors", "paired",
           "attribution", "calibration"]


def test_every_section_has_compute_blocks_and_figures():
    for module in (*sections.PAGE, sections.SAMPLES):
        for name in ("compute", "blocks", "figures"):
            assert callable(getattr(module, name, None)), f"{module.__name__} has no {name}()"
    assert sections.PAGE[0].__name__.endswith(".header") and sections.PAGE[-1].__name__.endswith(".provenance")


def test_page_json_and_figures_keep_the_report_order(tmp_path):
    inp, _ = planted(n=200, seed=2)
    result = analyse(inp, split="test", n_boot=20)
    paths = write_report(result, tmp_path / "r")
    doc = json.loads(paths["json"].read_text())
    assert list(doc) == JSON_KEYS
    assert doc["figures"] == FIGURES
    md = paths["md"].read_text()
    assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == HEADINGS
    assert md.startswith("# mixsig disagreement report — run planted\n")
    # the page is the sections' blocks in order (no figures: plots off)
    page = [b[1] for s in sections.PAGE for b in s.blocks(result, {}) if b[0] == "h2"]
    assert page == HEADINGS
    assert list(result)[-3:] == ["notes", "skipped", "samples"]
