"""Sort windows: extraction batches are length-sorted across chunks within fixed manifest-row windows, and a
fresh, a resumed and a sharded run put every row in the same batch and so write the same bytes."""

from __future__ import annotations

import pytest

CHUNK = 4  # 16 rows -> 4 chunks; the text sort window (2048 rows) holds all of them


@pytest.fixture(scope="module")
def text_encoder(tiny_encoders):
    """The tiny text encoder, its ``encode`` recording the rows of each batch it is given."""
    from mixsig.extract import load_encoder

    enc = load_encoder("text", tiny_encoders["text"], pooling="mean")
    enc.batches = []
    plain = enc.encode

    def encode(items, fp32=False):
        enc.batches.append(tuple(it.row for it in items))
        return plain(items, fp32=fp32)

    enc.encode = encode
    return enc


def _run(enc, corpus, store, **kw):
    """Extract text into ``store``; returns (result, {row: rows of its batch} of the rows encoded, the store)."""
    from mixsig.cache import open_store
    from mixsig.extract import extract

    enc.batches = []
    res = extract(corpus, store, "text", enc, chunk_rows=CHUNK, **kw)
    batch_of = {r: frozenset(b) for b in enc.batches for r in b}
    return res, batch_of, open_store(store)


def _embedding(store) -> bytes:
    (key,) = store.keys()
    return store.read_array(key, "embedding").tobytes()


@pytest.fixture(scope="module")
def fresh(text_encoder, corpus, tmp_path_factory):
    res, batch_of, store = _run(text_encoder, corpus, tmp_path_factory.mktemp("w") / "fresh.zarr")
    assert res.written == 16
    return batch_of, _embedding(store), list(text_encoder.batches)


def test_batches_are_sorted_across_chunks_within_the_window(fresh, text_encoder, corpus):
    """Reference recomputation: the run's batches are make_batches over all 16 rows at once (one window), so
    batches mix rows of different chunks."""
    from mixsig.extract import RowSource, RunOptions, make_batches
    from mixsig.manifest import load_manifest, to_samples

    _, _, batches = fresh
    samples = to_samples(load_manifest(corpus, check_media=False))
    items = [text_encoder.inputs.prepare(RowSource(r, text=str(samples.text[r]))) for r in range(len(samples))]
    budget = text_encoder.inputs.default_budget(text_encoder.device)
    expected = [tuple(it.row for it in b) for b in make_batches(items, budget, RunOptions().max_batch)]
    assert batches == expected
    assert any(len({r // CHUNK for r in b}) > 1 for b in batches), "no batch spans two chunks"


def test_sharded_run_makes_the_same_batches_and_bytes(fresh, text_encoder, corpus, tmp_path):
    """Each shard computes the other shard's rows of a shared window as context (not written): every row it
    writes is in the batch it has in the one-process run, and the store's bytes equal it."""
    batch_of, emb, _ = fresh
    store = tmp_path / "sharded.zarr"
    for i in range(2):
        res, got, st = _run(text_encoder, corpus, store, shard=(i, 2))
        assert res.written == 8
        mine = range(8 * i, 8 * i + 8)
        assert {r: got[r] for r in mine} == {r: batch_of[r] for r in mine}
    assert _embedding(st) == emb


def test_resumed_run_makes_the_same_batches_and_bytes(fresh, text_encoder, corpus, tmp_path):
    """A run that finds half the rows done (shard 0 of 2 ran, then a whole run) recomputes only the batches that
    hold a pending row, with the done rows of the window as context; done rows keep their bytes."""
    batch_of, emb, _ = fresh
    store = tmp_path / "resumed.zarr"
    _run(text_encoder, corpus, store, shard=(0, 2))
    res, got, st = _run(text_encoder, corpus, store)
    assert (res.written, res.skipped_done) == (8, 8)
    assert {r: got[r] for r in range(8, 16)} == {r: batch_of[r] for r in range(8, 16)}
    # batches of done rows only are not recomputed
    assert all(any(r >= 8 for r in b) for b in text_encoder.batches)
    assert _embedding(st) == emb


def test_window_rows_bounds_the_batches(text_encoder, corpus, tmp_path):
    """RunOptions(window_rows=W): no batch holds rows of two W-row windows."""
    from mixsig.extract import RunOptions

    res, _, _ = _run(text_encoder, corpus, tmp_path / "w4.zarr", options=RunOptions(window_rows=4))
    assert res.written == 16
    assert text_encoder.batches and all(len({r // 4 for r in b}) == 1 for b in text_encoder.batches)
    assert sorted(r for b in text_encoder.batches for r in b) == list(range(16))
