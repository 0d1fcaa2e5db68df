"""The one definition of mixsig's modalities.

- :data:`MODALITIES`: the modalities of a manifest and of a store's samples table (a column each), in
  their fixed order;
- :data:`MEDIA_MODALITIES`: those whose column holds a media path (the others hold the input itself);
- :data:`INPUTS`: the registry of input adapters (:class:`mixsig.extract.InputAdapter`), one per modality
  that ``mixsig extract`` / ``finetune`` can encode; ``--modality`` offers its names. The built-in adapters
  are lazy entries, so listing them imports neither numpy nor torch. A new adapter is one class with
  ``@mixsig.extract.register_inputs("name")``.

This module imports only the standard library and :mod:`mixsig._registry`.
"""

from __future__ import annotations

from typing import Any

from mixsig._registry import Registry
from mixsig.errors import UsageError

MODALITIES: tuple[str, ...] = ("text", "audio", "video")
MEDIA_MODALITIES: tuple[str, ...] = ("audio", "video")


def _set_modality(name: str, cls: Any) -> Any:
    cls.modality = name
    return cls


#: modality -> input adapter class (``mixsig.extract._encoders``)
INPUTS: Registry[type] = Registry("modality", plural="modalities", error=UsageError, on_register=_set_modality,
                                  hint="a new modality needs an input adapter: @mixsig.extract.register_inputs")
INPUTS.register_lazy("text", "mixsig.extract._encoders:TextInputs")
INPUTS.register_lazy("audio", "mixsig.extract._encoders:AudioInputs")
INPUTS.register_lazy("video", "mixsig.extract._encoders:VideoInputs")

__all__ = ["INPUTS", "MEDIA_MODALITIES", "MODALITIES"]
