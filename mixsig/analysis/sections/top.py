"""The top samples: the K most confidently misled samples and the K most ambiguous ones (highest vote entropy,
then most disagreeing modalities; without votes, most disagreeing modalities, then the full model's
confidence) (report.json ``top``)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis._context import Context
from mixsig.analysis._format import SNIPPET_CHARS, num
from mixsig.analysis.sections.samples import READ_BACK


DEFINITION = ("Misled: the full model wrong while some unimodal model is right, ordered by the full model's "
              "confidence (its seed-mean probability of the class it predicts), highest first. Ambiguous: by vote "
              "entropy, highest first, then by the number of unimodal models disagreeing with the full model (without votes: by "
              "that number, then the full model's confidence); ties keep the samples' order.")


def snippet(text, n: int = SNIPPET_CHARS) -> str:
    """``text`` cut to at most ``n`` characters at a word boundary, with "…" when cut (a single word longer than
    ``n`` is cut inside it); line breaks become spaces."""
    t = " ".join(str(text).split())
    if len(t) <= n:
        return t
    cut = t[:n]
    space = cut.rfind(" ")
    if space > 0 and (t[n] != " "):
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def ranked_misled(ctx: Context) -> np.ndarray:
    """Every misled sample (indices into the analysed rows), the full model's most confident first."""
    full_conf = ctx.agg[ctx.full].mean_probs.max(axis=1)
    mis = np.flatnonzero(ctx.category == "misled")
    return mis[np.argsort(-full_conf[mis], kind="stable")]


def ranked_ambiguous(ctx: Context) -> np.ndarray:
    """Every analysed sample, most ambiguous first (:data:`DEFINITION`)."""
    ent, n_dis = ctx.entropy, ctx.n_disagree
    if not np.isfinite(ent).any():
        full_conf = ctx.agg[ctx.full].mean_probs.max(axis=1)
        return np.lexsort((-full_conf, -n_dis))
    return np.lexsort((-n_dis, -np.where(np.isfinite(ent), ent, -1.0)))


def compute(ctx: Context) -> dict:
    inp, rows, y, agg, full = ctx.inp, ctx.rows, ctx.y, ctx.agg, ctx.full
    cls = inp.classes
    cat, ent, n_dis = ctx.category, ctx.entropy, ctx.n_disagree
    full_conf = agg[full].mean_probs.max(axis=1)
    k = ctx.top_k

    def row(i):
        return {"id": str(inp.ids[rows[i]]), "label": cls[y[i]], "full_pred": cls[agg[full].pred[i]],
                "full_conf": float(full_conf[i]), "category": str(cat[i]), "n_disagree": int(n_dis[i]),
                "followed": str(ctx.followed[i]) or None,
                "entropy": float(ent[i]) if np.isfinite(ent[i]) else None,
                "unimodal_preds": {m: cls[agg[m].pred[i]] for m in ctx.unimodal},
                "text": snippet(inp.text[rows[i]])}

    mis = ranked_misled(ctx)[:k]
    amb = ranked_ambiguous(ctx)[:k]
    ranking = ("vote entropy, then number of disagreeing modalities" if np.isfinite(ent).any()
               else "number of disagreeing modalities (no votes)")
    return {"top": {"k": k, "misled": [row(i) for i in mis], "ambiguous": [row(i) for i in amb],
                    "ambiguous_ranking": ranking, "definition": DEFINITION}}


def blocks(report: dict, figures: dict) -> list[tuple]:
    top = report["top"]
    b: list[tuple] = [("h2", f"Top {top['k']} samples")]
    for name, title in (("misled", "Most confidently misled (full model's confidence)"),
                        ("ambiguous", f"Most ambiguous ({top['ambiguous_ranking']})")):
        b.append(("p", f"**{title}**"))
        if top[name]:
            b.append(("table", ["id", "label", "full pred", "full conf", "category", "followed", "entropy", "text"],
                      [[r["id"], r["label"], r["full_pred"], num(r["full_conf"]), r["category"], r["followed"] or "",
                        num(r["entropy"]), r["text"]] for r in top[name]]))
        else:
            b.append(("p", "none"))
    b.append(("p", f"**Definitions.** {top.get('definition') or DEFINITION}"))
    b.append(("p", f"Every analysed sample is a row of {READ_BACK}"))
    return b


def figures(report: dict) -> dict:
    return {}
