"""The one torch training loop, shared by the torch heads (:mod:`mixsig.heads._torch`) and fine-tuning
(:mod:`mixsig.extract._finetune`).

- :func:`seeded` — a seeded, deterministic section: the global torch RNG is forked (``torch.random.fork_rng``)
  and seeded inside it, so weight initialisation and dropout draw from ``seed`` and the caller's RNG state is
  left as it was; ``torch.use_deterministic_algorithms(True)``; optionally a fixed thread count. It yields a
  local ``torch.Generator`` seeded with ``seed`` for a shuffling stream of its own. Everything is restored on exit.
- :func:`batch_starts` — the start rows of one epoch's mini-batches.
- :func:`train_epochs` — epochs of shuffled mini-batches; the caller's ``step`` does one optimizer step, the
  loop decides when to ``evaluate``, keeps the best weights (:class:`BestWeights`, first best on ties), asks
  ``stop`` whether to stop early and restores the best weights at the end. Without ``evaluate`` the weights
  of the last step are kept.

Which shuffling stream a caller uses is its choice (``generator``): fine-tuning shuffles with the local
generator (so the order of its rows does not depend on how many random numbers model construction drew); the
heads shuffle with the forked global stream, interleaved with initialisation and dropout, as they always have
(switching would change every head's numbers).

The same seed, inputs, thread count and device give the same numbers, bit for bit, on CPU; on CUDA where
torch has deterministic kernels (``warn_only`` makes the others warn instead of fail).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


def _cuda_indices(devices) -> list[int]:
    """CUDA device indices among ``devices`` (strings like "cuda:1", torch devices or ints)."""
    import torch

    out = []
    for d in devices or ():
        d = torch.device(d) if not isinstance(d, int) else torch.device("cuda", d)
        if d.type == "cuda":
            out.append(d.index if d.index is not None else torch.cuda.current_device())
    return sorted(set(out))


@contextlib.contextmanager
def seeded(seed: int, *, threads: int | None = None, devices=(), deterministic: bool = True,
           warn_only: bool = False) -> Iterator[Any]:
    """A seeded section; yields ``torch.Generator().manual_seed(seed)`` (a local shuffling stream).

    Inside, the CPU generator (and the CUDA generators of ``devices``, e.g. ``["cuda:0"]``) is forked from the
    caller's and seeded with ``seed``; on exit the caller's states come back, so code before and after is
    untouched. ``deterministic``: ``torch.use_deterministic_algorithms(True, warn_only=warn_only)``; on CUDA
    this also needs ``CUBLAS_WORKSPACE_CONFIG`` (set to ``:4096:8`` here unless given). ``threads``: the torch
    thread count inside (None keeps the caller's). Every setting is restored on exit."""
    import os

    import torch

    cuda = _cuda_indices(devices)
    prev_threads = torch.get_num_threads()
    prev_det = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if threads is not None:
        torch.set_num_threads(int(threads))
    if deterministic:
        if cuda:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.default_generator.manual_seed(int(seed))
            for i in cuda:
                with torch.cuda.device(i):
                    torch.cuda.manual_seed(int(seed))
            yield torch.Generator().manual_seed(int(seed))
    finally:
        torch.use_deterministic_algorithms(prev_det[0], warn_only=prev_det[1])
        torch.set_num_threads(prev_threads)


def batch_starts(n: int, batch_size: int, drop_single: bool = True) -> list[int]:
    """Start rows of one epoch's mini-batches of ``batch_size`` rows over ``n`` rows. ``drop_single``: a last
    batch of a single row is dropped (BatchNorm cannot train on one row; the heads' choice)."""
    starts = list(range(0, n, max(1, int(batch_size))))
    if drop_single and len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    return starts


class BestWeights:
    """Snapshots of ``module``'s weights: the whole ``state_dict`` (buffers included), or with
    ``trainable_only`` only the parameters that require grad (fine-tuning: the frozen rest never changes)."""

    def __init__(self, module, trainable_only: bool = False):
        self.module = module
        self.trainable_only = trainable_only

    def capture(self) -> dict:
        if self.trainable_only:
            return {n: p.detach().clone() for n, p in self.module.named_parameters() if p.requires_grad}
        return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def restore(self, state: dict) -> None:
        import torch

        if not self.trainable_only:
            self.module.load_state_dict(state)
            return
        with torch.no_grad():
            named = dict(self.module.named_parameters())
            for n, v in state.items():
                named[n].copy_(v)


@dataclass
class LoopResult:
    """What :func:`train_epochs` did: ``history`` (the score at each evaluation point), ``best_point`` (0-based
    index into it of the kept weights) and ``best_step`` (its 1-based optimizer step; both None without
    evaluation: the last step's weights are kept), ``steps`` and ``epochs`` run, and whether ``stop`` ended it."""

    history: list[float] = field(default_factory=list)
    best_point: int | None = None
    best_step: int | None = None
    steps: int = 0
    epochs: int = 0
    stopped: bool = False

    @property
    def best_score(self) -> float | None:
        return None if self.best_point is None else self.history[self.best_point]


def train_epochs(n: int, step: Callable[[Any], Any], *, batch_size: int, epochs: int, max_steps: int | None = None,
                 eval_at=None, evaluate: Callable[[], float] | None = None,
                 stop: Callable[[int, float], bool] | None = None, best: BestWeights | None = None,
                 module=None, generator=None, drop_single: bool = True,
                 on_epoch_end: Callable[[int], None] | None = None,
                 permutation: Callable[[int, Any], Any] | None = None) -> LoopResult:
    """Train for ``epochs`` passes over ``n`` rows (at most ``max_steps`` optimizer steps in all).

    Each epoch draws ``torch.randperm(n, generator=generator)`` (None: the global stream) and calls
    ``step(idx)`` with the row indices (a tensor) of each mini-batch (:func:`batch_starts`); ``step`` does the
    forward, backward and optimizer step. After each 1-based step count in ``eval_at`` (default: the end of
    every epoch) ``evaluate()`` scores the model (higher is better); a score above every earlier one keeps the
    weights (``best``, default :class:`BestWeights` of ``module``), and ``stop(point, score) -> True`` ends
    training after that point (``point`` 0-based). ``module`` is put in train mode at the start of every epoch
    and after every evaluation. ``on_epoch_end(epoch)`` (0-based) runs after each epoch that completes or is
    cut short by ``max_steps``. At the end the best weights are restored (none without ``evaluate``).
    ``permutation(n, generator)`` (optional) draws each epoch's order instead of ``torch.randperm`` (streamed fits:
    :meth:`mixsig.heads._streaming.WindowLoader.permutation`, the same draw when the rows fit one window).
    """
    import torch

    starts = batch_starts(n, batch_size, drop_single)
    per_epoch = len(starts)
    total = per_epoch * int(epochs) if max_steps is None else int(max_steps)
    points = set(range(per_epoch, per_epoch * int(epochs) + 1, per_epoch) if eval_at is None else eval_at)
    if best is None and module is not None and evaluate is not None:
        best = BestWeights(module)
    res = LoopResult()
    top, kept = -math.inf, None
    for epoch in range(int(epochs)):
        if res.steps >= total:
            break
        if module is not None:
            module.train()
        perm = torch.randperm(n, generator=generator) if permutation is None else permutation(n, generator)
        for s in starts:
            if res.steps >= total:
                break
            step(perm[s:s + batch_size])
            res.steps += 1
            if evaluate is None or res.steps not in points:
                continue
            score = float(evaluate())
            if module is not None:
                module.train()
            point = len(res.history)
            res.history.append(score)
            log.debug("step %d (epoch %d, point %d): validation score %.4f", res.steps, epoch, point, score)
            if score > top:
                top, res.best_point, res.best_step = score, point, res.steps
                kept = best.capture() if best is not None else None
            if stop is not None and stop(point, score):
                log.info("stopped by callback after step %d (evaluation point %d)", res.steps, point)
                res.stopped = True
                break
        res.epochs = epoch + 1
        if res.stopped:
            break
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    if kept is not None:
        best.restore(kept)
    return res


__all__ = ["BestWeights", "LoopResult", "batch_starts", "seeded", "train_epochs"]
