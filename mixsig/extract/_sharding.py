"""Which shard this process is: ``--shard I/N`` or the ``torchrun`` environment (RANK / WORLD_SIZE / LOCAL_RANK)."""

from __future__ import annotations

import os

from mixsig.errors import UsageError


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N); None/"" -> None."""
    if not text:
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like I/N (e.g. 0/4); got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise UsageError(f"--shard I/N needs 0 <= I < N; got {text!r}")
    return (i, n)


def shard_from_env(env=None) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when set by ``torchrun`` (or any launcher using the same variables), else None."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    try:
        return parse_shard(f"{int(env['RANK'])}/{int(env['WORLD_SIZE'])}")
    except ValueError:
        raise UsageError(f"RANK={env.get('RANK')!r} / WORLD_SIZE={env.get('WORLD_SIZE')!r} are not integers") from None


def resolve_shard(text: str | None, env=None) -> tuple[int, int]:
    """``--shard`` wins; else the torchrun variables; else (0, 1). Both given and different -> UsageError."""
    explicit, from_env = parse_shard(text), shard_from_env(env)
    if explicit and from_env and explicit != from_env and from_env[1] > 1:
        raise UsageError(f"--shard {text} disagrees with RANK/WORLD_SIZE={from_env[0]}/{from_env[1]}; give one of them")
    return explicit or from_env or (0, 1)


def default_device(env=None) -> str:
    """``cuda:<LOCAL_RANK>`` when CUDA is available (LOCAL_RANK defaults to 0), else ``cpu``."""
    import torch

    env = os.environ if env is None else env
    if torch.cuda.is_available():
        local = int(env.get("LOCAL_RANK", "0") or 0)
        return f"cuda:{local % max(torch.cuda.device_count(), 1)}"
    return "cpu"


__all__ = ["parse_shard", "shard_from_env", "resolve_shard", "default_device"]
