"""Groups found in more than one split (leakage): the ``group_leak`` problems of validation, the leak record of
a loaded manifest (:func:`group_leak`) and the refusal of commands that build on it (:func:`check_group_leak`)."""

from __future__ import annotations

from collections import defaultdict

from mixsig.manifest._row import Row
from mixsig.manifest._schema import MAX_LISTED, Manifest, Problem


def group_leak_problems(rows: list[Row], row_numbers: list[int]) -> list[Problem]:
    """One problem per group found in more than one split (row: first row of its second split)."""
    by_group: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for rownum, r in zip(row_numbers, rows):
        if r.group and r.split:
            by_group[r.group][r.split].append(rownum)
    problems = []
    for group, splits in by_group.items():
        if len(splits) < 2:
            continue
        order = sorted(splits, key=lambda s: splits[s][0])
        parts = []
        for s in order:
            rs = splits[s]
            listed = ", ".join(map(str, rs[:MAX_LISTED])) + (f", ... ({len(rs) - MAX_LISTED} more)"
                                                             if len(rs) > MAX_LISTED else "")
            parts.append(f"{s}: {len(rs)} row{'s' if len(rs) != 1 else ''} ({listed})")
        problems.append(Problem(
            splits[order[1]][0], "group",
            f"group {group!r} is in {len(splits)} splits ({'; '.join(parts)}); a group must stay in one split "
            f"(leakage): move all its rows to one split", "group_leak"))
    return problems


def group_leak(manifest: Manifest) -> dict | None:
    """Groups of ``manifest`` found in more than one split, or None; the record has the shape of
    :meth:`mixsig.cache.FeatureStore.group_leak` (``n_groups``, ``n_rows``, ``groups: {group: {split: rows}}``)."""
    from mixsig.cache import Samples

    rows = manifest.rows
    return Samples(ids=[r.id for r in rows], split=[r.split for r in rows], label=[-1] * len(rows),
                   classes=manifest.classes, group=[r.group for r in rows]).group_leak()


def check_group_leak(manifest: Manifest, allow: bool, command: str) -> dict | None:
    """Raise :class:`~mixsig.errors.GroupLeak` (exit code 3) naming ``<command> --allow-group-leak`` when groups
    of ``manifest`` cross splits and ``allow`` is false; else return the leak record (None when there is none)."""
    from mixsig.errors import GroupLeak

    leak = group_leak(manifest)
    if leak and not allow:
        from mixsig.cache import describe_group_leak

        raise GroupLeak(f"manifest {manifest.path}: {describe_group_leak(leak)}. Results on such splits are inflated "
                        f"(leakage): move each group's rows to one split (`mixsig validate` lists them), or, to "
                        f"reproduce a published split anyway, pass `{command} --allow-group-leak` (the leak is then "
                        f"recorded in the store, and in the run where one is written, and printed).", leak)
    return leak
