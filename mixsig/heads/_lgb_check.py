"""Check a LightGBM text model in Python before LightGBM parses it.

LightGBM parses the trees of a model text in parallel threads, and a parse error there terminates the process
(SIGABRT) instead of raising; a tree whose child indices form a cycle loads and then hangs ``predict``; a
``split_feature`` past the features loads and predicts from memory it does not own. So a saved head's
``model.txt`` is read here first, and only a text that passes every check reaches LightGBM:

- the header: ``tree`` first, ``num_class``/``num_tree_per_iteration`` for the head's classes, ``max_feature_idx``
  + 1 = the head's feature count (head.json ``dims``), ``feature_names``/``feature_infos`` of that length, an
  ``objective`` of the head's kind, ``tree_sizes`` (byte length of each tree block);
- every ``Tree=<i>`` block where ``tree_sizes`` puts it, complete, then ``end of trees``;
- per tree: ``num_leaves`` >= 1, no categorical or linear parts (mixsig's heads write neither), the node arrays
  (``split_feature``, ``threshold``, ``decision_type``, ``left_child``, ``right_child``, ...) of num_leaves - 1
  numbers and the leaf arrays of num_leaves, ``split_feature`` in [0, max_feature_idx], finite ``threshold`` and
  ``leaf_value``, and child indices that form a tree: from the root, every internal node and every leaf (``~k``)
  is reached exactly once.

A refusal is a :class:`~mixsig.errors.HeadError` naming the file, the tree and the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from mixsig.errors import HeadError

_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_INT_LINE = re.compile(r"[+-]?[0-9]+(?: [+-]?[0-9]+)*")
_FLOAT_TOKEN = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_FLOAT_LINE = re.compile(rf"{_FLOAT_TOKEN}(?: {_FLOAT_TOKEN})*")
_INT32 = 2 ** 31 - 1
MAX_LEAVES = 131072  # LightGBM's own upper bound on num_leaves
_NODE_FIELDS = {"split_feature": "int", "threshold": "float", "decision_type": "int", "left_child": "int",
                "right_child": "int"}
_NODE_OPTIONAL = {"split_gain": "float", "internal_value": "float", "internal_weight": "float",
                  "internal_count": "int"}
_LEAF_OPTIONAL = {"leaf_weight": "float", "leaf_count": "int"}
_HINT = "The file is damaged or was not written by Head.save; retrain the head and save it again."


class _Refuse(Exception):
    """A problem found at a place (``where``: 'header' or 'Tree=<i>'), in a field."""

    def __init__(self, where: str, field: str, what: str):
        super().__init__(f"{where}, field {field}: {what}")


def check_lightgbm_text(path: Path, *, n_features: int, n_classes: int) -> str:
    """The text of LightGBM model file ``path`` once every check of this module passed (pass it to
    ``lightgbm.Booster(model_str=...)``, so what LightGBM parses is what was checked); :class:`HeadError`
    naming ``path``, the tree and the field otherwise."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise HeadError(f"{path} is not a LightGBM text model: byte {exc.start} is not ASCII. {_HINT}") from None
    try:
        _check_text(text, n_features, n_classes)
    except _Refuse as exc:
        raise HeadError(f"Refusing LightGBM model {path}: {exc}. {_HINT}") from None
    return text


def _check_text(text: str, n_features: int, n_classes: int) -> None:
    if not text.startswith("tree\n"):
        raise _Refuse("header", "first line", "the file does not start with 'tree'")
    end_header = text.find("\n\n")
    if end_header < 0:
        raise _Refuse("header", "end", "no blank line ends the header (the file is truncated)")
    header = _fields(text[5:end_header], "header")
    sizes = _check_header(header, n_features, n_classes)
    pos = end_header + 2
    for i, size in enumerate(sizes):
        where = f"Tree={i}"
        block = text[pos:pos + size]
        if len(block) < size:
            raise _Refuse(where, "tree_sizes", f"the block of {size} bytes runs past the end of the file "
                                               f"({len(text) - pos} left: a truncated file or wrong tree_sizes)")
        if not block.startswith(f"Tree={i}\n") or not block.endswith("\n\n"):
            raise _Refuse(where, "tree_sizes", f"no complete 'Tree={i}' block at byte {pos} "
                                               "(tree_sizes do not match the trees)")
        _check_tree(_fields(block[len(where) + 1:].rstrip("\n"), where), where, n_features)
        pos += size
    if not text.startswith("end of trees", pos):
        raise _Refuse(f"after Tree={len(sizes) - 1}", "end of trees",
                      f"'end of trees' missing at byte {pos} (more trees than tree_sizes lists, or a truncated file)")


def _fields(body: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in body.split("\n"):
        if not line:
            raise _Refuse(where, "lines", "an empty line inside the block")
        key, sep, value = line.partition("=")
        if not sep:
            raise _Refuse(where, repr(line[:40]), "a line without '=' (not a LightGBM model line)")
        if key in out:
            raise _Refuse(where, key, "given twice")
        out[key] = value
    return out


def _check_header(h: dict[str, str], n_features: int, n_classes: int) -> list[int]:
    for key in ("version", "num_class", "num_tree_per_iteration", "max_feature_idx", "objective",
                "feature_names", "tree_sizes"):
        if key not in h:
            raise _Refuse("header", key, "missing")
    want_class = 1 if n_classes == 2 else n_classes
    num_class = _one_int(h["num_class"], "header", "num_class")
    if num_class != want_class:
        raise _Refuse("header", "num_class", f"{num_class}, but the head (head.json n_classes={n_classes}) "
                                             f"needs {want_class}")
    per_it = _one_int(h["num_tree_per_iteration"], "header", "num_tree_per_iteration")
    if per_it != want_class:
        raise _Refuse("header", "num_tree_per_iteration", f"{per_it}, expected {want_class}")
    objective = h["objective"].split(" ")
    if objective[0] != ("binary" if n_classes == 2 else "multiclass"):
        raise _Refuse("header", "objective", f"{objective[0]!r} is not the objective of a {n_classes}-class head")
    for part in objective[1:]:
        name, sep, value = part.partition(":")
        if not sep or not name.isidentifier() or not _FLOAT.match(value):
            raise _Refuse("header", "objective", f"parameter {part!r} is not name:number")
    max_idx = _one_int(h["max_feature_idx"], "header", "max_feature_idx")
    if max_idx + 1 != n_features:
        raise _Refuse("header", "max_feature_idx", f"{max_idx} means {max_idx + 1} features, but the head "
                                                   f"(head.json dims) takes {n_features}")
    for key in ("feature_names", "feature_infos"):
        if key in h and len(h[key].split(" ")) != n_features:
            raise _Refuse("header", key, f"{len(h[key].split(' '))} entries for {n_features} features")
    sizes = _numbers(h["tree_sizes"], "int", "header", "tree_sizes")
    if not sizes or len(sizes) % per_it or any(s <= 0 for s in sizes):
        raise _Refuse("header", "tree_sizes", f"{len(sizes)} tree sizes; expected a positive multiple of "
                                              f"{per_it} positive sizes")
    return [int(s) for s in sizes]


def _check_tree(t: dict[str, str], where: str, n_features: int) -> None:
    for key in ("num_leaves", "num_cat", "leaf_value"):
        if key not in t:
            raise _Refuse(where, key, "missing (the tree is incomplete)")
    n = _one_int(t["num_leaves"], where, "num_leaves")
    if not 1 <= n <= MAX_LEAVES:
        raise _Refuse(where, "num_leaves", f"{n} is outside [1, {MAX_LEAVES}]")
    for key in ("num_cat", "is_linear"):
        if key in t and _one_int(t[key], where, key) != 0:
            raise _Refuse(where, key, "categorical or linear trees are not written by mixsig's lightgbm head")
    leaves = _numbers(t["leaf_value"], "float", where, "leaf_value", n)
    _finite(leaves, where, "leaf_value")
    for key, kind in _LEAF_OPTIONAL.items():
        if key in t and (n > 1 or t[key]):
            _numbers(t[key], kind, where, key, n)
    if "shrinkage" in t:
        _finite(_numbers(t["shrinkage"], "float", where, "shrinkage", 1), where, "shrinkage")
    if n == 1:
        return
    arrays = {}
    for key, kind in _NODE_FIELDS.items():
        if key not in t:
            raise _Refuse(where, key, "missing (the tree is incomplete)")
        arrays[key] = _numbers(t[key], kind, where, key, n - 1)
    for key, kind in _NODE_OPTIONAL.items():
        if key in t:
            _numbers(t[key], kind, where, key, n - 1)
    _finite(arrays["threshold"], where, "threshold")
    for node, f in enumerate(arrays["split_feature"]):
        if not 0 <= f < n_features:
            raise _Refuse(where, "split_feature", f"node {node} splits on feature {f}, outside [0, {n_features - 1}]")
    for node, d in enumerate(arrays["decision_type"]):
        if d < 0 or d & ~0b1110 or (d >> 2) & 3 == 3:
            raise _Refuse(where, "decision_type", f"node {node} has {d}; numerical splits use 0, 2, 4, 6, 8 or 10")
    _check_children(arrays["left_child"], arrays["right_child"], n, where)


def _check_children(left: list, right: list, n: int, where: str) -> None:
    """Every internal node 1..n-2 and every leaf ~0..~(n-1) reached exactly once from the root 0: a tree."""
    seen_node, seen_leaf = {0}, set()
    todo = [0]
    while todo:
        node = todo.pop()
        for field, child in (("left_child", left[node]), ("right_child", right[node])):
            if child >= 0:
                if child >= n - 1:
                    raise _Refuse(where, field, f"node {node} points to node {child}; there are {n - 1} nodes")
                if child in seen_node:
                    raise _Refuse(where, field, f"node {node} points to node {child}, which is already in the tree "
                                                "(a cycle or a shared node)")
                seen_node.add(child)
                todo.append(child)
            else:
                leaf = ~child
                if leaf >= n:
                    raise _Refuse(where, field, f"node {node} points to leaf {leaf} ({child}); there are {n} leaves")
                if leaf in seen_leaf:
                    raise _Refuse(where, field, f"leaf {leaf} is reached twice")
                seen_leaf.add(leaf)
    if len(seen_node) != n - 1 or len(seen_leaf) != n:
        missing = sorted(set(range(n - 1)) - seen_node)
        raise _Refuse(where, "left_child/right_child", f"nodes {missing[:5]} and {n - len(seen_leaf)} leaves are "
                                                       "not reached from the root")


def _one_int(value: str, where: str, field: str) -> int:
    return int(_numbers(value, "int", where, field, 1)[0])


def _numbers(value: str, kind: str, where: str, field: str, count: int | None = None) -> list:
    tokens = value.split(" ") if value else []
    if count is not None and len(tokens) != count:
        raise _Refuse(where, field, f"{len(tokens)} values, expected {count}")
    if not tokens:
        return []
    is_int = kind == "int"
    if not (_INT_LINE if is_int else _FLOAT_LINE).fullmatch(value):  # one match per line: fast on big models
        j, tok = next((j, t) for j, t in enumerate(tokens) if not (_INT if is_int else _FLOAT).match(t))
        raise _Refuse(where, field, f"value {j} ({tok[:30]!r}) is not {'an integer' if is_int else 'a number'}")
    out = list(map(int if is_int else float, tokens))
    if is_int and (max(out) > _INT32 or min(out) < -_INT32):
        j = next(j for j, v in enumerate(out) if abs(v) > _INT32)
        raise _Refuse(where, field, f"value {j} ({tokens[j][:30]}) does not fit in 32 bits")
    return out


def _finite(values: list, where: str, field: str) -> None:
    if not all(map(math.isfinite, values)):
        j = next(j for j, v in enumerate(values) if not math.isfinite(v))
        raise _Refuse(where, field, f"value {j} is not finite")


__all__ = ["check_lightgbm_text"]
