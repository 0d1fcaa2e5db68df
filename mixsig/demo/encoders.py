"""Tiny local encoders: real transformers architectures with seeded random weights, saved to folders.

They exist so that tests, CI and ``mixsig demo`` exercise exactly the code path used for hub models
(``AutoModel`` / ``AutoTokenizer`` / ``AutoFeatureExtractor`` / ``AutoImageProcessor``
``.from_pretrained(path)``) without any download.

- text:  RoBERTa (hidden 32, 2 layers), a byte-level BPE tokenizer trained locally, wrapped in
         ``PreTrainedTokenizerFast``; max 128 tokens.
- audio: Wav2Vec2 (hidden 32, 2 layers, ``feat_extract_norm="layer"`` so padded batches use an attention
         mask), ``Wav2Vec2FeatureExtractor`` at 16 kHz; 20 ms frames like the base models.
- video: VideoMAE (hidden 32, 2 layers, 4 frames of 32 x 32, tubelet 2, patch 8),
         ``VideoMAEImageProcessor`` (PIL backend; no torchvision needed).

Example::

    >>> paths = make_tiny_encoders("/tmp/tiny")           # doctest: +SKIP
    >>> from transformers import AutoModel
    >>> AutoModel.from_pretrained(paths["text"]).config.hidden_size   # doctest: +SKIP
    32
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

#: Bumped whenever the recipe below changes, so cached folders are rebuilt.
TINY_ENCODERS_VERSION = 1

HIDDEN = 32
LAYERS = 2
HEADS = 2
INTERMEDIATE = 64
TEXT_MAX_LENGTH = 128

# A small, fixed training text for the tokenizer: byte-level BPE covers any input, the merges only
# decide how many tokens common words take.
_TOKENIZER_TEXT = [
    "I am so sorry to hear that, it must be really hard for you.",
    "That sounds painful and I understand how you feel right now.",
    "I hear you, and I am here for you whenever you need to talk.",
    "It is completely normal to feel that way after what happened.",
    "The meeting is scheduled for three o'clock on Tuesday afternoon.",
    "Please send the report before the end of the week.",
    "The weather today is cloudy with a chance of rain in the evening.",
    "We reviewed the numbers and the results are in the attached file.",
    "Thank you for sharing this with me; that takes courage.",
    "The train leaves at nine and arrives at noon.",
    "you feel hear sorry understand support together okay fine good bad sad happy angry",
    "the a an and or but if then so because with without about for to of in on at by from",
]


def _recipe(seed: int) -> dict:
    return {"version": TINY_ENCODERS_VERSION, "seed": int(seed), "hidden": HIDDEN, "layers": LAYERS,
            "heads": HEADS, "intermediate": INTERMEDIATE, "text_max_length": TEXT_MAX_LENGTH}


def _recipe_hash(modality: str, seed: int) -> str:
    blob = json.dumps({"modality": modality, **_recipe(seed)}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _build_text(folder: Path, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaModel

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_TOKENIZER_TEXT, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                                   model_max_length=TEXT_MAX_LENGTH)
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                           num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                           max_position_embeddings=TEXT_MAX_LENGTH + 2, pad_token_id=fast.pad_token_id,
                           bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                           hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    model = RobertaModel(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)


def _build_audio(folder: Path, seed: int) -> None:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
        conv_dim=(32, 32, 32, 32, 32, 32, 32), conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, vocab_size=16, mask_time_prob=0.0, layerdrop=0.1,
    )
    model = Wav2Vec2Model(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)


def _build_video(folder: Path, seed: int) -> None:
    import torch
    from transformers import VideoMAEConfig, VideoMAEModel
    from transformers.models.videomae.image_processing_pil_videomae import VideoMAEImageProcessorPil

    torch.manual_seed(seed)
    config = VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=HIDDEN,
                            num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                            use_mean_pooling=True)
    model = VideoMAEModel(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    processor = VideoMAEImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor.save_pretrained(folder)
    # Save under the class name AutoImageProcessor resolves to either backend.
    cfg_path = folder / "preprocessor_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["image_processor_type"] = "VideoMAEImageProcessor"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))


_BUILDERS = {"text": _build_text, "audio": _build_audio, "video": _build_video}


def make_tiny_encoders(out_dir, seed: int = 0) -> dict[str, Path]:
    """Build (or reuse) one tiny encoder folder per modality under ``out_dir``.

    Idempotent: a folder whose ``mixsig_tiny.json`` matches this recipe and seed is reused as is.
    Folders are written to a temporary sibling and renamed into place, so a killed build leaves no
    half-written encoder behind.

    Returns ``{"text": Path, "audio": Path, "video": Path}``; each loads with ``from_pretrained(path)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for modality, build in _BUILDERS.items():
        folder = out / f"tiny-{modality}"
        marker = folder / "mixsig_tiny.json"
        want = {"modality": modality, "recipe": _recipe(seed), "hash": _recipe_hash(modality, seed)}
        if marker.is_file():
            try:
                if json.loads(marker.read_text()) == want:
                    paths[modality] = folder
                    continue
            except (OSError, ValueError):
                pass
            logger.info("rebuilding %s: recipe or seed changed", folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".tiny-{modality}.", dir=out))
        try:
            build(tmp, seed)
            (tmp / "mixsig_tiny.json").write_text(json.dumps(want, indent=2, sort_keys=True))
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("built tiny %s encoder in %s", modality, folder)
        paths[modality] = folder
    return paths


__all__ = ["make_tiny_encoders", "TINY_ENCODERS_VERSION"]
