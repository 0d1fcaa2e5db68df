"""Small helpers shared by the command modules (terminal output only; no heavy imports)."""

from __future__ import annotations

import json
import sys
from typing import Any, Sequence


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str, allow_nan=True)
    sys.stdout.write("\n")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in header]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` -> (I, N); None -> (0, 1)."""
    from mixsig.errors import UsageError

    if not text:
        return (0, 1)
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like I/N (e.g. 0/4); got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard I/N needs 0 <= I < N; got {text!r}")
    return (i, n)


def parse_features(text: str) -> dict[str, str]:
    """``"text=K1,audio=K2"`` -> {"text": "K1", "audio": "K2"} (values may hold ``|`` alternatives)."""
    from mixsig.errors import UsageError

    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise UsageError(f"--features takes MODALITY=KEY pairs separated by commas; got {part!r}")
        m, k = (x.strip() for x in part.split("=", 1))
        if not m or not k:
            raise UsageError(f"--features entry {part!r} needs both a modality and a key")
        if m in out:
            raise UsageError(f"--features names modality {m!r} twice")
        out[m] = k
    if not out:
        raise UsageError("--features needs at least one MODALITY=KEY")
    return out
