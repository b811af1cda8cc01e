"""Shard files: what one CI shard hands the final job, and the checks that make N of them one run.

A shard file holds the shard's place (K/N), the commit and the settings that
decide outcomes, the whole planned selection, the items this shard ran, their
typed results, and what else the final job needs (:mod:`~pytest_agentloop.gate.carry`:
verdicts made, live traces, harness, feedback, options). Merging refuses
(exit 2) anything that is not exactly one run split N ways: a missing or
doubled shard, shards of two commits or two configurations (settings, harness,
feedback), an older shard format, items run twice or never.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_agentloop.config import Settings
from pytest_agentloop.errors import AgentloopError
from pytest_agentloop.gate.carry import Carried
from pytest_agentloop.gate.shards import ShardSpec, parse_shard
from pytest_agentloop.results import EvalResult

SHARD_FORMAT = 2
"""2 added what the shard carries (verdicts, live traces, harness, feedback, options)."""
KIND = "agentloop-shard"
OUTCOME_SETTINGS = (
    "eval_patterns",
    "traces_dirname",
    "judge_mode",
    "judge_model",
    "judge_api",
    "judge_base_url",
    "repeat",
    "split",
    "harness",
)
"""Settings that change outcomes: shards of one run must agree on them."""


class MergeError(AgentloopError):
    """Shard files that do not make one run (exit 2)."""


@dataclass(frozen=True)
class ShardFile:
    """One shard's contribution."""

    path: Path
    shard: ShardSpec
    commit: str | None
    settings: dict[str, str]
    planned: tuple[str, ...]
    ran: tuple[str, ...]
    results: tuple[EvalResult, ...]
    outcomes: dict[str, str] = field(default_factory=dict)
    """Every test this shard ran (Python tests too) and how it ended."""
    outside: tuple[str, ...] = ()
    """Failures the gate can never excuse (failing Python tests, collection errors)."""
    started: str = ""
    carried: Carried = field(default_factory=Carried)


def outcome_settings(settings: Settings) -> dict[str, str]:
    """The settings shards must share, as text."""
    return {name: str(getattr(settings, name)) for name in OUTCOME_SETTINGS}


def shard_document(shard: ShardFile) -> str:
    """The JSON written by ``--agentloop-shard-out``."""
    document = {
        "kind": KIND,
        "format": SHARD_FORMAT,
        "shard": str(shard.shard),
        "commit": shard.commit,
        "settings": shard.settings,
        "planned": sorted(shard.planned),
        "ran": sorted(shard.ran),
        "outcomes": dict(sorted(shard.outcomes.items())),
        "outside": list(shard.outside),
        "started": shard.started,
        "results": [r.to_json() for r in shard.results],
        "carried": shard.carried.to_json(),
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def read_shard(path: Path) -> ShardFile:
    """A shard file, checked; anything else is a :class:`MergeError` naming the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MergeError(f"cannot read shard file: {exc}", path=path) from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise MergeError("not a shard file (write one with --agentloop-shard-out)", path=path)
    found = document.get("format")
    if isinstance(found, int) and found < SHARD_FORMAT:
        raise MergeError(
            f"shard file format {found} was written by an older pytest-agentloop and lacks the verdicts and live "
            f"traces the merge needs: run every shard again with this version (format {SHARD_FORMAT})",
            path=path,
        )
    if found != SHARD_FORMAT:
        raise MergeError(
            f"shard file format {found!r} is not {SHARD_FORMAT}: merge with the pytest-agentloop the shards ran",
            path=path,
        )
    try:
        return _shard_from(path, document)
    except (KeyError, TypeError, ValueError) as exc:
        raise MergeError(f"malformed shard file ({type(exc).__name__}: {exc})", path=path) from None


def _shard_from(path: Path, data: dict[str, Any]) -> ShardFile:
    return ShardFile(
        path=path,
        shard=parse_shard(str(data["shard"])),
        commit=data.get("commit"),
        settings={str(k): str(v) for k, v in dict(data["settings"]).items()},
        planned=tuple(str(n) for n in data["planned"]),
        ran=tuple(str(n) for n in data["ran"]),
        results=tuple(EvalResult.from_json(r) for r in data["results"]),
        outcomes={str(k): str(v) for k, v in dict(data.get("outcomes", {})).items()},
        outside=tuple(str(n) for n in data.get("outside", [])),
        started=str(data.get("started", "")),
        carried=Carried.from_json(data["carried"]),
    )


def check_shards(shards: list[ShardFile]) -> None:
    """Raise :class:`MergeError` unless the shards are exactly one run split N ways."""
    if not shards:
        raise MergeError("no shard files given")
    first = shards[0]
    for other in shards[1:]:
        _same(first, other)
    counts = Counter(s.shard.index for s in shards)
    doubled = sorted(index for index, n in counts.items() if n > 1)
    if doubled:
        names = ", ".join(str(s.path) for s in shards if s.shard.index in doubled)
        raise MergeError(f"shard {doubled[0]}/{first.shard.count} given more than once ({names})")
    missing = sorted(set(range(1, first.shard.count + 1)) - set(counts))
    if missing:
        listed = ", ".join(f"{k}/{first.shard.count}" for k in missing)
        raise MergeError(f"missing shard {listed}: a merge of part of the run would be a partial green")
    _cover(shards)


def _same(first: ShardFile, other: ShardFile) -> None:
    if other.shard.count != first.shard.count:
        raise MergeError(f"{other.path} is a shard of {other.shard.count}, {first.path} of {first.shard.count}")
    if other.commit != first.commit:
        raise MergeError(f"shards come from two commits: {first.commit} ({first.path}), {other.commit} ({other.path})")
    differing = sorted(
        k for k in first.settings.keys() | other.settings.keys() if first.settings.get(k) != other.settings.get(k)
    )
    if differing:
        raise MergeError(f"shards ran with different settings ({', '.join(differing)}): {first.path}, {other.path}")
    if other.carried.harness != first.carried.harness or other.carried.feedback != first.carried.feedback:
        raise MergeError(f"shards read different harness or feedback files: {first.path}, {other.path}")
    if set(other.planned) != set(first.planned):
        raise MergeError(f"shards planned different selections: {first.path}, {other.path} (same -k/-m and paths?)")


def _cover(shards: list[ShardFile]) -> None:
    ran = Counter(n for s in shards for n in s.ran)
    twice = sorted(n for n, c in ran.items() if c > 1)
    if twice:
        raise MergeError(f"{len(twice)} items ran on more than one shard, e.g. {twice[0]}")
    never = sorted(set(shards[0].planned) - set(ran))
    if never:
        raise MergeError(f"{len(never)} planned items ran on no shard, e.g. {never[0]}")


def merged_results(shards: list[ShardFile]) -> list[EvalResult]:
    """Every shard's results, in node id order."""
    return sorted((r for s in shards for r in s.results), key=lambda r: r.nodeid)


def exit_status(shards: list[ShardFile]) -> int:
    """The exit status one big run would have had before the gate: 1 if any test failed or errored."""
    broken = any(o in ("failed", "error") for s in shards for o in s.outcomes.values())
    return 1 if broken or any(s.outside for s in shards) else 0
