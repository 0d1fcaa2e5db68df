"""Fine-tuning: an encoder with a classification head; the head, the last K encoder blocks and what follows them
(pooler, final norm) trainable, or every parameter (``unfreeze_last="all"``).

``finetune`` trains on the train split (best validation accuracy kept), saves the checkpoint as safetensors in a
folder beside the store, extracts embeddings from the fine-tuned encoder into a key whose provenance holds the
checkpoint sha256 and the training config, and writes the classifier's own class probabilities for every row
as a run (``source="finetune"``, one subset: the modality).

With ``folds=K`` (K >= 2) the train rows are split into K folds (stratified by label, grouped by ``group`` when
the manifest has groups); model k is trained without fold k and gives fold k's embeddings and probabilities, so
every train row's numbers come from a model that never saw it. A further model trained on all train rows gives
the other rows. The fold of each row is stored in the key as an array ``fold`` [N] int8 (-1 = the all-train
model) and in the run as ``attrs["fold"]``.

The run has the same shape as every other run: ``metrics = {modality: {split: aggregate([point_metrics(...)])}}``
(:mod:`mixsig.metrics`, one seed: std None), plus ``trained_parameters`` (what trained, counts trained / total)
and, where groups cross splits and that was allowed, ``group_leak``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mixsig.cache import RunSubset, Status, sha256_of
from mixsig.errors import ExtractionError, UsageError
from mixsig.extract._decode import RowFailure
from mixsig.extract._encoders import Preprocess, RowInput, get_inputs, load_config, _from_pretrained
from mixsig.extract._model import load_encoder
from mixsig.extract._pipeline import RunOptions, default_chunk_rows, make_batches, row_sources, run_extraction
from mixsig.extract._revision import folder_sha256, is_local, resolve_revision

log = logging.getLogger(__name__)

#: transformers auto class per modality
AUTO_CLASSES = {"text": "AutoModelForSequenceClassification", "audio": "AutoModelForAudioClassification",
                "video": "AutoModelForVideoClassification"}


@dataclass(frozen=True)
class FinetuneConfig:
    """Training settings (paper defaults). ``to_dict()`` goes into the key's provenance and the run's attrs."""

    # 0: the classification head only; K >= 1: the head, the last K encoder blocks and the modules the base model
    # runs after its last block on the way to the classifier (pooler, final norm); "all": every parameter
    unfreeze_last: int | str = 2
    epochs: int = 15
    lr: float = 5e-6
    batch_size: int = 8
    weight_decay: float = 0.01    # AdamW
    seed: int = 0
    folds: int = 1                # >= 2: out-of-fold embeddings and probabilities for train rows

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        k = self.unfreeze_last
        if not (k == "all" or (isinstance(k, int) and not isinstance(k, bool) and k >= 0)):
            raise UsageError(f"--unfreeze-last takes a number of blocks >= 0 or 'all'; got {k!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise UsageError(f"finetune needs --unfreeze-last >= 0, --epochs >= 1, --batch-size >= 1 and --lr > 0; "
                             f"got {self.to_dict()}")
        if self.folds < 1:
            raise UsageError(f"--folds must be 1 (no folds) or >= 2; got {self.folds}")


@dataclass
class FinetuneResult:
    key: str
    run: str
    checkpoints: dict                      # {"all": path, "fold0": path, ...} relative to the store's parent
    checkpoint_sha256: dict                # same keys -> sha256 of the checkpoint folder
    val_accuracy: dict                     # best validation accuracy per model
    best_epoch: dict
    metrics: dict                          # the run's: {modality: {split: {metric: {"mean", "std", "per_seed"}}}}
    extraction: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)               # {split: labelled rows with probabilities}
    trained_parameters: dict = field(default_factory=dict)  # unfreeze_last, trained, total, modules
    group_leak: dict | None = None         # groups crossing splits, allowed by --allow-group-leak
    threads: int | None = None             # torch threads it ran with

    def to_dict(self) -> dict:
        return asdict(self)


def _encoder_blocks(base, n_layers: int):
    """The ModuleList of the encoder's transformer blocks (the largest with ``num_hidden_layers`` entries)."""
    import torch

    candidates = [m for m in base.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers]
    if not candidates:
        raise ExtractionError(f"cannot find the {n_layers} encoder blocks of {type(base).__name__} to unfreeze; "
                              "use --unfreeze-last 0 to train the classifier only")
    return max(candidates, key=lambda m: sum(p.numel() for p in m.parameters()))


def _after_blocks(model, base, last_block, example: dict) -> list:
    """Modules of ``base`` holding parameters that run after ``last_block`` in one forward of ``model`` on
    ``example`` (eval mode, no grad): what lies between the last block and the classifier (a pooler, a final norm)."""
    import torch

    state = {"after": False}
    found: list = []

    def mark_done(module, inputs, output):
        state["after"] = True

    def pre(module, inputs):
        if state["after"] and not any(m is module for m in found):
            found.append(module)

    handles = [last_block.register_forward_hook(mark_done)]
    handles += [m.register_forward_pre_hook(pre) for m in base.modules() if m is not base
                and next(m.parameters(recurse=False), None) is not None]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(**example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return found


def set_trainable(model, unfreeze_last, example: dict | None = None) -> dict:
    """Freeze the model, then make trainable (``unfreeze_last``):

    - ``0``: the classification head only (the parameters outside ``model.base_model``);
    - ``K >= 1``: the head, the last K encoder blocks and the modules the base model runs after its last block
      on the way to the classifier (BERT's pooler, a final layer norm), found by one forward on ``example``
      (a collated batch of model inputs, on the model's device; required for these K);
    - ``"all"``: every parameter, embeddings included (a full fine-tune).

    Returns ``{"unfreeze_last", "trained", "total", "modules"}``: parameter counts trained / total and the names of
    the trained modules (the head's top modules, the blocks, the modules after them; ``["all"]`` for all)."""
    names = {id(m): n for n, m in model.named_modules()}
    base = model.base_model
    params = {id(p): p for p in model.parameters()}
    for p in params.values():
        p.requires_grad = False
    if unfreeze_last == "all":
        trainable = dict(params)
        modules = ["all"]
    else:
        base_ids = {id(p) for p in base.parameters()}
        head = [(n, m) for n, m in model.named_children() if m is not base
                and any(id(p) not in base_ids for p in m.parameters())]
        trainable = {i: p for i, p in params.items() if i not in base_ids}
        if not trainable:
            raise ExtractionError(f"{type(model).__name__} has no classification head outside its base model")
        modules = [n for n, _ in head] + [n for n, _ in model.named_parameters(recurse=False)]
        k = int(unfreeze_last)
        if k:
            n_layers = int(model.config.num_hidden_layers)
            if k > n_layers:
                raise UsageError(f"--unfreeze-last {k} exceeds the encoder's {n_layers} blocks; use 'all' for a "
                                 "full fine-tune")
            if example is None:
                raise ValueError("set_trainable needs an example batch for unfreeze_last >= 1")
            blocks = list(_encoder_blocks(base, n_layers))
            chosen = blocks[-k:] + _after_blocks(model, base, blocks[-1], example)
            for m in chosen:
                trainable.update({id(p): p for p in m.parameters()})
                modules.append(names.get(id(m), type(m).__name__))
    for p in trainable.values():
        p.requires_grad = True
    return {"unfreeze_last": unfreeze_last, "trained": int(sum(p.numel() for p in trainable.values())),
            "total": int(sum(p.numel() for p in params.values())), "modules": modules}


def _prepare_all(inputs, sources: dict, workers: int = 2) -> dict[int, RowInput | RowFailure]:
    def one(src):
        try:
            return inputs.prepare(src)
        except RowFailure as exc:
            return exc
        except Exception as exc:
            return RowFailure(Status.ERROR, f"row {src.row}: {type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = sorted(sources)
        return dict(zip(rows, pool.map(one, [sources[r] for r in rows])))


def _predict(model, inputs, items: list[RowInput], device: str, budget: int) -> dict[int, np.ndarray]:
    """Class probabilities [C] per row (eval mode, length-sorted batches)."""
    import torch

    model.eval()
    out = {}
    with torch.inference_mode():
        for batch in make_batches(items, budget, 64, inputs.exact_length):
            feats = {k: v.to(device) for k, v in inputs.collate(batch).items()}
            probs = torch.softmax(model(**feats).logits.float(), dim=-1).cpu().numpy()
            out.update({it.row: p for it, p in zip(batch, probs)})
    return out


def train_one(model_factory, inputs, train: list[RowInput], labels: dict[int, int], val: list[RowInput],
              config: FinetuneConfig, device: str, budget: int, seed: int, tag: str):
    """Train one model; returns (model with the best-validation weights, best val accuracy, best epoch)."""
    import torch

    torch.manual_seed(seed)
    model = model_factory()
    model.to(device)
    example = {k: v.to(device) for k, v in inputs.collate(train[:1]).items()}
    counts = set_trainable(model, config.unfreeze_last, example)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    log.info("%s: training %d of %d parameters (--unfreeze-last %s: %s) on %d rows (val %d) for %d epochs with %d "
             "torch threads", tag, counts["trained"], counts["total"], config.unfreeze_last,
             ", ".join(counts["modules"]), len(train), len(val), config.epochs, torch.get_num_threads())
    best_acc, best_epoch, best_state = -1.0, -1, None
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        total = 0.0
        for i in range(0, len(order), config.batch_size):
            batch = [train[j] for j in order[i:i + config.batch_size]]
            feats = {k: v.to(device) for k, v in inputs.collate(batch).items()}
            y = torch.tensor([labels[it.row] for it in batch], device=device)
            loss = model(**feats, labels=y).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        if val:
            probs = _predict(model, inputs, val, device, budget)
            acc = float(np.mean([int(np.argmax(probs[it.row]) == labels[it.row]) for it in val]))
        else:
            acc = float(epoch)  # no validation rows: keep the last epoch
        log.info("%s: epoch %d loss %.4f val accuracy %.4f", tag, epoch + 1, total / max(len(train), 1), acc)
        if acc > best_acc:
            best_acc, best_epoch = acc, epoch + 1
            best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        named = dict(model.named_parameters())
        for n, v in best_state.items():
            named[n].copy_(v)
    model.eval()
    return model, (best_acc if val else None), best_epoch, counts


def _folds(train_rows: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index [len(train_rows)] (stratified by label; grouped by ``group`` when groups are given)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = labels[train_rows]
    g = groups[train_rows]
    if (g != "").all() and len(set(g.tolist())) >= k:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        splits = splitter.split(train_rows, y, g)
    else:
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(train_rows, y)
    fold = np.full(len(train_rows), -1, np.int8)
    for i, (_, held) in enumerate(splits):
        fold[held] = i
    return fold


#: split order of a run's metrics (as train_run writes them): train, val, test, then the others by name
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def checkpoint_root(store_url) -> Path:
    """``<store parent>/<store stem>.checkpoints/``: beside the store, outside its Zarr hierarchy."""
    p = Path(str(store_url)).expanduser().resolve()
    return p.parent / f"{p.stem}.checkpoints"


def finetune(manifest, store, modality: str, encoder: str, *, config: FinetuneConfig = FinetuneConfig(),
             revision: str | None = None, pooling: str = "cls", layers: str = "last", dtype: str = "float32",
             preprocess: Preprocess | None = None, device: str | None = None, trust_remote_code: bool = False,
             checkpoint_dir=None, run_name: str | None = None, classes=None, workers: int = 2,
             batch_budget: int | None = None, overwrite: bool = False, key_name: str | None = None,
             threads: int | None = None, allow_group_leak: bool = False,
             allowed_by: str | None = None) -> FinetuneResult:
    """Fine-tune ``encoder`` on ``modality`` of ``manifest``'s train split; cache embeddings and probabilities.

    ``store``: a store folder (created from the manifest if missing) or an open FeatureStore. Checkpoints go to
    ``checkpoint_dir`` (default :func:`checkpoint_root` of the store) under a folder named after the
    fine-tuned key. ``key_name``: the readable part of the fine-tuned key (default ``<encoder>-ft``; not hashed).
    ``threads``: torch threads while it runs (restored after; None = :func:`~mixsig.extract.default_threads`). Groups that cross splits raise
    :class:`~mixsig.errors.GroupLeak` (exit code 3) unless ``allow_group_leak``; then the leak and ``allowed_by``
    (the command line) are recorded in the store's attr ``group_leak`` and the run's attrs ``group_leak``.
    Returns a :class:`FinetuneResult`.
    """
    from mixsig.extract._api import check_key_name
    from mixsig.extract._threads import default_threads, torch_threads

    config.validate()
    check_key_name(key_name, "--key-name")
    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise UsageError(f"--threads must be >= 1; got {threads}")
    with torch_threads(threads):
        res = _finetune(manifest, store, modality, encoder, config=config, revision=revision, pooling=pooling,
                        layers=layers, dtype=dtype, preprocess=preprocess, device=device,
                        trust_remote_code=trust_remote_code, checkpoint_dir=checkpoint_dir, run_name=run_name,
                        classes=classes, workers=workers, batch_budget=batch_budget, overwrite=overwrite,
                        key_name=key_name, allow_group_leak=allow_group_leak, allowed_by=allowed_by)
    res.threads = threads
    return res


def _finetune(manifest, store, modality: str, encoder: str, *, config, revision, pooling, layers, dtype, preprocess,
              device, trust_remote_code, checkpoint_dir, run_name, classes, workers, batch_budget, overwrite,
              key_name, allow_group_leak, allowed_by) -> FinetuneResult:
    import transformers

    from mixsig import __version__
    from mixsig.cache import FeatureStore
    from mixsig.cache._keys import short_name
    from mixsig.extract._api import check_ids, check_store_group_leak, open_or_create_store
    from mixsig.extract._sharding import default_device
    from mixsig.manifest import Manifest, check_group_leak, load_manifest, to_samples
    from mixsig.metrics import aggregate, point_metrics

    if modality not in AUTO_CLASSES:
        raise UsageError(f"The 'modality' parameter of finetune must be one of {set(AUTO_CLASSES)}. Got {modality!r}.")
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, classes=classes, check_media=False, group_leak_errors=False)
    check_group_leak(manifest, allow_group_leak, "mixsig finetune")  # refuse before creating anything
    samples = to_samples(manifest)
    if not isinstance(store, FeatureStore):
        store = open_or_create_store(store, manifest, samples, coordinator=True)
    else:
        check_ids(store, manifest)
    leak = check_store_group_leak(store, allow_group_leak, "mixsig finetune", allowed_by)
    device = device or default_device()
    preprocess = preprocess or Preprocess()
    s = store.samples
    n, classes_ = len(s), list(s.classes)
    if len(classes_) < 2:
        raise UsageError(f"finetune needs at least two classes; the store has {classes_}")

    base_revision = resolve_revision(encoder, revision)
    load_rev = None if is_local(encoder) else base_revision
    base_config = load_config(encoder, load_rev, trust_remote_code)
    inputs = get_inputs(modality, encoder, load_rev, trust_remote_code, preprocess, base_config)
    auto = getattr(transformers, AUTO_CLASSES[modality])

    def factory():
        return _from_pretrained(auto, encoder, load_rev, trust_remote_code, "weights", num_labels=len(classes_),
                                id2label=dict(enumerate(classes_)), label2id={c: i for i, c in enumerate(classes_)})

    # decode every row once (train, val and prediction all read from memory)
    current = samples.content_hash.get(modality)
    sources = row_sources(samples, manifest.root, modality, range(n), current)
    prepared = _prepare_all(inputs, sources, workers)
    ok = {r: v for r, v in prepared.items() if isinstance(v, RowInput)}
    label = s.label
    train_rows = np.array([r for r in s.rows("train") if r in ok and label[r] >= 0], np.int64)
    val_rows = np.array([r for r in s.rows("val") if r in ok and label[r] >= 0], np.int64) if "val" in set(s.split) else np.zeros(0, np.int64)
    if len(train_rows) < 2:
        raise ExtractionError(f"finetune needs labelled train rows with {modality} input; found {len(train_rows)}")
    labels = {int(r): int(label[r]) for r in ok}
    budget = int(batch_budget or inputs.default_budget(device))

    fold = np.full(n, -1, np.int8)
    models_rows: dict[str, np.ndarray] = {}
    if config.folds >= 2:
        f = _folds(train_rows, label, s.group, config.folds, config.seed)
        fold[train_rows] = f
        for k in range(config.folds):
            models_rows[f"fold{k}"] = train_rows[f == k]
    models_rows["all"] = np.array([r for r in range(n) if fold[r] < 0], np.int64)

    train_cfg = config.to_dict()
    short = short_name(Path(encoder).name if is_local(encoder) else encoder)
    cfg_hash = sha256_of({"encoder": short, "base_revision": base_revision, "modality": modality, "config": train_cfg,
                          "preprocessing": inputs.record(), "split_hash": store.split_hash()})[:12]
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir else checkpoint_root(store.url)
    ckpt_base = ckpt_root / f"{modality}.{short}-ft.{cfg_hash}"
    trained: dict[str, tuple] = {}
    sha: dict[str, str] = {}
    counts: dict = {}
    for tag, held in models_rows.items():
        tr = train_rows if tag == "all" else np.setdiff1d(train_rows, held)
        model, acc, epoch, counts = train_one(factory, inputs, [ok[r] for r in tr], labels,
                                              [ok[r] for r in val_rows], config, device, budget,
                                              config.seed + (0 if tag == "all" else 1 + int(tag[4:])), tag)
        folder = ckpt_base / tag
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        model.save_pretrained(folder, safe_serialization=True)
        proc = getattr(inputs, "tokenizer", None) or getattr(inputs, "extractor", None) or getattr(inputs, "processor")
        proc.save_pretrained(folder)
        sha[tag] = folder_sha256(folder)
        trained[tag] = (model, acc, epoch, folder)
        log.info("%s: best val accuracy %.4f at epoch %d; checkpoint %s (sha256 %s)", tag, acc, epoch, folder, sha[tag][:12])

    # probabilities for every row, each from the model that did not see it (train rows) or the all-train model
    probs = np.full((n, len(classes_)), np.nan, np.float32)
    for tag, rows in models_rows.items():
        items = [ok[r] for r in rows if r in ok]
        for r, p in _predict(trained[tag][0], inputs, items, device, budget).items():
            probs[r] = p

    # embeddings from the fine-tuned encoders into one key
    extra = {"finetune": {"base_encoder": short, "base_revision": base_revision, "config": train_cfg,
                          "checkpoint_sha256": {t: sha[t] for t in sorted(sha)}, "auto_class": AUTO_CLASSES[modality],
                          "split_hash": store.split_hash()}}
    encoders = {}
    for tag in models_rows:
        model = trained[tag][0]
        encoders[tag] = load_encoder(modality, str(trained[tag][3]), pooling=pooling, layers=layers, dtype=dtype,
                                     preprocess=preprocess, device=device, model=model.base_model,
                                     display_name=f"{short}-ft")
    combined = "sha256:" + sha256_of({t: sha[t] for t in sorted(sha)})
    first = encoders["all"]
    prov = dataclasses.replace(first.provenance(extra), revision=combined)
    key = prov.key(key_name)
    width = int(np.prod(first.dim)) * (2 if dtype == "float16" else 4)
    store.create_key(prov, first.dim, chunk_rows=default_chunk_rows(n, width), dtype=dtype, name=key_name)
    extraction = {}
    for tag, rows in models_rows.items():
        res = run_extraction(store, key, encoders[tag],
                             lambda rr: row_sources(samples, manifest.root, modality, rr, current),
                             options=RunOptions(workers=workers, batch_budget=batch_budget), current_hash=current,
                             rows=rows)
        extraction[tag] = {"written": res.written, "failed": res.failed, "skipped_done": res.skipped_done}
    g = store.key_group(key)
    if "fold" in set(g.array_keys()):
        del g["fold"]
    g.create_array("fold", shape=(n,), dtype="int8", chunks=(n,), fill_value=-1)[...] = fold
    g.attrs["fold_models"] = {"-1": "all"} | {str(k): f"fold{k}" for k in range(config.folds if config.folds >= 2 else 0)}

    # the run's metrics exactly as train_run builds them: {subset: {split: aggregate([point_metrics per seed])}}
    run_probs = probs[None]  # [S=1, N, C]: one seed
    predicted = np.isfinite(probs).all(axis=1)
    metrics: dict = {modality: {}}
    split_rows: dict = {}
    for split in sorted(s.splits, key=lambda x: (_SPLIT_ORDER.get(x, 3), x)):
        rows = np.flatnonzero((s.split == split) & (label >= 0) & predicted)
        if rows.size == 0:
            continue
        per_seed = [point_metrics(label[rows], run_probs[i, rows].astype(np.float64)) for i in range(len(run_probs))]
        metrics[modality][split] = aggregate(per_seed)
        split_rows[split] = int(rows.size)
    rel = {t: _relative(trained[t][3], store) for t in trained}
    name = run_name or f"finetune.{modality}.{short}.{cfg_hash[:8]}"
    attrs = {
        "head": f"finetune:{AUTO_CLASSES[modality]}", "params": train_cfg, "features": {modality: key},
        "modalities": [modality], "seeds": [config.seed], "classes": classes_, "split_hash": store.split_hash(),
        "metrics": metrics,
        "source": "finetune", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mixsig_version": __version__, "checkpoints": rel, "checkpoint_sha256": sha,
        "val_accuracy": {t: trained[t][1] for t in trained}, "best_epoch": {t: trained[t][2] for t in trained},
        "fold": fold.tolist(), "encoder": short, "base_revision": base_revision, "trained_parameters": counts,
        "group_leak": leak,
    }
    store.write_run(name, attrs, {modality: RunSubset(probs=run_probs)}, overwrite=overwrite)
    return FinetuneResult(key=key, run=name, checkpoints=rel, checkpoint_sha256=sha,
                          val_accuracy={t: trained[t][1] for t in trained},
                          best_epoch={t: trained[t][2] for t in trained}, metrics=metrics, extraction=extraction,
                          rows=split_rows, trained_parameters=counts, group_leak=leak)


def _relative(path: Path, store) -> str:
    root = store.local_path
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve().parent)) if root else str(path)
    except ValueError:
        return str(path)


__all__ = ["AUTO_CLASSES", "FinetuneConfig", "FinetuneResult", "checkpoint_root", "finetune", "set_trainable"]
