"""Bootstrap intervals of shares of the analysed rows (disagreement rates, cells and categories)."""

from __future__ import annotations

import numpy as np


def interval_text(n_boot: int, seed: int) -> str:
    """How :func:`share_ci` resamples, for a section's definition."""
    return (f"95% percentile bootstrap interval over samples: the analysed rows resampled with replacement "
            f"({n_boot} resamples; each share's count is then Binomial(n, share), drawn with numpy "
            f"default_rng({seed}) for every share)")


def share_ci(k: int, n: int, *, n_boot: int, seed: int, level: float = 0.95) -> list:
    """Percentile bootstrap interval ``[lo, hi]`` of the share ``k / n``: resampling ``n`` rows with replacement,
    the number of rows with the property is ``Binomial(n, k / n)`` (drawn as
    ``numpy.random.default_rng(seed).binomial(n, k / n, n_boot)``, so an interval depends only on ``k``, ``n``,
    ``n_boot`` and ``seed``). ``[nan, nan]`` without rows or resamples."""
    if n <= 0 or n_boot <= 0:
        return [float("nan"), float("nan")]
    draws = np.random.default_rng(seed).binomial(n, k / n, n_boot) / n
    lo, hi = np.quantile(draws, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]
