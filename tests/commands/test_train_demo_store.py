"""`mixsig train` on a store extracted from the demo corpus with the tiny local encoders (slow: extraction)."""

import numpy as np
import pytest
import zarr

from mixsig.cli import main


@pytest.mark.slow
def test_train_on_a_demo_store_writes_every_subset_and_seed(tmp_path, capsys):
    from mixsig.demo import make_corpus, make_tiny_encoders

    manifest = make_corpus(tmp_path / "corpus", n_rows=60, seed=0)
    encoders = make_tiny_encoders(tmp_path / "enc")
    store = tmp_path / "store.zarr"
    assert main(["-q", "cache", "init", str(store), "--manifest", str(manifest)]) == 0
    for m in ("text", "audio", "video"):
        assert main(["-q", "extract", str(manifest), "--store", str(store), "--modality", m,
                     "--encoder", str(encoders[m])]) == 0
    keys = {m: next(k for k in zarr.open_group(str(store), mode="r")["features"].group_keys() if k.startswith(m))
            for m in ("text", "audio", "video")}
    capsys.readouterr()
    feats = ",".join(f"{m}={k}" for m, k in keys.items())
    assert main(["train", str(store), "--head", "gated", "--features", feats, "--n-seeds", "2", "--name", "demo",
                 "--params", '{"epochs": 3}']) == 0
    assert "7 subsets" in capsys.readouterr().out
    g = zarr.open_group(str(store), mode="r")["runs/demo"]
    subs = sorted(g["subsets"].group_keys())
    assert subs == sorted(["text", "audio", "video", "text+audio", "text+video", "audio+video", "text+audio+video"])
    n = g["subsets/text/probs"].shape[1]
    for s in subs:
        probs = g[f"subsets/{s}/probs"][...]
        assert probs.shape == (2, n, 2) and np.isfinite(probs).all()
        assert g[f"subsets/{s}/attention"].shape == (2, n, s.count("+") + 1)
    assert g.attrs["seeds"] == [0, 1] and g.attrs["head"] == "gated" and g.attrs["complete"] is True
