"""3. Annotator uncertainty: vote entropy (bits), majority share and Krippendorff's alpha with a bootstrap
interval over units (report.json ``uncertainty``; sets the context's per-sample ``entropy`` and
``majority_share``)."""

from __future__ import annotations

from mixsig.analysis import _stats
from mixsig.analysis._context import Context
from mixsig.analysis._format import num, pm


def missing_votes(ctx: Context) -> str | None:
    """Why the analysed rows have no annotator votes, or None when some have."""
    votes = ctx.votes
    if votes.shape[1] > 0 and bool((votes >= 0).any()):
        return None
    return ("the samples table has no `votes` (the manifest had no votes column)" if votes.shape[1] == 0
            else f"no sample of split {ctx.split!r} has a vote")


def definition(n_boot: int, seed: int) -> str:
    return ("Over the samples with at least one vote: vote entropy = Shannon entropy in bits of a sample's vote "
            "distribution (0 = unanimous); majority share = share of its votes held by its most voted class; "
            "unanimous = majority share 1. Krippendorff's alpha (nominal) over the units with two or more votes, "
            "with a 95% percentile bootstrap interval over units (those units resampled with replacement; "
            f"{n_boot} resamples, numpy default_rng({seed})).")


def compute(ctx: Context) -> dict:
    why = missing_votes(ctx)
    if why:
        ctx.skipped["uncertainty"] = why
        return {"uncertainty": None}
    counts = _stats.vote_counts(ctx.votes, ctx.n_classes)
    ent = _stats.vote_entropy(counts)
    share = _stats.majority_share(counts)
    n_votes = counts.sum(axis=1)
    have = n_votes > 0
    alpha = _stats.krippendorff_alpha_bootstrap(ctx.votes, ctx.n_classes, n_boot=ctx.n_boot, seed=ctx.seed)
    ctx.entropy, ctx.majority_share = ent, share
    return {"uncertainty": {
        "n_with_votes": int(have.sum()),
        "votes_per_sample": {"mean": float(n_votes[have].mean()), "min": int(n_votes[have].min()),
                             "max": int(n_votes[have].max())},
        "entropy_bits": _stats.describe(ent[have]),
        "majority_share": _stats.describe(share[have]),
        "unanimous_share": float((share[have] == 1.0).mean()),
        "krippendorff_alpha": alpha,
        "definition": definition(ctx.n_boot, ctx.seed),
    }}


def blocks(report: dict, figures: dict) -> list[tuple]:
    unc = report.get("uncertainty")
    b: list[tuple] = [("h2", "3. Annotator uncertainty")]
    if not unc:
        b.append(("skip", f"Skipped: {report['skipped'].get('uncertainty')}."))
        return b
    a = unc["krippendorff_alpha"]
    b.append(("table", ["measure", "value"], [
        ["samples with votes", unc["n_with_votes"]],
        ["votes per sample (mean / min / max)", f"{num(unc['votes_per_sample']['mean'], 2)} / "
         f"{unc['votes_per_sample']['min']} / {unc['votes_per_sample']['max']}"],
        ["vote entropy, bits (mean ± sd, median)", f"{pm(unc['entropy_bits'])}, {num(unc['entropy_bits']['median'])}"],
        ["majority share (mean ± sd)", pm(unc["majority_share"])],
        ["unanimous samples", num(unc["unanimous_share"])],
        ["Krippendorff's alpha (nominal) [95% CI over units]",
         f"{num(a['alpha'])} [{num(a['ci_low'])}, {num(a['ci_high'])}] ({a['n_units']} units, {a['n_values']} values)"],
    ]))
    if unc.get("definition"):
        b.append(("p", f"**Definitions.** {unc['definition']}"))
    return b


def figures(report: dict) -> dict:
    return {}
