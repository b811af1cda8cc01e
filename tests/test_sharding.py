"""--agentloop-shard=K/N: every selected item runs on exactly one shard, the same on every runner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def _ran(result: pytest.RunResult) -> set[str]:
    return {m.group(1) for line in result.stdout.lines if (m := re.match(r"^(\S+::\S+) PASSED", line))}


def test_shards_cover_the_selection_exactly_once(pytester: pytest.Pytester, example_copy: Path) -> None:
    whole = pytester.runpytest("evals", "-v", "-p", "no:randomly")
    everything = _ran(whole)
    seen: list[str] = []
    for index in (1, 2, 3):
        result = pytester.runpytest("evals", "-v", f"--agentloop-shard={index}/3")
        assert result.ret == 0
        result.stdout.fnmatch_lines([f"agentloop: shard {index}/3: * items, planned *"])
        ran = _ran(result)
        assert result.parseoutcomes()["deselected"] == len(everything) - len(ran)
        seen += ran
    assert sorted(seen) == sorted(everything) and len(everything) == 23


def test_recorded_durations_move_the_split(pytester: pytest.Pytester, example_copy: Path) -> None:
    slow = "evals/diligence/financing_risk.eval.yaml::runway-named"
    collected = [line for line in pytester.runpytest("evals", "--collect-only", "-q").stdout.lines if "::" in line]
    durations = {nodeid: 1.0 for nodeid in collected} | {slow: 1000.0}
    (pytester.path / "durations.json").write_text(json.dumps(durations))
    result = pytester.runpytest("evals", "-v", "--agentloop-shard=1/2", "--agentloop-durations=durations.json")
    # the slow eval fills shard 1, and the evals reading the same run (trace-01) come along; nothing else does
    names = {nodeid.split("::")[1] for nodeid in _ran(result)}
    assert names == {"runway-named", "financing-risk-register", "dataharbor-pipeline-exposure", "contract-trace-01"}


@pytest.mark.parametrize("value", ["0/2", "3/2", "half"])
def test_a_bad_shard_is_a_usage_error(pytester: pytest.Pytester, example_copy: Path, value: str) -> None:
    result = pytester.runpytest("evals", f"--agentloop-shard={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--agentloop-shard: expected K/N*"])


# Merging (one run, one gate, one handoff; refusals) is tested in test_shards_200.py.
