"""Outcomes do not depend on pytest-xdist: -n 2 gives what a serial run gives."""

from __future__ import annotations

import json
import re

import pytest

from pytest_agentloop.gate.history import History

MIXED = """
    defaults: {{tags: [{tag}]}}
    evals:
      - {{id: a, title: A, trace: trace-01, assert: [{{type: contains, value: runway}}]}}
      - {{id: b, title: B, trace: trace-01, assert: [{{type: contains, value: zebra}}]}}
      - {{id: c, title: C, trace: trace-01, scoring: hybrid, rubric: R, assert: [{{type: contains, value: runway}}]}}
"""


def _outcomes(result: pytest.RunResult) -> dict[str, str]:
    found = {}
    for line in result.stdout.lines:
        match = re.match(r"^(?:\[gw\d\] \[\s*\d+%\] )?(PASSED|FAILED|SKIPPED|ERROR) (\S+)", line)
        if match:
            found[match.group(2)] = match.group(1)
        match = re.match(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


RECORDS = """
import json

def pytest_agentloop_results(config, results):
    rows = [r.to_json() for r in results]
    for row in rows:
        row.pop("duration")
    name = "parallel.json" if config.getoption("numprocesses", None) else "serial.json"
    (config.rootpath / name).write_text(json.dumps(rows, sort_keys=True))
"""


@pytest.fixture
def scenario(pytester: pytest.Pytester, eval_file) -> pytest.Pytester:
    for index in range(4):
        eval_file(MIXED.format(tag=f"tag{index}"), name=f"suite{index}")
    eval_file("evals: [{id: broken", name="broken")
    pytester.makeconftest(RECORDS)
    return pytester


def test_same_outcomes_and_records_serial_and_parallel(scenario: pytest.Pytester) -> None:
    args = ("-v", "--agentloop-judge=off", "--continue-on-collection-errors", "-m", "not tag3")
    serial = scenario.runpytest(*args)
    parallel = scenario.runpytest(*args, "-n", "2")
    serial.assert_outcomes(passed=3, failed=3, skipped=3, errors=1, deselected=3)
    parallel.assert_outcomes(passed=3, failed=3, skipped=3, errors=1)  # xdist's summary has no deselected count
    for result in (serial, parallel):
        result.stdout.fnmatch_lines(["*9 evals: 3 passed, 3 failed, 3 judge off*"])
    assert _outcomes(serial) == _outcomes(parallel)
    assert len(_outcomes(serial)) == 10
    assert _outcomes(serial)["broken.eval.yaml"] == "ERROR"
    # the typed records reach the controller over workeroutput unchanged
    records = json.loads((scenario.path / "serial.json").read_text())
    assert records == json.loads((scenario.path / "parallel.json").read_text())
    assert [r["nodeid"] for r in records if r["outcome"] == "failed"] == [f"suite{i}.eval.yaml::b" for i in range(3)]
    assert records[1]["assertions"][0]["seen"].startswith("no part of 'zebra' occurs")
    history = History(scenario.path / ".agentloop" / "history.sqlite")
    serial_run, parallel_run = sorted(history.runs(), key=lambda r: r.started)
    assert history.selection(serial_run.run_id) == history.selection(parallel_run.run_id)
    assert len(history.selection(parallel_run.run_id).deselected) == 3
