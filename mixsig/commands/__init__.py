"""Subcommands of the ``mixsig`` CLI, one module each (``register(subparsers)`` + ``run(args)``)."""

#: COMMAND -> its line in `mixsig --help`, in that order. `mixsig.cli` imports a command's module and builds its
#: parser only for the command being run (all of them for :func:`mixsig.cli.build_parser` without ``only``), so
#: `mixsig --help` imports none of them; each module's parser takes its ``help`` from here.
SUMMARIES = {
    "validate": "check a manifest (CSV/JSONL) and list every problem with its row, column and fix",
    "extract": "cache pooled embeddings of one encoder over one modality (resumable, sharded)",
    "finetune": "fine-tune an encoder on the train split, then cache its embeddings and class probabilities",
    "cache": "inspect and maintain a feature store (ls, info, explain, diff, verify, HDF5)",
    "train": "train a fusion head on every modality subset and seed over cached features; write a run",
    "runs": "import predictions made elsewhere (CSV/Parquet/NPZ) as a run; list, show and delete runs",
    "predict": "apply a run's saved heads to another store with the same feature keys; write a run there",
    "study": "Optuna searches over heads, hyperparameters, modality subsets and cached encoders",
    "report": ("disagreement report of a run: metrics, unimodal vs full disagreement, annotator uncertainty, "
               "dominance, human study, descriptors"),
    "demo": "run the whole study offline on the built-in demo corpus",
}
