"""Key groups: how keyed state is partitioned, and moves on rescale."""

from __future__ import annotations

__all__ = ["key_group", "key_group_range", "subtask_for_key", "subtask_for_key_group"]


def _mix(value: int) -> int:
    """A fixed 32-bit integer mix (murmur3's finaliser): stable across processes."""
    h = value & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def key_group(key: int, max_parallelism: int) -> int:
    return _mix(key) % max_parallelism


def subtask_for_key_group(kg: int, parallelism: int, max_parallelism: int) -> int:
    return kg * parallelism // max_parallelism


def subtask_for_key(key: int, parallelism: int, max_parallelism: int) -> int:
    return key_group(key, max_parallelism) * parallelism // max_parallelism


def key_group_range(subtask: int, parallelism: int, max_parallelism: int) -> range:
    """The key groups subtask `subtask` of `parallelism` owns (the inverse mapping)."""
    start = (subtask * max_parallelism + parallelism - 1) // parallelism
    end = ((subtask + 1) * max_parallelism + parallelism - 1) // parallelism
    return range(start, end)
