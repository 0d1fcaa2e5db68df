"""The demo corpus: determinism, decodable media, planted structure, learnable cues, clean manifest."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from mixsig.demo import make_corpus
from mixsig.demo._synth import video_codec
from mixsig.demo.corpus import COLUMNS_MEDIA, COLUMNS_TEXT_ONLY
from mixsig.errors import UsageError
from mixsig.manifest import load_manifest, to_samples, validate_manifest

EMPATHETIC_WORDS = ("sorry", "feel", "hear", "understand", "alone", "hard", "tough", "trusting", "matter", "easy",
                    "stressful", "bothers", "frightening", "overwhelmed")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    pos, neg = score[positive], score[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def entropy(votes: list[str]) -> float:
    p = sum(v == "empathetic" for v in votes) / len(votes)
    return 0.0 if p in (0.0, 1.0) else float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))


@pytest.fixture(scope="module")
def media_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("media"), n_rows=40, seed=5, media=True)


@pytest.fixture(scope="module")
def big_text_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("text"), n_rows=600, seed=11, media=False)


def corpus_files(manifest: Path) -> dict[Path, bytes]:
    root = manifest.parent
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_corpus(tmp_path):
    """Every file (manifest, WAVs, MP4s) of two corpora made here and of one made in a fresh process with another
    hash seed is the same, byte for byte."""
    a = corpus_files(make_corpus(tmp_path / "a", n_rows=14, seed=7))
    b = corpus_files(make_corpus(tmp_path / "b", n_rows=14, seed=7))
    code = f"from mixsig.demo import make_corpus; make_corpus({str(tmp_path / 'fresh')!r}, n_rows=14, seed=7)"
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    fresh = corpus_files(tmp_path / "fresh" / "manifest.csv")
    assert len(a) == 1 + 2 * 14 and sum(rel.suffix == ".mp4" for rel in a) == 14
    for name, other in (("in-process", b), ("fresh process", fresh)):
        assert other.keys() == a.keys(), name
        assert [str(rel) for rel in a if a[rel] != other[rel]] == [], name
    a = tmp_path / "a" / "manifest.csv"
    c = make_corpus(tmp_path / "c", n_rows=14, seed=8)
    assert c.read_bytes() != a.read_bytes()
    assert (c.parent / "audio" / "demo00000.wav").read_bytes() != (a.parent / "audio" / "demo00000.wav").read_bytes()


def test_text_only_has_the_same_rows_without_media(tmp_path):
    with_media = read_rows(make_corpus(tmp_path / "m", n_rows=14, seed=2, media=True))
    path = make_corpus(tmp_path / "t", n_rows=14, seed=2, media=False)
    text_only = read_rows(path)
    assert tuple(text_only[0].keys()) == COLUMNS_TEXT_ONLY
    assert tuple(with_media[0].keys()) == COLUMNS_MEDIA
    assert not (path.parent / "audio").exists() and not (path.parent / "video").exists()
    assert text_only == [{k: r[k] for k in COLUMNS_TEXT_ONLY} for r in with_media]


def test_media_decodes_with_soundfile_and_pyav(media_corpus):
    rows = read_rows(media_corpus)
    root = media_corpus.parent
    for r in rows:
        seconds = float(r["duration"])
        assert r["start"] == "0.000" and float(r["end"]) == seconds
        wave, sr = sf.read(root / r["audio"], dtype="float32")
        assert sr == 16000 and wave.ndim == 1 and len(wave) == round(seconds * 16000)
        assert 0.05 < np.abs(wave).max() <= 1.0
        with av.open(str(root / r["audio"])) as container:
            decoded = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
        assert len(decoded) == len(wave)
        with av.open(str(root / r["video"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name in (video_codec(), "h264")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == round(seconds * 8)
        assert frames[0].shape == (64, 64, 3)
    assert video_codec() in ("libx264", "mpeg4")


def test_demo_manifest_is_clean_and_builds_samples(media_corpus):
    manifest, problems = validate_manifest(media_corpus)
    assert problems == []
    assert manifest.classes == ("empathetic", "neutral")
    assert manifest.conditions == ("all", "audio", "text", "video")
    s = to_samples(manifest)
    assert len(s) == 40 and s.votes.shape == (40, 5) and (s.votes >= 0).all()
    assert {c: v.shape for c, v in s.votes_by_condition.items()} == {c: (40, 3) for c in manifest.conditions}
    for m in ("text", "audio", "video"):
        assert all(len(h) == 16 for h in s.content_hash[m].tolist())
    assert len(set(s.content_hash["audio"].tolist())) == 40
    assert set(s.columns) == {"planted", "cue_text", "cue_audio", "cue_video", "duration"}


def test_structure_of_a_large_corpus(big_text_corpus):
    manifest = load_manifest(big_text_corpus)          # raises on any error, group leaks included
    rows = read_rows(big_text_corpus)
    n = len(rows)
    assert n == 600
    assert len({r["id"] for r in rows}) == n
    emp = np.array([r["label"] == "empathetic" for r in rows])
    assert 0.38 < emp.mean() < 0.52
    planted = np.array([r["planted"] for r in rows])
    assert 0.10 < (planted == "ambiguous").mean() < 0.20
    assert 0.10 < np.char.startswith(planted.astype(str), "conflict:").mean() < 0.20
    assert set(planted) == {"", "ambiguous", "conflict:text", "conflict:audio", "conflict:video"}
    # splits by group, about 70/15/15 of rows, both labels in each
    split_of_group: dict[str, set] = {}
    for r in rows:
        split_of_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of_group.values())
    sizes = np.bincount([list(split_of_group).index(r["group"]) for r in rows])
    assert 2 <= sizes.min() and sizes.max() <= 8
    for name, share in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        in_split = np.array([r["split"] == name for r in rows])
        assert abs(in_split.mean() - share) < 0.03, name
        assert 0 < emp[in_split].mean() < 1
    # cue strengths follow the plan
    sign = np.where(emp, 1.0, -1.0)
    for m in ("text", "audio", "video"):
        support = sign * np.array([float(r[f"cue_{m}"]) for r in rows])
        conflict = planted == f"conflict:{m}"
        clean = planted == ""
        assert (support[clean] >= 0.5).all() and (support[clean] <= 1.0).all()
        assert (support[conflict] <= -0.75).all()
        assert (np.abs(support[planted == "ambiguous"]) <= 0.3).all()
    # the duration shortcut: empathetic clips are longer
    dur = np.array([float(r["duration"]) for r in rows])
    assert dur.min() >= 1.0 and dur.max() <= 4.0
    assert np.allclose(dur * 8, np.round(dur * 8))
    assert dur[emp].mean() - dur[~emp].mean() > 0.5
    assert manifest.classes == ("empathetic", "neutral")


def test_votes_simulate_annotators(big_text_corpus):
    rows = read_rows(big_text_corpus)
    planted = np.array([r["planted"] for r in rows])
    votes = [json.loads(r["votes"]) for r in rows]
    assert {len(v) for v in votes} == {5}
    ent = np.array([entropy(v) for v in votes])
    assert ent[planted == "ambiguous"].mean() > ent[planted == ""].mean() + 0.25
    majority_right = np.array([(sum(x == r["label"] for x in v) >= 3) for v, r in zip(votes, rows)])
    assert majority_right[planted == ""].mean() > 0.95
    # human study: annotators who saw only the conflicting modality are mostly wrong, the others mostly right
    for m in ("text", "audio", "video"):
        conflict = planted == f"conflict:{m}"
        acc = {c: np.mean([np.mean([x == r["label"] for x in json.loads(r[f"votes@{c}"])])
                           for r, k in zip(rows, conflict) if k]) for c in ("text", "audio", "video")}
        assert acc[m] < 0.3, (m, acc)
        assert all(acc[o] > 0.75 for o in acc if o != m), (m, acc)
    assert {len(json.loads(r["votes@all"])) for r in rows} == {3}


def test_cues_are_learnable_from_decoded_media(media_corpus):
    rows = read_rows(media_corpus)
    root = media_corpus.parent
    emp = np.array([r["label"] == "empathetic" for r in rows])
    pitch, warmth, mouth = [], [], []
    for r in rows:
        wave, sr = sf.read(root / r["audio"])
        spec = np.abs(np.fft.rfft(wave))
        freqs = np.fft.rfftfreq(len(wave), 1 / sr)
        band = (freqs > 60) & (freqs < 400)
        pitch.append(freqs[band][np.argmax(spec[band])])
        with av.open(str(root / r["video"])) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(float)
        centre = frames[:, 20:36, 22:42]
        warmth.append((centre[..., 0] - centre[..., 2]).mean())
        # mouth pixels (dark red); a smile puts the middle of the mouth lower than its corners
        red = (frames[..., 0] - frames[..., 1] > 50) & (frames[..., 1] < 90)
        bends = []
        for mask in red:
            ys, xs = np.nonzero(mask)
            centre, half = (xs.min() + xs.max()) / 2, (xs.max() - xs.min()) / 2
            offset = np.abs(xs - centre) / half
            if (offset < 0.3).any() and (offset > 0.7).any():
                bends.append(ys[offset < 0.3].mean() - ys[offset > 0.7].mean())
        mouth.append(float(np.nanmean(bends)))
    text = np.array([sum(r["text"].lower().count(w) for w in EMPATHETIC_WORDS) for r in rows])
    clean = np.array([r["planted"] == "" for r in rows])
    # a single simple feature per modality separates the classes well above chance
    assert auroc(emp, -np.array(pitch)) > 0.8      # empathetic: lower pitch
    assert auroc(emp, np.array(warmth)) > 0.8      # empathetic: warmer face
    assert auroc(emp, text) > 0.8
    assert auroc(emp[clean], -np.array(pitch)[clean]) > 0.95
    assert auroc(emp[clean], np.array(warmth)[clean]) > 0.95
    assert auroc(emp[clean], text[clean]) > 0.9
    assert auroc(emp, np.array(mouth)) > 0.8       # empathetic: smiling


@pytest.mark.parametrize("n_rows", [12, 13, 16, 17, 20, 23, 31])
def test_every_split_of_a_small_corpus_has_both_labels(tmp_path, n_rows):
    for seed in range(6):
        manifest = load_manifest(make_corpus(tmp_path / str(seed), n_rows=n_rows, seed=seed, media=False))
        labels: dict[str, set] = {}
        for r in manifest.rows:
            labels.setdefault(r["split"], set()).add(r["label"])
        assert labels == {s: {"empathetic", "neutral"} for s in ("train", "val", "test")}, (seed, labels)
        for r in manifest.rows:  # cues still agree with the label outside planted rows
            sign = 1.0 if r["label"] == "empathetic" else -1.0
            if not r["planted"]:
                assert min(sign * float(r[f"cue_{m}"]) for m in ("text", "audio", "video")) >= 0.5


def test_too_few_rows_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="at least 12 rows"):
        make_corpus(tmp_path, n_rows=5)
