"""The shape of the code, read from the source with `ast` (nothing is imported):

(a) no private name crosses a package: ``mixsig.<pkg>._x`` (or ``from mixsig.<pkg> import _x``) is imported only
    from inside ``mixsig/<pkg>/``. The top-level private modules in SHARED_PRIVATE are shared infrastructure.
(b) dependencies point one way, down the LAYERS below (every import, also those inside functions), and no two
    modules import each other, directly or round a loop, at import time (module-level imports outside
    ``if TYPE_CHECKING:``).
(c) modules stay <= MAX_MODULE_LINES lines and functions <= MAX_FUNCTION_LINES lines, but for the entries of
    LONG, each with its reason.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "mixsig"

#: The direction of dependencies: a module of a layer imports only from lower layers (or its own package).
#: A "package" is mixsig/<name>/ or a top-level module mixsig/<name>.py; "mixsig" is mixsig/__init__.py.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer) for layer in (
    {"errors"},
    {"mixsig", "_lazy", "_registry", "features", "jsonutil", "metrics", "training"},  # shared: stdlib/numpy/torch
    {"modalities"},                                               # the input-adapter registry
    {"cache"},                                                    # the store; imports none of the packages above it
    {"manifest"},
    {"extract", "heads"},                                         # independent of each other
    {"studies", "analysis"},                                      # independent of each other
    {"demo"},                                                     # runs the whole pipeline
    {"commands"},                                                 # one module per CLI command
    {"cli"},                                                      # imports the commands by name; nothing imports it
))

#: Top-level private modules any package may import.
SHARED_PRIVATE = {"mixsig._lazy", "mixsig._registry"}

#: Private imports across packages still to be replaced by public names: (importing module, imported module) -> why.
KNOWN_PRIVATE: dict[tuple[str, str], str] = {}

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

#: Longer than the limits, and why. Keys: "path/to/module.py" (the module) or "path/to/module.py:function".
LONG: dict[str, str] = {
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
            for p in sorted(ROOT.rglob("*.py"))}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mixsig"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports(module: str, tree: ast.Module, is_package: bool):
    """(line, target module, imported names or None, at import time) for each import of a mixsig module."""

    def visit(node, at_import_time):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from visit(child, False)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "mixsig":
                        yield child.lineno, alias.name, None, at_import_time
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    here = module.split(".") if is_package else module.split(".")[:-1]
                    here = here[: len(here) - (child.level - 1)]
                    base = ".".join(here + ([child.module] if child.module else []))
                if base.split(".")[0] == "mixsig":
                    yield child.lineno, base, [a.name for a in child.names], at_import_time
            else:
                yield from visit(child, at_import_time)

    yield from visit(tree, True)


def _all_imports():
    for module, (path, tree) in _modules().items():
        for line, target, names, at_import_time in _imports(module, tree, path.name == "__init__.py"):
            yield module, path, line, target, names, at_import_time


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT.parent)}:{line}"


def test_no_private_name_is_imported_across_packages():
    offenders, found = [], set()
    for module, path, line, target, names, _ in _all_imports():
        here, there = _package(module), _package(target)
        if here == there:
            continue
        private = [p for p in target.split(".")[1:] if _private(p)]
        private += [n for n in names or () if _private(n)]
        if private and target not in SHARED_PRIVATE:
            found.add((module, target))
            if (module, target) not in KNOWN_PRIVATE:
                offenders.append(f"{_where(path, line)}: {module} imports {target} {names or ''}".rstrip())
    assert not offenders, "private names imported from another package:\n" + "\n".join(offenders)
    assert set(KNOWN_PRIVATE) <= found, f"KNOWN_PRIVATE lists what is fixed: {sorted(set(KNOWN_PRIVATE) - found)}"


def _rank(package: str) -> int:
    """The package's layer; packages missing from LAYERS rank above all (test_every_package_is_in_one_layer
    names them)."""
    return next((i for i, layer in enumerate(LAYERS) if package in layer), len(LAYERS))


def test_every_package_is_in_one_layer():
    packages = {_package(m) for m in _modules()}
    placed = [p for layer in LAYERS for p in layer]
    assert sorted(placed) == sorted(set(placed)), "a package is in two layers"
    assert packages == set(placed), (f"not in LAYERS: {sorted(packages - set(placed))}; "
                                     f"in LAYERS but gone: {sorted(set(placed) - packages)}")


def test_dependencies_point_down_the_layers():
    offenders = []
    for module, path, line, target, names, _ in _all_imports():
        here, there = _package(module), _package(target)
        if here != there and _rank(there) >= _rank(here):
            offenders.append(f"{_where(path, line)}: {module} ({here}) imports {target} ({there})")
    assert not offenders, "imports against the direction of LAYERS:\n" + "\n".join(offenders)


def _import_time_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path, line, target, names, at_import_time in _all_imports():
        if not at_import_time:
            continue
        targets = [f"{target}.{n}" if f"{target}.{n}" in modules else target for n in names] if names else [target]
        graph[module].update(t for t in targets if t in modules and t != module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_cycle_search_finds_a_planted_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_import_time():
    graph = _import_time_graph()
    assert "mixsig.cache._store" in graph["mixsig.cache"] and "mixsig.errors" in graph["mixsig.cache._store"]
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other at import time:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _lengths():
    for module, (path, tree) in _modules().items():
        rel = str(path.relative_to(ROOT.parent))
        yield rel, len(path.read_text(encoding="utf-8").splitlines()), MAX_MODULE_LINES
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{rel}:{node.name}", node.end_lineno - node.lineno + 1, MAX_FUNCTION_LINES


def test_modules_and_functions_are_short():
    lengths = list(_lengths())
    offenders = [f"{name}: {n} lines (limit {limit})" for name, n, limit in lengths if n > limit and name not in LONG]
    assert not offenders, "too long (split it, or add it to LONG with the reason):\n" + "\n".join(offenders)
    still_long = {name for name, n, limit in lengths if n > limit}
    assert set(LONG) <= still_long, f"LONG lists what is no longer too long: {sorted(set(LONG) - still_long)}"
