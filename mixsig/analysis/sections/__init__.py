"""The report's sections: one module per section, holding its analysis and its rendering side by side.

Every section module has the same three functions::

    compute(ctx: Context) -> dict          # its top-level entries of report.json, e.g. {"join": {...}} (None
                                           # when skipped: it then records why in ctx.skipped[<entry>])
    blocks(report: dict, figures: dict) -> list[Block]   # its part of the page (report.html and report.md)
    figures(report: dict) -> {name: (png_bytes, caption)}   # its figures ({} for none)

``compute`` reads the :class:`mixsig.analysis._context.Context` (the analysed rows, the seed-aggregated
predictions, the options) and may append to ``ctx.notes``, record ``ctx.skipped[part]`` and set the per-sample
columns later sections read (``ctx.category``, ``ctx.entropy``, ...), so the sections run in :data:`PAGE` order.
``blocks`` and ``figures`` read only the finished report dict (``report["samples"]`` holds the per-sample
columns); ``blocks`` places the section's figures (those ``figures`` returned, unless plots are off).

A block is a tuple, rendered by ``mixsig.analysis._render`` to both HTML and Markdown:
``("h1" | "h2", text)``, ``("p", text)`` (``**bold**`` allowed), ``("note", text)``, ``("warn", text)``,
``("skip", text)``, ``("table", header_cells, rows_of_cells)``, ``("img", png_bytes, caption)``,
``("html", raw_html, markdown_fallback_text)`` (raw HTML for report.html only, e.g. the sample browser; report.md
shows the fallback text).

:data:`PAGE` is the page and report.json in order: header (with warnings), metrics, paired comparisons (1b),
disagreement, uncertainty, join, attribution (5: which modality misled the fusion, by counterfactual), dominance
(5b: which model was followed exclusively, gate/attention weights), robustness (5c: the full model with modalities
missing at test time), confidence, calibration (6b: ECE, reliability diagram, cross-entropy against the votes), learned layer weights
(6c), training dynamics (6d: the data map of the training rows), human study, descriptors, top
samples, the sample browser (every sample, sortable and filterable, with its media), provenance (what produced the
report); then report.json's ``notes`` and ``skipped``. :data:`SAMPLES`
(the samples table, ``result["samples"]`` and samples.csv) comes last and has no blocks. ``mixsig.analysis._analyse`` runs ``compute``;
``mixsig.analysis._render`` assembles the page.
"""

from mixsig.analysis.sections import (
    attribution,
    calibration,
    browser,
    confidence,
    descriptors,
    disagreement,
    dynamics,
    dominance,
    header,
    human,
    join,
    layers,
    metrics,
    paired,
    provenance,
    robustness,
    samples,
    top,
    uncertainty,
)

PAGE = (header, metrics, paired, disagreement, uncertainty, join, attribution, dominance, robustness, confidence,
        calibration, layers, dynamics, human,
        descriptors, top, browser, provenance)
SAMPLES = samples

__all__ = ["PAGE", "SAMPLES"]
