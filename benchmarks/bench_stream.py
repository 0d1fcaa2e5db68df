"""Streamed training (``mixsig train --stream``) against the in-memory path, side by side (plain script;
``--json PATH`` saves the numbers).

A store of ``--rows`` x ``--dim`` float32 (one text key with a planted signal, 80/10/10 splits; written block by block)
is trained with the gated head (1 epoch, batch 1,024, hidden 16) three ways, each in a fresh process so that its
peak memory is its own: in memory; streamed with a budget that holds the training rows in one window (the same
bytes as in memory: checked); streamed in windows of ``--stream-memory``. Printed per way: wall and CPU seconds (the
child's user + system), the peak resident memory (``ru_maxrss``, which counts the page cache the process maps) and
the ratios to the in-memory way. Each way is repeated ``--repeat`` times, interleaved; medians printed.

The address-space test (a key twice a ``ulimit -v`` limit) is tests/heads/test_streaming.py's slow test; this
script measures what streaming costs when memory is not the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHILD = r"""
import sys, json, numpy as np
from mixsig.heads import train_run
store, key, name, mode, memory = sys.argv[1:6]
kw = {} if mode == "memory" else {"stream": True, "stream_memory": memory}
run = train_run(store, "gated", {"text": key}, params={"epochs": 1, "batch_size": 1024, "hidden": 16}, name=name,
                overwrite=True, **kw)
np.save(sys.argv[6], run.subsets["text"].probs)
print(json.dumps({"windows": run.attrs["fits"]["text"][0].get("stream_windows"),
                  "acc": run.attrs["metrics"]["text"]["test"]["accuracy"]["mean"]}))
"""


def build(path: Path, n: int, d: int) -> str:
    from tests.synthetic import make_wide_store

    return make_wide_store(path, n, d)[1]


def run_child(store: Path, key: str, name: str, mode: str, memory: str, out: Path) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", MALLOC_ARENA_MAX="2")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(store), key, name, mode, memory, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    if status != 0:
        raise SystemExit(f"{mode} failed:\n{stderr[-3000:]}")
    info = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024, **info}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--stream-memory", default="64M", help="the windowed way's budget (default 64M)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        key = build(tmp / "s.zarr", args.rows, args.dim)
        print(f"store: {args.rows:,} x {args.dim} float32 = {args.rows * args.dim * 4 / 2**30:.2f} GiB, "
              f"written in {time.perf_counter() - t0:.1f} s")
        ways = {"in memory": ("memory", "0"), "streamed, one window": ("stream", "64G"),
                "streamed, windows": ("stream", args.stream_memory)}
        res: dict[str, list] = {w: [] for w in ways}
        for _ in range(args.repeat):
            for w, (mode, mem) in ways.items():
                res[w].append(run_child(tmp / "s.zarr", key, w.replace(" ", "-").replace(",", ""), mode, mem,
                                        tmp / f"{mode}-{mem}.npy"))
        same = np.array_equal(np.load(tmp / "memory-0.npy"), np.load(tmp / "stream-64G.npy"), equal_nan=True)
    base = {k: statistics.median(r[k] for r in res["in memory"]) for k in ("wall", "cpu", "rss_mb")}
    out = {"rows": args.rows, "dim": args.dim, "one_window_bit_identical": bool(same), "ways": {}}
    print(f"{'way':24s} {'windows':>8s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS MB':>12s}  ratios to in memory "
          f"(wall, CPU, RSS)  test acc")
    for w, rs in res.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "rss_mb")}
        out["ways"][w] = {**med, "windows": rs[0]["windows"], "acc": rs[0]["acc"],
                          "ratios": {k: med[k] / base[k] for k in med}}
        print(f"{w:24s} {str(rs[0]['windows'] or '-'):>8s} {med['wall']:8.1f} {med['cpu']:8.1f} {med['rss_mb']:12.0f}  "
              f"{med['wall'] / base['wall']:.2f}x {med['cpu'] / base['cpu']:.2f}x {med['rss_mb'] / base['rss_mb']:.2f}x"
              f"   {rs[0]['acc']:.3f}")
    print(f"in memory and streamed in one window bit-identical: {same}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
