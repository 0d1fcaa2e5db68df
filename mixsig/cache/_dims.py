"""Zarr v3 ``dimension_names`` of every array mixsig writes, and the store's ``.mixsig/`` state folder.

xarray opens a Zarr v3 group only when each array names its dimensions, and arrays of one group that share a
name must agree in its size. The names:

- ``samples/``: ``sample`` for every per-row column; ``votes`` [N, A] is (``sample``, ``annotator``) and
  ``votes@<c>`` [N, A_c] (``sample``, ``annotator@<c>``), the conditions' panels having their own sizes.
- ``features/<key>/``: ``embedding`` (``sample``, ``feature``) or (``sample``, ``layer``, ``feature``); ``done``,
  ``status``, ``message``, ``input_hash`` and added arrays (``fold``) ``sample``; the ``digests`` ledger
  (``chunk``, ``ledger_column``).
- ``runs/<run>/subsets/<sub>/``: ``probs`` (``seed``, ``sample``, ``class``); ``gates``/``attention`` (``seed``,
  ``sample``, ``modality``); an ``extra`` array ``<path>`` (``seed``, ``<leaf>_dim_1``, ...), its first axis
  ``<leaf>_dim_0`` instead when it is not one entry per seed.

Non-Zarr files (writer leases, locks, the default study journal) live in the store's ``.mixsig/`` folder, made a
Zarr *array* node of shape (0,) by its ``zarr.json`` (:func:`state_dir`): zarr lists the members of groups only,
never what is inside an array's folder, so ``zarr.open_group(store).members(max_depth=None)`` and xarray see one
empty array there and nothing else, and the store stays one folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: The store's folder of non-Zarr files (leases, locks, the study journal), a Zarr array node of shape (0,).
STATE_DIR = ".mixsig"

_STATE_META = {
    "shape": [0], "data_type": "uint8",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1]}},
    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    "fill_value": 0, "codecs": [{"name": "bytes"}],
    "attributes": {"mixsig_state": "mixsig's non-Zarr files (writer leases, locks, the study journal) live in "
                                   "this folder; this empty array only hides them from Zarr's listing"},
    "dimension_names": ["state"], "zarr_format": 3, "node_type": "array", "storage_transformers": [],
}


def state_dir(root, create: bool = True) -> Path:
    """The ``.mixsig/`` folder of the local store at ``root``. With ``create`` (the default) it is made, with the
    ``zarr.json`` that turns it into an empty Zarr array (so zarr and xarray do not warn about the files in it);
    a store written by an older mixsig gets it here. Read-only stores are left as they are."""
    d = Path(root) / STATE_DIR
    meta = d / "zarr.json"
    if create and not meta.exists():
        try:
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".zarr.json.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(_STATE_META, indent=2))
            os.replace(tmp, meta)
        except OSError:  # a read-only store: nothing to hide that this process would write
            pass
    return d


def samples_dims(name: str, ndim: int) -> tuple[str, ...]:
    """Dimension names of samples array ``name`` (``id``, ``votes``, ``votes@text``, ``column@planted``, ...)."""
    if name == "votes":
        return ("sample", "annotator")
    if name.startswith("votes@"):
        return ("sample", "annotator@" + name.split("@", 1)[1])
    return ("sample",) + tuple(f"{name}_dim_{i}" for i in range(1, ndim))


def embedding_dims(ndim: int) -> tuple[str, ...]:
    """``embedding`` [N, D] -> (sample, feature); [N, L, D] -> (sample, layer, feature)."""
    return ("sample", "feature") if ndim == 2 else ("sample", "layer", "feature")


#: Dimension names of a key's per-row arrays (and of any array added by ``add_key_array``) and of its ledger.
ROW_DIMS = ("sample",)
LEDGER_DIMS = ("chunk", "ledger_column")


def run_dims(path: str, shape: tuple[int, ...], n_seeds: int) -> tuple[str, ...]:
    """Dimension names of a run subset's array ``path`` (``probs``, ``gates``, ``attention`` or an extra path such
    as ``layer_weights/text``) of ``shape``; ``n_seeds``: the first axis of the subset's ``probs``."""
    if path == "probs":
        return ("seed", "sample", "class")
    if path in ("gates", "attention"):
        return ("seed", "sample", "modality")
    leaf = path.rsplit("/", 1)[-1]
    names = tuple(f"{leaf}_dim_{i}" for i in range(len(shape)))
    return (("seed",) + names[1:]) if shape and shape[0] == n_seeds else names
