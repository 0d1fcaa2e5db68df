"""The demo's MP4s are a deterministic function of the frames: the same bytes from every encode, in every process.

libx264 with ``crf=18`` gave different bytes for the same frames from one encode to the next on AVX-512 machines
(macroblock-tree rate control). The frames are now converted to YUV 4:2:0 in integers and encoded losslessly
(``qp=0``), single-threaded and bitexact; these tests pin each part.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from mixsig.demo import _synth
from mixsig.demo.corpus import _VIDEO, _group_looks, _rng

HAS_X264 = "libx264" in av.codecs_available
CODECS = [pytest.param("libx264", marks=pytest.mark.skipif(not HAS_X264, reason="PyAV without libx264")),
          pytest.param("mpeg4", marks=pytest.mark.skipif("mpeg4" not in av.codecs_available,
                                                          reason="PyAV without mpeg4"))]


def clips() -> list[np.ndarray]:
    """Three corpus-like clips (different looks, cue strengths and lengths)."""
    looks = _group_looks(3, 0)
    return [_synth.synth_frames(strength, seconds, looks[i], _rng(0, _VIDEO, i))
            for i, (strength, seconds) in enumerate([(0.8, 2.5), (-0.9, 1.5), (0.1, 3.0)])]


def decode(path: Path, fmt: str | None = None) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format=fmt) if fmt else f.to_ndarray() for f in container.decode(video=0)])


def x264_settings(data: bytes) -> dict[str, str]:
    """The ``options: k=v ...`` string libx264 writes into its SEI user data."""
    start = data.index(b"x264 - core")
    text = data[start:data.index(b"\x00", start)].decode("ascii")
    return dict(kv.split("=", 1) for kv in text.split("options: ", 1)[1].split())


@pytest.mark.parametrize("codec", CODECS)
def test_repeated_encodes_of_the_same_frames_give_the_same_bytes(tmp_path, codec):
    for i, frames in enumerate(clips()):
        digests = set()
        for k in range(20):
            path = tmp_path / f"{i}-{k}.mp4"
            _synth.write_mp4(path, frames, codec=codec)
            digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
        assert len(digests) == 1, (codec, i, len(digests))


@pytest.mark.skipif(not HAS_X264, reason="PyAV without libx264")
def test_libx264_is_lossless_single_threaded_and_bitexact(tmp_path):
    for i, frames in enumerate(clips()):
        path = tmp_path / f"{i}.mp4"
        _synth.write_mp4(path, frames)
        data = path.read_bytes()
        settings = x264_settings(data)
        assert {k: settings[k] for k in ("rc", "qp", "mbtree", "threads", "lookahead_threads", "sliced_threads")} \
            == {"rc": "cqp", "qp": "0", "mbtree": "0", "threads": "1", "lookahead_threads": "1",
                "sliced_threads": "0"}
        assert b"Lavf" not in data and b"Lavc" not in data        # bitexact: no FFmpeg version strings
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            cc = stream.codec_context
            assert (cc.name, cc.profile, cc.pix_fmt) == ("h264", "High 4:4:4 Predictive", "yuv420p")
            assert (int(cc.colorspace), int(cc.color_range)) == (5, 1)      # BT.601 (bt470bg), limited range
            assert stream.frames == len(frames) and float(stream.average_rate) == _synth.FPS
        # lossless: decoding gives back exactly the planes of the integer conversion
        y, u, v = _synth.rgb_to_yuv420p(frames)
        planes = decode(path)                                      # [F, H * 3 / 2, W] yuv420p
        h, w = y.shape[1:]
        assert np.array_equal(planes[:, :h], y)
        assert np.array_equal(planes[:, h:h + h // 4].reshape(u.shape), u)
        assert np.array_equal(planes[:, h + h // 4:].reshape(v.shape), v)
        # and as RGB the frames stay close to what was drawn (chroma is shared by 2x2 pixels)
        rgb = decode(path, "rgb24").astype(int)
        assert np.abs(rgb - frames).mean() < 3.0


@pytest.mark.skipif("mpeg4" not in av.codecs_available, reason="PyAV without mpeg4")
def test_the_mpeg4_fallback_decodes_bitexact_at_a_fixed_quantiser(tmp_path):
    frames = clips()[0]
    sizes = {}
    for q in ("3", "6"):
        path = tmp_path / f"q{q}.mp4"
        saved = dict(_synth.MPEG4_OPTIONS)
        try:
            _synth.MPEG4_OPTIONS.update(qmin=q, qmax=q)
            _synth.write_mp4(path, frames, codec="mpeg4")
        finally:
            _synth.MPEG4_OPTIONS.clear()
            _synth.MPEG4_OPTIONS.update(saved)
        data = path.read_bytes()
        sizes[q] = len(data)
        assert b"Lavf" not in data and b"Lavc" not in data
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "mpeg4"
        rgb = decode(path, "rgb24").astype(int)
        assert rgb.shape == frames.shape and np.abs(rgb - frames).mean() < 6.0
    assert sizes["6"] < 0.8 * sizes["3"]       # the quantiser is the one asked for, not rate control's


def test_rgb_to_yuv420p_is_bt601_limited_range():
    colours = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    frames = np.repeat(np.repeat(colours[:, None, None, :], 2, axis=1), 2, axis=2)      # [5, 2, 2, 3]
    y, u, v = _synth.rgb_to_yuv420p(frames)
    assert y[:, 0, 0].tolist() == [16, 235, 82, 144, 41]
    assert u[:, 0, 0].tolist() == [128, 128, 90, 54, 240]
    assert v[:, 0, 0].tolist() == [128, 128, 240, 34, 110]
    # a 2x2 block's chroma is the rounded mean of its four pixels
    mixed = np.zeros((1, 2, 2, 3), np.uint8)
    mixed[0, 0, 0] = (255, 0, 0)
    _, u1, v1 = _synth.rgb_to_yuv420p(mixed)
    assert (int(u1[0, 0, 0]), int(v1[0, 0, 0])) == ((90 + 3 * 128 + 2) // 4, (240 + 3 * 128 + 2) // 4)
    with pytest.raises(ValueError, match="even"):
        _synth.rgb_to_yuv420p(np.zeros((1, 3, 4, 3), np.uint8))


@pytest.mark.slow
def test_corpora_made_in_parallel_processes_are_byte_identical(tmp_path):
    """15 processes at once, each with its own hash seed, make the same corpus."""
    n = 15
    procs = []
    for k in range(n):
        env = {**os.environ, "PYTHONHASHSEED": str(1000 + k)}
        code = f"from mixsig.demo import make_corpus; make_corpus({str(tmp_path / str(k))!r}, n_rows=24, seed=3)"
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env))
    assert [p.wait(timeout=300) for p in procs] == [0] * n
    reference = {p.relative_to(tmp_path / "0"): p.read_bytes() for p in (tmp_path / "0").rglob("*") if p.is_file()}
    assert len(reference) == 1 + 2 * 24
    for k in range(1, n):
        root = tmp_path / str(k)
        files = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        assert files.keys() == reference.keys()
        assert [rel for rel in reference if files[rel] != reference[rel]] == [], k
