"""Media paths outside the manifest's folder (absolute, ``..``, symlinks out): `mixsig validate` warns about each,
`load_manifest` refuses them unless allow_outside_paths=True, and no file outside the folder is opened by default.

Each case uses a real file outside a tmp corpus folder and real symlinks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import mixsig.cli
from mixsig.errors import ManifestError, RefusedInput
from mixsig.manifest import (
    check_outside_paths, load_manifest, media_hash, outside_paths, to_samples, validate_manifest,
)


def _wav(path: Path, freq: float) -> Path:
    t = np.arange(1600) / 16000
    sf.write(str(path), (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000, subtype="PCM_16")
    return path


@pytest.fixture
def corpus(tmp_path) -> dict:
    """tmp/corpus/m.csv with rows 1-5 pointing outside tmp/corpus (to tmp/outside/secret.wav, a real file) and
    rows 6-7 inside (a plain file and a symlink that points inside)."""
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = _wav(outside / "secret.wav", 300)
    _wav(root / "in.wav", 200)
    (root / "a").mkdir()
    (root / "link_out.wav").symlink_to(secret)                 # a symlink inside pointing outside
    (root / "inlink.wav").symlink_to(root / "in.wav")          # a symlink inside pointing inside: fine
    (root / "subdir").symlink_to(outside, target_is_directory=True)  # a folder symlinked out
    paths = ["../outside/secret.wav", str(secret), "link_out.wav", "subdir/secret.wav", "a/../../outside/secret.wav",
             "in.wav", "inlink.wav"]
    lines = ["id,split,label,text,audio"] + [f"r{i},train,x,t{i},{p}" for i, p in enumerate(paths, start=1)]
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    return {"manifest": root / "m.csv", "root": root, "outside": outside, "secret": secret, "paths": paths}


def test_validate_warns_about_each_outside_path_with_id_path_and_reason(corpus, capsys):
    rc = mixsig.cli.main(["validate", str(corpus["manifest"]), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["errors"] == 0
    outside = [p for p in data["problems"] if p["code"] == "outside_path"]
    assert [(p["row"], p["column"], p["severity"]) for p in outside] == [(i, "audio", "warning") for i in range(1, 6)]
    paths = corpus["paths"]
    for p, path in zip(outside, paths):
        assert f"id 'r{p['row']}': audio path {path!r}" in p["message"]
        assert "--allow-outside-paths" in p["message"] and "not opened" in p["message"]
    assert "climbs out of the manifest's folder with '..'" in outside[0]["message"]
    assert "is an absolute path outside the manifest's folder" in outside[1]["message"]
    assert f"symlink that resolves to {str(corpus['secret'])!r}" in outside[2]["message"]
    assert "symlink" in outside[3]["message"]
    assert "climbs out" in outside[4]["message"]
    # rows 1-5 name one file under five ids, but outside files are never compared; the inside symlink is
    others = [(p["row"], p["code"]) for p in data["problems"] if p["code"] != "outside_path"]
    assert others == [(7, "duplicate_media")]
    rc = mixsig.cli.main(["validate", str(corpus["manifest"])])
    out = capsys.readouterr().out
    assert rc == 0 and "row 3, column audio: warning: id 'r3': audio path 'link_out.wav' goes through a symlink" in out
    assert "OK: 0 errors, 6 warnings" in out


def test_classic_targets_are_warned_not_read(tmp_path, capsys):
    """`../../etc/passwd` and `/proc/self/environ` (the issue's examples): warned, and not reported as missing."""
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    rel = os.path.relpath("/etc/passwd", deep)
    (deep / "m.csv").write_text(f"id,split,label,text,audio,video\np,train,x,hi,{rel},\ne,train,x,ho,,/proc/self/environ\n")
    rc = mixsig.cli.main(["validate", str(deep / "m.csv"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert [(p["row"], p["column"], p["code"]) for p in data["problems"]] == [(1, "audio", "outside_path"),
                                                                              (2, "video", "outside_path")]
    with pytest.raises(RefusedInput, match="2 media path"):
        load_manifest(deep / "m.csv", check_media=False)


def test_load_manifest_refuses_outside_paths_unless_allowed(corpus):
    with pytest.raises(RefusedInput) as info:
        load_manifest(corpus["manifest"], check_media=False, group_leak_errors=False)  # as `mixsig extract` calls it
    msg = str(info.value)
    assert info.value.exit_code == 3
    assert "5 media path(s) outside its folder" in msg and "--allow-outside-paths" in msg
    for i in range(1, 6):
        assert f"row {i}, id 'r{i}': audio {corpus['paths'][i - 1]!r}" in msg
    assert "'in.wav'" not in msg and "'inlink.wav'" not in msg
    # allowed: loads, and to_samples hashes the outside file like any other
    manifest = load_manifest(corpus["manifest"], allow_outside_paths=True)
    s = to_samples(manifest)
    assert s.content_hash["audio"].tolist()[:5] == [media_hash(corpus["secret"])] * 5
    assert s.content_hash["audio"][5] == s.content_hash["audio"][6] == media_hash(corpus["root"] / "in.wav")


def test_refusal_lists_first_rows_then_a_count(tmp_path):
    (tmp_path / "c").mkdir()
    lines = ["id,split,label,text,audio"] + [f"r{i},train,x,t,../o{i}.wav" for i in range(1, 9)]
    (tmp_path / "c" / "m.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(RefusedInput) as info:
        load_manifest(tmp_path / "c" / "m.csv")
    msg = str(info.value)
    assert "8 media path(s)" in msg and "row 5, id 'r5'" in msg and "r6" not in msg and "... and 3 more" in msg


def test_errors_come_before_the_refusal(corpus):
    text = corpus["manifest"].read_text().replace("r2,train", "r1,train")  # a duplicate id: an error
    corpus["manifest"].write_text(text)
    with pytest.raises(ManifestError, match="duplicate id 'r1'"):
        load_manifest(corpus["manifest"], check_media=False)


def test_outside_paths_helpers(corpus):
    manifest, _ = validate_manifest(corpus["manifest"])
    found = outside_paths(manifest)
    assert [(i, m, p) for i, m, p, _ in found] == [(f"r{i}", "audio", corpus["paths"][i - 1]) for i in range(1, 6)]
    with pytest.raises(RefusedInput, match=r"`mixsig extract --allow-outside-paths`") as info:
        check_outside_paths(manifest, allow=False, command="mixsig extract")
    assert "id 'r1': audio '../outside/secret.wav'" in str(info.value)
    assert len(check_outside_paths(manifest, allow=True, command="mixsig extract")) == 5


def test_allowed_outside_paths_are_checked(corpus, capsys):
    corpus["secret"].unlink()
    assert mixsig.cli.main(["validate", str(corpus["manifest"]), "--json"]) == 0   # not opened: nothing to report
    capsys.readouterr()
    rc = mixsig.cli.main(["validate", str(corpus["manifest"]), "--json", "--allow-outside-paths"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    missing = [p["row"] for p in data["problems"] if p["code"] == "missing_media"]
    assert missing == [1, 2, 3, 4, 5]


_PROBE = """
import json, os, sys
outside = os.path.realpath(sys.argv[2])
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        p = os.fsdecode(args[0])
        if os.path.realpath(p).startswith(outside + os.sep) or p in ("/etc/passwd", "/proc/self/environ"):
            opened.append(p)
sys.addaudithook(hook)
import mixsig.cli
from mixsig.errors import RefusedInput
from mixsig.manifest import load_manifest, to_samples, validate_manifest
allow = sys.argv[3] == "allow"
manifest, problems = validate_manifest(sys.argv[1], allow_outside_paths=allow)
to_samples(manifest)
try:
    load_manifest(sys.argv[1], allow_outside_paths=allow)
except RefusedInput:
    pass
mixsig.cli.main(["validate", sys.argv[1], "--json"] + (["--allow-outside-paths"] if allow else []))
print("OPENED", json.dumps(sorted(set(opened))), file=sys.stderr)
"""


def test_no_file_outside_the_folder_is_opened_by_default(corpus, tmp_path):
    """An audit hook sees every open(): validate (with media checks), to_samples and load_manifest open nothing
    outside the folder by default; with allow_outside_paths=True the same run does open them (the probe works)."""
    def opened(mode: str) -> list[str]:
        res = subprocess.run([sys.executable, "-c", textwrap.dedent(_PROBE), str(corpus["manifest"]),
                              str(corpus["outside"]), mode], capture_output=True, text=True, timeout=120)
        line = [x for x in res.stderr.splitlines() if x.startswith("OPENED ")]
        assert line, res.stderr
        return json.loads(line[0][len("OPENED "):])
    assert opened("deny") == []
    assert opened("allow")  # the same calls do open the outside file when asked to


def test_folders_resolved_once_give_the_same_verdicts_as_resolving_every_path(tmp_path):
    """outside_paths resolves each folder once and lstats each file (a 2M-path manifest spent minutes in realpath);
    planted: chains of symlinked files and folders, relative and absolute link targets, '..' after a symlinked
    folder, links that dangle; every verdict and reason equals resolving each path in full."""
    from mixsig.manifest._outside import outside_reason

    root, out = tmp_path / "c", tmp_path / "o"
    (root / "real" / "deep").mkdir(parents=True)
    (out / "x").mkdir(parents=True)
    for f in (root / "real" / "a.wav", root / "real" / "deep" / "b.wav", out / "s.wav", out / "x" / "t.wav"):
        _wav(f, 220)
    (root / "in_dir").symlink_to("real", target_is_directory=True)             # relative folder link, inside
    (root / "out_dir").symlink_to(out, target_is_directory=True)              # folder link, outside
    (root / "real" / "up").symlink_to("..", target_is_directory=True)         # a loop back to the root
    (root / "real" / "hop.wav").symlink_to("../out_dir/s.wav")                 # file link through a folder link
    (root / "real" / "chain.wav").symlink_to("hop.wav")                        # a chain of file links
    (root / "real" / "ok.wav").symlink_to("deep/b.wav")                        # file link, inside
    (root / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")              # dangling, outside
    (root / "dangling_in.wav").symlink_to("real/nothing.wav")                 # dangling, inside
    paths = ["real/a.wav", "in_dir/a.wav", "in_dir/deep/b.wav", "out_dir/s.wav", "out_dir/x/t.wav",
             "real/up/real/a.wav", "real/up/out_dir/x/t.wav", "real/hop.wav", "real/chain.wav", "real/ok.wav",
             "in_dir/chain.wav", "in_dir/ok.wav", "out_dir/../c/real/a.wav", "in_dir/../real/a.wav",
             "in_dir/../../o/s.wav", "dangling.wav", "dangling_in.wav", "missing/x.wav", str(out / "s.wav"),
             str(root / "real" / "a.wav"), "real/deep/../a.wav", "./real/a.wav", "real/.", "real/.."]
    lines = ["id,split,label,text,audio"] + [f"r{i},train,x,t,{p}" for i, p in enumerate(paths)]
    (root / "m.csv").write_text("\n".join(lines) + "\n")
    manifest, _ = validate_manifest(root / "m.csv")
    found = {i: reason for i, _, _, reason in outside_paths(manifest)}
    want = {f"r{i}": outside_reason(root, p) for i, p in enumerate(paths)}   # no folder cache: realpath of each
    assert found == {i: r for i, r in want.items() if r is not None}
    assert set(found) == {f"r{i}" for i in (3, 4, 6, 7, 8, 10, 14, 15, 18)}, found
