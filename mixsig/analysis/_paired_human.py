"""Statistics of the human study: the all-modalities condition against each single condition, paired per sample
(a sign-flip permutation test and a paired bootstrap of the mean difference), and the no-effect expectation of
the "all vs the best single condition" shares (simulated with the conditions exchangeable).

Every draw is seeded (``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import math

import numpy as np

#: Random sign-flip patterns drawn when the exact null distribution has more patterns than ``EXACT_MAX``.
N_FLIPS = 20_000
#: The sign-flip test is exact (every sign pattern weighed) up to this many distinct patterns.
EXACT_MAX = 65_536
#: Simulated no-effect replicates of the best-single shares (fewer for large studies, at least 20).
N_NULL_SIMS = 200
#: Simulated votes per chunk, and in all (fewer simulations for large studies).
_NULL_ELEMENTS = 4_000_000
_NULL_SIM_ELEMENTS = 10_000_000

TEST_NAME = "two-sided paired sign-flip permutation test of the mean difference"


def sign_flip_test(d: np.ndarray, *, n_flips: int = N_FLIPS, seed: int = 0) -> dict:
    """Two-sided paired permutation test of ``mean(d) = 0``: under no effect the two conditions of a sample are
    exchangeable, so each difference's sign is flipped at random (zero differences, ties included, stay zero and
    leave the statistic unchanged). ``p = P(|T*| ≥ |T|)``, ``T = sum(d)``.

    Differences with the same absolute value are flipped together as a binomial count (the same distribution as
    flipping each one). Exact when the flips have at most :data:`EXACT_MAX` distinct outcomes; otherwise
    ``n_flips`` random patterns and ``p = (1 + #{|T*| ≥ |T|}) / (1 + n_flips)``.
    Returns ``{"p", "exact", "n_flips"}`` (``n_flips`` None when exact)."""
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d)]
    t = abs(float(d.sum()))
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))
    mags, counts = np.unique(np.abs(d[d != 0]), return_counts=True)
    if mags.size == 0:
        return {"p": 1.0, "exact": True, "n_flips": None}
    if math.prod(int(c) + 1 for c in counts) <= EXACT_MAX:
        sums, probs = np.zeros(1), np.ones(1)
        for a, c in zip(mags, counts):
            c = int(c)
            j = np.arange(c + 1)
            pmf = np.array([math.comb(c, k) for k in j], dtype=np.float64) / 2.0 ** c
            sums = (sums[:, None] + a * (2 * j - c)[None, :]).ravel()
            probs = (probs[:, None] * pmf[None, :]).ravel()
        p = float(probs[np.abs(sums) >= t - tol].sum())
        return {"p": min(1.0, p), "exact": True, "n_flips": None}
    rng = np.random.default_rng(seed)
    x = rng.binomial(counts, 0.5, size=(n_flips, counts.size))
    null = np.abs((2 * x - counts) @ mags)
    return {"p": float((1 + int((null >= t - tol).sum())) / (1 + n_flips)), "exact": False, "n_flips": n_flips}


def paired_bootstrap_mean(d: np.ndarray, *, n_boot: int, seed: int, level: float = 0.95) -> list:
    """Percentile bootstrap interval ``[lo, hi]`` of ``mean(d)``, the samples (each with its pair of conditions)
    resampled with replacement: ``rng = default_rng(seed)``, the distinct values ``u`` of ``d`` with counts ``m``
    (``numpy.unique``), ``w = rng.multinomial(n, m / n, size=n_boot)``, means ``w @ u / n`` (exactly the
    distribution of resampling the samples). ``[nan, nan]`` without samples or resamples."""
    d = np.asarray(d, dtype=np.float64)
    if d.size == 0 or n_boot <= 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    u, m = np.unique(d, return_counts=True)
    w = rng.multinomial(d.size, m / d.size, size=n_boot)
    lo, hi = np.quantile(w @ u / d.size, [(1 - level) / 2, 1 - (1 - level) / 2])
    return [float(lo), float(hi)]


def paired_comparison(a: np.ndarray, b: np.ndarray, *, n_boot: int, seed: int) -> dict:
    """Condition ``a`` vs condition ``b`` per sample (``[n]`` per-sample accuracies, NaN = no votes): over the
    samples with both, ``{"n", "accuracy_all", "accuracy_condition", "diff", "ci", "p", "exact"}`` (``diff`` =
    mean of ``a - b``)."""
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if not ok.any():
        return {"n": 0, "accuracy_all": None, "accuracy_condition": None, "diff": None, "ci": [None, None],
                "p": None, "exact": None}
    test = sign_flip_test(d, seed=seed)
    return {"n": int(ok.sum()), "accuracy_all": float(a[ok].mean()), "accuracy_condition": float(b[ok].mean()),
            "diff": float(d.mean()), "ci": paired_bootstrap_mean(d, n_boot=n_boot, seed=seed), "p": test["p"],
            "exact": test["exact"]}


def share_correct(votes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample annotator accuracy: the share of a sample's votes (``[n, A]``, -1 = none) that are its gold
    label ``y``; NaN for a sample without votes."""
    valid = votes >= 0
    nv = valid.sum(axis=1)
    correct = ((votes == y[:, None]) & valid).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nv > 0, correct / np.maximum(nv, 1), np.nan)


def best_single_shares(s_all: np.ndarray, singles: np.ndarray) -> dict:
    """Shares of samples where ``s_all`` [n] is above / equal to / below the best of ``singles`` [K, n]."""
    best = singles.max(axis=0)
    return {"beats": float((s_all > best).mean()), "tie": float((s_all == best).mean()),
            "worse": float((s_all < best).mean())}


def best_single_null(correct: list[np.ndarray], valid: list[np.ndarray], *, seed: int,
                     n_sims: int = N_NULL_SIMS) -> dict:
    """The no-effect expectation of :func:`best_single_shares` for the same vote counts: per sample the votes of
    every condition are pooled and dealt back at random to the conditions, each keeping its number of votes
    (conditions exchangeable), ``n_sims`` times (seeded); the mean shares over the simulations.

    correct / valid: per condition (the all-modalities condition first), ``[n, A_c]`` bool (vote is the gold
    label / vote present), over samples with a vote in every condition."""
    n = correct[0].shape[0]
    nv = np.stack([v.sum(axis=1) for v in valid], axis=1)  # [n, K+1]
    total = int(nv.sum(axis=1).max())
    pooled = np.zeros((n, total))
    slot_ok = np.arange(total)[None, :] < nv.sum(axis=1)[:, None]
    filled = np.zeros(n, int)
    for c, v in zip(correct, valid):
        for i in range(c.shape[1]):
            put = v[:, i]
            pooled[np.flatnonzero(put), filled[put]] = c[put, i]
            filled += put
    bounds = np.cumsum(nv, axis=1)  # condition j holds slots [bounds[j-1], bounds[j])
    per_sim = max(1, n * total)
    sims = max(20, min(n_sims, _NULL_SIM_ELEMENTS // per_sim))
    rng = np.random.default_rng(seed)
    tally = np.zeros(3)
    done = 0
    while done < sims:
        k = min(sims - done, max(1, _NULL_ELEMENTS // per_sim))
        tally += _deal(pooled, slot_ok, bounds, nv, rng.random((k, n, total)))
        done += k
    beats, tie, worse = (float(v) for v in tally / (sims * n))
    return {"beats": beats, "tie": tie, "worse": worse, "n_sims": int(sims), "seed": int(seed)}


def _deal(pooled, slot_ok, bounds, nv, uniform) -> np.ndarray:
    """One chunk of :func:`best_single_null`: ``uniform`` ``[k, n, slots]`` orders each sample's pooled votes;
    returns the counts of (beats, tie, worse) over the chunk's simulations and samples."""
    keys = np.where(slot_ok[None], uniform, np.inf)
    dealt = np.take_along_axis(np.broadcast_to(pooled, keys.shape), np.argsort(keys, axis=2), axis=2)
    k, n = keys.shape[:2]
    cum = np.concatenate([np.zeros((k, n, 1)), np.cumsum(dealt, axis=2)], axis=2)
    hi = np.take_along_axis(cum, np.broadcast_to(bounds[None], (k, n, nv.shape[1])), axis=2)
    lo = np.concatenate([np.zeros((k, n, 1)), hi[..., :-1]], axis=2)
    shares = (hi - lo) / nv[None]
    best = shares[..., 1:].max(axis=2)
    a = shares[..., 0]
    return np.array([(a > best).sum(), (a == best).sum(), (a < best).sum()], dtype=np.float64)
