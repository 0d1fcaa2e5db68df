"""A loaded encoder: model + input adapter + pooling/layer choice, and the provenance it implies.

``Encoder.encode(items)`` turns a list of :class:`RowInput` into pooled embeddings ``[B, D]`` (``layers="last"``)
or ``[B, L, D]`` float32. Padding is masked, so a row's numbers do not depend on which rows share its batch.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixsig.cache import Provenance
from mixsig.errors import ExtractionError, UsageError
from mixsig.extract._encoders import InputAdapter, Preprocess, RowInput, get_inputs, load_config, load_model
from mixsig.extract._pooling import get_pooling, pool
from mixsig.extract._revision import is_local, remote_code_record, resolve_revision

log = logging.getLogger(__name__)

_DTYPES = ("float32", "float16")


def parse_layers(text: str, n_hidden_states: int) -> list[int] | None:
    """``"last"`` -> None (the model's last_hidden_state); ``"all"`` -> every hidden state (embeddings + layers);
    ``"4,8,12"`` -> those indices into ``hidden_states`` (0 = embeddings, negative counts from the end)."""
    text = str(text).strip().lower()
    if text == "last":
        return None
    if text == "all":
        return list(range(n_hidden_states))
    try:
        idx = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--layers must be 'last', 'all' or comma-separated integers; got {text!r}") from None
    if not idx:
        raise UsageError("--layers needs at least one layer index")
    out = []
    for i in idx:
        j = i + n_hidden_states if i < 0 else i
        if not 0 <= j < n_hidden_states:
            raise UsageError(f"--layers {i} is out of range: the encoder has {n_hidden_states} hidden states "
                             f"(0 = embeddings .. {n_hidden_states - 1} = last layer)")
        out.append(j)
    return out


@dataclass
class Encoder:
    """A ready-to-run encoder. Build it with :func:`load_encoder`."""

    modality: str
    name: str
    revision: str                 # resolved: commit hash or "sha256:<hex>"
    model: object                 # a transformers PreTrainedModel in eval mode (the base model)
    inputs: InputAdapter
    pooling: str
    layers: str
    layer_index: list[int] | None
    dtype: str                    # storage dtype of the key
    device: str
    extra: dict = field(default_factory=dict)
    display_name: str | None = None   # the encoder name recorded in the provenance (default: name / basename)
    remote_code: dict | None = None   # custom model code run (trust_remote_code): {"sha256", "files"}; None = none

    @property
    def hidden_size(self) -> int:
        d = getattr(self.model.config, "hidden_size", None)
        if d is None:
            raise ExtractionError(f"encoder {self.name}: its config has no hidden_size; cannot size the feature key")
        return int(d)

    @property
    def dim(self) -> int | tuple[int, int]:
        """D for ``layers="last"``, else (L, D)."""
        return self.hidden_size if self.layer_index is None else (len(self.layer_index), self.hidden_size)

    @property
    def autocast(self) -> bool:
        return self.device.startswith("cuda") and self.dtype == "float16"

    @property
    def compute_dtype(self) -> str:
        return "autocast-float16" if self.autocast else "float32"

    def provenance(self, extra: dict | None = None) -> Provenance:
        encoder = self.display_name or (Path(self.name).expanduser().resolve().name if is_local(self.name)
                                        else self.name)
        return Provenance(
            modality=self.modality, encoder=encoder, revision=self.revision, pooling=self.pooling,
            layers=self.layers, dtype=self.dtype,
            preprocessing={"modality": self.modality, **self.inputs.record()},
            extra={"compute_dtype": self.compute_dtype, "model_class": type(self.model).__name__,
                   **({"remote_code": self.remote_code} if self.remote_code else {}), **self.extra, **(extra or {})},
        )

    def encode(self, items: list[RowInput], fp32: bool = False) -> np.ndarray:
        """Pooled embeddings of ``items``: [B, D] or [B, L, D] float32 (CPU numpy)."""
        import torch

        batch = {k: v.to(self.device) for k, v in self.inputs.collate(items).items()}
        want_all = self.layer_index is not None
        ctx = (torch.autocast("cuda", dtype=torch.float16) if self.autocast and not fp32 else contextlib.nullcontext())
        with torch.inference_mode(), ctx:
            out = self.model(**batch, output_hidden_states=want_all, return_dict=True)
            states = [out.last_hidden_state] if not want_all else [out.hidden_states[i] for i in self.layer_index]
            mask = self.inputs.output_mask(self.model, batch, states[0])
            pooled = [pool(h.float(), mask, self.pooling) for h in states]
            res = pooled[0] if not want_all else torch.stack(pooled, dim=1)
        return res.float().cpu().numpy()


def load_encoder(modality: str, name: str, *, revision: str | None = None, pooling: str = "cls",
                 layers: str = "last", dtype: str = "float32", preprocess: Preprocess | None = None,
                 device: str | None = None, trust_remote_code: bool = False, model=None,
                 extra: dict | None = None, display_name: str | None = None) -> Encoder:
    """Load ``name`` (hub name or local folder) for ``modality`` with its tokenizer / feature extractor /
    image processor. ``model`` may be given (e.g. a fine-tuned encoder already in memory); otherwise
    ``AutoModel`` loads it. The revision is resolved first and the weights loaded at that exact revision.
    With ``trust_remote_code`` (or a ``model`` whose class is custom code), the code files are hashed into the
    provenance (``extra.remote_code``, see :func:`~mixsig.extract.remote_code_record`), so edited code gives a new key.
    """
    from mixsig.extract._sharding import default_device

    get_pooling(pooling)
    if dtype not in _DTYPES:
        raise UsageError(f"The 'dtype' parameter of extract must be one of {set(_DTYPES)}. Got {dtype!r} instead.")
    preprocess = preprocess or Preprocess()
    resolved = resolve_revision(name, revision)
    load_rev = None if is_local(name) else resolved
    config = model.config if model is not None else load_config(name, load_rev, trust_remote_code)
    check_model_modality(modality, name, config)
    inputs = get_inputs(modality, name, load_rev, trust_remote_code, preprocess, config)
    if model is None:
        model = load_model(name, load_rev, trust_remote_code)
    model.eval()
    remote = (remote_code_record(name, resolved, loaded=(config, model))
              if trust_remote_code or _is_remote_code(config) or _is_remote_code(model) else None)
    device = device or default_device()
    model.to(device)
    n_states = int(getattr(config, "num_hidden_layers", 0)) + 1
    layer_index = parse_layers(layers, n_states)
    layers_norm = "last" if layer_index is None else ("all" if str(layers).strip().lower() == "all"
                                                      else ",".join(str(i) for i in layer_index))
    return Encoder(modality=modality, name=name, revision=resolved, model=model, inputs=inputs, pooling=pooling,
                   layers=layers_norm, layer_index=layer_index, dtype=dtype, device=device, extra=dict(extra or {}),
                   display_name=display_name, remote_code=remote)


#: the --modality a model of each kind is used with
_KIND_MODALITY = {"text": "text", "audio": "audio", "vision": "video"}


def model_kind(config) -> str | None:
    """``"text"``, ``"audio"`` or ``"vision"``: what inputs a model of ``config.model_type`` takes, from
    transformers' own processor tables (a tokenizer only: text; a feature extractor and no image processor:
    audio; an image processor and neither: vision); None when it cannot tell (multimodal, custom or unlisted)."""
    model_type = getattr(config, "model_type", None)
    if not model_type:
        return None
    try:
        from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING_NAMES as F
        from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES as I
        from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES as T
    except ImportError:  # pragma: no cover - tables moved in another transformers
        return None
    t, f, i = model_type in T, model_type in F, model_type in I
    if i and not (t or f):
        return "vision"
    if f and not i:
        return "audio"
    if t and not (f or i):
        return "text"
    return None


def check_model_modality(modality: str, name: str, config) -> None:
    """:class:`UsageError` when encoder ``name`` is plainly a model of another modality (a text model for
    ``--modality audio``, ...), before transformers fails on a processor file the model does not have."""
    kind = model_kind(config)
    want = _KIND_MODALITY.get(kind or "")
    if want is None or modality not in _KIND_MODALITY.values() or want == modality:
        return
    an = "an" if modality[0] in "aeiou" else "a"
    raise UsageError(f"encoder {name!r} is a {kind} model ({config.model_type}), not {an} {modality} model; use "
                     f"--modality {want}, or give {an} {modality} encoder for --modality {modality}")


def _is_remote_code(obj) -> bool:
    """A config/model whose class was imported from custom code (transformers puts it in ``transformers_modules``)."""
    return type(obj).__module__.startswith("transformers_modules.")


__all__ = ["Encoder", "load_encoder", "parse_layers"]
