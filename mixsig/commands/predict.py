"""``mixsig predict STORE --run RUN --into OTHER``: apply a run's saved heads to another store whose feature keys
have the same provenance, and write the predictions there as a run (source ``predict``): train on one corpus,
predict and report on another.

:func:`predict_into` is the same from Python. Every check runs before anything is written into OTHER: the run
keeps its heads (``mixsig train ... --save-heads``; a study's winner), OTHER has the run's classes in the same
order, and for each of the run's keys OTHER holds a key with the same provenance hash (the same encoder, revision,
preprocessing, pooling, layers, dtype: keys with the same hash hold the same kind of features, whatever their
readable prefix). A key whose provenance differs is refused (exit 3) with what ``mixsig cache diff`` shows.
"""

from __future__ import annotations

import argparse

from mixsig.commands import SUMMARIES

DESCRIPTION = (
    "Apply the saved heads of run RUN of STORE (every modality subset x seed; runs of `mixsig train ... "
    "--save-heads` and a study's winner keep them) to the features of OTHER, a store of another corpus, and write "
    "the probabilities (and gates / attention for the gated head) as a run of OTHER, so that `mixsig report OTHER "
    "--run NAME` reports on them. For each of the run's feature keys, OTHER must hold a key with the same "
    "provenance hash: the same encoder, revision, preprocessing, pooling, layers and dtype (extract OTHER with the "
    "same `mixsig extract` options; `mixsig cache explain STORE KEY` shows them). A key whose provenance differs is "
    "refused with exit code 3 and the fields that differ (as `mixsig cache diff` shows them), classes that are not "
    "the run's classes in the same order with exit code 3, a run without saved heads with exit code 1 and the "
    "command that keeps them; nothing is written into OTHER then. Rows done in every matched key are predicted; the "
    "others stay NaN (counted in the run's attrs rows). The run records source predict, the source store and run "
    "(attrs predicted_from), the matched keys, per-split metrics on OTHER's labels, and keeps the same heads "
    "(so it can be applied again)."
)


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help=SUMMARIES["predict"], description=DESCRIPTION)
    p.add_argument("store", metavar="STORE", help="the store holding RUN and its saved heads")
    p.add_argument("--run", required=True,
                   help="the run whose heads are applied: its full name or a unique prefix (`mixsig runs ls STORE`)")
    p.add_argument("--into", required=True, metavar="OTHER",
                   help="the store to predict (made by `mixsig cache init` and `mixsig extract` with the same "
                        "encoders); the run is written there")
    p.add_argument("--name", default=None,
                   help="the name of the run written into OTHER (default: predict-RUN)")
    p.add_argument("--overwrite", action="store_true", help="replace a run of that name in OTHER")
    p.add_argument("--json", action="store_true", help="print the written run's attrs as one JSON object")
    p.set_defaults(func=run)


def match_keys(src, features: dict, dst) -> dict:
    """``{modality: key of dst}`` with the same provenance hash as each of ``features`` (the run's keys in store
    ``src``); refuses (RefusedInput) a modality with no such key, naming how each candidate's provenance differs."""
    from mixsig.errors import RefusedInput

    out, problems = {}, []
    dst_keys = dst.keys()
    for m, key in features.items():
        digest = key.rsplit(".", 1)[-1]
        same = [k for k in dst_keys if k.rsplit(".", 1)[-1] == digest]
        if same:
            out[m] = key if key in same else same[0]
            continue
        problems.append(_explain(src, m, key, dst, dst_keys))
    if problems:
        raise RefusedInput(f"{dst.url} has no key with the provenance of the run's keys, so the heads would meet "
                           f"other features: {' '.join(problems)} Extract {dst.url} with the same encoder, revision, "
                           f"preprocessing and pooling (`mixsig cache explain {src.url} KEY` shows them); nothing "
                           f"was written.")
    return out


def _explain(src, m: str, key: str, dst, dst_keys) -> str:
    """One sentence: why no key of ``dst`` matches ``key`` (used as modality ``m``), as `cache diff` shows it."""
    from mixsig.cache import diff_dicts

    cands = [k for k in dst_keys if k.split(".", 1)[0] == m]
    if not cands:
        return f"{m}: {dst.url} has no {m} key (its keys: {dst_keys or 'none'});"
    if not src.has_key(key):
        return (f"{m}: {key} is no longer in {src.url}, and {dst.url}'s {m} keys {cands} have other provenance "
                f"hashes;")
    mine = src.provenance(key)
    parts = []
    for k in cands:
        diffs = diff_dicts(mine, dst.provenance(k))
        shown = "; ".join(f"{f}: {a!r} vs {b!r}" for f, a, b in diffs[:6])
        more = f"; and {len(diffs) - 6} more" if len(diffs) > 6 else ""
        parts.append(f"{k} differs from {key} in {shown}{more} (`mixsig cache diff` of the two)")
    return f"{m}: " + "; ".join(parts) + ";"


def _check_classes(attrs: dict, dst) -> None:
    from mixsig.errors import RefusedInput

    mine, theirs = list(attrs.get("classes") or []), list(dst.samples.classes)
    if mine != theirs:
        raise RefusedInput(f"run classes {mine} differ from {dst.url}'s classes {theirs}: the heads' probabilities "
                           f"are in the run's class order; make {dst.url} with `mixsig cache init {dst.url} --manifest "
                           f"M --classes {','.join(mine)} --overwrite` (its labels must be among them); nothing was "
                           f"written.")


def _features(dst, keys: dict) -> tuple[dict, np.ndarray]:
    """``({modality: [len(used), D] or [len(used), L, D]}, used rows)``: the rows done in every key of ``dst``, each
    checked finite."""
    import numpy as np

    from mixsig.errors import StoreError

    views = {m: dst.read(k, split=None, only_done=True) for m, k in keys.items()}
    used = np.arange(len(dst.samples), dtype=np.int64)
    for v in views.values():
        used = np.intersect1d(used, v.rows)
    X = {}
    for m, v in views.items():
        X[m] = v.X[np.searchsorted(v.rows, used)]
        if X[m].ndim not in (2, 3) or not np.isfinite(X[m].reshape(len(X[m]), -1)).all():
            raise StoreError(f"key {keys[m]} of {dst.url}: done rows hold NaN/Inf or are not [N, D] / [N, L, D]; "
                             f"run `mixsig cache verify {dst.url}` and re-extract them")
    return X, used


def _apply(heads: dict, X: dict, used: np.ndarray, n: int, n_classes: int):
    """``{subset: RunSubset}`` of every saved head applied to the used rows."""
    import numpy as np

    from mixsig.cache import RunSubset
    from mixsig.errors import HeadError

    out = {}
    for sub, hs in heads.items():
        mods = sub.split("+")
        Xs = {m: X[m] for m in mods}
        probs = np.full((len(hs), n, n_classes), np.nan, np.float32)
        gates = attention = None
        for s, h in enumerate(hs):
            # rows [D] or [L, D] (all layers): the width is the last axis, the layer count the head's layers_ (0: none)
            dims = [int(X[m].shape[-1]) for m in mods]
            layers = [int(X[m].shape[1]) if X[m].ndim == 3 else 0 for m in mods]
            want = list(getattr(h, "layers_", None) or (0,) * len(mods))
            if list(h.modalities_) != mods or dims != list(h.dims_) or layers != want:
                raise HeadError(f"saved head {sub} #{s} takes {list(h.modalities_)} of widths {list(h.dims_)} and "
                                f"layers {want} (0: [N, D] rows), the matched keys give {mods} of widths {dims} and "
                                f"layers {layers}; save the run's heads again")
            probs[s, used] = h.predict_proba(Xs)
            w = h.modality_weights(Xs)
            if w:
                if gates is None:
                    gates = np.full((len(hs), n, len(mods)), np.nan, np.float32)
                    attention = np.full((len(hs), n, len(mods)), np.nan, np.float32)
                gates[s, used], attention[s, used] = w["gates"], w["attention"]
        out[sub] = RunSubset(probs=probs, gates=gates, attention=attention)
    return out


def predict_into(src, run: str, dst, name: str | None = None, overwrite: bool = False):
    """Apply run ``run``'s saved heads of store ``src`` to store ``dst`` (opened "r+") and write run ``name``
    (default ``predict-<run>``) there; returns its :class:`~mixsig.cache.RunRecord`. See the module doc."""
    import numpy as np

    import tempfile

    from mixsig.cache import RunRecord, check_run_name, run_attrs, subset_metrics
    from mixsig.errors import StoreError
    from mixsig.heads import load_head

    run = src.resolve_run(run, error=StoreError)
    attrs = run_attrs(src, run)
    name = name or f"predict-{run}"
    check_run_name(name, "--name")
    with tempfile.TemporaryDirectory(prefix="mixsig-predict-") as tmp:
        folders = src.extract_heads(run, tmp)  # no saved heads: StoreError naming the command that keeps them
        _check_classes(attrs, dst)
        keys = match_keys(src, dict(attrs.get("features") or {}), dst)
        if name in dst.runs() and not overwrite:
            raise StoreError(f"run {name!r} already exists in {dst.url}; choose another --name or pass --overwrite")
        heads = {sub: [load_head(f) for f in paths] for sub, paths in folders.items()}
        X, used = _features(dst, keys)
        n, samples = len(dst.samples), dst.samples
        subsets = _apply(heads, X, used, n, len(samples.classes))
        predicted = np.zeros(n, bool)
        predicted[used] = True
        record = RunRecord(
            name=name, head=attrs["head"], params=attrs.get("params") or {}, features=keys,
            modalities=list(keys), seeds=list(attrs["seeds"]), classes=list(attrs["classes"]),
            split_hash=dst.split_hash(), source="predict", selection_splits=[],
            metrics={sub: subset_metrics(samples, rs.probs, predicted) for sub, rs in subsets.items()},
            rows={"total": n, "used": int(used.size), "excluded": int(n - used.size)},
            extra={"predicted_from": {"store": str(src.url), "run": run, "source": attrs.get("source"),
                                      "features": dict(attrs.get("features") or {}),
                                      "split_hash": attrs.get("split_hash")}})
        dst.write_run(record, subsets, overwrite=overwrite)
        dst.save_heads(name, folders)
    return record


def run(args: argparse.Namespace) -> int:
    from mixsig.cache import open_store, run_attrs
    from mixsig.commands._util import print_json

    src = open_store(args.store, mode="r")
    dst = open_store(args.into, mode="r+")
    record = predict_into(src, args.run, dst, name=args.name, overwrite=args.overwrite)
    if args.json:
        print_json({"run": record.name, "store": str(dst.url), **run_attrs(dst, record.name)})
        return 0
    r = record.rows
    print(f"predicted run {record.name} in {dst.url} with the saved heads of {record.extra['predicted_from']['run']} "
          f"({src.url}): subsets {', '.join(record.metrics)}; seeds {list(record.seeds)}; {r['used']} of "
          f"{r['total']} rows predicted ({r['excluded']} not done in every key)")
    for m, k in record.features.items():
        print(f"key {m}: {k}")
    print(f"next: mixsig report {args.into} --run {record.name}")
    return 0
