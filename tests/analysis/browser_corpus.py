"""A small demo corpus with real media (WAV + MP4), its segments moved inside the files (start 0.25 s, end 0.25 s
before the file's end), a store made from it by `mixsig cache init`, planted predictions imported by `mixsig runs
import` (no gates: predictions made elsewhere), and the report written by `mixsig report` (shared by
test_browser.py and test_browser_data.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mixsig.cli import main

SUBSETS = ("text", "audio", "video", "text+audio", "text+video", "audio+video", "text+audio+video")
#: The first N_MISLED rows (manifest order) are planted misled: the full model (and every subset with video) is
#: confidently wrong, the text and audio models right.
N_MISLED = 8


def make_report(tmp: Path, n_rows: int = 30, embed: int = 3) -> dict:
    """Build corpus, store, run and report under ``tmp``; returns their paths and the manifest rows."""
    from mixsig.demo import make_corpus

    manifest = make_corpus(tmp / "corpus", n_rows=n_rows, seed=3, media=True)
    with open(manifest, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["start"], r["end"] = "0.250", f"{float(r['duration']) - 0.25:.3f}"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    classes = sorted({r["label"] for r in rows})
    rng = np.random.default_rng(0)
    pred_csv = tmp / "predictions.csv"
    with open(pred_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "subset", "seed", *classes])
        for i, r in enumerate(rows):
            y = classes.index(r["label"])
            for sub in SUBSETS:
                wrong = i < N_MISLED and "video" in sub.split("+")
                conf = 0.9 - 0.01 * i if wrong else 0.6 + 0.3 * rng.random()
                k = 1 - y if wrong else y
                w.writerow([r["id"], sub, 0, *(repr(conf if c == k else 1 - conf) for c in range(2))])
    store = tmp / "store.zarr"
    assert main(["cache", "init", str(store), "--manifest", str(manifest)]) == 0
    assert main(["runs", "import", str(store), str(pred_csv), "--name", "imported"]) == 0
    out = tmp / "report"
    assert main(["report", str(store), "--run", "imported", "--split", "all", "--out", str(out), "--no-plots",
                 "--bootstrap", "0", "--no-media", "--embed-media", str(embed)]) == 0
    return {"manifest": manifest, "rows": {r["id"]: r for r in rows}, "out": out, "html": out / "report.html",
            "classes": classes}
