"""The torch modules behind the torch heads (imported lazily: this module imports torch).

Every module maps a list of per-modality tensors ``[n, D_m]`` to ``(branch_logits, extras)``:
``branch_logits`` is a list of ``[n, C]`` logits (one for gated/concat, one per modality for late
fusion; the head's probabilities are the mean of the branches' softmax), ``extras`` holds
``gates``/``attention`` ``[n, M]`` where the module has them.
"""

from __future__ import annotations

import torch
from torch import nn


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
    """The reference gated-attention fusion network (PAPER.md), per modality ``m``::

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
