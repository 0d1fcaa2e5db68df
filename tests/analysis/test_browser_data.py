"""The sample browser without a browser: the segment cut into a data URI decodes (PyAV) to exactly that segment,
the JSON blob cannot end its script, the page states its own size, which samples were embedded (the most misled and
ambiguous, in turn) and links the others by relative path with a #t=start,end fragment; runs without gates (imported)
have no weights; the top lists cut texts at word boundaries; report's --embed-media, --classes."""

from __future__ import annotations

import json
import os
import re
from html import escape

import numpy as np
import pytest

from tests.analysis.helpers import planted

from mixsig.analysis import _media, analyse, write_report
from mixsig.analysis.sections.browser import page_json, statement
from mixsig.analysis.sections.top import snippet
from mixsig.cli import main

RATE = 16000
FPS = 8


def _write_tone_wav(path, seconds=3.0):
    """A WAV that is silent except for a 440 Hz tone from 1.0 s to 2.0 s."""
    import soundfile as sf

    t = np.arange(int(seconds * RATE)) / RATE
    wave = np.where((t >= 1.0) & (t < 2.0), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    sf.write(str(path), wave, RATE, subtype="PCM_16")


def _write_counter_mp4(path, seconds=3.0):
    """An MP4 whose frame k is a flat grey of brightness 8 * k (k = 0 .. FPS * seconds - 1)."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        s.codec_context.options = {"qp": "0"}
        for k in range(int(seconds * FPS)):
            img = np.full((32, 32, 3), 8 * k, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)


def _decode_video_brightness(data: bytes) -> list[float]:
    import io

    import av

    with av.open(io.BytesIO(data)) as c:
        return [float(f.to_ndarray(format="gray").mean()) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    _write_tone_wav(root / "tone.wav")
    _write_counter_mp4(root / "count.mp4")
    return root


def test_audio_segment_data_uri_decodes_to_the_tone_and_nothing_else(media):
    raw = _media.cut_audio(media / "tone.wav", 1.0, 2.0)
    assert _media.cut_audio(media / "tone.wav", 1.0, 2.0) == raw  # same input, same bytes
    uri = _media.data_uri(raw, _media.AUDIO_MIME)
    mime, data = _media.decode_data_uri(uri)
    assert mime == "audio/webm"
    assert abs(_media.media_seconds(data) - 1.0) < 0.05
    tone = _media.read_audio(_write_back(media, data))  # the embedded Opus, decoded again
    rms = np.sqrt(np.mean(tone[2400:-2400] ** 2))  # inside the segment, away from the codec's edges
    assert 0.25 < rms < 0.45  # a 0.5-amplitude sine: rms 0.354
    silent = _media.read_audio(_write_back(media, _media.cut_audio(media / "tone.wav", 2.1, 2.9)))
    assert np.sqrt(np.mean(silent ** 2)) < 0.01  # null: the silent part stays silent
    ref = _media.read_audio(media / "tone.wav", 1.0, 2.0)  # the reference: the source decoded and cut
    assert abs(tone.size - ref.size) <= 0.02 * _media.AUDIO_RATE


def _write_back(folder, data: bytes):
    path = folder / f"seg-{len(data)}.webm"
    path.write_bytes(data)
    return path


def test_video_segment_holds_exactly_the_segments_frames(media):
    data = _media.cut_video(media / "count.mp4", 0.5, 1.5)
    assert _media.cut_video(media / "count.mp4", 0.5, 1.5) == data  # same input, same bytes
    bright = _decode_video_brightness(data)
    assert len(bright) == FPS  # 1 s at 8 fps
    assert abs(_media.media_seconds(data) - 1.0) < 0.13
    # frame k of the source is 8 * k bright (limited-range YUV and VP8: within a few levels): frames 4 .. 11
    want = [8 * k for k in range(4, 12)]
    assert np.allclose(bright, want, atol=6), (bright, want)


def test_page_json_cannot_end_its_script_and_round_trips():
    data = {"text": "</script><script>alert(1)</script> & <!-- \u2028 \u2029 ]]>", "n": [1, None]}
    text = page_json(data)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == data


def test_snippet_cuts_at_a_word_boundary():
    text = "Okay, let us look at the surgery again. Please update the spreadsheet with the new figures."
    cut = snippet(text, 40)
    assert cut == "Okay, let us look at the surgery again…"
    assert text.startswith(cut[:-1]) and len(cut) <= 41
    assert snippet("short text", 40) == "short text"  # null: nothing to cut, no ellipsis
    assert snippet("x" * 50, 10) == "x" * 10 + "…"  # one long word is cut inside it


@pytest.fixture(scope="module")
def reports(media, tmp_path_factory):
    """The planted run (gates, misled samples that audio misleads) with every row's media the tone and counter
    files, segments varying; reported with 4 samples embedded and with none."""
    inp, amb = planted(n=60, seed=4, modalities=("text", "audio"))
    n = len(inp.ids)
    inp.audio = np.full(n, "tone.wav")
    inp.video = np.full(n, "count.mp4")
    inp.start = np.round(np.linspace(0.0, 1.0, n), 3)
    inp.end = inp.start + 1.5
    inp.text = np.array([f"sample {i} " + "word " * 40 for i in range(n)])
    inp.media_root = media
    out = tmp_path_factory.mktemp("reports")
    res = {}
    for k in (4, 0):
        result = analyse(inp, split="test", n_boot=0, embed_media=k, media_descriptors=False)
        paths = write_report(result, out / f"r{k}", plots=False)
        res[k] = (result, paths)
    return inp, amb, res


def _blob(html: str) -> dict:
    m = re.search(r"<script type='application/json' id='mx-data'>(.*?)</script>", html, re.S)
    return json.loads(m.group(1))


def test_embedded_are_the_most_misled_and_ambiguous_in_turn_and_decode_to_their_segment(reports):
    inp, _, res = reports
    result, paths = res[4]
    top = result["top"]
    emb = result["browser"]["embedded"]
    assert emb[:2] == [top["misled"][0]["id"], top["ambiguous"][0]["id"]] and len(emb) == 4
    data = _blob(paths["html"].read_text(encoding="utf-8"))
    ids = [r[0] for r in data["rows"]]
    assert ids == list(inp.ids)  # every analysed sample is a row
    total = 0
    for sid in emb:
        i = ids.index(sid)
        for kind in ("audio", "video"):
            m = data["details"][i]["media"][kind]
            assert m["embedded"] and m["src"].startswith(f"data:{kind}/webm;base64,")
            raw = _media.decode_data_uri(m["src"])[1]
            total += len(raw)
            assert abs(_media.media_seconds(raw) - (inp.end[i] - inp.start[i])) < 0.13, (sid, kind)
    assert total == result["browser"]["embedded_bytes"]


def test_linked_media_are_relative_paths_with_the_segment_fragment(reports):
    inp, _, res = reports
    result, paths = res[4]
    data = _blob(paths["html"].read_text(encoding="utf-8"))
    linked = [i for i, d in enumerate(data["details"]) if not d["media"]["audio"]["embedded"]]
    assert len(linked) == len(inp.ids) - 4 == result["browser"]["n_linked"]
    rel = os.path.relpath(inp.media_root / "tone.wav", paths["html"].parent)
    for i in linked:
        src = data["details"][i]["media"]["audio"]["src"]
        assert src == f"{rel}#t={inp.start[i]:g},{inp.end[i]:g}"
        assert (paths["html"].parent / src.split("#")[0]).resolve() == (inp.media_root / "tone.wav").resolve()


def test_page_states_its_size_and_embed_0_is_small(reports):
    _, _, res = reports
    sizes = {}
    for k, (result, paths) in res.items():
        html = paths["html"].read_text(encoding="utf-8")
        size = paths["html"].stat().st_size
        assert f"This file: {size:,} bytes" in html
        assert json.loads(paths["json"].read_text())["browser"]["report_html_bytes"] == size
        sizes[k] = size
        assert ("data:audio/webm" in html) == (k > 0)
    assert res[0][0]["browser"]["embedded"] == [] and res[0][0]["browser"]["embedded_bytes"] == 0
    # the difference is the embedded media, base64 (4/3) and little else
    grow = sizes[4] - sizes[0]
    assert res[4][0]["browser"]["embedded_bytes"] * 4 / 3 <= grow < res[4][0]["browser"]["embedded_bytes"] * 1.4 + 2000
    assert "Sample browser" in paths["md"].read_text() and "data:" not in paths["md"].read_text()


def test_weights_and_misleading_modality_where_the_run_has_them(reports):
    inp, _, res = reports
    result, paths = res[0]
    data = _blob(paths["html"].read_text(encoding="utf-8"))
    col = {c["key"]: j for j, c in enumerate(data["columns"])}
    cat = [r[col["category"]] for r in data["rows"]]
    mis = [r[col["misleading"]] for r in data["rows"]]
    misled = [i for i, c in enumerate(cat) if c == "misled"]
    assert misled and all("audio" in mis[i].split() for i in misled)  # planted: audio misleads them
    assert all(mis[i] == "" for i in range(len(cat)) if cat[i] != "misled")  # null: nothing for the others
    gates = inp.gates[inp.full_subset].mean(axis=0)
    w = data["details"][misled[0]]["weights"]["gates"]
    assert [w[m] for m in inp.modalities] == pytest.approx(gates[misled[0]], abs=1e-4)


def test_a_run_without_gates_has_no_weights(tmp_path):
    inp, _ = planted(n=40, seed=6)
    inp.gates = {}
    result = analyse(inp, split="test", n_boot=0, embed_media=0)
    paths = write_report(result, tmp_path / "r", plots=False)
    data = _blob(paths["html"].read_text(encoding="utf-8"))
    assert all(d["weights"] == {} for d in data["details"]) and len(data["rows"]) == 40
    assert result["browser"]["n_without_media"] == 40
    assert "none has audio or video" in paths["html"].read_text(encoding="utf-8")


@pytest.mark.parametrize("argv, words", [
    (["report", "s.zarr", "--run", "r", "--embed-media", "-1"], "--embed-media must be 0 or more"),
    (["report", "s.zarr", "--run", "r", "--classes", "a,b"], "--classes is for the one-shot form"),
])
def test_bad_browser_options_are_one_usage_line(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_one_shot_classes_give_the_order_of_npz_columns(tmp_path, capsys):
    import csv

    classes = ("calm", "tense", "warm")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 40)
    ids = [f"u{i:02d}" for i in range(40)]
    with open(tmp_path / "m.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "split", "label", "text"])
        w.writerows([i, "test" if k >= 20 else "train", classes[c], f"utterance {i}"] for k, (i, c) in
                    enumerate(zip(ids, y)))
    order = [2, 0, 1]  # the file's columns: warm, calm, tense (no classes array in the .npz)
    probs = np.eye(3)[y][:, order] * 0.8 + 0.2 / 3
    np.savez(tmp_path / "p.npz", ids=np.array(ids), **{"probs@text": probs[None]})
    f1 = {}
    for name, extra in (("given", ["--classes", "warm,calm,tense"]), ("sorted", [])):
        out = tmp_path / name
        assert main(["report", "--manifest", str(tmp_path / "m.csv"), "--predictions", str(tmp_path / "p.npz"),
                     "--out", str(out), "--no-plots", "--bootstrap", "0", "--embed-media", "0", *extra]) == 0
        doc = json.loads((out / "report.json").read_text())
        f1[name] = doc["metrics"]["text"]["aggregated"]["macro_f1"]["value"]
    assert f1["given"] == pytest.approx(1.0) and f1["sorted"] < 0.5  # null: the sorted order mislabels every row
    assert "bytes" in capsys.readouterr().err  # the report's size on stderr


def test_missing_and_unreadable_media_are_said_and_the_report_still_written(media, tmp_path):
    inp, _ = planted(n=40, seed=9)
    (media / "corrupt.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    inp.audio = np.array(["corrupt.wav"] * 20 + ["gone.wav"] * 20)
    inp.start, inp.end = np.zeros(40), np.ones(40)
    inp.media_root = media
    result = analyse(inp, split="test", n_boot=0, embed_media=40, media_descriptors=False)
    paths = write_report(result, tmp_path / "r", plots=False)
    b = result["browser"]
    assert b["embedded"] == [] and sorted(b["embed_failed"]) == sorted(f"{i} (audio)" for i in inp.ids[:20])
    details = _blob(paths["html"].read_text(encoding="utf-8"))["details"]
    assert all(d["media"]["audio"]["src"].startswith("../") for d in details[:20])  # linked instead
    assert all(d["media"]["audio"]["why"] == f"{media / 'gone.wav'} not found" for d in details[20:])
    assert "Not embedded (linked instead): " + inp.ids[0] + " (audio): " in paths["html"].read_text(encoding="utf-8")
    inp.media_root = None  # no corpus root known: said, with the option
    result = analyse(inp, split="test", n_boot=0, embed_media=40, media_descriptors=False)
    why = {m["why"] for d in result["browser_data"]["details"] for m in d["media"].values()}
    assert why == {"no media root is known (pass --media-root DIR)"}


def test_placeholder_text_in_ids_and_texts_stays_text(media, tmp_path):
    """An id or a text that spells the page template's placeholders (@DATA@, @SCRIPT@, @STATEMENT@) is shown as
    written: the template is filled in one pass, so no value is substituted into another."""
    inp, _ = planted(n=40, seed=5)
    n = len(inp.ids)
    inp.ids = np.array([f"@DATA@{i}" for i in range(n)])
    inp.text = np.array([f"@SCRIPT@ @STATEMENT@ @DATA@ {i}" for i in range(n)])
    inp.audio = np.full(n, "tone.wav")
    inp.start, inp.end = np.zeros(n), np.ones(n)
    inp.media_root = media
    result = analyse(inp, split="test", n_boot=0, embed_media=1, media_descriptors=False)
    html = write_report(result, tmp_path / "r", plots=False)["html"].read_text(encoding="utf-8")
    emb = result["browser"]["embedded"]
    assert len(emb) == 1 and emb[0].startswith("@DATA@")
    m = re.search(r"<p class='note' id='mx-statement'>(.*?) <span id='mx-size'>", html, re.S)
    assert m and m.group(1) == escape(statement(result["browser"]))  # as written, the embedded id named in it
    assert f": {emb[0]}. " in m.group(1)
    assert html.count("id='mx-data'") == 1 and html.count("JSON.parse(document.getElementById('mx-data')") == 1
    data = _blob(html)
    assert [r[0] for r in data["rows"]] == list(inp.ids)
    assert [d["text"] for d in data["details"]] == list(inp.text)
