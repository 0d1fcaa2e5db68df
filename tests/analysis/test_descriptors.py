"""Descriptors: prosody from audio, duration from files, imported feature keys, BH-controlled comparisons."""

import numpy as np
import pytest
import soundfile as sf
from tests.analysis.helpers import planted, to_store

from mixsig.analysis import analyse, prosody
from mixsig.cache import Provenance, Status

SR = 16000


def tone(freq, seconds, amp=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("freq", [65.0, 110.0, 200.0, 330.0, 390.0])
def test_prosody_pitch_and_energy_of_a_tone(freq):
    p = prosody(tone(freq, 1.0), SR)
    assert p["pitch_mean_hz"] == pytest.approx(freq, rel=0.01)
    assert p["pitch_std_hz"] < 2.0
    assert p["voiced_fraction"] > 0.95
    assert p["rms_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.3)


def test_prosody_pitch_of_a_harmonic_signal_is_its_fundamental():
    t = np.arange(SR) / SR
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 6))
    assert prosody(x, SR)["pitch_mean_hz"] == pytest.approx(150, rel=0.01)


def test_prosody_of_silence_and_noise():
    silent = prosody(np.zeros(SR, np.float32), SR)
    assert silent["voiced_fraction"] == 0 and np.isnan(silent["pitch_mean_hz"])
    noise = prosody(np.random.default_rng(0).normal(0, 0.1, SR), SR)
    assert noise["voiced_fraction"] < 0.2
    stereo = prosody(np.stack([tone(150, 0.5), tone(150, 0.5)], axis=1), SR)
    assert stereo["pitch_mean_hz"] == pytest.approx(150, rel=0.01)
    assert np.isnan(prosody(np.zeros(10), SR)["rms_db"])  # shorter than a frame


def test_media_and_imported_descriptors_separate_the_planted_samples(tmp_path):
    inp, amb = planted(n=120, seed=6)
    media = tmp_path / "media"
    media.mkdir()
    audio = []
    for i, a in enumerate(amb):
        name = f"clip{i}.wav"
        sf.write(media / name, tone(260.0 if a else 120.0, 1.5 if a else 0.8), SR)
        audio.append(name)
    inp.audio = np.array(audio)
    inp.start = np.full(len(amb), np.nan)  # no segment: duration comes from the file
    inp.end = np.full(len(amb), np.nan)
    inp.audio[5] = "missing.wav"
    # manifest_path is stored relative to the store folder (as `mixsig extract` writes it)
    store = to_store(tmp_path / "s.zarr", inp, attrs={"manifest_path": "../media/manifest.csv"})
    # an imported 3-column feature key (e.g. facial action units): column 0 is high on the planted rows
    key = store.create_key(Provenance(modality="face", encoder="openface", revision="sha256:" + "1" * 64,
                                      pooling="imported", layers="last", dtype="float32", preprocessing={},
                                      extra={"columns": ["AU01", "AU06", "AU12"]}), 3)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(len(amb), 3)).astype(np.float32)
    values[:, 0] += 3.0 * amb
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, values[lo:hi], np.full(hi - lo, Status.OK, np.int8))
    r = analyse(str(tmp_path / "s.zarr"), "planted", split="test", n_boot=0)  # media root from manifest_path
    assert r["media_root"] == str(media)
    avail = r["descriptors"]["available"]
    assert {"duration_s", "pitch_mean_hz", "rms_db", f"{key}[AU01]", f"{key}[AU12]"} <= set(avail)
    assert any("without variation" in n and "word_count" in n for n in r["notes"])  # 4 words everywhere
    assert avail["duration_s"]["n"] == len(amb) - 1  # the missing file
    assert any("1 audio file(s) not found" in n for n in r["notes"])
    tests = {(t["descriptor"], t["comparison"]): t for t in r["descriptors"]["tests"]}
    pitch = tests[("pitch_mean_hz", "misled vs others")]
    assert pitch["mean_a"] == pytest.approx(260, rel=0.02) and pitch["mean_b"] < 150
    assert pitch["q"] < 1e-6 and pitch["significant_q05"]
    au = tests[(f"{key}[AU01]", "disagreement vs agreement")]
    assert au["rank_biserial"] > 0.7 and au["q"] < 1e-6
    assert not tests[(f"{key}[AU12]", "misled vs others")]["significant_q05"]
    qs = [t["q"] for t in r["descriptors"]["tests"]]
    assert qs == sorted(qs)  # listed by q
    assert r["samples"]["desc[duration_s]"][amb].min() == pytest.approx(1.5)


def test_prosody_is_skipped_with_a_reason_without_media_root(tmp_path):
    inp, _ = planted(n=60, seed=7)
    inp.audio = np.array(["a.wav"] * 60)
    r = analyse(inp, split="test", n_boot=0)
    assert any("prosody skipped: no media root" in n for n in r["notes"])
    assert "duration_s" in r["descriptors"]["available"]


def write_video(path, frames, fps=10):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 10, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_duration_of_video_only_samples_comes_from_the_container(tmp_path):
    inp, amb = planted(n=40, seed=8)
    videos = []
    for i, a in enumerate(amb):
        write_video(tmp_path / f"v{i}.mp4", 25 if a else 12)
        videos.append(f"v{i}.mp4")
    inp.video = np.array(videos)
    inp.start = np.full(40, np.nan)
    inp.end = np.full(40, np.nan)
    r = analyse(inp, split="test", n_boot=0, media_root=tmp_path)
    dur = r["samples"]["desc[duration_s]"]
    assert dur[amb] == pytest.approx(2.5) and dur[~amb] == pytest.approx(1.2)
    assert not any("prosody" in n and "audio file" not in n for n in r["notes"])
    assert any("no sample has an audio file" in n for n in r["notes"])
