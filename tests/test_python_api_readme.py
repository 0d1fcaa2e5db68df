"""The README's "From Python" example runs as written (on a small synthetic store where `make demo` leaves its
store), so the documented Python API cannot drift from the package."""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def from_python_code() -> str:
    text = README.read_text()
    section = text[text.index("## From Python"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the From Python section holds one python block"
    return blocks[0]


@pytest.mark.slow
def test_the_from_python_example_runs(tmp_path, monkeypatch, capsys):
    from tests.synthetic import make_synthetic_store

    make_synthetic_store(tmp_path / "demo-output" / "cache.zarr", n=120, n_groups=30,
                         dims={"text": 6, "audio": 6, "video": 6})
    monkeypatch.chdir(tmp_path)
    exec(compile(from_python_code(), "README.md#From-Python", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "3-fold accuracy" in out and "winner run study-py-study" in out
    assert (tmp_path / "py-report" / "report.html").is_file() and os.path.getsize(tmp_path / "py-report" / "report.json")


def test_the_from_python_example_names_only_public_api():
    code = from_python_code()
    imports = re.findall(r"^from (mixsig[\w.]*) import (.*)$", code, flags=re.M)
    assert {m for m, _ in imports} == {"mixsig.analysis", "mixsig.cache", "mixsig.heads", "mixsig.studies"}
    import importlib

    for module, names in imports:
        mod = importlib.import_module(module)
        for name in (n.strip() for n in names.split(",")):
            assert name in mod.__all__, f"{module}.{name} is not public"
    assert "._" not in code
