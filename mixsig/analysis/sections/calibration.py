"""6b. Calibration and soft labels: per subset, the top-label expected calibration error (equal-mass bins) with a
bootstrap interval and a reliability diagram; where the samples have annotator votes, the cross-entropy of the
predictions against the vote distribution and its Spearman correlation with the vote entropy
(report.json ``calibration``, ``calibration_definition``)."""

from __future__ import annotations

import math

import numpy as np

from mixsig import metrics as _metrics
from mixsig.analysis import _plots, _stats
from mixsig.analysis._context import Context
from mixsig.analysis._format import num, pval
from mixsig.analysis.sections.uncertainty import missing_votes

#: Fieller, Hartley & Pearson (1957): var(atanh(Spearman's rho)) ≈ 1.06 / (n − 3).
FIELLER_VAR = 1.06
Z95 = 1.959963984540054
#: Permutations of the predictions among the samples for the independence reference of the Spearman rho.
N_PERM = 100


def definition(n_bins: int, n_boot: int, seed: int) -> str:
    return ("Per subset, on the seed-mean probabilities p (top label = their argmax, which can differ from the "
            "majority-vote prediction of the other sections). ECE (“ece”) = top-label expected calibration error: "
            f"the samples sorted by confidence max_c p_c and cut into {n_bins} equal-mass bins (sizes differing by at "
            "most one), ECE = Σ_b (n_b / n) |accuracy_b − mean confidence_b|; 0 = calibrated, but a calibrated model "
            "still shows “ece_if_calibrated” from sampling noise alone (each sample right with probability its "
            "confidence: Σ_b (n_b / n)·sqrt(2/π)·sqrt(Σ_i c_i (1 − c_i)) / n_b, the normal approximation; read the "
            "ECE against it). “ece_ci”: 95% percentile bootstrap "
            f"interval over samples ({n_boot} resamples, numpy default_rng({seed}), each resample binned anew). "
            "“bins”: the reliability diagram's bins (count, mean confidence, accuracy, confidence range). Over the "
            "samples with votes: “cross_entropy_votes” = mean over samples of −Σ_c q_c ln max(p_c, 1e−12) in nats, q "
            "the sample's vote shares (= H(q) + KL(q ‖ p): it grows with the votes' own entropy as well as with the "
            "mismatch), with a 95% bootstrap interval (“cross_entropy_votes_ci”); “ce_entropy_spearman”: Spearman's "
            "rho between that per-sample cross-entropy and the vote entropy (bits), two-sided p against 0 (scipy), "
            "a 95% interval from Fisher's z with var = 1.06 / (n − 3) (Fieller et al. 1957), and the reference for "
            f"votes independent of the predictions: “rho_permuted”, the mean rho over {N_PERM} permutations of the "
            f"predictions among the samples (numpy default_rng({seed})) — not 0 in general, since a unanimous "
            "sample's cross-entropy is a single −ln p_c, more skewed than a split vote's average — and "
            "“p_permutation”, the share of permutations (with +1) whose rho lies at least as far from it as the "
            "observed rho. Read rho against rho_permuted, not against 0.")


def permuted_rho(probs: np.ndarray, q: np.ndarray, entropy: np.ndarray, n_perm: int, seed: int) -> dict:
    """Spearman's rho between the vote cross-entropy and the vote entropy with the predictions permuted among the
    samples (votes made independent of them): ``{"rho_permuted": mean over permutations, "rho_perm": [K]}``."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    n = entropy.size
    re = rankdata(entropy)
    re = (re - re.mean()) / (np.linalg.norm(re - re.mean()) or 1.0)
    perms = np.stack([rng.permutation(n) for _ in range(n_perm)])
    c = probs.shape[1]
    ce = _metrics.vote_cross_entropy(probs[perms].reshape(-1, c), np.tile(q, (n_perm, 1))).reshape(n_perm, n)
    rc = rankdata(ce, axis=1)
    rc = rc - rc.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(rc, axis=1)
    rho = np.where(norm > 0, (rc @ re) / np.where(norm > 0, norm, 1.0), np.nan)
    return {"rho_permuted": float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan"), "rho_perm": rho}


def spearman_ci(x, y) -> dict:
    """:func:`mixsig.analysis._stats.spearman` plus ``"ci"``: tanh(atanh(rho) ± 1.96·sqrt(1.06 / (n − 3)))."""
    out = _stats.spearman(x, y)
    rho, n = out["rho"], out["n"]
    lo = hi = float("nan")
    if n > 3 and math.isfinite(rho):
        z, se = math.atanh(max(min(rho, 1 - 1e-12), -1 + 1e-12)), math.sqrt(FIELLER_VAR / (n - 3))
        lo, hi = math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)
    out["ci"] = [lo, hi]
    return out


def _votes(ctx: Context):
    """``(rows with votes [n] bool, vote shares [n, C], vote entropy bits [n])`` or None without votes."""
    if missing_votes(ctx):
        return None
    counts = _stats.vote_counts(ctx.votes, ctx.n_classes).astype(np.float64)
    tot = counts.sum(axis=1)
    have = tot > 0
    q = np.full(counts.shape, np.nan)
    q[have] = counts[have] / tot[have, None]
    return have, q, _stats.vote_entropy(counts)


def compute(ctx: Context) -> dict:
    nb = _metrics.ECE_BINS
    votes = _votes(ctx)
    if votes is None:
        ctx.skipped["calibration_votes"] = f"{missing_votes(ctx)}: no cross-entropy against the votes"
    out = {}
    for name, agg in ctx.agg.items():
        p = agg.mean_probs
        e = _metrics.ece_bootstrap(ctx.y, p, nb, n_boot=ctx.n_boot, seed=ctx.seed)
        bins = _metrics.calibration_bins(ctx.y, p, nb)
        entry = {"ece": e["value"], "ece_ci": [e["ci_low"], e["ci_high"]], "bins": bins,
                 "ece_if_calibrated": bins["ece_if_calibrated"],
                 "cross_entropy_votes": None, "cross_entropy_votes_ci": None, "n_with_votes": 0,
                 "ce_entropy_spearman": None}
        if votes is not None:
            have, q, ent = votes
            ce = _metrics.vote_cross_entropy(p[have], q[have])
            lo = hi = float("nan")
            if ctx.n_boot > 0 and ce.size > 1:
                lo, hi = _stats.percentile_interval(_stats.bootstrap_mean(ce, ctx.n_boot, np.random.default_rng(ctx.seed)))
            sp = spearman_ci(ce, ent[have])
            if ce.size > 3:
                perm = permuted_rho(p[have], q[have], ent[have], N_PERM, ctx.seed)
                dev = np.abs(perm["rho_perm"] - perm["rho_permuted"])
                sp["rho_permuted"] = perm["rho_permuted"]
                sp["p_permutation"] = (float((1 + np.sum(dev >= abs(sp["rho"] - perm["rho_permuted"]) - 1e-12))
                                             / (1 + N_PERM)) if np.isfinite(sp["rho"]) else float("nan"))
            entry.update({"cross_entropy_votes": float(ce.mean()), "cross_entropy_votes_ci": [lo, hi],
                          "n_with_votes": int(have.sum()), "ce_entropy_spearman": sp})
        out[name] = entry
    return {"calibration": out, "calibration_definition": definition(nb, ctx.n_boot, ctx.seed)}


def blocks(report: dict, figures: dict) -> list[tuple]:
    cal = report.get("calibration")
    b: list[tuple] = [("h2", "6b. Calibration and soft labels")]
    if not cal:
        return b + [("skip", "Skipped: no subset to score.")]
    rows = []
    for s, v in cal.items():
        sp = v["ce_entropy_spearman"]
        rows.append([s, f"{num(v['ece'])} [{num(v['ece_ci'][0])}, {num(v['ece_ci'][1])}]", num(v["ece_if_calibrated"]),
                     (f"{num(v['cross_entropy_votes'])} [{num(v['cross_entropy_votes_ci'][0])}, "
                      f"{num(v['cross_entropy_votes_ci'][1])}]") if v["cross_entropy_votes"] is not None else "–",
                     (f"{num(sp['rho'])} [{num(sp['ci'][0])}, {num(sp['ci'][1])}]") if sp else "–",
                     pval(sp["p"]) if sp else "–", num((sp or {}).get("rho_permuted")),
                     pval((sp or {}).get("p_permutation"))])
    b.append(("table", ["subset", "ECE [95% CI]", "ECE if calibrated (noise)", "cross-entropy vs votes, nats [95% CI]",
                        "Spearman rho (cross-entropy, vote entropy) [95% CI]", "p (rho = 0)",
                        "rho, votes independent (permuted)", "p (permutation)"], rows))
    why = (report.get("skipped") or {}).get("calibration_votes")
    if why:
        b.append(("skip", f"Soft labels skipped: {why}."))
    b.append(("p", "**Definitions.** " + (report.get("calibration_definition") or "")))
    if "calibration" in figures:
        b.append(("img", *figures["calibration"]))
    return b


def figures(report: dict) -> dict:
    if not report.get("calibration"):
        return {}
    return {"calibration": (_plot(report["calibration"]), "Reliability diagram per subset: accuracy against mean "
                            "confidence in each equal-mass confidence bin (seed-mean probabilities); the diagonal is "
                            "perfect calibration, points below it are overconfident.")}


def _plot(cal: dict) -> bytes:
    plt = _plots.pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot([0, 1], [0, 1], color="#adb5bd", lw=1, ls="--")
    for s, v in cal.items():
        ax.plot(v["bins"]["confidence"], v["bins"]["accuracy"], marker="o", ms=3, lw=1,
                label=f"{s} (ECE {num(v['ece'], 3)})")
    lo = min([min(v["bins"]["conf_low"] or [0.5]) for v in cal.values()] + [0.5])
    ax.set_xlim(max(0.0, lo - 0.05), 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("mean confidence in bin (top label)")
    ax.set_ylabel("accuracy in bin")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Reliability diagram (equal-mass bins)")
    return _plots.png(fig)
