"""The store as pandas and xarray objects: :class:`FeatureView` (a key's rows, ``to_pandas``/``to_xarray``),
:meth:`Samples.to_pandas <mixsig.cache.Samples.to_pandas>` and :meth:`Run.to_pandas <mixsig.cache.Run.to_pandas>`.

pandas and xarray are optional (``pip install pandas xarray``, or the ``frames`` extra): they are imported when a
method is called, and a missing one is a :class:`~mixsig.errors.UsageError` naming the install command.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixsig.errors import StoreError, UsageError


def _need(module: str):
    """``import module`` (pandas, xarray), or a one-line UsageError naming the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{module} is not installed, and this method returns a {module} object; install it with "
                         f"`pip install {module}` (or `pip install mixsig[frames]`)") from None


def _class_names(pd, labels: np.ndarray, classes) -> Any:
    """Class indices [n] (-1 = unlabelled) as a pandas Categorical of the class names (NaN = unlabelled)."""
    return pd.Categorical.from_codes(np.asarray(labels, np.int64), categories=list(classes))


@dataclass
class FeatureView:
    """Rows of one key: ``rows`` [n] int64 into the samples table, ``ids`` [n] str, ``X`` [n, D] or [n, L, D]
    float32, and ``excluded``: rows of the requested split left out because they are not done. ``samples``: the
    store's samples table (set by :meth:`FeatureStore.read <mixsig.cache.FeatureStore.read>`), for the split and
    label of each row in :meth:`to_pandas` and :meth:`to_xarray`."""

    key: str
    modality: str
    rows: np.ndarray
    ids: np.ndarray
    X: np.ndarray
    excluded: int
    samples: Any = field(default=None, repr=False, compare=False)

    def _meta(self) -> tuple[np.ndarray, np.ndarray, tuple]:
        if self.samples is None:
            raise StoreError(f"this view of key {self.key} has no samples table; get it from store.read(key)")
        s = self.samples
        return s.split[self.rows], s.label[self.rows], s.classes

    def to_pandas(self):
        """A ``pandas.DataFrame`` of the rows [n, D]: columns ``0..D-1`` (the features, so ``df.to_numpy()`` is
        ``X``), index a MultiIndex (``id``, ``split``, ``label`` as the class name, NaN when unlabelled). A key of
        [N, L, D] rows has no flat table: use :meth:`to_xarray`."""
        pd = _need("pandas")
        if self.X.ndim != 2:
            raise UsageError(f"key {self.key} holds [N, L, D] rows ({self.X.shape[1]} layers), which do not fit one "
                             "table; use store.read(key).to_xarray() (dims sample, layer, feature)")
        split, label, classes = self._meta()
        index = pd.MultiIndex.from_arrays([self.ids, split, _class_names(pd, label, classes)],
                                          names=["id", "split", "label"])
        return pd.DataFrame(self.X, index=index, columns=pd.RangeIndex(self.X.shape[1], name="feature"))

    def to_xarray(self):
        """An ``xarray.DataArray`` named by the key: dims (``sample``, ``feature``) or (``sample``, ``layer``,
        ``feature``), coordinates ``id``, ``split``, ``label`` (class name, "" when unlabelled) and ``row`` (the
        store row) along ``sample``; attrs ``key`` and ``modality``."""
        xr = _need("xarray")
        split, label, classes = self._meta()
        names = np.asarray([classes[i] if i >= 0 else "" for i in label.tolist()], dtype=str)
        dims = ("sample", "feature") if self.X.ndim == 2 else ("sample", "layer", "feature")
        coords = {"id": ("sample", self.ids), "split": ("sample", split), "label": ("sample", names),
                  "row": ("sample", np.asarray(self.rows, np.int64))}
        return xr.DataArray(self.X, dims=dims, coords=coords, name=self.key,
                            attrs={"key": self.key, "modality": self.modality})


def samples_frame(samples):
    """The samples table as a ``pandas.DataFrame``, one row per store row (index = the store row): ``id``,
    ``split``, ``label`` (class name; NaN when unlabelled), ``group``, ``text``/``audio``/``video`` where any row
    has one, ``start``, ``end`` (seconds, NaN = none), then the manifest's other columns by name with the dtype
    they are stored with (numbers stay numbers)."""
    pd = _need("pandas")
    data: dict[str, Any] = {"id": samples.ids, "split": samples.split,
                            "label": _class_names(pd, samples.label, samples.classes), "group": samples.group}
    for m in ("text", "audio", "video"):
        v = getattr(samples, m)
        if (v != "").any():
            data[m] = v
    data["start"], data["end"] = samples.start, samples.end
    for c, v in samples.columns.items():
        data.setdefault(c, v)
    return pd.DataFrame(data)


def run_frame(run, samples):
    """Run ``run`` as a long ``pandas.DataFrame``: one row per (subset, seed, predicted sample), rows not
    predicted (NaN) left out, in subset, seed and store-row order. Columns: ``id``, ``split``, ``label`` (class
    name, NaN when unlabelled), ``subset``, ``seed`` (the run's seed, else its index), ``p_<class>`` for each class
    and ``pred`` (the class of highest probability)."""
    pd = _need("pandas")
    if samples is None:
        raise StoreError(f"run {run.name!r} has no samples table to name its rows; read it with "
                         "store.read_run(name), or pass run.to_pandas(store.samples)")
    classes = list(run.attrs.get("classes") or samples.classes)
    parts = []
    for sub, data in run.subsets.items():
        probs = np.asarray(data.probs, np.float32)
        seeds = list(run.attrs.get("seeds") or range(probs.shape[0]))
        for s in range(probs.shape[0]):
            p = probs[s]
            rows = np.flatnonzero(~np.isnan(p).all(axis=1))
            frame = {"id": samples.ids[rows], "split": samples.split[rows],
                     "label": _class_names(pd, samples.label[rows], samples.classes),
                     "subset": np.full(len(rows), sub, dtype=object),
                     "seed": np.full(len(rows), seeds[s] if s < len(seeds) else s, dtype=np.int64)}
            for c, name in enumerate(classes):
                frame[f"p_{name}"] = p[rows, c]
            frame["pred"] = _class_names(pd, np.nanargmax(p[rows], axis=1) if len(rows) else rows, classes)
            parts.append(pd.DataFrame(frame))
    if not parts:
        return pd.DataFrame(columns=["id", "split", "label", "subset", "seed", *(f"p_{c}" for c in classes), "pred"])
    return pd.concat(parts, ignore_index=True)
