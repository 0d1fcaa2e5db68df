"""The seeds of one torch head trained together: S models as one batched computation, each the same as when
trained alone.

:func:`fit_heads` is what :func:`mixsig.heads.train_run` fits a subset's seeds with. For a torch head
(``gated``, ``concat``, ``late``) and more than one seed it trains them as one computation: every parameter and
BatchNorm buffer stacked ``[S, ...]``, the layers as batched matmuls (``baddbmm``) and BatchNorm as one
``batch_norm`` over ``S x C`` channels, one fused Adam and one one-cycle schedule over the stacked parameters (both
act element by element, so each model gets its own update). Each model keeps its own random stream: its network
is built under ``seeded(seed)`` exactly as :meth:`TorchHead.fit` builds it, and the global stream's state right
after that becomes the model's own ``torch.Generator``, which then draws its epochs' shuffling, its modality
dropout and its dropout masks in the order the lone model draws them. Each model scores its own validation
accuracy and keeps its own best weights (first best on ties). After training the stacked state is unstacked into
ordinary per-seed heads (``net_``, ``history_``, ``best_epoch_``, ``best_step_``, ``schedule_``, ``dynamics_``), so
observers, ``save_heads`` and ``predict`` see what a sequential fit gives.

Tolerance: batched matmuls round differently from single ones, so a model is not bit-identical to its lone
counterpart; tests/heads/test_batched.py checks probabilities, gates, attention, layer weights and dynamics within
1e-4 (absolute; the gated head drifts by up to ~3e-5 over 3 epochs, concat and late by ~1e-7), the same validation
histories, best epochs and best steps. The batched path itself is deterministic (same seeds, same bytes).

Cost: on a CPU the S models cost nearly S times one. The matmuls' FLOPs, fused Adam's passes over S times the
parameters and moments (S x 17 MB for the default gated head on three 384-d inputs: a single model's fits the L3
cache, five do not) and each model's serial Mersenne-Twister draws all grow with S; batching saves the per-op
dispatch and Python work only. benchmarks/README.md ("Seeds trained together") has the measurements and the floor.

``MIXSIG_BATCHED_SEEDS=0`` in the environment turns it off (every seed trained alone, one after another).
"""

from __future__ import annotations

import math
import os

import numpy as np

#: set to "0" to train the seeds one after another
ENV = "MIXSIG_BATCHED_SEEDS"


def batching_enabled() -> bool:
    return os.environ.get(ENV, "1").strip() != "0"


def fit_heads(head: str, params: dict, X: dict, y, X_val, y_val, soft_labels, seeds, n_classes):
    """Fitted heads, one per seed, in ``seeds`` order (an iterator): batched for a torch head with more than one
    seed (unless ``MIXSIG_BATCHED_SEEDS=0``), else fitted one at a time as they are asked for."""
    from mixsig.heads._registry import get_head
    from mixsig.heads._torch import TorchHead

    heads = [get_head(head, **params) for _ in seeds]
    if len(seeds) > 1 and isinstance(heads[0], TorchHead) and batching_enabled():
        inputs = heads[0].validate_fit_inputs(X, y, X_val=X_val, y_val=y_val, soft_labels=soft_labels,
                                              n_classes=n_classes)
        yield from fit_batched(heads, inputs, seeds)
        return
    for h, seed in zip(heads, seeds):
        yield h.fit(X, y, X_val=X_val, y_val=y_val, soft_labels=soft_labels, seed=seed, n_classes=n_classes)


class _Stacked:
    """The stacked state of S networks of one kind and its batched forward (training or eval mode)."""

    def __init__(self, nets, heads):
        import torch

        h, c = heads[0], heads[0].config
        names = [k for k, _ in nets[0].named_parameters()]
        states = [n.state_dict() for n in nets]
        # linear weights stored transposed, [S, in, out] contiguous: x @ W.T as one bmm without strided copies
        self.tr = {k for k in names if states[0][k].ndim == 2}
        self.P = {k: torch.stack([s[k].detach().t() if k in self.tr else s[k].detach() for s in states])
                  .contiguous().requires_grad_(True) for k in names}
        self.buf = {k: torch.stack([s[k] for s in states]).clone() for k in states[0] if k not in self.P}
        self.kind, self.S, self.M = h.name, len(nets), len(h.dims_)
        self.layers = tuple(h.layers_)
        self.wrapped = any(self.layers)
        self.cfg = c
        self.keep = 1.0 - c.modality_dropout if h.name == "gated" else 1.0
        self.training = True

    def state(self, s: int) -> dict:
        return {k: (v[s].detach().t() if k in self.tr else v[s].detach()).contiguous().clone()
                for d in (self.P, self.buf) for k, v in d.items()}

    # -- random draws, per model in the order the lone model's forward draws them --------------------------
    def noise(self, gens, B: int) -> list:
        import torch

        c, sites = self.cfg, []
        if self.kind == "gated" and self.keep < 1.0:
            sites += [("modality", (B, 1))] * self.M
        per_mlp = [("dropout", (B, c.hidden))] * c.n_layers if c.dropout > 0 else []
        sites += per_mlp * (self.M if self.kind == "late" else 1)
        # each model's draws written straight into its slice of [S, ...] tensors (a contiguous slice is filled in
        # the order a fresh tensor is: the same values as the lone model's), dropout's 1 / keep applied once to all
        out = [torch.empty((self.S, *shape)) for _, shape in sites]
        keep = torch.full((B, 1), self.keep) if self.kind == "gated" and self.keep < 1.0 else None
        for s, g in enumerate(gens):
            for (what, _), o in zip(sites, out):
                if what == "modality":
                    o[s].bernoulli_(keep, generator=g)
                else:
                    o[s].bernoulli_(1 - c.dropout, generator=g)
        for (what, _), o in zip(sites, out):
            if what == "dropout":
                o.div_(1 - c.dropout)
        return out

    # -- layers ---------------------------------------------------------------------------------------------
    def _lin(self, pre: str, x):
        import torch

        Wt, b = self.P[pre + ".weight"], self.P.get(pre + ".bias")  # Wt: [S, in, out]
        if Wt.shape[2] == 1:  # a scalar per row (gate, attention score): a product and a sum, 2-3x a bmm's speed
            out = (x * Wt.transpose(1, 2)).sum(dim=2, keepdim=True)
            return out if b is None else out + b.unsqueeze(1)
        if b is None:
            return torch.bmm(x, Wt)
        return torch.baddbmm(b.unsqueeze(1), x, Wt)

    def _bn(self, pre: str, x):
        import torch.nn.functional as F

        S, B, C = x.shape
        flat = x.transpose(0, 1).reshape(B, S * C)
        out = F.batch_norm(flat, self.buf[pre + ".running_mean"].view(-1), self.buf[pre + ".running_var"].view(-1),
                           self.P[pre + ".weight"].reshape(-1), self.P[pre + ".bias"].reshape(-1),
                           self.training, 0.1, 1e-5)
        if self.training:
            self.buf[pre + ".num_batches_tracked"].add_(1)
        return out.reshape(B, S, C).transpose(0, 1)

    def _mlp(self, pre: str, x, noise):
        import torch

        for k in range(self.cfg.n_layers):
            x = torch.relu(self._bn(f"{pre}.{4 * k + 1}", self._lin(f"{pre}.{4 * k}", x)))
            if self.training and self.cfg.dropout > 0:
                x = x * next(noise)
        return self._lin(f"{pre}.{4 * self.cfg.n_layers}", x)

    def _reduce(self, i: int, x, shared: bool):
        """Modality ``i`` as ``[S, B, D]`` float32: ``x`` per model ``[S, B, (L,) D]``, or ``shared`` by all the
        models ``[B, (L,) D]`` (validation rows: reduced before it is repeated per model, never copied S times)."""
        import torch

        if self.layers[i] and self.cfg.layer == "weighted":
            w = torch.softmax(self.P[f"layer_logits.{i}"], dim=1)
            return torch.einsum("sl,nld->snd" if shared else "sl,snld->snd", w, x.float())
        if self.layers[i]:
            x = x.float().mean(dim=-2) if self.cfg.layer == "mean" else x[..., int(self.cfg.layer), :].float()
        x = x.float()
        return x.unsqueeze(0).expand(self.S, *x.shape) if shared else x

    def forward(self, xs, noise=(), shared: bool = False):
        """``xs``: per modality ``[S, B, (L,) D]`` (``shared``: ``[B, (L,) D]``, the same rows for every model);
        returns (branch logits ``[S, B, C]`` per branch, extras)."""
        import torch

        p = "net." if self.wrapped else ""
        xs = [self._reduce(i, x, shared) for i, x in enumerate(xs)]
        noise = iter(noise)
        if self.kind == "concat":
            return [self._mlp(p + "mlp", torch.cat(xs, dim=2) if len(xs) > 1 else xs[0], noise)], {}
        if self.kind == "late":
            return [self._mlp(f"{p}branches.{m}", x, noise) for m, x in enumerate(xs)], {}
        zs, gates, scores = [], [], []
        for m, x in enumerate(xs):
            z = self._bn(f"{p}proj.{m}.1", self._lin(f"{p}proj.{m}.0", x))
            g = torch.sigmoid(self._lin(f"{p}gate.{m}", z))
            z = g * z
            if self.training and self.keep < 1.0:
                z = z * next(noise)
            scores.append(self._lin(p + "v", torch.tanh(self._lin(f"{p}att.{m}", z))))
            zs.append(z)
            gates.append(g)
        a = torch.softmax(torch.cat(scores, dim=2), dim=2)
        f = (a.unsqueeze(-1) * torch.stack(zs, dim=2)).sum(dim=2)
        return [self._mlp(p + "mlp", f, noise)], {"gates": torch.cat(gates, dim=2), "attention": a}

    def val_accuracy(self, xs_val, y_val, chunk: int) -> list[float]:
        import torch

        self.training = False
        n, hits = xs_val[0].shape[0], np.zeros(self.S)
        with torch.inference_mode():
            for s in range(0, n, max(1, chunk)):
                br, _ = self.forward([x[s:s + chunk] for x in xs_val], shared=True)
                p = torch.stack([torch.softmax(b, dim=2) for b in br]).mean(dim=0)
                hits += (p.argmax(dim=2).numpy() == y_val[s:s + chunk][None]).sum(axis=1)
        self.training = True
        return [float(h / n) for h in hits]


def _build(heads, inputs, seeds):
    """Per seed: the network built as the lone fit builds it and the generator continuing its stream."""
    import torch

    from mixsig.heads._torch import _threads
    from mixsig.training import seeded

    nets, gens = [], []
    for h, seed in zip(heads, seeds):
        h._begin_fit(inputs)
        del h._gold
        with seeded(int(seed), threads=_threads(h.config.num_threads)):
            nets.append(h._build_net())
            g = torch.Generator()
            g.set_state(torch.default_generator.get_state())
            gens.append(g)
    return nets, gens


def fit_batched(heads, inputs, seeds):
    """Train the unfitted torch ``heads`` (same class and hyperparameters) on ``inputs`` with ``seeds``, together;
    returns the fitted heads (see the module docstring)."""
    import torch

    from mixsig.heads._dynamics import Recorder
    from mixsig.heads._torch import _threads, resolve_schedule
    from mixsig.training import seeded

    nets, gens = _build(heads, inputs, seeds)
    c = heads[0].config
    n = inputs.n_rows
    sch = resolve_schedule(n, c.steps, c.batch_size, c.epochs)
    recorders = [Recorder(sch.epochs, inputs.y) for _ in heads]
    with seeded(int(seeds[0]), threads=_threads(c.num_threads)):
        st = _Stacked(nets, heads)
        xs = [torch.from_numpy(x) for x in inputs.X]
        xs_val = None if inputs.X_val is None else [torch.from_numpy(x) for x in inputs.X_val]
        T = torch.from_numpy(inputs.T.astype(np.float32))
        res = _loop(st, gens, xs, T, xs_val, inputs.y_val, sch, recorders)
    for s, (h, net) in enumerate(zip(heads, nets)):
        history, _point, best_step, state = res[s]
        net.load_state_dict(state)
        net.eval()
        h.dynamics_ = recorders[s].result()
        h.net_, h.history_, h.schedule_ = net, history, sch.to_dict()
        h.best_epoch_ = None if best_step is None else (best_step - 1) // sch.steps_per_epoch
        h.best_step_ = best_step
    return heads


def _loop(st: _Stacked, gens, xs, T, xs_val, y_val, sch, recorders):
    """:func:`mixsig.training.train_epochs` for S models at once; per model ``(history, best point, best step,
    kept state)``."""
    import torch

    from mixsig.training import batch_starts

    c, S, n = st.cfg, st.S, xs[0].shape[0]
    opt = torch.optim.Adam(list(st.P.values()), lr=c.lr, weight_decay=c.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.max_lr, total_steps=sch.steps) if c.max_lr else None
    starts, bs = batch_starts(n, sch.batch_size), sch.batch_size
    points = set(sch.eval_at)
    hist, top = [[] for _ in range(S)], [-math.inf] * S
    best, kept = [(None, None)] * S, [None] * S
    steps = 0
    for epoch in range(sch.epochs):
        if steps >= sch.steps:
            break
        perms = [torch.randperm(n, generator=g) for g in gens]
        for s0 in starts:
            if steps >= sch.steps:
                break
            idx = torch.stack([p[s0:s0 + bs] for p in perms])  # [S, B]
            _step(st, gens, xs, T, idx, opt, sched, recorders)
            steps += 1
            if xs_val is None or steps not in points:
                continue
            for s, score in enumerate(st.val_accuracy(xs_val, y_val, c.eval_batch_size)):
                hist[s].append(score)
                if score > top[s]:
                    top[s], best[s], kept[s] = score, (len(hist[s]) - 1, steps), st.state(s)
        for r in recorders:
            r.end_epoch(epoch)
    return [(hist[s], *best[s], kept[s] if kept[s] is not None else st.state(s))
            for s in range(S)]


def _step(st: _Stacked, gens, xs, T, idx, opt, sched, recorders) -> None:
    import torch

    S, B = idx.shape
    flat = idx.reshape(-1)  # the S minibatches gathered with one index_select per tensor
    Tb = T.index_select(0, flat).view(S, B, -1)  # [S, B, C]
    denom = Tb.sum(dim=(1, 2))
    noise = st.noise(gens, B)
    branches, _ = st.forward([x.index_select(0, flat).view(S, B, *x.shape[1:]) for x in xs], noise)
    loss = sum((-(Tb * torch.log_softmax(b, dim=2)).sum(dim=(1, 2)) / denom) for b in branches) / len(branches)
    with torch.no_grad():
        probs = torch.stack([torch.softmax(b.detach(), dim=2) for b in branches]).mean(dim=0)
        for s, r in enumerate(recorders):
            r.batch(idx[s], probs[s])
    opt.zero_grad(set_to_none=True)
    loss.sum().backward()
    opt.step()
    if sched is not None:
        sched.step()


__all__ = ["ENV", "batching_enabled", "fit_batched", "fit_heads"]
