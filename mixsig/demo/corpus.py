"""The offline demo corpus: a seeded, labelled multimodal corpus with a manifest.

``make_corpus(out_dir, n_rows=120, seed=0, media=True)`` writes::

    out_dir/manifest.csv
    out_dir/audio/<id>.wav      16 kHz mono PCM-16, 1-4 s
    out_dir/video/<id>.mp4      64x64, 8 fps, yuv420p, lossless H.264 (libx264; MPEG-4 Part 2 at a fixed
                                quantiser if PyAV lacks it), same length

Labels are ``empathetic`` / ``neutral`` (about 45% empathetic). Every row has a signed cue strength per modality
(``cue_text``, ``cue_audio``, ``cue_video`` in [-1, 1], + = empathetic) that drives the text templates, the
prosody of the audio and the face of the video:

- most rows: every modality agrees with the label, strength 0.5-1;
- ``planted == "ambiguous"`` (about 15%): weak cues in every modality (-0.1 to 0.3 towards the label);
  the simulated annotators disagree more;
- ``planted == "conflict:<modality>"`` (about 15%): that modality strongly contradicts the label
  (0.75-1 towards the other class) while the others support it — a fusion model may be misled by it.

Empathetic clips are longer on average (a duration shortcut, as in the paper's data): ``duration`` column.
Rows come in ``group`` s (source "videos" of 2-8 rows, fewer in tiny corpora; each has its own speaker pitch and
face look) and the splits (about 70/15/15 of rows) are drawn by group, so the manifest validates clean.

Votes: ``votes`` holds 5 simulated annotators who saw everything (their accuracy grows with the mean cue
strength, so agreement drops on ambiguous and conflicting rows); ``votes@text|audio|video|all`` hold 3
annotators per condition of a simulated human study who saw only that condition (accuracy from that
modality's cue strength, or the mean for ``all``).

Deterministic: the same ``(n_rows, seed)`` gives the same manifest bytes; with ``media=True`` also the same WAV
bytes and, for one PyAV/FFmpeg build, the same MP4 bytes (RGB -> YUV in integers, lossless single-threaded
bitexact encoding: see :func:`mixsig.demo._synth.write_mp4`), in any process: every random draw comes from a
generator seeded by ``(seed, purpose, row)``, nothing reads the clock, no output depends on set order or string
hashes, and rows are written one after another. ``media=False`` writes the same rows without the ``audio``,
``video``, ``start`` and ``end`` columns and no media (for fast tests).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mixsig.demo import _synth
from mixsig.demo._text import make_text
from mixsig.errors import UsageError
from mixsig.modalities import MODALITIES

logger = logging.getLogger(__name__)

CLASSES = ("empathetic", "neutral")
CONDITIONS = ("text", "audio", "video", "all")
N_ANNOTATORS = 5
N_STUDY_ANNOTATORS = 3
MIN_ROWS = 12

COLUMNS_MEDIA = (
    "id", "split", "label", "group", "text", "audio", "video", "start", "end", "votes",
    "votes@text", "votes@audio", "votes@video", "votes@all", "planted", "cue_text", "cue_audio", "cue_video",
    "duration",
)
COLUMNS_TEXT_ONLY = tuple(c for c in COLUMNS_MEDIA if c not in ("audio", "video", "start", "end"))

# seed streams: each purpose draws from its own generator so adding media never changes the rows
_PLAN, _SPLITS, _ANNOTATORS, _ROW, _AUDIO, _VIDEO, _LOOKS = range(7)


@dataclass(frozen=True)
class _Row:
    index: int
    id: str
    group: int
    empathetic: bool
    planted: str
    cues: dict[str, float]   # signed: + = empathetic
    seconds: float


def _rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *more])


def make_corpus(out_dir: str | os.PathLike, n_rows: int = 120, seed: int = 0, media: bool = True) -> Path:
    """Write the demo corpus into ``out_dir``; return the path of its ``manifest.csv``.

    Args:
        out_dir: folder to write into (created if needed; files of an earlier corpus with the same names are
            replaced).
        n_rows: number of rows (at least 12).
        seed: the seed; the same seed gives byte-identical output.
        media: write WAV and MP4 files (else a text-only manifest).

    Example::

        >>> path = make_corpus("/tmp/demo", n_rows=60, seed=1)     # doctest: +SKIP
        >>> from mixsig.manifest import load_manifest
        >>> load_manifest(path).classes                            # doctest: +SKIP
        ('empathetic', 'neutral')
    """
    n_rows = int(n_rows)
    if n_rows < MIN_ROWS:
        raise UsageError(f"the demo corpus needs at least {MIN_ROWS} rows (3 splits of whole groups); got {n_rows}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = _plan_rows(n_rows, seed)
    splits = _assign_splits(rows, seed)
    rows = _ensure_both_labels(rows, splits)
    group_look = _group_looks(max(r.group for r in rows) + 1, seed)
    annotator_skill = _rng(seed, _ANNOTATORS).uniform(0.85, 1.0, N_ANNOTATORS + N_STUDY_ANNOTATORS * len(CONDITIONS))

    if media:
        (out / "audio").mkdir(exist_ok=True)
        (out / "video").mkdir(exist_ok=True)
    records = []
    for r in rows:
        rec = _record(r, splits[r.group], seed, annotator_skill)
        if media:
            rec["audio"], rec["video"] = _write_media(out, r, group_look[r.group], seed)
            rec["start"], rec["end"] = "0.000", f"{r.seconds:.3f}"
        records.append(rec)

    columns = COLUMNS_MEDIA if media else COLUMNS_TEXT_ONLY
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    path = out / "manifest.csv"
    tmp = out / ".manifest.csv.tmp"
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, path)
    logger.info("demo corpus: %d rows (seed %d, media=%s) in %s", n_rows, seed, media, out)
    return path


def _plan_rows(n_rows: int, seed: int) -> list[_Row]:
    """Labels, planted cases, cue strengths, durations and groups of every row."""
    rng = _rng(seed, _PLAN)
    # groups of 2-8 rows (smaller in small corpora), contiguous in row order (a source video's segments)
    largest = int(np.clip(n_rows // 6, 2, 8))
    sizes: list[int] = []
    while sum(sizes) < n_rows:
        sizes.append(int(rng.integers(2, largest + 1)))
    sizes[-1] -= sum(sizes) - n_rows
    if sizes[-1] < 2:  # no group of one row: borrow from the previous group, or join it
        if sizes[-2] > 2:
            sizes[-2] -= 2 - sizes[-1]
            sizes[-1] = 2
        else:
            last = sizes.pop()
            sizes[-1] += last
    group_of = np.repeat(np.arange(len(sizes)), sizes)

    width = max(5, len(str(n_rows - 1)))
    rows = []
    for i in range(n_rows):
        empathetic = bool(rng.random() < 0.45)
        u = rng.random()
        if u < 0.15:
            planted = "ambiguous"
        elif u < 0.30:
            planted = f"conflict:{MODALITIES[int(rng.integers(3))]}"
        else:
            planted = ""
        sign = 1.0 if empathetic else -1.0
        cues = {}
        for m in MODALITIES:
            if planted == "ambiguous":
                mag = rng.uniform(-0.1, 0.3)
            elif planted == f"conflict:{m}":
                mag = -rng.uniform(0.75, 1.0)
            else:
                mag = rng.uniform(0.5, 1.0)
            cues[m] = round(float(sign * mag), 3)
        seconds = rng.uniform(1.5, 2.75) + (0.75 if empathetic else 0.0)
        seconds = float(np.clip(round(seconds * _synth.FPS) / _synth.FPS, 1.0, 4.0))
        rows.append(_Row(i, f"demo{i:0{width}d}", int(group_of[i]), empathetic, planted, cues, seconds))
    return rows


def _assign_splits(rows: list[_Row], seed: int) -> dict[int, str]:
    """Whole groups to train/val/test, about 70/15/15 of rows; every split gets both labels when it can."""
    rng = _rng(seed, _SPLITS)
    n_groups = max(r.group for r in rows) + 1
    size = np.bincount([r.group for r in rows], minlength=n_groups)
    labels_of = [set() for _ in range(n_groups)]
    for r in rows:
        labels_of[r.group].add(r.empathetic)
    target = {"train": 0.70, "val": 0.15, "test": 0.15}
    best, best_score = None, None
    for _ in range(50):
        order = rng.permutation(n_groups)
        assign: dict[int, str] = {int(order[0]): "test", int(order[1]): "val"}
        count = {"train": 0, "val": int(size[order[1]]), "test": int(size[order[0]])}
        for g in order[2:]:
            name = max(target, key=lambda s: target[s] * len(rows) - count[s])
            assign[int(g)] = name
            count[name] += int(size[g])
        both = sum(len(set().union(*[labels_of[g] for g, s in assign.items() if s == name])) == 2 for name in target)
        off = sum(abs(count[s] - target[s] * len(rows)) for s in target)
        score = (min(count.values()) >= 2, both, -off)
        if best_score is None or score > best_score:
            best, best_score = assign, score
        if both == 3:
            break
    return best


def _ensure_both_labels(rows: list[_Row], split_of_group: dict[int, str]) -> list[_Row]:
    """Where a split holds one class only, turn its last unplanted row into the other class (cues and duration
    follow the new label), so every split of even a tiny corpus has both labels."""
    rows = list(rows)
    for name in ("train", "val", "test"):
        members = [r for r in rows if split_of_group[r.group] == name]
        if len(members) < 2 or len({r.empathetic for r in members}) == 2:
            continue
        pick = next((r for r in reversed(members) if not r.planted), members[-1])
        shift = -0.75 if pick.empathetic else 0.75
        seconds = float(np.clip(pick.seconds + shift, 1.0, 4.0))
        rows[pick.index] = replace(pick, empathetic=not pick.empathetic, seconds=seconds,
                                   cues={m: -c for m, c in pick.cues.items()})
    return rows


def _group_looks(n_groups: int, seed: int) -> list[dict]:
    rng = _rng(seed, _LOOKS)
    return [{"f0": float(rng.uniform(150.0, 185.0)),
             "tone": float(rng.uniform(-12.0, 12.0)),
             "background": tuple(float(x) for x in rng.uniform(40.0, 90.0, 3)),
             "dx": float(rng.uniform(-3.0, 3.0))} for _ in range(n_groups)]


def _vote(label_sign: float, evidence: float, skill: np.ndarray, rng: np.random.Generator) -> list[str]:
    """One vote per annotator; P(correct) = 0.5 + 0.48 * skill * tanh(2 * evidence) / tanh(2)."""
    p_correct = 0.5 + 0.48 * skill * np.tanh(2.0 * evidence) / np.tanh(2.0)
    correct = rng.random(len(skill)) < p_correct
    true, other = (CLASSES[0], CLASSES[1]) if label_sign > 0 else (CLASSES[1], CLASSES[0])
    return [true if c else other for c in correct]


def _record(r: _Row, split: str, seed: int, skill: np.ndarray) -> dict:
    rng = _rng(seed, _ROW, r.index)
    sign = 1.0 if r.empathetic else -1.0
    text = make_text(r.cues["text"], rng)
    support = {m: sign * r.cues[m] for m in MODALITIES}   # cue strength towards the true label
    support["all"] = float(np.mean([support[m] for m in MODALITIES]))
    votes = _vote(sign, support["all"], skill[:N_ANNOTATORS], rng)
    rec = {
        "id": r.id, "split": split, "label": CLASSES[0] if r.empathetic else CLASSES[1], "group": f"v{r.group:04d}",
        "text": text, "votes": json.dumps(votes, separators=(",", ":")), "planted": r.planted,
        "cue_text": f"{r.cues['text']:.3f}", "cue_audio": f"{r.cues['audio']:.3f}",
        "cue_video": f"{r.cues['video']:.3f}", "duration": f"{r.seconds:.3f}",
    }
    for k, c in enumerate(CONDITIONS):
        lo = N_ANNOTATORS + k * N_STUDY_ANNOTATORS
        rec[f"votes@{c}"] = json.dumps(_vote(sign, support[c], skill[lo:lo + N_STUDY_ANNOTATORS], rng),
                                         separators=(",", ":"))
    return rec


def _write_media(out: Path, r: _Row, look: dict, seed: int) -> tuple[str, str]:
    audio_rel = f"audio/{r.id}.wav"
    video_rel = f"video/{r.id}.mp4"
    wave = _synth.synth_audio(r.cues["audio"], r.seconds, look["f0"], _rng(seed, _AUDIO, r.index))
    _synth.write_wav(out / audio_rel, wave)
    frames = _synth.synth_frames(r.cues["video"], r.seconds, look, _rng(seed, _VIDEO, r.index))
    _synth.write_mp4(out / video_rel, frames)
    return audio_rel, video_rel


__all__ = ["CLASSES", "CONDITIONS", "make_corpus"]
