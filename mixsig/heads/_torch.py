"""Torch heads — ``gated`` (the paper's fusion head), ``concat`` and ``late`` — trained by the one loop of
:mod:`mixsig.training`.

The heads keep every training tensor in memory and slice shuffled mini-batches with
``index_select`` (no DataLoader, no per-epoch disk reads); Adam + one-cycle schedule; after each
epoch the loop scores validation accuracy and keeps the weights of the best epoch (first best on ties),
as the reference recipe does. Without a validation set it keeps the last epoch.

Two ways to say how long to train (:func:`resolve_schedule`): ``epochs`` x ``batch_size`` (the paper's
recipe, the default), or a budget of optimizer ``steps`` — what studies search, so that a train split of a
few hundred rows gets as many updates as one of a hundred thousand. With ``steps`` the validation accuracy
is scored (and the best weights kept) at every tenth of the budget, and the callback sees the tenth's index
(0..9), so trials of any size and epoch count compare at the same share of their budget.

Determinism: training and prediction run inside :func:`mixsig.training.seeded` — the global RNG forked
and seeded with ``seed`` (the caller's RNG is untouched; initialisation, dropout and the shuffling draw
from it), ``torch.use_deterministic_algorithms(True)`` and a fixed thread count (``num_threads``,
default 1), all restored afterwards. The same seed, inputs and thread count give identical probabilities.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixsig.errors import HeadError
from mixsig.heads._base import Head
from mixsig.heads._dynamics import Recorder
from mixsig.heads._files import check_model_file
from mixsig.heads._layers import check_layer, check_layer_index
from mixsig.heads._registry import register_head
from mixsig.training import batch_starts, seeded

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"

#: With a ``steps`` budget, validation is scored at this many evenly spaced points (tenths of the budget).
EVAL_POINTS = 10
#: ``batch_size="auto"``: the batch size that sees about this many epochs of data in ``steps`` updates ...
AUTO_EPOCHS = 8
#: ... rounded to a power of two within these bounds (and never above the number of training rows).
AUTO_BATCH_MIN, AUTO_BATCH_MAX = 16, 1024


@dataclass(frozen=True)
class Schedule:
    """A resolved training schedule: ``batch_size`` rows per step, ``steps_per_epoch`` steps per pass over the
    training rows, ``epochs`` passes (the last one may stop early), ``steps`` optimizer steps in all, and
    ``eval_at``: the 1-based step counts after which validation is scored (the end of every epoch without a
    ``steps`` budget, every tenth of the budget with one)."""

    batch_size: int
    steps_per_epoch: int
    epochs: int
    steps: int
    eval_at: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "steps": self.steps}


def auto_batch_size(n_train: int, steps: int) -> int:
    """The power of two nearest ``n_train * AUTO_EPOCHS / steps`` (nearest in log scale), clipped to
    ``[AUTO_BATCH_MIN, AUTO_BATCH_MAX]`` and to ``n_train``."""
    want = max(n_train * AUTO_EPOCHS / max(steps, 1), 1.0)
    bs = 2 ** int(round(math.log2(want)))
    return int(max(1, min(n_train, min(AUTO_BATCH_MAX, max(AUTO_BATCH_MIN, bs)))))


def resolve_schedule(n_train: int, steps: int | None, batch_size: int | str, epochs: int = 15) -> Schedule:
    """How a torch head trains on ``n_train`` rows.

    * ``steps=None``: ``epochs`` passes with ``batch_size`` rows per step (0 = full batch); validation after
      every epoch. This is what explicit ``epochs``/``batch_size`` configs (``mixsig train --params``) get.
    * ``steps=S``: exactly ``S`` optimizer steps (the last epoch stops when the budget is spent; a callback
      may stop training earlier). ``batch_size="auto"`` picks :func:`auto_batch_size` (about ``AUTO_EPOCHS``
      epochs' worth of rows over the budget), an int fixes it (0 = full batch); ``epochs`` becomes
      ``ceil(S / steps_per_epoch)`` (about ``ceil(S * batch / n_train)``), the given ``epochs`` is ignored.
      Validation after every tenth of the budget (:data:`EVAL_POINTS` points).

    >>> resolve_schedule(334, 400, "auto").to_dict()       # a few hundred rows: small batches, many epochs
    {'batch_size': 16, 'steps_per_epoch': 21, 'epochs': 20, 'steps': 400}
    >>> resolve_schedule(200_000, 400, "auto").to_dict()   # many rows: large batches, part of few epochs
    {'batch_size': 1024, 'steps_per_epoch': 196, 'epochs': 3, 'steps': 400}
    """
    n = int(n_train)
    if n < 1:
        raise HeadError(f"cannot schedule training on {n} rows")
    if batch_size == "auto":
        if steps is None:
            raise HeadError("batch_size='auto' needs a steps budget (steps=N optimizer steps); or give an int batch_size")
        bs = auto_batch_size(n, steps)
    elif isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
        raise HeadError(f"batch_size must be an int >= 0 (0 = full batch) or 'auto'; got {batch_size!r}")
    else:
        bs = n if batch_size == 0 else min(int(batch_size), n)
    per_epoch = len(batch_starts(n, bs))
    if steps is None:
        total = int(epochs) * per_epoch
        return Schedule(bs, per_epoch, int(epochs), total, tuple(per_epoch * (e + 1) for e in range(int(epochs))))
    total = int(steps)
    if total < 1:
        raise HeadError(f"steps must be >= 1; got {steps!r}")
    n_epochs = -(-total // per_epoch)
    points = min(EVAL_POINTS, total)
    eval_at = tuple(sorted({-(-total * (k + 1) // points) for k in range(points)}))
    return Schedule(bs, per_epoch, n_epochs, total, eval_at)


@dataclass(frozen=True)
class TorchConfig:
    """Hyperparameters shared by the torch heads (defaults = the paper's recipe).

    ``batch_size=0`` trains full-batch. ``steps`` (optional) is a budget of optimizer steps that replaces
    ``epochs``, and ``batch_size="auto"`` (only with ``steps``) sizes the batch from the training rows:
    see :func:`resolve_schedule`. With ``max_lr`` set, OneCycleLR drives the learning rate per
    batch (from ``max_lr / 25`` up to ``max_lr`` and down), overriding ``lr`` — what PyTorch does with
    the paper's recipe (Adam lr 1e-4 + one-cycle to 1e-3); ``max_lr=None`` keeps ``lr`` constant.
    ``num_threads`` (default 1, capped at the cores this process may use): batch-64 steps gain little
    from more threads, and parallel runs or study workers oversubscribe the cores (benchmarks/README.md).
    A fixed count also keeps results reproducible.
    A last mini-batch of a single row is skipped that epoch (BatchNorm cannot train on one row).
    ``layer``: what an ``[n, L, D]`` modality feeds the network (:mod:`mixsig.heads._layers`): ``"weighted"`` (a
    learned softmax over its layers, the default), ``"mean"`` or a layer index.
    """

    epochs: int = 15
    batch_size: int | str = 64
    steps: int | None = None
    lr: float = 1e-4
    weight_decay: float = 1e-3
    max_lr: float | None = 1e-3
    hidden: int = 512
    n_layers: int = 3
    dropout: float = 0.3
    class_weight: Any = None
    num_threads: int | None = None
    eval_batch_size: int = 8192
    layer: Any = "weighted"


@dataclass(frozen=True)
class GatedConfig(TorchConfig):
    """:class:`TorchConfig` plus the gated head's projection width, attention width and modality dropout."""

    proj_dim: int = 256
    att_dim: int = 128
    modality_dropout: float = 0.2


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _threads(num_threads: int | None) -> int:
    """The torch threads a head trains and predicts with: ``num_threads`` (default 1), at most the cores."""
    return min(available_cores(), num_threads or 1)


def predict_net(net, xs, eval_batch_size: int, absent=()):
    """Eval-mode forward in chunks: ``(probs [n, C] float32 ndarray, {extra: [n, M] ndarray})``; ``absent``: positions
    of the modalities the (gated) net treats as absent (:class:`~mixsig.heads._nets.GatedFusionNet`)."""
    import torch

    net.eval()
    n = xs[0].shape[0]
    probs, extras = [], {}
    step = max(1, eval_batch_size)
    with torch.inference_mode():
        for s in range(0, n, step):
            chunk = [x[s:s + step] for x in xs]
            branches, ex = net(chunk, absent=absent) if absent else net(chunk)
            p = torch.stack([torch.softmax(b, dim=1) for b in branches]).mean(dim=0)
            probs.append(p)
            for k, v in ex.items():
                extras.setdefault(k, []).append(v)
    return (torch.cat(probs).numpy().astype(np.float32, copy=False),
            {k: torch.cat(v).numpy().astype(np.float32, copy=False) for k, v in extras.items()})


class TorchHead(Head):
    """Shared fit/predict/save/load of the torch heads; subclasses say which network to build."""

    Config = TorchConfig

    def _net_kwargs(self) -> dict:
        c = self.config
        return {"hidden": c.hidden, "n_layers": c.n_layers, "dropout": c.dropout}

    def _make_net(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _build_net(self):
        """The subclass's network, behind :class:`~mixsig.heads._nets.LayerInputs` when a modality is
        ``[n, L, D]`` (a network on pooled inputs only is the subclass's network itself, as saved before)."""
        net = self._make_net()
        layers = getattr(self, "layers_", None) or ()
        if any(layers):
            from mixsig.heads._nets import LayerInputs

            net = LayerInputs(net, layers, self.config.layer)
        return net

    def _begin_fit(self, inputs) -> None:
        super()._begin_fit(inputs)
        check_layer_index(self.config.layer, self.layers_, self.modalities_)
        self._gold = inputs.y  # the training rows' gold labels, for the training dynamics (dropped after the fit)

    @property
    def layer_weights_(self) -> dict[str, np.ndarray]:
        """``{modality: [L] float32 softmax weights}`` of the ``[n, L, D]`` modalities with ``layer="weighted"``
        (``{}`` for none)."""
        self._check_fitted()
        lw = getattr(self.net_, "layer_weights", None)
        return {} if lw is None else {self.modalities_[i]: w.numpy().astype(np.float32) for i, w in lw().items()}

    def _check_config(self) -> None:
        super()._check_config()
        c = self.config
        checks = {
            "epochs": c.epochs >= 1, "steps": c.steps is None or (_is_int(c.steps) and c.steps >= 1),
            "batch_size": (c.batch_size == "auto" and c.steps is not None)
                          or (_is_int(c.batch_size) and c.batch_size >= 0), "lr": c.lr > 0,
            "weight_decay": c.weight_decay >= 0, "max_lr": c.max_lr is None or c.max_lr > 0,
            "hidden": c.hidden >= 1, "n_layers": c.n_layers >= 0, "dropout": 0 <= c.dropout < 1,
            "num_threads": c.num_threads is None or c.num_threads >= 1, "eval_batch_size": c.eval_batch_size >= 1,
        }
        check_layer(self.name, c.layer, weighted_ok=True)
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            hint = (" batch_size takes an int >= 0 (0 = full batch), or 'auto' together with steps=N."
                    if "batch_size" in bad or "steps" in bad else "")
            raise HeadError(f"Invalid value(s) for head {self.name!r}: "
                            + ", ".join(f"{k}={getattr(c, k)!r}" for k in bad) + "." + hint)

    def _fit(self, Xs, T, Xs_val, y_val, *, seed, callback) -> None:
        import torch

        from mixsig.heads._nets import train_loop

        c = self.config
        sch = resolve_schedule(Xs[0].shape[0], c.steps, c.batch_size, c.epochs)
        recorder = Recorder(sch.epochs, self._gold)
        del self._gold
        with seeded(seed, threads=_threads(self.config.num_threads)):
            net = self._build_net()
            # numpy arrays, or the views of a streamed fit (heads._streaming: rows read window by window)
            tensor = lambda x: torch.from_numpy(x) if isinstance(x, np.ndarray) else x  # noqa: E731
            xs = [tensor(x) for x in Xs]
            xs_val = None if Xs_val is None else [tensor(x) for x in Xs_val]
            cfg = self.config  # streamed validation rows: scored in slices of at most a window
            if xs_val is not None and getattr(xs_val[0], "chunk_rows", None):
                cfg = dataclasses.replace(cfg, eval_batch_size=min(cfg.eval_batch_size, xs_val[0].chunk_rows))
            history, _, best_step = train_loop(net, xs, torch.from_numpy(T.astype(np.float32)), xs_val,
                                               y_val, cfg, callback, recorder,
                                               order=getattr(xs[0], "permutation", None))
        net.eval()
        self.dynamics_ = recorder.result()
        self.net_ = net
        self.history_ = history
        self.schedule_ = sch.to_dict()
        # the epoch (0-based) the kept weights come from, also with a steps budget; best_step_: its optimizer step
        self.best_epoch_ = None if best_step is None else (best_step - 1) // sch.steps_per_epoch
        self.best_step_ = best_step

    def _predict(self, Xs):
        import torch

        with seeded(0, threads=_threads(self.config.num_threads)):
            return predict_net(self.net_, [torch.from_numpy(x) for x in Xs], self.config.eval_batch_size)

    def _predict_proba(self, Xs):
        return self._predict(Xs)[0]

    def n_parameters(self, dims: list[int] | None = None, n_classes: int = 2) -> int:
        """Trainable parameters of the fitted network, or of a fresh network for ``dims`` (one width
        per modality) and ``n_classes`` built with this head's hyperparameters."""
        if dims is None:
            self._check_fitted()
            net = self.net_
        else:
            probe = type(self)(**self.get_params())
            probe.dims_, probe.n_classes_ = tuple(int(d) for d in dims), int(n_classes)
            probe.modalities_ = tuple(f"m{i}" for i in range(len(dims)))
            net = probe._build_net()
        return int(sum(p.numel() for p in net.parameters() if p.requires_grad))

    def _save_state(self, path: Path) -> dict:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        tmp = path / (MODEL_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"head": self.name})
        tmp.replace(path / MODEL_FILE)
        return {"file": MODEL_FILE, "best_epoch": self.best_epoch_, "history": self.history_,
                "layers": list(self.layers_),
                "best_step": getattr(self, "best_step_", None), "schedule": getattr(self, "schedule_", None)}

    def _load_state(self, path: Path, state: dict) -> None:
        from safetensors.torch import load_file

        f = check_model_file(path / state.get("file", MODEL_FILE), "safetensors")
        self.layers_ = tuple(int(L) for L in state.get("layers") or (0,) * len(self.dims_))
        net = self._build_net()
        try:
            net.load_state_dict(load_file(str(f)), strict=True)
        except RuntimeError as exc:
            raise HeadError(f"{f} does not match a {self.name!r} head with {head_desc(self)}: {exc}") from None
        net.eval()
        self.net_ = net
        self.history_ = list(state.get("history", []))
        self.best_epoch_ = state.get("best_epoch")
        self.best_step_ = state.get("best_step")
        self.schedule_ = state.get("schedule")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def head_desc(head) -> str:
    return f"modalities {list(head.modalities_)}, dims {list(head.dims_)}, {head.n_classes_} classes"


@register_head("gated")
class GatedFusionHead(TorchHead):
    """The paper's gated-attention fusion head (see :class:`mixsig.heads._nets.GatedFusionNet`).

    Accepts any number of modalities (one included) with different widths. ``modality_weights``
    gives the per-sample gates ``[n, M]`` (sigmoid, each in (0, 1)) and attention ``[n, M]``
    (rows sum to 1), columns in ``modalities_`` order.

    >>> import numpy as np
    >>> from mixsig.heads import get_head
    >>> rng = np.random.default_rng(0)
    >>> X = {"text": rng.normal(size=(64, 8)).astype("float32"), "audio": rng.normal(size=(64, 4)).astype("float32")}
    >>> y = (X["text"][:, 0] > 0).astype("int64")
    >>> head = get_head("gated", epochs=2).fit(X, y, X_val=X, y_val=y, seed=0)
    >>> head.predict_proba(X).shape, head.modality_weights(X)["attention"].shape
    ((64, 2), (64, 2))
    """

    Config = GatedConfig

    def _check_config(self) -> None:
        super()._check_config()
        c = self.config
        if not (0 <= c.modality_dropout < 1 and c.proj_dim >= 1 and c.att_dim >= 1):
            raise HeadError(f"Invalid gated head parameters: proj_dim={c.proj_dim}, att_dim={c.att_dim}, "
                            f"modality_dropout={c.modality_dropout} (need >= 1, >= 1, in [0, 1)).")

    def _make_net(self):
        from mixsig.heads._nets import GatedFusionNet

        c = self.config
        return GatedFusionNet(self.dims_, self.n_classes_, proj_dim=c.proj_dim, att_dim=c.att_dim,
                              modality_dropout=c.modality_dropout, **self._net_kwargs())

    def modality_weights(self, X):
        self._check_fitted()
        _, Xs = self._check_X(X, fitting=False, modalities=self.modalities_, dims=self.dims_)
        return self._predict(Xs)[1]


@register_head("concat")
class ConcatHead(TorchHead):
    """Early fusion: the 3×512 MLP (BatchNorm, ReLU, dropout) on the concatenated modalities."""

    def _make_net(self):
        from mixsig.heads._nets import ConcatNet

        return ConcatNet(self.dims_, self.n_classes_, **self._net_kwargs())


@register_head("late")
class LateFusionHead(TorchHead):
    """Late fusion: one MLP per modality, each on its own loss; probabilities are their mean.
    The best epoch is chosen on the averaged prediction's validation accuracy."""

    def _make_net(self):
        from mixsig.heads._nets import LateNet

        return LateNet(self.dims_, self.n_classes_, **self._net_kwargs())


__all__ = ["ConcatHead", "GatedConfig", "GatedFusionHead", "LateFusionHead", "Schedule", "TorchConfig", "TorchHead",
           "auto_batch_size", "resolve_schedule"]
