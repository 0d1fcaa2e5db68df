"""A failed first `mixsig extract` leaves no new empty store; an encoder of another modality is named as such
("this is a text model; use --modality text") before transformers fails on a processor file."""

import pytest

from mixsig.cli import main


def _extract(corpus, store, modality, encoder):
    return main(["extract", str(corpus), "--store", str(store), "--modality", modality, "--encoder", str(encoder)])


@pytest.mark.parametrize("modality, encoder, kind", [("audio", "text", "text"), ("text", "audio", "audio"),
                                                     ("audio", "video", "vision")])
def test_an_encoder_of_another_modality_is_named_and_no_store_is_left(modality, encoder, kind, corpus, tiny_encoders,
                                                                      tmp_path, capsys):
    store = tmp_path / "new.zarr"
    assert _extract(corpus, store, modality, tiny_encoders[encoder]) == 2
    err = capsys.readouterr().err
    want = {"text": "text", "audio": "audio", "vision": "video"}[kind]
    assert f"is a {kind} model" in err and f"use --modality {want}" in err
    assert "preprocessor_config" not in err and len(err.strip().splitlines()) == 1
    assert not store.exists()


def test_an_unreachable_hub_model_leaves_no_store_but_an_existing_store_is_kept(corpus, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = tmp_path / "hub.zarr"
    assert _extract(corpus, store, "text", "mixsig-test/not-in-any-cache") == 1
    assert "not-in-any-cache" in capsys.readouterr().err and not store.exists()
    # null: a store that existed before the failed extraction stays
    assert main(["-q", "cache", "init", str(store), "--manifest", str(corpus)]) == 0
    assert _extract(corpus, store, "text", "mixsig-test/not-in-any-cache") == 1
    capsys.readouterr()
    assert store.is_dir() and main(["cache", "info", str(store), "--json"]) == 0
