"""6c. Learned layer weights: for modalities given as all layers of an encoder (``[N, L, D]`` keys), the torch
heads' softmax weight per layer, per subset, mean and spread over seeds (report.json ``layers``; skipped with the
reason when the run has none: pooled keys, a fixed ``layer``, LightGBM or logreg)."""

from __future__ import annotations

import numpy as np

from mixsig.analysis import _plots
from mixsig.analysis._context import Context
from mixsig.analysis._format import num

PREFIX = "layer_weights/"

DEFINITION = (
    "Layer weights: a torch head on a modality given as all L layers of its encoder learns one logit per layer "
    "(all 0 at the start: equal weights 1/L) and feeds the network the softmax-weighted sum of the layers (the "
    "SUPERB / s3prl weighted-layer sum). Shown per subset and modality: the weights of each seed's fitted head, "
    "their mean and standard deviation over the seeds (ddof 0), and the peak layer (0-based) of the mean. "
    "Uniform = 1/L, what an uninformative choice of layer stays near.")


def compute(ctx: Context) -> dict:
    out: dict = {}
    for sub, extra in ctx.inp.extra.items():
        for path, w in extra.items():
            if not path.startswith(PREFIX):
                continue
            w = np.asarray(w, np.float64)
            ok = np.isfinite(w).all(axis=1)
            if not ok.any():
                continue
            mean = w[ok].mean(axis=0)
            out.setdefault(sub, {})[path[len(PREFIX):]] = {
                "layers": int(w.shape[1]), "per_seed": w[ok].tolist(), "mean": mean.tolist(),
                "std": w[ok].std(axis=0).tolist(), "peak_layer": int(np.argmax(mean)),
                "peak_weight": float(mean.max()), "uniform": 1.0 / w.shape[1], "n_seeds": int(ok.sum())}
    if not out:
        ctx.skipped["layers"] = ("the run has no learned layer weights (they come from torch heads with "
                                 "layer='weighted' on keys extracted with --layers all)")
        return {"layers": None}
    return {"layers": {"subsets": out, "definition": DEFINITION}}


def blocks(report: dict, figures: dict) -> list[tuple]:
    lw = report.get("layers")
    b: list[tuple] = [("h2", "6c. Learned layer weights")]
    if not lw:
        b.append(("skip", f"Skipped: {report['skipped'].get('layers')}."))
        return b
    rows = []
    for sub, mods in lw["subsets"].items():
        for m, d in mods.items():
            rows.append([sub, m, d["layers"], d["peak_layer"], num(d["peak_weight"]), num(d["uniform"]),
                         " ".join(num(x, 2) for x in d["mean"])])
    b.append(("table", ["subset", "modality", "layers", "peak layer (0-based)", "peak weight", "uniform 1/L",
                        "mean weight per layer"], rows))
    b.append(("p", f"**Definitions.** {lw['definition']}"))
    if "layers" in figures:
        b.append(("img", *figures["layers"]))
    return b


def figures(report: dict) -> dict:
    lw = report.get("layers")
    if not lw:
        return {}
    return {"layers": (_plot(lw), "Learned softmax weight per layer (0-based), mean over seeds with their standard "
                                  "deviation, one line per subset and modality; dashed: uniform 1/L.")}


def _plot(lw: dict) -> bytes:
    plt = _plots.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    uniform = set()
    for sub, mods in lw["subsets"].items():
        for m, d in mods.items():
            x = np.arange(d["layers"])
            ax.errorbar(x, d["mean"], yerr=d["std"], marker="o", ms=3, lw=1, capsize=2, label=f"{m} in {sub}")
            uniform.add((d["layers"], d["uniform"]))
    for L, u in uniform:
        ax.plot([0, L - 1], [u, u], color="black", lw=0.6, ls="--")
    ax.set_xlabel("layer (0-based)")
    ax.set_ylabel("softmax weight")
    ax.legend(fontsize=7)
    ax.set_title("Learned layer weights")
    return _plots.png(fig)
