"""Per-row status codes of a feature key (``features/<key>/status``, int8)."""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """What happened to a row. Only ``OK`` rows are ``done``; every other non-pending row is retried on rerun."""

    PENDING = 0  # never attempted
    OK = 1  # written and finite
    DECODE_ERROR = 2  # the media could not be decoded
    TOO_SHORT = 3  # zero-length or shorter than the encoder can take
    NONFINITE = 4  # the encoder produced NaN/Inf (also after an fp32 retry)
    MISSING_INPUT = 5  # the row has no input for this modality
    ERROR = 6  # any other failure (message says what)

    @classmethod
    def name_of(cls, code: int) -> str:
        try:
            return cls(int(code)).name.lower()
        except ValueError:
            return f"unknown({int(code)})"
