"""Import predictions made elsewhere as a run (``mixsig runs import``): :func:`import_run`.

Three file forms, all matched to the store's samples by id:

- ``.csv`` (long form): columns ``id``, ``subset`` (modalities joined by ``+``, e.g. ``text+audio``), optional
  ``seed`` (an integer, default 0), and one column per class of the store, named exactly as the class, holding
  that class's probability (or its logit with ``logits=True``). One row per (id, subset, seed).
- ``.parquet``: the same columns and rows as the CSV (read with pyarrow; rows are counted from 1 in messages).
- ``.npz``: ``ids`` [n] str, and either ``subsets`` [k] str with ``probs`` [k, S, n, C], or one array
  ``probs@<subset>`` [S, n, C] per subset (e.g. ``probs@text+audio``); optional ``seeds`` [S] int (default
  0..S-1) and ``classes`` [C] str (default: the store's classes in order). Read with ``allow_pickle=False``.

Every check runs before anything is written; bad data raises :class:`~mixsig.errors.RefusedInput` (exit code 3)
naming the file row (CSV: its line number, the header being line 1) or the id and the fix: an unknown id, a class
column missing or unknown, a probability outside [0, 1] or a row not summing to 1 within :data:`SUM_TOLERANCE`,
a non-finite value, a subset naming an unknown modality, a duplicate (id, subset, seed), a subset missing ids
(or seeds) that another has, no subset holding every modality. Rows of the store missing from the file are NaN
(not predicted) in every subset.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from mixsig.errors import RefusedInput, StoreError, UsageError

#: |sum of a row's probabilities - 1| allowed.
SUM_TOLERANCE = 1e-3
#: How far outside [0, 1] a probability may be (float rounding).
RANGE_TOLERANCE = 1e-6
#: The file suffixes :func:`import_run` reads.
FORMATS = (".csv", ".parquet", ".npz")


def _refuse(path, where: str, what: str, fix: str) -> RefusedInput:
    return RefusedInput(f"{path}: {where}: {what}; {fix}")


def _subset(path, where: str, text: str) -> tuple[str, ...]:
    from mixsig.modalities import MODALITIES

    mods = tuple(m.strip() for m in str(text).split("+"))
    bad = [m for m in mods if m not in MODALITIES]
    if not text or bad or len(set(mods)) != len(mods):
        raise _refuse(path, where, f"subset {text!r} must name distinct modalities of {list(MODALITIES)} joined "
                                   f"by '+'" + (f" ({bad} unknown)" if bad else ""),
                      "fix the subset column (e.g. text+audio)")
    return tuple(m for m in MODALITIES if m in mods)  # canonical order


def _read_csv(path: Path, classes: tuple[str, ...]) -> dict:
    """``{(subset, seed): {id: (probabilities [C], line)}}`` of a long-form CSV."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise _refuse(path, "line 1", "no header", "write a header: id,subset[,seed]," + ",".join(classes))
        return _read_rows(path, classes, header, enumerate(reader, start=2), "line", "line 1 (header)")


def _read_parquet(path: Path, classes: tuple[str, ...]) -> dict:
    """The same table as :func:`_read_csv` from a long-form Parquet file (the same columns; rows counted from 1):
    each cell as the text a CSV would hold (floats by ``repr``, so the same values; an integral float seed as an
    integer; a null as an empty cell)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency of the parquet extra
        raise UsageError(f"{path}: reading Parquet needs pyarrow (`pip install mixsig[parquet]`); or write the "
                         f"predictions as .csv or .npz") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError on a file that is not Parquet
        raise _refuse(path, "the file", f"not a readable Parquet file ({type(exc).__name__}: {exc})",
                      "write it with pandas.DataFrame.to_parquet or pyarrow.parquet.write_table") from None
    header = [str(c) for c in table.column_names]
    cols = [[_cell(v, name == "seed") for v in table.column(name).to_pylist()] for name in header]
    return _read_rows(path, classes, header, enumerate(zip(*cols), start=1), "row", "the columns")


def _cell(v, seed: bool) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return str(int(v)) if seed and v.is_integer() else repr(v)
    return str(v)


def _read_rows(path: Path, classes: tuple[str, ...], header: list, rows, label: str, header_where: str) -> dict:
    """``{(subset, seed): {id: (probabilities [C], row number)}}`` of long-form rows of text cells."""
    header = [h.strip() for h in header]
    missing = [c for c in ("id", "subset", *classes) if c not in header]
    unknown = [c for c in header if c not in ("id", "subset", "seed", *classes)]
    if missing or unknown or len(set(header)) != len(header):
        raise _refuse(path, header_where,
                      (f"columns {missing} missing" if missing else "") + ("; " if missing and unknown else "")
                      + (f"columns {unknown} unknown" if unknown else "") + ("" if missing or unknown else
                                                                             "a column is repeated"),
                      f"the columns are id, subset, optional seed, and one per class of the store, named "
                      f"exactly: {list(classes)}")
    col = {h: i for i, h in enumerate(header)}
    cls_idx = [col[c] for c in classes]
    out: dict = {}
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise _refuse(path, f"line {line}", f"{len(row)} cells, the header has {len(header)}",
                          "give every row one cell per column")
        sid, where = row[col["id"]].strip(), f"{label} {line}"
        sub = _subset(path, where, row[col["subset"]].strip())
        seed_text = row[col["seed"]].strip() if "seed" in col else ""
        try:
            seed = int(seed_text) if seed_text else 0
            vec = np.array([float(row[i]) for i in cls_idx], np.float64)
        except ValueError:
            raise _refuse(path, where, f"id {sid!r}: a seed or probability is not a number",
                          "write integers in seed and numbers in the class columns") from None
        got = out.setdefault((sub, seed), {})
        if sid in got:
            raise _refuse(path, where, f"id {sid!r} subset {'+'.join(sub)} seed {seed} repeats {label} "
                                       f"{got[sid][1]}", "keep one row per (id, subset, seed)")
        got[sid] = (vec, line)
    if not out:
        raise _refuse(path, "the file", "no data rows", "write one row per (id, subset, seed)")
    return out


def _read_npz(path: Path, classes: tuple[str, ...]) -> dict:
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise _refuse(path, "the file", f"not a readable .npz without pickles ({exc})",
                      "save plain arrays with numpy.savez (strings as str arrays, not objects)") from None
    fix = "see `mixsig runs import --help` for the arrays (ids, subsets + probs, or probs@SUBSET; seeds; classes)"
    if "ids" not in arrays:
        raise _refuse(path, "the file", "no array 'ids'", fix)
    ids = [str(i) for i in arrays["ids"].reshape(-1)]
    per = {}
    if "probs" in arrays:
        if "subsets" not in arrays or arrays["probs"].ndim != 4 or arrays["probs"].shape[0] != arrays["subsets"].size:
            raise _refuse(path, "array probs", f"shape {arrays['probs'].shape} needs subsets [k] and probs "
                                               f"[k, S, n, C]", fix)
        per = {str(s): arrays["probs"][i] for i, s in enumerate(arrays["subsets"].reshape(-1))}
    per.update({k.split("@", 1)[1]: v for k, v in arrays.items() if k.startswith("probs@")})
    if not per:
        raise _refuse(path, "the file", "no probabilities", fix)
    order = list(range(len(classes)))
    if "classes" in arrays:
        have = [str(c) for c in arrays["classes"].reshape(-1)]
        if sorted(have) != sorted(classes) or len(have) != len(classes):
            raise _refuse(path, "array classes", f"{have} are not the store's classes {list(classes)}",
                          "name exactly the store's classes")
        order = [have.index(c) for c in classes]
    out: dict = {}
    for text, probs in per.items():
        sub = _subset(path, f"subset {text!r}", text)
        probs = np.asarray(probs, np.float64)
        if probs.ndim != 3 or probs.shape[1:] != (len(ids), len(classes)):
            raise _refuse(path, f"subset {text!r}", f"probs of shape {probs.shape}, expected [S, {len(ids)}, "
                                                    f"{len(classes)}] (ids x classes {list(classes)})", fix)
        seeds = [int(s) for s in arrays["seeds"].reshape(-1)] if "seeds" in arrays else list(range(probs.shape[0]))
        if len(seeds) != probs.shape[0] or len(set(seeds)) != len(seeds):
            raise _refuse(path, "array seeds", f"{seeds} must be {probs.shape[0]} distinct seeds", fix)
        for s, seed in enumerate(seeds):
            got = out.setdefault((sub, seed), {})
            if got:
                raise _refuse(path, f"subset {text!r}", f"subset {'+'.join(sub)} given twice", fix)
            for i, sid in enumerate(ids):
                if sid in got:
                    raise _refuse(path, f"ids[{i}]", f"id {sid!r} repeats ids[{got[sid][1]}]", "keep ids unique")
                got[sid] = (probs[s, i, order], i)
    return out


def _check_values(path, table: dict, logits: bool, label: str | None) -> None:
    for (sub, seed), rows in table.items():
        for sid, (vec, pos) in rows.items():
            where = f"{label} {pos}" if label else f"ids[{pos}] subset {'+'.join(sub)} seed {seed}"
            if not np.isfinite(vec).all():
                raise _refuse(path, where, f"id {sid!r} has a non-finite value {vec.tolist()}",
                              "write finite numbers (a row not predicted is simply left out)")
            if logits:
                continue
            if (vec < -RANGE_TOLERANCE).any() or (vec > 1 + RANGE_TOLERANCE).any() \
                    or abs(vec.sum() - 1) > SUM_TOLERANCE:
                raise _refuse(path, where, f"id {sid!r}: {vec.tolist()} is not a distribution (values in [0, 1] "
                                           f"summing to 1 within {SUM_TOLERANCE:g})",
                              "write probabilities, or pass --logits if these are logits (softmax is applied)")


def _check_coverage(path, table: dict, known: dict, label: str | None) -> tuple[list, list]:
    """The subsets and seeds; refuses unknown ids and subsets/seeds lacking ids another has."""
    for rows in table.values():
        for sid, (_, pos) in rows.items():
            if sid not in known:
                raise _refuse(path, f"{label} {pos}" if label else f"ids[{pos}]",
                              f"id {sid!r} is not a sample of the store",
                              "import predictions for the store's samples (`mixsig cache init STORE --manifest M` "
                              "from the manifest they were made on)")
    subsets = sorted({s for s, _ in table}, key=lambda s: (len(s), s))
    seeds = sorted({k for _, k in table})
    all_ids = set().union(*(set(r) for r in table.values()))
    for sub in subsets:
        for seed in seeds:
            lack = sorted(all_ids - set(table.get((sub, seed), {})))
            if lack:
                raise _refuse(path, f"subset {'+'.join(sub)} seed {seed}",
                              f"{len(lack)} ids that other subsets or seeds have are missing (first: {lack[0]!r})",
                              "give every subset and seed a prediction for the same ids")
    mods = tuple(m for m in subsets[-1]) if subsets else ()
    if set().union(*map(set, subsets)) != set(mods):
        raise _refuse(path, "the file", f"no subset holds every modality of {['+'.join(s) for s in subsets]}",
                      "include the full model's predictions (e.g. subset text+audio+video)")
    return subsets, seeds


def delete_run(store, name: str) -> None:
    """Delete run ``name`` of ``store`` (opened "r+"), complete or interrupted. StoreError naming the runs if
    there is none of that name."""
    store._require_writable()
    runs_group = store.root["runs"]
    if name not in set(runs_group.group_keys()):
        have = sorted(runs_group.group_keys())
        raise StoreError(f"no run named {name!r} in store {store.url}; runs: {have or 'none'} "
                         f"(`mixsig runs ls STORE` lists them)")
    del runs_group[name]


def list_runs(store) -> list[dict]:
    """One entry per run of ``store``: ``{"name", "source", "head", "subsets", "seeds", "created", "complete"}``
    (``complete`` False: interrupted while being written; subsets in the run's modality order), read from the
    attrs without loading predictions."""
    out = []
    for name in store.runs():
        g = store.root["runs"][name]
        a = dict(g.attrs)
        rank = {m: i for i, m in enumerate(a.get("modalities") or [])}
        subs = sorted(g["subsets"].group_keys(), key=lambda s: (s.count("+"), [rank.get(m, 99) for m in s.split("+")],
                                                                s)) if "subsets" in g else []
        out.append({"name": name, "source": a.get("source"), "head": a.get("head"), "subsets": subs,
                    "seeds": a.get("seeds"), "created": a.get("created"), "complete": bool(a.get("complete"))})
    return out


def run_attrs(store, name: str) -> dict:
    """The attrs of run ``name`` as written (complete or not); StoreError naming the runs if there is none."""
    runs = store.runs()
    if name not in runs:
        raise StoreError(f"no run named {name!r} in store {store.url}; runs: {runs or 'none'} "
                         f"(`mixsig runs ls STORE` lists them)")
    return dict(store.root["runs"][name].attrs)


def import_run(store, path, name: str, *, logits: bool = False, overwrite: bool = False):
    """Import predictions file ``path`` (.csv, .parquet or .npz, see the module doc) into ``store`` (opened "r+") as run
    ``name``; returns its :class:`~mixsig.cache.RunRecord` (source "import", head "imported"). Nothing is written
    unless every check passes; a write that fails leaves no run of that name."""
    from mixsig.cache._keys import file_sha256
    from mixsig.cache._runs import RunRecord, RunSubset, check_run_name, subset_metrics

    check_run_name(name, "--name")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"{path}: predictions must be a .csv, .parquet or .npz file; got "
                         f"{path.suffix or 'no suffix'!r}")
    if not path.is_file():
        raise UsageError(f"{path}: no such predictions file")
    if name in store.runs() and not overwrite:
        raise StoreError(f"run {name!r} already exists in {store.url}; choose another --name or pass --overwrite")
    samples = store.samples
    classes = tuple(samples.classes)
    read, label = {".csv": (_read_csv, "line"), ".parquet": (_read_parquet, "row"), ".npz": (_read_npz, None)}[suffix]
    table = read(path, classes)
    _check_values(path, table, logits, label)
    known = {str(s): i for i, s in enumerate(samples.ids)}
    subsets, seeds = _check_coverage(path, table, known, label)
    n = len(samples.ids)
    out = {}
    for sub in subsets:
        probs = np.full((len(seeds), n, len(classes)), np.nan, np.float64)
        for s, seed in enumerate(seeds):
            rows = table[(sub, seed)]
            idx = np.array([known[i] for i in rows], np.int64)
            vec = np.stack([v for v, _ in rows.values()])
            if logits:
                vec = np.exp(vec - vec.max(axis=1, keepdims=True))
                vec /= vec.sum(axis=1, keepdims=True)
            probs[s, idx] = np.clip(vec, 0.0, 1.0)
        out["+".join(sub)] = probs.astype(np.float32)
    modalities = subsets[-1]
    sha = file_sha256(path)
    predicted = {k: ~np.isnan(p[0, :, 0]) for k, p in out.items()}
    record = RunRecord(
        name=name, head="imported", params={}, features={m: f"import:{sha[:16]}" for m in modalities},
        modalities=modalities, seeds=seeds, classes=classes, split_hash=store.split_hash(),
        metrics={k: subset_metrics(samples, p, predicted[k]) for k, p in out.items()}, source="import",
        extra={"imported_from": {"file": os.path.basename(path), "sha256": sha, "format": path.suffix.lower()[1:],
                                 "logits": bool(logits), "rows_predicted": int(predicted["+".join(modalities)].sum())}})
    try:
        store.write_run(record, {k: RunSubset(probs=p) for k, p in out.items()}, overwrite=overwrite)
    except BaseException:
        if name in store.runs():
            try:
                delete_run(store, name)
            except Exception:  # the original error matters more; `mixsig runs rm` removes what is left
                pass
        raise
    return record
