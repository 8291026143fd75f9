"""Key groups: how keyed state is partitioned, and moves on rescale (Flink's formula).

As Flink's `KeyGroupRangeAssignment`: a key's group is
`MathUtils.murmurHash(key.hashCode()) % maxParallelism`, and key group `kg` belongs
to operator index `kg * parallelism // maxParallelism`.  Keys hash as the Java value
a Flink job would hold: an int is an `Integer` when it fits in 32 bits and a `Long`
otherwise, a str a `String`, a bool a `Boolean`, a float a `Double`, a tuple a
Flink `TupleN` and None hashes to 0.  Pinned to vectors produced by Flink 2.3.0
itself (tests/test_keygroups.py).
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["default_max_parallelism", "java_hash_code", "key_group", "key_group_range",
           "murmur_hash", "subtask_for_key", "subtask_for_key_group"]

_M32 = 0xFFFFFFFF
#: Flink's `KeyGroupRangeAssignment` bounds on the default max parallelism
DEFAULT_LOWER_BOUND_MAX_PARALLELISM = 128
UPPER_BOUND_MAX_PARALLELISM = 32768


def _int32(value: int) -> int:
    value &= _M32
    return value - 0x100000000 if value & 0x80000000 else value


def java_hash_code(key: Any) -> int:
    """`key.hashCode()` of the Java value that `key` stands for (a signed 32-bit int)."""
    cls = key.__class__
    if cls is int:
        if -0x80000000 <= key <= 0x7FFFFFFF:
            return key  # Integer.hashCode
        v = key & 0xFFFFFFFFFFFFFFFF  # Long.hashCode: (int) (v ^ (v >>> 32))
        return _int32(v ^ (v >> 32))
    if cls is str:
        h = 0
        for unit in _utf16_units(key):
            h = (31 * h + unit) & _M32
        return _int32(h)
    if cls is bool:
        return 1231 if key else 1237
    if cls is float:
        if key != key:
            bits = 0x7FF8000000000000  # Double.doubleToLongBits: canonical NaN
        else:
            bits = struct.unpack(">q", struct.pack(">d", key))[0] & 0xFFFFFFFFFFFFFFFF
        return _int32(bits ^ (bits >> 32))
    if cls is tuple:  # Flink's Tuple2..Tuple25: 31 * result + field.hashCode()
        h = 0
        for item in key:
            h = (31 * h + (0 if item is None else java_hash_code(item))) & _M32
        return _int32(h)
    if key is None:
        return 0
    if isinstance(key, int):  # int subclasses (IntEnum, ...) hash as their value
        return java_hash_code(int(key))
    raise TypeError(f"no Java hashCode for a key of type {cls.__name__}; use int, str, "
                    "bool, float or a tuple of these as keys")


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & _M32


def murmur_hash(code: int) -> int:
    """Flink's `MathUtils.murmurHash(int)`: a non-negative int."""
    h = (code * 0xCC9E2D51) & _M32
    h = _rotl(h, 15)
    h = (h * 0x1B873593) & _M32
    h = _rotl(h, 13)
    h = (h * 5 + 0xE6546B64) & _M32
    h ^= 4
    # MathUtils.bitMix
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    signed = _int32(h)
    if signed >= 0:
        return signed
    return -signed if signed != -0x80000000 else 0


def key_group(key: Any, max_parallelism: int) -> int:
    """`KeyGroupRangeAssignment.assignToKeyGroup(key, maxParallelism)`."""
    return murmur_hash(java_hash_code(key)) % max_parallelism


def subtask_for_key_group(kg: int, parallelism: int, max_parallelism: int) -> int:
    """`computeOperatorIndexForKeyGroup(maxParallelism, parallelism, kg)`."""
    return kg * parallelism // max_parallelism


def subtask_for_key(key: Any, parallelism: int, max_parallelism: int) -> int:
    """`assignKeyToParallelOperator(key, maxParallelism, parallelism)`."""
    return key_group(key, max_parallelism) * parallelism // max_parallelism


def key_group_range(subtask: int, parallelism: int, max_parallelism: int) -> range:
    """The key groups subtask `subtask` of `parallelism` owns (the inverse mapping,
    `computeKeyGroupRangeForOperatorIndex`)."""
    start = (subtask * max_parallelism + parallelism - 1) // parallelism
    end = ((subtask + 1) * max_parallelism + parallelism - 1) // parallelism
    return range(start, end)


def _round_up_to_power_of_two(x: int) -> int:
    return 1 << (x - 1).bit_length() if x > 1 else 1


def default_max_parallelism(parallelism: int) -> int:
    """`KeyGroupRangeAssignment.computeDefaultMaxParallelism(parallelism)`: the max
    parallelism Flink picks when the job sets none."""
    return min(max(_round_up_to_power_of_two(parallelism + parallelism // 2),
                   DEFAULT_LOWER_BOUND_MAX_PARALLELISM), UPPER_BOUND_MAX_PARALLELISM)
