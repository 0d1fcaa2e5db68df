"""How the report's sections write numbers in their tables and sentences (the same text in HTML and Markdown)."""

from __future__ import annotations

import math

import numpy as np

#: Sample texts in the top lists and in samples.csv are cut to this many characters.
SNIPPET_CHARS = 80


def num(x, digits=3) -> str:
    """A number with ``digits`` decimals (scientific when tiny or huge), an int as is, a bool as yes/no;
    None and non-finite values as an en dash."""
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if not math.isfinite(x):
        return "–"
    if x != 0 and (abs(x) < 10 ** (-digits) or abs(x) >= 1e6):
        return f"{x:.2e}"
    return f"{x:.{digits}f}"


def ci(d: dict) -> str:
    """``{"value", "ci_low", "ci_high"}`` as ``value [low, high]``."""
    return f"{num(d['value'])} [{num(d['ci_low'])}, {num(d['ci_high'])}]"


def pm(d: dict) -> str:
    """``{"mean", "std"}`` as ``mean ± std`` (the mean alone when std is None)."""
    return num(d["mean"]) + (f" ± {num(d['std'])}" if d.get("std") is not None else "")


def pval(p) -> str:
    """A p- or q-value: 4 decimals, scientific below 0.001."""
    if p is None or not math.isfinite(p):
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"
