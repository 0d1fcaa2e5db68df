"""Torch heads — ``gated`` (the paper's fusion head), ``concat`` and ``late`` — and the one training
loop they share.

The loop keeps every training tensor in memory and slices shuffled mini-batches with
``index_select`` (no DataLoader, no per-epoch disk reads); Adam + one-cycle schedule; after each
epoch it scores validation accuracy and keeps the weights of the best epoch (first best on ties),
as the reference recipe does. Without a validation set it keeps the last epoch.

Determinism: training and prediction run with ``torch.manual_seed(seed)`` inside a forked RNG
state (the caller's RNG is untouched), ``torch.use_deterministic_algorithms(True)`` and a fixed
thread count (``num_threads``, default 1), all restored afterwards.
The same seed, inputs and thread count give identical probabilities.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixsig.errors import HeadError
from mixsig.heads._base import Head, check_model_file
from mixsig.heads._registry import register_head

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"


@dataclass(frozen=True)
class TorchConfig:
    """Hyperparameters shared by the torch heads (defaults = the paper's recipe).

    ``batch_size=0`` trains full-batch. With ``max_lr`` set, OneCycleLR drives the learning rate per
    batch (from ``max_lr / 25`` up to ``max_lr`` and down), overriding ``lr`` — what PyTorch does with
    the paper's recipe (Adam lr 1e-4 + one-cycle to 1e-3); ``max_lr=None`` keeps ``lr`` constant.
    ``num_threads`` (default 1, capped at the cores this process may use): batch-64 steps gain little
    from more threads, and parallel runs or study workers oversubscribe the cores — measured on a busy
    2-core machine, 2 threads were 7-11x slower than 1. A fixed count also keeps results reproducible.
    A last mini-batch of a single row is skipped that epoch (BatchNorm cannot train on one row).
    """

    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-3
    max_lr: float | None = 1e-3
    hidden: int = 512
    n_layers: int = 3
    dropout: float = 0.3
    class_weight: Any = None
    num_threads: int | None = None
    eval_batch_size: int = 8192


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


@contextlib.contextmanager
def torch_context(seed: int, num_threads: int | None):
    """Seeded, deterministic, fixed-thread torch section; restores the caller's settings on exit."""
    import torch

    threads = min(available_cores(), num_threads or 1)
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def predict_net(net, xs, eval_batch_size: int):
    """Eval-mode forward in chunks: ``(probs [n, C] float32 ndarray, {extra: [n, M] ndarray})``."""
    import torch

    net.eval()
    n = xs[0].shape[0]
    probs, extras = [], {}
    step = max(1, eval_batch_size)
    with torch.inference_mode():
        for s in range(0, n, step):
            branches, ex = net([x[s:s + step] for x in xs])
            p = torch.stack([torch.softmax(b, dim=1) for b in branches]).mean(dim=0)
            probs.append(p)
            for k, v in ex.items():
                extras.setdefault(k, []).append(v)
    return (torch.cat(probs).numpy().astype(np.float32, copy=False),
            {k: torch.cat(v).numpy().astype(np.float32, copy=False) for k, v in extras.items()})


def train_loop(net, xs, T, xs_val, y_val, cfg: TorchConfig, callback=None) -> tuple[list[float], int | None]:
    """Train ``net`` in place; returns ``(val accuracy per epoch, best epoch or None)``.

    ``xs``: list of ``[n, D_m]`` float32 tensors; ``T``: ``[n, C]`` weighted targets (see
    :mod:`mixsig.heads._targets`); ``xs_val``/``y_val``: validation tensors/labels or None.
    Loss per batch and branch: ``-sum(T_b * log_softmax(logits)) / sum(T_b)``, averaged over branches.
    ``callback(epoch, val_accuracy) -> True`` stops after that epoch (``epoch`` 0-based).
    """
    import torch

    n = xs[0].shape[0]
    bs = n if cfg.batch_size <= 0 else min(cfg.batch_size, n)
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    sched = None
    if cfg.max_lr:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.max_lr, total_steps=cfg.epochs * len(starts))
    history: list[float] = []
    best, best_epoch, best_state = -math.inf, None, None
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(n)
        for s in starts:
            idx = perm[s:s + bs]
            Tb = T.index_select(0, idx)
            denom = Tb.sum()
            branches, _ = net([x.index_select(0, idx) for x in xs])
            loss = sum(-(Tb * torch.log_softmax(b, dim=1)).sum() / denom for b in branches) / len(branches)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        if xs_val is None:
            continue
        probs, _ = predict_net(net, xs_val, cfg.eval_batch_size)
        acc = float(np.mean(probs.argmax(axis=1) == y_val))
        history.append(acc)
        log.debug("epoch %d: val accuracy %.4f", epoch, acc)
        if acc > best:
            best, best_epoch = acc, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if callback is not None and callback(epoch, acc):
            log.info("stopped by callback after epoch %d", epoch)
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    return history, best_epoch


class TorchHead(Head):
    """Shared fit/predict/save/load of the torch heads; subclasses say which network to build."""

    Config = TorchConfig

    def _net_kwargs(self) -> dict:
        c = self.config
        return {"hidden": c.hidden, "n_layers": c.n_layers, "dropout": c.dropout}

    def _make_net(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_config(self) -> None:
        super()._check_config()
        c = self.config
        checks = {
            "epochs": c.epochs >= 1, "batch_size": c.batch_size >= 0, "lr": c.lr > 0,
            "weight_decay": c.weight_decay >= 0, "max_lr": c.max_lr is None or c.max_lr > 0,
            "hidden": c.hidden >= 1, "n_layers": c.n_layers >= 0, "dropout": 0 <= c.dropout < 1,
            "num_threads": c.num_threads is None or c.num_threads >= 1, "eval_batch_size": c.eval_batch_size >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise HeadError(f"Invalid value(s) for head {self.name!r}: "
                            + ", ".join(f"{k}={getattr(c, k)!r}" for k in bad) + ".")

    def _fit(self, Xs, T, Xs_val, y_val, *, seed, callback) -> None:
        import torch

        with torch_context(seed, self.config.num_threads):
            net = self._make_net()
            xs = [torch.from_numpy(x) for x in Xs]
            xs_val = None if Xs_val is None else [torch.from_numpy(x) for x in Xs_val]
            history, best_epoch = train_loop(net, xs, torch.from_numpy(T.astype(np.float32)), xs_val,
                                             y_val, self.config, callback)
        net.eval()
        self.net_ = net
        self.history_ = history
        self.best_epoch_ = best_epoch

    def _predict(self, Xs):
        import torch

        with torch_context(0, self.config.num_threads):
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
            net = probe._make_net()
        return int(sum(p.numel() for p in net.parameters() if p.requires_grad))

    def _save_state(self, path: Path) -> dict:
        from safetensors.torch import save_file

        state = {k: v.detach().contiguous() for k, v in self.net_.state_dict().items()}
        tmp = path / (MODEL_FILE + ".tmp")
        save_file(state, str(tmp), metadata={"head": self.name})
        tmp.replace(path / MODEL_FILE)
        return {"file": MODEL_FILE, "best_epoch": self.best_epoch_, "history": self.history_}

    def _load_state(self, path: Path, state: dict) -> None:
        from safetensors.torch import load_file

        f = check_model_file(path / state.get("file", MODEL_FILE), "safetensors")
        net = self._make_net()
        try:
            net.load_state_dict(load_file(str(f)), strict=True)
        except RuntimeError as exc:
            raise HeadError(f"{f} does not match a {self.name!r} head with {head_desc(self)}: {exc}") from None
        net.eval()
        self.net_ = net
        self.history_ = list(state.get("history", []))
        self.best_epoch_ = state.get("best_epoch")


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


__all__ = ["ConcatHead", "GatedConfig", "GatedFusionHead", "LateFusionHead", "TorchConfig", "TorchHead"]
