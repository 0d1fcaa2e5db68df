"""The search space of a study: head, the head's hyperparameters, modality subset, key per modality.

Parameter names in the Optuna study (what ``optuna.load_study(...).best_params`` shows):

- ``head``: one of the heads given with ``--heads``
- ``modalities``: the modality subset, modalities joined by ``+`` in the order of ``--features``
  (every non-empty subset, e.g. ``text``, ``text+audio``, ``text+audio+video``)
- ``key.<modality>``: which cached key to use for that modality, only where several were given
  (``--features text=K1|K2``) and the modality is in the subset
- ``<head>.<param>``: the head's hyperparameters, one registered :class:`HeadSpace` per head

Adding a head to studies is one ``register_space(HeadSpace(...))`` call in this module.

The spaces hold for 200 to 200,000 training rows: torch heads search a budget of optimizer ``steps`` with
``batch_size="auto"`` (:func:`mixsig.heads._torch.resolve_schedule`: the batch is the power of two nearest
``n_train * 8 / steps`` in [16, 1024], so every trial sees about 8 epochs' worth of rows in 100-800 updates).
A fixed batch size would make a few hundred training rows one full batch — a handful of updates per trial, and
many trials predicting one class. Torch trials report validation accuracy at every tenth of their budget, so
trials of any size compare at the same share of their training. LightGBM's leaves need at least 5-50 rows
(``min_child_samples``) and trees stop early on the validation loss, which holds from a few hundred rows up.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mixsig.errors import StudyError

if TYPE_CHECKING:  # pragma: no cover
    import optuna


@dataclass(frozen=True)
class HeadSpace:
    """The hyperparameters a study searches for one head.

    ``suggest(trial, prefix)`` asks the trial for each searched parameter (named ``prefix + param``) and returns
    ``{param: value}`` in the head's own names; ``fixed`` are passed to the head in every trial;
    ``ranges`` documents each searched parameter (shown in ``mixsig study run --help``);
    ``warmup_steps`` is how many reported steps (tenths of a torch budget, boosting rounds) a trial runs before
    it may be pruned.
    """

    head: str
    suggest: Callable[["optuna.Trial", str], dict[str, Any]]
    ranges: Mapping[str, str]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    warmup_steps: int = 3

    def describe(self) -> str:
        searched = ", ".join(f"{k} {v}" for k, v in self.ranges.items())
        fixed = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        return f"{self.head}: {searched}" + (f"; fixed {fixed}" if fixed else "")


_SPACES: dict[str, HeadSpace] = {}


def register_space(space: HeadSpace) -> HeadSpace:
    """Register the search space of ``space.head`` (one per head)."""
    _SPACES[space.head] = space
    return space


def get_space(head: str) -> HeadSpace:
    """The registered space of ``head``; :class:`StudyError` listing the heads studies can search otherwise."""
    try:
        return _SPACES[head]
    except KeyError:
        raise StudyError(
            f"Studies have no search space for head {head!r}. Heads a study can search: {', '.join(list_spaces())}."
        ) from None


def list_spaces() -> list[str]:
    """Heads with a registered search space, sorted."""
    return sorted(_SPACES)


def describe_spaces() -> str:
    """One line per head: its searched ranges and fixed parameters (for ``--help``)."""
    return "\n".join(_SPACES[h].describe() for h in list_spaces())


# --- the spaces -----------------------------------------------------------------------------------------------


def _torch_common(trial: "optuna.Trial", p: str) -> dict[str, Any]:
    return {
        "max_lr": trial.suggest_float(p + "max_lr", 1e-3, 3e-2, log=True),
        "weight_decay": trial.suggest_float(p + "weight_decay", 1e-6, 1e-2, log=True),
        "dropout": trial.suggest_float(p + "dropout", 0.0, 0.5),
        "hidden": trial.suggest_categorical(p + "hidden", [32, 64, 128]),
        "n_layers": trial.suggest_int(p + "n_layers", 1, 2),
        "steps": trial.suggest_int(p + "steps", 100, 800, log=True),
    }


def _gated(trial: "optuna.Trial", p: str) -> dict[str, Any]:
    params = _torch_common(trial, p)
    params["proj_dim"] = trial.suggest_categorical(p + "proj_dim", [32, 64])
    params["modality_dropout"] = trial.suggest_float(p + "modality_dropout", 0.0, 0.4)
    return params


def _logreg(trial: "optuna.Trial", p: str) -> dict[str, Any]:
    return {"C": trial.suggest_float(p + "C", 1e-4, 10.0, log=True)}


def _lightgbm(trial: "optuna.Trial", p: str) -> dict[str, Any]:
    return {
        "num_leaves": trial.suggest_int(p + "num_leaves", 4, 32, log=True),
        "learning_rate": trial.suggest_float(p + "learning_rate", 0.05, 0.3, log=True),
        "min_child_samples": trial.suggest_int(p + "min_child_samples", 5, 50, log=True),
        "feature_fraction": trial.suggest_float(p + "feature_fraction", 0.05, 0.3, log=True),
        "lambda_l2": trial.suggest_float(p + "lambda_l2", 1e-3, 10.0, log=True),
    }


_TORCH_RANGES = {
    "max_lr": "[1e-3, 3e-2] log (one-cycle peak)",
    "weight_decay": "[1e-6, 1e-2] log",
    "dropout": "[0, 0.5]",
    "hidden": "{32, 64, 128}",
    "n_layers": "1..2",
    "steps": "100..800 log (optimizer steps; batch sized from the train rows)",
}
_TORCH_FIXED = {"batch_size": "auto"}
#: torch trials report at tenths of their budget (points 0..9); pruning starts at point 3 (40% of the budget)
TORCH_WARMUP = 3

register_space(HeadSpace("gated", _gated, {**_TORCH_RANGES, "proj_dim": "{32, 64}", "modality_dropout": "[0, 0.4]"},
                         fixed={**_TORCH_FIXED, "att_dim": 64}, warmup_steps=TORCH_WARMUP))
register_space(HeadSpace("concat", _torch_common, _TORCH_RANGES, fixed=_TORCH_FIXED, warmup_steps=TORCH_WARMUP))
register_space(HeadSpace("late", _torch_common, _TORCH_RANGES, fixed=_TORCH_FIXED, warmup_steps=TORCH_WARMUP))
register_space(HeadSpace("logreg", _logreg, {"C": "[1e-4, 10] log"}, fixed={"max_iter": 300}, warmup_steps=0))
register_space(
    HeadSpace(
        "lightgbm",
        _lightgbm,
        {
            "num_leaves": "4..32 log",
            "learning_rate": "[0.05, 0.3] log",
            "min_child_samples": "5..50 log",
            "feature_fraction": "[0.05, 0.3] log",
            "lambda_l2": "[1e-3, 10] log",
        },
        fixed={"max_bin": 63, "n_estimators": 200, "early_stopping_rounds": 15},
        warmup_steps=10,
    )
)


# --- modalities and keys --------------------------------------------------------------------------------------


def modality_subsets(modalities: tuple[str, ...]) -> list[str]:
    """Every non-empty subset of ``modalities`` as ``+``-joined names, in the given order, smallest first."""
    out = []
    for r in range(1, len(modalities) + 1):
        out.extend("+".join(c) for c in itertools.combinations(modalities, r))
    return out


@dataclass(frozen=True)
class TrialConfig:
    """One point of the search space: what a trial (or a re-evaluation) trains.

    ``features`` maps each modality of the subset, in study order, to the cache key used for it.
    """

    head: str
    params: Mapping[str, Any]
    features: Mapping[str, str]

    def to_dict(self) -> dict:
        return {"head": self.head, "params": dict(self.params), "features": dict(self.features)}


def suggest_config(trial: "optuna.Trial", heads: tuple[str, ...], features: Mapping[str, tuple[str, ...]]) -> TrialConfig:
    """Ask ``trial`` for a head, its hyperparameters, a modality subset and a key per chosen modality."""
    head = trial.suggest_categorical("head", list(heads)) if len(heads) > 1 else heads[0]
    modalities = tuple(features)
    subset = trial.suggest_categorical("modalities", modality_subsets(modalities)) if len(modalities) > 1 else modalities[0]
    chosen = {}
    for m in subset.split("+"):
        keys = features[m]
        chosen[m] = trial.suggest_categorical(f"key.{m}", list(keys)) if len(keys) > 1 else keys[0]
    space = get_space(head)
    params = {**space.fixed, **space.suggest(trial, f"{head}.")}
    return TrialConfig(head=head, params=params, features=chosen)


def config_from_params(params: Mapping[str, Any], heads: tuple[str, ...], features: Mapping[str, tuple[str, ...]]) -> TrialConfig:
    """Rebuild the :class:`TrialConfig` of a finished trial from its ``params`` (the inverse of :func:`suggest_config`)."""
    head = params.get("head", heads[0])
    modalities = tuple(features)
    subset = params.get("modalities", modalities[0] if len(modalities) == 1 else None)
    if subset is None:
        raise StudyError(f"trial params {dict(params)} have no 'modalities'; was the study made by another tool?")
    chosen = {m: params.get(f"key.{m}", features[m][0]) for m in subset.split("+")}
    prefix = f"{head}."
    space = get_space(head)
    hp = {**space.fixed, **{k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}}
    return TrialConfig(head=head, params=hp, features=chosen)
