"""RunRecord: the typed run attrs, written by write_run and changed by update_run only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mixsig.cache import UNSET, RunRecord, RunSubset
from mixsig.errors import StoreError


def _record(**kw) -> RunRecord:
    fields = dict(name="r1", head="gated", params={"epochs": 2}, features={"text": "k1", "audio": "k2"},
                  modalities=["text", "audio"], seeds=[0, 1], classes=["a", "b"], split_hash="h" * 64,
                  metrics={"text": {}}, source="train", group_leak=None, collapsed=[], class_weight=None)
    fields.update(kw)
    return RunRecord(**fields)


def _subsets(n=50):
    probs = np.random.default_rng(0).random((2, n, 2)).astype(np.float32)
    probs /= probs.sum(axis=2, keepdims=True)  # a run's probabilities are distributions (checked on read)
    return {"text": RunSubset(probs), "audio": RunSubset(probs), "text+audio": RunSubset(probs)}


def test_unset_is_absent_and_none_is_written():
    attrs = _record().to_attrs()
    assert attrs["group_leak"] is None and attrs["class_weight"] is None and attrs["collapsed"] == []
    assert "rows" not in attrs and "study" not in attrs and "checkpoints" not in attrs
    assert attrs["modalities"] == ["text", "audio"] and attrs["seeds"] == [0, 1]   # lists in the attrs
    assert {"created", "mixsig_version"} <= set(attrs)
    back = RunRecord.from_attrs("r1", dict(attrs, complete=True))
    assert back == _record(created=attrs["created"], mixsig_version=attrs["mixsig_version"])
    assert back.rows is UNSET and not back.rows and back.seeds == (0, 1)


def test_record_round_trips_through_the_store(store):
    rec = _record(rows={"total": 50}, extra={"note": "kept"})
    store.write_run(rec, _subsets())
    run = store.read_run("r1")
    assert run.attrs["complete"] is True and run.attrs["note"] == "kept"
    assert run.record == rec and run.record.extra == {"note": "kept"}
    with pytest.raises(StoreError, match="already exists"):
        store.write_run(rec, _subsets())
    store.write_run(dataclasses.replace(rec, head="late"), _subsets(), overwrite=True)
    assert store.read_run("r1").record.head == "late"
    with pytest.raises(TypeError, match="keyword-only"):
        store.write_run(rec, _subsets(), True)


def test_invalid_records_are_refused_naming_the_field():
    with pytest.raises(StoreError, match="source must be one of"):
        _record(source="mine")
    with pytest.raises(StoreError, match="must name the run's modalities"):
        _record(features={"audio": "k2", "text": "k1"})
    with pytest.raises(StoreError, match=r"extra attrs \['rows'\] have fields of their own"):
        _record(extra={"rows": {}})
    with pytest.raises(StoreError, match="seeds must be a list"):
        _record(seeds=3)
    with pytest.raises(StoreError, match=r"run 'old' lacks the attrs \['split_hash', 'metrics'\]"):
        RunRecord.from_attrs("old", {k: v for k, v in _record().to_attrs().items() if k not in ("split_hash", "metrics")})
    assert _record(source="study:s1").source == "study:s1"


def test_update_run_changes_only_the_given_attrs(store):
    store.write_run(_record(), _subsets())
    before = store.read_run("r1").attrs
    study = {"name": "s1", "trial": 3}
    rec = store.update_run("r1", source="study:s1", study=study)
    after = store.read_run("r1").attrs
    assert after == dict(before, source="study:s1", study=study) and rec.study == study
    store.update_run("r1", study=UNSET)    # UNSET removes an attr
    assert "study" not in store.read_run("r1").attrs
    with pytest.raises(StoreError, match=r"\['studdy'\] are not run attrs"):
        store.update_run("r1", studdy=study)
    with pytest.raises(StoreError, match="source must be one of"):
        store.update_run("r1", source="elsewhere")
    assert store.read_run("r1").attrs["source"] == "study:s1"   # a refused update writes nothing
    with pytest.raises(StoreError, match="no run named"):
        store.update_run("nope", source="train")


def test_legacy_attrs_form_writes_them_as_given(store):
    """Tests and benchmarks fake runs of other writers (partial attrs) with (name, attrs, subsets)."""
    store.write_run("raw", {"head": "gated", "modalities": ["text", "audio"]}, _subsets())
    run = store.read_run("raw")
    assert run.attrs == {"head": "gated", "modalities": ["text", "audio"], "complete": True}
    with pytest.raises(StoreError, match="lacks the attrs"):
        run.record
