"""Names that become store paths are checked before anything is written (exit code 2, one line naming the option):
`cache import-h5 --modality` and a file's recorded modality, `train --features M=KEY` (also with
--allow-modality-mismatch) and `train --name`; `import-h5 --columns` that is not a JSON list."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from mixsig.cache import open_store
from mixsig.cli import main
from tests.heads.helpers import make_store


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("path_names")
    store, keys, X, y = make_store(tmp / "s.zarr", n_train=30, n_val=10, n_test=10)
    with h5py.File(tmp / "f.h5", "w") as f:
        f.create_dataset("ids", data=np.array(store.samples.ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("embedding", data=np.zeros((len(store.samples), 3), np.float32))
    return tmp, keys


def _state(tmp: Path):
    store = open_store(tmp / "s.zarr")
    return sorted(store.keys()), sorted(store.runs())


@pytest.mark.parametrize("modality", ["..", ".", "../../evil", "a/b", "a.b", "x y"])
def test_import_h5_refuses_a_modality_that_is_not_a_plain_name(small, modality, capsys):
    tmp, _ = small
    before = _state(tmp)
    capsys.readouterr()
    assert main(["cache", "import-h5", str(tmp / "s.zarr"), str(tmp / "f.h5"), "--modality", modality,
                 "--name", "au"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--modality: modality name {modality!r} must be letters" in err
    assert _state(tmp) == before


def test_import_h5_refuses_a_file_whose_recorded_modality_is_not_a_plain_name(small, tmp_path, capsys):
    tmp, keys = small
    assert main(["cache", "export-h5", str(tmp / "s.zarr"), keys["a"], str(tmp_path / "e.h5")]) == 0
    with h5py.File(tmp_path / "e.h5", "r+") as f:
        prov = json.loads(f.attrs["mixsig_provenance"])
        prov["modality"] = ".."
        f.attrs["mixsig_provenance"] = json.dumps(prov)
    before = _state(tmp)
    capsys.readouterr()
    assert main(["cache", "import-h5", str(tmp / "s.zarr"), str(tmp_path / "e.h5")]) == 2
    assert "attr mixsig_provenance: modality name '..'" in capsys.readouterr().err
    assert _state(tmp) == before


@pytest.mark.parametrize("columns", ["[a", '["a", 1, "c"]', '["a", ["b"], "c"]'])
def test_import_h5_columns_that_are_not_a_json_list_of_names_are_a_usage_error(small, columns, capsys):
    tmp, _ = small
    before = _state(tmp)
    capsys.readouterr()
    assert main(["cache", "import-h5", str(tmp / "s.zarr"), str(tmp / "f.h5"), "--modality", "meta",
                 "--name", "meta", "--columns", columns]) == 2
    err = capsys.readouterr().err
    assert "--columns" in err and "--columns duration,words" in err and "Traceback" not in err
    assert _state(tmp) == before


@pytest.mark.parametrize("feature", ["..={a}", "../../evil={a}", "a.b={a}"])
def test_train_refuses_a_feature_modality_that_is_not_a_plain_name(small, feature, capsys, tmp_path):
    tmp, keys = small
    before = _state(tmp)
    capsys.readouterr()
    assert main(["train", str(tmp / "s.zarr"), "--head", "logreg", "--features", feature.format(a=keys["a"]),
                 "--name", "dd", "--save-heads", "--allow-modality-mismatch"]) == 2
    assert "must be letters, digits, '_' or '-' only" in capsys.readouterr().err
    assert _state(tmp) == before
    assert not Path("/evil").exists()


@pytest.mark.parametrize("name", ["..", ".", "__x", "a/b"])
def test_train_refuses_a_run_name_zarr_cannot_hold(small, name, capsys):
    tmp, keys = small
    before = _state(tmp)
    capsys.readouterr()
    assert main(["train", str(tmp / "s.zarr"), "--head", "logreg", "--features", f"a={keys['a']}",
                 "--name", name]) == 2
    assert f"--name {name!r}: a run's name" in capsys.readouterr().err
    assert _state(tmp) == before
