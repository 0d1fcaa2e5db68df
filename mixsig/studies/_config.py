"""One point of a study's search space: :class:`TrialConfig`, asked of a trial or rebuilt from its params.

Parameter names in the Optuna study (what ``optuna.load_study(...).best_params`` shows):

- ``head``: one of the heads given with ``--heads``
- ``modalities``: the modality subset, modalities joined by ``+`` in the order of ``--features``
  (every non-empty subset, e.g. ``text``, ``text+audio``, ``text+audio+video``)
- ``key.<modality>``: which cached key to use for that modality, only where several were given
  (``--features text=K1|K2``) and the modality is in the subset
- ``<head>.<param>``: the head's hyperparameters, one registered :class:`HeadSpace` per head, each parameter
  declared once as a :class:`~mixsig.studies.Float` / :class:`~mixsig.studies.Int` /
  :class:`~mixsig.studies.Categorical` spec (its ``suggest`` call and its documented range)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from mixsig.errors import StudyError
from mixsig.studies._space import get_space

if TYPE_CHECKING:  # pragma: no cover
    import optuna


def subset_names(modalities: tuple[str, ...]) -> list[str]:
    """The ``modalities`` choices of a study: :func:`mixsig.heads.modality_subsets` joined by ``+``."""
    from mixsig.heads import modality_subsets

    return ["+".join(s) for s in modality_subsets(list(modalities))]


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


def suggest_config(trial: "optuna.Trial", heads: tuple[str, ...], features: Mapping[str, tuple[str, ...]],
                   layered_keys=frozenset()) -> TrialConfig:
    """Ask ``trial`` for a head, its hyperparameters, a modality subset and a key per chosen modality; a trial
    whose chosen keys include one of ``layered_keys`` (``[N, L, D]``) also asks for the space's ``layered`` ones."""
    head = trial.suggest_categorical("head", list(heads)) if len(heads) > 1 else heads[0]
    modalities = tuple(features)
    subset = trial.suggest_categorical("modalities", subset_names(modalities)) if len(modalities) > 1 else modalities[0]
    chosen = {}
    for m in subset.split("+"):
        keys = features[m]
        chosen[m] = trial.suggest_categorical(f"key.{m}", list(keys)) if len(keys) > 1 else keys[0]
    space = get_space(head)
    params = {**space.fixed, **space.suggest(trial, f"{head}.", layered=any(k in layered_keys for k in chosen.values()))}
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
