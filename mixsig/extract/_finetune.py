"""Fine-tuning: an encoder with a classification head, the head and the last K encoder blocks trainable.

``finetune`` trains on the train split (best validation accuracy kept), saves the checkpoint as safetensors in a
folder beside the store, extracts embeddings from the fine-tuned encoder into a key whose provenance holds the
checkpoint sha256 and the training config, and writes the classifier's own class probabilities for every row
as a run (``source="finetune"``, one subset: the modality).

With ``folds=K`` (K >= 2) the train rows are split into K folds (stratified by label, grouped by ``group`` when
the manifest has groups); model k is trained without fold k and gives fold k's embeddings and probabilities, so
every train row's numbers come from a model that never saw it. A further model trained on all train rows gives
the other rows. The fold of each row is stored in the key as an array ``fold`` [N] int8 (-1 = the all-train
model) and in the run as ``attrs["fold"]``.
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

    unfreeze_last: int = 2        # encoder blocks trained, counted from the top (classifier always trained)
    epochs: int = 15
    lr: float = 5e-6
    batch_size: int = 8
    weight_decay: float = 0.01    # AdamW
    seed: int = 0
    folds: int = 1                # >= 2: out-of-fold embeddings and probabilities for train rows

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        if self.unfreeze_last < 0 or self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
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
    metrics: dict                          # {split: {"accuracy": float, "macro_f1": float}}
    extraction: dict = field(default_factory=dict)

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


def set_trainable(model, unfreeze_last: int) -> dict:
    """Freeze everything but the classification head (parameters outside ``base_model``) and the last
    ``unfreeze_last`` encoder blocks. Returns counts of trainable / total parameters."""
    base = model.base_model
    for p in model.parameters():
        p.requires_grad = False
    base_ids = {id(p) for p in base.parameters()}
    head = [p for p in model.parameters() if id(p) not in base_ids]
    if not head:
        raise ExtractionError(f"{type(model).__name__} has no classification head outside its base model")
    trainable = list(head)
    if unfreeze_last:
        n_layers = int(model.config.num_hidden_layers)
        if unfreeze_last > n_layers:
            raise UsageError(f"--unfreeze-last {unfreeze_last} exceeds the encoder's {n_layers} blocks")
        blocks = _encoder_blocks(base, n_layers)
        for block in list(blocks)[-unfreeze_last:]:
            trainable.extend(block.parameters())
    for p in trainable:
        p.requires_grad = True
    return {"trainable": int(sum(p.numel() for p in trainable)), "total": int(sum(p.numel() for p in model.parameters()))}


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
    counts = set_trainable(model, config.unfreeze_last)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    log.info("%s: training %d of %d parameters on %d rows (val %d) for %d epochs", tag, counts["trainable"],
             counts["total"], len(train), len(val), config.epochs)
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
    return model, (best_acc if val else None), best_epoch


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


def _metrics(probs: np.ndarray, labels: np.ndarray, split: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    out = {}
    for s in sorted(set(split.tolist())):
        rows = np.flatnonzero((split == s) & (labels >= 0) & np.isfinite(probs).all(axis=1))
        if not len(rows):
            continue
        pred = probs[rows].argmax(1)
        out[s] = {"accuracy": float(accuracy_score(labels[rows], pred)),
                  "macro_f1": float(f1_score(labels[rows], pred, average="macro")), "rows": int(len(rows))}
    return out


def checkpoint_root(store_url) -> Path:
    """``<store parent>/<store stem>.checkpoints/``: beside the store, outside its Zarr hierarchy."""
    p = Path(str(store_url)).expanduser().resolve()
    return p.parent / f"{p.stem}.checkpoints"


def finetune(manifest, store, modality: str, encoder: str, *, config: FinetuneConfig = FinetuneConfig(),
             revision: str | None = None, pooling: str = "cls", layers: str = "last", dtype: str = "float32",
             preprocess: Preprocess | None = None, device: str | None = None, trust_remote_code: bool = False,
             checkpoint_dir=None, run_name: str | None = None, classes=None, workers: int = 2,
             batch_budget: int | None = None, overwrite: bool = False) -> FinetuneResult:
    """Fine-tune ``encoder`` on ``modality`` of ``manifest``'s train split; cache embeddings and probabilities.

    ``store``: a store folder (created from the manifest if missing) or an open FeatureStore. Checkpoints go to
    ``checkpoint_dir`` (default :func:`checkpoint_root` of the store) under a folder named after the
    fine-tuned key. Returns a :class:`FinetuneResult`.
    """
    import transformers

    from mixsig import __version__
    from mixsig.cache import FeatureStore
    from mixsig.cache._keys import short_name
    from mixsig.extract._api import check_ids, open_or_create_store
    from mixsig.extract._sharding import default_device
    from mixsig.manifest import Manifest, load_manifest, to_samples

    config.validate()
    if modality not in AUTO_CLASSES:
        raise UsageError(f"The 'modality' parameter of finetune must be one of {set(AUTO_CLASSES)}. Got {modality!r}.")
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, classes=classes, check_media=False)
    samples = to_samples(manifest)
    if not isinstance(store, FeatureStore):
        store = open_or_create_store(store, manifest, samples, coordinator=True)
    else:
        check_ids(store, manifest)
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
    for tag, held in models_rows.items():
        tr = train_rows if tag == "all" else np.setdiff1d(train_rows, held)
        model, acc, epoch = train_one(factory, inputs, [ok[r] for r in tr], labels, [ok[r] for r in val_rows],
                                      config, device, budget, config.seed + (0 if tag == "all" else 1 + int(tag[4:])), tag)
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
    key = prov.key()
    width = int(np.prod(first.dim)) * (2 if dtype == "float16" else 4)
    store.create_key(prov, first.dim, chunk_rows=default_chunk_rows(n, width), dtype=dtype)
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

    metrics = _metrics(probs, label, s.split)
    rel = {t: _relative(trained[t][3], store) for t in trained}
    name = run_name or f"finetune.{modality}.{short}.{cfg_hash[:8]}"
    attrs = {
        "head": f"finetune:{AUTO_CLASSES[modality]}", "params": train_cfg, "features": {modality: key},
        "modalities": [modality], "seeds": [config.seed], "classes": classes_, "split_hash": store.split_hash(),
        "metrics": {modality: {sp: {m: {"mean": v, "std": 0.0, "per_seed": [v]} for m, v in d.items() if m != "rows"}
                               for sp, d in metrics.items()}},
        "source": "finetune", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "mixsig_version": __version__, "checkpoints": rel, "checkpoint_sha256": sha,
        "val_accuracy": {t: trained[t][1] for t in trained}, "best_epoch": {t: trained[t][2] for t in trained},
        "fold": fold.tolist(), "encoder": short, "base_revision": base_revision,
    }
    store.write_run(name, attrs, {modality: RunSubset(probs=probs[None])}, overwrite=overwrite)
    return FinetuneResult(key=key, run=name, checkpoints=rel, checkpoint_sha256=sha,
                          val_accuracy={t: trained[t][1] for t in trained},
                          best_epoch={t: trained[t][2] for t in trained}, metrics=metrics, extraction=extraction)


def _relative(path: Path, store) -> str:
    root = store.local_path
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve().parent)) if root else str(path)
    except ValueError:
        return str(path)


__all__ = ["AUTO_CLASSES", "FinetuneConfig", "FinetuneResult", "checkpoint_root", "finetune", "set_trainable"]
