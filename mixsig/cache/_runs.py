"""Runs: a head's class probabilities for every modality subset and seed (``runs/<run>/``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixsig.errors import StoreError


@dataclass
class RunSubset:
    """Predictions of one modality subset.

    - ``probs`` [S, N, C] float32: S seeds, N = every row of the store, NaN rows = not predicted
    - ``gates`` / ``attention`` [S, N, M] float32 (M = the subset's modalities, in subset order) where the head has them
    """

    probs: np.ndarray
    gates: np.ndarray | None = None
    attention: np.ndarray | None = None


@dataclass
class Run:
    """A run: ``attrs`` (head, params, features, modalities, seeds, classes, metrics, ...) and its subsets.

    Subset names are modalities joined by ``+`` in the run's modality order (``text+audio+video``).
    """

    name: str
    attrs: dict
    subsets: dict[str, RunSubset] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.attrs.get("modalities") or max(self.subsets, key=lambda s: s.count("+")).split("+"))

    @property
    def full_subset(self) -> str:
        """The subset holding every modality of the run."""
        return "+".join(self.modalities)


def subset_name(modalities) -> str:
    return "+".join(modalities)


def write_run(runs_group, name: str, attrs: dict, subsets: dict[str, RunSubset], n_rows: int,
              overwrite: bool = False) -> None:
    if not subsets:
        raise StoreError(f"run {name!r} has no subsets to write")
    if name in set(runs_group.group_keys()):
        if not overwrite:
            raise StoreError(f"run {name!r} already exists; choose another --name or pass overwrite")
        del runs_group[name]
    g = runs_group.create_group(name)
    sg = g.create_group("subsets")
    for sub, data in subsets.items():
        probs = np.asarray(data.probs, np.float32)
        if probs.ndim != 3 or probs.shape[1] != n_rows:
            raise StoreError(f"run {name!r} subset {sub!r}: probs must be [S, {n_rows}, C], got {probs.shape}")
        h = sg.create_group(sub)
        for arr_name, arr in (("probs", probs), ("gates", data.gates), ("attention", data.attention)):
            if arr is None:
                continue
            arr = np.asarray(arr, np.float32)
            a = h.create_array(arr_name, shape=arr.shape, dtype="float32", chunks=arr.shape, fill_value=np.nan)
            a[...] = arr
    g.attrs.update(dict(attrs, complete=True))  # attrs last: a run without `complete` was interrupted


def read_run(runs_group, name: str) -> Run:
    if name not in set(runs_group.group_keys()):
        have = sorted(runs_group.group_keys())
        raise StoreError(f"no run named {name!r} in the store; runs: {have or 'none (run `mixsig train` first)'}")
    g = runs_group[name]
    attrs = dict(g.attrs)
    if not attrs.get("complete"):
        raise StoreError(f"run {name!r} was interrupted while being written; train it again with overwrite")
    subsets = {}
    sg = g["subsets"]
    for sub in sg.group_keys():
        h = sg[sub]
        keys = set(h.array_keys())
        subsets[sub] = RunSubset(
            probs=h["probs"][...],
            gates=h["gates"][...] if "gates" in keys else None,
            attention=h["attention"][...] if "attention" in keys else None,
        )
    order = attrs.get("modalities")
    if order:
        rank = {m: i for i, m in enumerate(order)}
        subsets = dict(sorted(subsets.items(), key=lambda kv: (kv[0].count("+"), [rank.get(m, 99) for m in kv[0].split("+")])))
    return Run(name=name, attrs=attrs, subsets=subsets)


def describe_collapse(entry: dict) -> str:
    """One line naming a collapsed model of a run's ``collapsed`` attr (``{"subset", "seed", "split", "reason"}``):
    ``"<subset> seed <seed> collapsed on <split>: <reason>"``. ``mixsig train`` prefixes it with ``WARNING: ``;
    the report and ``mixsig study show`` print the same line."""
    return (f"{entry.get('subset', '?')} seed {entry.get('seed', '?')} collapsed on {entry.get('split', '?')}: "
            f"{entry.get('reason') or 'no reason recorded'}")
