"""xarray and plain zarr open a mixsig store: every array names its dimensions, and the non-Zarr files (study
journal, leases, locks, an interrupted extraction's leftovers) raise no warning, as they live in ``.mixsig/``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import warnings

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
optuna = pytest.importorskip("optuna")
import zarr  # noqa: E402  (a test may import zarr: it checks what plain zarr sees)

from mixsig.cache import STATE_DIR, RunSubset, create_store, open_store  # noqa: E402
from mixsig.studies import check_journals, journal_file, open_storage  # noqa: E402
from tests.cache.helpers import fill_key, make_samples, prov  # noqa: E402

N = 50


def _study(url: str, name: str = "s") -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=open_storage(url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)


def _interrupted_extraction(store, root) -> str:
    """What a killed ``mixsig extract`` leaves: a key half written whose lease is still there (here held by this
    process), a chunk temp file of zarr's, a stale lease and a lock of a dead process, a key half created."""
    key = store.create_key(prov("mean"), 6, chunk_rows=16)
    w = store.writer(key).__enter__()  # never left: the lease file stays
    lo, hi = next(iter(w.blocks()))
    w.write_block(lo, hi, np.ones((hi - lo, 6), np.float32), np.ones(hi - lo, np.int8), input_hash=["h"] * (hi - lo))
    (root / "features" / key / "embedding" / "c" / "0" / "0.1a2b.partial").write_bytes(b"torn")
    dead = {"host": socket.gethostname(), "pid": 2 ** 22 + 12345, "shard": [0, 1], "started": "2026-01-01T00:00:00"}
    (root / STATE_DIR / "leases" / "text.dead").mkdir(parents=True)
    (root / STATE_DIR / "leases" / "text.dead" / "shard-0-of-1.json").write_text(json.dumps(dead))
    (root / STATE_DIR / "locks").mkdir(exist_ok=True)
    (root / STATE_DIR / "locks" / f"create-{key}").write_text(json.dumps(dead))
    store.root["features"].create_group("text.half.created.000000000000")  # no `ready`: creation interrupted
    return key


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("xr") / "store.zarr"
    s = create_store(root, make_samples(N), attrs={"manifest_sha256": "x"})
    key = s.create_key(prov(), 6, chunk_rows=16)
    fill_key(s, key)
    s.add_key_array(key, "fold", "int8", -1, values=np.arange(N) % 3)
    layered = s.create_key(prov("layers"), (3, 4), chunk_rows=16)
    probs = np.random.default_rng(0).dirichlet([1, 1], size=(2, N)).astype(np.float32)
    s.write_run("r", {"head": "gated", "seeds": [0, 1], "classes": ["empathetic", "neutral"],
                      "modalities": ["text", "audio"]},
                {"text+audio": RunSubset(probs=probs, gates=np.full((2, N, 2), 0.5, np.float32),
                                         attention=np.full((2, N, 2), 0.5, np.float32),
                                         extra={"layer_weights/text": np.ones((2, 5), np.float32),
                                                "layer_weights/audio": np.ones((2, 3), np.float32),
                                                "loss": np.ones((2, 7), np.float32)}),
                 "text": RunSubset(probs=probs)})
    _study(str(root))
    busy = _interrupted_extraction(s, root)
    return s, root, {"key": key, "layered": layered, "busy": busy, "probs": probs}


def test_every_array_names_its_dimensions(store):
    _, root, _ = store
    arrays = [(p, a) for p, a in zarr.open_group(str(root), mode="r").members(max_depth=None)
              if isinstance(a, zarr.Array)]
    assert len(arrays) > 30
    unnamed = [p for p, a in arrays if a.metadata.dimension_names is None or len(a.metadata.dimension_names) != a.ndim]
    assert unnamed == []


def test_xarray_opens_a_key_the_samples_and_a_run_subset(store):
    s, root, k = store
    ds = xr.open_zarr(str(root), group=f"features/{k['key']}", consolidated=False)
    assert dict(ds.sizes) == {"sample": N, "feature": 6, "chunk": 4, "ledger_column": 6}
    assert ds["embedding"].dims == ("sample", "feature") and ds["fold"].dims == ("sample",)
    np.testing.assert_array_equal(ds["embedding"].values, s.read(k["key"]).X)  # what mixsig reads
    np.testing.assert_array_equal(ds["fold"].values, np.arange(N) % 3)
    assert xr.open_zarr(str(root), group=f"features/{k['layered']}", consolidated=False)["embedding"].dims == (
        "sample", "layer", "feature")
    smp = xr.open_zarr(str(root), group="samples", consolidated=False)
    assert dict(smp.sizes) == {"sample": N, "annotator": 3, "annotator@text": 2}
    assert smp["id"].values.tolist() == s.samples.ids.tolist() and smp["votes@text"].dims == ("sample", "annotator@text")
    run = xr.open_zarr(str(root), group="runs/r/subsets/text+audio", consolidated=False)
    assert run["probs"].dims == ("seed", "sample", "class") and run["gates"].dims == ("seed", "sample", "modality")
    assert run["loss"].dims == ("seed", "loss_dim_1")
    np.testing.assert_array_equal(run["probs"].values, k["probs"])
    lw = xr.open_zarr(str(root), group="runs/r/subsets/text+audio/layer_weights", consolidated=False)
    assert lw["text"].dims == ("seed", "text_dim_1") and dict(lw.sizes) == {"seed": 2, "text_dim_1": 5,
                                                                            "audio_dim_1": 3}


def test_plain_zarr_and_xarray_open_the_store_with_its_journal_lease_and_interrupted_extraction_silently(store):
    _, root, k = store
    names = set(os.listdir(root))
    assert names == {"zarr.json", "samples", "features", "runs", STATE_DIR}  # one folder, nothing else at the top
    inside = {p.relative_to(root / STATE_DIR).as_posix() for p in (root / STATE_DIR).rglob("*") if p.is_file()}
    assert {"zarr.json", "studies.journal", "studies.journal.flock", f"leases/{k['busy']}/shard-0-of-1.json",
            "leases/text.dead/shard-0-of-1.json", f"locks/create-{k['busy']}"} <= inside
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        members = dict(zarr.open_group(str(root), mode="r").members(max_depth=None))
        tree = xr.open_datatree(str(root), engine="zarr", consolidated=False)
        xr.open_zarr(str(root), group=f"features/{k['busy']}", consolidated=False)
    assert isinstance(members[STATE_DIR], zarr.Array) and members[STATE_DIR].shape == (0,)
    assert f"/features/{k['key']}" in tree.groups and "/runs/r/subsets/text+audio/layer_weights" in tree.groups
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(str(root)))] == ["s"]


def test_a_store_of_the_older_layout_keeps_its_journal_and_gets_its_state_folder_hidden(store, tmp_path):
    _, root, _ = store
    old = tmp_path / "old.zarr"
    shutil.copytree(root, old)
    (old / STATE_DIR / "zarr.json").unlink()                      # .mixsig/ a plain folder, the journal at the top
    for name in ("studies.journal", "studies.journal.flock"):
        os.rename(old / STATE_DIR / name, old / name)
    with pytest.warns(UserWarning, match=r"not recognized as a component of a Zarr hierarchy"):
        dict(zarr.open_group(str(old), mode="r").members(max_depth=None))  # what an older store looks like to zarr
    assert journal_file(old) == old / "studies.journal"           # found where it is; not moved
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(str(old)))] == ["s"]
    assert check_journals(old) == []
    open_store(old, "r+")                                          # a writer's open hides .mixsig/ from zarr
    assert (old / STATE_DIR / "zarr.json").is_file()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dict(zarr.open_group(str(old), mode="r").members(max_depth=None))
    assert [str(w.message) for w in caught if STATE_DIR in str(w.message)] == []
    assert journal_file(old) == old / "studies.journal"
