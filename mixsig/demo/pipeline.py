"""The whole study, offline, on the demo corpus: generate -> validate -> extract -> fine-tune -> study -> report.

The text encoder is fine-tuned with out-of-fold train embeddings (``DemoConfig.finetune_folds``) and the report
analyses the held-out ``test`` split (``DemoConfig.split``): val selected the study's winner and its epochs.

Every stage is idempotent, so a second run over the same folder reuses the corpus, the encoders, the cache
(no extraction), the study (no repeated trials) and the run, and only re-renders the report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mixsig.modalities import MODALITIES

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. Defaults finish in a few minutes on 2 CPU cores, extraction included."""

    rows: int = 480
    trials: int = 16  # the winner (trial 10) is the same as with 40 trials; 16 keeps `make demo` under 2 minutes
    seed: int = 0
    finetune: bool = True
    finetune_epochs: int = 2
    #: out-of-fold train embeddings (`finetune --folds K`): a head trained on the fine-tuned key does not learn from
    #: train rows embedded by a model trained on them (issue 14 §5b)
    finetune_folds: int = 3
    study_name: str = "demo"
    #: the held-out split: val chose the study's winner and every early-stopping epoch, so it is not analysed
    split: str = "test"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class Stage:
    name: str
    seconds: float
    what: str
    data: dict = field(default_factory=dict)


def run_demo(out_dir, config: DemoConfig = DemoConfig(), on_stage: Callable[[Stage], None] | None = None) -> dict:
    """Run every stage into ``out_dir``; returns ``{"stages": [...], "report": path, "findings": [...]}``."""
    from mixsig.demo import make_tiny_encoders

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stages: list[Stage] = []

    def stage(name: str, t0: float, what: str, **data) -> None:
        s = Stage(name, time.perf_counter() - t0, what, data)
        stages.append(s)
        if on_stage:
            on_stage(s)

    corpus = _corpus(out, config, stage)                                    # 1. corpus
    manifest = _validate(corpus / "manifest.csv", stage)                    # 2. validate
    t0 = time.perf_counter()                                                # 3. tiny encoders
    encoders = make_tiny_encoders(out / "encoders", seed=config.seed)
    stage("encoders", t0, "tiny random-weight RoBERTa / HuBERT-style / VideoMAE encoders in " + str(out / "encoders"))
    store_url = out / "cache.zarr"
    keys = _extract_all(manifest, store_url, encoders, stage)               # 4. extraction of every modality
    # 5. brief fine-tuning of the text encoder: a second text key the study can choose
    text_keys = [keys["text"]]
    if config.finetune:
        t0 = time.perf_counter()
        ft = _finetune_text(manifest, store_url, encoders["text"], config, out)
        text_keys.append(ft["key"])
        stage("finetune text", t0, ft["what"], key=ft["key"])
    features = {"text": tuple(text_keys), "audio": keys["audio"], "video": keys["video"]}
    store, run_name = _study(store_url, features, config, stage)             # 6. study over gated + LightGBM heads
    t0 = time.perf_counter()                                                # 7. report
    report, paths = _report(store, run_name, config, corpus, out)
    stage("report", t0, f"report of run '{run_name}' on {config.split} in {paths['html'].parent}")
    findings = headline_findings(report)
    # 8. the demo knows its ground truth: does the report recover the planted structure?
    t0 = time.perf_counter()
    check = planted_check(store.samples, Path(paths["csv"]), report)
    stage("planted check", t0, check["what"], **{k: v for k, v in check.items() if k != "what"})
    result = {"stages": [s.__dict__ for s in stages], "report": str(paths["html"]), "findings": findings,
              "planted": check, "keys": keys, "run": run_name, "config": config.to_dict(),
              "store": str(store_url), "next": next_commands(store, run_name, keys, config.split, out)}
    (out / "demo-summary.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def next_commands(store, run_name: str, keys: dict[str, str], split: str, out: Path) -> list[str]:
    """Ready-to-paste commands after the demo, naming keys by their shortest unique names (no hashes): the
    report of the study's run, and a ``mixsig train`` of another head on the extracted keys."""
    import shlex

    url = shlex.quote(str(Path(store.url).absolute()) if store.local_path is not None else store.url)
    feats = ",".join(f"{m}={store.short_key(k)}" for m, k in keys.items())
    return [f"mixsig report {url} --run {shlex.quote(run_name)} --split {split} "
            f"--out {shlex.quote(str((Path(out) / 'report-again').absolute()))}",
            f"mixsig train {url} --head logreg --features {feats} --name logreg-demo"]


def _corpus(out: Path, config: DemoConfig, stage) -> Path:
    """The corpus folder: generated, or reused when the stamp says it was made with the same rows and seed."""
    from mixsig.demo import make_corpus
    from mixsig.errors import MixsigError

    t0 = time.perf_counter()
    corpus = out / "corpus"
    manifest_path = corpus / "manifest.csv"
    stamp = out / "demo.json"
    want = {"rows": config.rows, "seed": config.seed}
    old = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if manifest_path.is_file() and old.get("corpus") == want:
        stage("corpus", t0, f"reused {config.rows} rows in {corpus}")
    else:
        if (out / "cache.zarr").exists() and old.get("corpus") not in (None, want):
            raise MixsigError(f"{out} holds a demo made with {old.get('corpus')}; use another --out for {want}")
        make_corpus(corpus, n_rows=config.rows, seed=config.seed)
        stamp.write_text(json.dumps({"corpus": want}))
        stage("corpus", t0, f"generated {config.rows} rows (text, WAV, MP4, 5 annotators, human-study votes) in {corpus}")
    return corpus


def _validate(manifest_path: Path, stage):
    """The validated manifest; any error stops the demo."""
    from mixsig.errors import MixsigError
    from mixsig.manifest import validate_manifest

    t0 = time.perf_counter()
    manifest, problems = validate_manifest(manifest_path)
    errors = [p for p in problems if getattr(p, "severity", "error") == "error"]
    if errors or manifest is None:
        raise MixsigError(f"the demo manifest has {len(errors)} problems; first: {errors[0] if errors else '?'}")
    counts = {s: sum(1 for r in manifest.rows if r["split"] == s) for s in ("train", "val", "test")}
    stage("validate", t0, f"manifest clean: {len(manifest.rows)} rows {counts}, {len(problems)} warnings")
    return manifest


#: the modality extracted with all its encoder's layers ([N, L, D], ``extract --layers all``): the study's torch
#: trials on it search the learned weighted-layer sum against the fixed mean, and the report shows the weights (6c)
LAYERED_MODALITY = "audio"


def _extract_all(manifest, store_url: Path, encoders: dict, stage) -> dict[str, str]:
    """Extract every modality with its tiny encoder (mean pooling; :data:`LAYERED_MODALITY` with all layers);
    returns {modality: key}."""
    from mixsig.extract import extract

    keys: dict[str, str] = {}
    for modality in MODALITIES:
        t0 = time.perf_counter()
        res = extract(manifest, str(store_url), modality, str(encoders[modality]), pooling="mean",
                      layers="all" if modality == LAYERED_MODALITY else "last")
        keys[modality] = res.key
        stage(f"extract {modality}", t0, res.summary(), key=res.key, written=res.written,
              skipped=res.skipped_done, failed=res.n_failed)
    return keys


def _study(store_url: Path, features: dict, config: DemoConfig, stage):
    """Run the study over gated + LightGBM heads (reused when it finished before with at least as many trials);
    returns the store and the winner run's name."""
    from mixsig.cache import open_store
    from mixsig.studies import run_study, study_summary

    t0 = time.perf_counter()
    store = open_store(store_url)
    summary = None
    if f"study-{config.study_name}" in store.runs():  # finished before: reuse unless more trials are asked for
        summary = study_summary(str(store_url), config.study_name)
        if _finished_trials(summary) < config.trials:
            summary = None
    if summary is None:
        summary = run_study(str(store_url), config.study_name, heads="gated,lightgbm", features=features,
                            trials=config.trials, seed=config.seed)
    run_name = summary["run"]["name"]
    states = ", ".join(f"{v} {k.lower()}" for k, v in summary["states"].items())
    stage("study", t0, f"study '{config.study_name}': {states} trials; winner trained on all 7 subsets as "
                       f"run '{run_name}'", run=run_name, trials=_finished_trials(summary))
    return store, run_name


def _report(store, run_name: str, config: DemoConfig, corpus: Path, out: Path) -> tuple[dict, dict]:
    """Analyse the winner run and write the report; returns (report.json's content, the written paths)."""
    from mixsig.analysis import analyse, write_report

    result = analyse(store, run_name, split=config.split, media_root=corpus)
    paths = write_report(result, out / "report")
    return json.loads(Path(paths["json"]).read_text()), paths


def planted_check(samples, samples_csv: Path, report: dict) -> dict:
    """Compare the report's disagreement samples with the corpus's planted conflicts and ambiguous rows.

    One-sided Fisher exact test: are planted-conflict rows over-represented among samples where at least one
    unimodal model disagrees with the full model? The entropy comparison is the report's own Mann-Whitney test.
    """
    import csv

    from scipy.stats import fisher_exact

    from mixsig.analysis import csv_text_value

    planted = dict(zip(samples.ids.tolist(), samples.columns.get("planted", [""] * len(samples))))
    with open(samples_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    dis = [int(r["n_disagree"] or 0) > 0 for r in rows]
    conflict = [planted.get(csv_text_value(r["id"]), "").startswith("conflict") for r in rows]
    a = sum(d and c for d, c in zip(dis, conflict))
    b = sum(d and not c for d, c in zip(dis, conflict))
    c_ = sum((not d) and c for d, c in zip(dis, conflict))
    d_ = sum((not d) and not c for d, c in zip(dis, conflict))
    odds, p = fisher_exact([[a, b], [c_, d_]], alternative="greater")
    share_dis = a / max(a + b, 1)
    share_agree = c_ / max(c_ + d_, 1)
    mw = ((report.get("join") or {}).get("entropy") or {}).get("mann_whitney") or {}
    what = (f"planted conflicts are {share_dis:.0%} of disagreement samples vs {share_agree:.0%} of agreement "
            f"samples (Fisher one-sided p = {p:.2g}); entropy disagreement vs agreement p = {_num(mw.get('p'), '.2g')}")
    return {"what": what, "conflict_share_disagreement": share_dis, "conflict_share_agreement": share_agree,
            "fisher_p": float(p), "odds_ratio": float(odds), "entropy_p": mw.get("p"),
            "n_disagreement": a + b, "n_agreement": c_ + d_}


def _finished_trials(summary: dict) -> int:
    """Trials that count towards a study's target (what ``run_study`` counts): complete or pruned."""
    return int(sum(v for k, v in summary["states"].items() if k in ("COMPLETE", "PRUNED")))


def _finetune_text(manifest, store_url, encoder_path, config: DemoConfig, out: Path) -> dict:
    """Fine-tune the tiny text encoder briefly (reused when an earlier demo run did it with the same settings)."""
    from mixsig.cache import open_store
    from mixsig.extract import FinetuneConfig, finetune

    # a random-weight tiny encoder needs a far larger step than the paper's 5e-6 to move in two epochs
    ft_config = FinetuneConfig(epochs=config.finetune_epochs, lr=5e-4, batch_size=16, seed=config.seed,
                               folds=config.finetune_folds)
    stamp = out / "finetune.json"
    if stamp.is_file():
        done = json.loads(stamp.read_text())
        store = open_store(store_url)
        if done.get("config") == ft_config.to_dict() and store.has_key(done["key"]) and done["run"] in store.runs():
            return {"key": done["key"], "what": f"reused fine-tuned text key {done['key']} and run {done['run']}"}
    res = finetune(manifest, str(store_url), "text", str(encoder_path), config=ft_config)
    stamp.write_text(json.dumps({"key": res.key, "run": res.run, "config": ft_config.to_dict()}))
    best = ", ".join(f"{'all-train' if k == 'all' else k} {v:.2f}" for k, v in res.val_accuracy.items()
                     if v is not None)
    tp = res.trained_parameters or {}
    trained = (f"{tp['trained']:,} of {tp['total']:,} parameters" if tp.get("total")
               else f"classifier + last {ft_config.unfreeze_last} blocks")
    return {"key": res.key, "what": f"{ft_config.epochs} epochs ({trained}: --unfreeze-last {ft_config.unfreeze_last}, "
                                    f"--folds {ft_config.folds}: out-of-fold train embeddings), best val accuracy "
                                    f"{best}; key {res.key}, run {res.run}"}


def _num(x, fmt: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and x != x) else format(x, fmt)


def headline_findings(report: dict) -> list[str]:
    """Three sentences a researcher would want first, from ``report.json``: the full model against the other
    subsets on the same samples (McNemar, Benjamini-Hochberg), entropy where predictions disagree, and which
    modality misled the fusion (counterfactual attribution)."""
    out: list[str] = []
    f1 = {}
    for sub, m in (report.get("metrics") or {}).items():
        try:
            f1[sub] = float(m["over_seeds"]["macro_f1"]["mean"])
        except (KeyError, TypeError, ValueError):
            continue
    if f1:
        full = max(f1, key=lambda s: s.count("+"))
        paired = report.get("paired") or {}
        better = {s: p for s, p in paired.items() if isinstance(p, dict) and (p.get("mcnemar_p_bh") or 1) < 0.05
                  and p.get("full_wrong_other_right", 0) > p.get("full_right_other_wrong", 0)}
        if better:
            s = min(better, key=lambda k: better[k]["mcnemar_p_bh"])
            out.append(f"{s} is right more often than the full model {full} on the same samples (McNemar, BH q = "
                       f"{_num(better[s]['mcnemar_p_bh'], '.2g')}) — fusion is not always better.")
        else:
            best = max(f1, key=f1.get)
            out.append(f"Best subset by macro-F1 is {best} ({f1[best]:.2f}); the full model {full} scores "
                       f"{f1[full]:.2f}; no subset differs from it on the same samples at BH q < 0.05"
                       f"{' (paired tests skipped)' if not paired else ''}.")
    mw = ((report.get("join") or {}).get("entropy") or {}).get("mann_whitney") or {}
    if "p" in mw:
        direction = "higher" if (mw.get("rank_biserial") or 0) > 0 else "not higher"
        out.append(f"Annotator vote entropy is {direction} where unimodal and full predictions disagree "
                   f"(mean {_num(mw.get('mean_a'))} vs {_num(mw.get('mean_b'))} bits, "
                   f"Mann-Whitney p = {_num(mw.get('p'), '.2g')}, rank-biserial {_num(mw.get('rank_biserial'))}).")
    att = report.get("attribution") or {}
    m = att.get("misleading_modality")
    if att.get("n_misled") and m:
        fix = (att.get("by_modality") or {}).get(m) or {}
        out.append(f"Of {att['n_misled']} misled samples, removing {m} fixes {fix.get('fixes')} "
                   f"({_num(fix.get('share'), '.0%')}), more than removing any other modality.")
    elif att.get("n_misled"):
        out.append(f"No single modality misled the fusion on its {att['n_misled']} misled samples"
                   f"{': ' + att['why_none'] if att.get('why_none') else ''}.")
    return out[:3]
