"""A 100-trial study (gated + LightGBM) over a cached 1,535 x 3 x 768 store, side by side with the no-cache workflow.

Cached: ``mixsig.studies.run_study`` on a synthetic store shaped like the reference corpus (1,228 train, 153 val,
154 test rows; text, audio and video keys of 768-d float32 features with a learnable signal). The features are
read once per process; each trial only fits a head.

No-cache: each trial would first re-run the encoders over the raw media for all 1,535 rows, then fit. That cost is
MEASURED on a small sample of the offline demo corpus with mixsig's tiny encoders (``mixsig.demo.make_tiny_encoders``:
real transformers architectures with random weights, far smaller than roberta-base/HuBERT/VideoMAE), through the
same extraction code path (decode + preprocess + forward + pool, model load included), and EXTRAPOLATED linearly to
1,535 rows: ``no-cache trial = encode(1,535 rows, 3 modalities) + the cached trial's fit``. It is a lower bound:
real encoders cost far more per row.

Usage: ``python benchmarks/bench_study.py [--trials 100] [--workers 2] [--threads 1] [--sample 24] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

N_ROWS, SPLIT = 1535, (1228 / 1535, 153 / 1535, 154 / 1535)


def build_store(path: Path) -> tuple[str, dict]:
    from tests.synthetic import make_synthetic_store

    t0 = time.perf_counter()
    store, keys = make_synthetic_store(path, n=N_ROWS, dims={"text": 768, "audio": 768, "video": 768},
                                       signal={"text": 0.8, "audio": 0.5, "video": 0.3}, split=SPLIT, seed=0)
    counts = {s: int((store.samples.split == s).sum()) for s in ("train", "val", "test")}
    return str(path), {"keys": {m: k[0] for m, k in keys.items()}, "rows": counts,
                       "build_s": round(time.perf_counter() - t0, 2)}


def cached_study(store: str, keys: dict, trials: int, workers: int, threads: int) -> dict:
    """Run the study (this process + ``workers - 1`` `mixsig study worker` processes); wall time and states."""
    import optuna
    from optuna.trial import TrialState

    from mixsig.studies import open_storage, run_study

    feats = ",".join(f"{m}={k}" for m, k in keys.items())
    procs = []
    t0 = time.perf_counter()
    if workers > 1:
        # create the study first (0 trials), then start the extra workers, then search here too
        run_study(store, "bench", heads="gated,lightgbm", features=feats, trials=trials, final=False,
                  threads=threads, timeout=0.001)
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        for _ in range(workers - 1):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "mixsig.cli", "-q", "study", "worker", store, "--name", "bench",
                 "--threads", str(threads)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    run_study(store, "bench", heads="gated,lightgbm", features=feats, trials=trials, final=False, threads=threads)
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"worker failed: {err[-2000:]}")
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name="bench", storage=open_storage(store))
    trials_all = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials_all:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    finished = [t for t in trials_all if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    by_head: dict[str, list[float]] = {}
    steps: dict[str, list[int]] = {}
    for t in finished:
        head = t.params.get("head", "?")
        by_head.setdefault(head, []).append(t.duration.total_seconds())
        if f"{head}.steps" in t.params:  # torch heads: their optimizer-step budget (the batch follows the rows)
            steps.setdefault(head, []).append(int(t.params[f"{head}.steps"]))
    return {
        "wall_s": round(wall, 2), "finished": len(finished), "trials_per_s": round(len(finished) / wall, 3),
        "states": states, "best_value": study.best_value, "best_params": study.best_params,
        "mean_trial_s": {h: round(sum(v) / len(v), 3) for h, v in by_head.items()},
        "trials_by_head": {h: len(v) for h, v in by_head.items()},
        "mean_steps": {h: round(sum(v) / len(v)) for h, v in steps.items()},
        "collapsed": sum(1 for t in finished if t.user_attrs.get("collapsed")),
        "mean_fit_s": round(sum(t.duration.total_seconds() for t in finished) / max(1, len(finished)), 3),
    }


def encode_cost(sample: int, workdir: Path) -> dict:
    """Seconds per row to decode + encode text, audio and video with the tiny encoders (model load included)."""
    from mixsig.demo import make_corpus, make_tiny_encoders
    from mixsig.extract import extract
    from mixsig.manifest import load_manifest

    manifest = load_manifest(make_corpus(workdir / "corpus", n_rows=sample, seed=0))
    encoders = make_tiny_encoders(workdir / "encoders", seed=0)
    per_modality = {}
    for modality in ("text", "audio", "video"):
        t0 = time.perf_counter()
        res = extract(manifest, str(workdir / f"nocache-{modality}.zarr"), modality, str(encoders[modality]),
                      pooling="mean")
        dt = time.perf_counter() - t0
        per_modality[modality] = {"seconds": round(dt, 3), "rows": int(res.written), "per_row_s": dt / sample}
    per_row = sum(v["per_row_s"] for v in per_modality.values())
    return {"sample_rows": sample, "per_modality": per_modality, "per_row_s_all_modalities": per_row,
            "encode_1535_rows_s": round(per_row * N_ROWS, 2), "extrapolated": True}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2, help="processes searching the study (default 2: one per core)")
    ap.add_argument("--threads", type=int, default=1, help="threads per trial (default 1)")
    ap.add_argument("--sample", type=int, default=24, help="demo rows to measure the encoders on (>= 12; default 24)")
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mixsig-bench-study-") as tmp:
        tmp = Path(tmp)
        load_before = os.getloadavg()
        store, info = build_store(tmp / "cache.zarr")
        cached = cached_study(store, info["keys"], args.trials, args.workers, args.threads)
        load_after = os.getloadavg()
        enc = encode_cost(args.sample, tmp)
    nocache_trial = enc["encode_1535_rows_s"] + cached["mean_fit_s"]
    nocache_total = nocache_trial * cached["finished"]
    result = {
        "store": {"rows": info["rows"], "modalities": 3, "dim": 768, "build_s": info["build_s"]},
        "settings": {"trials": args.trials, "workers": args.workers, "threads": args.threads,
                     "heads": ["gated", "lightgbm"], "cpus_available": len(os.sched_getaffinity(0))},
        "cached": cached,
        "no_cache": {**enc, "per_trial_s": round(nocache_trial, 2), "total_s": round(nocache_total, 1),
                     "trials_per_s": round(1 / nocache_trial, 4),
                     "note": "encode cost measured on --sample demo rows with the tiny encoders and extrapolated "
                             "linearly to 1,535 rows; plus the cached trial's mean fit time"},
        "ratio_nocache_over_cached": round(nocache_total / cached["wall_s"], 1),
        "target": {"wall_s_max": 60, "met": cached["wall_s"] <= 60},
        "loadavg_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
    }
    print(f"cached study: {cached['finished']} trials ({cached['states']}) in {cached['wall_s']} s = "
          f"{cached['trials_per_s']} trials/s  [{args.workers} worker(s) x {args.threads} thread(s); "
          f"target <= 60 s: {'met' if result['target']['met'] else 'NOT met'}]")
    print(f"  mean trial: {cached['mean_trial_s']} s by head (torch heads: mean budget {cached['mean_steps']} "
          f"optimizer steps); best {cached['best_value']:.4f}; {cached['collapsed']} collapsed trials")
    print(f"no-cache (extrapolated from {enc['sample_rows']} demo rows, tiny encoders): encode 1,535 rows x 3 "
          f"modalities = {enc['encode_1535_rows_s']} s per trial -> {result['no_cache']['total_s']} s for "
          f"{cached['finished']} trials = {result['no_cache']['trials_per_s']} trials/s")
    print(f"ratio no-cache / cached: {result['ratio_nocache_over_cached']}x   "
          f"(1-min load average {result['loadavg_1m']['before']} -> {result['loadavg_1m']['after']}; the machine is shared)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
