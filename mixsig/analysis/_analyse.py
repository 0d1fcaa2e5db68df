"""``analyse``: run every section's analysis on one split of a run and collect every number in one dict.

The analyses themselves are the sections (``mixsig.analysis.sections``); this module only picks the input,
builds the :class:`~mixsig.analysis._context.Context` and runs the sections in order.
"""

from __future__ import annotations

import numpy as np

from mixsig.analysis import sections
from mixsig.analysis._context import make_context
from mixsig.analysis._data import AnalysisInput, input_from_run, input_from_store
from mixsig.errors import UsageError


def analyse(store_or_run, run=None, split: str | None = "test", *, media_root=None, descriptors=None,
            n_boot: int = 1000, seed: int = 0, top_k: int = 10, media_descriptors: bool = True,
            embed_media: int = 40) -> dict:
    """Every analysis of the report (README.md, "The disagreement report") on one run, for the rows of ``split``.

    store_or_run: a store URL/path or open ``FeatureStore`` (then ``run`` is the run's name), a
    ``mixsig.cache.Samples`` table (then ``run`` is a ``mixsig.cache.Run``), or an
    :class:`AnalysisInput` (then ``run`` is ignored).
    split: ``"test"``, ``"val+test"``, ..., or ``"all"``/``None`` for every row.
    descriptors: extra per-sample columns ``{name: [N] float}`` over every row of the samples table.
    embed_media: the sample browser embeds the media segments of this many of the most misled and ambiguous
    samples (0: none; the others are linked).
    Returns the report dict (JSON-ready except ``result["samples"]``, the per-sample columns).

    Example::

        result = analyse("cache.zarr", "gated-5seeds", split="val+test")
        write_report(result, "report/")
    """
    if isinstance(store_or_run, AnalysisInput):
        inp = store_or_run
        if descriptors:
            inp.descriptors.update({k: np.asarray(v, np.float64) for k, v in descriptors.items()})
        if media_root is not None:
            inp.media_root = media_root
    elif hasattr(store_or_run, "ids") and hasattr(store_or_run, "classes"):
        inp = input_from_run(store_or_run, run, media_root=media_root, descriptors=descriptors)
    else:
        if not isinstance(run, str):
            raise UsageError("analyse(store, run): `run` must be the name of a run in the store")
        inp = input_from_store(store_or_run, run, media_root=media_root, descriptors=descriptors)
    return analyse_input(inp, split, n_boot=n_boot, seed=seed, top_k=top_k, media_descriptors=media_descriptors,
                         embed_media=embed_media)


def analyse_input(inp: AnalysisInput, split: str | None = "test", *, n_boot: int = 1000, seed: int = 0,
                  top_k: int = 10, media_descriptors: bool = True, embed_media: int = 40) -> dict:
    """:func:`analyse` on an :class:`AnalysisInput` (plain arrays)."""
    ctx = make_context(inp, split, n_boot=n_boot, seed=seed, top_k=top_k, media_descriptors=media_descriptors,
                       embed_media=embed_media)
    result: dict = {}
    for section in sections.PAGE:
        result.update(section.compute(ctx))
    result["notes"] = ctx.notes
    result["skipped"] = ctx.skipped
    result.update(sections.SAMPLES.compute(ctx))  # per-sample columns (samples.csv and plots; not in report.json)
    return result
