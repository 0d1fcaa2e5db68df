"""The manifest: schema, loading and validation (the one place raw input is checked).

A manifest is a CSV, JSONL or Parquet file with one row per sample (columns in README.md, "The manifest"):
``id``, ``split``, ``label``, ``group``, ``text``, ``audio``, ``video``, ``start``, ``end``,
``votes`` and ``votes@<condition>``. Any other column is kept as is in the rows (ground-truth columns
of the demo corpus, descriptors such as facial action units).

:func:`validate_manifest` reports *every* problem at once, each with its row, column and a fix;
:func:`load_manifest` raises :class:`~mixsig.errors.ManifestError` when any of them is an error;
:func:`to_samples` builds the samples table of the feature store (content hashes are computed there).
Each row is a :class:`Row`: typed fields (``row.split``), also readable as a mapping (``row["split"]``,
extra columns by their names).

Row numbers are 1-based data rows: in a CSV file line 2 (below the header) is row 1; in a JSONL file
row N is line N (blank lines are skipped but counted). A CSV row that cannot be parsed (e.g. an unclosed quote)
still counts as a row; parse and field-count messages also give its line number.

Example::

    >>> manifest, problems = validate_manifest("data/manifest.csv")        # doctest: +SKIP
    >>> [p.format() for p in problems if p.severity == "error"]             # doctest: +SKIP
    ['row 4, column split: unknown split "tets"; ...']

The package imports only the standard library at import time (``mixsig validate`` starts instantly);
numpy and :mod:`mixsig.cache` are imported inside :func:`to_samples`, :func:`group_leak` and
:func:`check_group_leak`. Import every name from ``mixsig.manifest``; the modules below are private:

- ``_schema``: the contract's constants (:data:`KNOWN_SPLITS`, :data:`MODALITIES`, :data:`ROW_KEYS` ...),
  :class:`Problem`, :class:`Manifest`, the package logger.
- ``_read``: the file to raw records (CSV/TSV/JSONL, file-level problems), and single-cell clean-up.
- ``_row``: :class:`Row` (frozen, slots) and the normalisation of one raw record into a Row.
- ``_checks``: checks of the header's columns and of each row (id, split, label, modalities, segment,
  votes, media files exist and are readable).
- ``_leaks``: groups found in more than one split: the ``group_leak`` problems, :func:`group_leak` and
  :func:`check_group_leak`.
- ``_media``: the same media under two ids (``duplicate_media`` warnings).
- ``_outside``: media paths outside the manifest's folder (absolute, ``..``, symlinks out): ``outside_path``
  warnings, :func:`outside_paths`, :func:`check_outside_paths` and the refusal of :func:`load_manifest`.
- ``_ids``: ids with invisible/control characters (``bad_id``), NFC-equal ids, look-alike ids (warnings).
- ``_hash``: content hashes, :func:`text_hash` and :func:`media_hash` (shared with the cache).
- ``_validate``: :func:`validate_manifest` and :func:`load_manifest`, which run all of the above.
- ``_summary``: :func:`summarise`, the counts ``mixsig validate`` prints.
- ``_samples``: :func:`to_samples` (the store's samples table) and :func:`store_attrs`.
"""

from __future__ import annotations

from mixsig.manifest._hash import media_hash, text_hash
from mixsig.manifest._leaks import check_group_leak, group_leak
from mixsig.manifest._outside import check_outside_paths, outside_paths
from mixsig.manifest._row import Row
from mixsig.manifest._samples import extra_column, store_attrs, to_samples
from mixsig.manifest._schema import (
    KNOWN_SPLITS, MEDIA_MODALITIES, MODALITIES, ROW_KEYS, SEVERITIES, STANDARD_COLUMNS, VOTES_PREFIX, Manifest,
    Problem,
)
from mixsig.manifest._summary import summarise
from mixsig.manifest._validate import load_manifest, validate_manifest

__all__ = [
    "KNOWN_SPLITS", "MEDIA_MODALITIES", "MODALITIES", "ROW_KEYS", "SEVERITIES", "STANDARD_COLUMNS", "VOTES_PREFIX",
    "Manifest", "Problem", "Row", "check_group_leak", "extra_column", "check_outside_paths", "group_leak", "load_manifest",
    "media_hash", "outside_paths", "store_attrs", "summarise", "text_hash", "to_samples", "validate_manifest",
]
