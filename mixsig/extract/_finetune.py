"""Fine-tuning: an encoder with a classification head; the head, the last K encoder blocks and what follows them
(pooler, final norm) trainable, or every parameter (``unfreeze_last="all"``).

``finetune`` trains on the train split with the loop of :mod:`mixsig.training` (best validation accuracy kept;
the last epoch without validation rows; seeded without touching the caller's RNG), saves the checkpoint as safetensors in a
folder beside the store, extracts embeddings from the fine-tuned encoder into a key whose provenance holds the
checkpoint sha256 and the training config, and writes the classifier's own class probabilities for every row
as a run (``source="finetune"``, one subset: the modality).

With ``folds=K`` (K >= 2) the train rows are split into K folds (stratified by label, grouped by ``group`` when
the manifest has groups); model k is trained without fold k and gives fold k's embeddings and probabilities, so
every train row's numbers come from a model that never saw it. A further model trained on all train rows gives
the other rows. The fold of each row is stored in the key as an array ``fold`` [N] int8 (-1 = the all-train
model; ``FeatureStore.add_key_array``) and in the run as ``attrs["fold"]``.

The run is a :class:`~mixsig.cache.RunRecord`: ``metrics = {modality: subset_metrics(...)}`` (one seed: std None),
plus the fine-tune fields (``checkpoints``, ``trained_parameters`` (trained / total), ...) and ``group_leak``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mixsig.cache import RunRecord, RunSubset, sha256_of, subset_metrics
from mixsig.errors import UsageError
from mixsig.extract._batches import make_batches
from mixsig.extract._decode import RowFailure
from mixsig.extract._encoders import (
    Preprocess,
    RowInput,
    _from_pretrained,
    get_inputs,
    load_config,
)
from mixsig.extract._folds import plan_models
from mixsig.extract._model import load_encoder
from mixsig.extract._pipeline import (
    RunOptions,
    prepare_row,
    row_sources,
    run_extraction,
)
from mixsig.extract._revision import folder_sha256, is_local, resolve_revision
from mixsig.extract._trainable import set_trainable

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


def _prepare_all(inputs, sources: dict, workers: int = 2) -> dict[int, RowInput | RowFailure]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = sorted(sources)
        return dict(zip(rows, pool.map(lambda src: prepare_row(inputs, src), [sources[r] for r in rows])))


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
    """Train one model with :func:`mixsig.training.train_epochs` inside :func:`~mixsig.training.seeded`
    (``seed``: the classifier's initialisation and dropout; the rows are shuffled by the local generator of the
    same seed; the caller's RNG is left as it was). Returns (model with the best-validation weights, best val
    accuracy or None without validation rows, best epoch (1-based; the last without validation rows), the
    trained parameter counts)."""
    import torch

    from mixsig.training import BestWeights, seeded, train_epochs

    with seeded(seed, devices=[device], warn_only=True) as gen:
        model = model_factory()
        model.to(device)
        example = {k: v.to(device) for k, v in inputs.collate(train[:1]).items()}
        counts = set_trainable(model, config.unfreeze_last, example)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                weight_decay=config.weight_decay)
        log.info("%s: training %d of %d parameters (--unfreeze-last %s: %s) on %d rows (val %d) for %d epochs with "
                 "%d torch threads", tag, counts["trained"], counts["total"], config.unfreeze_last,
                 ", ".join(counts["modules"]), len(train), len(val), config.epochs, torch.get_num_threads())
        seen = {"loss": 0.0, "acc": None}

        def step(idx):
            batch = [train[j] for j in idx.tolist()]
            feats = {k: v.to(device) for k, v in inputs.collate(batch).items()}
            y = torch.tensor([labels[it.row] for it in batch], device=device)
            loss = model(**feats, labels=y).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen["loss"] += float(loss.detach()) * len(batch)

        def evaluate() -> float:
            probs = _predict(model, inputs, val, device, budget)
            seen["acc"] = float(np.mean([int(np.argmax(probs[it.row]) == labels[it.row]) for it in val]))
            return seen["acc"]

        def epoch_end(epoch: int) -> None:
            acc = "no validation rows" if seen["acc"] is None else f"val accuracy {seen['acc']:.4f}"
            log.info("%s: epoch %d loss %.4f %s", tag, epoch + 1, seen["loss"] / max(len(train), 1), acc)
            seen["loss"] = 0.0

        res = train_epochs(len(train), step, batch_size=config.batch_size, epochs=config.epochs,
                           evaluate=evaluate if val else None, best=BestWeights(model, trainable_only=True),
                           module=model, generator=gen, drop_single=False, on_epoch_end=epoch_end)
    model.eval()
    best_epoch = res.epochs if res.best_point is None else res.best_point + 1
    return model, res.best_score, best_epoch, counts


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
             allowed_by: str | None = None, update_samples: bool = False,
             allow_outside_paths: bool = False) -> FinetuneResult:
    """Fine-tune ``encoder`` on ``modality`` of ``manifest``'s train split; cache embeddings and probabilities.

    ``store``: a store folder (created from the manifest if missing) or an open FeatureStore. Checkpoints go to
    ``checkpoint_dir`` (default :func:`checkpoint_root` of the store) under a folder named after the
    fine-tuned key. ``key_name``: the readable part of the fine-tuned key (default ``<encoder>-ft``; not hashed).
    ``threads``: torch threads while it runs (restored after; None = :func:`~mixsig.extract.default_threads`).
    Groups that cross splits raise :class:`~mixsig.errors.GroupLeak` (exit code 3) unless ``allow_group_leak``; then the leak and ``allowed_by``
    (the command line) are recorded in the store's attr ``group_leak`` and the run's attrs ``group_leak``.
    Media paths outside the manifest's folder are refused (exit 3) unless ``allow_outside_paths``.
    A manifest that differs from the store's samples table is refused (exit 3) unless ``update_samples``
    (see :func:`mixsig.cache.update_samples`).
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
                        key_name=key_name, allow_group_leak=allow_group_leak, allowed_by=allowed_by,
                        update_samples=update_samples, allow_outside_paths=allow_outside_paths)
    res.threads = threads
    return res


def _finetune(manifest, store, modality: str, encoder: str, *, config, revision, pooling, layers, dtype, preprocess,
              device, trust_remote_code, checkpoint_dir, run_name, classes, workers, batch_budget, overwrite,
              key_name, allow_group_leak, allowed_by, update_samples=False, allow_outside_paths=False) -> FinetuneResult:
    import transformers

    from mixsig.cache import short_name
    from mixsig.extract._sharding import default_device

    if modality not in AUTO_CLASSES:
        raise UsageError(f"The 'modality' parameter of finetune must be one of {set(AUTO_CLASSES)}. Got {modality!r}.")
    manifest, samples, store, leak = _open(manifest, store, classes, allow_group_leak, allowed_by, update_samples,
                                           allow_outside_paths)
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
    train_rows, val_rows, fold, models_rows = plan_models(s, ok, config, modality)
    labels = {int(r): int(label[r]) for r in ok}
    budget = int(batch_budget or inputs.default_budget(device))

    train_cfg = config.to_dict()
    short = short_name(Path(encoder).name if is_local(encoder) else encoder)
    cfg_hash = sha256_of({"encoder": short, "base_revision": base_revision, "modality": modality, "config": train_cfg,
                          "preprocessing": inputs.record(), "split_hash": store.split_hash()})[:12]
    ckpt_root = Path(checkpoint_dir) if checkpoint_dir else checkpoint_root(store.url)
    ckpt_base = ckpt_root / f"{modality}.{short}-ft.{cfg_hash}"
    trained, sha, counts = _train_models(factory, inputs, ok, labels, train_rows, val_rows, models_rows, config,
                                         device, budget, ckpt_base)

    probs = _predict_rows(trained, inputs, ok, models_rows, (n, len(classes_)), device, budget)
    extra = {"finetune": {"base_encoder": short, "base_revision": base_revision, "config": train_cfg,
                          "checkpoint_sha256": {t: sha[t] for t in sorted(sha)}, "auto_class": AUTO_CLASSES[modality],
                          "split_hash": store.split_hash()}}
    key, extraction = _extract_key(store, manifest, samples, modality, trained, models_rows, extra, sha, fold, current,
                                   config, pooling=pooling, layers=layers, dtype=dtype, preprocess=preprocess,
                                   device=device, short=short, key_name=key_name, workers=workers,
                                   batch_budget=batch_budget)
    return _write_run(
        store, probs, extraction, overwrite,
        name=run_name or f"finetune.{modality}.{short}.{cfg_hash[:8]}", head=f"finetune:{AUTO_CLASSES[modality]}",
        params=train_cfg, features={modality: key}, modalities=[modality], seeds=[config.seed], classes=classes_,
        split_hash=store.split_hash(), source="finetune", group_leak=leak, selection_splits=["val"] * bool(len(val_rows)),
        checkpoints={t: _relative(trained[t][3], store) for t in trained}, checkpoint_sha256=sha,
        val_accuracy={t: trained[t][1] for t in trained}, best_epoch={t: trained[t][2] for t in trained},
        fold=fold.tolist(), encoder=short, base_revision=base_revision, trained_parameters=counts)


def _predict_rows(trained: dict, inputs, ok: dict, models_rows: dict, shape: tuple[int, int], device: str,
                  budget: int) -> np.ndarray:
    """Class probabilities [N, C] float32 for every row, each from the model that did not see it (train rows) or
    the all-train model; NaN for rows without input."""
    probs = np.full(shape, np.nan, np.float32)
    for tag, rows in models_rows.items():
        for r, p in _predict(trained[tag][0], inputs, [ok[r] for r in rows if r in ok], device, budget).items():
            probs[r] = p
    return probs


def _extract_key(store, manifest, samples, modality: str, trained: dict, models_rows: dict, extra: dict, sha: dict,
                 fold: np.ndarray, current, config, *, pooling, layers, dtype, preprocess, device, short: str,
                 key_name, workers, batch_budget) -> tuple[str, dict]:
    """Embeddings from the fine-tuned encoders into one key, each row from the model that predicts it, and the
    fold of each row as the key's array ``fold``. Returns (key, {model tag: extraction counts})."""
    encoders = {tag: load_encoder(modality, str(trained[tag][3]), pooling=pooling, layers=layers, dtype=dtype,
                                  preprocess=preprocess, device=device, model=trained[tag][0].base_model,
                                  display_name=f"{short}-ft") for tag in models_rows}
    key = _create_key(store, encoders["all"], extra, sha, dtype, key_name)
    extraction = {}
    for tag, rows in models_rows.items():
        res = run_extraction(store, key, encoders[tag],
                             lambda rr: row_sources(samples, manifest.root, modality, rr, current),
                             options=RunOptions(workers=workers, batch_budget=batch_budget), current_hash=current,
                             rows=rows)
        extraction[tag] = {"written": res.written, "failed": res.failed, "skipped_done": res.skipped_done}
    store.add_key_array(key, "fold", "int8", -1, fold, overwrite=True, attrs={
        "fold_models": {"-1": "all"} | {str(k): f"fold{k}" for k in range(config.folds if config.folds >= 2 else 0)}})
    return key, extraction


def _write_run(store, probs: np.ndarray, extraction: dict, overwrite: bool, **fields) -> FinetuneResult:
    """Write the fine-tune run (the :class:`RunRecord` of ``fields``): one subset (the modality), one seed, its
    metrics as train_run records them."""
    s, modality = store.samples, fields["modalities"][0]
    predicted = np.isfinite(probs).all(axis=1)
    metrics = {modality: subset_metrics(s, probs[None], predicted)}
    split_rows = {sp: int(((s.split == sp) & (s.label >= 0) & predicted).sum()) for sp in metrics[modality]}
    record = RunRecord(metrics=metrics, **fields)
    store.write_run(record, {modality: RunSubset(probs=probs[None])}, overwrite=overwrite)
    return FinetuneResult(key=record.features[modality], run=record.name, checkpoints=record.checkpoints,
                          checkpoint_sha256=record.checkpoint_sha256, val_accuracy=record.val_accuracy,
                          best_epoch=record.best_epoch, metrics=metrics, extraction=extraction, rows=split_rows,
                          trained_parameters=record.trained_parameters, group_leak=record.group_leak)


def _open(manifest, store, classes, allow_group_leak: bool, allowed_by, update_samples: bool = False,
          allow_outside_paths: bool = False):
    """The manifest, its samples and the store (created from the manifest if missing); groups crossing splits
    refused before anything is created unless ``allow_group_leak`` (then recorded); a manifest that differs from
    the store's samples refused, or with ``update_samples`` written into the store (every media hash compared:
    fine-tuning hashes them anyway). Returns them and the leak."""
    from mixsig.cache import FeatureStore
    from mixsig.extract._api import check_store_group_leak, load_checked, open_or_create_store, sync_samples
    from mixsig.manifest import check_group_leak, to_samples

    manifest = load_checked(manifest, classes, allow_outside_paths, "mixsig finetune")
    check_group_leak(manifest, allow_group_leak, "mixsig finetune")  # refuse before creating anything
    samples = to_samples(manifest)
    if not isinstance(store, FeatureStore):
        store = open_or_create_store(store, manifest, samples, coordinator=True)
    sync_samples(store, manifest, update=update_samples, command="mixsig finetune", samples=samples)
    return manifest, samples, store, check_store_group_leak(store, allow_group_leak, "mixsig finetune", allowed_by)


def _train_models(factory, inputs, ok: dict, labels: dict, train_rows, val_rows, models_rows: dict, config,
                  device: str, budget: int, ckpt_base: Path):
    """Train each model of ``models_rows`` ("all": on every train row; "fold<k>": without fold k's rows), save its
    checkpoint under ``ckpt_base/<tag>``; returns ``({tag: (model, val acc, best epoch, folder)}, {tag: folder
    sha256}, trained parameter counts)``."""
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
        kept = f"best val accuracy {acc:.4f} at epoch {epoch}" if acc is not None else f"last epoch ({epoch}) kept"
        log.info("%s: %s; checkpoint %s (sha256 %s)", tag, kept, folder, sha[tag][:12])
    return trained, sha, counts


def _create_key(store, first, extra: dict, sha: dict, dtype: str, key_name: str | None) -> str:
    """Create the fine-tuned key: ``first``'s provenance with ``extra`` and the checkpoints' combined sha256 as
    its revision."""
    combined = "sha256:" + sha256_of({t: sha[t] for t in sorted(sha)})
    prov = dataclasses.replace(first.provenance(extra), revision=combined)
    store.create_key(prov, first.dim, dtype=dtype, name=key_name)  # chunks: the store's default_chunk_rows
    return prov.key(key_name)


def _relative(path: Path, store) -> str:
    root = store.local_path
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve().parent)) if root else str(path)
    except ValueError:
        return str(path)


__all__ = ["AUTO_CLASSES", "FinetuneConfig", "FinetuneResult", "checkpoint_root", "finetune"]
