"""What every section's analysis reads: the selected rows, the seed-aggregated predictions, the options,
and the per-sample columns that earlier sections hand to later ones (:class:`Context`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixsig.analysis._data import AnalysisInput, split_names
from mixsig.errors import UsageError, did_you_mean

AGGREGATION_NOTE = (
    "Seeds are aggregated per sample by majority vote of their predicted classes (a tie is broken by the "
    "highest mean probability among the tied classes); confidences are the seed-mean probabilities, and the "
    "aggregated AUROC is computed from them. A deterministic head (the same fit whatever the seed) makes every "
    "seed identical: its seeds are then one model, not replicates."
)
#: Why the sections that compare unimodal models with the full model are skipped.
NO_UNIMODAL = "the run has no unimodal subset to compare with the full model"


@dataclass
class Aggregated:
    """Seed-aggregated predictions of one subset on the selected rows.

    mean_probs: ``[n, C]``; pred: ``[n]`` int64; seed_pred: ``[S, n]`` int64."""

    mean_probs: np.ndarray
    pred: np.ndarray
    seed_pred: np.ndarray


def argmax_last(x: np.ndarray) -> np.ndarray:
    """``x.argmax(axis=-1)`` (first maximum wins) in ``C`` vectorised passes: much faster than numpy's
    argmax along a short last axis."""
    best = x[..., 0].copy()
    idx = np.zeros(best.shape, dtype=np.int64)
    for k in range(1, x.shape[-1]):
        better = x[..., k] > best
        idx[better] = k
        np.maximum(best, x[..., k], out=best)
    return idx


def aggregate_seeds(probs: np.ndarray) -> Aggregated:
    """Majority vote of per-seed argmax predictions, ties broken by the mean probability.

    probs: ``[S, n, C]`` finite."""
    s, n, c = probs.shape
    seed_pred = argmax_last(probs)
    mean = probs.mean(axis=0)
    votes = np.zeros((n, c))
    for k in range(c):
        votes[:, k] = (seed_pred == k).sum(axis=0)
    # mean probabilities lie in [0, 1]; scaled by 0.5 they only decide between classes with equal votes
    pred = argmax_last(votes + 0.5 * mean)
    return Aggregated(mean_probs=mean, pred=pred, seed_pred=seed_pred)


@dataclass
class Context:
    """The analysed rows of one run and what the sections hand on (``n`` = the number of analysed rows).

    Set by :func:`make_context`: ``inp``, ``split``, ``rows`` (``[n]`` indices into ``inp``'s rows), ``exclusions``,
    ``y`` (``[n]`` labels), ``subsets`` (``{subset: [S, n, C]}``), ``agg`` (``{subset: Aggregated}``), ``full``,
    ``unimodal`` (the run's unimodal subsets, in modality order), ``votes`` (``[n, A]``), the options (``embed_media``: how many samples' media the sample browser embeds), ``notes`` and
    ``skipped`` (``{part: why}``), which sections append to.

    Per-sample columns (``[n]`` arrays), preset to their values for a run without unimodal subsets or votes:
    ``category``, ``n_disagree``, ``followed``, ``lone_follow`` (set by the disagreement section), ``entropy``,
    ``majority_share`` (uncertainty), ``p_true`` (``{subset: [n]}``, confidence) and ``descriptors``
    (``{name: [n]}``, the usable descriptors).
    """

    inp: AnalysisInput
    split: str | None
    rows: np.ndarray
    exclusions: dict
    y: np.ndarray
    subsets: dict[str, np.ndarray]
    agg: dict[str, Aggregated]
    full: str
    unimodal: list[str]
    votes: np.ndarray
    n_boot: int = 1000
    seed: int = 0
    top_k: int = 10
    media_descriptors: bool = True
    embed_media: int = 40
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    category: np.ndarray | None = None
    n_disagree: np.ndarray | None = None
    followed: np.ndarray | None = None
    lone_follow: np.ndarray | None = None
    entropy: np.ndarray | None = None
    majority_share: np.ndarray | None = None
    p_true: dict[str, np.ndarray] = field(default_factory=dict)
    descriptors: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.rows.size
        if self.category is None:
            self.category = np.full(n, "agreement", dtype=object)
            self.n_disagree = np.zeros(n, int)
            self.followed = np.full(n, "", dtype=object)
            self.lone_follow = np.full(n, "", dtype=object)
        if self.entropy is None:
            self.entropy = np.full(n, np.nan)
            self.majority_share = np.full(n, np.nan)

    @property
    def n_classes(self) -> int:
        return len(self.inp.classes)


def select_rows(inp: AnalysisInput, split) -> tuple[np.ndarray, dict]:
    """The labelled rows of ``split`` that every subset predicted, and what was left out (``exclusions``)."""
    names = split_names(split)
    if names is None:
        in_split = np.ones(len(inp.ids), dtype=bool)
    else:
        have = list(dict.fromkeys(inp.split.tolist()))
        unknown = [s for s in names if s not in have]
        if unknown:
            raise UsageError(f"split {unknown[0]!r} has no rows;{did_you_mean(unknown[0], have)} the store's "
                             f"splits are {have} "
                             "(use e.g. --split test, --split val+test or --split all)")
        in_split = np.isin(inp.split, names)
    labelled = inp.labels >= 0
    predicted = np.ones(len(inp.ids), dtype=bool)
    not_pred = {}
    for name, p in inp.probs.items():
        ok = np.isfinite(p).all(axis=(0, 2))
        not_pred[name] = int((in_split & labelled & ~ok).sum())
        predicted &= ok
    rows = np.flatnonzero(in_split & labelled & predicted)
    excl = {"in_split": int(in_split.sum()), "unlabelled": int((in_split & ~labelled).sum()),
            "not_predicted_by_subset": not_pred, "analysed": int(rows.size)}
    return rows, excl


def make_context(inp: AnalysisInput, split, *, n_boot: int, seed: int, top_k: int,
                 media_descriptors: bool, embed_media: int = 40) -> Context:
    """Select the rows of ``split`` and aggregate every subset's seeds on them; refuses (UsageError) a split
    without analysable rows or a run without its full subset."""
    rows, exclusions = select_rows(inp, split)
    if rows.size == 0:
        raise UsageError(f"split {split!r} has no labelled rows predicted by every subset of run "
                         f"{inp.run_name!r}; exclusions: {exclusions}")
    full = inp.full_subset
    if full not in inp.probs:
        raise UsageError(f"run {inp.run_name!r} has no full subset {full!r}; its subsets are {list(inp.probs)}")
    every_row = rows.size == len(inp.ids)
    subsets = {name: (p if every_row else p[:, rows, :]) for name, p in inp.probs.items()}
    return Context(
        inp=inp, split=split, rows=rows, exclusions=exclusions, y=inp.labels[rows], subsets=subsets,
        agg={name: aggregate_seeds(p) for name, p in subsets.items()}, full=full,
        unimodal=[m for m in inp.modalities if m in subsets and m != full], votes=inp.votes[rows],
        n_boot=n_boot, seed=seed, top_k=top_k, media_descriptors=media_descriptors, embed_media=embed_media,
        notes=list(inp.notes))
