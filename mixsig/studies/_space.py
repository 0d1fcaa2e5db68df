"""The search spaces of a study's heads: one registered :class:`HeadSpace` per head (``SPACES``).

What a trial asks for (head, subset, keys, these hyperparameters) is :func:`mixsig.studies.suggest_config`
(``_config``); this module only declares the spaces, so ``mixsig study spaces`` / ``--help`` import nothing else.

Each parameter is declared once as a :class:`~mixsig.studies.Float` / :class:`~mixsig.studies.Int` /
:class:`~mixsig.studies.Categorical` spec (its ``suggest`` call and its documented range). Adding a head to
studies is one ``register_space(HeadSpace(head, (Float(...), ...), fixed=...))`` call.

The spaces hold for 200 to 200,000 training rows: torch heads search a budget of optimizer ``steps`` with
``batch_size="auto"`` (:func:`mixsig.heads.resolve_schedule`: the batch is the power of two nearest
``n_train * 8 / steps`` in [16, 1024], so every trial sees about 8 epochs' worth of rows in 100-800 updates).
A fixed batch size would make a few hundred training rows one full batch — a handful of updates per trial, and
many trials predicting one class. Torch trials report validation accuracy at every tenth of their budget, so
trials of any size compare at the same share of their training. LightGBM's leaves need at least 5-50 rows
(``min_child_samples``) and trees stop early on the validation loss, which holds from a few hundred rows up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from mixsig._registry import Registry
from mixsig.errors import StudyError
from mixsig.studies._params import Categorical, Float, Int, Param, _Spec

if TYPE_CHECKING:  # pragma: no cover
    import optuna


class HeadSpace(_Spec):
    """The hyperparameters a study searches for one head, each declared once as a parameter spec.

    ``params``: :class:`~mixsig.studies.Float` / :class:`~mixsig.studies.Int` /
    :class:`~mixsig.studies.Categorical` specs, suggested in this order (Optuna's parameter ``<head>.<name>``);
    ``fixed`` are passed to the head in every trial; ``warmup_steps`` is how many reported steps (tenths of a
    torch budget, boosting rounds) a trial runs before it may be pruned. ``layered``: parameters searched only by
    trials whose chosen keys include an ``[N, L, D]`` one (all layers of an encoder, ``extract --layers all``):
    the torch heads' ``layer`` — the learned weighted-layer sum against the fixed mean of the layers.
    """

    __slots__ = ("head", "params", "fixed", "warmup_steps", "layered")

    def __init__(self, head: str, params: tuple[Param, ...], fixed: Mapping[str, Any] | None = None,
                 warmup_steps: int = 3, layered: tuple[Param, ...] = ()) -> None:
        params, layered = tuple(params), tuple(layered)
        names = [p.name for p in params + layered]
        if len(set(names)) != len(names):
            raise StudyError(f"search space of {head!r} declares a parameter twice: {names}")
        both = sorted(set(names) & set(fixed or {}))
        if both:
            raise StudyError(f"search space of {head!r}: {both} both searched and fixed; keep one")
        self._set(head=head, params=params, fixed=dict(fixed or {}), warmup_steps=int(warmup_steps),
                  layered=layered)

    def __hash__(self) -> int:
        return hash((self.head, self.params))

    def suggest(self, trial: "optuna.Trial", prefix: str, layered: bool = False) -> dict[str, Any]:
        """Ask ``trial`` for each searched parameter (named ``prefix + name``): ``{name: value}``; with ``layered``
        (a chosen key is ``[N, L, D]``) the ``layered`` parameters too."""
        return {p.name: p.suggest(trial, prefix) for p in self.params + (self.layered if layered else ())}

    @property
    def ranges(self) -> dict[str, str]:
        """``{name: range text}`` of the searched parameters (what :meth:`describe` shows)."""
        return {p.name: p.range_text() for p in self.params}

    def describe(self) -> str:
        searched = ", ".join(p.describe() for p in self.params)
        fixed = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        return f"{self.head}: {searched}" + (f"; fixed {fixed}" if fixed else "")


#: head -> its :class:`HeadSpace`
SPACES: Registry[HeadSpace] = Registry("search space", error=StudyError,
                                       hint="a head is searched once register_space(HeadSpace(head, params)) gives it one")


def register_space(space: HeadSpace) -> HeadSpace:
    """Register the search space of ``space.head`` (one per head; another space under a taken head is refused)."""
    return SPACES.register(space.head, space)


def get_space(head: str) -> HeadSpace:
    """The registered space of ``head``; :class:`StudyError` listing the heads studies can search otherwise."""
    return SPACES.get(head)


def list_spaces() -> list[str]:
    """Heads with a registered search space, sorted."""
    return SPACES.names()


def describe_spaces() -> str:
    """One line per head: its searched ranges and fixed parameters (``mixsig study spaces``, ``--help``); then one
    line per ``layered`` parameter: the heads that also search it in trials on an ``[N, L, D]`` key."""
    lines = [SPACES.get(h).describe() for h in list_spaces()]
    layered: dict = {}
    for h in list_spaces():
        for p in SPACES.get(h).layered:
            layered.setdefault(p.describe(), []).append(h)
    lines += [f"trials on an [N, L, D] key (all layers) of {', '.join(hs)} also search {d}" for d, hs in layered.items()]
    return "\n".join(lines)


# --- the spaces -----------------------------------------------------------------------------------------------

#: the parameters every torch head searches, in suggestion order
TORCH_PARAMS = (
    Float("max_lr", 1e-3, 3e-2, log=True, note="one-cycle peak"),
    Float("weight_decay", 1e-6, 1e-2, log=True),
    Float("dropout", 0.0, 0.5),
    Categorical("hidden", (32, 64, 128)),
    Int("n_layers", 1, 2),
    Int("steps", 100, 800, log=True, note="optimizer steps; batch sized from the train rows"),
)
_TORCH_FIXED = {"batch_size": "auto"}
#: torch trials report at tenths of their budget (points 0..9); pruning starts at point 3 (40% of the budget)
TORCH_WARMUP = 3
#: searched by torch trials on an [N, L, D] key: the learned weighted-layer sum vs the fixed mean of the layers
LAYER_CHOICE = (Categorical("layer", ("weighted", "mean"), note="learned weights vs fixed mean"),)

register_space(HeadSpace(
    "gated", TORCH_PARAMS + (Categorical("proj_dim", (32, 64)), Float("modality_dropout", 0.0, 0.4)),
    fixed={**_TORCH_FIXED, "att_dim": 64}, warmup_steps=TORCH_WARMUP, layered=LAYER_CHOICE))
register_space(HeadSpace("concat", TORCH_PARAMS, fixed=_TORCH_FIXED, warmup_steps=TORCH_WARMUP, layered=LAYER_CHOICE))
register_space(HeadSpace("late", TORCH_PARAMS, fixed=_TORCH_FIXED, warmup_steps=TORCH_WARMUP, layered=LAYER_CHOICE))
register_space(HeadSpace("logreg", (Float("C", 1e-4, 10.0, log=True),), fixed={"max_iter": 300}, warmup_steps=0))
register_space(HeadSpace(
    "lightgbm",
    (
        Int("num_leaves", 4, 32, log=True),
        Float("learning_rate", 0.05, 0.3, log=True),
        Int("min_child_samples", 5, 50, log=True),
        Float("feature_fraction", 0.05, 0.3, log=True),
        Float("lambda_l2", 1e-3, 10.0, log=True),
    ),
    fixed={"max_bin": 63, "n_estimators": 200, "early_stopping_rounds": 15},
    warmup_steps=10,
))
