"""Naming keys and runs without copying hashes (issue 15 §3): FeatureStore.resolve_key / resolve_features /
resolve_run / short_key, and train_run recording the full keys it resolved."""

import pytest

from mixsig.errors import StoreError, StudyError, UsageError
from tests.synthetic import make_synthetic_store


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """Two text keys (enc-a, enc-b), one audio and one video key; runs logreg-a, logreg-b and study-demo."""
    from mixsig.heads import train_run

    store, keys = make_synthetic_store(tmp_path_factory.mktemp("resolve") / "s.zarr", n=60,
                                       extra_keys={"text": 0.5})
    for name in ("logreg-a", "logreg-b", "study-demo"):
        train_run(store, "logreg", {"audio": "audio"}, name=name)
    return store, keys


def test_full_key_prefix_and_modality_alone_name_one_key(named):
    store, keys = named
    a, b = keys["text"]
    audio = keys["audio"][0]
    assert store.resolve_key(a) == a
    assert store.resolve_key("text.synthetic-text-enc-b") == b  # whole parts
    assert store.resolve_key("text.synthetic-text-enc-a.c") == a  # any unique prefix
    assert store.resolve_key("audio") == audio  # the modality alone: the store's one audio key
    assert store.resolve_key("synthetic-text-enc-b", modality="text") == b  # the modality may be left off
    assert store.resolve_features({"text": "text.synthetic-text-enc-a", "video": "video"}) == \
        {"text": a, "video": keys["video"][0]}
    assert store.resolve_features({"text": ("text.synthetic-text-enc-a", b), "audio": ("audio",)}) == \
        {"text": (a, b), "audio": (audio,)}


def test_an_ambiguous_name_lists_its_candidates(named):
    store, keys = named
    a, b = keys["text"]
    with pytest.raises(UsageError) as e:
        store.resolve_key("text")
    msg = str(e.value)
    assert "key 'text' is ambiguous" in msg and a in msg and b in msg and "\n" not in msg
    with pytest.raises(UsageError, match=r"--features text=text\.synthetic is ambiguous .* 2 keys"):
        store.resolve_features({"text": "text.synthetic"})
    # a study's alternatives that resolve to the same key are refused, not searched twice
    with pytest.raises(StudyError, match="names the same key twice"):
        store.resolve_features({"text": ("text.synthetic-text-enc-a", a)}, error=StudyError)


def test_an_unknown_name_lists_the_store_keys(named):
    store, keys = named
    with pytest.raises(UsageError) as e:
        store.resolve_features({"text": "text.bert"})
    msg = str(e.value)
    assert msg.startswith("No feature key 'text.bert' (nor one starting with it) in ")
    assert f"(for modality 'text'). Keys of that modality: {', '.join(keys['text'])}; other keys: " in msg
    assert all(k in msg for ks in keys.values() for k in ks) and "mixsig cache ls" in msg
    with pytest.raises(StoreError, match=r"^no feature key 'nope' \(nor one starting with it\)"):
        store.resolve_key("nope", error=StoreError)
    with pytest.raises(UsageError, match="empty key name"):
        store.resolve_key(" ")


def test_runs_by_full_name_or_unique_prefix(named):
    store, _ = named
    assert store.resolve_run("study-demo") == "study-demo"
    assert store.resolve_run("study") == "study-demo"
    assert store.resolve_run("logreg-b") == "logreg-b"
    with pytest.raises(UsageError, match=r"run 'logreg' is ambiguous .*logreg-a, logreg-b"):
        store.resolve_run("logreg")
    with pytest.raises(StoreError, match=r"no run named 'gated' .*runs: logreg-a, logreg-b, study-demo"):
        store.resolve_run("gated", error=StoreError)


def test_train_run_records_the_full_keys_it_resolved(named):
    store, keys = named
    run = store.read_run("study-demo")
    assert run.attrs["features"] == {"audio": keys["audio"][0]}


def test_short_key_is_the_shortest_name_that_resolves_back(named):
    store, keys = named
    a, b = keys["text"]
    assert store.short_key(keys["audio"][0]) == "audio"
    assert store.short_key(a) == "text.synthetic-text-enc-a"
    for k in store.keys():
        assert store.resolve_key(store.short_key(k)) == k
