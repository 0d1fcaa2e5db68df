"""Heads, side by side in one process (plain script; ``--json PATH`` saves the numbers).

1. The gated fusion head, the paper's recipe (15 epochs, batch 64, Adam + one-cycle, best validation
   epoch kept) on EmpSpeech-sized random features: 1,535 rows x three 768-d modalities split
   1,228 train / 153 val / 154 test (train on train, score val every epoch).
   - reference style: the authors' loop — a DataLoader of batch 64 over a TensorDataset, default Adam,
     CrossEntropyLoss, a val DataLoader every epoch, ``copy.deepcopy`` of the best state;
   - reference style with fused Adam: the same loop with ``Adam(fused=True)`` (what the optimizer alone buys);
   - mixsig: ``get_head("gated").fit(...)`` — in-memory tensors sliced with ``index_select``, fused Adam.
   Same network class, same threads. Ratio = reference / mixsig.
2. LightGBM on the concatenated 1,228 x 2,304 train rows (early stopping on 153 val rows): K fits with
   different seeds, the Dataset rebuilt every fit vs constructed once and reused
   (``LightGBMHead.make_dataset`` + ``fit(..., dataset=...)``). Ratio = rebuilt / reused.
3. Seeds trained together (``mixsig.heads._batched``, what ``train_run`` does for a torch head with S > 1 seeds): a
   gated "run" — every non-empty subset of three 384-d modalities (7 subsets) on 1,535 synthetic rows
   (1,228 train / 153 val) — with 1 seed, with 3 and 5 seeds batched and with 5 seeds one after another
   (``MIXSIG_BATCHED_SEEDS=0``); wall and CPU seconds (``time.process_time``). Ratios: 5-seed batched / 1 seed
   (issue 18's target: <= 2x), 3-seed batched / 1 seed (a study's re-evaluation), sequential / batched 5 seeds.
   The 1-seed run is ``fit_heads`` with one seed: the lone ``fit``, what ``train_run`` does with one seed. Then the
   floor: the work that grows with the seeds (every layer's forward and backward matmuls, the fused Adam step,
   the per-model dropout and modality-dropout draws) timed alone per step for 1 model (mm, as the lone fit) and S
   (bmm over stacked weights), times each subset's steps; "floor" = the 1-seed run with that work replaced by
   the S-model work and everything else free: no batching can go below it on these cores.

Each timing is repeated ``--repeat`` times, interleaved; min and median are printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mixsig.heads import LightGBMHead, get_head  # noqa: E402

N_TRAIN, N_VAL, N_TEST, DIM = 1228, 153, 154, 768
MODS = ("text", "audio", "video")


def make_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL + N_TEST
    X = {m: rng.standard_normal((n, DIM)).astype(np.float32) for m in MODS}
    w = rng.standard_normal(3 * DIM) / np.sqrt(3 * DIM)
    score = np.hstack([X[m] for m in MODS]) @ w
    y = (score + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)   # learnable, not trivial
    tr, va = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_VAL)
    return ({m: x[tr] for m, x in X.items()}, y[tr], {m: x[va] for m, x in X.items()}, y[va])


def reference_fit(Xtr, ytr, Xva, yva, seed: int, fused: bool) -> float:
    """The authors' training loop (DataLoader of batch 64 over a TensorDataset); returns best val accuracy."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from mixsig.heads._nets import GatedFusionNet

    torch.manual_seed(seed)
    model = GatedFusionNet([DIM] * 3, 2)
    train = DataLoader(TensorDataset(*(torch.from_numpy(Xtr[m]) for m in MODS), torch.from_numpy(ytr)),
                       batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(*(torch.from_numpy(Xva[m]) for m in MODS), torch.from_numpy(yva)),
                     batch_size=64)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-3, **({"fused": True} if fused else {}))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, epochs=15, steps_per_epoch=len(train))
    loss_fn = torch.nn.CrossEntropyLoss()
    best, best_state = -1.0, None
    for _ in range(15):
        model.train()
        for t, a, v, yb in train:
            opt.zero_grad()
            logits, _ = model([t, a, v])
            loss = loss_fn(logits[0], yb)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for t, a, v, yb in val:
                correct += int((model([t, a, v])[0][0].argmax(1) == yb).sum())
        acc = correct / len(val.dataset)
        if acc > best:
            best, best_state = acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return best


def seeds_run(n_seeds: int, batched: bool, epochs: int, threads: int, n_subsets: int = 7) -> tuple[float, float]:
    """(wall s, CPU s) of fitting the gated head on the first ``n_subsets`` modality subsets with ``n_seeds`` seeds."""
    import os

    from mixsig.heads import modality_subsets
    from mixsig.heads._batched import ENV, fit_heads

    rng = np.random.default_rng(0)
    n, dim = N_TRAIN + N_VAL + N_TEST, 384
    X = {m: rng.standard_normal((n, dim)).astype(np.float32) for m in MODS}
    y = (np.hstack([X[m] for m in MODS]) @ rng.standard_normal(3 * dim) > 0).astype(np.int64)
    tr, va = slice(0, N_TRAIN), slice(N_TRAIN, N_TRAIN + N_VAL)
    os.environ[ENV] = "1" if batched else "0"
    t, c = time.perf_counter(), time.process_time()
    for sub in modality_subsets(list(MODS))[:n_subsets]:
        list(fit_heads("gated", {"epochs": epochs, "num_threads": threads}, {m: X[m][tr] for m in sub}, y[tr],
                       {m: X[m][va] for m in sub}, y[va], None, list(range(n_seeds)), 2))
    os.environ.pop(ENV)
    return time.perf_counter() - t, time.process_time() - c


def _best(fn, reps: int = 7, inner: int = 5) -> float:
    """Seconds per call of ``fn``: the best of ``reps`` rounds of ``inner`` calls (after one warm-up call)."""
    fn()
    best = math.inf
    for _ in range(reps):
        t = time.process_time()
        for _ in range(inner):
            fn()
        best = min(best, (time.process_time() - t) / inner)
    return best


def scaling_work(S: int, M: int, dim: int = 384) -> dict:
    """CPU s per training step of the gated head's work that grows with the models (default sizes, batch 64,
    ``M`` modalities of ``dim``): ``matmul`` (each layer's forward, weight-gradient and input-gradient products;
    mm for one model as the lone fit, bmm over ``[S, in, out]`` weights for S), ``adam`` (one fused step over the
    parameters, stacked for S) and ``rng`` (each model's dropout and modality-dropout draws, one generator each)."""
    import torch

    B, proj, att, hidden, C = 64, 256, 128, 512, 2
    layers = ([(dim, proj, False)] * M + [(proj, 1, True), (proj, att, True), (att, 1, True)] * M
              + [(proj, hidden, True), (hidden, hidden, True), (hidden, hidden, True), (hidden, C, True)])
    if S == 1:
        ts = [(torch.randn(B, i), torch.randn(o, i), torch.randn(B, o), gx) for i, o, gx in layers]

        def matmul():
            for x, W, g, gx in ts:
                x @ W.t(), g.t() @ x, (g @ W) if gx else None
    else:
        ts = [(torch.randn(S, B, i), torch.randn(S, i, o), torch.randn(S, B, o), gx) for i, o, gx in layers]

        def matmul():
            for x, Wt, g, gx in ts:
                torch.bmm(x, Wt), torch.bmm(x.transpose(1, 2), g), torch.bmm(g, Wt.transpose(1, 2)) if gx else None
    params = [torch.zeros((S, i, o) if S > 1 else (o, i), requires_grad=True) for i, o, _ in layers]
    params += [torch.zeros((S, o) if S > 1 else (o,), requires_grad=True) for _, o, _ in layers]
    for q in params:
        q.grad = torch.randn_like(q)
    opt = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-3, fused=True)
    gens = [torch.Generator().manual_seed(s) for s in range(S)]

    def rng():
        for g in gens:
            for _ in range(M):
                torch.bernoulli(torch.full((B, 1), 0.8), generator=g)
            for _ in range(3):
                torch.empty(B, hidden).bernoulli_(0.7, generator=g)
    return {"matmul": _best(matmul), "adam": _best(opt.step), "rng": _best(rng)}


def floor_bench(seeds, epochs: int, one_seed_cpu: float) -> dict:
    """The floor of the 7-subset run for each S in ``seeds`` (see the module docstring, part 3); the 1-model work is
    measured once, in the same rounds as the S-model work."""
    from mixsig.heads import modality_subsets
    from mixsig.heads._torch import resolve_schedule

    steps = resolve_schedule(N_TRAIN, None, 64, epochs).steps
    n_mods = [len(sub) for sub in modality_subsets(list(MODS))]   # subsets of equal size have equal shapes
    work: dict = {S: {} for S in (1, *seeds)}
    for M in sorted(set(n_mods)):
        for S, w in work.items():
            for k, v in scaling_work(S, M).items():
                w[k] = w.get(k, 0.0) + v * steps * n_mods.count(M)
    w1 = sum(work[1].values())
    out = {"work_1_model_s": {k: round(v, 3) for k, v in work[1].items()},
           "share_of_1_seed_run": round(w1 / one_seed_cpu, 2)}
    for S in seeds:
        out[S] = {"work_s": {k: round(v, 3) for k, v in work[S].items()},
                  "ratios": {k: round(work[S][k] / work[1][k], 2) for k in work[1]},
                  "floor_ratio": round((one_seed_cpu - w1 + sum(work[S].values())) / one_seed_cpu, 2)}
    return out


def seeds_bench(args) -> dict:
    variants = {"1_seed": (1, True), "3_seeds_batched": (3, True), "5_seeds_batched": (5, True),
                "5_seeds_sequential": (5, False)}
    seeds_run(1, True, 1, args.threads, 1)  # warm-up
    wall: dict = {k: [] for k in variants}
    cpu: dict = {k: [] for k in variants}
    for _ in range(args.repeat):
        for k, (s, b) in variants.items():   # interleaved
            w, c = seeds_run(s, b, args.seed_epochs, args.threads)
            wall[k].append(w)
            cpu[k].append(c)
    out = {"epochs": args.seed_epochs, "subsets": 7, "dims": [384] * 3, "threads": args.threads,
           "wall": {k: summary(v) for k, v in wall.items()}, "cpu": {k: summary(v) for k, v in cpu.items()}}
    for kind in ("wall", "cpu"):
        med = {k: v["median_s"] for k, v in out[kind].items()}
        out[f"ratios_{kind}"] = {"5_batched_over_1": round(med["5_seeds_batched"] / med["1_seed"], 2),
                                 "3_batched_over_1": round(med["3_seeds_batched"] / med["1_seed"], 2),
                                 "5_sequential_over_5_batched": round(med["5_seeds_sequential"]
                                                                      / med["5_seeds_batched"], 2)}
    print(f"gated run, 7 subsets of 3x384, {N_TRAIN} train + {N_VAL} val rows, {args.seed_epochs} epochs, "
          f"{args.threads} thread(s); medians of {args.repeat}:")
    for k in variants:
        print(f"  {k:20s} wall {out['wall'][k]['median_s']:7.2f} s   CPU {out['cpu'][k]['median_s']:7.2f} s")
    for kind in ("wall", "cpu"):
        r = out[f"ratios_{kind}"]
        print(f"  {kind:4s} ratios: 5 seeds batched / 1 seed {r['5_batched_over_1']:.2f}x (target <= 2x); "
              f"3 batched / 1 {r['3_batched_over_1']:.2f}x; 5 sequential / 5 batched "
              f"{r['5_sequential_over_5_batched']:.2f}x")
    fl = out["floor"] = floor_bench((5, 3), args.seed_epochs, out["cpu"]["1_seed"]["median_s"])
    print(f"  floor: the work that grows with the models (matmuls, Adam, dropout draws) is "
          f"{fl['share_of_1_seed_run']:.0%} of the 1-seed run's CPU s")
    for S in (5, 3):
        f = fl[S]
        print(f"    {S} models / 1: matmul {f['ratios']['matmul']:.2f}x, Adam {f['ratios']['adam']:.2f}x, RNG "
              f"{f['ratios']['rng']:.2f}x -> floor {f['floor_ratio']:.2f}x (measured "
              f"{out['ratios_cpu'][f'{S}_batched_over_1']:.2f}x CPU)")
    return out


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def summary(times):
    return {"min_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
            "all_s": [round(t, 3) for t in times]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch / LightGBM threads for every variant (default 1)")
    ap.add_argument("--lgb-fits", type=int, default=5, help="LightGBM fits per timing (default 5)")
    ap.add_argument("--skip-gated", action="store_true")
    ap.add_argument("--skip-lightgbm", action="store_true")
    ap.add_argument("--skip-seeds", action="store_true", help="skip part 3 (seeds trained together)")
    ap.add_argument("--seed-epochs", type=int, default=15, help="epochs per fit in part 3 (default 15)")
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args(argv)

    import lightgbm
    import torch

    torch.set_num_threads(args.threads)
    Xtr, ytr, Xva, yva = make_data()
    res: dict = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                             "lightgbm": lightgbm.__version__, "threads": args.threads},
                 "rows": {"train": N_TRAIN, "val": N_VAL, "test": N_TEST, "dims": [DIM] * 3}}

    if not args.skip_gated:
        get_head("gated", epochs=1, num_threads=args.threads).fit(Xtr, ytr, seed=0)  # warm-up (imports, allocator)
        t_ref, t_ref_fused, t_ours, accs = [], [], [], {}
        for r in range(args.repeat):
            dt, accs["reference"] = timed(lambda: reference_fit(Xtr, ytr, Xva, yva, seed=r, fused=False))
            t_ref.append(dt)
            dt, accs["reference_fused_adam"] = timed(lambda: reference_fit(Xtr, ytr, Xva, yva, seed=r, fused=True))
            t_ref_fused.append(dt)
            dt, head = timed(lambda: get_head("gated", num_threads=args.threads).fit(
                Xtr, ytr, X_val=Xva, y_val=yva, seed=r))
            t_ours.append(dt)
            accs["mixsig"] = max(head.history_)
        g = {"reference_dataloader": summary(t_ref), "reference_dataloader_fused_adam": summary(t_ref_fused),
             "mixsig_gated_head": summary(t_ours), "best_val_accuracy_last_repeat": accs,
             "parameters": get_head("gated").n_parameters([DIM] * 3)}
        g["ratio_reference_over_mixsig"] = round(g["reference_dataloader"]["median_s"]
                                                 / g["mixsig_gated_head"]["median_s"], 2)
        g["ratio_reference_fused_over_mixsig"] = round(g["reference_dataloader_fused_adam"]["median_s"]
                                                       / g["mixsig_gated_head"]["median_s"], 2)
        res["gated_15_epochs"] = g
        print(f"gated head, 15 epochs, {N_TRAIN} train x 3x{DIM} (+{N_VAL} val each epoch), "
              f"{g['parameters']:,} parameters, {args.threads} thread(s):")
        for label, key in (("reference (DataLoader, Adam)", "reference_dataloader"),
                           ("reference with fused Adam", "reference_dataloader_fused_adam"),
                           ("mixsig gated head", "mixsig_gated_head")):
            print(f"  {label:32s} min {g[key]['min_s']:7.2f} s   median {g[key]['median_s']:7.2f} s")
        print(f"  ratio reference / mixsig (median): {g['ratio_reference_over_mixsig']:.2f}x "
              f"(fused-Adam reference / mixsig: {g['ratio_reference_fused_over_mixsig']:.2f}x)")

    if not args.skip_lightgbm:
        params = {"num_threads": args.threads}
        head = LightGBMHead(**params)
        t_build, _ = timed(lambda: head.make_dataset(Xtr, ytr, X_val=Xva, y_val=yva))
        rebuilt, reused, rounds = [], [], []
        for r in range(args.repeat):
            def fit_rebuilt():
                for s in range(args.lgb_fits):
                    h = LightGBMHead(**params).fit(Xtr, ytr, X_val=Xva, y_val=yva, seed=s)
                    rounds.append(h.best_iteration_)

            def fit_reused():
                data = head.make_dataset(Xtr, ytr, X_val=Xva, y_val=yva)   # once per K fits, counted
                for s in range(args.lgb_fits):
                    LightGBMHead(**params).fit(Xtr, ytr, X_val=Xva, y_val=yva, seed=s, dataset=data)

            rebuilt.append(timed(fit_rebuilt)[0])
            reused.append(timed(fit_reused)[0])
        lg = {"fits_per_timing": args.lgb_fits, "dataset_construction_s": round(t_build, 3),
              "rebuilt_each_fit": summary(rebuilt), "constructed_once_reused": summary(reused),
              "best_iterations": sorted(set(rounds)),
              "params": {k: v for k, v in LightGBMHead(**params).get_params().items() if k != "class_weight"}}
        lg["ratio_rebuilt_over_reused"] = round(lg["rebuilt_each_fit"]["median_s"]
                                                / lg["constructed_once_reused"]["median_s"], 2)
        res["lightgbm"] = lg
        print(f"LightGBM, {args.lgb_fits} fits on {N_TRAIN} x {3 * DIM} (max_bin {lg['params']['max_bin']}, "
              f"feature_fraction {lg['params']['feature_fraction']}, early stopping on val; best iterations "
              f"{lg['best_iterations']}), {args.threads} thread(s); one Dataset construction "
              f"{t_build:.2f} s:")
        print(f"  Dataset rebuilt every fit        min {lg['rebuilt_each_fit']['min_s']:7.2f} s   "
              f"median {lg['rebuilt_each_fit']['median_s']:7.2f} s")
        print(f"  Dataset constructed once, reused min {lg['constructed_once_reused']['min_s']:7.2f} s   "
              f"median {lg['constructed_once_reused']['median_s']:7.2f} s")
        print(f"  ratio rebuilt / reused (median): {lg['ratio_rebuilt_over_reused']:.2f}x")

    if not args.skip_seeds:
        res["seeds_together"] = seeds_bench(args)

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
