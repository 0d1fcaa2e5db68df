"""``mixsig finetune`` on CPU with tiny encoders: safetensors checkpoint, a key carrying the checkpoint hash,
a run with the classifier's probabilities, and out-of-fold models with the fold recorded per row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mixsig.cache import open_store
from mixsig.extract import folder_sha256


#: The attrs of a fine-tune run (the keys stay what they were when RunRecord replaced the hand-built dict).
FINETUNE_ATTRS = {"head", "params", "features", "modalities", "seeds", "classes", "split_hash", "metrics", "source",
                  "created", "mixsig_version", "group_leak", "checkpoints", "checkpoint_sha256", "val_accuracy",
                  "best_epoch", "fold", "encoder", "base_revision", "trained_parameters", "complete", "versions",
                  "selection_splits"}


def _run(cli, capsys, *args) -> dict:
    rc = cli("finetune", *args, "--json")
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


def test_finetune_text_checkpoint_key_and_run(tmp_path, corpus, tiny_encoders, cli, capsys):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    store_path = tmp_path / "s.zarr"
    torch.manual_seed(1234)
    rng = torch.get_rng_state()
    res = _run(cli, capsys, corpus, "--store", store_path, "--modality", "text", "--encoder", tiny_encoders["text"],
               "--epochs", "2", "--lr", "1e-3", "--seed", "1")
    assert torch.equal(torch.get_rng_state(), rng)  # seeded in a forked RNG: the caller's stream is untouched
    ckpt = tmp_path / res["checkpoints"]["all"]
    assert ckpt.parent.parent == tmp_path / "s.checkpoints"  # beside the store, outside its Zarr hierarchy
    assert (ckpt / "model.safetensors").is_file() and not list(ckpt.glob("*.bin"))
    assert folder_sha256(ckpt) == res["checkpoint_sha256"]["all"]

    store = open_store(store_path)
    assert res["key"] in store.keys() and res["key"].startswith("text.tiny-text-ft.cls.")
    prov = store.provenance(res["key"])
    ft = prov["extra"]["finetune"]
    assert ft["checkpoint_sha256"] == {"all": res["checkpoint_sha256"]["all"]}
    assert ft["config"] == {"unfreeze_last": 2, "epochs": 2, "lr": 1e-3, "batch_size": 8, "weight_decay": 0.01,
                            "seed": 1, "folds": 1}
    assert prov["revision"].startswith("sha256:")

    run = store.read_run(res["run"])
    probs = run.subsets["text"].probs
    n = len(store.samples)
    assert probs.shape == (1, n, 2) and np.allclose(probs.sum(-1), 1, atol=1e-5)
    assert run.attrs["source"] == "finetune" and run.attrs["features"] == {"text": res["key"]}
    assert set(run.attrs["metrics"]["text"]) == {"train", "val", "test"}
    assert set(run.attrs) == FINETUNE_ATTRS and run.record.to_attrs() == {k: v for k, v in run.attrs.items()
                                                                           if k != "complete"}
    assert run.attrs["selection_splits"] == ["val"]  # its epoch was chosen on val
    from mixsig.cache import in_sample_keys  # folds 1: every labelled train row embedded by the all-train model
    n_train = int(((store.samples.split == "train") & (store.samples.label >= 0)).sum())
    assert in_sample_keys(store, [res["key"]]) == {res["key"]: {"folds": 1, "train_rows": n_train,
                                                                "encoder": "tiny-text"}}

    # the cached row and the run's probabilities equal a direct forward of the saved checkpoint
    model = AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    with open(corpus, newline="") as f:
        rows = list(csv.DictReader(f))
    X = store.read(res["key"]).X
    for i in (0, 7, n - 1):
        enc = tok(rows[i]["text"], truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            out = model(**enc, output_hidden_states=True)
        assert np.abs(X[i] - out.hidden_states[-1][0, 0].numpy()).max() <= 1e-5
        assert np.abs(probs[0, i] - torch.softmax(out.logits, -1)[0].numpy()).max() <= 1e-5
    # the checkpoint really was trained: the top block moved, the frozen embeddings did not
    base = AutoModelForSequenceClassification.from_pretrained(tiny_encoders["text"], num_labels=2)
    top = model.roberta.encoder.layer[-1].output.dense.weight
    assert not torch.equal(top, base.roberta.encoder.layer[-1].output.dense.weight)
    assert torch.equal(model.roberta.embeddings.word_embeddings.weight, base.roberta.embeddings.word_embeddings.weight)


def test_finetune_folds_record_fold_per_row(tmp_path, corpus, tiny_encoders, cli, capsys):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    from mixsig.extract import decode_audio

    store_path = tmp_path / "s.zarr"
    res = _run(cli, capsys, corpus, "--store", store_path, "--modality", "audio", "--encoder", tiny_encoders["audio"],
               "--epochs", "1", "--lr", "1e-3", "--folds", "3", "--unfreeze-last", "1")
    assert set(res["checkpoints"]) == {"all", "fold0", "fold1", "fold2"}
    store = open_store(store_path)
    s = store.samples
    fold = store.read_array(res["key"], "fold")
    train = s.split == "train"
    assert set(fold[train].tolist()) == {0, 1, 2} and (fold[~train] == -1).all()
    for k in range(3):  # groups never straddle folds
        assert not set(s.group[fold == k]) & set(s.group[train & (fold != k)])
    run = store.read_run(res["run"])
    assert run.attrs["fold"] == fold.tolist()
    prov = store.provenance(res["key"])
    assert prov["extra"]["finetune"]["checkpoint_sha256"] == res["checkpoint_sha256"]
    assert store.key_info(res["key"])["done"] == len(s)
    from mixsig.cache import in_sample_keys

    assert in_sample_keys(store, [res["key"]]) == {}  # out-of-fold train embeddings

    # a train row's probabilities come from the fold model that did not see it, not from the all-train model
    r = int(np.flatnonzero(fold == 1)[0])
    path = Path(corpus).parent / s.audio[r]
    x = decode_audio(path, 16000, s.start[r], s.end[r], 10.0, True)
    preds = {}
    for tag in ("fold1", "all"):
        ckpt = tmp_path / res["checkpoints"][tag]
        fe = AutoFeatureExtractor.from_pretrained(ckpt)
        model = AutoModelForAudioClassification.from_pretrained(ckpt).eval()
        with torch.no_grad():
            preds[tag] = torch.softmax(model(**fe(x, sampling_rate=16000, return_tensors="pt")).logits, -1)[0].numpy()
    got = run.subsets["audio"].probs[0, r]
    assert np.abs(got - preds["fold1"]).max() <= 1e-5
    assert np.abs(got - preds["all"]).max() > 1e-6


def test_finetune_without_validation_rows_keeps_the_last_epoch(tmp_path, corpus, tiny_encoders, cli, capsys):
    """No val rows: no epoch selection, the last epoch's weights are kept (val accuracy None, best epoch = epochs)."""
    with open(corpus, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["split"] = "test" if r["split"] == "val" else r["split"]
    manifest = Path(corpus).parent / f"noval-{tmp_path.name}.csv"  # beside the media it names
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    try:
        res = _run(cli, capsys, manifest, "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder",
                   tiny_encoders["text"], "--epochs", "3", "--lr", "1e-3", "--folds", "2")
    finally:
        manifest.unlink()
    assert res["val_accuracy"] == {"all": None, "fold0": None, "fold1": None}
    assert res["best_epoch"] == {"all": 3, "fold0": 3, "fold1": 3}
    store = open_store(tmp_path / "s.zarr")
    run = store.read_run(res["run"])
    assert run.attrs["val_accuracy"] == res["val_accuracy"] and set(run.attrs["metrics"]["text"]) == {"train", "test"}
    fold = store.read_array(res["key"], "fold")
    assert fold.dtype == np.int8 and run.attrs["fold"] == fold.tolist() and set(fold.tolist()) == {-1, 0, 1}
    assert run.attrs["selection_splits"] == []  # no val rows: nothing selected the epochs


def _bert_folder(tmp_path, tiny_text) -> Path:
    """A tiny BERT (its classifier reads the pooler) with the tiny text encoder's tokenizer."""
    import shutil

    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(tiny_text)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=130, pad_token_id=tok.pad_token_id)
    folder = tmp_path / "tiny-bert"
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    for f in Path(tiny_text).iterdir():
        if "token" in f.name or f.name == "special_tokens_map.json":
            shutil.copy(f, folder / f.name)
    return folder


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_unfreeze_last_k_trains_the_last_blocks_and_the_pooler(tmp_path, corpus, tiny_encoders, cli, capsys):
    from transformers import AutoModelForSequenceClassification

    bert = _bert_folder(tmp_path, tiny_encoders["text"])
    res = _run(cli, capsys, corpus, "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder", bert,
               "--epochs", "1", "--lr", "1e-2", "--unfreeze-last", "1")
    base = AutoModelForSequenceClassification.from_pretrained(bert, num_labels=2)
    want = _count(base.classifier) + _count(base.bert.encoder.layer[-1]) + _count(base.bert.pooler)
    tp = res["trained_parameters"]
    assert tp == {"unfreeze_last": 1, "trained": want, "total": _count(base),
                  "modules": ["classifier", "bert.encoder.layer.1", "bert.pooler.dense"]}
    run = open_store(tmp_path / "s.zarr").read_run(res["run"])
    assert run.attrs["trained_parameters"] == tp
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / res["checkpoints"]["all"])
    for moved in (model.bert.pooler.dense.weight, model.bert.encoder.layer[-1].output.dense.weight):
        assert not torch.equal(moved, dict(base.named_parameters())[_name(model, moved)])
    for kept in (model.bert.encoder.layer[0].output.dense.weight, model.bert.embeddings.word_embeddings.weight):
        assert torch.equal(kept, dict(base.named_parameters())[_name(model, kept)])


def _name(model, param) -> str:
    return next(n for n, p in model.named_parameters() if p is param)


def test_unfreeze_last_all_trains_every_parameter(tmp_path, corpus, tiny_encoders, cli, capsys):
    from transformers import AutoModelForSequenceClassification

    res = _run(cli, capsys, corpus, "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder",
               tiny_encoders["text"], "--epochs", "1", "--lr", "1e-2", "--unfreeze-last", "all")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_encoders["text"], num_labels=2)
    assert res["trained_parameters"] == {"unfreeze_last": "all", "trained": _count(base), "total": _count(base),
                                         "modules": ["all"]}
    prov = open_store(tmp_path / "s.zarr").provenance(res["key"])
    assert prov["extra"]["finetune"]["config"]["unfreeze_last"] == "all"
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / res["checkpoints"]["all"])
    assert not torch.equal(model.roberta.embeddings.word_embeddings.weight,
                           base.roberta.embeddings.word_embeddings.weight)
    with pytest.raises(SystemExit) as exc:  # argparse: a usage error, exit code 2
        cli("finetune", corpus, "--store", tmp_path / "s.zarr", "--modality", "text", "--encoder",
            tiny_encoders["text"], "--unfreeze-last", "some")
    assert exc.value.code == 2 and "--unfreeze-last: takes a number of blocks >= 0 or 'all'" in capsys.readouterr().err


def test_set_trainable_finds_a_final_norm_after_the_blocks(tiny_encoders):
    """Wav2Vec2 with stable layer norm normalises after its last block: K=1 trains that norm too."""
    from transformers import AutoModelForAudioClassification

    from mixsig.extract import set_trainable

    model = AutoModelForAudioClassification.from_pretrained(tiny_encoders["audio"], num_labels=2)
    enc = model.wav2vec2.encoder
    got = set_trainable(model, 1, {"input_values": torch.randn(1, 8000)})
    heads = _count(model.projector) + _count(model.classifier)
    assert got["trained"] == heads + _count(enc.layers[-1]) + _count(enc.layer_norm)
    assert got["modules"] == ["projector", "classifier", "wav2vec2.encoder.layers.1", "wav2vec2.encoder.layer_norm"]
    assert got["trained"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert set_trainable(model, 0)["trained"] == heads
    assert set_trainable(model, "all")["trained"] == _count(model) == got["total"]
