"""Shard planning: deterministic, balanced by duration, groups kept together, every item exactly once."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.shards import Unit, parse_shard, plan, read_durations, units


@pytest.mark.parametrize(("text", "index", "count"), [("1/4", 1, 4), (" 4/4 ", 4, 4), ("1/1", 1, 1)])
def test_parse_shard(text: str, index: int, count: int) -> None:
    spec = parse_shard(text)
    assert (spec.index, spec.count) == (index, count)


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "2", "-1/3", "1/2/3"])
def test_parse_shard_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected K/N"):
        parse_shard(text)


def _suite(seed: int) -> tuple[dict[str, str], dict[str, float]]:
    rng = random.Random(seed)
    groups = {f"evals/s.eval.yaml::e{n:03d}": f"q{n // 3}" for n in range(200)}
    durations = {nodeid: rng.choice([0.2, 1.0, 5.0, 30.0]) for nodeid in groups if rng.random() > 0.1}
    return groups, durations


def test_every_item_lands_on_exactly_one_shard_and_groups_stay_together() -> None:
    groups, durations = _suite(1)
    result = plan(units(groups, durations), 4)
    assert set(result.shard_of) == set(groups)
    by_group: dict[str, set[int]] = {}
    for nodeid, shard in result.shard_of.items():
        by_group.setdefault(groups[nodeid], set()).add(shard)
    assert all(len(shards) == 1 for shards in by_group.values())
    assert set(result.shard_of.values()) == {1, 2, 3, 4}


def test_the_plan_does_not_depend_on_collection_order() -> None:
    groups, durations = _suite(2)
    shuffled = dict(sorted(groups.items(), key=lambda kv: random.Random(7).random()))
    assert plan(units(groups, durations), 3).shard_of == plan(units(shuffled, durations), 3).shard_of


def test_balance_is_near_ideal_for_many_small_units() -> None:
    groups, durations = _suite(3)
    assert plan(units(groups, durations), 4).balance < 1.1


def test_missing_durations_count_as_the_mean() -> None:
    made = units({"a": "a", "b": "b", "c": "c"}, {"a": 1.0, "b": 3.0})
    assert [u.seconds for u in made] == [1.0, 3.0, 2.0]


def test_one_unit_longer_than_the_ideal_takes_a_shard_to_itself() -> None:
    result = plan([Unit("big", ("big",), 10.0), Unit("x", ("x",), 1.0), Unit("y", ("y",), 1.0)], 2)
    assert result.shard_of == {"big": 1, "x": 2, "y": 2}
    assert result.loads == (10.0, 2.0)


def test_read_durations_from_an_export_and_from_a_mapping(tmp_path: Path) -> None:
    export = tmp_path / "baseline.json"
    export.write_text(json.dumps({"format": 1, "results": [{"nodeid": "a", "duration": 2.5}]}))
    mapping = tmp_path / "durations.json"
    mapping.write_text(json.dumps({"b": 1}))
    assert read_durations(export) == {"a": 2.5}
    assert read_durations(mapping) == {"b": 1.0}


@pytest.mark.parametrize("text", ["[1, 2]", '{"a": "slow"}', "{not json"])
def test_read_durations_rejects_bad_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(AgentloopError) as info:
        read_durations(path)
    assert info.value.path == path
