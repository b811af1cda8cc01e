"""Outcomes do not depend on pytest-xdist: -n 2 gives what a serial run gives."""

from __future__ import annotations

import re

import pytest

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


@pytest.fixture
def scenario(pytester: pytest.Pytester, eval_file) -> pytest.Pytester:
    for index in range(4):
        eval_file(MIXED.format(tag=f"tag{index}"), name=f"suite{index}")
    eval_file("evals: [{id: broken", name="broken")
    return pytester


def test_same_outcomes_serial_and_parallel(scenario: pytest.Pytester) -> None:
    serial = scenario.runpytest("-v", "--agentloop-judge=off")
    parallel = scenario.runpytest("-v", "-n", "2", "--agentloop-judge=off")
    for result in (serial, parallel):
        result.assert_outcomes(passed=4, failed=4, skipped=4, errors=1)
        result.stdout.fnmatch_lines(["*12 evals: 4 passed, 4 failed, 4 judge off*"])
    assert _outcomes(serial) == _outcomes(parallel)
    assert len(_outcomes(serial)) == 13
    assert _outcomes(serial)["broken.eval.yaml"] == "ERROR"
