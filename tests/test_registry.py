"""The one registry type (mixsig._registry.Registry) and its uses: heads, poolings, input adapters (modalities);
listing names imports neither numpy nor torch (the CLI's choices: tests/commands/test_train.py, test_startup.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mixsig._registry import Registry
from mixsig.errors import HeadError, StudyError, UsageError


def test_register_get_names_and_the_decorator_form():
    reg = Registry("fitter", error=StudyError)
    reg.register("b", len)

    @reg.register("a")
    def fit_a():
        return "a"

    assert reg.get("a") is fit_a and reg.get("b") is len and fit_a() == "a"
    assert reg.names() == reg.list() == ["a", "b"] and list(reg) == ["a", "b"] and "a" in reg and len(reg) == 2
    reg.register("a", fit_a)                      # the same object again: a no-op
    reg.unregister("b")
    assert reg.names() == ["a"]


def test_unknown_names_raise_the_registry_error_listing_the_valid_names():
    reg = Registry("search space", error=StudyError, hint="add one with register_space")
    reg.register("gated", object())
    reg.register("logreg", object())
    with pytest.raises(StudyError, match=r"^Unknown search space 'mlp'. Valid search spaces: gated, logreg "
                                         r"\(add one with register_space\).$"):
        reg.get("mlp")
    with pytest.raises(StudyError, match="Unknown search space 'mlp'"):
        reg.unregister("mlp")


def test_duplicates_are_refused_naming_the_entry_that_holds_the_name():
    reg = Registry("pooling")
    reg.register("cls", len)
    with pytest.raises(UsageError, match=r"A pooling named 'cls' is already registered \(builtins:len\)"):
        reg.register("cls", print)
    assert reg.get("cls") is len


def test_lazy_entries_are_listed_without_importing_and_resolved_by_get(tmp_path, monkeypatch):
    (tmp_path / "lazy_mod_for_registry.py").write_text(
        "from tests_registry_target import REG\n@REG.register('late')\ndef late():\n    return 'late'\n")
    (tmp_path / "tests_registry_target.py").write_text(
        "from mixsig._registry import Registry\nREG = Registry('thing')\n"
        "REG.register_lazy('late', 'lazy_mod_for_registry:late')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import tests_registry_target as target

    assert target.REG.names() == ["late"] and "lazy_mod_for_registry" not in sys.modules
    assert target.REG.get("late")() == "late" and "lazy_mod_for_registry" in sys.modules
    with pytest.raises(UsageError, match=r"already registered \(lazy_mod_for_registry:late\)"):
        target.REG.register_lazy("late", "elsewhere:late")


def test_the_built_in_registries_list_their_names_and_refuse_duplicates():
    from mixsig.extract import POOLINGS, get_pooling, list_modalities, register_pooling
    from mixsig.heads import HEADS, get_head, register_head
    from mixsig.heads._base import Head
    from mixsig.modalities import INPUTS

    assert POOLINGS.names() == ["cls", "mean"] and list_modalities() == INPUTS.names() == ["audio", "text", "video"]
    assert HEADS.names() == ["concat", "gated", "late", "lightgbm", "logreg"]
    with pytest.raises(UsageError, match="Unknown pooling 'maxx'. Valid poolings: cls, mean"):
        get_pooling("maxx")
    with pytest.raises(UsageError, match="Unknown modality 'face'. Valid modalities: audio, text, video"):
        INPUTS.get("face")
    with pytest.raises(HeadError, match="Unknown head 'mlp'. Valid heads: concat, gated, late, lightgbm, logreg"):
        get_head("mlp")
    with pytest.raises(UsageError, match=r"pooling named 'cls' is already registered \(mixsig.extract._pooling:cls_pool\)"):
        register_pooling("cls")(lambda hidden, mask: hidden[:, -1])
    with pytest.raises(HeadError, match=r"head named 'gated' is already registered \(mixsig.heads._torch:GatedFusionHead\)"):
        register_head("gated")(type("OtherGated", (Head,), {}))
    assert type(get_head("gated")).__name__ == "GatedFusionHead" and POOLINGS.names() == ["cls", "mean"]


def test_one_definition_of_the_modalities():
    import mixsig.cache
    import mixsig.modalities

    assert mixsig.cache.MODALITIES is mixsig.modalities.MODALITIES == ("text", "audio", "video")


def test_listing_names_and_building_the_parsers_import_neither_numpy_nor_torch():
    code = ("import sys, argparse\n"
            "from mixsig.heads import list_heads\nfrom mixsig.extract import list_poolings\n"
            "from mixsig.modalities import INPUTS\n"
            "assert list_heads() and list_poolings() and INPUTS.names()\n"
            "import mixsig.commands.extract, mixsig.commands.finetune, mixsig.commands.train\n"
            "sub = argparse.ArgumentParser().add_subparsers()\n"
            "for m in (mixsig.commands.extract, mixsig.commands.finetune, mixsig.commands.train):\n"
            "    m.register(sub)\n"
            "heavy = [m for m in ('numpy', 'torch', 'lightgbm', 'sklearn', 'zarr') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
