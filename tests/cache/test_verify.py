import os

import h5py
import numpy as np
import pytest

from mixsig.cache import create_store, export_h5, import_h5, open_store, verify_store
from mixsig.cli import main
from mixsig.errors import CorruptChunk
from tests.cache.helpers import D, fill_key, make_samples, prov


def _chunk(tmp_path, key, i, array="embedding"):
    return tmp_path / "store.zarr" / "features" / key / array / "c" / str(i) / "0"


def test_bit_flip_is_named_by_verify_and_never_returned(store, tmp_path, capsys):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    assert verify_store(store).ok
    p = _chunk(tmp_path, key, 1)
    data = bytearray(p.read_bytes())
    data[37] ^= 0x04
    p.write_bytes(bytes(data))
    rep = verify_store(store)
    assert [f.kind for f in rep.findings] == ["corrupt_chunk"]
    assert rep.findings[0].where == f"features/{key}/embedding/c/1" and rep.findings[0].rows[0] == 16
    with pytest.raises(CorruptChunk, match="chunk 1"):
        store.read(key)
    assert main(["cache", "verify", str(tmp_path / "store.zarr")]) == 1
    out = capsys.readouterr().out
    assert f"features/{key}/embedding/c/1" in out and "CRC32C" in out


def test_truncated_chunk_is_reported(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    p = _chunk(tmp_path, key, 0)
    p.write_bytes(p.read_bytes()[:-10])
    rep = verify_store(store)
    assert rep.findings[0].kind == "corrupt_chunk" and "bytes, expected" in rep.findings[0].message


def test_deleted_chunk_of_done_rows_is_reported_and_fix_unmarks_them(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    os.remove(_chunk(tmp_path, key, 2))
    rep = verify_store(store)
    assert [f.kind for f in rep.findings] == ["misplaced_chunk"]  # its digest was recorded: it is missing
    assert "chunk 2 is missing" in rep.findings[0].message
    assert rep.findings[0].rows == list(range(32, 48))
    verify_store(store, fix=True)
    assert verify_store(store).ok
    with store.writer(key) as w:
        assert w.pending_rows().tolist() == list(range(32, 48))


def test_orphan_temp_files_are_found_and_removed(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key)
    orphan = _chunk(tmp_path, key, 1).parent / "0.0123abcd.partial"
    orphan.write_bytes(b"half")
    rep = verify_store(store)
    assert rep.findings[0].kind == "orphan_temp" and rep.findings[0].where.endswith(".partial")
    rep = verify_store(store, fix=True)
    assert not orphan.exists() and verify_store(store).ok


def test_h5_export_import_round_trips_exactly(store, tmp_path):
    key = store.create_key(prov(), D, chunk_rows=16)
    fill_key(store, key, rows_fail=[7])
    h5 = export_h5(store, key, tmp_path / "k.h5")
    other = create_store(tmp_path / "other.zarr", make_samples())
    key2, summary = import_h5(other, h5)
    assert key2 == key and summary["matched"] == 50
    for name in ("embedding", "done", "status"):
        assert store.read_array(key, name).tobytes() == other.read_array(key2, name).tobytes(), name


def test_import_any_modality_matched_by_id_via_cli(store, tmp_path, capsys):
    rng = np.random.default_rng(0)
    ids = np.array([f"s{i:03d}" for i in range(50)])[::-1][:45]  # shuffled order, 5 rows missing
    au = rng.random((45, 17)).astype(np.float32)
    with h5py.File(tmp_path / "au.h5", "w") as f:
        f["sample_id"] = ids.astype("S")
        f["aus"] = au
    rc = main(["cache", "import-h5", str(tmp_path / "store.zarr"), str(tmp_path / "au.h5"), "--modality", "face",
               "--name", "openface-au", "--ids-dataset", "sample_id", "--dataset", "aus", "--json"])
    assert rc == 0
    s = open_store(tmp_path / "store.zarr")
    key, = [k for k in s.keys() if k.startswith("face.openface-au.imported.")]
    view = s.read(key)
    assert view.excluded == 5 and len(view.rows) == 45
    order = {i: n for n, i in enumerate(ids)}
    np.testing.assert_array_equal(view.X, au[[order[i] for i in view.ids]])
    assert s.provenance(key)["extra"]["source_file"] == "au.h5"
