"""The analysis input: plain arrays for the rows of one split, built from a store or from arrays.

The analyses only see :class:`AnalysisInput`; :func:`input_from_store` is the one place that reads a
store (the samples table, the run, small imported feature keys used as descriptors).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixsig.errors import StoreError, UsageError
from mixsig.modalities import MODALITIES

log = logging.getLogger(__name__)

#: Imported feature keys of other modalities up to this width become descriptors.
DESCRIPTOR_MAX_WIDTH = 64


def _as_str(values, n: int | None = None) -> np.ndarray:
    """``[N]`` unicode array (no copy when it already is one); ``None`` -> ``n`` empty strings."""
    if values is None:
        return np.full(n, "", dtype="<U1")
    arr = np.asarray(values)
    return arr if arr.dtype.kind == "U" else arr.astype(str)


@dataclass
class AnalysisInput:
    """Everything the analyses need, for the rows of every split (selection happens in ``analyse``).

    Per-row arrays have length ``N`` (every row of the samples table):

    - ``ids``, ``split``, ``text``, ``audio``, ``video``: ``[N]`` str (media paths relative to ``media_root``)
    - ``labels``: ``[N]`` int64 class index, ``-1`` = unlabelled
    - ``start``, ``end``: ``[N]`` float64 seconds, NaN = none
    - ``probs``: ``{subset: [S, N, C] float}``; NaN rows = not predicted. Subset names are modalities
      joined by ``+`` in ``modalities`` order; the full subset holds every modality.
    - ``gates``, ``attention``: ``{subset: [S, N, M]}`` where the head has them
    - ``votes``: ``[N, A]`` int, ``-1`` = no vote (``A`` may be 0); ``votes_by_condition``: ``{c: [N, A_c]}``
    - ``extra``: ``{subset: {path: [S, ...] array}}``, the further arrays stored with the run (``RunSubset.extra``,
      e.g. the full subset's ``missing/<set>/probs`` ``[S, N, C]``); empty for runs without them
    - ``descriptors``: ``{name: [N] float}`` extra per-sample columns (imported features, ...)
    - ``store_checks``: what the store says about the run, for the report's warnings: ``group_leak`` (the store's
      ``group_leak`` attr, written by ``extract --allow-group-leak``, else the samples' own leak record, or None;
      ``group_leak_recorded_by_extract`` says which), ``modality_mismatch`` (``{key: {"used_as", "holds"}}`` for the
      run's features), ``key_provenance`` ({key: the key's provenance dict, None if gone}) and ``in_sample_keys``
      (:func:`mixsig.cache.in_sample_keys` of the run's keys); empty without a store
    """

    ids: np.ndarray
    split: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    probs: dict[str, np.ndarray]
    gates: dict[str, np.ndarray] = field(default_factory=dict)
    attention: dict[str, np.ndarray] = field(default_factory=dict)
    votes: np.ndarray | None = None
    votes_by_condition: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, dict] = field(default_factory=dict)
    text: np.ndarray | None = None
    audio: np.ndarray | None = None
    video: np.ndarray | None = None
    start: np.ndarray | None = None
    end: np.ndarray | None = None
    descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    seeds: tuple = ()
    media_root: Path | None = None
    run_name: str = "run"
    run_attrs: dict = field(default_factory=dict)
    source: str = ""
    notes: list[str] = field(default_factory=list)
    store_checks: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.ids)
        self.ids = _as_str(self.ids)
        self.split = _as_str(self.split)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.classes = tuple(str(c) for c in self.classes)
        self.modalities = tuple(self.modalities)
        self.probs = {k: np.asarray(v, dtype=np.float64) for k, v in self.probs.items()}
        for name, p in self.probs.items():
            if p.ndim != 3 or p.shape[1] != n or p.shape[2] != len(self.classes):
                raise UsageError(
                    f"subset {name!r}: probs must be [S, {n}, {len(self.classes)}] (seeds, rows, classes); "
                    f"got {list(p.shape)}")
        for attr in ("gates", "attention"):
            setattr(self, attr, {k: np.asarray(v, dtype=np.float64) for k, v in getattr(self, attr).items()
                                 if v is not None})
        self.votes = (np.zeros((n, 0), np.int64) if self.votes is None
                      else np.asarray(self.votes, dtype=np.int64).reshape(n, -1))
        self.votes_by_condition = {c: np.asarray(v, dtype=np.int64).reshape(n, -1)
                                   for c, v in self.votes_by_condition.items()}
        self.text = _as_str(self.text, n)
        self.audio = _as_str(self.audio, n)
        self.video = _as_str(self.video, n)
        self.start = np.full(n, np.nan) if self.start is None else np.asarray(self.start, dtype=np.float64)
        self.end = np.full(n, np.nan) if self.end is None else np.asarray(self.end, dtype=np.float64)
        self.descriptors = {k: np.asarray(v, dtype=np.float64) for k, v in self.descriptors.items()}
        if not self.seeds:
            s = next(iter(self.probs.values())).shape[0] if self.probs else 0
            self.seeds = tuple(range(s))
        self.media_root = Path(self.media_root) if self.media_root else None

    @property
    def full_subset(self) -> str:
        return "+".join(self.modalities)


def split_names(split: str | None) -> list[str] | None:
    """``"val+test"`` -> ``["val", "test"]``; ``None``/``"all"`` -> ``None`` (every row)."""
    if split is None or split == "all":
        return None
    return [s for s in split.split("+") if s]


def input_from_run(samples, run, *, media_root=None, descriptors=None, source="") -> AnalysisInput:
    """Build the input from a :class:`mixsig.cache.Samples` table and a :class:`mixsig.cache.Run`."""
    modalities = tuple(run.attrs.get("modalities") or run.modalities)
    classes = tuple(run.attrs.get("classes") or samples.classes)
    if tuple(samples.classes) != classes:
        raise StoreError(f"run {run.name!r} was trained on classes {list(classes)} but the samples table has "
                         f"{list(samples.classes)}; train the run again on this store")
    return AnalysisInput(
        ids=samples.ids, split=samples.split, labels=samples.label, classes=classes, modalities=modalities,
        probs={k: v.probs for k, v in run.subsets.items()},
        gates={k: v.gates for k, v in run.subsets.items() if v.gates is not None},
        attention={k: v.attention for k, v in run.subsets.items() if v.attention is not None},
        votes=samples.votes, votes_by_condition=dict(samples.votes_by_condition),
        extra={k: dict(v.extra) for k, v in run.subsets.items() if getattr(v, "extra", None)},
        text=samples.text, audio=samples.audio, video=samples.video, start=samples.start, end=samples.end,
        descriptors=dict(descriptors or {}), seeds=tuple(run.attrs.get("seeds") or ()),
        media_root=media_root, run_name=run.name, run_attrs=dict(run.attrs), source=source,
    )


def _store_descriptors(store) -> tuple[dict[str, np.ndarray], list[str]]:
    """Small feature keys whose modality is not text/audio/video (e.g. imported facial action units).

    Returns ``({"<key>[j]": [N] float}, notes)``; rows not done are NaN."""
    out: dict[str, np.ndarray] = {}
    notes: list[str] = []
    n = len(store.samples)
    for key in store.keys():
        try:
            info = store.key_info(key)
        except Exception as exc:  # a broken key must not stop the report
            notes.append(f"feature key {key!r} skipped as a descriptor source: {exc}")
            continue
        if info.get("modality") in MODALITIES:
            continue
        shape = tuple(info.get("shape") or ())
        if len(shape) != 2 or shape[1] > DESCRIPTOR_MAX_WIDTH:
            notes.append(f"feature key {key!r} ({info.get('modality')}) not used as descriptors: shape {list(shape)} "
                         f"is not [N, D] with D <= {DESCRIPTOR_MAX_WIDTH}")
            continue
        view = store.read(key, split=None, only_done=True)
        names = (info.get("provenance") or {}).get("extra", {}).get("columns")
        for j in range(shape[1]):
            col = np.full(n, np.nan)
            col[view.rows] = view.X[:, j]
            label = names[j] if isinstance(names, (list, tuple)) and len(names) == shape[1] else str(j)
            out[f"{key}[{label}]"] = col
    return out, notes


def manifest_folder(store) -> Path | None:
    """The folder of the manifest the store was built from (its ``manifest_path`` attribute, which is
    relative to the store folder unless absolute), or None when unknown or the store is not local."""
    manifest_path = (store.attrs or {}).get("manifest_path")
    if not manifest_path:
        return None
    path = Path(manifest_path)
    if not path.is_absolute():
        url = str(store.url)
        if "://" in url and not url.startswith("file://"):
            return None
        path = Path(url.removeprefix("file://")) / path
    return Path(os.path.normpath(path)).parent


def input_from_store(store_or_url, run: str, *, media_root=None, descriptors=None) -> AnalysisInput:
    """Open the store (a URL/path or an open :class:`mixsig.cache.FeatureStore`), read ``run`` and the
    samples table, and collect small non-media feature keys as descriptors. ``media_root`` defaults to
    the folder of the store's ``manifest_path`` attribute (see :func:`manifest_folder`)."""
    from mixsig.cache import open_store

    store = open_store(str(store_or_url), mode="r") if isinstance(store_or_url, (str, Path)) else store_or_url
    run_obj = store.read_run(run)
    check_split_hash(store, run_obj)
    extra, notes = _store_descriptors(store)
    extra.update(descriptors or {})
    if media_root is None:
        media_root = manifest_folder(store)
    inp = input_from_run(store.samples, run_obj, media_root=media_root, descriptors=extra, source=str(store.url))
    inp.notes.extend(notes)
    inp.store_checks = store_checks(store, run_obj)
    return inp


def check_split_hash(store, run) -> None:
    """Refuse (:class:`~mixsig.errors.RefusedInput`, exit 3) a run trained on another samples table than the store
    holds now (its recorded ``split_hash`` differs, e.g. after ``extract --update-samples`` changed labels or
    splits): its predictions would be scored against labels it was not trained for. Runs without one (written by
    other tools) are not checked."""
    from mixsig.errors import RefusedInput

    recorded = run.attrs.get("split_hash")
    now = store.split_hash()
    if recorded and recorded != now:
        updates = (store.attrs or {}).get("samples_updates") or []
        when = f" (the store's samples were updated {len(updates)} time(s) since, last at {updates[-1].get('at')})" \
            if updates and isinstance(updates[-1], dict) else ""
        raise RefusedInput(f"run {run.name!r} was trained on another samples table than store {store.url} holds now "
                           f"(split_hash {recorded[:12]} recorded, {now[:12]} now{when}): labels or splits changed, "
                           f"so its predictions would be scored against labels it was not trained for. Train it "
                           f"again (`mixsig train ... --name {run.name} --overwrite`) or report from a copy of the "
                           f"store made before the change")


def store_checks(store, run) -> dict:
    """``{"group_leak", "modality_mismatch"}`` of :class:`AnalysisInput`: the store's recorded (or present) group
    leak, and the run's feature keys that hold another modality than the one they were used as."""
    recorded = (store.attrs or {}).get("group_leak")
    leak = recorded or store.group_leak()
    features = run.attrs.get("features")
    mismatch = {}
    if isinstance(features, dict) and features:
        try:
            mismatch = store.check_modalities({m: k for m, k in features.items() if isinstance(k, str)}, allow=True)
        except Exception as exc:  # a broken key must not stop the report
            log.warning("could not check the modalities of run %s's keys: %s", run.name, exc)
    keys = [k for k in features.values() if isinstance(k, str)] if isinstance(features, dict) else []
    return {"group_leak": leak or None, "group_leak_recorded_by_extract": bool(recorded),
            "modality_mismatch": mismatch, **_key_checks(store, run.name, keys)}


def _key_checks(store, run: str, keys: list[str]) -> dict:
    """``{"key_provenance": {key: provenance or None}, "in_sample_keys": {key: entry}, "split_hash"}`` of the run's
    keys (a key removed since is None) and the store, for the report's Provenance section and in-sample warning."""
    from mixsig.cache import in_sample_keys

    have = set(store.keys())
    prov = {}
    for key in keys:
        try:
            prov[key] = store.provenance(key) if key in have else None
        except Exception as exc:  # a broken key must not stop the report
            log.warning("could not read the provenance of run %s's key %s: %s", run, key, exc)
            prov[key] = None
    try:
        in_sample = in_sample_keys(store, [k for k, p in prov.items() if p is not None])
    except Exception as exc:  # a broken key must not stop the report
        log.warning("could not check whether run %s's keys were embedded in-sample: %s", run, exc)
        in_sample = {}
    return {"key_provenance": prov, "in_sample_keys": in_sample, "split_hash": store.split_hash()}
