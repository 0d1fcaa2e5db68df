"""Shared fixtures. Tests run offline: the Makefile and this file set HF_HUB_OFFLINE=1."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
