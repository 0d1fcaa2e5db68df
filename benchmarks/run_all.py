"""Run every ``benchmarks/bench_*.py`` (each side by side in one process) and write one JSON of their results.

Usage: ``python benchmarks/run_all.py --out bench-output/benchmarks.json`` (``make bench``). Each script is run
with ``--json FILE``; a script that fails is recorded with its exit code and the tail of its output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="bench-output/benchmarks.json")
    ap.add_argument("--only", nargs="*", help="names like cache, heads (default: all)")
    args = ap.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    results: dict = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                 "platform": platform.platform()}, "benchmarks": {}}
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(HERE.parent))
    failed = 0
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            out_json = tmp.name
        print(f"== {name}: {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), "--json", out_json], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(proc.stdout, flush=True)
        entry = {"seconds": round(time.perf_counter() - t0, 2), "exit_code": proc.returncode}
        try:
            entry["result"] = json.loads(Path(out_json).read_text())
        except (OSError, ValueError):
            entry["output_tail"] = proc.stdout[-2000:]
        Path(out_json).unlink(missing_ok=True)
        failed += proc.returncode != 0
        results["benchmarks"][name] = entry
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out} ({len(scripts)} benchmarks, {failed} failed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
