"""Interpretable per-sample descriptors read from the media and texts: duration, word count, simple prosody.

Their comparison between sample groups is the descriptors section (``sections/descriptors.py``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PROSODY = ("rms_db", "rms_db_std", "pitch_mean_hz", "pitch_std_hz", "voiced_fraction")
#: Audio longer than this is analysed over its first ``MAX_SECONDS`` only.
MAX_SECONDS = 30.0
FRAME_SECONDS = 0.05
HOP_SECONDS = 0.01
PITCH_RANGE_HZ = (60.0, 400.0)
VOICING_THRESHOLD = 0.5


def prosody(signal: np.ndarray, sample_rate: int) -> dict[str, float]:
    """RMS energy and autocorrelation pitch statistics of one signal.

    signal: ``[T]`` or ``[T, channels]`` float (channels are averaged). Frames of 50 ms every 10 ms (Hann window);
    a frame is voiced when its normalised autocorrelation (divided by the window's, as in Boersma 1993)
    peaks above 0.5 in the 60–400 Hz lag range
    and its RMS is above 10% of the loudest frame's. Returns ``rms_db`` (mean frame RMS, dBFS),
    ``rms_db_std``, ``pitch_mean_hz``, ``pitch_std_hz`` (over voiced frames, NaN if none) and
    ``voiced_fraction``.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = x[: int(MAX_SECONDS * sample_rate)]
    frame = int(round(FRAME_SECONDS * sample_rate))
    hop = int(round(HOP_SECONDS * sample_rate))
    nan = {k: float("nan") for k in PROSODY}
    if frame < 8 or x.size < frame:
        return nan
    n_frames = 1 + (x.size - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop][:n_frames]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt((frames**2).mean(axis=1))
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    nfft = 1 << int(np.ceil(np.log2(2 * frame)))
    window = np.hanning(frame)
    spec = np.fft.rfft(frames * window, n=nfft, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=nfft, axis=1)[:, :frame]
    # divide by the window's own autocorrelation (Boersma 1993) so longer lags are not penalised
    ac_w = np.fft.irfft(np.abs(np.fft.rfft(window, n=nfft)) ** 2, n=nfft)[:frame]
    ac = ac / np.maximum(ac_w / ac_w[0], 1e-6)
    lo = max(1, int(sample_rate / PITCH_RANGE_HZ[1]))
    hi = min(frame // 2, int(sample_rate / PITCH_RANGE_HZ[0]))
    out = dict(nan)
    out["rms_db"] = float(db.mean())
    out["rms_db_std"] = float(db.std())
    if hi <= lo + 1:
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = ac[:, lo:hi + 1] / ac[:, :1]
    norm = np.where(np.isfinite(norm), norm, -np.inf)
    best = norm.max(axis=1)
    # octave guard: the shortest lag that is a local maximum within 10% of the best peak
    inner_max = (norm[:, 1:-1] > norm[:, :-2]) & (norm[:, 1:-1] >= norm[:, 2:])
    near = inner_max & (norm[:, 1:-1] >= 0.9 * best[:, None])
    peak = np.where(near.any(axis=1), near.argmax(axis=1) + 1, norm.argmax(axis=1))
    peak_val = norm[np.arange(len(norm)), peak]
    voiced = (peak_val > VOICING_THRESHOLD) & (rms > 0.1 * rms.max()) & (rms > 0)
    lag = (peak + lo).astype(np.float64)
    # parabolic interpolation around the peak for sub-sample lag
    i = peak + lo
    inner = (i > lo) & (i < hi)
    rows = np.arange(len(ac))
    y0 = ac[rows, np.clip(i - 1, 0, frame - 1)]
    y1 = ac[rows, i]
    y2 = ac[rows, np.clip(i + 1, 0, frame - 1)]
    denom = y0 - 2 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(inner & (denom != 0), 0.5 * (y0 - y2) / denom, 0.0)
    lag = lag + np.clip(shift, -0.5, 0.5)
    out["voiced_fraction"] = float(voiced.mean())
    if voiced.any():
        f0 = sample_rate / lag[voiced]
        out["pitch_mean_hz"] = float(f0.mean())
        out["pitch_std_hz"] = float(f0.std())
    return out


def _video_seconds(path: Path) -> float:
    """Length of a video file in seconds from its container (PyAV), NaN when unknown."""
    import av

    with av.open(str(path)) as container:
        if container.duration is not None:
            return container.duration / 1_000_000  # AV_TIME_BASE
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return float("nan")


def media_descriptors(audio_paths, start, end, media_root: Path | None, video_paths=None
                      ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Duration (``end - start``, else the audio file's length, else the video file's) and prosody from
    the audio files.

    audio_paths, video_paths: ``[n]`` str relative to ``media_root`` ("" = none); start/end ``[n]`` seconds.
    Returns ``({name: [n] float}, notes)``.
    """
    n = len(audio_paths)
    notes: list[str] = []
    duration = np.where(np.isfinite(start) & np.isfinite(end), end - start, np.nan)
    cols = {"duration_s": duration}
    has_audio = np.array([bool(p) for p in audio_paths], dtype=bool)
    if media_root is None or not Path(media_root).is_dir():
        where = "no media root" if media_root is None else f"media root {media_root} is not a folder"
        if has_audio.any():
            notes.append(f"prosody skipped: {where} (pass --media-root or keep the store's manifest_path valid)")
        return cols, notes
    media_root = Path(media_root)
    if video_paths is not None:
        need = ~np.isfinite(duration) & ~has_audio & np.array([bool(p) for p in video_paths], dtype=bool)
        bad = 0
        for i in np.flatnonzero(need):
            try:
                duration[i] = _video_seconds(media_root / video_paths[i])
            except Exception as exc:  # unreadable video: duration stays NaN
                bad += 1
                log.debug("duration: cannot read %s: %s", media_root / video_paths[i], exc)
        if bad:
            notes.append(f"duration: {bad} video file(s) could not be read; those samples are NaN")
    if not has_audio.any():
        notes.append("prosody skipped: no sample has an audio file")
        return cols, notes
    import soundfile as sf

    pros = {k: np.full(n, np.nan) for k in PROSODY}
    missing = failed = 0
    for i in np.flatnonzero(has_audio):
        path = media_root / audio_paths[i]
        if not path.is_file():
            missing += 1
            continue
        try:
            info = sf.info(str(path))
            sr = int(info.samplerate)
            s0 = int(round(start[i] * sr)) if np.isfinite(start[i]) else 0
            s1 = int(round(end[i] * sr)) if np.isfinite(end[i]) else info.frames
            s1 = min(s1, s0 + int(MAX_SECONDS * sr), info.frames)
            data, sr = sf.read(str(path), start=s0, stop=max(s1, s0), dtype="float32", always_2d=True)
        except Exception as exc:  # unreadable media: this sample's prosody stays NaN
            failed += 1
            log.debug("prosody: cannot read %s: %s", path, exc)
            continue
        if not np.isfinite(duration[i]):
            duration[i] = (info.frames / sr) if not np.isfinite(start[i]) else max(s1 - s0, 0) / sr
        for k, v in prosody(data, sr).items():
            pros[k][i] = v
    if missing:
        notes.append(f"prosody: {missing} audio file(s) not found under {media_root}; those samples are NaN")
    if failed:
        notes.append(f"prosody: {failed} audio file(s) could not be decoded by soundfile; those samples are NaN")
    cols.update(pros)
    return cols, notes


def word_count(text) -> np.ndarray:
    """Whitespace-separated words per sample, ``[n]`` float (NaN where there is no text)."""
    return np.array([float(len(t.split())) if t else np.nan for t in text])


#: An imported column whose ranks agree with a computed descriptor's this closely (|Spearman rho|, over the rows
#: where both have values) is that descriptor again: Mann–Whitney U depends on the ranks only, so its tests would
#: repeat the computed descriptor's (a monotone rescaling such as milliseconds for seconds gives the same p-values).
DUPLICATE_RHO = 0.99
#: The fewest rows where both columns have values for the duplicate rule to apply: with fewer, independent columns
#: reach |rho| >= 0.99 by chance too often (1/3 of pairs at 3 rows, 1/12 at 4: measured 33.0% and 8.3% of 20000;
#: from 10 rows only the same or the reversed rank order reaches 0.99, chance 2/10! = 5.5e-7; none of 20000 did).
DUPLICATE_MIN_ROWS = 10


def _rank_rho(col: np.ndarray, other: np.ndarray) -> tuple[float, int] | None:
    """Spearman rho of two columns over the rows where both are finite and its row count; None below
    :data:`DUPLICATE_MIN_ROWS` rows or when either is constant there."""
    from scipy.stats import rankdata

    both = np.isfinite(col) & np.isfinite(other)
    n = int(both.sum())
    if n < DUPLICATE_MIN_ROWS:
        return None
    a, b = rankdata(col[both]), rankdata(other[both])
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1]), n


def duplicate_columns(computed: dict[str, np.ndarray], imported: dict[str, np.ndarray],
                      threshold: float = DUPLICATE_RHO) -> list[dict]:
    """The imported columns that duplicate a computed descriptor (duration, word count, prosody):
    ``[{"descriptor", "duplicate_of", "spearman", "n"}]``, each imported column matched to the computed one its
    ranks agree with most, when ``|rho| >= threshold`` over ``n >= DUPLICATE_MIN_ROWS`` rows where both have
    values."""
    out = []
    for name, col in imported.items():
        best = None
        for cname, ccol in computed.items():
            got = _rank_rho(col, ccol)
            if got is not None and abs(got[0]) >= threshold and (best is None or abs(got[0]) > abs(best[1])):
                best = (cname, got[0], got[1])
        if best is not None:
            out.append({"descriptor": name, "duplicate_of": best[0], "spearman": round(best[1], 6), "n": best[2]})
    return out


def _unnamed(name: str) -> bool:
    """Whether ``KEY[j]`` names an imported column by its index only (no ``--columns`` names)."""
    return name.endswith("]") and "[" in name and name[name.rindex("[") + 1:-1].isdigit()


def duplicate_imported(imported: dict[str, np.ndarray], threshold: float = DUPLICATE_RHO) -> list[dict]:
    """The imported columns that duplicate another imported column (the same file imported twice, once with
    ``--columns`` names): the columns are taken named first (``KEY[name]`` before ``KEY[j]``), then by name, and
    each is kept unless its ranks agree with an already kept one's (``|rho| >= threshold`` over
    ``n >= DUPLICATE_MIN_ROWS`` rows), so the named one is kept. Entries as :func:`duplicate_columns`'s, the
    kept column in ``duplicate_of``."""
    kept: dict[str, np.ndarray] = {}
    out = []
    for name in sorted(imported, key=lambda k: (_unnamed(k), k)):
        dup = duplicate_columns(kept, {name: imported[name]}, threshold)
        if dup:
            out.extend(dup)
        else:
            kept[name] = imported[name]
    return out
