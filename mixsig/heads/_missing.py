"""Missing-modality evaluation (MultiBench's robustness, Liang et al. 2021): the fitted full model predicts with
modalities absent at test time.

How a modality is made absent (:func:`missing_method` says it in words, for the report):

* the ``gated`` head: by its own modality-dropout path — the absent modality's gated projection ``z_m`` is
  zeroed (:class:`mixsig.heads._nets.GatedFusionNet` ``forward(xs, absent=...)``), exactly what modality dropout
  does to a dropped modality in training;
* every other head: **train-mean imputation** — each feature of the absent modality replaced by its mean over
  the training rows the model was fitted on (the model sees an "average" input of that modality).

Missing sets (:func:`missing_sets`): every non-empty proper subset of the model's modalities (each modality, each
pair, ...; never all of them), named by the missing modalities joined by ``+`` in the model's modality order.

:func:`missing_modality_observer` is a default fit observer of :func:`mixsig.heads.train_run`: on the full subset
only (every modality of the run, two or more) it stores ``missing/<set>/probs`` ``[S, N, C]`` with the run (NaN
off the used rows) — one extra prediction per missing set and seed.
"""

from __future__ import annotations

import itertools

import numpy as np

from mixsig.errors import HeadError

#: How the gated head makes a modality absent, and how the other heads do (report wording).
GATED_METHOD = ("the gated head's own modality-dropout path: the absent modality's gated projection z_m is zeroed, "
                "as modality dropout zeroes a dropped modality in training")
IMPUTE_METHOD = ("train-mean imputation: every feature of the absent modality is replaced by its mean over the "
                 "training rows the model was fitted on")
#: The heads that make a modality absent by their own path (all others impute).
OWN_PATH_HEADS = ("gated",)
#: ``runs/<run>/subsets/<full>/missing/<set>/probs``: where the observer's predictions go.
MISSING_PREFIX = "missing"


def missing_sets(modalities) -> list[tuple[str, ...]]:
    """Every non-empty proper subset of ``modalities`` (smallest first, each in the given order): the sets of
    modalities made absent. ``["a", "b", "c"]`` -> a, b, c, a+b, a+c, b+c; one modality -> none."""
    mods = list(modalities)
    return [c for r in range(1, len(mods)) for c in itertools.combinations(mods, r)]


def missing_method(head_name: str) -> str:
    """How a head named ``head_name`` makes a modality absent: :data:`GATED_METHOD` or :data:`IMPUTE_METHOD`."""
    return GATED_METHOD if head_name in OWN_PATH_HEADS else IMPUTE_METHOD


def predict_missing(head, X: dict, missing, fill: dict | None = None) -> np.ndarray:
    """``head.predict_proba(X)`` (``[n, C]`` float32) with the modalities ``missing`` absent.

    A fitted ``gated`` head drops them by its modality-dropout path (their columns of ``X`` are not read); any
    other head predicts on ``X`` with each missing modality's rows replaced by ``fill[m]`` (one row: ``[D_m]``, or
    ``[L, D_m]`` for all-layer features; e.g. the train-row means: :func:`missing_modality_observer` passes those). ``missing`` must name some, not all, of the
    head's modalities."""
    head._check_fitted()
    mods = tuple(head.modalities_)
    missing = tuple(missing)
    unknown = [m for m in missing if m not in mods]
    if unknown or not missing or len(set(missing)) == len(mods):
        raise HeadError(f"missing={list(missing)}: name one or more, not all, of the head's modalities {list(mods)}"
                        + (f" ({unknown} not among them)" if unknown else "") + ".")
    if head.name in OWN_PATH_HEADS:
        return _gated_missing(head, X, missing)
    if fill is None or any(m not in fill for m in missing):
        raise HeadError(f"a {head.name!r} head imputes absent modalities: pass fill={{modality: [D] values}} for "
                        f"{list(missing)} (e.g. each modality's train-row mean).")
    X2 = dict(X)
    for m in missing:
        x = np.asarray(X[m])  # [n, D] or [n, L, D]: fill[m] is one row of it ([D] or [L, D])
        X2[m] = np.broadcast_to(np.asarray(fill[m]).astype(x.dtype, copy=False), x.shape)
    return head.predict_proba(X2)


def _gated_missing(head, X: dict, missing) -> np.ndarray:
    import torch

    from mixsig.heads._torch import _threads, predict_net
    from mixsig.training import seeded

    _, Xs = head._check_X(X, fitting=False, modalities=head.modalities_, dims=head.dims_)
    absent = tuple(i for i, m in enumerate(head.modalities_) if m in missing)
    with seeded(0, threads=_threads(head.config.num_threads)):
        probs, _ = predict_net(head.net_, [torch.from_numpy(x) for x in Xs], head.config.eval_batch_size,
                               absent=absent)
    return np.ascontiguousarray(probs, dtype=np.float32)


def missing_modality_observer(rec) -> dict | None:
    """train_run fit observer (:class:`mixsig.heads._runs.FitRecord`): on the full subset (every modality of the
    run, two or more), ``{"missing/<set>/probs": [N, C]}`` for every :func:`missing_sets` set — the fitted model's
    probabilities on every used row (NaN elsewhere) with that set absent; None for other subsets."""
    data = rec.data
    if len(rec.subset) < 2 or len(rec.subset) != len(data.X):
        return None
    from mixsig.heads._streaming import block_rows_for, blockwise, rows_mean

    blocks = block_rows_for(rec.X, getattr(rec.head.config, "eval_batch_size", 8192), getattr(data, "stream", 0) or 0)
    fill = None
    if rec.head.name not in OWN_PATH_HEADS:
        fill = {m: rows_mean(rec.X[m][data.tr], blocks) for m in rec.subset}
    out = {}
    for miss in missing_sets(rec.subset):
        p = np.full((data.n, rec.probs.shape[1]), np.nan, np.float32)
        # a streamed run's rows block by block (heads._streaming), else in one call
        p[data.used] = blockwise(lambda X, miss=miss: predict_missing(rec.head, X, miss, fill), rec.X, blocks)
        out[f"{MISSING_PREFIX}/{'+'.join(miss)}/probs"] = p
    return out
