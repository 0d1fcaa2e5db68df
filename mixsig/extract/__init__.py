"""Encoders over text, audio and video into the feature store: decoding, encoder loading, pooling, batching,
sharding and fine-tuning.

Example::

    from mixsig.extract import extract
    res = extract("corpus/manifest.csv", "cache.zarr", "audio", "facebook/hubert-base-ls960", pooling="mean")
    print(res.summary())   # rows written, skipped as done, failed by status, seconds, rows/s

Exit codes of ``mixsig extract``: 0 when every row with input is done, 1 when some rows failed (see the
summary and the key's ``status``/``message`` ledger), 2 on usage errors, 3 on refused input (groups that cross
splits, unless ``--allow-group-leak``).

Importing this package is cheap: names are looked up on first use (PEP 562), so the CLI can read the pooling
registry (:data:`POOLINGS`, in the light module ``_pooling``) without importing numpy, torch or the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mixsig._lazy import lazy_exports

#: public name -> the module defining it
_EXPORTS = {
    **dict.fromkeys(("check_key_name", "check_leases_first", "check_samples", "check_store_group_leak", "extract",
                     "manifest_samples", "open_or_create_store", "prepare_key", "sync_samples"), "_api"),
    **dict.fromkeys(("RowFailure", "decode_audio", "decode_video", "resample", "sample_indices"), "_decode"),
    **dict.fromkeys(("AUTO_CLASSES", "FinetuneConfig", "FinetuneResult", "checkpoint_root", "finetune"), "_finetune"),
    "set_trainable": "_trainable",
    **dict.fromkeys(("InputAdapter", "Preprocess", "RowInput", "RowSource", "get_inputs", "list_modalities",
                     "register_inputs"), "_encoders"),
    **dict.fromkeys(("Encoder", "load_encoder", "parse_layers"), "_model"),
    "make_batches": "_batches",
    **dict.fromkeys(("ExtractResult", "RunOptions", "describe_allowed_leak", "run_extraction"), "_pipeline"),
    **dict.fromkeys(("POOLINGS", "describe_poolings", "get_pooling", "list_poolings", "pool", "register_pooling"),
                    "_pooling"),
    **dict.fromkeys(("folder_sha256", "resolve_revision"), "_revision"),
    **dict.fromkeys(("default_device", "parse_shard", "resolve_shard", "shard_from_env"), "_sharding"),
    **dict.fromkeys(("available_cores", "default_threads", "torch_threads"), "_threads"),
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from mixsig.extract._api import (check_key_name, check_leases_first, check_samples, check_store_group_leak,
                                     extract, manifest_samples, open_or_create_store, prepare_key, sync_samples)
    from mixsig.extract._decode import RowFailure, decode_audio, decode_video, resample, sample_indices
    from mixsig.extract._encoders import (InputAdapter, Preprocess, RowInput, RowSource, get_inputs, list_modalities,
                                          register_inputs)
    from mixsig.extract._finetune import AUTO_CLASSES, FinetuneConfig, FinetuneResult, checkpoint_root, finetune
    from mixsig.extract._model import Encoder, load_encoder, parse_layers
    from mixsig.extract._batches import make_batches
    from mixsig.extract._pipeline import ExtractResult, RunOptions, describe_allowed_leak, run_extraction
    from mixsig.extract._pooling import (POOLINGS, describe_poolings, get_pooling, list_poolings, pool,
                                         register_pooling)
    from mixsig.extract._revision import folder_sha256, resolve_revision
    from mixsig.extract._sharding import default_device, parse_shard, resolve_shard, shard_from_env
    from mixsig.extract._threads import available_cores, default_threads, torch_threads
    from mixsig.extract._trainable import set_trainable

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
