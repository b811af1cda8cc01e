"""``scoring: hybrid`` needs both: when its assertions fail, the rubric is neither asked nor waited for."""

from __future__ import annotations

import json

import pytest
from test_promptfoo_system import installed, promptfoo  # noqa: F401  (fixtures: real Promptfoo, system tier)

from pytest_agentloop.testing.fake_openai import FakeOpenAI

from conftest import INI, verdict_reply

TWO = """
    evals:
      - id: broken
        title: Assertions fail
        trace: trace-01
        scoring: hybrid
        rubric: PASS if the runway is named.
        assert:
          - type: contains
            value: bankruptcy
      - id: sound
        title: Assertions pass
        trace: trace-01
        scoring: hybrid
        rubric: PASS if the burn is named.
        assert:
          - type: contains
            value: runway
"""
NOT_ASKED = "*rubric: not asked (assertions failed; hybrid needs both)*"


@pytest.fixture(params=[[], ["-n", "2"]], ids=["serial", "xdist"])
def workers(request: pytest.FixtureRequest) -> list[str]:
    """The same scenario serially and under pytest-xdist."""
    return list(request.param)


def _stored(pytester: pytest.Pytester) -> list[dict[str, object]]:
    path = pytester.path / "verdicts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_record_asks_the_judge_only_for_the_eval_whose_assertions_pass(
    pytester: pytest.Pytester, eval_file, judge_env, fake_openai: FakeOpenAI, workers: list[str]
) -> None:
    eval_file(TWO)
    fake_openai.push(verdict_reply(True, 1.0, "names the burn"), verdict_reply(True, 1.0, "extra"))
    result = pytester.runpytest(*judge_env, "--agentloop-judge=record", "-rf", *workers)
    result.assert_outcomes(passed=1, failed=1)
    assert len(fake_openai.requests) == 1
    assert "burn is named" in json.dumps(fake_openai.requests[0].body)
    result.stdout.fnmatch_lines(["*FAILED*broken*"])
    result.stdout.fnmatch_lines([NOT_ASKED])
    assert [v["eval_id"] for v in _stored(pytester)] == ["sound"]


def test_replay_without_a_stored_verdict_fails_on_the_assertions(
    pytester: pytest.Pytester, eval_file, judge_env, fake_openai: FakeOpenAI, workers: list[str]
) -> None:
    eval_file(TWO)
    fake_openai.push(verdict_reply(True, 1.0, "names the burn"))
    pytester.runpytest(*judge_env, "--agentloop-judge=record", "-k", "sound").assert_outcomes(passed=1)
    result = pytester.runpytest(*judge_env, "--agentloop-judge=replay", *workers)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.no_fnmatch_line("*no stored verdict*")
    result.stdout.fnmatch_lines([NOT_ASKED])
    assert len(fake_openai.requests) == 1


RESULTS_HOOK = """
import json

def pytest_agentloop_results(config, results):
    rows = {r.eval_id: r.to_json() for r in results}
    (config.rootpath / "results.json").write_text(json.dumps(rows))
"""


def test_the_result_record_has_no_rubric_verdict_and_says_why(
    pytester: pytest.Pytester, eval_file, judge_env, fake_openai: FakeOpenAI, workers: list[str]
) -> None:
    eval_file(TWO)
    pytester.makeconftest(RESULTS_HOOK)
    fake_openai.push(verdict_reply(True, 0.9, "names the burn"))
    pytester.runpytest(*judge_env, "--agentloop-judge=record", *workers).assert_outcomes(passed=1, failed=1)
    rows = json.loads((pytester.path / "results.json").read_text())
    broken, sound = rows["broken"], rows["sound"]
    assert broken["verdict_source"] is None and broken["judge_score"] is None and broken["judge_votes"] is None
    assert broken["rubric_note"] == "rubric: not asked (assertions failed; hybrid needs both)"
    assert "rubric: not asked" in broken["explanation"]
    assert broken["literal_score"] == 0.0 and broken["score"] == 0.0
    assert sound["verdict_source"] == "model:judge-1" and sound["judge_score"] == 0.9 and sound["rubric_note"] is None


def test_live_asks_the_judge_only_once_the_fresh_run_passes_the_assertions(
    pytester: pytest.Pytester, eval_file, judge_env, fake_openai: FakeOpenAI, workers: list[str]
) -> None:
    eval_file(TWO)
    pytester.makepyfile(myagent="async def run(question, **_):\n    return 'Burn is $2.9M; runway is 11 months.'\n")
    pytester.makeini(INI + "agentloop_agent = myagent:run\nagentloop_agent_key_env = none\n")
    fake_openai.push(verdict_reply(True, 1.0, "names the burn"), verdict_reply(True, 1.0, "extra"))
    result = pytester.runpytest(*judge_env, "--agentloop-live", "--agentloop-judge=record", *workers)
    result.assert_outcomes(passed=1, failed=1)
    assert len(fake_openai.requests) == 1
    result.stdout.fnmatch_lines([NOT_ASKED])


@pytest.mark.system
@pytest.mark.usefixtures("promptfoo")
def test_the_promptfoo_backend_sends_no_rubric_for_the_eval_whose_assertions_fail(
    pytester: pytest.Pytester, eval_file, judge_env, fake_openai: FakeOpenAI
) -> None:
    """Real Promptfoo (the system tier installs it): its grader is the fake server, whose requests are counted."""
    eval_file(TWO)
    fake_openai.push(verdict_reply(True, 1.0, "names the burn"), verdict_reply(True, 1.0, "extra"))
    args = [*judge_env, "--agentloop-backend=promptfoo", "--agentloop-judge-api=chat", "-p", "no:cacheprovider"]
    result = pytester.runpytest(*args, "--agentloop-judge=record")
    result.assert_outcomes(passed=1, failed=1)
    assert len(fake_openai.requests) == 1
    result.stdout.fnmatch_lines([NOT_ASKED])
    replay = pytester.runpytest(*args, "--agentloop-judge=replay")
    replay.assert_outcomes(passed=1, failed=1)
    replay.stdout.fnmatch_lines([NOT_ASKED])
    assert len(fake_openai.requests) == 1
