"""Flink's key groups, pinned to vectors produced by Flink 2.3.0 itself, and list state
returned as Flink returns it (own list at unchanged parallelism, round-robin on rescale)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

import onceflow
from onceflow.model import keygroups
from onceflow.model.snapshot import assemble_state, split_list_state, state_for_subtask
from onceflow.properties import placement

#: printed by tests/data/KeyGroupVectors.java against the apache-flink 2.3.0 jars
VECTORS = Path(__file__).parent / "data" / "flink_keygroups.csv"


def _vectors() -> tuple[list[dict[str, str]], str]:
    lines = VECTORS.read_text().splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    comment = next(line for line in lines if line.startswith("#"))
    return rows, comment


def test_every_row_of_flinks_vectors_matches_the_model_and_the_property() -> None:
    rows, _ = _vectors()
    assert len(rows) == 6 * 1020
    for row in rows:
        key, maxp, kg = int(row["key"]), int(row["max_parallelism"]), int(row["key_group"])
        assert keygroups.key_group(key, maxp) == kg, row
        for p in (1, 2, 3, 5, 8):
            want = row[f"operator_index_p{p}"]
            if not want:
                assert p > maxp
                continue
            assert keygroups.subtask_for_key_group(kg, p, maxp) == int(want), row
            assert keygroups.subtask_for_key(key, p, maxp) == int(want), row
            # the property's own copy of the formula, never the model's
            assert placement._key_subtask(key, p, maxp) == int(want), row
            assert kg in keygroups.key_group_range(int(want), p, maxp)


def test_default_max_parallelism_is_flinks() -> None:
    _, comment = _vectors()
    want = [int(x) for x in re.findall(r"\d+", comment.split(":", 1)[1])]
    assert [keygroups.default_max_parallelism(p) for p in (1, 4, 100, 200)] == want
    assert keygroups.default_max_parallelism(30000) == 32768
    # the model's parallelism is 1..8, where Flink's default is always 128
    assert {keygroups.default_max_parallelism(p) for p in range(1, 9)} == {128}
    assert onceflow.Topology((onceflow.Vertex("source", "source", 8),
                              onceflow.Vertex("sink", "sink", 8))).max_parallelism == 128


@pytest.mark.parametrize(("key", "code"), [
    ("", 0), ("a", 97), ("hello", 99162322), ("Aa", 2112), ("BB", 2112),
    ("key-17", -1134722988), ("\U0001F600", 0xD83D * 31 + 0xDE00), (True, 1231), (False, 1237), (0, 0), (-1, -1),
    (2**31 - 1, 2**31 - 1), (2**31, -(2**31)), (2**40, 256), (-(2**40) - 5, 260),
    (1.5, 1073217536), (None, 0), ((1, "a"), 31 * 1 + 97),
])
def test_java_hash_codes(key: object, code: int) -> None:
    assert keygroups.java_hash_code(key) == code
    if not isinstance(key, float):
        assert placement._java_hash(key) == code


def test_string_keys_route_alike_in_model_and_property() -> None:
    for i in range(300):
        key = f"user-{i}"
        for p in (1, 3, 7):
            assert keygroups.subtask_for_key(key, p, 128) == placement._key_subtask(key, p, 128)


def test_unhashable_key_types_are_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="use int, str"):
        keygroups.java_hash_code([1, 2])


# -- list state ---------------------------------------------------------------------------

def test_list_state_goes_back_to_its_own_subtask_at_unchanged_parallelism() -> None:
    merged = assemble_state("list", [["a", "b", "c"], [], ["d"]], 128)
    assert [state_for_subtask("list", merged, s, 3, 128) for s in range(3)] == \
        [["a", "b", "c"], [], ["d"]]


def test_list_state_is_split_round_robin_on_rescale_as_flink() -> None:
    merged = assemble_state("list", [[1, 2], [3, 4, 5]], 128)
    # RoundRobinOperatorStateRepartitioner: consecutive runs, the first len % p get one more
    assert [split_list_state(merged, s, 3) for s in range(3)] == [[1, 2], [3, 4], [5]]
    assert [split_list_state(merged, s, 1) for s in range(1)] == [[1, 2, 3, 4, 5]]
    assert [split_list_state(merged, s, 4) for s in range(4)] == [[1, 2], [3], [4], [5]]
    assert [split_list_state(merged, s, 7) for s in range(7)] == \
        [[1], [2], [3], [4], [5], [], []]
