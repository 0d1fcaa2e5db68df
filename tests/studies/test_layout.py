"""The studies package by job: small modules and functions, only public names of other packages and of Optuna,
and a package (and `mixsig study` parsers) that imports no numpy/optuna until a study runs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "mixsig" / "studies"
MODULES = sorted(PKG.glob("*.py"))
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
HEAVY = ("numpy", "zarr", "torch", "optuna", "matplotlib", "lightgbm", "sklearn")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_modules_and_functions_are_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines (split it by job)"
    long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(_tree(path))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_private_name_of_another_package_or_of_optuna(path):
    """No ``from mixsig.heads._torch import ...`` (the package's public name instead), no ``study._storage`` /
    ``trial._trial_id`` (Optuna's public API: ``study.tell(number, state=FAIL)``); ``self._x`` is the class' own."""
    bad = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mixsig."):
            parts = node.module.split(".")
            if parts[1] != "studies" and any(p.startswith("_") for p in parts[1:]) and parts[1] not in ("_registry", "_lazy"):
                bad.append(f"line {node.lineno}: from {node.module} import ...")
            bad += [f"line {node.lineno}: {node.module}.{a.name}" for a in node.names
                    if a.name.startswith("_") and parts[1] != "studies"]
        if isinstance(node, ast.Import):
            bad += [f"line {node.lineno}: import {a.name}" for a in node.names
                    if a.name.startswith("mixsig.") and not a.name.startswith("mixsig.studies")
                    and any(p.startswith("_") for p in a.name.split(".")[1:])]
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                bad.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not bad, f"{path.name} reaches into private names: {bad}"


CHILD = """
import contextlib, io, json, sys
from mixsig.cli import main
argv = json.loads(sys.argv[1])
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out):
        rc = main(argv)
except SystemExit as exc:
    rc = exc.code
import mixsig.studies as s
names = [s.describe_spaces, s.list_spaces, s.SPACES, s.Float, s.run_name_for]
print(json.dumps({"rc": rc, "out": out.getvalue(), "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


@pytest.mark.parametrize("argv,shows", [(["study", "--help"], "spaces: the search space of every head"),
                                        (["study", "run", "--help"], "num_leaves 4..32 log"),
                                        (["study", "spaces"], "num_leaves 4..32 log")])
def test_study_parsers_and_spaces_import_nothing_heavy(argv, shows):
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(argv)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rc"] in (0, None) and got["heavy"] == [], got["heavy"]
    assert shows in " ".join(got["out"].split())
