"""The one exception root of mixsig and its few subclasses.

The CLI turns a :class:`MixsigError` into one clear line on stderr and ``exit_code``;
``mixsig --debug`` shows the traceback instead.
"""

from __future__ import annotations


class MixsigError(Exception):
    """Root of every error mixsig raises on purpose (bad input, refused operation)."""

    exit_code = 1


class UsageError(MixsigError):
    """The command line or an argument is wrong (exit code 2)."""

    exit_code = 2


class ManifestError(MixsigError):
    """A manifest has problems; ``problems`` lists every one of them."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class RefusedInput(MixsigError):
    """Valid-looking input that mixsig refuses to use as it is, because the result would mislead (exit code 3):
    e.g. splits that share a group (leakage). The message names the override flag where one exists."""

    exit_code = 3


class GroupLeak(RefusedInput):
    """Groups found in more than one split; proceed only with an explicit ``--allow-group-leak``."""

    def __init__(self, message: str, leak: dict | None = None):
        super().__init__(message)
        self.leak = dict(leak or {})


class StoreError(MixsigError):
    """The feature store is missing, malformed, or an operation on it was refused."""


class ProvenanceMismatch(StoreError):
    """A key exists with a different provenance record than the one asked for."""


class LeaseHeld(StoreError):
    """Another writer holds the lease on a key (or on an overlapping shard of it)."""


class CorruptChunk(StoreError):
    """A chunk of an array failed its checksum or could not be decoded."""


class ExtractionError(MixsigError):
    """Extraction failed in a way that stops the run (``--strict``, a bad encoder, ...)."""


class HeadError(MixsigError):
    """A head could not be built, trained, saved or loaded."""


class StudyError(MixsigError):
    """A study was refused (changed keys or splits, unsafe storage, ...)."""


def did_you_mean(name: object, candidates, *, n: int = 3, cutoff: float = 0.6) -> str:
    """``" Did you mean 'x'?"`` (or ``'x' or 'y'``) for the names of ``candidates`` closest to ``name``
    (:func:`difflib.get_close_matches`, case-insensitive), or ``""`` when none is close: append it to an
    unknown-name message.

    >>> did_you_mean("gatd", ["concat", "gated", "late"])
    " Did you mean 'gated'?"
    >>> did_you_mean("mlp", ["concat", "gated", "late"])
    ''
    """
    import difflib

    have = [str(c) for c in candidates]
    lower: dict[str, str] = {}
    for c in have:
        lower.setdefault(c.lower(), c)
    close = difflib.get_close_matches(str(name).lower(), list(lower), n=n, cutoff=cutoff)
    close = [lower[c] for c in close if lower[c] != str(name)]
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"
