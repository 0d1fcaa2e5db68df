"""Runs: a head's class probabilities for every modality subset and seed (``runs/<run>/``), and the
:class:`RunRecord` that describes one (its attrs).

A run's attrs are written from a :class:`RunRecord` only (``FeatureStore.write_run(record, subsets)``), and
changed only through ``FeatureStore.update_run(name, **fields)``: the record is the one typed description of
what a run's attrs hold.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixsig.cache._digest import attr_digests, check_tails, crc_codecs, record_digests
from mixsig.cache._run_extra import BASE_ARRAYS as _BASE_ARRAYS
from mixsig.cache._run_summary import (SPLIT_ORDER, describe_collapse, describe_in_sample,  # noqa: F401
                                       in_sample_keys, subset_metrics)
from mixsig.cache._run_extra import check_extra_path as _check_extra_path, extra_arrays as _extra_arrays
from mixsig.cache._dims import run_dims
from mixsig.errors import CorruptChunk, StoreError, UsageError

#: What a modality name may hold: it becomes part of keys and of store paths (``runs/<run>/heads/<subset>``).
MODALITY_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_run_name(name, option: str = "--name") -> str:
    """``name`` if it can name a run (a zarr group): a non-empty string without ``/``, not ``.`` or ``..``, not
    starting with ``__`` (zarr reserves those); else :class:`UsageError` naming ``option``."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or name.startswith("__"):
        raise UsageError(f"{option} {name!r}: a run's name is a non-empty string without '/', not '.' or '..' and "
                         f"not starting with '__' (zarr reserves those); give another, e.g. {option} my-run")
    return name


def check_modality_name(name, option: str = "--modality") -> str:
    """``name`` if it can name a modality (letters, digits, ``_``, ``-``: it becomes part of store paths); else
    :class:`UsageError` naming ``option``."""
    if not isinstance(name, str) or not MODALITY_NAME.fullmatch(name):
        raise UsageError(f"{option}: modality name {name!r} must be letters, digits, '_' or '-' only (it becomes "
                         f"part of the store's paths); give another, e.g. face")
    return name


@dataclass
class RunSubset:
    """Predictions of one modality subset.

    - ``probs`` [S, N, C] float32: S seeds, N = every row of the store, NaN rows = not predicted
    - ``gates`` / ``attention`` [S, N, M] float32 (M = the subset's modalities, in subset order) where the head has them
    - ``extra`` {path: array}: further per-subset arrays an analysis stored with the run (float32, first axis the
      seeds), written as ``runs/<run>/subsets/<subset>/<path>``; a path may hold ``/`` (``layer_weights/text``),
      each part a plain name (letters, digits, ``_``, ``-``, ``.``, ``@``, ``+``)
    """

    probs: np.ndarray
    gates: np.ndarray | None = None
    attention: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Run:
    """A run: ``attrs`` (head, params, features, modalities, seeds, classes, metrics, ...) and its subsets.

    Subset names are modalities joined by ``+`` in the run's modality order (``text+audio+video``).
    """

    name: str
    attrs: dict
    subsets: dict[str, RunSubset] = field(default_factory=dict)
    samples: Any = field(default=None, repr=False, compare=False)  # the store's Samples (set by read_run)

    def to_pandas(self, samples=None):
        """The run as a long ``pandas.DataFrame``, one row per predicted (subset, seed, sample): see
        :func:`mixsig.cache._frames.run_frame`. ``samples``: the store's (default: those it was read with)."""
        from mixsig.cache._frames import run_frame

        return run_frame(self, samples if samples is not None else self.samples)

    @property
    def modalities(self) -> list[str]:
        return list(self.attrs.get("modalities") or max(self.subsets, key=lambda s: s.count("+")).split("+"))

    @property
    def full_subset(self) -> str:
        """The subset holding every modality of the run."""
        return "+".join(self.modalities)

    @property
    def record(self) -> "RunRecord":
        """The attrs as a :class:`RunRecord` (StoreError for runs lacking the attrs every run records)."""
        return RunRecord.from_attrs(self.name, self.attrs)


def subset_name(modalities) -> str:
    return "+".join(modalities)


class Unset:
    """The type of :data:`UNSET`: a run attr that is not recorded (absent from the attrs, not ``null``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


#: A :class:`RunRecord` field left UNSET is not written; :meth:`RunRecord.from_attrs` leaves absent attrs UNSET.
#: It is falsy, so ``record.collapsed or []`` reads an unrecorded list as empty.
UNSET = Unset()

#: What ``source`` may be: a run of ``train_run``, of ``finetune``, a study's winner (``study:<name>``), or
#: predictions imported by ``mixsig runs import``, or another run's saved heads applied by ``mixsig predict``.
RUN_SOURCES = ("train", "finetune", "study:<name>", "import", "predict")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from mixsig import __version__

    return __version__


#: The libraries whose versions a run records (``versions``) and the report's Provenance section shows.
LIBRARIES = ("torch", "transformers", "lightgbm", "optuna", "zarr", "numpy", "scikit-learn")


def library_versions() -> dict:
    """``{library: installed version or None}`` of :data:`LIBRARIES` (read from the package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = None
    return out


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """The attrs of run ``name`` (``runs/<name>``), typed: the one way a run is described and written.

    Every source records the common fields; the others are recorded by the sources named beside them and left
    :data:`UNSET` (not written) by the rest. ``None`` is a value (written as ``null``), UNSET is absence: a
    train run's ``group_leak`` is None when no group crosses splits, a run without a ``collapsed`` attr was
    never checked (the report checks it itself). Sequences are tuples here and lists in the attrs.

    ``extra``: attrs no field names (written by other tools or later versions), kept so that
    ``from_attrs(...).to_attrs()`` gives the attrs back; a key of ``extra`` may not be a field's name.
    """

    name: str
    # --- every run
    head: str                        # head name; fine-tune: "finetune:<transformers auto class>"
    params: dict                     # the head's resolved hyperparameters (fine-tune: FinetuneConfig.to_dict())
    features: dict                   # {modality: key}, in the run's modality order
    modalities: tuple                # the run's modalities, in order (subset names join them with "+")
    seeds: tuple                     # one model per subset and seed, in this order (probs [S, N, C])
    classes: tuple                   # class names, index order of the probabilities
    split_hash: str                  # Samples.split_hash() of the store the run was trained on
    metrics: dict                    # {subset: {split: {metric: {"mean", "std", "per_seed"}}}} (mixsig.metrics)
    source: str                      # "train" | "finetune" | "study:<name>" (RUN_SOURCES)
    created: str | Unset = field(default_factory=_now)            # ISO time, UTC
    mixsig_version: str | Unset = field(default_factory=_version)
    versions: dict | Unset = field(default_factory=library_versions)  # {library: version} when it was trained
    group_leak: dict | None | Unset = UNSET   # train, finetune: the leak record allowed for the run, None = no leak
    selection_splits: list | Unset = UNSET    # train, finetune, study: splits whose rows chose its epochs, early
    #                                           stopping or trial ([] = none; UNSET: not recorded, unknown)
    in_sample_keys: dict | Unset = UNSET      # train, study: {key: in_sample_keys() entry} of fine-tuned keys whose
    #                                           train rows were embedded by a model trained on them ({} = none)
    # --- train_run (and the studies' winner runs it writes)
    soft_labels: bool | Unset = UNSET         # trained on the annotators' vote shares
    class_weight: Any = UNSET                 # the resolved class_weight param: None, "balanced" or {index: weight}
    rows: dict | Unset = UNSET                # {"total", "used", "excluded", "not_done", "train", "val",
    #                                           "train_without_votes"}: row counts
    fits: dict | Unset = UNSET                # {subset: [{"seed", "best_epoch", "best_iteration"}]}
    train_seconds: float | Unset = UNSET      # wall time of the fits
    collapsed: list | Unset = UNSET           # [{"subset", "seed", "split", "reason"}], [] = no model collapsed
    modality_mismatch: dict | Unset = UNSET   # {key: {"used_as", "holds"}} allowed for the run, {} = none
    # --- a study's winner (FeatureStore.update_run)
    study: dict | Unset = UNSET               # {"name", "trial", "settings_sha256", "val_mean", "val_std", ...}
    # --- finetune
    checkpoints: dict | Unset = UNSET         # {"all" | "fold<k>": checkpoint folder relative to the store's parent}
    checkpoint_sha256: dict | Unset = UNSET   # same keys: sha256 of the checkpoint folder
    val_accuracy: dict | Unset = UNSET        # same keys: best validation accuracy (None without validation rows)
    best_epoch: dict | Unset = UNSET          # same keys: the 1-based epoch whose weights were kept
    fold: list | Unset = UNSET                # [N] fold of each row (-1: predicted by the all-train model)
    encoder: str | Unset = UNSET              # the base encoder's short name
    base_revision: str | Unset = UNSET        # the base encoder's resolved revision
    trained_parameters: dict | Unset = UNSET  # {"unfreeze_last", "trained", "total", "modules"}
    # --- anything else
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name in ("modalities", "seeds", "classes"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise StoreError(f"run {self.name!r}: {name} must be a list; got {value!r}")
            object.__setattr__(self, name, tuple(value))
        check_run_name(self.name, "run name")
        if not (self.source in ("train", "finetune", "import", "predict")
                or (self.source.startswith("study:") and len(self.source) > 6)):
            raise StoreError(f"run {self.name!r}: source must be one of {list(RUN_SOURCES)}; got {self.source!r}")
        if list(self.features) != list(self.modalities):
            raise StoreError(f"run {self.name!r}: features {list(self.features)} must name the run's modalities "
                             f"{list(self.modalities)} in their order")
        clash = sorted(set(self.extra) & (set(self.attr_names()) | {"name", "extra", "complete"}))
        if clash:
            raise StoreError(f"run {self.name!r}: extra attrs {clash} have fields of their own; set the fields")

    @classmethod
    def attr_names(cls) -> tuple[str, ...]:
        """The attrs the fields write, in order (``name`` is the run's group name, ``extra`` spreads its keys)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("name", "extra"))

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """The fields every run records."""
        return tuple(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)

    def to_attrs(self) -> dict:
        """The run's attrs: every field that is not UNSET (tuples as lists), then ``extra``."""
        out = {}
        for name in self.attr_names():
            value = getattr(self, name)
            if value is UNSET:
                continue
            out[name] = list(value) if isinstance(value, tuple) else value
        out.update(self.extra)
        return out

    @classmethod
    def from_attrs(cls, name: str, attrs: dict) -> "RunRecord":
        """The record of run ``name`` from its attrs (``complete`` dropped; absent optional attrs UNSET; attrs no
        field names go to ``extra``). Raises :class:`StoreError` naming the attrs every run needs but these lack."""
        attrs = {k: v for k, v in dict(attrs).items() if k != "complete"}
        known = set(cls.attr_names())
        missing = [k for k in cls.required() if k != "name" and k not in attrs]
        if missing:
            raise StoreError(f"run {name!r} lacks the attrs {missing} every run records (written by hand or by an "
                             f"older mixsig); train it again with overwrite")
        fields = {k: v for k, v in attrs.items() if k in known}
        fields.setdefault("created", UNSET)
        fields.setdefault("mixsig_version", UNSET)
        fields.setdefault("versions", UNSET)
        return cls(name=name, **fields, extra={k: v for k, v in attrs.items() if k not in known})

    def replace(self, **fields) -> "RunRecord":
        """A copy with ``fields`` changed (attr names; UNSET removes one). Unknown names raise StoreError."""
        unknown = sorted(set(fields) - set(self.attr_names()))
        if unknown:
            raise StoreError(f"run {self.name!r}: {unknown} are not run attrs; the attrs are "
                             f"{list(self.attr_names())} (RunRecord fields)")
        return dataclasses.replace(self, **fields)


def write_run(runs_group, name: str, attrs: dict, subsets: dict[str, RunSubset], n_rows: int,
              overwrite: bool = False, root=None) -> None:
    """Write run ``name``: its subsets' arrays (zstd + crc32c, each chunk's digest in the array's attrs), then
    ``attrs`` (a :meth:`RunRecord.to_attrs`) and ``complete``. ``root``: the store's folder (local stores)."""
    if not subsets:
        raise StoreError(f"run {name!r} has no subsets to write")
    for sub, data in subsets.items():
        for path in getattr(data, "extra", None) or {}:
            _check_extra_path(name, sub, path)
    if name in set(runs_group.group_keys()):
        if not overwrite:
            raise StoreError(f"run {name!r} already exists; choose another --name or pass overwrite")
        del runs_group[name]
    g = runs_group.create_group(name)
    sg = g.create_group("subsets")
    for sub, data in subsets.items():
        probs = np.asarray(data.probs, np.float32)
        if probs.ndim != 3 or probs.shape[1] != n_rows:
            raise StoreError(f"run {name!r} subset {sub!r}: probs must be [S, {n_rows}, C], got {probs.shape}")
        h = sg.create_group(sub)
        extra = dict(getattr(data, "extra", None) or {})
        for arr_name, arr in (("probs", probs), ("gates", data.gates), ("attention", data.attention), *extra.items()):
            if arr is None:
                continue
            arr = np.asarray(arr, np.float32)
            parent = h
            *groups, leaf = arr_name.split("/")
            for part in groups:
                parent = parent[part] if part in set(parent.group_keys()) else parent.create_group(part)
            a = parent.create_array(leaf, shape=arr.shape, dtype="float32", chunks=tuple(max(d, 1) for d in arr.shape),
                                    fill_value=np.nan, compressors=crc_codecs(True),
                                    dimension_names=run_dims(arr_name, arr.shape, probs.shape[0]))
            a[...] = arr
            record_digests(a, root)
    g.attrs.update(dict(attrs, complete=True))  # attrs last: a run without `complete` was interrupted


def _complete_group(runs_group, name: str):
    if name not in set(runs_group.group_keys()):
        have = sorted(runs_group.group_keys())
        raise StoreError(f"no run named {name!r} in the store; runs: {have or 'none (run `mixsig train` first)'}")
    g = runs_group[name]
    if not g.attrs.get("complete"):
        raise StoreError(f"run {name!r} was interrupted while being written; train it again with overwrite")
    return g


def update_run(runs_group, name: str, fields: dict) -> RunRecord:
    """Change attrs ``fields`` (RunRecord field names; UNSET removes one) of complete run ``name``; the others
    are left as they are. The changed record is checked as a whole before anything is written. Returns it."""
    g = _complete_group(runs_group, name)
    record = RunRecord.from_attrs(name, dict(g.attrs)).replace(**fields)
    attrs = record.to_attrs()
    g.attrs.update({k: attrs[k] for k in fields if k in attrs})
    for k in fields:
        if k not in attrs and k in g.attrs:
            del g.attrs[k]
    return record


def _run_fix(name: str) -> str:
    return (f"a run cannot be recomputed by `mixsig extract`: train it again (`mixsig train STORE ... --name {name} "
            f"--overwrite`, or the study or finetune that wrote it)")


def _read_run_array(h, arr_name: str, run: str, sub: str, root) -> np.ndarray:
    a = h[arr_name]
    label = f"array runs/{run}/subsets/{sub}/{arr_name}"
    try:
        out = a[...]
        check_tails(a, root, attr_digests(a), label)
    except ValueError as exc:  # zarr's crc32c codec: "Stored and computed checksum do not match"
        raise CorruptChunk(f"{label} fails its CRC32C checksum ({exc}); {_run_fix(run)}") from exc
    except CorruptChunk as exc:
        raise CorruptChunk(f"{str(exc).split('; run ')[0]}; {_run_fix(run)}") from exc
    return out


def check_probs(run: str, sub: str, probs: np.ndarray, seeds=None) -> None:
    """Raise :class:`CorruptChunk` unless every written row of ``probs`` [S, N, C] is a distribution: finite, in
    [0, 1], summing to 1 (within 1e-3). Rows of all NaN are rows not predicted."""
    for s in range(probs.shape[0]):
        p = probs[s].reshape(probs.shape[1], -1)
        written = ~np.isnan(p).all(axis=1)
        with np.errstate(invalid="ignore"):
            bad = written & (~np.isfinite(p).all(axis=1) | (p < -1e-6).any(axis=1) | (p > 1 + 1e-6).any(axis=1)
                             | (np.abs(p.sum(axis=1) - 1) > 1e-3))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            seed = seeds[s] if seeds is not None and s < len(seeds) else f"#{s}"
            raise CorruptChunk(f"run {run!r} subset {sub!r} seed {seed}: {int(bad.sum())} rows of probabilities are "
                               f"not distributions (row {r}: {np.array2string(p[r], precision=4)}; finite values "
                               f"in [0, 1] summing to 1 expected); {_run_fix(run)}")


def read_run(runs_group, name: str, root=None) -> Run:
    """Run ``name``, every array checked (CRC, and on a local store ``root`` its digest) and every subset's
    probabilities range-checked (:func:`check_probs`)."""
    g = _complete_group(runs_group, name)
    attrs = dict(g.attrs)
    subsets = {}
    sg = g["subsets"]
    for sub in sg.group_keys():
        h = sg[sub]
        keys = set(h.array_keys())
        got = {k: _read_run_array(h, k, name, sub, root) for k in _BASE_ARRAYS if k in keys}
        check_probs(name, sub, got["probs"], attrs.get("seeds"))
        extra = {path: _read_run_array(h, path, name, sub, root) for path in _extra_arrays(h)}
        subsets[sub] = RunSubset(probs=got["probs"], gates=got.get("gates"), attention=got.get("attention"),
                                 extra=extra)
    order = attrs.get("modalities")
    if order:
        rank = {m: i for i, m in enumerate(order)}
        subsets = dict(sorted(subsets.items(), key=lambda kv: (kv[0].count("+"), [rank.get(m, 99) for m in kv[0].split("+")])))
    return Run(name=name, attrs=attrs, subsets=subsets)
