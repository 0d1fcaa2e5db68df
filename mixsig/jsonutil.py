"""The one conversion of mixsig values to JSON-ready Python values (report.json, run and head attrs)."""

from __future__ import annotations

import math


def jsonable(x):
    """``x`` with numpy scalars and arrays as Python values, dict keys as strings, tuples as lists and non-finite
    floats as None. Imports numpy only when ``x`` holds numpy values."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if type(x).__module__ == "numpy":
        import numpy as np

        if isinstance(x, np.ndarray):
            return jsonable(x.tolist())
        if isinstance(x, np.bool_):
            return bool(x)
        if isinstance(x, np.integer):
            return int(x)
        if isinstance(x, np.floating):
            return float(x) if math.isfinite(x) else None
    return x
