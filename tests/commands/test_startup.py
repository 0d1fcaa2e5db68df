"""`mixsig --help`, `mixsig validate --help` and every `mixsig COMMAND --help` start instantly: in a fresh process
they import none of the heavy libraries and no other command's module, and the first two take < 0.15 s of CPU
(the whole process, interpreter start included; the least of three runs, so one slow run on a busy machine does
not fail it)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixsig.cli import COMMANDS, build_parser, main
from tests.commands.helpers import HEAVY

ROOT = Path(__file__).resolve().parents[2]

#: Heavy modules a command's --help may import, and why. Empty: every choice a parser offers (modalities, poolings,
#: heads, search spaces) comes from a registry that lists its names without importing what it names.
MAY_IMPORT: dict[str, tuple[str, ...]] = {}

CPU_LIMIT_S = 0.15

# Runs `mixsig ARGV` the way the console script does (mixsig.cli.main), then reports what it imported and the CPU
# time of the whole process. --help ends in SystemExit(0) after printing the help.
CHILD = """
import contextlib, io, json, sys, time
from mixsig.cli import main
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out):
        rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
cpu = time.process_time()
print(json.dumps({"rc": rc, "cpu": cpu, "help": out.getvalue(),
                  "heavy": sorted(m for m in %r if m in sys.modules),
                  "commands": sorted(m.split(".")[2] for m in sys.modules if m.startswith("mixsig.commands.")
                                     and not m.split(".")[2].startswith("_"))}))
""" % (HEAVY,)


def _start(*argv: str) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["rc"] == 0 and got["help"].startswith("usage: mixsig"), got  # the help was printed
    return got


@pytest.mark.parametrize("argv", [("--help",), ("validate", "--help")], ids=["mixsig", "validate"])
def test_help_imports_nothing_heavy_and_is_quick(argv):
    runs = [_start(*argv) for _ in range(3)]
    assert runs[0]["heavy"] == [], f"mixsig {' '.join(argv)} imported {runs[0]['heavy']}"
    assert runs[0]["commands"] == list(argv[:-1]), runs[0]["commands"]   # --help: none; validate --help: validate's
    cpu = min(r["cpu"] for r in runs)
    assert cpu < CPU_LIMIT_S, f"mixsig {' '.join(argv)} took {cpu:.3f} s of CPU (limit {CPU_LIMIT_S} s)"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_imports_only_what_it_is_allowed(command):
    got = _start(command, "--help")
    assert got["help"].startswith(f"usage: mixsig {command}")
    extra = sorted(set(got["heavy"]) - set(MAY_IMPORT.get(command, ())))
    assert not extra, f"mixsig {command} --help imported {extra}"
    assert got["commands"] == [command]


def _help(parser, *command: str) -> str:
    for name in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    return parser.format_help()


def test_a_command_parser_built_alone_gives_the_same_help():
    """main builds only the parser of the command it runs; the others are placeholders with their summary."""
    full = build_parser()
    assert _help(build_parser(only="")) == _help(full)              # `mixsig --help`: every command's line
    for command in COMMANDS:
        assert _help(build_parser(only=command), command) == _help(full, command)
    assert _help(build_parser(only="cache"), "cache", "ls") == _help(full, "cache", "ls")


def test_an_unknown_command_is_refused_listing_the_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "valdate", "m.csv"])
    assert exc.value.code == 2
    assert "invalid choice: 'valdate' (choose from " + ", ".join(map(repr, COMMANDS)) in capsys.readouterr().err


def test_the_allow_list_names_real_commands_and_heavy_modules():
    assert set(MAY_IMPORT) <= set(COMMANDS) and all(set(v) <= set(HEAVY) for v in MAY_IMPORT.values())
