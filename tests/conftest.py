"""Shared fixtures. Tests run offline: the Makefile and this file set HF_HUB_OFFLINE=1."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# transformers copies custom model code (trust_remote_code) into HF_MODULES_CACHE; keep the tests' copies out of
# the user's ~/.cache (subprocesses inherit the variable).
if "HF_MODULES_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["HF_MODULES_CACHE"] = tempfile.mkdtemp(prefix="mixsig-test-hf-modules-")
    atexit.register(shutil.rmtree, os.environ["HF_MODULES_CACHE"], True)
