"""Disagreement analysis of a run's cached predictions and the report (README.md, "The disagreement report").

Public API::

    from mixsig.analysis import analyse, write_report
    result = analyse("cache.zarr", "my-run", split="test")     # every number, as a dict
    paths = write_report(result, "report/")                     # report.html/.md/.json, samples.csv

``AnalysisInput`` + ``analyse_input`` run the same analyses on plain arrays (no store needed);
``csv_text_value`` reads a samples.csv text cell back (samples.csv marks formula-like text cells with a leading
``'``); the statistics helpers (``krippendorff_alpha_nominal``, ``vote_entropy``, ``mann_whitney``,
``benjamini_hochberg``, ...) are exported for reuse.

Layout: each report section is one module under ``mixsig.analysis.sections`` holding its analysis
(``compute``) and its rendering (``blocks``, ``figures``) side by side (see that package's docstring);
``_analyse`` only orchestrates them, ``_render`` only assembles the page and writes the files, and
``_context`` (rows, seed aggregation), ``_stats``, ``_format``, ``_plots``, ``_descriptors`` and ``_data``
are shared by the sections.
"""

from mixsig.analysis._analyse import analyse, analyse_input
from mixsig.analysis._context import aggregate_seeds
from mixsig.analysis._data import AnalysisInput, input_from_run, input_from_store
from mixsig.analysis._descriptors import prosody
from mixsig.metrics import auroc, bootstrap_metrics, point_metrics
from mixsig.analysis._render import jsonable, write_report
from mixsig.analysis.sections.samples import csv_text_value
from mixsig.analysis._stats import (
    benjamini_hochberg,
    bootstrap_mean_difference,
    krippendorff_alpha_bootstrap,
    krippendorff_alpha_nominal,
    majority_share,
    mann_whitney,
    rank_biserial,
    spearman,
    vote_counts,
    vote_entropy,
)

__all__ = [
    "AnalysisInput", "aggregate_seeds", "analyse", "analyse_input", "auroc", "benjamini_hochberg",
    "bootstrap_mean_difference", "bootstrap_metrics", "csv_text_value", "input_from_run", "input_from_store",
    "jsonable", "krippendorff_alpha_bootstrap", "krippendorff_alpha_nominal", "majority_share", "mann_whitney",
    "point_metrics", "prosody", "rank_biserial", "spearman", "vote_counts", "vote_entropy", "write_report",
]
