"""docs/RELIABILITY.md names, for every fault, the tests that reproduce it: each named test must exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"


def named_tests() -> list[tuple[str, str]]:
    """(file, test) for every `tests/....py::name` in the doc, and every `::name` / `…[param]` that follows one
    in the same table row (it names another test of that file)."""
    out = []
    for line in DOC.read_text().splitlines():
        current = None
        for ref in re.findall(r"`([^`]+)`", line):
            m = re.fullmatch(r"(tests/[\w/]+\.py)::(\w+)(\[[^\]]*\])?", ref)
            if m:
                current = m.group(1)
                out.append((current, m.group(2)))
                continue
            m = re.fullmatch(r"(?:…|::)(\w+)?(?:\[[^\]]*\])?", ref)
            if m and current and m.group(1):
                out.append((current, m.group(1)))
    return out


def test_every_test_named_in_reliability_md_exists():
    names = named_tests()
    assert len(names) > 60
    missing = []
    for file, test in names:
        path = ROOT / file
        if not path.is_file() or not re.search(rf"^(?:async )?def {test}\(", path.read_text(), re.M):
            missing.append(f"{file}::{test}")
    assert not missing, f"docs/RELIABILITY.md names tests that do not exist: {missing}"
