"""Crafted and odd saved heads (RELIABILITY faults 27 and 15): a crafted or truncated LightGBM ``model.txt`` is
refused with a mixsig error before LightGBM parses it (LightGBM itself aborts the process, hangs, or predicts from
out-of-range features on these files), and every file name of ``head.json`` stays inside the head's folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mixsig
from mixsig.errors import HeadError
from mixsig.heads import get_head, load_head
from tests.heads.helpers import synthetic

N_FEATURES = 30  # helpers.WIDTHS: 12 + 8 + 10


def _resize(text: str) -> str:
    """``text`` with ``tree_sizes`` recomputed from its Tree blocks (so a crafted tree is the only fault)."""
    start = text.index("\nTree=0\n") + 1
    end = text.index("end of trees")
    blocks = re.split(r"(?=^Tree=\d+\n)", text[start:end], flags=re.M)
    sizes = " ".join(str(len(b)) for b in blocks if b)
    return re.sub(r"^tree_sizes=.*$", f"tree_sizes={sizes}", text, count=1, flags=re.M)


def _edit_tree0(text: str, field: str, index: int, value: str) -> str:
    """Set entry ``index`` of ``field`` in Tree=0 to ``value`` (and fix tree_sizes)."""
    start = text.index("\nTree=0\n")
    m = re.compile(rf"^{field}=(.*)$", re.M).search(text, start)
    vals = m.group(1).split(" ")
    vals[index] = value
    return _resize(text[:m.start(1)] + " ".join(vals) + text[m.end(1):])


def _cut_in_tree1(text: str) -> str:
    return text[:text.index("\nTree=1\n") + 120]


#: variant -> (make the crafted file from the real text, what the refusal must say)
VARIANTS = {
    "truncated": (_cut_in_tree1, r"Tree=1, field tree_sizes: .*truncated"),
    "truncated_header": (lambda t: t[:60], r"header, field end: no blank line"),
    "cycle": (lambda t: _edit_tree0(t, "left_child", 1, "0"),
              r"Tree=0, field left_child: node 1 points to node 0, which is already in the tree"),
    "split_feature": (lambda t: _edit_tree0(t, "split_feature", 0, str(N_FEATURES)),
                      rf"Tree=0, field split_feature: node 0 splits on feature {N_FEATURES}, outside \[0, 29\]"),
    "feature_count": (lambda t: t.replace(f"max_feature_idx={N_FEATURES - 1}", "max_feature_idx=19", 1),
                      r"header, field max_feature_idx: 19 means 20 features, but the head .* takes 30"),
    "leaf_index": (lambda t: _edit_tree0(t, "right_child", 0, "-99"),
                   r"Tree=0, field right_child: node 0 points to leaf 98 \(-99\); there are 4 leaves"),
    "threshold": (lambda t: _edit_tree0(t, "threshold", 0, "1e999"), r"Tree=0, field threshold: value 0 is not finite"),
    "num_leaves": (lambda t: _edit_tree0(t, "num_leaves", 0, "40"), r"Tree=0, field leaf_value: 4 values, expected 40"),
    "tree_sizes": (lambda t: t.replace("tree_sizes=", "tree_sizes=7", 1), r"field tree_sizes"),
    "no_end": (lambda t: t.replace("end of trees", "end of tree", 1), r"field end of trees: 'end of trees' missing"),
    "garbage_bytes": (lambda t: "tree\n" + bytes(range(256)).decode("latin1") * 8, r"byte 133 is not ASCII"),
    "garbage_text": (lambda t: "tree\n" + "lorem ipsum\n" * 40 + "\n", r"a line without '='"),
}

_LOAD_ALL = """
import json, sys
import numpy as np
from mixsig.errors import MixsigError
from mixsig.heads import load_head
for folder in sys.argv[1:]:
    try:
        h = load_head(folder)
        p = h.predict_proba({m: np.ones((5, d), np.float32) for m, d in zip(h.modalities_, h.dims_)})
        out = ["loaded", float(p.sum())]
    except MixsigError as exc:
        out = [type(exc).__name__, str(exc)]
    print(json.dumps([folder, out]), flush=True)
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real LightGBM head (4 leaves per tree) saved in a folder; returns (folder, X, probabilities)."""
    X, y = synthetic(200, 0)
    head = get_head("lightgbm", n_estimators=3, num_leaves=4).fit(X, y)
    folder = tmp_path_factory.mktemp("lgb") / "h"
    head.save(folder)
    return folder, X, head.predict_proba(X)


@pytest.fixture(scope="module")
def crafted(saved, tmp_path_factory):
    """Every crafted variant loaded in one child process (LightGBM may abort or hang on them, so never here);
    returns ({variant: [error class, message]}, {variant: model.txt bytes}, return code, stderr)."""
    folder, _, _ = saved
    text = (folder / "model.txt").read_text()
    root = tmp_path_factory.mktemp("crafted")
    files = {}
    for name, (make, _) in VARIANTS.items():
        d = root / name
        d.mkdir()
        (d / "head.json").write_text((folder / "head.json").read_text())
        (d / "model.txt").write_bytes(make(text).encode("latin1"))
        files[name] = (d / "model.txt").read_bytes()
    repo = str(Path(mixsig.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _LOAD_ALL, *(str(root / n) for n in VARIANTS)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('["')]  # not LightGBM's
    results = {Path(f).name: out for f, out in lines}
    return results, files, root, proc


def test_a_real_lightgbm_model_loads_and_predicts_identically(saved, tmp_path):
    folder, X, probs = saved
    assert np.array_equal(load_head(folder).predict_proba(X), probs)
    X3, _ = synthetic(150, 2)
    y3 = np.arange(150) % 3
    head = get_head("lightgbm", n_estimators=4, num_leaves=5, min_child_samples=5).fit(X3, y3)
    head.save(tmp_path / "three")
    assert np.array_equal(load_head(tmp_path / "three").predict_proba(X3), head.predict_proba(X3))
    Xz = {"z": np.zeros((60, 4), np.float32)}  # nothing to split on: single-leaf trees (empty node arrays)
    head = get_head("lightgbm", n_estimators=3).fit(Xz, np.arange(60) % 2)
    head.save(tmp_path / "flat")
    assert "num_leaves=1\n" in (tmp_path / "flat" / "model.txt").read_text()
    assert np.array_equal(load_head(tmp_path / "flat").predict_proba(Xz), head.predict_proba(Xz))


def test_crafted_lightgbm_models_end_in_a_mixsig_error_not_a_signal(crafted):
    results, _, _, proc = crafted
    assert proc.returncode == 0, f"the loader died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    assert sorted(results) == sorted(VARIANTS)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_crafted_lightgbm_model_is_refused_naming_the_tree_and_field(crafted, variant):
    results, files, root, _ = crafted
    assert variant in results, f"{variant}: the loader died before it"
    kind, message = results[variant]
    assert kind == "HeadError", f"{variant} was not refused: {results[variant]}"
    assert str(root / variant / "model.txt") in message
    assert re.search(VARIANTS[variant][1], message), message
    assert "save it again" in message
    assert (root / variant / "model.txt").read_bytes() == files[variant]  # refusing changed nothing on disk


def _state(folder: Path, **changes) -> None:
    meta = json.loads((folder / "head.json").read_text())
    meta["state"].update(changes)
    (folder / "head.json").write_text(json.dumps(meta))


def _copy_head(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "symlinked_default"])
def test_head_files_outside_the_folder_are_refused(saved, tmp_path, how):
    folder, X, probs = saved
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes((folder / "model.txt").read_bytes())  # a valid model: only its place is wrong
    head = _copy_head(folder, tmp_path / "sub" / "h")
    if how == "dotdot":
        (tmp_path / "sub" / "elsewhere.txt").write_bytes(outside.read_bytes())
        _state(head, file="../elsewhere.txt")
        field, pattern = "state.file", "climbs out of the folder"
    elif how == "absolute":
        _state(head, file=str(outside))
        field, pattern = "state.file", "is an absolute path"
    elif how == "symlink":
        (head / "link.txt").symlink_to(outside)
        _state(head, file="link.txt")
        field, pattern = "state.file", "is a symlink to .*elsewhere.txt, outside the folder"
    else:  # no file name recorded: the default model.txt is itself a link out
        (head / "model.txt").unlink()
        (head / "model.txt").symlink_to(outside)
        meta = json.loads((head / "head.json").read_text())
        del meta["state"]["file"]
        (head / "head.json").write_text(json.dumps(meta))
        field, pattern = "model.txt", "is a symlink to .*elsewhere.txt, outside the head's folder"
    with pytest.raises(HeadError, match=pattern) as info:
        load_head(head)
    assert field in str(info.value) and "Head.save" in str(info.value)
    assert np.array_equal(load_head(folder).predict_proba(X), probs)  # the real head still loads


def test_every_file_name_in_head_json_is_checked_for_any_head(tmp_path):
    X, y = synthetic(80, 0)
    get_head("logreg").fit(X, y).save(tmp_path / "h")
    _state(tmp_path / "h", extra_files=["model.safetensors", "/etc/passwd"])
    with pytest.raises(HeadError, match=r"state.extra_files\[1\] = '/etc/passwd' is an absolute path"):
        load_head(tmp_path / "h")
    _state(tmp_path / "h", extra_files=[], file=7)
    with pytest.raises(HeadError, match=r"state.file = 7 is not a file name"):
        load_head(tmp_path / "h")
