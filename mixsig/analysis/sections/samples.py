"""The samples table: one row per analysed sample (label, each subset's prediction and confidence, confidence
in the true label, category, followed modality, vote entropy, descriptors, a text snippet), as
``result["samples"]`` (not in report.json) and samples.csv (:func:`write_csv`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mixsig.analysis._context import Context
from mixsig.analysis._format import SNIPPET_CHARS


def compute(ctx: Context) -> dict:
    inp, rows = ctx.inp, ctx.rows
    cls = np.array(inp.classes, dtype=object)
    cols: dict = {"id": inp.ids[rows], "split": inp.split[rows], "label": cls[ctx.y]}
    for name in ctx.subsets:
        cols[f"pred[{name}]"] = cls[ctx.agg[name].pred]
        cols[f"conf[{name}]"] = ctx.agg[name].mean_probs.max(axis=1)
    for name in [*ctx.unimodal, ctx.full]:  # confidence in the true label, as in the confidence plot
        cols[f"p_true[{name}]"] = ctx.p_true[name]
    cols["category"] = ctx.category
    cols["n_disagree"] = ctx.n_disagree
    cols["followed"] = ctx.followed
    cols["lone_follow"] = ctx.lone_follow
    cols["entropy"] = ctx.entropy
    cols["majority_share"] = ctx.majority_share
    for k, v in ctx.descriptors.items():
        cols[f"desc[{k}]"] = v
    cols["text"] = np.array([t[:SNIPPET_CHARS] for t in inp.text[rows]], dtype=object)
    return {"samples": cols}


def blocks(report: dict, figures: dict) -> list[tuple]:
    return []  # samples.csv, not the page


def figures(report: dict) -> dict:
    return {}


_NEEDS_QUOTES = re.compile(r'[,"\r\n]').search


def _csv_field(text: str) -> str:
    if _NEEDS_QUOTES(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(path: Path, cols: dict) -> None:
    """RFC 4180 CSV (fields quoted only where needed), floats as ``%.6g``, NaN as an empty field.

    Rows are formatted with one ``%`` per row (much faster than one call per cell)."""
    fmt = "{:.6g}".format
    lists, specs = [], []
    for name in cols:
        v = np.asarray(cols[name])
        if v.dtype.kind == "f":
            bad = ~np.isfinite(v)
            if bad.any():
                s = list(map(fmt, v.tolist()))
                for i in np.flatnonzero(bad).tolist():
                    s[i] = ""
                lists.append(s)
                specs.append("%s")
            else:
                lists.append(v.tolist())
                specs.append("%.6g")
        elif v.dtype.kind in "iub":
            lists.append(v.astype(np.int64).tolist())
            specs.append("%d")
        else:
            values = [str(x) for x in v.tolist()]
            quoted = {x: _csv_field(x) for x in set(values)}
            lists.append([quoted[x] for x in values])
            specs.append("%s")
    row = ",".join(specs)
    header = ",".join(_csv_field(str(c)) for c in cols)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\r\n")
        if lists and lists[0]:
            fh.write("\r\n".join([row % r for r in zip(*lists)]) + "\r\n")
