"""docs/INTERFACES.md matches the code: every function, class and constant a section lists under its module
(``## Title (`mixsig/pkg`)``) is a public name of that module."""

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "INTERFACES.md"
_TOP = re.compile(r"^(?:def |class )?([A-Za-z_]\w*)\s*[(:]")
_ALSO = re.compile(r"^#\s*(?:also|constants):\s*(.*)")
_NOT_NAMES = {"def", "class", "and", "the", "or", "from", "with", "helpers", "exported"}


def listed_names() -> list[tuple[str, str]]:
    """(module, name) for every top-level name the doc lists in a section's code blocks."""
    out, module, in_code, also = [], None, False, False
    for line in DOC.read_text().splitlines():
        if line.startswith(("## ", "### ")):
            m = re.search(r"\(`(mixsig[./][\w./]*?)/?`", line)
            module = m.group(1).replace("/", ".").removesuffix(".py") if m else None
            continue
        if line.startswith("```"):
            in_code = not in_code
            also = False
            continue
        if not (in_code and module) or module.startswith("mixsig.cli") or module.startswith("mixsig.commands"):
            continue
        m = _ALSO.match(line)
        if m or (also and line.startswith("# ")):
            text = m.group(1) if m else line[2:]
            also = True
            text = re.sub(r"\([^)]*\)", "(", text)  # drop argument lists
            out += [(module, w) for w in re.findall(r"(?<![.\w])([A-Za-z_]\w*)(?=\(|,|\s*$)", text) if w not in _NOT_NAMES]
            continue
        also = False
        m = _TOP.match(line)
        if m and not line.startswith((" ", "#", "@")) and m.group(1) not in _NOT_NAMES:
            out.append((module, m.group(1)))
    return sorted(set(out))


NAMES = listed_names()


def test_the_doc_lists_names_of_every_package():
    modules = {m for m, _ in NAMES}
    assert {"mixsig.cache", "mixsig.extract", "mixsig.heads", "mixsig.studies", "mixsig.analysis",
            "mixsig.manifest", "mixsig.metrics"} <= modules, sorted(modules)
    assert len(NAMES) > 60


@pytest.mark.parametrize("module,name", NAMES)
def test_every_listed_name_is_importable(module, name):
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"docs/INTERFACES.md lists {name} under {module}, which has no such name"
