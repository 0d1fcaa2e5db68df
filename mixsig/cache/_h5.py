"""HDF5 exchange: export a key for other tools, import features computed elsewhere (matched by id)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from mixsig.cache._keys import Provenance, file_sha256
from mixsig.cache._status import Status
from mixsig.errors import StoreError

log = logging.getLogger(__name__)


def export_h5(store, key: str, path) -> Path:
    """Write ``ids``, ``embedding``, ``done``, ``status`` of ``key`` to an HDF5 file; provenance goes in attrs."""
    import h5py

    path = Path(path)
    info = store.key_info(key)
    emb = store.read_array(key, "embedding").astype(info["dtype"])
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=np.asarray(store.samples.ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("embedding", data=emb)
        f.create_dataset("done", data=store.read_array(key, "done"))
        f.create_dataset("status", data=store.read_array(key, "status"))
        f.attrs["mixsig_key"] = key
        f.attrs["mixsig_provenance"] = json.dumps(info["provenance"], sort_keys=True)
        f.attrs["modality"] = info["modality"]
    return path


def import_h5(store, path, modality: str | None = None, name: str | None = None, ids_dataset: str = "ids",
              dataset: str = "embedding", dtype: str | None = None) -> tuple[str, dict]:
    """Import features from an HDF5 file into a new key, matching rows to the store's samples by id.

    A file written by :func:`export_h5` keeps its provenance (and so its key) unless ``name`` is given. Otherwise
    the provenance records ``modality``, ``name``, the file's sha256 and the dataset names. Store rows missing from
    the file are left not done (status ``missing_input``); ids in the file that the store lacks are reported.
    Returns ``(key, summary)``.
    """
    import h5py

    path = Path(path)
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
    if len(ids) != len(X):
        raise StoreError(f"{path}: {ids_dataset} has {len(ids)} entries but {dataset} has {len(X)} rows")
    if len(set(ids.tolist())) != len(ids):
        raise StoreError(f"{path}: dataset {ids_dataset!r} has duplicate ids")
    if saved is not None and name is None:
        prov = Provenance.from_dict(json.loads(saved))
        if modality and modality != prov.modality:
            raise StoreError(f"{path} holds {prov.modality} features; drop --modality or pass --name to re-label them")
    else:
        if not modality or not name:
            raise StoreError("importing features needs --modality (any name, e.g. face) and --name (what they are)")
        out_dtype = dtype or ("float16" if file_dtype == "float16" else "float32")
        prov = Provenance(modality=modality, encoder=name, revision="sha256:" + file_sha256(path), pooling="imported",
                          layers="given", dtype=out_dtype,
                          extra={"source_file": path.name, "ids_dataset": ids_dataset, "dataset": dataset})
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
