"""HDF5 exchange: export a key for other tools, import features computed elsewhere (matched by id).

An exported file holds ``ids`` [N] str, ``embedding``, ``done`` [N] bool, ``status`` [N] int8 with ``status_name``
[N] str beside it (attr ``status_names``: ``{code: name}``), ``split`` [N] str, ``label`` [N] int (index into
``classes``, -1 = unlabelled), ``label_name`` [N] str ("" = unlabelled), ``classes`` [C] str, ``columns`` [D] str
when the key's columns are named, and attrs ``mixsig_key``, ``mixsig_provenance`` (JSON), ``modality``.

Imported feature columns are named by ``columns`` (``--columns duration,words``), else by the file's ``columns``
dataset or attr; the names go into the key's provenance (``extra.columns``), and the report's descriptors section
names the columns ``KEY[name]`` instead of ``KEY[j]``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from mixsig.cache._keys import Provenance, file_sha256
from mixsig.cache._runs import check_modality_name
from mixsig.cache._status import Status
from mixsig.errors import StoreError, UsageError

log = logging.getLogger(__name__)


def export_h5(store, key: str, path) -> Path:
    """Write ``ids``, ``embedding``, ``done``, ``status`` of ``key`` to an HDF5 file; provenance goes in attrs."""
    import h5py

    path = Path(path)
    info = store.key_info(key)
    emb = store.read_array(key, "embedding").astype(info["dtype"])
    samples = store.samples
    text = h5py.string_dtype()
    status = np.asarray(store.read_array(key, "status"), np.int8)
    label = np.asarray(samples.label, np.int64)
    classes = list(samples.classes)
    names = (info["provenance"].get("extra") or {}).get("columns")
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=np.asarray(samples.ids, dtype=object), dtype=text)
        f.create_dataset("embedding", data=emb)
        f.create_dataset("done", data=store.read_array(key, "done"))
        f.create_dataset("status", data=status)
        f.create_dataset("status_name", data=np.array([Status.name_of(c) for c in status], dtype=object), dtype=text)
        f.create_dataset("split", data=np.asarray(samples.split, dtype=object).astype(str).astype(object), dtype=text)
        f.create_dataset("label", data=label)
        f.create_dataset("label_name", data=np.array([classes[k] if k >= 0 else "" for k in label], dtype=object),
                         dtype=text)
        f.create_dataset("classes", data=np.array(classes, dtype=object), dtype=text)
        if isinstance(names, list) and emb.ndim == 2 and len(names) == emb.shape[1]:
            f.create_dataset("columns", data=np.array(names, dtype=object), dtype=text)
        f.attrs["status_names"] = json.dumps({int(c): c.name.lower() for c in Status}, sort_keys=True)
        f.attrs["mixsig_key"] = key
        f.attrs["mixsig_provenance"] = json.dumps(info["provenance"], sort_keys=True)
        f.attrs["modality"] = info["modality"]
    return path


def import_h5(store, path, modality: str | None = None, name: str | None = None, ids_dataset: str = "ids",
              dataset: str = "embedding", dtype: str | None = None, columns=None) -> tuple[str, dict]:
    """Import features from an HDF5 file into a new key, matching rows to the store's samples by id.

    A file written by :func:`export_h5` keeps its provenance (and so its key) unless ``name`` is given. Otherwise
    the provenance records ``modality``, ``name``, the file's sha256 and the dataset names. Store rows missing from
    the file are left not done (status ``missing_input``); ids in the file that the store lacks are reported.
    ``columns``: names of the feature columns (a list, or one comma-separated string); without it the file's
    ``columns`` dataset (or attr) names them, if it has one. Recorded in the provenance (``extra.columns``).
    Returns ``(key, summary)``.
    """
    import h5py

    path = Path(path)
    if modality is not None:
        check_modality_name(modality, "--modality")
    if not path.is_file():
        raise StoreError(f"HDF5 file {path} does not exist")
    with h5py.File(path, "r") as f:
        for ds in (ids_dataset, dataset):
            if ds not in f:
                raise StoreError(f"{path} has no dataset {ds!r} (it has {sorted(f.keys())}); "
                                 "pass --ids-dataset / --dataset")
        ids = np.asarray([x.decode() if isinstance(x, bytes) else str(x) for x in f[ids_dataset][...]])
        X = np.asarray(f[dataset][...])
        file_done = f["done"][...].astype(bool) if "done" in f and "status" in f else None
        file_status = f["status"][...] if file_done is not None else None
        saved = f.attrs.get("mixsig_provenance")
        file_dtype = str(X.dtype)
        names = _column_names(path, f, columns, X.shape)
    if len(ids) != len(X):
        raise StoreError(f"{path}: {ids_dataset} has {len(ids)} entries but {dataset} has {len(X)} rows")
    if len(set(ids.tolist())) != len(ids):
        raise StoreError(f"{path}: dataset {ids_dataset!r} has duplicate ids")
    if saved is not None and name is None:
        prov = Provenance.from_dict(json.loads(saved))
        check_modality_name(prov.modality, f"{path}: attr mixsig_provenance")
        if modality and modality != prov.modality:
            raise StoreError(f"{path} holds {prov.modality} features; drop --modality or pass --name to re-label them")
    else:
        if not modality or not name:
            raise StoreError("importing features needs --modality (any name, e.g. face) and --name (what they are)")
        out_dtype = dtype or ("float16" if file_dtype == "float16" else "float32")
        prov = Provenance(modality=modality, encoder=name, revision="sha256:" + file_sha256(path), pooling="imported",
                          layers="given", dtype=out_dtype,
                          extra={"source_file": path.name, "ids_dataset": ids_dataset, "dataset": dataset})
    if names is not None:
        prov = dataclasses.replace(prov, extra={**prov.extra, "columns": names})
    index = {s: i for i, s in enumerate(store.samples.ids.tolist())}
    pos = np.array([index.get(s, -1) for s in ids.tolist()])
    unknown = int((pos < 0).sum())
    if unknown:
        log.warning("%d ids in %s are not in the store (first: %s); they are ignored", unknown, path,
                    ids[pos < 0][:3].tolist())
    n = len(store.samples)
    full = np.full((n,) + X.shape[1:], np.nan, np.float32)
    status = np.full(n, Status.MISSING_INPUT, np.int8)
    messages = np.array([f"id not in {path.name}"] * n, dtype=object)
    have = pos >= 0
    full[pos[have]] = X[have]
    status[pos[have]] = Status.OK if file_status is None else file_status[have]
    messages[pos[have]] = ""
    if file_done is not None:
        not_done = pos[have][~file_done[have]]
        status[not_done] = np.where(status[not_done] == Status.OK, Status.PENDING, status[not_done])
    key = store.create_key(prov, X.shape[1:] if X.ndim > 2 else X.shape[1])
    with store.writer(key) as w:
        for lo, hi in w.blocks():
            w.write_block(lo, hi, full[lo:hi], status[lo:hi], messages[lo:hi].tolist())
    summary = {"key": key, "rows_in_file": int(len(ids)), "matched": int(have.sum()), "unknown_ids": unknown,
               "missing_in_file": int(n - have.sum()), "done": int(store.read_array(key, "done").sum())}
    return key, summary


def _column_names(path, f, columns, shape) -> list[str] | None:
    """The feature columns' names: ``columns`` (a list or "a,b,c"), else the file's ``columns`` dataset or attr,
    else None; checked against the width of ``shape`` ([N, D] features only)."""
    where = "--columns"
    if columns is None and "columns" in f:
        columns, where = f["columns"][...], f"{path}: dataset 'columns'"
    elif columns is None and "columns" in f.attrs:
        columns, where = f.attrs["columns"], f"{path}: attr 'columns'"
    if columns is None:
        return None
    if isinstance(columns, (str, bytes)):
        text = columns.decode() if isinstance(columns, bytes) else columns
        try:
            columns = json.loads(text) if text.startswith("[") else text.split(",")
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where} {text!r} is not a JSON list ({exc.msg}); give the names comma-separated, "
                             f"e.g. --columns duration,words") from None
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise UsageError(f"{where} {text!r}: a JSON list of column names must hold strings only; give the "
                             f"names comma-separated, e.g. --columns duration,words")
    names = [(c.decode() if isinstance(c, bytes) else str(c)).strip() for c in np.asarray(columns).ravel()]
    if len(shape) != 2:
        raise UsageError(f"{where}: column names are for [N, D] features; {path} holds {list(shape)}")
    if len(names) != shape[1]:
        raise UsageError(f"{where} names {len(names)} columns but the features of {path} have {shape[1]}; give one "
                         f"name per column, e.g. --columns {','.join(f'c{j}' for j in range(min(shape[1], 3)))}"
                         f"{',...' if shape[1] > 3 else ''}")
    bad = [c for c in names if not c or any(ch in c for ch in "[],")]
    dup = sorted({c for c in names if names.count(c) > 1})
    if bad or dup:
        raise UsageError(f"{where}: column names must be non-empty, distinct and without '[', ']' or ','; "
                         f"{'empty or bad: ' + repr(bad) if bad else 'repeated: ' + repr(dup)}")
    return names
