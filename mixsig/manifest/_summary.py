"""The counts ``mixsig validate`` prints under the problems (:func:`summarise`)."""

from __future__ import annotations

from collections import Counter

from mixsig.manifest._schema import KNOWN_SPLITS, MODALITIES, Manifest


def summarise(manifest: Manifest) -> dict:
    """Counts for ``mixsig validate``: rows and labels per split, modalities, votes, groups."""
    rows = manifest.rows
    votes = [len(r.votes) for r in rows if r.votes]
    conditions = {}
    for c in manifest.conditions:
        counts = [len(r.votes_by_condition[c]) for r in rows if c in r.votes_by_condition]
        conditions[c] = {"rows": len(counts), "max_annotators": max(counts, default=0)}
    return {
        "rows": len(rows),
        "classes": list(manifest.classes),
        "splits": _splits(manifest),
        "modalities": {m: sum(1 for r in rows if r[m]) for m in MODALITIES},
        "votes": {"rows": len(votes), "max_annotators": max(votes, default=0)},
        "votes_by_condition": conditions,
        "groups": len({r.group for r in rows if r.group}),
        "extra_columns": list(manifest.extra_columns),
    }


def _splits(manifest: Manifest) -> dict[str, dict]:
    """{split: {rows, labels: {label: rows} ("" = no label), groups}}, train/val/test first, then by name."""
    splits: dict[str, dict] = {}
    for r in manifest.rows:
        s = splits.setdefault(r.split, {"rows": 0, "labels": Counter(), "groups": set()})
        s["rows"] += 1
        s["labels"][r.label if r.label is not None else ""] += 1
        if r.group:
            s["groups"].add(r.group)
    return {
        name: {"rows": s["rows"], "labels": dict(sorted(s["labels"].items())), "groups": len(s["groups"])}
        for name, s in sorted(splits.items(), key=lambda kv: (_split_order(kv[0]), kv[0]))
    }


def _split_order(name: str) -> int:
    return KNOWN_SPLITS.index(name) if name in KNOWN_SPLITS else len(KNOWN_SPLITS)
