"""The torch modules behind the torch heads (imported lazily: this module imports torch).

Every module maps a list of per-modality tensors ``[n, D_m]`` to ``(branch_logits, extras)``:
``branch_logits`` is a list of ``[n, C]`` logits (one for gated/concat, one per modality for late
fusion; the head's probabilities are the mean of the branches' softmax), ``extras`` holds
``gates``/``attention`` ``[n, M]`` where the module has them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mixsig.training import train_epochs


def mlp(in_dim: int, hidden: int, n_layers: int, dropout: float, n_classes: int) -> nn.Sequential:
    """``n_layers`` × (Linear → BatchNorm → ReLU → Dropout) of width ``hidden``, then Linear → C."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout)]
        d = hidden
    layers.append(nn.Linear(d, n_classes))
    return nn.Sequential(*layers)


class GatedFusionNet(nn.Module):
    """The reference gated-attention fusion network (the paper; README "Train heads"), per modality ``m``::

        z_m = BatchNorm(Linear_m(x_m))            # D_m -> proj_dim (widths may differ per modality)
        g_m = sigmoid(Gate_m(z_m))                # [n, 1] one scalar gate per modality per sample
        z_m = g_m * z_m * Bernoulli(keep)         # modality dropout, training only (no rescaling)
        s_m = v · tanh(A_m z_m)                   # A_m: proj_dim -> att_dim (with bias), v shared, no bias
        a   = softmax_m(s_m);  f = sum_m a_m z_m;  logits = MLP(f)

    ``forward(xs, absent=(i, ...))`` treats the modalities at those positions as absent: their ``z_m`` is zeroed,
    exactly as modality dropout zeroes a dropped modality in training (the missing-modality evaluation).

    With the defaults (256, 128, 3×512, two classes) it has 1,352,709 trainable parameters on three
    768-d inputs and 891,651 on one — the reference model's counts.
    """

    def __init__(self, dims, n_classes, *, proj_dim=256, att_dim=128, hidden=512, n_layers=3,
                 dropout=0.3, modality_dropout=0.2):
        super().__init__()
        self.keep = 1.0 - modality_dropout
        self.proj = nn.ModuleList(nn.Sequential(nn.Linear(d, proj_dim), nn.BatchNorm1d(proj_dim)) for d in dims)
        self.gate = nn.ModuleList(nn.Linear(proj_dim, 1) for _ in dims)
        self.att = nn.ModuleList(nn.Linear(proj_dim, att_dim) for _ in dims)
        self.v = nn.Linear(att_dim, 1, bias=False)
        self.mlp = mlp(proj_dim, hidden, n_layers, dropout, n_classes)

    def forward(self, xs: list[torch.Tensor], absent=()):
        zs, gates, scores = [], [], []
        for m, x in enumerate(xs):
            z = self.proj[m](x)
            g = torch.sigmoid(self.gate[m](z))
            z = torch.zeros_like(z) if m in absent else g * z
            if self.training and self.keep < 1.0:
                z = z * torch.bernoulli(torch.full((z.shape[0], 1), self.keep, dtype=z.dtype))
            scores.append(self.v(torch.tanh(self.att[m](z))))
            zs.append(z)
            gates.append(g)
        a = torch.softmax(torch.cat(scores, dim=1), dim=1)  # [n, M]
        f = (a.unsqueeze(-1) * torch.stack(zs, dim=1)).sum(dim=1)
        return [self.mlp(f)], {"gates": torch.cat(gates, dim=1), "attention": a}


class ConcatNet(nn.Module):
    """Early fusion: the MLP on the concatenated modalities ``[n, sum D_m]``."""

    def __init__(self, dims, n_classes, *, hidden=512, n_layers=3, dropout=0.3):
        super().__init__()
        self.mlp = mlp(sum(dims), hidden, n_layers, dropout, n_classes)

    def forward(self, xs):
        return [self.mlp(torch.cat(xs, dim=1) if len(xs) > 1 else xs[0])], {}


class LateNet(nn.Module):
    """Late fusion: one MLP per modality, each trained on its own loss; probabilities averaged."""

    def __init__(self, dims, n_classes, *, hidden=512, n_layers=3, dropout=0.3):
        super().__init__()
        self.branches = nn.ModuleList(mlp(d, hidden, n_layers, dropout, n_classes) for d in dims)

    def forward(self, xs):
        return [b(x) for b, x in zip(self.branches, xs)], {}


class LayerInputs(nn.Module):
    """Puts ``[n, L, D]`` modalities into a network that takes ``[n, D]`` ones (see :mod:`mixsig.heads._layers`).

    ``layers``: L per modality (0 = already ``[n, D]``); ``layer``: ``"weighted"`` (a learned softmax over the
    layers per modality, logits initialised to 0 = equal weights: the s3prl weighted-layer sum), ``"mean"`` or a
    layer index. Each batch is converted to float32 here, so float16 inputs are never copied whole.
    """

    def __init__(self, net: nn.Module, layers, layer="weighted"):
        super().__init__()
        self.net = net
        self.layers = tuple(int(L) for L in layers)
        self.layer = layer
        self.layer_logits = nn.ParameterList(
            nn.Parameter(torch.zeros(L if (L and layer == "weighted") else 0)) for L in self.layers)

    def layer_weights(self) -> dict[int, torch.Tensor]:
        """``{modality index: [L] softmax weights}`` of the weighted modalities."""
        return {i: torch.softmax(p.detach(), dim=0) for i, p in enumerate(self.layer_logits) if p.numel()}

    def _reduce(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if not self.layers[i]:
            return x.float()
        if self.layer == "weighted":
            w = torch.softmax(self.layer_logits[i], dim=0)
            return torch.einsum("l,nld->nd", w, x.float())
        if self.layer == "mean":
            return x.float().mean(dim=1)
        return x[:, int(self.layer)].float()

    def forward(self, xs, absent=()):
        flat = [self._reduce(i, x) for i, x in enumerate(xs)]
        return self.net(flat, absent=absent) if absent else self.net(flat)


def train_loop(net, xs, T, xs_val, y_val, cfg, callback=None, recorder=None, order=None):
    """Train ``net`` in place with :func:`mixsig.training.train_epochs`; returns ``(val accuracy per evaluation
    point, best point, its optimizer step)`` (None, None without validation rows).
    ``recorder`` (a :class:`mixsig.heads._dynamics.Recorder`, optional) gets every training batch's probabilities
    (the forward pass the loss is computed from) and the end of every epoch: the training dynamics.

    ``xs``: list of ``[n, D_m]`` float32 tensors; ``T``: ``[n, C]`` weighted targets (see
    :mod:`mixsig.heads._targets`); ``xs_val``/``y_val``: validation tensors/labels or None.
    Loss per batch and branch: ``-sum(T_b * log_softmax(logits)) / sum(T_b)``, averaged over branches.
    The schedule comes from :func:`resolve_schedule`: evaluation points are the epochs (``steps`` unset) or
    the tenths of the ``steps`` budget. ``callback(point, val_accuracy) -> True`` stops after that point
    (``point`` 0-based). Mini-batches are shuffled from the (forked, seeded) global stream; ``order(n, generator)``
    (optional) draws each epoch's row order instead of ``torch.randperm`` (a streamed fit's windows).
    """
    n = xs[0].shape[0]
    from mixsig.heads._torch import predict_net, resolve_schedule

    sch = resolve_schedule(n, cfg.steps, cfg.batch_size, cfg.epochs)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    sched = None
    if cfg.max_lr:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.max_lr, total_steps=sch.steps)

    def step(idx):
        Tb = T.index_select(0, idx)
        denom = Tb.sum()
        branches, _ = net([x.index_select(0, idx) for x in xs])
        loss = sum(-(Tb * torch.log_softmax(b, dim=1)).sum() / denom for b in branches) / len(branches)
        if recorder is not None:
            with torch.no_grad():
                recorder.batch(idx, torch.stack([torch.softmax(b.detach(), dim=1) for b in branches]).mean(dim=0))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()

    def evaluate() -> float:
        probs, _ = predict_net(net, xs_val, cfg.eval_batch_size)
        return float(np.mean(probs.argmax(axis=1) == y_val))

    res = train_epochs(n, step, batch_size=sch.batch_size, epochs=sch.epochs, max_steps=sch.steps,
                       eval_at=sch.eval_at, evaluate=None if xs_val is None else evaluate, stop=callback, module=net,
                       on_epoch_end=None if recorder is None else recorder.end_epoch, permutation=order)
    return res.history, res.best_point, res.best_step
