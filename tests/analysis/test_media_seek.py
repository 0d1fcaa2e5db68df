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
    """A 20 s WAV, faint noise with a 440 Hz tone in its last second, and a 60 s MP4 (keyframe every 2 s) whose frame
    k is a flat grey of brightness 8 * (k % 32)."""
    import av
    import soundfile as sf

    root = tmp_path_factory.mktemp("long")
    t = np.arange(SECONDS * RATE) / RATE
    noise = 0.05 * np.random.default_rng(0).standard_normal(t.size)  # every cut has content to misplace
    sf.write(str(root / "long.wav"), noise + np.where(t >= SECONDS - 1, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0),
             RATE, subtype="PCM_16")
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
    """What the cutters decode: audio samples and video frames, counted as PyAV hands them out; ``late`` (seconds)
    makes a seek land that much past where it was asked to, ``shorten`` (samples) drops the start of the first audio
    frame after a seek but keeps its timestamp (a decoder's pre-skip the timestamps do not say)."""
    import av

    counts = {"samples": 0, "frames": 0, "late": 0.0, "shorten": 0}
    real_open = av.open

    class Counting:
        def __init__(self, c):
            self._c, self._sought = c, False

        def __enter__(self):
            self._c.__enter__()
            return self

        def __exit__(self, *exc):
            return self._c.__exit__(*exc)

        def __getattr__(self, name):
            return getattr(self._c, name)

        def seek(self, offset, stream=None, **kwargs):
            if offset and counts["late"]:
                offset += int(counts["late"] / stream.time_base)
            self._sought = bool(offset)
            return self._c.seek(offset, stream=stream, **kwargs)

        def decode(self, *args, **kwargs):
            for f in self._c.decode(*args, **kwargs):
                if isinstance(f, av.AudioFrame):
                    if self._sought and counts["shorten"]:
                        f = _shortened(f, counts["shorten"])
                    counts["samples"] += f.samples
                else:
                    counts["frames"] += 1
                self._sought = False
                yield f

    monkeypatch.setattr(av, "open", lambda *a, **kw: Counting(real_open(*a, **kw)))
    return counts


def _shortened(frame, skip: int):
    import av

    assert frame.format.name == "s16" and len(frame.layout.channels) == 1  # the test's WAV: packed, one channel
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame.to_ndarray()[:, skip:]), format="s16",
                                     layout=frame.layout.name)
    out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
    return out


@pytest.fixture(scope="module")
def reference(long_media):
    """The reference: every sample of the long WAV decoded and resampled to 48 kHz mono from its start (what
    read_audio cut from before it seeked)."""
    import av

    parts = []
    with av.open(str(long_media / "long.wav")) as src:
        rs = av.AudioResampler(format="flt", layout="mono", rate=_media.AUDIO_RATE)
        for frame in src.decode(audio=0):
            parts += [o.to_ndarray().reshape(-1) for o in rs.resample(frame)]
        parts += [o.to_ndarray().reshape(-1) for o in rs.resample(None)]
    return np.concatenate(parts)


def _cut_of_reference(ref, s, e):
    return ref[round(s * _media.AUDIO_RATE):ref.size if e is None else round(e * _media.AUDIO_RATE)]


def test_the_last_second_of_a_long_wav_decodes_about_three_seconds_and_the_same_samples(long_media, decoded,
                                                                                         reference):
    path = long_media / "long.wav"
    data = _media.cut_audio(path, SECONDS - 1.0, SECONDS)
    assert decoded["samples"] <= (1 + 2 * _media.MARGIN + 0.5) * RATE < SECONDS * RATE / 5  # not the whole file
    (long_media / "cut.webm").write_bytes(data)
    tone = _media.read_audio(long_media / "cut.webm")  # the embedded Opus, decoded again: the planted tone
    assert 0.25 < np.sqrt(np.mean(tone[2400:-2400] ** 2)) < 0.45
    decoded["samples"] = 0
    quiet = _media.read_audio(path, SECONDS - 3.0, SECONDS - 1.5)
    assert np.sqrt(np.mean(quiet ** 2)) < 0.08  # null: the noise before it has no tone
    assert decoded["samples"] <= (1.5 + 2 * _media.MARGIN + 0.5) * RATE
    for s, e in ((18.77, 19.9), (SECONDS - 1.0, None), (3.3, 4.0)):  # a start at no whole input sample, to the end
        assert np.array_equal(_media.read_audio(path, s, e), _cut_of_reference(reference, s, e)), (s, e)


@pytest.mark.parametrize("late, shorten", [(3.0, 0), (0.0, 300)])
def test_a_seek_that_lands_late_or_a_shortened_first_frame_still_gives_the_same_samples(long_media, decoded,
                                                                                        reference, late, shorten):
    """A seek landing past the margin (a demuxer without an index) decodes the file from its start; a first frame
    after the seek shorter than its timestamps say is not trusted: the next frame, which follows it, positions the
    cut."""
    decoded.update(late=late, shorten=shorten)
    for s, e in ((15.2, 16.0), (9.91, 11.0)):
        assert np.array_equal(_media.read_audio(long_media / "long.wav", s, e), _cut_of_reference(reference, s, e))
    if late:
        assert decoded["samples"] > SECONDS * RATE  # decoded from the start, past the late landing
    else:
        assert decoded["samples"] < 0.5 * SECONDS * RATE  # still the segment and its margins only


def test_the_end_of_a_long_video_decodes_its_keyframe_group_not_the_file(long_media, decoded):
    data = _media.cut_video(long_media / "long.mp4", 57.3, 58.3)  # mid keyframe group
    assert decoded["frames"] <= (1 + _media.MARGIN + GOP / FPS + 0.5) * FPS < 60 * FPS / 10
    import av

    with av.open(io.BytesIO(data)) as c:
        bright = [float(f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]
    want = [8 * (k % 32) for k in range(60 * FPS) if 57.3 <= k / FPS < 58.3]  # frames 459 .. 466, the segment's
    assert len(bright) == FPS and np.allclose(bright, want, atol=6), (bright, want)
    decoded.update(late=3.0, frames=0)  # a seek that lands past the segment's start: decoded from the start
    assert _media.cut_video(long_media / "long.mp4", 57.3, 58.3) == data
    assert decoded["frames"] > 57 * FPS
