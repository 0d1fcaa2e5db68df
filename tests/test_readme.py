"""Every `mixsig ...` command line in the README parses with the real CLI parser (no drift between docs and CLI).

What the commands do is tested in the package tests and by the end-to-end demo test; here we make sure the
README never shows an option or subcommand that does not exist.
"""

import re
import shlex
from pathlib import Path

import pytest

from mixsig.cli import COMMANDS, build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    lines = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("mixsig "):
                lines.append(line)
    return lines


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    quick = text[text.index("## Quick start"):text.index("## Quick start") + 200]
    assert "make demo" in quick and "make test" in quick


def test_readme_shows_every_command():
    shown = {shlex.split(c)[1] for c in readme_commands()}
    assert set(COMMANDS) - {"demo"} <= shown  # `mixsig demo` is what `make demo` runs


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_parses(line):
    parser = build_parser()
    args = parser.parse_args(shlex.split(line)[1:])
    assert callable(args.func)
