"""Heads over all layers of an encoder: inputs ``[n, L, D]`` (``mixsig extract --layers all``).

Every head takes a ``layer`` hyperparameter that says what it does with such a modality (a ``[n, D]`` modality
is used as it is whatever ``layer`` says):

* ``"weighted"`` (torch heads' default): a learned softmax weight per layer and modality, the weighted sum of
  the layers feeding the network (the SUPERB / s3prl weighted-layer sum); the weights start equal (all logits
  0) and train with the head. The fitted head's ``layer_weights_`` is ``{modality: [L] weights summing to 1}``.
* ``"mean"`` (LightGBM's and logreg's default): the fixed mean over the layers.
* an int ``K`` (0-based): layer ``K`` alone.

Memory: the ``[n, L, D]`` arrays are kept in their stored dtype (a float16 key stays float16). Torch heads
convert each mini-batch to float32 on the fly; LightGBM and logreg reduce to ``[n, D]`` float32 in blocks of rows
(:func:`reduce_layers`), never holding a float32 copy of the whole ``[n, L, D]`` array.
"""

from __future__ import annotations

import numpy as np

from mixsig.errors import HeadError

#: ``layer`` values: these names, or an int layer index.
WEIGHTED, MEAN = "weighted", "mean"
#: rows per block when reducing ``[n, L, D]`` arrays to ``[n, D]`` float32
BLOCK_ROWS = 1024


def check_layer(head: str, layer, weighted_ok: bool) -> None:
    """:class:`HeadError` unless ``layer`` is ``"mean"``, an int >= 0, or (torch heads) ``"weighted"``."""
    names = (WEIGHTED, MEAN) if weighted_ok else (MEAN,)
    if layer in names or (isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and layer >= 0):
        return
    raise HeadError(f"Invalid layer={layer!r} for head {head!r}: it takes "
                    + " or ".join(repr(n) for n in names) + " or a layer index >= 0 (0-based), for [n, L, D] inputs.")


def check_layer_index(layer, layers: tuple[int, ...], modalities) -> None:
    """A fixed ``layer`` index must exist in every ``[n, L, D]`` modality (``layers``: L per modality, 0 = pooled)."""
    if isinstance(layer, str):
        return
    for m, L in zip(modalities, layers):
        if L and not layer < L:
            raise HeadError(f"layer={layer} but X[{m!r}] has {L} layers (0..{L - 1}); pass layer=0..{L - 1} "
                            f"or layer='mean'.")


def reduce_layers(a: np.ndarray, layer) -> np.ndarray:
    """``[n, D]`` float32 of ``a``: ``a`` itself when it is ``[n, D]``; else layer ``layer`` or the mean over the
    layers (``"mean"``), computed ``BLOCK_ROWS`` rows at a time (float64 sums: the mean does not depend on the
    block size)."""
    if a.ndim == 2:
        return np.ascontiguousarray(a, dtype=np.float32)
    if not isinstance(layer, str):
        return np.ascontiguousarray(a[:, int(layer)], dtype=np.float32)
    out = np.empty((a.shape[0], a.shape[2]), np.float32)
    for s in range(0, a.shape[0], BLOCK_ROWS):
        out[s:s + BLOCK_ROWS] = a[s:s + BLOCK_ROWS].astype(np.float64).mean(axis=1)
    return out


def gather_rows(X: np.ndarray, pos: np.ndarray, stored_dtype=None) -> np.ndarray:
    """``X[pos]``; an ``[n, L, D]`` array of a key stored as float16 (``stored_dtype``) comes back as float16, gathered
    :data:`BLOCK_ROWS` rows at a time (no second float32 copy of the whole array; the values were float16 anyway)."""
    if X.ndim != 3 or stored_dtype != "float16" or X.dtype == np.float16:
        return X[pos]
    out = np.empty((len(pos),) + X.shape[1:], np.float16)
    for s in range(0, len(pos), BLOCK_ROWS):
        out[s:s + BLOCK_ROWS] = X[pos[s:s + BLOCK_ROWS]]
    return out


def layer_use(head, modalities) -> dict:
    """``{"layers": {modality: how its layers were used}}`` for a fitted head's ``[n, L, D]`` modalities (``{}`` when
    there are none; a fit's record in the run's ``fits`` attr): ``"weighted softmax over 13 layers"``,
    ``"mean of 13 layers"`` or ``"layer 6 of 13"``."""
    layer, out = getattr(head.config, "layer", MEAN), {}
    for m, L in zip(modalities, getattr(head, "layers_", ()) or ()):
        if L:
            out[m] = (f"weighted softmax over {L} layers" if layer == WEIGHTED else
                      f"mean of {L} layers" if layer == MEAN else f"layer {int(layer)} of {L}")
    return {"layers": out} if out else {}


__all__ = ["BLOCK_ROWS", "MEAN", "WEIGHTED", "check_layer", "check_layer_index", "gather_rows", "layer_use",
           "reduce_layers"]
