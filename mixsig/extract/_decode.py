"""Media decoding: audio to mono float32 at a target rate, video to N evenly spaced RGB frames.

Failures raise :class:`RowFailure` carrying the row status (``decode_error``, ``too_short``) and a message
that names the file; the pipeline records them in the key's error ledger and goes on.
"""

from __future__ import annotations

import logging
import os
import threading
from fractions import Fraction
from math import gcd
from pathlib import Path

import numpy as np

from mixsig.cache import Status

log = logging.getLogger(__name__)

_SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3"}


class RowFailure(Exception):
    """A row could not be turned into model input. ``status`` is a :class:`~mixsig.cache.Status`."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = Status(status)
        self.message = message


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise RowFailure(Status.DECODE_ERROR, f"{path}: no such file; fix the path in the manifest")
    if path.stat().st_size == 0:
        raise RowFailure(Status.TOO_SHORT, f"{path}: file is empty (0 bytes)")


def _segment(start: float | None, end: float | None, max_seconds: float | None) -> tuple[float, float | None]:
    """[t0, t1) in seconds of the part to decode: the segment, cut to its first ``max_seconds``."""
    t0 = 0.0 if start is None or not np.isfinite(start) else float(start)
    t1 = None if end is None or not np.isfinite(end) else float(end)
    if max_seconds is not None and max_seconds > 0:
        t1 = t0 + max_seconds if t1 is None else min(t1, t0 + max_seconds)
    return t0, t1


def _read_soundfile(path: Path, t0: float, t1: float | None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sr = int(f.samplerate)
        a = int(round(t0 * sr))
        n = -1 if t1 is None else max(0, int(round(t1 * sr)) - a)
        if a:
            f.seek(min(a, f.frames))
        data = f.read(frames=n, dtype="float32", always_2d=True)
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], sr


def _read_pyav_audio(path: Path, t0: float, t1: float | None) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise RowFailure(Status.DECODE_ERROR, f"{path}: no audio stream")
        stream = container.streams.audio[0]
        sr = int(stream.codec_context.sample_rate or stream.rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        parts = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    x = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    a = int(round(t0 * sr))
    b = len(x) if t1 is None else int(round(t1 * sr))
    return x[a:b], sr


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) of mono ``x`` [T] from ``sr_in`` to ``sr_out`` Hz."""
    if sr_in == sr_out or len(x) == 0:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def decode_audio(path, sample_rate: int = 16000, start: float | None = None, end: float | None = None,
                 max_seconds: float | None = 10.0, peak_normalize: bool = True) -> np.ndarray:
    """Decode ``path`` to mono float32 ``[T]`` at ``sample_rate`` Hz.

    The segment ``[start, end)`` (seconds; ``None`` = whole file) is cut to its first ``max_seconds``, channels
    are averaged, the signal is resampled with ``resample_poly`` and, if ``peak_normalize``, divided by its peak
    absolute value. WAV/FLAC/OGG/MP3 go through soundfile, anything else (MP4 audio tracks, ...) through PyAV;
    if soundfile cannot read a file PyAV is tried before giving up.

    Raises :class:`RowFailure` (``decode_error`` or ``too_short``).
    """
    path = Path(path)
    _check_file(path)
    t0, t1 = _segment(start, end, max_seconds)
    errors = []
    readers = (_read_soundfile, _read_pyav_audio) if path.suffix.lower() in _SOUNDFILE_SUFFIXES else (_read_pyav_audio,)
    x = sr = None
    for reader in readers:
        try:
            x, sr = reader(path, t0, t1)
            break
        except RowFailure as exc:
            errors.append(exc.message)
        except Exception as exc:  # decoders raise many types for garbage input
            errors.append(f"{reader.__name__.strip('_')}: {type(exc).__name__}: {exc}")
    if x is None:
        raise RowFailure(Status.DECODE_ERROR, f"{path}: cannot decode audio ({'; '.join(errors)})")
    x = resample(np.asarray(x, np.float32), sr, sample_rate)
    if max_seconds:
        x = x[: int(round(max_seconds * sample_rate))]
    if len(x) == 0:
        raise RowFailure(Status.TOO_SHORT, f"{path}: no audio samples in segment [{t0}, {t1}) s")
    if not np.isfinite(x).all():
        raise RowFailure(Status.DECODE_ERROR, f"{path}: decoded audio has NaN/Inf samples")
    if peak_normalize:
        peak = float(np.abs(x).max())
        if peak > 0:
            x = x / peak
    return np.ascontiguousarray(x, dtype=np.float32)


def sample_indices(n_available: int, n_frames: int) -> np.ndarray:
    """Indices of ``n_frames`` evenly spaced frames out of ``n_available``; the last one repeated if fewer."""
    if n_available >= n_frames:
        return np.linspace(0, n_available - 1, n_frames).round().astype(np.int64)
    return np.concatenate([np.arange(n_available), np.full(n_frames - n_available, n_available - 1)]).astype(np.int64)


def _frame_time(frame_or_packet, tb: float) -> float | None:
    pts = frame_or_packet.pts
    return None if pts is None else pts * tb


_local = threading.local()

#: Codec threads for video decoding. On small machines the decoding workers already keep every core busy and
#: frame threading only slows decoding (benchmarks/README.md); larger machines keep FFmpeg's frame threading.
_CODEC_THREADS = "AUTO" if (os.cpu_count() or 1) > 4 else None


def _rgb(frame) -> np.ndarray:
    """``frame.to_ndarray(format="rgb24")``, through one reformatter per thread (a kept reformatter is much
    cheaper than each frame's own: benchmarks/README.md). Same bytes."""
    from av.video.reformatter import VideoReformatter

    r = getattr(_local, "reformatter", None)
    if r is None:
        r = _local.reformatter = VideoReformatter()
    return r.reformat(frame, format="rgb24").to_ndarray()


def _in_segment(t: float | None, t0: float, t1: float | None) -> int:
    """-1 before the segment, 0 inside, 1 after."""
    if t is None:
        return 0
    if t < t0 - 1e-6:
        return -1
    if t1 is not None and t >= t1 - 1e-6:
        return 1
    return 0


def _decode_selected(path: Path, t0: float, t1: float | None, n_frames: int, keep_all: bool, expected: int | None):
    """Decode the segment's frames; keep all (``keep_all``) or only those at the indices chosen for ``expected``
    frames. Returns (kept {index: rgb array} or list of frames, number of frames seen)."""
    import av

    wanted = set(sample_indices(expected, n_frames).tolist()) if expected else set()
    kept: dict[int, np.ndarray] = {}
    frames = []
    seen = 0
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise RowFailure(Status.DECODE_ERROR, f"{path}: no video stream")
        stream = container.streams.video[0]
        if _CODEC_THREADS:
            stream.thread_type = _CODEC_THREADS
        tb = stream.time_base or Fraction(1, 1)
        if t0 > 0:
            container.seek(int(t0 / tb), stream=stream, backward=True, any_frame=False)
        tb = float(tb)
        for frame in container.decode(stream):
            where = _in_segment(_frame_time(frame, tb), t0, t1)
            if where < 0:
                continue
            if where > 0:
                break
            if keep_all:
                frames.append(frame)
            elif seen in wanted:
                kept[seen] = _rgb(frame)
            seen += 1
    return (frames if keep_all else kept), seen


def _count_packets(path: Path, t0: float, t1: float | None) -> int | None:
    """Frames in the segment, counted from the demuxed packets (no decoding); None if timestamps are missing."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        tb = stream.time_base or Fraction(1, 1)
        if t0 > 0:
            container.seek(int(t0 / tb), stream=stream, backward=True, any_frame=False)
        tb = float(tb)
        n = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # flush packet
            t = _frame_time(packet, tb)
            if t is None:
                return None
            if _in_segment(t, t0, t1) == 0:
                n += 1
        return n


def decode_video(path, n_frames: int = 16, start: float | None = None, end: float | None = None,
                 max_seconds: float | None = 10.0) -> np.ndarray:
    """Decode ``n_frames`` evenly spaced RGB frames ``[n_frames, H, W, 3]`` uint8 from the first ``max_seconds``
    of the segment ``[start, end)`` of ``path`` (PyAV). With fewer frames than asked, the last is repeated.

    The frames of the segment are counted from the demuxed packets first, so only the selected frames are kept
    in memory; if the decoded count disagrees with the packet count, the segment is decoded again keeping all
    frames (same result, more memory).

    Raises :class:`RowFailure` (``decode_error``, or ``too_short`` for empty files / no frames).
    """
    path = Path(path)
    _check_file(path)
    t0, t1 = _segment(start, end, max_seconds)
    try:
        expected = _count_packets(path, t0, t1)
        if expected:
            kept, seen = _decode_selected(path, t0, t1, n_frames, False, expected)
            if seen == expected:
                return np.stack([kept[i] for i in sample_indices(seen, n_frames).tolist()])
            log.debug("%s: %d packets but %d frames in the segment; decoding again", path, expected, seen)
        frames, seen = _decode_selected(path, t0, t1, n_frames, True, None)
        if not seen:
            raise RowFailure(Status.TOO_SHORT, f"{path}: no video frames in segment [{t0}, {t1}) s")
        cache: dict[int, np.ndarray] = {}
        for i in sample_indices(seen, n_frames).tolist():
            if i not in cache:
                cache[i] = _rgb(frames[i])
        return np.stack([cache[i] for i in sample_indices(seen, n_frames).tolist()])
    except RowFailure:
        raise
    except Exception as exc:
        raise RowFailure(Status.DECODE_ERROR, f"{path}: cannot decode video ({type(exc).__name__}: {exc})") from exc


def has_input(value) -> bool:
    """Whether a samples-table cell holds an input ("" / None = none)."""
    return value is not None and str(value) != ""


__all__ = ["RowFailure", "decode_audio", "decode_video", "resample", "sample_indices", "has_input"]
