"""What train_run's fit observers see (:class:`FitRecord`) and how their per-seed arrays are stacked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixsig.errors import HeadError


@dataclass
class FitRecord:
    """What a fit observer sees after each subset x seed fit (see :func:`_fit_subsets`'s ``observers``).

    ``head``: the fitted :class:`~mixsig.heads.Head`; ``subset``: its modalities; ``subset_name``: ``"text+audio"``;
    ``seed_index`` / ``seed`` / ``n_seeds``; ``X``: ``{modality: [len(data.used), D]}`` of the subset (every used
    row); ``data``: the run's :class:`_TrainData` (``used``, ``tr``, ``va``, ``y``, ``n``); ``probs``: the head's
    ``[len(data.used), C]`` predictions on ``X``."""

    head: object
    subset: tuple
    subset_name: str
    seed_index: int
    seed: int
    n_seeds: int
    X: dict
    data: object
    probs: np.ndarray


def stack_seeds(vals: dict[int, np.ndarray], n_seeds: int) -> np.ndarray:
    """``{seed_index: array}`` -> ``[S, *shape]`` float32, NaN where a seed gave nothing."""
    first = next(iter(vals.values()))
    out = np.full((n_seeds, *first.shape), np.nan, np.float32)
    for i, v in vals.items():
        if v.shape != first.shape:
            raise HeadError(f"fit observer returned shapes {first.shape} and {v.shape} for the same array")
        out[i] = v
    return out
