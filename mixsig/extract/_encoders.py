"""Encoders by Hugging Face name or local folder, and the per-modality input adapters behind a registry.

An *input adapter* turns one samples-table row into model input (decode + preprocess, run in worker threads),
knows the row's length for length-sorted batching, pads a list of rows into one batch, and says which output
positions are real (for ``mean`` pooling). Adding a modality is one new class with ``@register_inputs``; the
registry is :data:`mixsig.modalities.INPUTS` (a light module, so ``--modality`` lists it without this one).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mixsig.errors import ExtractionError, UsageError
from mixsig.extract._decode import RowFailure, decode_audio, decode_video, has_input
from mixsig.cache import Status
from mixsig.modalities import INPUTS

log = logging.getLogger(__name__)


def register_inputs(modality: str):
    """Class decorator: register an :class:`InputAdapter` subclass for ``modality`` (sets ``cls.modality``;
    a modality that already has another adapter is refused)."""
    return INPUTS.register(modality)


def list_modalities() -> list[str]:
    """Every modality with an input adapter, sorted."""
    return INPUTS.names()


@dataclass(frozen=True)
class Preprocess:
    """User-facing preprocessing options (``None`` = the encoder's own default)."""

    sample_rate: int | None = None        # Hz; None = the feature extractor's sampling_rate
    max_seconds: float = 10.0             # audio and video: first seconds of the segment
    peak_normalize: bool = True           # audio: divide by the peak absolute value
    frames: int | None = None             # video: None = the model config's num_frames, else 16
    text_max_length: int | None = None    # text: None = the tokenizer's model_max_length (at most 512)

    def to_dict(self) -> dict:
        return {"sample_rate": self.sample_rate, "max_seconds": self.max_seconds, "peak_normalize": self.peak_normalize,
                "frames": self.frames, "text_max_length": self.text_max_length}


@dataclass
class RowInput:
    """What one row becomes before batching: unbatched model inputs and the row's length."""

    row: int
    features: dict[str, Any]
    length: int
    input_hash: str = ""


@dataclass
class RowSource:
    """Where a row's input comes from: text, or a media path with an optional segment (seconds)."""

    row: int
    text: str | None = None
    path: Path | None = None
    start: float | None = None
    end: float | None = None
    input_hash: str = ""


def _processor_record(proc) -> dict:
    try:
        d = json.loads(proc.to_json_string())
    except Exception:  # pragma: no cover - depends on the processor class
        d = {}
    d.pop("processor_class", None)
    d["class"] = type(proc).__name__
    return d


def _from_pretrained(loader, name: str, revision: str | None, trust_remote_code: bool, what: str, **kw):
    try:
        return loader.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code, **kw)
    except Exception as exc:
        hint = "" if trust_remote_code else (" If the model needs its own code, pass --trust-remote-code "
                                             "(only for code you trust).")
        raise ExtractionError(f"cannot load the {what} of encoder {name!r}: {type(exc).__name__}: {exc}.{hint}") from exc


class InputAdapter:
    """Base class: decode + preprocess rows, pad batches, mask outputs. One subclass per modality."""

    modality: ClassVar[str]
    #: default batch budget per device type, in the unit of :meth:`length` summed over a padded batch
    #: (CPUs run faster with cache-sized batches; GPUs want large ones)
    default_budgets: ClassVar[dict[str, int]]
    #: True when rows may only be batched with rows of exactly the same length (no attention mask)
    exact_length: bool = False
    def prepare_inline(self, device: str) -> bool:
        """Whether rows are prepared in the thread that runs the model on ``device`` (no decoding threads)."""
        return False

    def __init__(self, name: str, revision: str | None, trust_remote_code: bool, options: Preprocess, config):
        self.name = name
        self.config = config
        self.options = options

    def default_budget(self, device: str) -> int:
        kind = "cpu" if str(device).startswith("cpu") else "gpu"
        return int(self.default_budgets[kind])

    def prepare(self, src: RowSource) -> RowInput:
        raise NotImplementedError

    def collate(self, items: list[RowInput]) -> dict:
        raise NotImplementedError

    def output_mask(self, model, batch: dict, hidden) -> Any:
        """[B, T] bool: which output positions are real for ``hidden`` [B, T, D]."""
        import torch

        return torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)

    def record(self) -> dict:
        """Everything about preprocessing that changes the numbers (goes into the provenance)."""
        raise NotImplementedError


@register_inputs("text")
class TextInputs(InputAdapter):
    default_budgets = {"cpu": 2048, "gpu": 16384}  # padded tokens per batch

    def prepare_inline(self, device: str) -> bool:
        return True  # tokenising is so cheap that a thread pool costs more than it overlaps

    def __init__(self, name, revision, trust_remote_code, options, config):
        super().__init__(name, revision, trust_remote_code, options, config)
        from transformers import AutoTokenizer

        self.tokenizer = _from_pretrained(AutoTokenizer, name, revision, trust_remote_code, "tokenizer")
        limit = options.text_max_length
        if limit is None:
            limit = int(min(getattr(self.tokenizer, "model_max_length", 512) or 512, 512))
            pos = getattr(config, "max_position_embeddings", None)
            if pos is not None and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
                limit = min(limit, int(pos) - 2)
        self.max_length = int(limit)

    def prepare(self, src: RowSource) -> RowInput:
        if not has_input(src.text) or not str(src.text).strip():
            raise RowFailure(Status.MISSING_INPUT, f"row {src.row}: no text")
        enc = self.tokenizer(str(src.text), truncation=True, max_length=self.max_length)
        feats = {k: list(v) for k, v in enc.items()}
        return RowInput(src.row, feats, len(feats["input_ids"]), src.input_hash)

    def collate(self, items):
        import torch

        n = max(it.length for it in items)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        pads = {"input_ids": int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)}
        out = {}
        for name in items[0].features:
            arr = np.full((len(items), n), pads.get(name, 0), np.int64)
            for i, it in enumerate(items):
                v = it.features[name]
                if left:
                    arr[i, n - len(v):] = v
                else:
                    arr[i, : len(v)] = v
            out[name] = torch.from_numpy(arr)
        return out

    def output_mask(self, model, batch, hidden):
        return batch["attention_mask"].to(hidden.device).bool()

    def record(self):
        return {"text_max_length": self.max_length, "truncation": True, "tokenizer": type(self.tokenizer).__name__,
                "padding_side": getattr(self.tokenizer, "padding_side", "right")}


@register_inputs("audio")
class AudioInputs(InputAdapter):
    default_budgets = {"cpu": 16000 * 20, "gpu": 16000 * 240}  # padded samples per batch (20 s / 4 min at 16 kHz)

    def __init__(self, name, revision, trust_remote_code, options, config):
        super().__init__(name, revision, trust_remote_code, options, config)
        from transformers import AutoFeatureExtractor

        self.extractor = _from_pretrained(AutoFeatureExtractor, name, revision, trust_remote_code, "feature extractor")
        native = int(getattr(self.extractor, "sampling_rate", 16000) or 16000)
        if options.sample_rate is not None and int(options.sample_rate) != native:
            raise UsageError(f"encoder {name} expects audio at {native} Hz; --sample-rate {options.sample_rate} "
                             "would feed it audio at the wrong rate. Leave --sample-rate out.")
        self.sample_rate = native
        # Models whose feature encoder normalises over time (group norm, e.g. hubert-base) give different numbers
        # with zero padding; their rows are batched only with rows of the same length, without an attention mask.
        self.use_mask = bool(getattr(self.extractor, "return_attention_mask", False))
        self.exact_length = not self.use_mask
        self._min_samples = self._receptive_field(config)

    @staticmethod
    def _receptive_field(config) -> int:
        kernels = getattr(config, "conv_kernel", None)
        strides = getattr(config, "conv_stride", None)
        if not kernels or not strides:
            return 1
        n = 1
        for k, s in zip(reversed(list(kernels)), reversed(list(strides))):
            n = (n - 1) * s + k
        return int(n)

    def prepare_inline(self, device: str) -> bool:
        # On CPU, decoding a clip costs a few percent of its forward pass, and decoding threads only contend with
        # torch's intra-op threads: 320 clips on 2 cores took 2.45 s inline against 3.2 s with 2 decoding threads.
        return str(device).startswith("cpu")

    def prepare(self, src: RowSource) -> RowInput:
        if src.path is None:
            raise RowFailure(Status.MISSING_INPUT, f"row {src.row}: no audio file")
        x = decode_audio(src.path, self.sample_rate, src.start, src.end, self.options.max_seconds,
                         self.options.peak_normalize)
        if len(x) < self._min_samples:
            raise RowFailure(Status.TOO_SHORT, f"{src.path}: {len(x)} samples ({len(x) / self.sample_rate:.3f} s) "
                                               f"is shorter than the encoder's {self._min_samples}-sample receptive field")
        feats = self.extractor(x, sampling_rate=self.sample_rate, return_tensors="np",
                               return_attention_mask=False)
        values = np.asarray(feats["input_values"], np.float32)[0]
        return RowInput(src.row, {"input_values": values}, int(values.shape[-1]), src.input_hash)

    def collate(self, items):
        import torch

        n = max(it.length for it in items)
        values = np.full((len(items), n), float(getattr(self.extractor, "padding_value", 0.0)), np.float32)
        mask = np.zeros((len(items), n), np.int64)
        for i, it in enumerate(items):
            values[i, : it.length] = it.features["input_values"]
            mask[i, : it.length] = 1
        batch = {"input_values": torch.from_numpy(values)}
        if self.use_mask:
            batch["attention_mask"] = torch.from_numpy(mask)
        return batch

    def output_mask(self, model, batch, hidden):
        import torch

        if "attention_mask" in batch:
            fn = getattr(model, "_get_feature_vector_attention_mask", None)
            if fn is not None:
                return fn(hidden.shape[1], batch["attention_mask"].to(hidden.device)).bool()
            lengths_fn = getattr(model, "_get_feat_extract_output_lengths", None)
            if lengths_fn is not None:
                lengths = lengths_fn(batch["attention_mask"].sum(-1)).to(hidden.device)
                return torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
        return torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)

    def record(self):
        return {"sample_rate": self.sample_rate, "max_seconds": self.options.max_seconds,
                "peak_normalize": self.options.peak_normalize, "mono": "mean of channels",
                "resampler": "scipy.signal.resample_poly", "attention_mask": self.use_mask,
                "feature_extractor": _processor_record(self.extractor)}


@register_inputs("video")
class VideoInputs(InputAdapter):
    default_budgets = {"cpu": 8, "gpu": 32}  # clips per batch (all clips have the same shape)

    def __init__(self, name, revision, trust_remote_code, options, config):
        super().__init__(name, revision, trust_remote_code, options, config)
        from transformers import AutoImageProcessor

        self.processor = _from_pretrained(AutoImageProcessor, name, revision, trust_remote_code, "image processor")
        model_frames = getattr(config, "num_frames", None)
        frames = options.frames or model_frames or 16
        if model_frames and int(frames) != int(model_frames):
            raise UsageError(f"encoder {name} takes clips of {model_frames} frames; --frames {frames} does not fit. "
                             "Leave --frames out.")
        self.frames = int(frames)

    def prepare(self, src: RowSource) -> RowInput:
        if src.path is None:
            raise RowFailure(Status.MISSING_INPUT, f"row {src.row}: no video file")
        clip = decode_video(src.path, self.frames, src.start, src.end, self.options.max_seconds)
        pixels = self.processor(list(clip), return_tensors="np")["pixel_values"]
        pixels = np.asarray(pixels, np.float32)[0]  # [F, 3, H, W]
        return RowInput(src.row, {"pixel_values": pixels}, 1, src.input_hash)

    def collate(self, items):
        import torch

        return {"pixel_values": torch.from_numpy(np.stack([it.features["pixel_values"] for it in items]))}

    def record(self):
        size = getattr(self.processor, "crop_size", None) or getattr(self.processor, "size", None)
        size = dict(size) if hasattr(size, "keys") else (size.__dict__ if hasattr(size, "__dict__") else size)
        return {"frames": self.frames, "max_seconds": self.options.max_seconds,
                "frame_sampling": "evenly spaced (linspace, rounded); last frame repeated if fewer",
                "image_size": size, "image_processor": _processor_record(self.processor)}


def get_inputs(modality: str, name: str, revision: str | None, trust_remote_code: bool, options: Preprocess,
               config) -> InputAdapter:
    """The input adapter of ``modality`` for encoder ``name``; :class:`UsageError` listing the modalities otherwise."""
    return INPUTS.get(modality)(name, revision, trust_remote_code, options, config)


def load_config(name: str, revision: str | None, trust_remote_code: bool):
    from transformers import AutoConfig

    return _from_pretrained(AutoConfig, name, revision, trust_remote_code, "config")


def load_model(name: str, revision: str | None, trust_remote_code: bool, auto_class: str = "AutoModel", **kw):
    """Load ``name`` with ``transformers.<auto_class>`` in eval mode (dropout and LayerDrop off)."""
    import transformers

    loader = getattr(transformers, auto_class)
    model = _from_pretrained(loader, name, revision, trust_remote_code, "weights", **kw)
    model.eval()
    return model


__all__ = ["InputAdapter", "Preprocess", "RowInput", "RowSource", "get_inputs", "list_modalities", "load_config",
           "load_model", "register_inputs"]
