"""Read speed of a cached key against np.load and h5py on the same array (one process, side by side).

A 20,000 x 768 float32 key is read fully and by 1,700 random rows (a mini-batch loader's access: sorted, and in
random order), from the mixsig store (checksummed chunks), np.load (.npy; mmap for rows) and h5py (the same
float32 array as one contiguous, uncompressed dataset: no chunks, no filters, no checksum; each h5py read opens
the file, as ``store.read`` reads the key's done mask and digest ledger; ``h5py_rows_kept_open`` is the read
from a file kept open; h5py needs sorted indices, so the random-order read sorts, reads and puts the rows back in
order). Every method reads the same rows. Every file is in the page cache (read once before timing).

mixsig's random-row reads are timed as repeat reads (the chunks were verified by this process before: one
``stat`` per chunk, rows copied from the kept mapping) and as first reads (``forget_verified()`` before each,
outside the timed call: every touched chunk is read whole and checksummed; ``_1thread``: with one reader thread).
Prints wall times (best and median of the rounds), process CPU times (all threads) and ratios; ``--json PATH``
saves them. Targets: full read <= 1.2x np.load; random rows (first reads too) <= h5py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from mixsig.cache import Provenance, Samples, Status, create_store


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--sample", type=int, default=1700)
    ap.add_argument("--repeat", type=int, default=15, help="rounds; each round times every method once")
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.dim), dtype=np.float32)
    shuffled = rng.choice(args.rows, args.sample, replace=False)
    pick = np.sort(shuffled)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", X)
        with h5py.File(tmp / "x.h5", "w") as f:
            f["x"] = X
        samples = Samples(ids=[f"r{i}" for i in range(args.rows)], split=["train"] * args.rows,
                          label=np.zeros(args.rows, int), classes=("a", "b"))
        store = create_store(tmp / "s.zarr", samples)
        key = store.create_key(Provenance("text", "bench", "none", "cls"), args.dim)
        with store.writer(key, fsync=False) as w:
            for lo, hi in w.blocks():
                w.write_block(lo, hi, X[lo:hi], np.full(hi - lo, Status.OK, np.int8))
        chunk_rows = w.chunk_rows
        time.sleep(2.1)  # a store written moments ago is checked on every read (mixsig/cache/_small_seen.RACY_NS)
        assert np.array_equal(store.read(key).X, X)
        assert np.array_equal(store.read(key, rows=pick).X, X[pick])

        def h5_full():
            with h5py.File(tmp / "x.h5", "r") as f:
                return f["x"][...]

        def h5_rows():
            with h5py.File(tmp / "x.h5", "r") as f:
                return f["x"][pick]

        def h5_shuffled():
            order = np.argsort(shuffled)
            with h5py.File(tmp / "x.h5", "r") as f:
                got = f["x"][shuffled[order]]
            out = np.empty_like(got)
            out[order] = got
            return out

        assert np.array_equal(store.read(key, rows=shuffled).X, h5_shuffled())

        # the table of chunks this process verified (benchmark only)
        from mixsig.cache import _stream

        def forget():  # the next read is the first read of these chunks in this process
            _stream.forget_verified()

        def first_read_1thread():
            keep, _stream.PARALLEL_BYTES = _stream.PARALLEL_BYTES, 1 << 62
            try:
                return store.read(key, rows=pick).X
            finally:
                _stream.PARALLEL_BYTES = keep

        kept = h5py.File(tmp / "x.h5", "r")  # closed after the rounds
        h5_kept = kept["x"]
        assert np.array_equal(h5_kept[pick], X[pick])

        import zarr

        zarr_arr = zarr.open_group(str(tmp / "s.zarr"), mode="r")[f"features/{key}/embedding"]
        # (name, timed call, untimed call before it)
        methods = [
            ("np_load_full", lambda: np.load(tmp / "x.npy")),
            ("mixsig_full", lambda: store.read(key).X),
            ("plain_zarr_full", lambda: zarr_arr[...]),
            ("h5py_full", h5_full),
            ("np_load_rows", lambda: np.load(tmp / "x.npy", mmap_mode="r")[pick]),
            ("mixsig_rows", lambda: store.read(key, rows=pick).X),
            ("mixsig_rows_first", lambda: store.read(key, rows=pick).X, forget),
            ("mixsig_rows_first_1thread", first_read_1thread, forget),
            ("h5py_rows", h5_rows),
            ("h5py_rows_kept_open", lambda: h5_kept[pick]),
            ("np_load_shuffled", lambda: np.load(tmp / "x.npy", mmap_mode="r")[shuffled]),
            ("mixsig_shuffled", lambda: store.read(key, rows=shuffled).X),
            ("h5py_shuffled", h5_shuffled),
        ]
        # Rounds: every method once per round, so a slow spell of the machine hits all of them alike.
        times = {m[0]: [] for m in methods}
        cpu = {m[0]: [] for m in methods}
        for _ in range(args.repeat):
            for name, fn, *before in methods:
                for b in before:
                    b()
                t, c = time.perf_counter(), time.process_time()
                fn()
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
        kept.close()
        res = {name: {"best_s": min(v), "median_s": statistics.median(v), "cpu_best_s": min(cpu[name]),
                      "cpu_median_s": statistics.median(cpu[name])} for name, v in times.items()}
    out = {
        "shape": [args.rows, args.dim], "chunk_rows": chunk_rows, "sample_rows": args.sample, "times": res,
        "ratio_full_vs_np_load": res["mixsig_full"]["best_s"] / res["np_load_full"]["best_s"],
        "median_ratio_full_vs_np_load": res["mixsig_full"]["median_s"] / res["np_load_full"]["median_s"],
        "ratio_full_plain_zarr_vs_np_load": res["plain_zarr_full"]["best_s"] / res["np_load_full"]["best_s"],
        "ratio_full_vs_h5py": res["mixsig_full"]["best_s"] / res["h5py_full"]["best_s"],
        "ratio_rows_vs_np_mmap": res["mixsig_rows"]["best_s"] / res["np_load_rows"]["best_s"],
        "ratio_rows_vs_h5py": res["mixsig_rows"]["best_s"] / res["h5py_rows"]["best_s"],
        "median_ratio_rows_vs_h5py": res["mixsig_rows"]["median_s"] / res["h5py_rows"]["median_s"],
        "ratio_rows_first_vs_h5py": res["mixsig_rows_first"]["best_s"] / res["h5py_rows"]["best_s"],
        "median_ratio_rows_first_vs_h5py": res["mixsig_rows_first"]["median_s"] / res["h5py_rows"]["median_s"],
        "cpu_median_ratio_rows_first_vs_h5py":
            res["mixsig_rows_first"]["cpu_median_s"] / res["h5py_rows"]["cpu_median_s"],
        "ratio_rows_first_1thread_vs_h5py": res["mixsig_rows_first_1thread"]["best_s"] / res["h5py_rows"]["best_s"],
        "median_ratio_rows_first_1thread_vs_h5py":
            res["mixsig_rows_first_1thread"]["median_s"] / res["h5py_rows"]["median_s"],
        "median_ratio_shuffled_vs_h5py": res["mixsig_shuffled"]["median_s"] / res["h5py_shuffled"]["median_s"],
        "median_ratio_shuffled_vs_np_mmap": res["mixsig_shuffled"]["median_s"] / res["np_load_shuffled"]["median_s"],
    }
    mb = X.nbytes / 1e6
    print(f"cache read benchmark: {args.rows} x {args.dim} float32 ({mb:.0f} MB), chunks of {chunk_rows} rows, "
          f"best of {args.repeat} rounds")
    for name, r in res.items():
        print(f"  {name:26s} {r['best_s'] * 1e3:8.1f} ms  (median {r['median_s'] * 1e3:5.1f} ms; "
              f"CPU best {r['cpu_best_s'] * 1e3:5.1f}, median {r['cpu_median_s'] * 1e3:5.1f} ms)")
    print(f"  full read, mixsig / np.load      = {out['ratio_full_vs_np_load']:.2f}x  (target <= 1.2x; "
          f"medians: {out['median_ratio_full_vs_np_load']:.2f}x)")
    print(f"  full read, plain zarr / np.load  = {out['ratio_full_plain_zarr_vs_np_load']:.2f}x")
    print(f"  full read, mixsig / h5py         = {out['ratio_full_vs_h5py']:.2f}x")
    print(f"  {args.sample} random rows, mixsig / np.load(mmap) = {out['ratio_rows_vs_np_mmap']:.2f}x, "
          f"mixsig / h5py = {out['ratio_rows_vs_h5py']:.2f}x (target <= 1; medians {out['median_ratio_rows_vs_h5py']:.2f}x)")
    print(f"  {args.sample} random rows, first read in the process (every touched chunk checksummed), mixsig / h5py "
          f"= {out['ratio_rows_first_vs_h5py']:.2f}x (target <= 1; medians "
          f"{out['median_ratio_rows_first_vs_h5py']:.2f}x, CPU medians "
          f"{out['cpu_median_ratio_rows_first_vs_h5py']:.2f}x; "
          f"one reader thread: {out['ratio_rows_first_1thread_vs_h5py']:.2f}x, medians "
          f"{out['median_ratio_rows_first_1thread_vs_h5py']:.2f}x)")
    print(f"  {args.sample} rows in random order (medians): mixsig / h5py = "
          f"{out['median_ratio_shuffled_vs_h5py']:.2f}x, mixsig / np.load(mmap) = "
          f"{out['median_ratio_shuffled_vs_np_mmap']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
