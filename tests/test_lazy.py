"""mixsig._lazy.lazy_exports: the packages that import their public names on first use (mixsig.extract,
mixsig.heads)."""

import subprocess
import sys

import pytest


def test_a_name_is_imported_from_its_module_on_first_use_only():
    code = ("import sys, mixsig.extract, mixsig.heads\n"
            "before = sorted(m for m in sys.modules if m.startswith(('mixsig.extract.', 'mixsig.heads.')))\n"
            "f = mixsig.extract.describe_allowed_leak\n"
            "print(before, 'mixsig.extract._pipeline' in sys.modules, 'describe_allowed_leak' in vars(mixsig.extract))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True", "True"]


def test_unknown_names_raise_attribute_error_and_dir_lists_the_exports():
    import mixsig.extract
    import mixsig.heads

    with pytest.raises(AttributeError, match="module 'mixsig.heads' has no attribute 'nope'"):
        mixsig.heads.nope  # noqa: B018
    assert not hasattr(mixsig.extract, "nope")
    assert {"train_run", "parse_seeds", "HEADS"} <= set(dir(mixsig.heads))
    assert set(mixsig.extract.__all__) <= set(dir(mixsig.extract))
    from mixsig.heads import train_run
    from mixsig.heads._runs import train_run as defined

    assert train_run is defined
