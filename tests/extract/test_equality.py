"""A cached row equals a direct, unbatched forward of the same tiny model on the same input (float32, 1e-5).

The reference side decodes and preprocesses each input on its own (soundfile / PyAV / the HF processors, no
mixsig code), runs the model on one row without padding, and pools by hand. The extraction side batches rows
of different lengths with padding, so any leak of padding into the numbers shows up here.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

TOL = 1e-5


def _rows(manifest):
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def _segment(row):
    start = float(row["start"]) if row.get("start") else 0.0
    end = float(row["end"]) if row.get("end") else None
    return start, end


@lru_cache(maxsize=None)
def _load(path, processor):
    import transformers

    return getattr(transformers, processor).from_pretrained(path), transformers.AutoModel.from_pretrained(path).eval()


def _ref_text(path, row):
    tok, model = _load(path, "AutoTokenizer")
    enc = tok(row["text"], truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).last_hidden_state[0].numpy()


def _ref_audio(path, row, root):
    import soundfile as sf
    from scipy.signal import resample_poly

    fe, model = _load(path, "AutoFeatureExtractor")
    x, sr = sf.read(str(root / row["audio"]), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    start, end = _segment(row)
    end = start + 10.0 if end is None else min(end, start + 10.0)
    x = x[int(round(start * sr)): int(round(end * sr))]
    if sr != 16000:
        x = resample_poly(x, 16000, sr).astype(np.float32)
    x = x / np.abs(x).max()
    feats = fe(x, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        return model(input_values=feats["input_values"]).last_hidden_state[0].numpy()


def _ref_video(path, row, root):
    import av

    proc, model = _load(path, "AutoImageProcessor")
    n = model.config.num_frames
    start, end = _segment(row)
    end = start + 10.0 if end is None else min(end, start + 10.0)
    with av.open(str(root / row["video"])) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s) if start - 1e-6 <= float(f.pts * s.time_base) < end - 1e-6]
    idx = np.linspace(0, len(frames) - 1, n).round().astype(int) if len(frames) >= n else \
        list(range(len(frames))) + [len(frames) - 1] * (n - len(frames))
    pixels = proc([frames[i] for i in idx], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model(pixel_values=pixels).last_hidden_state[0].numpy()


@pytest.mark.parametrize("modality", ["text", "audio", "video"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_cached_rows_equal_direct_forward(tmp_path, corpus, tiny_encoders, cli, modality, pooling):
    from mixsig.cache import open_store

    store_path = tmp_path / "store.zarr"
    # a small budget forces several padded batches of mixed lengths
    budget = {"text": 256, "audio": 16000 * 8, "video": 3}[modality]
    rc = cli("extract", corpus, "--store", store_path, "--modality", modality, "--encoder", tiny_encoders[modality],
             "--pooling", pooling, "--batch-budget", budget)
    assert rc == 0
    store = open_store(store_path)
    (key,) = store.keys()
    view = store.read(key)
    assert len(view.rows) == len(store.samples)
    rows = _rows(corpus)
    root = Path(corpus).parent
    lengths = set()
    worst = 0.0
    for i, row in enumerate(rows):
        assert view.ids[i] == row["id"]
        if modality == "text":
            hidden = _ref_text(tiny_encoders["text"], row)
        elif modality == "audio":
            hidden = _ref_audio(tiny_encoders["audio"], row, root)
        else:
            hidden = _ref_video(tiny_encoders["video"], row, root)
        lengths.add(hidden.shape[0])
        ref = hidden[0] if pooling == "cls" else hidden.mean(axis=0)
        worst = max(worst, float(np.abs(view.X[i] - ref).max()))
    if modality != "video":
        assert len(lengths) > 3, "the corpus should have inputs of different lengths, so batches get padded"
    assert worst <= TOL, f"max abs difference {worst:.2e} > {TOL}"


def test_group_norm_audio_without_mask_equals_direct_forward(tmp_path, corpus, cli):
    """HuBERT with a group-norm feature encoder (as hubert-base) takes no attention mask, so zero padding would
    change its numbers: rows are batched only with rows of exactly the same length. Each clip is used twice,
    so batches of two equal-length rows do form; rows of different lengths must never share one."""
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    from mixsig.cache import open_store

    torch.manual_seed(0)
    enc = tmp_path / "tiny-hubert-group"
    HubertModel(HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        feat_extract_norm="group", num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=16,
    )).eval().save_pretrained(enc)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(enc)
    src = _rows(corpus)[:5]
    root = Path(corpus).parent
    rows = [{"id": f"{r['id']}-{k}", "split": r["split"], "label": r["label"], "audio": str(root / r["audio"]),
             "start": r.get("start", ""), "end": r.get("end", "")} for r in src for k in (0, 1)]
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    store_path = tmp_path / "store.zarr"
    assert cli("extract", manifest, "--store", store_path, "--modality", "audio", "--encoder", enc,
               "--pooling", "mean", "--batch-budget", 16000 * 60, "--allow-outside-paths") == 0  # absolute paths
    store = open_store(store_path)
    (key,) = store.keys()
    assert store.provenance(key)["preprocessing"]["attention_mask"] is False
    view = store.read(key)
    lengths, worst = set(), 0.0
    for i, row in enumerate(rows):
        hidden = _ref_audio(str(enc), row, tmp_path)
        lengths.add(hidden.shape[0])
        worst = max(worst, float(np.abs(view.X[i] - hidden.mean(axis=0)).max()))
    assert len(lengths) > 2, "clips of different lengths are needed to show padding never leaks in"
    assert worst <= TOL, f"max abs difference {worst:.2e} > {TOL}"
