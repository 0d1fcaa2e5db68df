"""The tiny local encoders: real architectures, loadable with the Auto classes, seeded, built once."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _sha(path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_tiny_encoders_load_run_and_are_cached(tmp_path):
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel, AutoTokenizer

    from mixsig.demo import make_tiny_encoders

    paths = make_tiny_encoders(tmp_path / "enc", seed=0)
    assert set(paths) == {"text", "audio", "video"}
    mtimes = {m: (p / "model.safetensors").stat().st_mtime_ns for m, p in paths.items()}
    again = make_tiny_encoders(tmp_path / "enc", seed=0)  # reused, not rebuilt
    assert again == paths
    assert {m: (p / "model.safetensors").stat().st_mtime_ns for m, p in again.items()} == mtimes

    tok = AutoTokenizer.from_pretrained(paths["text"])
    text = AutoModel.from_pretrained(paths["text"]).eval()
    assert type(text).__name__ == "RobertaModel" and text.config.hidden_size == 32
    enc = tok(["I am so sorry to hear that.", "The train leaves at nine."], padding=True, return_tensors="pt")
    assert enc["input_ids"][0, 0].item() == tok.bos_token_id  # <s> first, as RoBERTa expects
    with torch.no_grad():
        assert text(**enc).last_hidden_state.shape[::2] == (2, 32)

    fe = AutoFeatureExtractor.from_pretrained(paths["audio"])
    audio = AutoModel.from_pretrained(paths["audio"]).eval()
    assert type(audio).__name__ == "Wav2Vec2Model" and fe.sampling_rate == 16000 and fe.return_attention_mask
    x = np.sin(np.linspace(0, 400, 16000)).astype(np.float32)
    with torch.no_grad():
        out = audio(**fe(x, sampling_rate=16000, return_tensors="pt")).last_hidden_state
    assert out.shape == (1, 49, 32)  # 20 ms frames, like the base models

    proc = AutoImageProcessor.from_pretrained(paths["video"])
    video = AutoModel.from_pretrained(paths["video"]).eval()
    assert type(video).__name__ == "VideoMAEModel" and video.config.num_frames == 4
    frames = list(np.random.default_rng(0).integers(0, 255, (4, 48, 64, 3), dtype=np.uint8))
    pixels = proc(frames, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 4, 3, 32, 32)
    with torch.no_grad():
        assert video(pixel_values=pixels).last_hidden_state.shape == (1, 32, 32)  # 2 tubelets x 4 x 4 patches


def test_tiny_encoders_are_seeded(tmp_path):
    from mixsig.demo import make_tiny_encoders

    a = make_tiny_encoders(tmp_path / "a", seed=0)
    b = make_tiny_encoders(tmp_path / "b", seed=0)
    c = make_tiny_encoders(tmp_path / "c", seed=1)
    for m in ("text", "audio", "video"):
        assert _sha(a[m]) == _sha(b[m])
        assert _sha(a[m]) != _sha(c[m])
    # asking for another seed in the same folder rebuilds it
    d = make_tiny_encoders(tmp_path / "a", seed=1)
    assert _sha(d["text"]) == _sha(c["text"])
