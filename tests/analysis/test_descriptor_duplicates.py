"""The duplicate-descriptor rule (an imported column that rank-duplicates another column is not tested again):
null at small n (independent columns are never flagged below DUPLICATE_MIN_ROWS rows, where chance alone reaches
|rho| >= 0.99 for 1 pair in 3 at 3 rows), planted (a monotone copy is flagged from DUPLICATE_MIN_ROWS rows on), and
imported columns de-duplicated against each other keeping the named one."""

from __future__ import annotations

import numpy as np
import pytest

from mixsig.analysis import _descriptors
from mixsig.analysis._descriptors import DUPLICATE_MIN_ROWS, duplicate_columns, duplicate_imported


@pytest.mark.parametrize("n", [3, 4, 5])
def test_independent_columns_in_small_splits_are_never_duplicates(n):
    rng = np.random.default_rng(n)
    flagged = sum(bool(duplicate_columns({"duration_s": rng.normal(size=n)}, {"k[x]": rng.normal(size=n)}))
                  for _ in range(400))
    assert flagged == 0  # without the row floor: 1/3 at n=3, 1/12 at n=4, 1/60 at n=5 (133, 33, 7 of 400 expected)


def test_a_monotone_copy_is_a_duplicate_from_the_row_floor_on():
    rng = np.random.default_rng(1)
    d = rng.uniform(1, 10, 40)
    for n, want in ((DUPLICATE_MIN_ROWS - 1, []), (DUPLICATE_MIN_ROWS, ["duration_s"]), (40, ["duration_s"])):
        col = np.full(40, np.nan)
        col[:n] = d[:n] * 1000.0  # milliseconds: the same ranks
        got = duplicate_columns({"duration_s": d, "word_count": rng.normal(size=40)}, {"k[ms]": col})
        assert [x["duplicate_of"] for x in got] == want, n
        if want:
            assert got[0]["n"] == n and got[0]["spearman"] == pytest.approx(1.0)
    assert DUPLICATE_MIN_ROWS == 10 and "at least 10" in _section_rule()


def _section_rule() -> str:
    from mixsig.analysis.sections import descriptors

    return descriptors.DUPLICATES_RULE


def test_imported_columns_are_deduplicated_against_each_other_keeping_the_named_one():
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(3, 50))
    imported = {"meta.x.1111[0]": a, "meta.x.1111[1]": b, "meta.x.2222[dur]": a * 3 + 1, "meta.x.2222[z]": -b,
                "meta.x.2222[c]": c}
    got = {x["descriptor"]: x["duplicate_of"] for x in duplicate_imported(imported)}
    assert got == {"meta.x.1111[0]": "meta.x.2222[dur]", "meta.x.1111[1]": "meta.x.2222[z]"}
    # null: independent imported columns are all kept
    assert duplicate_imported({f"k[{j}]": rng.normal(size=50) for j in range(6)}) == []
