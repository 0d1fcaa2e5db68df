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


def definition(n_bins: int, n_boot: int, seed: int) -> str:
    return ("Per subset, on the seed-mean probabilities p (top label = their argmax, which can differ from the "
            "majority-vote prediction of the other sections). ECE (“ece”) = top-label expected calibration error: "
            f"the samples sorted by confidence max_c p_c and cut into {n_bins} equal-mass bins (sizes differing by at "
            "most one), ECE = Σ_b (n_b / n) |accuracy_b − mean confidence_b|; 0 = calibrated, and a calibrated model "
            "still shows about 0.8·sqrt(1 / (4 n_b)) from sampling noise. “ece_ci”: 95% percentile bootstrap "
            f"interval over samples ({n_boot} resamples, numpy default_rng({seed}), each resample binned anew). "
            "“bins”: the reliability diagram's bins (count, mean confidence, accuracy, confidence range). Over the "
            "samples with votes: “cross_entropy_votes” = mean over samples of −Σ_c q_c ln max(p_c, 1e−12) in nats, q "
            "the sample's vote shares (= H(q) + KL(q ‖ p): it grows with the votes' own entropy as well as with the "
            "mismatch), with a 95% bootstrap interval (“cross_entropy_votes_ci”); “ce_entropy_spearman”: Spearman's "
            "rho between that per-sample cross-entropy and the vote entropy (bits), two-sided p (scipy), and a 95% "
            "interval from Fisher's z with var = 1.06 / (n − 3) (Fieller et al. 1957).")


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
        entry = {"ece": e["value"], "ece_ci": [e["ci_low"], e["ci_high"]], "bins": _metrics.calibration_bins(ctx.y, p, nb),
                 "cross_entropy_votes": None, "cross_entropy_votes_ci": None, "n_with_votes": 0,
                 "ce_entropy_spearman": None}
        if votes is not None:
            have, q, ent = votes
            ce = _metrics.vote_cross_entropy(p[have], q[have])
            lo = hi = float("nan")
            if ctx.n_boot > 0 and ce.size > 1:
                lo, hi = _stats.percentile_interval(_stats.bootstrap_mean(ce, ctx.n_boot, np.random.default_rng(ctx.seed)))
            entry.update({"cross_entropy_votes": float(ce.mean()), "cross_entropy_votes_ci": [lo, hi],
                          "n_with_votes": int(have.sum()), "ce_entropy_spearman": spearman_ci(ce, ent[have])})
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
        rows.append([s, f"{num(v['ece'])} [{num(v['ece_ci'][0])}, {num(v['ece_ci'][1])}]",
                     (f"{num(v['cross_entropy_votes'])} [{num(v['cross_entropy_votes_ci'][0])}, "
                      f"{num(v['cross_entropy_votes_ci'][1])}]") if v["cross_entropy_votes"] is not None else "–",
                     (f"{num(sp['rho'])} [{num(sp['ci'][0])}, {num(sp['ci'][1])}]") if sp else "–",
                     pval(sp["p"]) if sp else "–"])
    b.append(("table", ["subset", "ECE [95% CI]", "cross-entropy vs votes, nats [95% CI]",
                        "Spearman rho (cross-entropy, vote entropy) [95% CI]", "p"], rows))
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
