"""What produced the report (report.json ``provenance``): each feature key with its encoder or source, resolved
revision and preprocessing; the head and its hyperparameters; the seeds; the study and trial the run came from;
the splits that selected it; the split hash; mixsig and library versions when the run was trained and now."""

from __future__ import annotations

import json

from mixsig.analysis._context import Context

#: Provenance fields shown per key; the rest of a key's record (``extra``) is summarised.
KEY_FIELDS = ("encoder", "revision", "pooling", "layers", "dtype", "preprocessing")


def _key_entry(modality: str, key: str, prov: dict | None, in_sample: dict) -> dict:
    entry = {"modality": modality, "key": key, "found": prov is not None}
    prov = prov or {}
    entry.update({f: prov.get(f) for f in KEY_FIELDS})
    extra = prov.get("extra") or {}
    ft = extra.get("finetune") if isinstance(extra.get("finetune"), dict) else None
    entry["finetune"] = None if ft is None else {
        "base_encoder": ft.get("base_encoder"), "base_revision": ft.get("base_revision"),
        "folds": (ft.get("config") or {}).get("folds", 1), "epochs": (ft.get("config") or {}).get("epochs"),
        "split_hash": ft.get("split_hash")}
    entry["extra"] = sorted(k for k in extra if k != "finetune")
    entry["in_sample"] = key in in_sample
    return entry


def compute(ctx: Context) -> dict:
    from mixsig.cache import library_versions
    from mixsig import __version__

    inp = ctx.inp
    attrs, checks = inp.run_attrs, inp.store_checks or {}
    provs = checks.get("key_provenance") or {}
    in_sample = (attrs.get("in_sample_keys") if "in_sample_keys" in attrs else checks.get("in_sample_keys")) or {}
    features = attrs.get("features") if isinstance(attrs.get("features"), dict) else {}
    study = attrs.get("study") if isinstance(attrs.get("study"), dict) else None
    now = library_versions()
    trained = attrs.get("versions") if isinstance(attrs.get("versions"), dict) else {}
    return {"provenance": {
        "run": inp.run_name, "source": attrs.get("source") or None, "created": attrs.get("created"),
        "store": inp.source or None, "imported_from": attrs.get("imported_from"),
        "features": [_key_entry(m, k, provs.get(k), in_sample) for m, k in features.items()],
        "head": attrs.get("head"), "params": attrs.get("params"),
        "seeds": list(inp.seeds), "selection_splits": attrs.get("selection_splits"),
        "study": None if study is None else {k: study.get(k) for k in
                                             ("name", "trial", "metric", "val_mean", "val_std", "scored_on", "cv")},
        "split_hash": {"run": attrs.get("split_hash"), "store": checks.get("split_hash")},
        "versions": {"mixsig": {"run": attrs.get("mixsig_version"), "report": __version__},
                     "libraries": {lib: {"run": trained.get(lib), "report": v} for lib, v in now.items()}},
    }}


def _num(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else _text(value)


def _text(value) -> str:
    if value is None or value == "" or value == {}:
        return "–"
    if isinstance(value, dict):  # one level as k=v; nested records as compact JSON
        return "; ".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "–"
    return str(value)


def blocks(report: dict, figures: dict) -> list[tuple]:
    p = report.get("provenance")
    if not p:
        return []
    b: list[tuple] = [("h2", "Provenance")]
    b.append(("p", f"Run **{p['run']}** (source {p.get('source') or 'not recorded'}; created "
                   f"{p.get('created') or 'not recorded'}) in store {p.get('store') or '–'}."))
    rows = []
    for f in p["features"]:
        ft = f.get("finetune")
        tuned = ("–" if ft is None else f"from {ft.get('base_encoder')} @ {ft.get('base_revision')}, "
                 f"{ft.get('epochs')} epochs, folds {ft.get('folds')}" + (" (in-sample train rows)" if f["in_sample"]
                                                                          else ""))
        imported = str(f["key"]).startswith("import:") and p.get("imported_from")
        rows.append([f["modality"], f["key"] + ("" if f["found"] or imported else " (not in the store now)"),
                     _text(f.get("encoder")), _text(f.get("revision")),
                     f"{_text(f.get('pooling'))}, layers {_text(f.get('layers'))}, {_text(f.get('dtype'))}", tuned])
    if p.get("imported_from"):
        b.append(("p", f"**Imported predictions**: {_text(p['imported_from'])} (no feature keys: the keys below name "
                       "the file's sha256)."))
    b.append(("p", "**Feature keys** (encoder or source and its resolved revision; the preprocessing below):"))
    b.append(("table", ["modality", "key", "encoder / source", "revision", "pooling", "fine-tuned"], rows))
    for f in p["features"]:
        b.append(("p", f"Preprocessing of {f['modality']} ({f['key']}): {_text(f.get('preprocessing'))}."))
    params = p.get("params") if isinstance(p.get("params"), dict) else {}
    b.append(("p", f"**Head** {p.get('head') or '–'}; hyperparameters: "
                   + (", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in params.items()) or "–") + "."))
    b.append(("p", f"**Seeds** {_text(p.get('seeds'))}. **Selected on** (epochs, early stopping, a study's trial): "
                   + ("not recorded" if p.get("selection_splits") is None else _text(p["selection_splits"]) if
                      p["selection_splits"] else "no split") + "."))
    st = p.get("study")
    made_by = {"finetune": "trained by `mixsig finetune`", "import": "imported by `mixsig runs import`",
               "predict": "predicted by `mixsig predict` with the saved heads of a run of another store"}
    b.append(("p", f"**Study**: none ({made_by.get(p.get('source'), 'trained by `mixsig train`')})." if not st else
                   f"**Study** {st.get('name')}, trial {st.get('trial')} (the winner of the re-evaluation; "
                   f"{st.get('metric')} on {_text(st.get('scored_on') or ['val'])} "
                   f"{_num(st.get('val_mean'))})."))
    sh = p.get("split_hash") or {}
    same = sh.get("store") is None or sh.get("run") == sh.get("store")
    b.append(("p", f"**Split hash** {sh.get('run') or 'not recorded'}"
                   + ("" if same else f" (the store's is now {sh.get('store')}: its splits or labels changed since the "
                                      f"run was trained)") + "."))
    v = p["versions"]
    vrows = [["mixsig", _text(v["mixsig"]["run"]), _text(v["mixsig"]["report"])]]
    vrows += [[lib, _text(x["run"]), _text(x["report"])] for lib, x in v["libraries"].items()]
    b.append(("p", "**Versions** of mixsig and the libraries, when the run was trained and for this report:"))
    b.append(("table", ["library", "when the run was trained", "this report"], vrows))
    return b


def figures(report: dict) -> dict:
    return {}
