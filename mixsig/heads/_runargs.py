"""The arguments of :func:`mixsig.heads.train_run` checked and turned into what the fits take: seeds
(``--seeds`` / ``--n-seeds``), class weights by class name, the annotators' vote shares as soft labels."""

from __future__ import annotations

import numpy as np

from mixsig.errors import UsageError


SEEDS_HELP = ("--seeds takes a comma list of seeds (--seeds 0,1,2; one seed: --seeds 42,) and --n-seeds a count "
              "(--n-seeds 5 -> seeds 0..4)")


def parse_seeds(seeds: str | None = None, n_seeds: int | str | None = None) -> list[int]:
    """The seeds of ``mixsig train --seeds S1,S2,... | --n-seeds N``: always a list, never a guess.

    ``"0,1,2"`` → [0, 1, 2]; ``"42,"`` → [42] (a single seed needs its comma); ``n_seeds=3`` → [0, 1, 2];
    neither → [0]. A bare integer for ``seeds`` (``"42"``: 42 seeds or seed 42?), both given, an empty list,
    duplicates, negative or non-integer seeds raise :class:`UsageError` naming both spellings."""
    if seeds is not None and n_seeds is not None:
        raise UsageError(f"give either --seeds or --n-seeds, not both (got --seeds {seeds} and --n-seeds {n_seeds}); "
                         f"{SEEDS_HELP}.")
    if n_seeds is not None:
        try:
            n = int(str(n_seeds).strip())
        except ValueError:
            raise UsageError(f"--n-seeds takes a count >= 1; got {n_seeds!r}. {SEEDS_HELP}.") from None
        if n < 1:
            raise UsageError(f"--n-seeds takes a count >= 1; got {n}. {SEEDS_HELP}.")
        return list(range(n))
    if seeds is None:
        return [0]
    text = str(seeds).strip()
    if "," not in text:
        hint = (f" For seed {text} alone write --seeds {text},; for {text} seeds (0..{int(text) - 1}) write "
                f"--n-seeds {text}." if text.isdigit() and int(text) > 0 else "")
        raise UsageError(f"--seeds {text!r} is ambiguous or not a list: {SEEDS_HELP}.{hint}")
    parts = [p.strip() for p in text.split(",")]
    if parts[-1] == "":
        parts = parts[:-1]  # "42," -> one seed
    if not parts or any(p == "" for p in parts):
        raise UsageError(f"--seeds {text!r} has an empty entry; {SEEDS_HELP}.")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: seeds are integers; {SEEDS_HELP}.") from None
    return check_seeds(vals, option="--seeds")


def check_seeds(seeds, option: str = "seeds") -> list[int]:
    """``train_run``'s ``seeds``: a non-empty list (or tuple, range) of distinct integers >= 0, returned as a list.

    An int (a count or one seed?) or a string is refused: pass ``[42]`` for one seed and ``list(range(5))`` for five."""
    if isinstance(seeds, (str, bytes, int, float)) or not hasattr(seeds, "__iter__"):
        raise UsageError(f"{option} must be a list of integer seeds, e.g. [42] for one seed or list(range(5)) for "
                         f"seeds 0..4; got {seeds!r}.")
    vals = list(seeds)
    bad = [s for s in vals if isinstance(s, bool) or not isinstance(s, (int, np.integer))]
    if bad:
        raise UsageError(f"{option}: seeds must be integers; got {bad[0]!r} in {vals!r}.")
    vals = [int(s) for s in vals]
    if not vals:
        raise UsageError(f"{option} must name at least one seed; got an empty list.")
    dup = sorted({s for s in vals if vals.count(s) > 1})
    if dup:
        raise UsageError(f"{option} {vals}: seed(s) {dup} given more than once; each seed trains one model per subset.")
    neg = [s for s in vals if s < 0]
    if neg:
        raise UsageError(f"{option} {vals}: seeds must be >= 0; got {neg[0]}.")
    return vals


def soft_label_matrix(samples, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """``[len(rows), C]`` vote shares of ``rows``; rows without votes get their one-hot gold label.
    Returns the matrix and how many rows had no votes."""
    C = len(samples.classes)
    counts = samples.vote_counts()[rows].astype(np.float64)
    tot = counts.sum(axis=1)
    q = np.zeros((rows.size, C))
    has = tot > 0
    q[has] = counts[has] / tot[has, None]
    gold = samples.label[rows]
    no = np.flatnonzero(~has)
    q[no, gold[no]] = 1.0
    return q, int(no.size)


def _class_weight(cw, classes: tuple[str, ...]):
    if cw is None or cw == "balanced":
        return cw
    if isinstance(cw, dict):
        out = {}
        for k, v in cw.items():
            if isinstance(k, str) and k in classes:
                out[classes.index(k)] = float(v)
            else:
                try:
                    out[int(k)] = float(v)
                except (TypeError, ValueError):
                    raise UsageError(f"class_weight key {k!r} is neither a class of the store {list(classes)} "
                                     f"nor a class index.") from None
        return out
    raise UsageError(f"class_weight must be 'balanced' or a dict {{class: weight}}; got {cw!r}.")
