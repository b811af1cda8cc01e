"""--agentloop-shard=K/N: every selected item runs on exactly one shard, the same on every runner."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
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


def _merge(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "pytest_agentloop.cli", "merge", *args)


def _shards(pytester: pytest.Pytester, count: int) -> list[str]:
    names = []
    for index in range(1, count + 1):
        name = f"shard-{index}.json"
        result = pytester.runpytest("evals", f"--agentloop-shard={index}/{count}", f"--agentloop-shard-out={name}")
        assert result.ret == 0
        names.append(name)
    return names


def test_merge_gives_one_run_one_gate_like_the_unsharded_run(pytester: pytest.Pytester, example_copy: Path) -> None:
    _edit_answer(example_copy, "trace-03", "parent", "entity")  # a literal failure and a stale verdict (error)
    whole = pytester.runpytest("evals", "--junitxml=whole.xml")
    assert whole.ret == 1
    whole.stdout.fnmatch_lines(["20 evals: 18 passed, 1 failed, 1 error"])
    shards = [f"shard-{k}.json" for k in (1, 2, 3)]
    for index, name in enumerate(shards, 1):
        pytester.runpytest("evals", f"--agentloop-shard={index}/3", f"--agentloop-shard-out={name}")
    merged = _merge(pytester, *shards, "--junitxml=merged.xml", "--history=merged.sqlite", "--html=merged.html")
    assert merged.ret == 1
    merged.stdout.fnmatch_lines(
        ["merged 3 shards: 20 evals (1 error, 1 failed, 18 passed)", "run * recorded in *merged.sqlite"]
    )
    documents = [json.loads((pytester.path / name).read_text()) for name in shards]
    outcomes = {n: o for d in documents for n, o in d["outcomes"].items()}
    assert len(outcomes) == 23
    assert sorted(o for o in outcomes.values() if o != "passed") == ["error", "failed"]
    assert (pytester.path / "merged.xml").read_text().count("<testcase") == 23
    runs = sqlite3.connect(pytester.path / "merged.sqlite").execute("select count(*) from runs").fetchone()
    assert runs == (1,)
    from pytest_agentloop.report.html import payload_of

    report = payload_of((pytester.path / "merged.html").read_text())
    assert len(report["rows"]) == 20


def test_merge_refuses_a_missing_a_doubled_or_a_foreign_shard(pytester: pytest.Pytester, example_copy: Path) -> None:
    one, two, three = _shards(pytester, 3)
    missing = _merge(pytester, one, two)
    assert missing.ret == 2
    missing.stderr.fnmatch_lines(["*missing shard 3/3*partial green*"])
    doubled = _merge(pytester, one, two, two, three)
    assert doubled.ret == 2
    doubled.stderr.fnmatch_lines(["*shard 2/3 given more than once*"])
    document = json.loads((pytester.path / three).read_text())
    document["commit"] = "0" * 40
    (pytester.path / "other.json").write_text(json.dumps(document))
    foreign = _merge(pytester, one, two, "other.json")
    assert foreign.ret == 2
    foreign.stderr.fnmatch_lines(["*shards come from two commits*"])


def _edit_answer(example: Path, label: str, old: str, new: str) -> None:
    for name in ("answer.md",):
        path = example / "diligence" / "traces" / "runs" / label / name
        path.write_text(path.read_text().replace(old, new))
