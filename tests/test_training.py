"""mixsig.training: the seeded section leaves the caller's RNG and settings alone; the loop evaluates where it is
told, keeps the first best weights, stops when asked, and shuffles from the generator it is given."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from mixsig.training import BestWeights, batch_starts, seeded, train_epochs  # noqa: E402


def test_seeded_restores_the_callers_rng_threads_and_determinism():
    torch.manual_seed(123)
    want = torch.rand(3)  # what the caller's stream gives next
    torch.manual_seed(123)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with seeded(7, threads=1) as gen:
        inside = torch.rand(2)
        perm = torch.randperm(10, generator=gen)
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.rand(3), want)
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det
    with seeded(7) as gen:  # the same seed: the same global draws and the same local stream
        assert torch.equal(torch.rand(2), inside)
        assert torch.equal(torch.randperm(10, generator=gen), perm)
    assert torch.equal(perm, torch.randperm(10, generator=torch.Generator().manual_seed(7)))
    with seeded(8):
        assert not torch.equal(torch.rand(2), inside)


def test_batch_starts_drops_a_last_single_row_only_when_asked():
    assert batch_starts(9, 4) == [0, 4]           # rows 8..8 would be a batch of one
    assert batch_starts(9, 4, drop_single=False) == [0, 4, 8]
    assert batch_starts(10, 4) == [0, 4, 8]
    assert batch_starts(1, 4) == [0]              # a single batch is kept


class _Counter(torch.nn.Module):
    """A module whose one weight is the number of steps taken (so the kept weights name their step)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def _loop(scores, **kw):
    m = _Counter()
    seen = []

    def step(idx):
        seen.append(idx.tolist())
        with torch.no_grad():
            m.w += 1

    it = iter(scores)
    res = train_epochs(8, step, batch_size=4, module=m, evaluate=(lambda: next(it)) if scores else None, **kw)
    return res, m, seen


def test_train_epochs_keeps_the_first_best_and_restores_it():
    res, m, seen = _loop([0.1, 0.5, 0.5, 0.3], epochs=4)   # 2 steps per epoch, evaluated after each epoch
    assert res.history == [0.1, 0.5, 0.5, 0.3] and res.best_point == 1 and res.best_step == 4
    assert m.w.item() == 4 and res.steps == 8 and res.epochs == 4 and res.best_score == 0.5
    assert len(seen) == 8


def test_train_epochs_without_evaluation_keeps_the_last_step():
    res, m, _ = _loop([], epochs=3)
    assert res.best_point is None and res.best_step is None and res.best_score is None
    assert m.w.item() == 6 and res.epochs == 3


def test_train_epochs_stop_eval_at_and_max_steps():
    res, m, _ = _loop([0.2, 0.9, 0.1, 0.0], epochs=10, stop=lambda point, score: point == 2)
    assert res.stopped and res.history == [0.2, 0.9, 0.1] and res.steps == 6 and m.w.item() == 4
    res, m, seen = _loop([0.3, 0.6, 0.4], epochs=3, max_steps=5, eval_at=(1, 3, 5))
    assert res.steps == 5 and len(seen) == 5 and res.history == [0.3, 0.6, 0.4] and m.w.item() == 3
    ends = []
    res, _, _ = _loop([], epochs=3, max_steps=5, on_epoch_end=ends.append)
    assert ends == [0, 1, 2] and res.epochs == 3    # the last epoch was cut short by max_steps


def test_train_epochs_shuffles_from_the_given_generator():
    _, _, seen = _loop([], epochs=2, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    want = []
    for _ in range(2):
        p = torch.randperm(8, generator=g).tolist()
        want += [p[:4], p[4:]]
    assert seen == want
    torch.manual_seed(3)  # generator=None: the global stream
    p = torch.randperm(8).tolist()
    torch.manual_seed(3)
    _, _, seen = _loop([], epochs=1)
    assert seen == [p[:4], p[4:]]


def test_best_weights_trainable_only_leaves_frozen_parameters():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    for p in net[0].parameters():
        p.requires_grad = False
    keep = BestWeights(net, trainable_only=True)
    state = keep.capture()
    assert set(state) == {"1.weight", "1.bias"}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    frozen = net[0].weight.detach().clone()
    keep.restore(state)
    assert torch.equal(net[1].weight, state["1.weight"]) and torch.equal(net[0].weight, frozen)
