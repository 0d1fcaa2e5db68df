"""The offline demo corpus and tiny local encoders used by ``mixsig demo`` and the tests.

``make_corpus`` (in :mod:`mixsig.demo.corpus`) writes a seeded multimodal corpus with a manifest;
``make_tiny_encoders`` (in :mod:`mixsig.demo.encoders`) saves small real transformers architectures with
random weights to local folders, loadable with ``from_pretrained(path)``.
"""

from __future__ import annotations


def make_corpus(*args, **kwargs):
    from mixsig.demo.corpus import make_corpus as _make_corpus

    return _make_corpus(*args, **kwargs)


def make_tiny_encoders(*args, **kwargs):
    from mixsig.demo.encoders import make_tiny_encoders as _make_tiny_encoders

    return _make_tiny_encoders(*args, **kwargs)


__all__ = ["make_corpus", "make_tiny_encoders"]
