"""The learned-layer-weights section: per subset and modality, the seeds' softmax weights per layer, their mean,
sd and peak layer, recomputed; a planted peak is found, uniform weights show no peak; skipped without weights."""

import numpy as np

from mixsig.analysis import analyse, write_report
from mixsig.analysis.sections import layers
from tests.analysis.helpers import planted


def _weights(rng, S, L, peak=None):
    w = rng.uniform(0.9, 1.1, (S, L))
    if peak is not None:
        w[:, peak] *= 3
    return w / w.sum(axis=1, keepdims=True)


def test_the_planted_peak_layer_and_the_numbers_are_recomputed(tmp_path):
    inp, _ = planted(n=150, seed=1)
    rng = np.random.default_rng(0)
    planted_w = _weights(rng, 3, 5, peak=1)  # 3 seeds, 5 layers, layer index 1 learned
    flat = _weights(rng, 3, 5)                 # null: no layer preferred
    inp.extra["audio"] = {"layer_weights/audio": planted_w}
    inp.extra["text+audio+video"] = {"layer_weights/audio": flat, "layer_weights/text": planted_w[:, ::-1]}
    result = analyse(inp, split="test", n_boot=20)
    lw = result["layers"]["subsets"]
    a = lw["audio"]["audio"]
    assert a["peak_layer"] == 1 and a["layers"] == 5 and a["n_seeds"] == 3
    np.testing.assert_allclose(a["mean"], planted_w.mean(0))
    np.testing.assert_allclose(a["std"], planted_w.std(0))
    assert a["peak_weight"] > 2 * a["uniform"] == 2 * 0.2
    assert lw["text+audio+video"]["text"]["peak_layer"] == 3
    null = lw["text+audio+video"]["audio"]
    assert abs(null["peak_weight"] - 0.2) < 0.03
    paths = write_report(result, tmp_path / "r", plots=False)
    md = paths["md"].read_text()
    assert "## 6c. Learned layer weights" in md and "| audio | audio | 5 | 1 |" in md
    png, caption = layers.figures(result)["layers"]
    assert png.startswith(b"\x89PNG") and "uniform 1/L" in caption


def test_a_run_without_layer_weights_skips_the_section_with_the_reason():
    inp, _ = planted(n=100, seed=2)
    inp.extra["audio"] = {"layer_weights/audio": np.full((2, 4), np.nan)}  # no seed gave weights
    result = analyse(inp, split="test", n_boot=20)
    assert result["layers"] is None and "layer='weighted'" in result["skipped"]["layers"]
    assert ("skip", "Skipped: " + result["skipped"]["layers"] + ".") in layers.blocks(result, {})
