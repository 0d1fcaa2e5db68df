"""Cut a sample's ``start``–``end`` segment out of its audio or video file and encode it small, for the report's
sample browser (:mod:`mixsig.analysis.sections.browser`), which embeds it as a ``data:`` URI.

Audio: Opus in WebM (48 kHz mono, 32 kbit/s); video: VP8 in WebM (at most :data:`VIDEO_MAX_SIDE` pixels on its
longer side, the source's frame rate, no audio track: the sample's audio is its own element). Both are formats
Chromium, Firefox and Safari play. Encoding is single-threaded and ``bitexact`` (no library version string, no random
segment id), so the same file and segment give the same bytes for one PyAV/FFmpeg build.

Only the segment and :data:`MARGIN` around it are decoded, however long the file: a segment starting past
:data:`MARGIN` is reached with a seek (video: to the keyframe at or before it; audio: to an input sample that keeps
the resampler's phase), decoding stops past its end, and the samples and frames are those of the whole file decoded
and cut; where the timestamps after a seek cannot place it exactly, the file is decoded from its start.
"""

from __future__ import annotations

import base64
import io
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

#: The embedded audio: sample rate (Opus' own), bit rate.
AUDIO_RATE = 48000
AUDIO_BITRATE = 32000
#: The embedded video: the longer side at most this many pixels (never upscaled), VP8 bit rate.
VIDEO_MAX_SIDE = 160
VIDEO_BITRATE = 150000
#: MIME types of what :func:`cut_audio` and :func:`cut_video` return.
AUDIO_MIME = "audio/webm"
VIDEO_MIME = "video/webm"


def _segment(start, end) -> tuple[float, float]:
    """(start, end) seconds; a missing start is 0, a missing end is the end of the file (inf)."""
    s = float(start) if start is not None and math.isfinite(float(start)) else 0.0
    e = float(end) if end is not None and math.isfinite(float(end)) else math.inf
    if s < 0 or e <= s:
        raise ValueError(f"segment {s}-{e} s is empty or negative; the manifest's start must be below its end")
    return s, e


def _container_bytes(write) -> bytes:
    """Run ``write(container)`` on a WebM container written to memory; return its bytes."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm", container_options={"fflags": "+bitexact"}) as out:
        write(out)
    return buf.getvalue()


#: Seconds decoded before a segment (from a seek point: the decoder and the resampler settle) and after it (the
#: resampler's tail): a segment starting later than this is reached with a seek, and decoding stops this long past
#: its end, so a segment costs its length plus about 2 s of decoding however long the file is.
MARGIN = 1.0


class _NoSeek(Exception):
    """A seek that cannot keep the cut exact (no timestamps, it landed past the margin): decode from the start."""


def read_audio(path, start=None, end=None) -> np.ndarray:
    """The segment of ``path``'s first audio stream as ``[n]`` float32 mono at :data:`AUDIO_RATE` (decoded with
    PyAV, resampled by FFmpeg, averaged over channels); raises ValueError for a file without audio.

    Sample ``k`` of the stream resampled from its first decoded sample is the sample at ``k / AUDIO_RATE`` s. A
    segment starting past :data:`MARGIN` is reached with a seek to :data:`MARGIN` before it (the first frame cut to
    an input sample whose resampled index is whole, so the resampler's phase is the full decode's), and decoding
    stops :data:`MARGIN` past its end: the samples are those of the whole file decoded and cut."""
    import av

    s, e = _segment(start, end)
    with av.open(str(path)) as src:
        if not src.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        stream = src.streams.audio[0]
        try:
            wave, base = _decode_audio(src, stream, s, e, seek=s > MARGIN)
        except _NoSeek:
            src.seek(0)
            wave, base = _decode_audio(src, stream, s, e, seek=False)
    lo = int(round(s * AUDIO_RATE)) - base
    hi = wave.size if math.isinf(e) else min(wave.size, int(round(e * AUDIO_RATE)) - base)
    if hi <= lo:
        raise ValueError(f"{path}: the segment {s}-{e} s lies past the end of the audio "
                         f"({(wave.size + base) / AUDIO_RATE:.3f} s)")
    return np.ascontiguousarray(wave[lo:hi], dtype=np.float32)


def _decode_audio(src, stream, s: float, e: float, seek: bool) -> tuple[np.ndarray, int]:
    """(the resampled wave, the index of its first sample in the whole file's resampled stream): from the start,
    or (``seek``) from a whole-phase input sample about :data:`MARGIN` before ``s``; stops :data:`MARGIN` past ``e``.

    After a seek, positions come from the frames' timestamps, trusted only where they count single samples (a
    stream time base of at most one sample: not Matroska/WebM's milliseconds, which are decoded from the start) and
    from the first frame that its successor follows without a gap or overlap (a decoder may shorten the first
    frame after a seek: Opus' pre-skip)."""
    import av

    rate = stream.sample_rate or stream.codec_context.sample_rate
    step = rate // math.gcd(rate, AUDIO_RATE)  # input samples per whole number of output samples
    seek = seek and stream.time_base is not None and stream.time_base <= Fraction(1, rate)
    first, zero = 0, stream.start_time or 0  # the first input sample fed to the resampler; the stream's first pts
    if seek:
        first = int((s - MARGIN) * rate) // step * step
        src.seek(zero + int(first / rate / stream.time_base), stream=stream)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    parts: list = []

    def feed(frame):
        parts.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))

    fed, pending = not seek, None  # pending: the last frame after the seek not yet known to be followed without gap
    stop = math.inf if math.isinf(e) else (e + MARGIN) * rate
    for frame in src.decode(stream):
        if frame.pts is None and not fed:
            raise _NoSeek
        at = None if frame.pts is None else int(round(float((frame.pts - zero) * stream.time_base) * rate))
        if fed:
            feed(frame)
        elif pending is None or pending[1] + pending[0].samples != at:
            pending = (frame, at)  # the first frame after the seek, or one its predecessor does not join
            continue
        else:
            first = max(first, -(-pending[1] // step) * step)
            if first > (s - MARGIN / 2) * rate:
                raise _NoSeek  # landed too late for the decoder and resampler to settle before the segment
            for f, a in (pending, (frame, at)):
                if fed:
                    feed(f)
                elif a + f.samples > first:
                    feed(_tail(f, first - a))
                    fed = True
            if not fed:  # both frames lie before ``first``: the current one waits, already joined
                pending = (frame, at)
                continue
        if at is not None and at >= stop:
            break
    if not fed:
        raise _NoSeek  # the file ended before two joined frames: decode it from the start
    feed(None)
    wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return wave, first * AUDIO_RATE // rate


def _tail(frame, skip: int):
    """``frame`` without its first ``skip`` samples (a new frame of the same format, layout and rate)."""
    import av

    if skip == 0:
        return frame
    arr = frame.to_ndarray()
    arr = arr[:, skip * (len(frame.layout.channels) if not frame.format.is_planar else 1):]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out


def cut_audio(path, start=None, end=None) -> bytes:
    """The ``start``–``end`` segment of ``path``'s audio as Opus in WebM (bytes; :data:`AUDIO_MIME`)."""
    import av

    wave = read_audio(path, start, end)

    def write(out):
        stream = out.add_stream("libopus", rate=AUDIO_RATE)
        stream.layout = "mono"
        stream.bit_rate = AUDIO_BITRATE
        stream.codec_context.thread_count = 1
        step = 960  # 20 ms, Opus' default frame
        for k, lo in enumerate(range(0, wave.size, step)):
            frame = av.AudioFrame.from_ndarray(wave[None, lo:lo + step], format="flt", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = lo
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)

    return _container_bytes(write)


def _scaled(width: int, height: int) -> tuple[int, int]:
    k = min(1.0, VIDEO_MAX_SIDE / max(width, height))
    return max(2, int(round(width * k / 2)) * 2), max(2, int(round(height * k / 2)) * 2)


def cut_video(path, start=None, end=None) -> bytes:
    """The frames of ``path``'s first video stream shown in ``start``–``end`` as VP8 in WebM (bytes;
    :data:`VIDEO_MIME`), scaled to at most :data:`VIDEO_MAX_SIDE` pixels, timestamps from 0."""
    import av

    s, e = _segment(start, end)
    with av.open(str(path)) as src:
        if not src.streams.video:
            raise ValueError(f"{path} has no video stream")
        vin = src.streams.video[0]
        fps = Fraction(vin.average_rate or vin.guessed_rate or 25)
        try:
            frames = _video_frames(src, vin, fps, s, e, seek=s > MARGIN)
        except _NoSeek:
            src.seek(0)
            frames = _video_frames(src, vin, fps, s, e, seek=False)
        if not frames:
            raise ValueError(f"{path}: no video frame in the segment {s}-{e} s")
        width, height = _scaled(frames[0].width, frames[0].height)
        images = [f.reformat(width=width, height=height, format="yuv420p") for f in frames]
    n_end = len(images) if math.isinf(e) else max(1, int(round((e - s) * float(fps))))

    def write(out):
        stream = out.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = VIDEO_BITRATE
        cc = stream.codec_context
        cc.thread_count = 1
        cc.options = {"deadline": "realtime", "cpu-used": "8", "flags": "+bitexact"}
        stream.time_base = Fraction(1, 1000)
        cc.time_base = 1 / fps
        for k, img in enumerate(images[:n_end]):
            frame = av.VideoFrame.from_ndarray(img.to_ndarray(), format="yuv420p")
            frame.pts = k
            frame.time_base = 1 / fps
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)

    return _container_bytes(write)


def _video_frames(src, vin, fps, s: float, e: float, seek: bool) -> list:
    """The decoded frames shown in ``s``–``e``: from the start, or (``seek``) from the keyframe at or before
    :data:`MARGIN` before ``s`` (decoding a keyframe's group gives the frames the full decode gives); decoding stops
    at the first frame past ``e``."""
    if seek:
        src.seek(int((s - MARGIN) / vin.time_base), stream=vin)  # frame times are the stream's own, as here
    frames: list = []
    first = True
    for frame in src.decode(vin):
        if seek and frame.time is None:
            raise _NoSeek
        t = float(frame.time) if frame.time is not None else len(frames) / float(fps)
        if first and seek and t > s - MARGIN / 2:
            raise _NoSeek  # landed late (no keyframe index): the first frames may be missing or partial
        first = False
        if t + 1e-6 < s:
            continue
        if t >= e - 1e-6:
            break
        frames.append(frame)
    return frames


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,<data>``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """(mime, bytes) of a ``data:<mime>;base64,...`` URI (the inverse of :func:`data_uri`)."""
    head, _, payload = uri.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise ValueError(f"not a base64 data URI: {uri[:40]!r}")
    return head[5:-7], base64.b64decode(payload)


def media_seconds(data_or_path) -> float:
    """The duration in seconds of a media file (a path, or its bytes), from its decoded packets' timestamps."""
    import av

    src = io.BytesIO(data_or_path) if isinstance(data_or_path, (bytes, bytearray)) else str(Path(data_or_path))
    with av.open(src) as c:
        stream = (c.streams.audio or c.streams.video)[0]
        end = 0.0
        for frame in c.decode(stream):
            dur = float(frame.samples / frame.sample_rate) if stream.type == "audio" else (
                float(frame.duration * frame.time_base) if frame.duration else 1 / float(stream.average_rate or 25))
            end = max(end, float(frame.time or 0.0) + dur)
    return end
