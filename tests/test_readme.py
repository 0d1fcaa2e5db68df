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
    """The line parses, reaches its own command's code (not a help fallback), and every option it shows is an option
    of that command spelled in full (argparse would accept an abbreviation; the README must not rely on one)."""
    parser = build_parser()
    words = shlex.split(line)[1:]
    args = parser.parse_args(words)
    assert args.func.__module__ == f"mixsig.commands.{words[0]}", (line, args.func)
    assert getattr(args.func, "__name__", "") != "<lambda>", f"{line!r} only reaches the help fallback"
    for word in words:
        if word.startswith("--"):
            dest = word[2:].split("=")[0].replace("-", "_")
            assert hasattr(args, dest), f"{line!r}: {word.split('=')[0]} is not an option of `mixsig {words[0]}`"
