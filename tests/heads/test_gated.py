"""The gated fusion head: the reference architecture's parameter counts, widths, gates and attention."""

import numpy as np
import pytest

from mixsig.errors import HeadError
from mixsig.heads import GatedFusionHead, get_head
from tests.heads.helpers import synthetic


def test_parameter_counts_match_the_reference_model():
    head = get_head("gated")
    assert head.n_parameters([768, 768, 768]) == 1_352_709
    assert head.n_parameters([768]) == 891_651
    # widths may differ per modality: only the projections change (384*256 fewer weights on text)
    assert head.n_parameters([384, 768, 768]) == 1_352_709 - 384 * 256


def test_fitted_network_has_the_reference_layers():
    X, y = synthetic(64, 0, widths={"text": 768, "audio": 768, "video": 768})
    head = get_head("gated", epochs=1).fit(X, y, seed=0)
    assert head.n_parameters() == 1_352_709
    shapes = {k: tuple(v.shape) for k, v in head.net_.state_dict().items()}
    assert shapes["proj.0.0.weight"] == (256, 768) and shapes["proj.0.1.running_mean"] == (256,)
    assert shapes["gate.2.weight"] == (1, 256) and shapes["att.1.weight"] == (128, 256) and shapes["att.1.bias"] == (128,)
    assert shapes["v.weight"] == (1, 128) and "v.bias" not in shapes
    hidden = [s for k, s in shapes.items() if k.startswith("mlp.") and k.endswith("weight") and len(s) == 2]
    assert hidden == [(512, 256), (512, 512), (512, 512), (2, 512)]


def test_different_widths_one_modality_gates_and_attention():
    X, y = synthetic(120, 0)
    Xv, yv = synthetic(40, 1)
    head = get_head("gated", epochs=3).fit(X, y, X_val=Xv, y_val=yv, seed=0)
    assert head.modalities_ == ("a", "b", "c") and head.dims_ == (12, 8, 10)
    w = head.modality_weights(Xv)
    assert w["gates"].shape == (40, 3) and w["attention"].shape == (40, 3)
    assert np.all((w["gates"] > 0) & (w["gates"] < 1))
    np.testing.assert_allclose(w["attention"].sum(axis=1), 1.0, rtol=1e-5)
    p = head.predict_proba(Xv)
    assert p.shape == (40, 2) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    one = get_head("gated", epochs=3).fit({"a": X["a"]}, y, X_val={"a": Xv["a"]}, y_val=yv, seed=0)
    assert one.modality_weights({"a": Xv["a"]})["attention"].tolist() == [[1.0]] * 40
    assert (one.predict_proba({"a": Xv["a"]}).argmax(1) == yv).mean() > 0.9


def test_best_validation_epoch_is_kept():
    X, y = synthetic(120, 0)
    Xv, yv = synthetic(40, 1)
    head = get_head("gated", epochs=6).fit(X, y, X_val=Xv, y_val=yv, seed=3)
    assert len(head.history_) == 6
    assert head.best_epoch_ == int(np.argmax(head.history_))  # first best on ties
    acc = float((head.predict_proba(Xv).argmax(1) == yv).mean())
    assert acc == pytest.approx(max(head.history_))


def test_callback_stops_training():
    X, y = synthetic(80, 0)
    seen = []
    head = get_head("gated", epochs=10).fit(X, y, X_val=X, y_val=y, seed=0,
                                            callback=lambda e, s: seen.append((e, s)) or e == 2)
    assert [e for e, _ in seen] == [0, 1, 2] and len(head.history_) == 3
    assert all(0.0 <= s <= 1.0 for _, s in seen)


def test_same_seed_same_probabilities_other_seed_differs():
    X, y = synthetic(100, 0)
    a = get_head("gated", epochs=2).fit(X, y, seed=7).predict_proba(X)
    b = get_head("gated", epochs=2).fit(X, y, seed=7).predict_proba(X)
    c = get_head("gated", epochs=2).fit(X, y, seed=8).predict_proba(X)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_caller_rng_and_torch_settings_are_untouched():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    X, y = synthetic(64, 0)
    get_head("gated", epochs=1).fit(X, y, seed=0)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det


def test_bad_inputs_are_refused_with_the_fix():
    X, y = synthetic(50, 0)
    with pytest.raises(HeadError, match="Unknown parameter.*'epoch'.*Valid parameters"):
        GatedFusionHead(epoch=3)
    with pytest.raises(HeadError, match="modality_dropout=1.5"):
        get_head("gated", modality_dropout=1.5).fit(X, y)
    Xn = dict(X, b=X["b"].copy())
    Xn["b"][4, 0] = np.nan
    with pytest.raises(HeadError, match=r"X\['b'\] has 1 rows with NaN/Inf \(first: row 4\)"):
        get_head("gated", epochs=1).fit(Xn, y)
    head = get_head("gated", epochs=1).fit(X, y)
    with pytest.raises(HeadError, match=r"lacks modalities \['c'\]"):
        head.predict_proba({"a": X["a"], "b": X["b"]})
    with pytest.raises(HeadError, match="has 7 columns; the head was fitted on 8"):
        head.predict_proba(dict(X, b=X["b"][:, :7]))
    with pytest.raises(HeadError, match="not fitted"):
        get_head("gated").predict_proba(X)
