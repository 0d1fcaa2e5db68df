"""Fixtures for the extraction tests: tiny encoders and a small demo corpus, built once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory):
    from mixsig.demo import make_tiny_encoders

    return {m: str(p) for m, p in make_tiny_encoders(tmp_path_factory.mktemp("tiny")).items()}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A 16-row demo corpus with text, WAV audio and MP4 video of varying lengths; returns the manifest path."""
    from mixsig.demo import make_corpus

    return make_corpus(tmp_path_factory.mktemp("corpus"), n_rows=16, seed=3, media=True)


@pytest.fixture
def cli():
    """Run ``mixsig ARGS`` in this process; returns the exit code."""
    from mixsig.cli import main

    def run(*args) -> int:
        return main(["-q", *map(str, args)])

    return run
