"""Extension points: plugin assertion types, the results hook, the handoff hook."""

from __future__ import annotations

import json

import pytest

CONFTEST = """
import json
from pytest_agentloop.assertions.registry import AssertionType, Outcome

def _mentions(value, given):
    found = value.lower() in given.text.lower()
    return Outcome(found, f"output mentions {value}", "yes" if found else "no")

def _validate(value):
    if not isinstance(value, str):
        raise ValueError("expected a company name")

MENTIONS = AssertionType("mentions-company", _mentions, _validate)

def pytest_agentloop_assertion_types(config):
    return [MENTIONS]

def pytest_agentloop_results(config, results):
    (config.rootpath / "results.json").write_text(json.dumps([r.to_json() for r in results]))

def pytest_agentloop_handoff(config, outcome):
    (config.rootpath / "handoff-path.txt").write_text(str(outcome.handoff))
"""


def test_plugin_assertion_type_and_hooks(pytester: pytest.Pytester, eval_file, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makeconftest(CONFTEST)
    eval_file(
        """
        evals:
          - {id: ok, title: OK, trace: trace-01, assert: [{type: mentions-company, value: RUNWAY}]}
          - {id: negated, title: N, trace: trace-01, assert: [{type: not-mentions-company, value: runway}]}
        """
    )
    result = pytester.runpytest("--agentloop-handoff=out/h.md")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*expected: NOT (output mentions runway)*"])
    rows = json.loads((pytester.path / "results.json").read_text())
    assert {r["eval_id"]: r["outcome"] for r in rows} == {"ok": "passed", "negated": "failed"}
    assert (pytester.path / "handoff-path.txt").read_text().endswith("out/h.md")


def test_plugin_assertion_value_is_validated(pytester: pytest.Pytester, eval_file) -> None:
    pytester.makeconftest(CONFTEST)
    eval_file("evals:\n  - {id: x, title: X, trace: trace-01, assert: [{type: mentions-company, value: [1]}]}\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*field 'value': expected a company name*"])


def test_clashing_assertion_name_is_a_usage_error(pytester: pytest.Pytester, eval_file) -> None:
    pytester.makeconftest(
        "from pytest_agentloop.assertions.registry import AssertionType, Outcome\n"
        "def pytest_agentloop_assertion_types(config):\n"
        "    return [AssertionType('contains', lambda v, g: Outcome(True, '', ''), lambda v: None)]\n"
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*assertion type 'contains' is already registered*"])
