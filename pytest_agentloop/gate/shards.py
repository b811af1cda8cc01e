"""Splitting the selected evals over N CI shards, balanced by recorded durations.

Every runner computes the same plan from the same inputs, whatever order pytest
collected the items in: units (a group of items that must run together, such as
the evals sharing one live run of a question) are placed longest first on the
least-loaded shard, ties broken by the unit's key. Items with no recorded
duration count as the mean of those that have one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_agentloop.errors import AgentloopError

SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
FALLBACK_SECONDS = 1.0


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> ShardSpec:
    """``K/N`` with 1 <= K <= N; anything else is a ValueError saying what is allowed."""
    match = SHARD_PATTERN.match(text)
    if not match:
        raise ValueError(f"expected K/N (for example 2/4), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return ShardSpec(index, count)


@dataclass(frozen=True)
class Unit:
    """Items that must land on one shard, and what running them is expected to cost."""

    key: str
    nodeids: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class Plan:
    """Which shard each item runs on, and each shard's planned seconds."""

    shard_of: Mapping[str, int]
    loads: tuple[float, ...]

    @property
    def balance(self) -> float:
        """The slowest shard's planned time over the ideal (total / N); 1.0 is perfect."""
        total = sum(self.loads)
        return max(self.loads) / (total / len(self.loads)) if total else 1.0


def units(groups: Mapping[str, str], durations: Mapping[str, float]) -> list[Unit]:
    """Group node ids (``nodeid -> group key``) into units costed from ``durations`` (seconds per node id)."""
    known = [d for n, d in durations.items() if n in groups and d >= 0]
    fallback = sum(known) / len(known) if known else FALLBACK_SECONDS
    members: dict[str, list[str]] = {}
    for nodeid, key in groups.items():
        members.setdefault(key, []).append(nodeid)
    return [
        Unit(key, tuple(sorted(ids)), sum(durations.get(n, fallback) for n in ids))
        for key, ids in sorted(members.items())
    ]


def plan(all_units: Iterable[Unit], count: int) -> Plan:
    """Longest unit first onto the least-loaded shard (lowest index on ties): deterministic and near ideal."""
    loads = [0.0] * count
    shard_of: dict[str, int] = {}
    for unit in sorted(all_units, key=lambda u: (-u.seconds, u.key)):
        target = min(range(count), key=lambda i: (loads[i], i))
        loads[target] += unit.seconds
        for nodeid in unit.nodeids:
            shard_of[nodeid] = target + 1
    return Plan(shard_of, tuple(loads))


def read_durations(path: Path) -> dict[str, float]:
    """Per-eval seconds from a results export (``agentloop export``) or a ``{nodeid: seconds}`` file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AgentloopError(f"cannot read durations: {exc}", path=path) from None
    if isinstance(document, dict) and isinstance(document.get("results"), list):
        rows = document["results"]
        pairs = [(r.get("nodeid"), r.get("duration")) for r in rows if isinstance(r, dict)]
    elif isinstance(document, dict):
        pairs = list(document.items())
    else:
        raise AgentloopError("expected a results export or a {nodeid: seconds} object", path=path)
    durations: dict[str, float] = {}
    for nodeid, seconds in pairs:
        if not isinstance(nodeid, str) or isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise AgentloopError(f"bad duration entry {nodeid!r}: {seconds!r} (expected seconds)", path=path)
        durations[nodeid] = float(seconds)
    return durations
