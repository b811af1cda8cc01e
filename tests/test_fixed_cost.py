"""The session's fixed cost: what a judged run imports, the judge client made while pytest collects, one git call."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_agentloop.config import JudgeMode
from pytest_agentloop.gate.finish import GitHead, git_head
from pytest_agentloop.judge.client import OpenAIJudge
from pytest_agentloop.judge.endpoint import JudgeEndpoint
from pytest_agentloop.judge.planner import GradeRequest, JudgePlanner
from pytest_agentloop.judge.warmup import PreparedJudge
from pytest_agentloop.results import AssertionResult, EvalResult, Outcome
from pytest_agentloop.testing.fake_openai import FakeOpenAI

from conftest import verdict_reply

OPTIONAL = ("agent.live", "agent.pool", "agent.budget", "report.plugin", "report.build", "gate.sharding")


def test_the_plugin_imports_no_capability_a_session_does_not_ask_for() -> None:
    """Live runs, the budget, the HTML report and shard planning load only with their options."""
    code = "import json, sys, pytest_agentloop.plugin; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    assert [m for m in OPTIONAL if f"pytest_agentloop.{m}" in loaded] == []


def _request(tmp_path: Path, n: int = 0) -> GradeRequest:
    return GradeRequest(
        nodeid=f"judged.eval.yaml::e{n}",
        eval_file="judged.eval.yaml",
        eval_id=f"e{n}",
        rubric="PASS if the runway is stated.",
        output="The runway is 11 months.",
        store_path=tmp_path / "verdicts.jsonl",
    )


def _planner(endpoint: JudgeEndpoint, prepared: concurrent.futures.Future[OpenAIJudge] | None) -> JudgePlanner:
    return JudgePlanner(endpoint, JudgeMode.RECORD, 2, lambda path, verdicts: None, prepared=prepared)


def test_the_planner_grades_with_the_client_made_while_pytest_collected(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    endpoint = JudgeEndpoint(model="judge-1", api_key="k", base_url=fake_openai.base_url)
    prepared = PreparedJudge(endpoint, 2)
    ready = prepared.for_endpoint(endpoint)
    assert ready is not None
    fake_openai.push(verdict_reply())
    planner = _planner(endpoint, ready)
    try:
        assert planner.outcome(_request(tmp_path)).passed
        assert planner._judge is ready.result()
    finally:
        planner.close()


def test_a_client_made_for_another_endpoint_is_not_used(fake_openai: FakeOpenAI) -> None:
    """A conftest met during collection may change the judge's key or address: the planner then makes its own."""
    endpoint = JudgeEndpoint(model="judge-1", api_key="k", base_url=fake_openai.base_url)
    prepared = PreparedJudge(endpoint, 2)
    assert prepared.for_endpoint(dataclasses.replace(endpoint, api_key="other")) is None
    prepared.future.result(timeout=30)  # let the thread finish within the test


def test_a_client_that_could_not_be_made_is_made_again_where_the_eval_sees_it(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    endpoint = JudgeEndpoint(model="judge-1", api_key="k", base_url=fake_openai.base_url)
    failed: concurrent.futures.Future[OpenAIJudge] = concurrent.futures.Future()
    failed.set_exception(OSError("no CA bundle"))
    fake_openai.push(verdict_reply())
    planner = _planner(endpoint, failed)
    try:
        assert planner.outcome(_request(tmp_path)).passed
    finally:
        planner.close()


def test_git_head_is_one_call_for_commit_and_branch(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "trunk"], check=True)
    assert git_head(repo) == (None, None)  # no commit yet: git can tell neither
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert git_head(repo) == (commit, "trunk")
    assert GitHead(repo).result() == (commit, "trunk")
    assert git_head(tmp_path / "elsewhere") == (None, None)


def test_a_result_record_to_json_is_what_asdict_gave() -> None:
    check = AssertionResult("contains", 3, False, 0.0, 1.0, "the runway", "nothing", metric="facts")
    result = EvalResult("e1", "a.eval.yaml::e1", "E1", "t" * 32, "trace-01", Outcome.FAILED, 0.0, "1 failed",
                        tags=("smoke", "money"), assertions=(check,))  # fmt: skip
    expected = {**dataclasses.asdict(result), "outcome": "failed", "tags": ["smoke", "money"], "format": 2}
    expected["assertions"] = [dataclasses.asdict(check)]
    assert result.to_json() == expected
    assert EvalResult.from_json(result.to_json()) == result


FREEZE_PROBE = """
import gc


def pytest_sessionfinish(session):
    print(f"frozen at the end: {gc.get_freeze_count()}")
"""


def test_what_exists_after_collection_is_frozen(pytester: pytest.Pytester, example_copy: Path) -> None:
    """pytest's full collections at its end and the interpreter's exit do not scan or free the imported heap."""
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(FREEZE_PROBE)
    result = pytester.runpytest_subprocess("evals", "-p", "no:cacheprovider", "-m", "not slow")
    frozen = re.search(r"frozen at the end: (\d+)", result.stdout.str())
    assert frozen and int(frozen.group(1)) > 20_000  # 0 without the freeze
