"""Cutting a segment out of a long media file decodes the segment and a margin around it, not the whole file (a seek
to the margin before the segment, decoding stopped past its end), and gives the samples and frames the whole file
decoded and cut gives."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mixsig.analysis import _media

RATE = 22050  # not a divisor of Opus' 48 kHz: the seek must keep the resampler's phase
SECONDS = 20
FPS = 8
GOP = 16  # a keyframe every 2 s


@pytest.fixture(scope="module")
def long_media(tmp_path_factory):
    """A 20 s WAV, silent but for a 440 Hz tone in its last second, and a 60 s MP4 (keyframe every 2 s) whose frame
    k is a flat grey of brightness 8 * (k % 32)."""
    import av
    import soundfile as sf

    root = tmp_path_factory.mktemp("long")
    t = np.arange(SECONDS * RATE) / RATE
    sf.write(str(root / "long.wav"), np.where(t >= SECONDS - 1, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0), RATE,
             subtype="PCM_16")
    with av.open(str(root / "long.mp4"), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        s.codec_context.options = {"qp": "0", "g": str(GOP), "keyint_min": str(GOP)}
        for k in range(60 * FPS):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * (k % 32), np.uint8), format="rgb24")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return root


@pytest.fixture
def decoded(monkeypatch):
    """What the cutters decode: audio samples and video frames, counted as PyAV hands them out."""
    import av

    counts = {"samples": 0, "frames": 0}
    real_open = av.open

    class Counting:
        def __init__(self, c):
            self._c = c

        def __enter__(self):
            self._c.__enter__()
            return self

        def __exit__(self, *exc):
            return self._c.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self._c, name)

        def decode(self, *args, **kwargs):
            for f in self._c.decode(*args, **kwargs):
                if isinstance(f, av.AudioFrame):
                    counts["samples"] += f.samples
                else:
                    counts["frames"] += 1
                yield f

    monkeypatch.setattr(av, "open", lambda *a, **kw: Counting(real_open(*a, **kw)))
    return counts


def _whole_file_wave(path) -> np.ndarray:
    """The reference: every sample of the file decoded and resampled to 48 kHz mono from its start (what
    read_audio cut from before it seeked)."""
    import av

    parts = []
    with av.open(str(path)) as src:
        rs = av.AudioResampler(format="flt", layout="mono", rate=_media.AUDIO_RATE)
        for frame in src.decode(audio=0):
            parts += [o.to_ndarray().reshape(-1) for o in rs.resample(frame)]
        parts += [o.to_ndarray().reshape(-1) for o in rs.resample(None)]
    return np.concatenate(parts)


def test_the_last_second_of_a_long_wav_decodes_about_three_seconds_and_the_same_samples(long_media, decoded):
    path = long_media / "long.wav"
    data = _media.cut_audio(path, SECONDS - 1.0, SECONDS)
    assert decoded["samples"] <= (1 + 2 * _media.MARGIN + 0.5) * RATE < SECONDS * RATE / 5  # not the whole file
    (long_media / "cut.webm").write_bytes(data)
    tone = _media.read_audio(long_media / "cut.webm")  # the embedded Opus, decoded again: the planted tone
    assert 0.25 < np.sqrt(np.mean(tone[2400:-2400] ** 2)) < 0.45
    decoded["samples"] = 0
    silent = _media.read_audio(path, SECONDS - 3.0, SECONDS - 1.5)
    assert np.abs(silent).max() < 1e-4  # null: the silent part before it stays silent
    assert decoded["samples"] <= (1.5 + 2 * _media.MARGIN + 0.5) * RATE
    ref = _whole_file_wave(path)
    for s, e in ((18.77, 19.9), (SECONDS - 1.0, None), (3.3, 4.0)):  # a start at no whole input sample, to the end
        lo, hi = round(s * _media.AUDIO_RATE), ref.size if e is None else round(e * _media.AUDIO_RATE)
        assert np.array_equal(_media.read_audio(path, s, e), ref[lo:hi]), (s, e)  # the same samples, so bytes


def test_the_end_of_a_long_video_decodes_its_keyframe_group_not_the_file(long_media, decoded):
    data = _media.cut_video(long_media / "long.mp4", 57.3, 58.3)  # mid keyframe group
    assert decoded["frames"] <= (1 + _media.MARGIN + GOP / FPS + 0.5) * FPS < 60 * FPS / 10
    import av

    with av.open(io.BytesIO(data)) as c:
        bright = [float(f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]
    want = [8 * (k % 32) for k in range(60 * FPS) if 57.3 <= k / FPS < 58.3]  # frames 459 .. 466, the segment's
    assert len(bright) == FPS and np.allclose(bright, want, atol=6), (bright, want)
