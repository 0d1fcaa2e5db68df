"""Synthetic audio and video for the demo corpus, driven by a signed cue strength in [-1, 1].

Audio (16 kHz mono): a harmonic "voice" with syllable-like envelopes. Empathetic cues: lower pitch, a wider and
smoother rise-fall contour, softer energy, slower speaking rate. Neutral cues: higher, flat, declining pitch,
louder, faster.

Video (64x64 RGB, 8 fps): a drawn face on a plain background. Empathetic cues: a smiling mouth (corners up),
a visible head nod, warm skin colour. Neutral cues: a flat or slightly down-turned mouth, a still head, cool colour.

Everything is a deterministic function of the arguments and the generator state (no wall clock, no threads);
the MP4 bytes too, for one PyAV/FFmpeg build (:func:`write_mp4`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
FPS = 8
FRAME_SIZE = 64


def synth_audio(strength: float, seconds: float, speaker_f0: float, rng: np.random.Generator,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n] float32 waveform in [-1, 1], ``n = round(seconds * sample_rate)``.

    ``speaker_f0`` (Hz) is the speaker's base pitch; the cue moves it by ``-40 * strength`` Hz.
    """
    n = int(round(seconds * sample_rate))
    t = np.arange(n, dtype=np.float64) / sample_rate
    e = (strength + 1.0) / 2.0  # 0 = clearly neutral, 1 = clearly empathetic
    level = speaker_f0 - 40.0 * strength
    excursion = 4.0 + 26.0 * e
    phrase = rng.uniform(1.1, 1.6)
    contour = excursion * np.sin(2 * np.pi * t / phrase + rng.uniform(0, 0.5))
    declination = -12.0 * (1.0 - e) * t / max(seconds, 1e-6)
    wander = np.interp(t, np.linspace(0, seconds, 8), rng.normal(0.0, 3.0, 8))
    f0 = level + contour + declination + wander
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    # a vowel-like spectrum: 6 harmonics, the 2nd-3rd emphasised
    weights = np.array([1.0, 0.8, 0.6, 0.35, 0.2, 0.12])
    # sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x): one sin and one cos for all harmonics
    s1, c2 = np.sin(phase), 2.0 * np.cos(phase)
    prev, cur = np.zeros_like(s1), s1
    voice = weights[0] * s1
    for w in weights[1:]:
        prev, cur = cur, c2 * cur - prev
        voice += w * cur
    voice /= weights.sum()

    rate = 5.4 - 2.0 * e  # syllables per second
    env = np.zeros(n)
    pos = rng.uniform(0.05, 0.15)
    while pos < seconds - 0.08:
        slot = rng.uniform(0.85, 1.15) / rate
        length = min(0.72 * slot, seconds - pos)
        a, b = int(pos * sample_rate), int((pos + length) * sample_rate)
        if b - a > 8:
            env[a:b] = np.hanning(b - a) * rng.uniform(0.75, 1.0)
        pos += slot
        if rng.random() < 0.12:  # an occasional pause between phrases
            pos += rng.uniform(0.1, 0.25)
    amplitude = 0.55 - 0.3 * e
    wave = amplitude * env * voice + 0.004 * rng.standard_normal(n)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def write_wav(path: Path, wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM WAV (byte-identical for identical input)."""
    import soundfile as sf

    sf.write(str(path), wave, sample_rate, subtype="PCM_16", format="WAV")


def _skin(e: float, tone: float) -> np.ndarray:
    cool = np.array([150.0, 165.0, 200.0])
    warm = np.array([235.0, 165.0, 115.0])
    return (1 - e) * cool + e * warm + tone


def synth_frames(strength: float, seconds: float, face: dict, rng: np.random.Generator,
                 fps: int = FPS, size: int = FRAME_SIZE) -> np.ndarray:
    """[F, size, size, 3] uint8 RGB frames, ``F = round(seconds * fps)``.

    ``face`` holds the source video's fixed look: ``tone`` (added to the skin RGB), ``background`` (RGB),
    ``dx`` (horizontal offset, pixels).
    """
    frames_n = int(round(seconds * fps))
    e = (strength + 1.0) / 2.0
    s = size / 64.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    skin = np.clip(_skin(e, face["tone"]), 0, 255)
    bg = np.asarray(face["background"], dtype=np.float64)
    nod_amp = (0.3 + 4.0 * e ** 2) * s
    nod_freq = rng.uniform(0.9, 1.4)
    nod_phase = rng.uniform(0, 2 * np.pi)
    curvature = 5.0 * strength * s  # + : corners up (smile), - : corners down
    cx = size / 2 + face["dx"] * s
    t = np.arange(frames_n, dtype=np.float64) / fps
    cy = (30 * s + nod_amp * np.sin(2 * np.pi * nod_freq * t + nod_phase))[:, None, None]   # [F, 1, 1]
    frames = np.empty((frames_n, size, size, 3), dtype=np.uint8)
    frames[...] = np.clip(bg, 0, 255).astype(np.uint8)
    head = ((xx - cx) / (18 * s)) ** 2 + ((yy - cy) / (23 * s)) ** 2 <= 1.0                 # [F, H, W]
    frames[head] = skin.astype(np.uint8)
    for ex in (-7.0, 7.0):
        eye = (xx - (cx + ex * s)) ** 2 + (yy - (cy - 6 * s)) ** 2 <= (2.2 * s) ** 2
        frames[eye] = (30, 30, 40)
    # mouth: a parabola through the corners; its centre sits lower for a smile
    u = (xx - cx) / (9 * s)
    mouth_y = cy + 10 * s + curvature * (1 - u ** 2) - curvature * 0.5
    mouth = (np.abs(u) <= 1.0) & (np.abs(yy - mouth_y) <= 1.1 * s)
    frames[mouth] = (120, 20, 30)
    return frames


def video_codec() -> str:
    """``libx264`` when this PyAV build has it, else ``mpeg4``."""
    import av

    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def rgb_to_yuv420p(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[F, H, W, 3]`` uint8 RGB -> planes ``Y [F, H, W]``, ``U``, ``V [F, H/2, W/2]`` uint8, in integers only.

    BT.601 limited ("TV") range with the usual 8-bit integer coefficients (Y 16-235, U/V 16-240)::

        Y = ((66 R + 129 G + 25 B + 128) >> 8) + 16
        U = ((-38 R - 74 G + 112 B + 128) >> 8) + 128
        V = ((112 R - 94 G - 18 B + 128) >> 8) + 128

    and each chroma sample the rounded mean of its 2x2 block (``(a + b + c + d + 2) >> 2``). Integer arithmetic
    gives the same planes on every machine (swscale's SIMD paths need not). ``H`` and ``W`` must be even.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected [F, H, W, 3] uint8 RGB frames; got {frames.shape} {frames.dtype}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs an even frame size; got {frames.shape[2]}x{frames.shape[1]}")
    f = frames.astype(np.int32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128

    def half(c: np.ndarray) -> np.ndarray:
        return (c[:, 0::2, 0::2] + c[:, 1::2, 0::2] + c[:, 0::2, 1::2] + c[:, 1::2, 1::2] + 2) >> 2

    return y.astype(np.uint8), half(u).astype(np.uint8), half(v).astype(np.uint8)


#: libx264: lossless (``qp=0``: constant-QP rate control, so no macroblock tree and no lookahead), the fastest
#: preset (fewest analysis paths), one thread (so no sliced or lookahead threads either). With ``crf=18`` the
#: same frames gave different bytes from one encode to the next on AVX-512 machines (macroblock-tree rate
#: control). x264 writes its settings into the stream's SEI user data ("... threads=1 ... rc=cqp mbtree=0
#: qp=0"), which the tests read back. Lossless 4:2:0 is H.264's High 4:4:4 Predictive profile: FFmpeg/PyAV
#: decode it; some hardware players do not.
X264_OPTIONS = {"preset": "ultrafast", "qp": "0", "threads": "1"}
#: mpeg4 (when PyAV lacks libx264): a fixed quantiser of 3 (``flags=+qscale`` with ``qmin = qmax = 3``; PyAV
#: cannot set a frame's quality, and ``qscale`` is no codec option), one thread; lossy, but no rate control.
MPEG4_OPTIONS = {"flags": "+qscale", "qmin": "3", "qmax": "3", "threads": "1"}


def write_mp4(path: Path, frames: np.ndarray, fps: int = FPS, codec: str | None = None) -> None:
    """MP4 with one video stream, yuv420p (BT.601 limited range, tagged so), bytes a deterministic function of
    the frames for one PyAV/FFmpeg build.

    The RGB -> YUV conversion is done here in integers (:func:`rgb_to_yuv420p`), so the encoder gets planes that
    do not depend on swscale. ``codec`` (default :func:`video_codec`): ``libx264`` encodes them losslessly
    (:data:`X264_OPTIONS`: decoding gives back exactly these planes); ``mpeg4`` with a fixed quantiser
    (:data:`MPEG4_OPTIONS`). Both single-threaded and ``bitexact`` (codec ``flags=+bitexact``, container
    ``fflags=+bitexact``): no FFmpeg version strings in the file.
    """
    import av
    from av.video.reformatter import ColorRange, Colorspace

    codec = codec or video_codec()
    y, u, v = rgb_to_yuv420p(frames)
    n, height, width = y.shape
    options = dict(X264_OPTIONS if codec == "libx264" else MPEG4_OPTIONS)
    options["flags"] = options.get("flags", "") + "+bitexact"
    with av.open(str(path), mode="w", format="mp4", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        cc = stream.codec_context
        cc.thread_count = 1
        cc.thread_type = "NONE"
        cc.colorspace = Colorspace.ITU601
        cc.color_range = ColorRange.MPEG
        stream.options = options
        for i in range(n):
            planes = np.concatenate([y[i], u[i].reshape(-1, width), v[i].reshape(-1, width)])
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            frame.colorspace, frame.color_range = Colorspace.ITU601, ColorRange.MPEG
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
