"""Calibration: top-label expected calibration error (ECE) with equal-mass bins, its bootstrap interval, the
reliability-diagram bins, and the cross-entropy of predictions against annotators' vote distributions.

Definitions (``y``: ``[n]`` class indices; ``probs``: ``[n, C]`` class probabilities):

- **top label**: ``pred = probs.argmax(1)`` (first maximum wins), **confidence** ``= probs.max(1)``, **correct**
  ``= pred == y``.
- **equal-mass bins**: the rows sorted by confidence (stable: ties keep row order) and cut into ``n_bins``
  consecutive groups whose sizes differ by at most one (``numpy.array_split``); fewer rows than bins: one row per
  bin. Default :data:`ECE_BINS` = 10.
- **ECE** ``= sum_b (n_b / n) |acc_b - conf_b|``, ``acc_b`` / ``conf_b`` the bin's share correct / mean confidence
  (top-label ECE; Guo et al. 2017 with equal-mass instead of equal-width bins).
- **vote cross-entropy** of one sample: ``-sum_c q_c ln max(p_c, 1e-12)`` in nats, ``q`` its vote shares; it is
  ``H(q) + KL(q || p)``, so it grows with the votes' own entropy as well as with the mismatch.
"""

from __future__ import annotations

import numpy as np

#: Equal-mass bins of the ECE and the reliability diagram.
ECE_BINS = 10
#: Probabilities are floored here before their logarithm (vote cross-entropy).
PROB_FLOOR = 1e-12
#: Bootstrap replicates are computed this many at a time (memory: chunk x n floats).
_CHUNK = 128


def _top_label(y, probs) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, np.int64)
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be [n, C] with n = len(y) = {y.shape[0]}; got {list(probs.shape)}")
    return probs.max(axis=1), (probs.argmax(axis=1) == y).astype(np.float64)


def _bin_starts(n: int, n_bins: int) -> np.ndarray:
    """First sorted position of each equal-mass bin (``numpy.array_split`` sizes)."""
    k = max(1, min(int(n_bins), n))
    sizes = np.full(k, n // k)
    sizes[: n % k] += 1
    return np.r_[0, np.cumsum(sizes)[:-1]]


def calibration_bins(y, probs, n_bins: int = ECE_BINS) -> dict:
    """The reliability diagram's equal-mass bins: ``{"n_bins", "count", "confidence", "accuracy", "conf_low",
    "conf_high"}`` — per bin (in order of confidence) its rows, mean confidence, share correct and the lowest /
    highest confidence in it; ``"ece"`` the ECE they give; ``"ece_if_calibrated"`` the ECE a calibrated model with
    these confidences would show from sampling noise alone (each row right with probability its confidence; per bin
    E|acc_b - conf_b| ~ sqrt(2 / pi) * sqrt(sum_i c_i (1 - c_i)) / n_b, the normal approximation)."""
    conf, correct = _top_label(y, probs)
    n = conf.size
    if n == 0:
        return {"n_bins": 0, "count": [], "confidence": [], "accuracy": [], "conf_low": [], "conf_high": [],
                "ece": float("nan"), "ece_if_calibrated": float("nan")}
    order = np.argsort(conf, kind="stable")
    c, ok = conf[order], correct[order]
    starts = _bin_starts(n, n_bins)
    ends = np.r_[starts[1:], n]
    count = ends - starts
    mean_c = np.add.reduceat(c, starts) / count
    acc = np.add.reduceat(ok, starts) / count
    sd = np.sqrt(np.add.reduceat(c * (1 - c), starts)) / count  # of acc_b if each row were right with p = conf
    return {"n_bins": int(starts.size), "count": count.tolist(), "confidence": mean_c.tolist(),
            "accuracy": acc.tolist(), "conf_low": c[starts].tolist(), "conf_high": c[ends - 1].tolist(),
            "ece": float(np.sum(count * np.abs(acc - mean_c)) / n),
            "ece_if_calibrated": float(np.sum(count * np.sqrt(2 / np.pi) * sd) / n)}


def _ece_rows(conf: np.ndarray, correct: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """ECE of every row of ``[B, n]`` confidences / correctness (each row binned on its own)."""
    order = np.argsort(conf, axis=1, kind="stable")
    c = np.take_along_axis(conf, order, axis=1)
    ok = np.take_along_axis(correct, order, axis=1)
    gap = np.add.reduceat(ok, starts, axis=1) - np.add.reduceat(c, starts, axis=1)
    return np.abs(gap).sum(axis=1) / conf.shape[1]


def expected_calibration_error(y, probs, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE with ``n_bins`` equal-mass bins (definition in :mod:`mixsig.metrics._calibration`); NaN
    without rows."""
    conf, correct = _top_label(y, probs)
    if conf.size == 0:
        return float("nan")
    return float(_ece_rows(conf[None], correct[None], _bin_starts(conf.size, n_bins))[0])


def ece_bootstrap(y, probs, n_bins: int = ECE_BINS, *, n_boot: int = 1000, seed: int = 0,
                  level: float = 0.95) -> dict:
    """The ECE and its percentile bootstrap interval over samples: ``n_boot`` resamples of the rows with
    replacement (``numpy.random.default_rng(seed).integers``), each binned and scored anew. Returns
    ``{"value", "ci_low", "ci_high", "n_boot", "n_bins"}`` (NaN interval without resamples or with one row)."""
    conf, correct = _top_label(y, probs)
    n = conf.size
    value = expected_calibration_error(y, probs, n_bins)
    lo = hi = float("nan")
    if n_boot > 0 and n > 1:
        rng = np.random.default_rng(seed)
        starts = _bin_starts(n, n_bins)
        reps = []
        for b in range(0, n_boot, _CHUNK):
            idx = rng.integers(0, n, size=(min(_CHUNK, n_boot - b), n))
            reps.append(_ece_rows(conf[idx], correct[idx], starts))
        lo, hi = (float(v) for v in np.quantile(np.concatenate(reps), [(1 - level) / 2, 1 - (1 - level) / 2]))
    return {"value": value, "ci_low": lo, "ci_high": hi, "n_boot": int(n_boot),
            "n_bins": int(_bin_starts(max(n, 1), n_bins).size)}


def vote_cross_entropy(probs, vote_shares) -> np.ndarray:
    """``[n]`` cross-entropy (nats) of each row's predicted distribution against its vote shares ``[n, C]`` (rows
    summing to 1; a row of NaN, e.g. a sample without votes, gives NaN)."""
    p = np.maximum(np.asarray(probs, np.float64), PROB_FLOOR)
    q = np.asarray(vote_shares, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"probs {list(p.shape)} and vote_shares {list(q.shape)} differ in shape")
    return -(q * np.log(p)).sum(axis=1)
