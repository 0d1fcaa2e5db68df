"""The extraction bar's clock and rate start when the rows to compute are known: the model's loading and the
media hashing before do not drag the rate (and so the ETA) down; the rate is rows done over time since then."""

import io
import re
import sys
import time

import pytest

from mixsig.cli import main


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.slow
def test_the_bar_does_not_count_the_model_loading(corpus, tiny_encoders, tmp_path, monkeypatch):
    import mixsig.extract._api as api

    real = api.load_encoder

    def slow_load(*a, **kw):          # a model that takes 3 s to load
        time.sleep(3.0)
        return real(*a, **kw)

    monkeypatch.setattr(api, "load_encoder", slow_load)
    err = _TTY()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["extract", str(corpus), "--store", str(tmp_path / "s.zarr"), "--modality", "text", "--encoder",
                 tiny_encoders["text"], "--json"]) == 0
    final = [line for line in re.split(r"[\r\n]", err.getvalue()) if "16/16" in line][-1]
    elapsed = re.search(r"\[(\d+):(\d+)<", final)
    assert elapsed, final
    assert int(elapsed.group(1)) * 60 + int(elapsed.group(2)) < 3, final   # the 3 s of loading are not in it
