"""Custom model code (RELIABILITY faults 7 and 28): ``auto_map`` in config.json + ``*.py`` files in the model folder,
run only with ``trust_remote_code``, is hashed into the key's provenance (``extra.remote_code``), so edited code
gives a new key; without ``trust_remote_code`` the code is never run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixsig.errors import ExtractionError
from mixsig.extract import load_encoder

CONFIG_PY = '''
from transformers import RobertaConfig


class TinyRemoteConfig(RobertaConfig):
    model_type = "mixsig-tiny-remote"
'''

MODELING_PY = '''
import os

from transformers import RobertaModel

from .configuration_tiny import TinyRemoteConfig

SCALE = 1.0
if os.environ.get("MIXSIG_REMOTE_MARKER"):  # proves whether this code ran
    open(os.environ["MIXSIG_REMOTE_MARKER"], "a").write("ran\\n")


class TinyRemoteModel(RobertaModel):
    config_class = TinyRemoteConfig

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        out.last_hidden_state = out.last_hidden_state * SCALE
        return out
'''


def make_remote(tiny_text: str, folder: Path) -> Path:
    """The tiny RoBERTa text encoder as a model with its own code: a config and a model class in .py files
    named by config.json's ``auto_map`` (the layout ``save_pretrained`` writes for custom code)."""
    shutil.copytree(tiny_text, folder)
    (folder / "configuration_tiny.py").write_text(CONFIG_PY)
    (folder / "modeling_tiny.py").write_text(MODELING_PY)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(model_type="mixsig-tiny-remote", architectures=["TinyRemoteModel"],
               auto_map={"AutoConfig": "configuration_tiny.TinyRemoteConfig",
                         "AutoModel": "modeling_tiny.TinyRemoteModel"})
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return folder


def _load(folder, **kw):
    return load_encoder("text", str(folder), device="cpu", **kw)


def test_without_trust_remote_code_the_code_never_runs(tmp_path, tiny_encoders, monkeypatch):
    folder = make_remote(tiny_encoders["text"], tmp_path / "rc-untrusted")
    marker = tmp_path / "ran.txt"
    monkeypatch.setenv("MIXSIG_REMOTE_MARKER", str(marker))
    with pytest.raises(ExtractionError, match="(?s)custom code.*pass --trust-remote-code"):
        _load(folder)
    assert not marker.exists()
    _load(folder, trust_remote_code=True)  # the marker works: with the flag the code runs
    assert marker.read_text() == "ran\n"


def test_the_code_files_are_in_the_provenance_and_the_key_stays_when_they_do_not_change(tmp_path, tiny_encoders):
    folder = make_remote(tiny_encoders["text"], tmp_path / "rc-same")
    a, b = _load(folder, trust_remote_code=True), _load(folder, trust_remote_code=True)
    pa = a.provenance()
    code = pa.extra["remote_code"]
    assert sorted(code["files"]) == ["configuration_tiny.py", "modeling_tiny.py"] and len(code["sha256"]) == 64
    assert type(a.model).__name__ == "TinyRemoteModel"
    assert pa.key() == b.provenance().key()


def test_edited_code_gives_a_new_key_naming_the_file(tmp_path, tiny_encoders):
    from mixsig.cache import diff_dicts

    folder = make_remote(tiny_encoders["text"], tmp_path / "rc-edit")
    before = _load(folder, trust_remote_code=True).provenance()
    with open(folder / "configuration_tiny.py", "a") as f:  # a config module edited: imported afresh, in-process
        f.write("\nEDITED = True\n")
    after = _load(folder, trust_remote_code=True).provenance()
    assert after.key() != before.key() and after.revision == before.revision  # weights and configs unchanged
    fields = [f for f, _, _ in diff_dicts(before.to_dict(), after.to_dict())]
    assert "extra.remote_code.files.configuration_tiny.py" in fields and "extra.remote_code.sha256" in fields


def test_model_code_edited_after_this_process_imported_it_is_refused(tmp_path, tiny_encoders):
    folder = make_remote(tiny_encoders["text"], tmp_path / "rc-stale")
    _load(folder, trust_remote_code=True)
    text = (folder / "modeling_tiny.py").read_text()
    (folder / "modeling_tiny.py").write_text(text.replace("SCALE = 1.0", "SCALE = 2.0"))
    # transformers would run the class it imported first: numbers of the old code under the new code's key
    with pytest.raises(ExtractionError, match=r"modeling_tiny.py is not the code of the TinyRemoteModel this process runs: it changed after"):
        _load(folder, trust_remote_code=True)


def test_a_model_without_code_keeps_its_key_with_trust_remote_code(tiny_encoders):
    plain, trusted = _load(tiny_encoders["text"]), _load(tiny_encoders["text"], trust_remote_code=True)
    assert "remote_code" not in trusted.provenance().extra
    assert trusted.provenance().key() == plain.provenance().key()


def test_hub_snapshot_code_is_hashed(tmp_path, tiny_encoders, monkeypatch):
    import huggingface_hub.constants as hc

    # transformers keeps hub code under its commit in its modules cache: a commit of this code's own
    commit = hashlib.sha1((CONFIG_PY + MODELING_PY).encode()).hexdigest()
    repo = tmp_path / "hub" / "models--mixsig-test--tiny-remote"
    make_remote(tiny_encoders["text"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    enc = load_encoder("text", "mixsig-test/tiny-remote", device="cpu", trust_remote_code=True)
    prov = enc.provenance()
    assert prov.revision == commit and prov.encoder == "mixsig-test/tiny-remote"
    want = {n: hashlib.sha256(t.encode()).hexdigest() for n, t in
            {"configuration_tiny.py": CONFIG_PY, "modeling_tiny.py": MODELING_PY}.items()}
    assert prov.extra["remote_code"]["files"] == want


def _cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "mixsig.cli", "-q", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_cli_extract_with_edited_model_code_writes_a_new_key(tmp_path, corpus, tiny_encoders):
    """The reported fault end to end: two ``mixsig extract --trust-remote-code`` processes, the model's .py edited
    between them -> two keys with different numbers; the first key untouched; ``cache diff`` names the file."""
    from mixsig.cache import open_store

    folder = make_remote(tiny_encoders["text"], tmp_path / "rc-cli")
    store = tmp_path / "s.zarr"
    args = ("extract", corpus, "--store", store, "--modality", "text", "--encoder", folder, "--trust-remote-code")
    assert _cli(*args).returncode == 0
    (key1,) = open_store(store).keys()
    first = open_store(store).read_array(key1, "embedding").copy()
    again = _cli(*args)  # unchanged code: same key, nothing recomputed
    assert again.returncode == 0 and open_store(store).keys() == [key1]
    text = (folder / "modeling_tiny.py").read_text()
    (folder / "modeling_tiny.py").write_text(text.replace("SCALE = 1.0", "SCALE = 2.0"))
    assert _cli(*args).returncode == 0
    s = open_store(store)
    (key2,) = [k for k in s.keys() if k != key1]
    assert np.array_equal(s.read_array(key1, "embedding"), first, equal_nan=True)  # the old key untouched
    assert np.allclose(s.read_array(key2, "embedding"), 2 * first, equal_nan=True)  # the edited code ran
    diff = _cli("cache", "diff", store, key1, key2)
    assert diff.returncode == 0 and "extra.remote_code.files.modeling_tiny.py" in diff.stdout
