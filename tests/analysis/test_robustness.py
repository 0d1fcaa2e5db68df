"""The report's robustness section (issue 17 §2): planted through a real run (only modality ``a`` carries the label:
dropping it falls to chance, dropping noise changes nothing), a reference recomputation of every number from the
stored probabilities, and the skip for runs without them.

Chance band (stated): n test rows, balanced classes; a label-blind model has accuracy within 0.5 ± 3·sqrt(0.25 / n)
and macro-F1 at most 0.5 + 3·sqrt(0.25 / n)."""

import json

import numpy as np
import pytest

from mixsig.analysis import AnalysisInput, analyse, write_report
from mixsig.analysis.sections import robustness
from mixsig.heads import train_run
from tests.analysis.helpers import planted, to_store
from tests.heads.helpers import make_store

N_TEST = 300
BAND = 3 * np.sqrt(0.25 / N_TEST)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("robust") / "s.zarr"
    store, keys, _, _ = make_store(path, n_train=400, n_val=80, n_test=N_TEST)
    train_run(store, "logreg", keys, seeds=[0], name="lr")
    return path, analyse(str(path), "lr", split="test", n_boot=200)


def test_dropping_the_informative_modality_falls_to_chance_in_the_report(trained, tmp_path):
    _, r = trained
    rob = r["robustness"]
    assert rob["full"] == "a+b+c" and "train-mean imputation" in rob["method"] and rob["n"] == N_TEST
    assert list(rob["missing"]) == ["a", "b", "c", "a+b", "a+c", "b+c"]
    full_acc = rob["full_model"]["accuracy"]
    assert full_acc > 0.95
    for s, v in rob["missing"].items():
        acc, f1 = v["accuracy"]["value"], v["macro_f1"]["value"]
        assert v["accuracy"]["ci_low"] <= acc <= v["accuracy"]["ci_high"]
        if "a" in s.split("+"):
            assert abs(acc - 0.5) <= BAND and f1 <= 0.5 + BAND, (s, acc, f1)
            assert v["relative_robustness"]["accuracy"]["value"] < 0.5 + BAND
        else:  # noise missing: nothing changes, and the model trained without it is as good
            assert abs(acc - full_acc) < 0.02, (s, acc, full_acc)
            assert abs(v["effective_robustness"]["accuracy"]["value"]) < 0.03
    assert rob["missing"]["b+c"]["remaining"] == "a" and rob["missing"]["a"]["remaining"] == "b+c"
    paths = write_report(r, tmp_path / "rep", plots=False)
    doc = json.loads(paths["json"].read_text())
    assert doc["robustness"]["missing"]["a"]["macro_f1"]["value"] == pytest.approx(rob["missing"]["a"]["macro_f1"]["value"])
    png, caption = robustness.figures(r)["robustness"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "trained on the remaining" in caption
    md = paths["md"].read_text()
    assert "## 5c. Robustness to a missing modality" in md and "| a+b | c |" in md


def _majority(probs):
    """Seed-aggregated prediction by hand: majority vote of the seeds' argmax, ties by the mean probability."""
    votes = np.stack([(probs.argmax(2) == k).sum(0) for k in range(probs.shape[2])], axis=1)
    return np.argmax(votes + 0.5 * probs.mean(0), axis=1)


def _acc_f1(y, pred, c):
    f1 = []
    for k in range(c):
        tp, fp, fn = np.sum((pred == k) & (y == k)), np.sum((pred == k) & (y != k)), np.sum((pred != k) & (y == k))
        f1.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return np.mean(pred == y), np.mean(f1)


def _reference_input():
    rng = np.random.default_rng(5)
    n, c, s = 240, 3, 3
    y = rng.integers(0, c, n)
    mods = ("text", "audio")
    probs = {k: rng.dirichlet(np.ones(c), (s, n)) for k in ("text", "audio", "text+audio")}
    probs["text+audio"][:, np.arange(n), y] += 1.0  # the full model is good
    probs["text+audio"] /= probs["text+audio"].sum(2, keepdims=True)
    miss = {"text": rng.dirichlet(np.ones(c), (s, n)), "audio": probs["text+audio"] * 0.5 + 0.5 / c}
    miss["text"][:, np.arange(n), y] += 0.3
    miss["text"] /= miss["text"].sum(2, keepdims=True)
    inp = AnalysisInput(ids=[f"i{i}" for i in range(n)], split=["test"] * n, labels=y, classes=("x", "y", "z"),
                        modalities=mods, probs=probs, run_name="ref", run_attrs={"head": "gated"},
                        extra={"text+audio": {f"missing/{m}/probs": p for m, p in miss.items()},
                               "text": {"other/array": np.zeros((s, 2))}})
    return inp, y, probs, miss


def test_report_numbers_equal_a_recomputation_from_the_stored_probs():
    inp, y, probs, miss = _reference_input()
    n, c, s = len(y), 3, 3
    rob = analyse(inp, split="test", n_boot=0)["robustness"]
    assert "modality-dropout path" in rob["method"]
    full_acc, full_f1 = _acc_f1(y, _majority(probs["text+audio"]), c)
    assert rob["full_model"]["accuracy"] == pytest.approx(full_acc) and rob["full_model"]["macro_f1"] == pytest.approx(full_f1)
    for m, p in miss.items():
        v = rob["missing"][m]
        acc, f1 = _acc_f1(y, _majority(p), c)
        assert v["accuracy"]["value"] == pytest.approx(acc) and v["macro_f1"]["value"] == pytest.approx(f1)
        rem = "audio" if m == "text" else "text"
        r_acc, r_f1 = _acc_f1(y, _majority(probs[rem]), c)
        assert v["remaining"] == rem
        assert v["relative_robustness"]["accuracy"]["value"] == pytest.approx(acc / full_acc)
        assert v["relative_robustness"]["macro_f1"]["value"] == pytest.approx(f1 / full_f1)
        assert v["effective_robustness"]["accuracy"]["value"] == pytest.approx(acc - r_acc)
        assert v["effective_robustness"]["macro_f1"]["value"] == pytest.approx(f1 - r_f1)
        per_seed = [_acc_f1(y, p[i].argmax(1), c)[0] for i in range(s)]
        assert v["over_seeds"]["accuracy"]["per_seed"] == pytest.approx(per_seed)
        assert v["over_seeds"]["accuracy"]["std"] == pytest.approx(np.std(per_seed, ddof=1))


def test_paired_intervals_cover_the_value_and_are_reproducible(trained):
    _, r = trained
    for v in r["robustness"]["missing"].values():
        for m in ("accuracy", "macro_f1"):
            for kind in ("effective_robustness", "relative_robustness"):
                e = v[kind][m]
                assert e["ci"][0] <= e["value"] + 1e-12 and e["value"] <= e["ci"][1] + 1e-12
    inp = _reference_input()[0]
    once = analyse(inp, split="test", n_boot=100, seed=3)["robustness"]
    assert analyse(inp, split="test", n_boot=100, seed=3)["robustness"] == once  # same seed, same numbers
    assert once["missing"]["text"]["effective_robustness"]["accuracy"]["ci"][0] < once["missing"]["text"][
        "effective_robustness"]["accuracy"]["ci"][1]


def test_runs_without_missing_probabilities_skip_the_section_with_the_reason(tmp_path):
    inp, _ = planted(n=120, seed=3, votes=False)
    to_store(tmp_path / "s.zarr", inp)  # written without missing/<set>/probs, as an imported run is
    r = analyse(str(tmp_path / "s.zarr"), "planted", split="test", n_boot=0)
    assert r["robustness"] is None
    why = r["skipped"]["robustness"]
    assert "no missing-modality probabilities" in why and "`mixsig train`" in why
    one, _ = planted(n=60, seed=3, votes=False, modalities=("text",), dominant="text")
    assert "one modality" in analyse(one, split="test", n_boot=0)["skipped"]["robustness"]


def test_a_missing_set_without_probabilities_on_some_analysed_rows_is_left_out_with_a_note():
    inp, *_ = _reference_input()
    inp.extra["text+audio"]["missing/audio/probs"][:, 7] = np.nan
    r = analyse(inp, split="test", n_boot=0)
    assert list(r["robustness"]["missing"]) == ["text"]
    assert any("missing set(s) audio lack probabilities on some analysed rows" in n for n in r["notes"])
    inp.extra["text+audio"]["missing/text/probs"][:, 3] = np.nan
    r = analyse(inp, split="test", n_boot=0)
    assert r["robustness"] is None and "no missing set has probabilities" in r["skipped"]["robustness"]
