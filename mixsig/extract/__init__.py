"""Encoders over text, audio and video into the feature store: decoding, encoder loading, pooling, batching,
sharding and fine-tuning.

Example::

    from mixsig.extract import extract
    res = extract("corpus/manifest.csv", "cache.zarr", "audio", "facebook/hubert-base-ls960", pooling="mean")
    print(res.summary())   # rows written, skipped as done, failed by status, seconds, rows/s

Exit codes of ``mixsig extract``: 0 when every row with input is done, 1 when some rows failed (see the
summary and the key's ``status``/``message`` ledger), 2 on usage errors, 3 on refused input (groups that cross
splits, unless ``--allow-group-leak``).
"""

from __future__ import annotations

from mixsig.extract._api import check_key_name, check_store_group_leak, extract, open_or_create_store, prepare_key
from mixsig.extract._decode import RowFailure, decode_audio, decode_video, resample, sample_indices
from mixsig.extract._finetune import (AUTO_CLASSES, FinetuneConfig, FinetuneResult, checkpoint_root, finetune,
                                     set_trainable)
from mixsig.extract._encoders import (InputAdapter, Preprocess, RowInput, RowSource, get_inputs, list_modalities,
                                      register_inputs)
from mixsig.extract._model import Encoder, load_encoder, parse_layers
from mixsig.extract._pipeline import ExtractResult, RunOptions, make_batches, run_extraction
from mixsig.extract._pooling import list_poolings, pool, register_pooling
from mixsig.extract._revision import folder_sha256, resolve_revision
from mixsig.extract._sharding import default_device, parse_shard, resolve_shard, shard_from_env
from mixsig.extract._threads import available_cores, default_threads, torch_threads

__all__ = [
    "AUTO_CLASSES", "FinetuneConfig", "FinetuneResult", "checkpoint_root", "finetune", "set_trainable",
    "available_cores", "check_key_name", "check_store_group_leak", "default_threads", "torch_threads",
    "Encoder", "ExtractResult", "InputAdapter", "Preprocess", "RowFailure", "RowInput", "RowSource", "RunOptions",
    "decode_audio", "decode_video", "default_device", "extract", "folder_sha256", "get_inputs", "list_modalities",
    "list_poolings", "load_encoder", "make_batches", "open_or_create_store", "parse_layers", "parse_shard", "pool",
    "prepare_key", "register_inputs", "register_pooling", "resample", "resolve_revision", "resolve_shard",
    "run_extraction", "sample_indices", "shard_from_env",
]
