"""The cache owns zarr: no module of the package outside ``mixsig/cache/`` imports zarr or names it in code,
or reaches into the store's zarr objects (``store.root[...]``, ``store.root.attrs``, ``store.key_group(...)``).

The second check has an explicit list of the places that still do (each with the FeatureStore call that
replaces it); the test fails when a new one appears and when a listed one is gone (so the list only shrinks)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mixsig"

#: Known remaining reaches into the store's zarr objects: (path under mixsig/, code found) -> the fix.
KNOWN_REACHES: dict[tuple[str, str], str] = {}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith("cache/"):
            yield rel, ast.parse(path.read_text(), filename=str(path))


def _zarr_uses(tree) -> list[tuple[int, str]]:
    """``import zarr`` / ``from zarr... import`` and any name ``zarr`` in code (docstrings and comments aside)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "zarr" for a in node.names):
            found.append((node.lineno, "import zarr"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "zarr":
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Name) and node.id == "zarr":
            found.append((node.lineno, "zarr."))
    return found


def _store_reaches(tree) -> list[tuple[int, str]]:
    """``X.root[...]``, ``X.root.attrs`` and ``X.key_group(...)``: the store's zarr group and a key's group.
    (``manifest.root`` is a folder, not a zarr group: only ``store``-named objects count for ``.root``.)"""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "root" and _names_store(node.value):
            parent = getattr(node, "_parent", None)
            if isinstance(parent, ast.Subscript):
                found.append((node.lineno, "store.root[...]"))
            elif isinstance(parent, ast.Attribute) and parent.attr == "attrs":
                found.append((node.lineno, "store.root.attrs"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "key_group":
            found.append((node.lineno, "store.key_group(...)"))
    return found


def _names_store(node) -> bool:
    return isinstance(node, ast.Name) and node.id in ("store", "st", "fs", "feature_store")


def _with_parents(tree):
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child._parent = node
    return tree


def test_no_zarr_outside_the_cache():
    offenders = [f"mixsig/{rel}:{line}: {what}" for rel, tree in _modules() for line, what in _zarr_uses(tree)]
    assert not offenders, ("zarr used outside mixsig/cache/ (go through FeatureStore: write_run/update_run, "
                           "add_key_array, read_array, update_attrs):\n" + "\n".join(offenders))


def test_no_new_reach_into_the_stores_zarr_objects():
    found: dict[tuple[str, str], list[int]] = {}
    for rel, tree in _modules():
        for line, what in _store_reaches(_with_parents(tree)):
            found.setdefault((rel, what), []).append(line)
    new = [f"mixsig/{rel}:{lines[0]}: {what}" for (rel, what), lines in found.items() if (rel, what) not in KNOWN_REACHES]
    assert not new, "zarr objects of the store reached outside mixsig/cache/ (use FeatureStore methods):\n" + "\n".join(new)
    gone = [f"mixsig/{rel}: {what}" for (rel, what) in KNOWN_REACHES if (rel, what) not in found]
    assert not gone, "fixed, remove from KNOWN_REACHES:\n" + "\n".join(gone)


def test_the_checks_find_what_they_look_for():
    """The checks themselves: each pattern is found in a snippet that has it, and names in strings are not."""
    code = ("import zarr\nfrom zarr.codecs import X\ny = zarr.open_group\ns = 'cache.zarr'\n"
            "store.root['runs']\nstore.root.attrs['a'] = 1\nstore.key_group(k)['fold']\nmanifest.root / 'a'\n")
    tree = _with_parents(ast.parse(code))
    assert [w for _, w in _zarr_uses(tree)] == ["import zarr", "from zarr.codecs import ...", "zarr."]
    assert sorted(w for _, w in _store_reaches(tree)) == ["store.key_group(...)", "store.root.attrs", "store.root[...]"]
