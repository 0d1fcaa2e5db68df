"""What a study is: its settings, saved as the study's user attributes and checked against the store on rerun."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from mixsig.errors import StudyError
from mixsig.metrics import METRICS
from mixsig.studies._space import get_space

SETTINGS_ATTR = "mixsig"
#: 2: torch heads search a ``steps`` budget with ``batch_size="auto"`` (1: ``epochs`` at batch 512), report at
#: tenths of it, and trials are checked for collapse. Trials of two versions do not mix in one study.
SETTINGS_VERSION = 2


@dataclass(frozen=True)
class StudySettings:
    """Everything that fixes what a study's trials mean.

    ``heads``: searched heads; ``features``: ((modality, (key, ...)), ...); ``metric``; ``cv`` (None = the val
    split); ``seed``; ``trials``: target number of finished (complete + pruned) trials; ``reeval_top`` /
    ``reeval_seeds``: how many best configurations are re-evaluated over how many seeds; ``split_hash``,
    ``rows_hash``, ``n_rows``: the store's split and the rows done in every key, when the study was created.
    """

    heads: tuple[str, ...]
    features: tuple[tuple[str, tuple[str, ...]], ...]
    metric: str = "macro_f1"
    cv: int | None = None
    seed: int = 0
    trials: int = 100
    reeval_top: int = 3
    reeval_seeds: int = 3
    split_hash: str = ""
    rows_hash: str = ""
    n_rows: int = 0
    version: int = SETTINGS_VERSION

    def __post_init__(self) -> None:
        if not self.heads:
            raise StudyError("--heads is empty; name at least one head")
        for h in self.heads:
            get_space(h)
        if self.metric not in METRICS:
            raise StudyError(f"The 'metric' parameter of a study must be one of {sorted(METRICS)}. Got {self.metric!r} instead.")
        if self.cv is not None and self.cv < 2:
            raise StudyError(f"--cv must be at least 2 folds; got {self.cv}")
        if self.trials < 1:
            raise StudyError(f"--trials must be at least 1; got {self.trials}")
        if self.reeval_top < 1 or self.reeval_seeds < 1:
            raise StudyError(f"--reeval-top and --reeval-seeds must be >= 1; got {self.reeval_top}, {self.reeval_seeds}")

    @property
    def feature_map(self) -> dict[str, tuple[str, ...]]:
        return {m: tuple(k) for m, k in self.features}

    @property
    def keys(self) -> list[str]:
        return [k for _, ks in self.features for k in ks]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["heads"] = list(self.heads)
        d["features"] = {m: list(k) for m, k in self.features}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StudySettings":
        d = dict(d)
        d["heads"] = tuple(d["heads"])
        d["features"] = tuple((m, tuple(k)) for m, k in d["features"].items())
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def search_differences(self, other: "StudySettings") -> list[str]:
        """What the user asked differently from ``other`` (heads, features, metric, cv, seed, re-evaluation), or
        the search-space version when ``other`` was made by another mixsig."""
        out = []
        if self.version != other.version:
            out.append(f"search space: study made with version {other.version}, this mixsig searches version "
                       f"{self.version} (torch heads: steps budget, batch sized from the train rows)")
        for name in ("heads", "features", "metric", "cv", "seed", "reeval_top", "reeval_seeds"):
            a, b = self.to_dict()[name], other.to_dict()[name]
            if a != b:
                out.append(f"{name}: study has {_short(b)}, asked {_short(a)}")
        return out

    def store_differences(self, *, split_hash: str, rows_hash: str, n_rows: int, store_keys: list[str]) -> list[str]:
        """What changed in the store since the study was created (missing keys, split, rows done)."""
        out = []
        missing = [k for k in self.keys if k not in set(store_keys)]
        if missing:
            out.append(f"feature key(s) no longer in the store: {', '.join(missing)}")
        if split_hash != self.split_hash:
            out.append(f"the split changed (split hash {self.split_hash[:12]} -> {split_hash[:12]}: ids, splits or labels)")
        if not missing and rows_hash != self.rows_hash:
            out.append(f"the rows done in every key changed ({self.n_rows} -> {n_rows} usable train/val rows)")
        return out


def _short(v: Any) -> str:
    return json.dumps(v, sort_keys=True)
