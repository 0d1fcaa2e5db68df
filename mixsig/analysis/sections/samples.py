"""The samples table: one row per analysed sample (label, each subset's prediction and confidence, confidence
in the true label, category, followed modality, vote entropy, descriptors, a text snippet), as
``result["samples"]`` (not in report.json) and samples.csv (:func:`write_csv`)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mixsig.analysis._context import Context
from mixsig.analysis._format import SNIPPET_CHARS
from mixsig.analysis.sections import dynamics


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
    cols.update(dynamics.sample_columns(ctx))  # confidence@<subset>, variability@<subset> (training dynamics)
    for k, v in ctx.descriptors.items():
        cols[f"desc[{k}]"] = v
    cols["text"] = np.array([t[:SNIPPET_CHARS] for t in inp.text[rows]], dtype=object)
    return {"samples": cols}


def blocks(report: dict, figures: dict) -> list[tuple]:
    return []  # samples.csv, not the page


def figures(report: dict) -> dict:
    return {}


#: A text cell of samples.csv that starts with one of these gets one ``'`` in front, so that no spreadsheet
#: reads it as a formula (OWASP "CSV injection": ``= + - @``, tab, carriage return; their full-width forms,
#: which some spreadsheets also take for formula starts; and ``'`` itself, so the rule can be undone exactly).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: The columns of samples.csv holding numbers (written as numbers, never marked): those with a numeric dtype.
NUMERIC_COLUMNS = ("`conf[*]`, `p_true[*]`, `n_disagree`, `entropy`, `majority_share`, `confidence@*`, "
                   "`variability@*` and `desc[*]`")
#: How to read samples.csv back (the report says it under its top samples, :func:`write_csv` in its docstring).
READ_BACK = ("samples.csv: its text cells (`id`, `split`, `label`, `pred[*]`, `category`, `followed`, `lone_follow`, "
             "`text`) that begin with = + - @ ' (or their full-width forms), a tab or a carriage return carry one "
             "extra ' in front, so that spreadsheets show them instead of running them as formulas: drop the first "
             "' of every text cell that starts with one to get the original text (`mixsig.analysis.csv_text_value`). The numeric "
             f"columns ({NUMERIC_COLUMNS}) are plain numbers.")

# quoted: RFC 4180 needs , " CR LF; ; and tab are quoted too, so that a spreadsheet splitting on them (a
# semicolon locale, a paste) cannot start a new cell inside a text cell
_NEEDS_QUOTES = re.compile(r'[,"\r\n;\t]').search


def _csv_field(text: str) -> str:
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    if _NEEDS_QUOTES(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_text_value(cell: str) -> str:
    """The original text of a samples.csv text cell as the ``csv`` module reads it: drops the one ``'`` that
    :func:`write_csv` put in front of a text starting with one of :data:`FORMULA_STARTS` (``'`` included, so
    every text cell starting with ``'`` carries exactly one added ``'``). Not for the numeric columns."""
    return cell.removeprefix("'")


def write_csv(path: Path, cols: dict) -> None:
    """RFC 4180 CSV (fields quoted only where needed, and where they hold ``;`` or a tab), floats as ``%.6g``,
    NaN as an empty field.

    Numeric columns (a numeric or bool dtype: ``conf[*]``, ``p_true[*]``, ``n_disagree``, ``entropy``,
    ``majority_share``, ``desc[*]``) are written as numbers, ``-0.25`` included. Every other column is text
    (``id``, ``split``, ``label``, ``pred[*]``, ``category``, ``followed``, ``lone_follow``, ``text``), and so
    is the header: a text cell starting with ``= + - @``, a tab, a carriage return, ``'`` or a full-width
    ``＝ ＋ － ＠`` gets one ``'`` in front, so that a spreadsheet shows it instead of running it as a formula
    (OWASP CSV injection). To read a text cell back, drop one leading ``'`` (:func:`csv_text_value`).

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
