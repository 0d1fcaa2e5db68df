"""Benchmark: `mixsig.analysis` on a synthetic run of 100,000 samples x 7 subsets x 5 seeds.

Times ``analyse`` + ``write_report`` on in-memory arrays, and ``mixsig report`` end to end from a Zarr
store, with and without plots (target: <= 10 s on 2 cores), and prints the numbers; ``--json PATH`` writes them as JSON. Data are generated in memory (no store, no media):
three modalities, binary labels, 5 annotator votes, gates and attention on the full subset, two
human-study conditions.

    .venv/bin/python benchmarks/bench_report.py [--n 100000] [--seeds 5] [--json bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from itertools import combinations

import numpy as np


def synthetic_input(n: int, seeds: int, seed: int = 0):
    from mixsig.analysis import AnalysisInput

    rng = np.random.default_rng(seed)
    mods = ("text", "audio", "video")
    subsets = ["+".join(c) for k in (1, 2, 3) for c in combinations(mods, k)]
    y = rng.integers(0, 2, n)
    hard = rng.random(n) < 0.2
    probs = {}
    for s in subsets:
        skill = 0.6 + 0.1 * s.count("+")
        p_true = np.clip(skill + 0.25 * rng.standard_normal((seeds, n)), 0.01, 0.99)
        if "audio" in s:
            p_true[:, hard] = np.clip(p_true[:, hard] - 0.5, 0.01, 0.99)
        p = np.empty((seeds, n, 2), np.float32)
        p[:, np.arange(n), y] = p_true
        p[:, np.arange(n), 1 - y] = 1 - p_true
        probs[s] = p
    full = "+".join(mods)
    w = rng.random((seeds, n, 3)).astype(np.float32)
    votes = np.where(rng.random((n, 5)) < np.where(hard, 0.6, 0.9)[:, None], y[:, None], 1 - y[:, None])
    split = np.where(rng.random(n) < 0.5, "test", "val")
    return AnalysisInput(
        ids=np.char.add("s", np.arange(n).astype(str)), split=split, labels=y, classes=("neutral", "empathetic"),
        modalities=mods, probs=probs, gates={full: w}, attention={full: w / w.sum(axis=2, keepdims=True)},
        votes=votes, votes_by_condition={"text": votes[:, :3], "all": votes},
        text=np.array(["a few words of text"] * n), start=np.zeros(n), end=1 + 3 * rng.random(n),
        run_name="bench",
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    from mixsig.analysis import analyse, write_report

    import matplotlib  # warm the import and font cache so the timing is the report, not the first import

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import scipy.stats  # noqa: F401

    inp = synthetic_input(args.n, args.seeds)
    results = {"n_samples": args.n, "subsets": len(inp.probs), "seeds": args.seeds, "split": "all",
               "cpus": os.cpu_count(), "python": platform.python_version(), "runs": []}
    for plots in (False, True):
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                c0, t0 = time.process_time(), time.perf_counter()
                result = analyse(inp, split="all", media_descriptors=False)
                t1 = time.perf_counter()
                write_report(result, out, plots=plots)
                c2, t2 = time.process_time(), time.perf_counter()
                size = os.path.getsize(os.path.join(out, "report.html"))
            results["runs"].append({"plots": plots, "analyse_s": round(t1 - t0, 3), "write_s": round(t2 - t1, 3),
                                    "total_s": round(t2 - t0, 3), "cpu_s": round(c2 - c0, 3), "html_bytes": size})
            print(f"plots={'yes' if plots else 'no ':3s} analyse {t1 - t0:6.2f} s  write {t2 - t1:6.2f} s  "
                  f"total {t2 - t0:6.2f} s wall, {c2 - c0:6.2f} s CPU  (report.html {size / 1e6:.2f} MB)")
    # end to end through a Zarr store and the CLI (reading the run and samples table included), in a fresh
    # interpreter so that importing scipy.stats, matplotlib and zarr is counted too
    from mixsig.cache import RunSubset, Samples, create_store

    with tempfile.TemporaryDirectory() as tmp:
        samples = Samples(ids=inp.ids, split=inp.split, label=inp.labels, classes=inp.classes, text=inp.text,
                          start=inp.start, end=inp.end, votes=inp.votes, votes_by_condition=inp.votes_by_condition)
        store = create_store(os.path.join(tmp, "s.zarr"), samples)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        children_cpu = usage.ru_utime + usage.ru_stime
        store.write_run("bench", {"head": "gated", "modalities": list(inp.modalities), "seeds": list(range(args.seeds)),
                                  "classes": list(inp.classes)},
                        {k: RunSubset(probs=v.astype(np.float32), gates=inp.gates.get(k), attention=inp.attention.get(k))
                         for k, v in inp.probs.items()})
        for plots in (False, True):
            argv = [sys.executable, "-m", "mixsig.cli", "--quiet", "report", os.path.join(tmp, "s.zarr"), "--run",
                    "bench", "--split", "all", "--out", os.path.join(tmp, f"rep{int(plots)}"), "--json"]
            argv += [] if plots else ["--no-plots"]
            t0 = time.perf_counter()
            proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
            t1 = time.perf_counter()
            cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_s = cpu.ru_utime + cpu.ru_stime - children_cpu
            children_cpu = cpu.ru_utime + cpu.ru_stime
            results["runs"].append({"plots": plots, "cli_from_store_s": round(t1 - t0, 3), "cpu_s": round(cpu_s, 3),
                                    "rc": proc.returncode})
            print(f"plots={'yes' if plots else 'no ':3s} `mixsig report` from a Zarr store, fresh process (imports, "
                  f"read, analyse, write): {t1 - t0:6.2f} s wall, {cpu_s:6.2f} s CPU (exit {proc.returncode})")
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
    best = {p: min(r["total_s"] for r in results["runs"] if r["plots"] == p and "total_s" in r) for p in (False, True)}
    results["cli_from_store_s"] = {("plots" if r["plots"] else "no_plots"): r["cli_from_store_s"]
                                   for r in results["runs"] if "cli_from_store_s" in r}
    results["best_total_s"] = {"no_plots": best[False], "plots": best[True]}
    results["load_average_1min"] = os.getloadavg()[0]
    results["target_s"] = 10.0
    print(f"{args.n} samples x {len(inp.probs)} subsets x {args.seeds} seeds: "
          f"{best[False]:.2f} s without plots, {best[True]:.2f} s with plots in memory; from a store via the CLI "
          f"{results['cli_from_store_s']['no_plots']:.2f} s / {results['cli_from_store_s']['plots']:.2f} s "
          f"(target <= 10 s; 1-min load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
