"""Statistics used by the analyses: vote entropy, Krippendorff's alpha, Mann–Whitney, FDR, bootstraps, exact
McNemar and the paired bootstrap of two models on the same rows.

Every bootstrap here is seeded (``numpy.random.default_rng(seed)``) and vectorised. Where a statistic
depends on the data only through how often each distinct value (or unit pattern) occurs, resampling
``n`` items with replacement is drawn exactly as ``Multinomial(n, multiplicity / n)`` over the distinct
values, which costs ``O(B x distinct)`` instead of ``O(B x n)``.
"""

from __future__ import annotations

import math

import numpy as np

#: Resample through multinomial counts when there are at most this many distinct values.
_MULTINOMIAL_MAX_CATEGORIES = 4096
#: Rows of the index matrix drawn at once when falling back to index resampling.
_INDEX_CHUNK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------------------------
# votes


def vote_counts(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """Votes per class for every sample.

    votes: ``[N, A]`` int, class index per annotator, ``-1`` = no vote.
    Returns ``[N, C]`` int64.
    """
    votes = np.asarray(votes)
    n = votes.shape[0]
    counts = np.zeros((n, n_classes), dtype=np.int64)
    if votes.size == 0:
        return counts
    valid = (votes >= 0) & (votes < n_classes)
    rows = np.broadcast_to(np.arange(n)[:, None], votes.shape)[valid]
    np.add.at(counts, (rows, votes[valid].astype(np.int64)), 1)
    return counts


def vote_entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each sample's vote distribution.

    counts: ``[N, C]`` votes per class. Returns ``[N]`` float64; NaN where a sample has no vote.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / total
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    ent = terms.sum(axis=1)
    ent[total[:, 0] == 0] = np.nan
    return ent


def majority_share(counts: np.ndarray) -> np.ndarray:
    """Share of votes held by the most voted class, ``[N]`` float64 (NaN where no vote)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = counts.max(axis=1) / total
    share[total == 0] = np.nan
    return share


# ----------------------------------------------------------------------------------------------
# Krippendorff's alpha (nominal)


def _unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """Each pairable unit's contribution to the coincidence matrix.

    counts: ``[U, C]`` values per category in each unit (only units with >= 2 values).
    Returns ``[U, C, C]``: ``(n_uc n_uk - [c == k] n_uc) / (m_u - 1)``.
    """
    counts = counts.astype(np.float64)
    m = counts.sum(axis=1)
    outer = counts[:, :, None] * counts[:, None, :]
    diag = np.einsum("uc,ck->uck", counts, np.eye(counts.shape[1]))
    return (outer - diag) / (m - 1.0)[:, None, None]


def _alpha_from_coincidence(o: np.ndarray) -> np.ndarray:
    """Nominal alpha from coincidence matrices ``[..., C, C]``: ``1 - (n - 1) D_o / D_e``."""
    n_c = o.sum(axis=-1)
    n = n_c.sum(axis=-1)
    observed = n - np.trace(o, axis1=-2, axis2=-1)  # sum of off-diagonal coincidences
    expected = (n**2 - (n_c**2).sum(axis=-1)) / (n - 1.0)  # sum_{c != k} n_c n_k / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - observed / expected


def krippendorff_alpha_nominal(votes: np.ndarray, n_classes: int | None = None) -> float:
    """Krippendorff's alpha for nominal data, from a units x coders table with missing values.

    votes: ``[N, A]`` int category per coder (``-1`` = missing); units with fewer than two values are
    not pairable and are left out, as in Krippendorff (2011), "Computing Krippendorff's
    Alpha-Reliability". Returns NaN when fewer than two pairable values exist or every value is the
    same category (no expected disagreement).
    """
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.size == 0:
        return float("nan")
    if n_classes is None:
        n_classes = int(votes.max()) + 1 if (votes >= 0).any() else 0
    if n_classes == 0:
        return float("nan")
    counts = vote_counts(votes, n_classes)
    counts = counts[counts.sum(axis=1) >= 2]
    if counts.shape[0] == 0:
        return float("nan")
    o = _unit_coincidences(counts).sum(axis=0)
    return float(_alpha_from_coincidence(o))


def _unique_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a small non-negative int matrix ``[U, C]`` and their multiplicities (rows are
    packed into one int64 key when they fit, which is much faster than ``np.unique(axis=0)``)."""
    base = int(counts.max(initial=0)) + 1
    c = counts.shape[1]
    if c * np.log2(max(base, 2)) < 62:
        weights = base ** np.arange(c, dtype=np.int64)
        keys, first, mult = np.unique(counts.astype(np.int64) @ weights, return_index=True, return_counts=True)
        return counts[first], mult
    return np.unique(counts, axis=0, return_counts=True)


def krippendorff_alpha_bootstrap(
    votes: np.ndarray, n_classes: int, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Alpha with a percentile bootstrap interval over units (pairable units resampled with replacement).

    Units with the same vote-count pattern contribute the same coincidences, so the resampling draws
    multinomial counts over the distinct patterns. Returns ``{"alpha", "ci_low", "ci_high",
    "n_units", "n_values", "n_boot"}``.
    """
    counts = vote_counts(votes, n_classes)
    counts = counts[counts.sum(axis=1) >= 2]
    out = {"alpha": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
           "n_units": int(counts.shape[0]), "n_values": int(counts.sum()), "n_boot": int(n_boot)}
    if counts.shape[0] == 0:
        return out
    patterns, mult = _unique_rows(counts)
    per_pattern = _unit_coincidences(patterns)  # [P, C, C]
    o = np.einsum("p,pck->ck", mult.astype(np.float64), per_pattern)
    out["alpha"] = float(_alpha_from_coincidence(o))
    if n_boot > 0 and counts.shape[0] > 1:
        rng = np.random.default_rng(seed)
        w = resample_counts(mult, n_boot, rng)  # [B, P]
        boot = _alpha_from_coincidence(np.einsum("bp,pck->bck", w, per_pattern))
        boot = boot[np.isfinite(boot)]
        if boot.size:
            lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
            out["ci_low"], out["ci_high"] = float(lo), float(hi)
    return out


# ----------------------------------------------------------------------------------------------
# resampling


def resample_counts(multiplicity: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap weights over distinct items.

    multiplicity: ``[P]`` how many of the ``n = sum(multiplicity)`` original items each distinct item
    stands for. Returns ``[B, P]`` float64 counts, each row one resample of ``n`` items with replacement
    (exactly the same distribution as resampling the items themselves).
    """
    mult = np.asarray(multiplicity, dtype=np.int64)
    n = int(mult.sum())
    p = len(mult)
    if p <= _MULTINOMIAL_MAX_CATEGORIES:
        return rng.multinomial(n, mult / n, size=n_boot).astype(np.float64)
    owner = np.repeat(np.arange(p), mult)
    out = np.empty((n_boot, p), dtype=np.float64)
    step = max(1, _INDEX_CHUNK_ELEMENTS // max(n, 1))
    for b0 in range(0, n_boot, step):
        b1 = min(n_boot, b0 + step)
        idx = owner[rng.integers(0, n, size=(b1 - b0, n))]
        flat = idx + (np.arange(b1 - b0) * p)[:, None]
        out[b0:b1] = np.bincount(flat.ravel(), minlength=(b1 - b0) * p).reshape(b1 - b0, p)
    return out


def bootstrap_mean(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[B]`` bootstrap replicates of the mean of ``values`` (1-D, finite)."""
    values = np.asarray(values, dtype=np.float64)
    uniq, mult = np.unique(values, return_counts=True)
    w = resample_counts(mult, n_boot, rng)
    return (w @ uniq) / values.size


def bootstrap_mean_difference(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Difference of means ``mean(a) - mean(b)`` with a percentile bootstrap interval (groups resampled
    separately). Returns ``{"diff", "ci_low", "ci_high", "n_boot"}``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = {"diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_boot": int(n_boot)}
    if a.size == 0 or b.size == 0:
        return out
    out["diff"] = float(a.mean() - b.mean())
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        d = bootstrap_mean(a, n_boot, rng) - bootstrap_mean(b, n_boot, rng)
        lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
        out["ci_low"], out["ci_high"] = float(lo), float(hi)
    return out


# ----------------------------------------------------------------------------------------------
# tests and effect sizes


def mann_whitney(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sided Mann–Whitney U test of ``a`` vs ``b`` (scipy, asymptotic with tie correction when
    large) with the rank-biserial effect size ``r = 2 U_a / (n_a n_b) - 1`` (positive: ``a`` tends to be
    larger). Returns ``{"u", "p", "rank_biserial", "n_a", "n_b", "mean_a", "mean_b", "median_a",
    "median_b"}``; statistics are NaN when a group is empty or every value is equal."""
    from scipy.stats import mannwhitneyu

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    out = {"u": float("nan"), "p": float("nan"), "rank_biserial": float("nan"),
           "n_a": int(a.size), "n_b": int(b.size),
           "mean_a": float(a.mean()) if a.size else float("nan"),
           "mean_b": float(b.mean()) if b.size else float("nan"),
           "median_a": float(np.median(a)) if a.size else float("nan"),
           "median_b": float(np.median(b)) if b.size else float("nan")}
    if a.size == 0 or b.size == 0:
        return out
    res = mannwhitneyu(a, b, alternative="two-sided")
    u = float(res.statistic)
    out["u"] = u
    out["p"] = float(res.pvalue) if np.isfinite(res.pvalue) else float("nan")
    out["rank_biserial"] = 2.0 * u / (a.size * b.size) - 1.0
    return out


def rank_biserial(a: np.ndarray, b: np.ndarray) -> float:
    """Rank-biserial correlation ``P(a > b) - P(a < b)`` (ties count half), from ranks."""
    from scipy.stats import rankdata

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([a, b]))
    u_a = ranks[: a.size].sum() - a.size * (a.size + 1) / 2.0
    return float(2.0 * u_a / (a.size * b.size) - 1.0)


def spearman(x: np.ndarray, y: np.ndarray) -> dict:
    """Spearman rank correlation (scipy) over pairs where both are finite: ``{"rho", "p", "n"}``."""
    from scipy.stats import spearmanr

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out = {"rho": float("nan"), "p": float("nan"), "n": int(x.size)}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    res = spearmanr(x, y)
    out["rho"], out["p"] = float(res.statistic), float(res.pvalue)
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), ``[K]``; NaN inputs stay NaN and are not counted."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(ranked, 1.0)
    q[ok] = adj
    return q


def finite_or_none(x: float) -> float | None:
    """JSON-friendly float: ``None`` for NaN/inf."""
    return float(x) if x is not None and math.isfinite(x) else None


def describe(x: np.ndarray) -> dict:
    """``{"n", "mean", "std" (ddof=0), "median"}`` of the finite values of ``x`` (None for each without any)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": None, "std": None, "median": None}
    return {"n": int(x.size), "mean": float(x.mean()), "std": float(x.std()), "median": float(np.median(x))}


# ----------------------------------------------------------------------------------------------
# paired comparisons of two models on the same samples


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar test, two-sided: the binomial test of ``b`` against ``b + c`` discordant pairs with
    success probability 1/2, ``p = min(1, 2 P(X <= min(b, c)))``, ``X ~ Bin(b + c, 1/2)``; 1 when ``b + c = 0``."""
    from scipy.stats import binom

    b, c = int(b), int(c)
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(b, c), b + c, 0.5)))


def paired_resample_confusions(
    y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_classes: int, *, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paired bootstrap of two models' confusion matrices: each replicate resamples the ``n`` rows with
    replacement once, and a row drawn k times counts k times for both models.

    A row is fully described by its ``(y, pred_a, pred_b)`` triple, so the resampling draws multinomial counts
    over the distinct triples (:func:`resample_counts`, ``numpy.random.default_rng(seed)``), exactly the
    distribution of resampling rows. Returns ``(cm_a, cm_b)``, each ``[B, C, C]`` float64 (rows = true class)."""
    y, pred_a, pred_b = (np.asarray(v, dtype=np.int64) for v in (y, pred_a, pred_b))
    c = int(n_classes)
    code = (y * c + pred_a) * c + pred_b
    uniq, mult = np.unique(code, return_counts=True)
    w = resample_counts(mult, n_boot, np.random.default_rng(seed))  # [B, P]
    t, pa, pb = uniq // (c * c), (uniq // c) % c, uniq % c
    cell_a = np.zeros((uniq.size, c * c))
    cell_a[np.arange(uniq.size), t * c + pa] = 1.0
    cell_b = np.zeros((uniq.size, c * c))
    cell_b[np.arange(uniq.size), t * c + pb] = 1.0
    return (w @ cell_a).reshape(-1, c, c), (w @ cell_b).reshape(-1, c, c)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval ``(lo, hi)`` of the finite replicates (NaN, NaN without any)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(r, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)
